"""Adaptive field statistics E, NS, DV (DESIGN.md section 4).

Notation map (DESIGN.md -> code), per pixel ``u``:

====================  ==========================================================  =========
symbol                definition                                                  code
====================  ==========================================================  =========
``a_n(u)``            step weights, ``Σ_n a_n = 1`` (Field Transformer pooling)    ``a``
``E(u)``              ``Σ_n a_n R_n²``                                             ``"E"``
``NS(u)``             ``Σ_{n≥2} a_n (R_n − R_{n−1})² / (Σ_n a_n R_n² + δ)``        ``"NS"``
``DV(u)``             ``1 − ‖Σ_n a_n d_n‖``                                        ``"DV"``
====================  ==========================================================  =========

The *reference* statistics use uniform weights ``a_n = 1/K`` (``a=None``); the *adaptive* ones use
the Field Transformer's attention-pooling weights. Both are kept (DESIGN.md 4).
"""

from __future__ import annotations

import torch

STAT_NAMES = ("E", "NS", "DV")


def uniform_weights(R: torch.Tensor) -> torch.Tensor:
    """Uniform step weights ``a_n = 1/K`` shaped like ``R`` ``(B, K, H, W)``."""
    K = R.shape[1]
    return torch.full_like(R, 1.0 / K)


def adaptive_statistics(
    R: torch.Tensor,
    d: torch.Tensor,
    a: torch.Tensor | None = None,
    delta: float = 1e-6,
) -> dict[str, torch.Tensor]:
    """Energy, non-stationarity and directional variability of each pixel's field sequence.

    Args:
        R: gradient residual ``R_n(u)``, ``(B, K, H, W)``.
        d: residual direction ``d_n(u)``, ``(B, K, C, H, W)``.
        a: step weights ``a_n(u)``, ``(B, K, H, W)``, summing to 1 over ``K``; ``None`` gives the
            reference statistics with uniform ``1/K``.
        delta: the ``δ`` in the NS denominator.

    Returns:
        ``{"E", "NS", "DV"}``, each ``(B, H, W)`` float32 (exactly the formulas of DESIGN.md 4;
        ``NS`` uses the weight ``a_n`` of the later step of each pair ``(n−1, n)``).
    """
    if R.ndim != 4:
        raise ValueError(f"R: expected shape (B, K, H, W), got {tuple(R.shape)}")
    if d.ndim != 5 or d.shape[:2] != R.shape[:2] or d.shape[3:] != R.shape[2:]:
        raise ValueError(
            f"d: expected shape (B, K, C, H, W) matching R {tuple(R.shape)}, got {tuple(d.shape)}"
        )
    R = R.float()
    d = d.float()
    if a is None:
        a = uniform_weights(R)
    elif a.shape != R.shape:
        raise ValueError(f"a: expected shape {tuple(R.shape)} (like R), got {tuple(a.shape)}")
    a = a.float()

    # E(u) = Σ_n a_n R_n²
    E = (a * R.square()).sum(dim=1)
    # NS(u) = Σ_{n≥2} a_n (R_n − R_{n−1})² / (E + δ)
    NS = (a[:, 1:] * (R[:, 1:] - R[:, :-1]).square()).sum(dim=1) / (E + delta)
    # DV(u) = 1 − ‖Σ_n a_n d_n‖  (norm over the C channels)
    mean_dir = (a.unsqueeze(2) * d).sum(dim=1)  # (B, C, H, W)
    DV = 1.0 - torch.linalg.vector_norm(mean_dir, dim=1)
    return {"E": E, "NS": NS, "DV": DV}
