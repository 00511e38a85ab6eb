"""REF-CFA: Residual-Evolution Fields and Cross-domain Field Alignment."""

__version__ = "0.1.0"
