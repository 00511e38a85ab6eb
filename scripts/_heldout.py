"""What the held-out-draw scripts (`diagnose_fields.py`, `validate_detector.py`) share: their
command line and the held-out draw of the synthetic domains (`make_synthetic` with another seed
than the demo's 0 — never the demo's test split)."""

from __future__ import annotations

import argparse
from pathlib import Path

from refcfa.config import Config, load_config
from refcfa.data import make_synthetic


def parse_args(doc: str, set_example: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--config", default="experiments/synthetic/demo.yaml")
    ap.add_argument("--output", required=True, help="output folder of a finished run (its networks)")
    ap.add_argument("--heldout", default="data/synthetic_heldout", help="where the held-out draw goes")
    ap.add_argument("--seed", type=int, default=1, help="seed of the held-out draw (the demo uses 0)")
    ap.add_argument("--set", nargs="*", default=[], help=f"config overrides (e.g. {set_example})")
    return ap.parse_args()


def heldout_draw(args: argparse.Namespace) -> tuple[Config, Path]:
    """The run's config (with ``--set``) and the held-out draw's root, generated when missing."""
    cfg = load_config(args.config, [f"output_dir={args.output}", *args.set])
    root = Path(args.heldout)
    if not (root / cfg.target.category).exists():
        # make_synthetic draws at ≥ 32 px; the loaders resize to data.image_size as for the run's data
        make_synthetic(root, size=max(cfg.data.image_size, 32), seed=args.seed)
    return cfg, root
