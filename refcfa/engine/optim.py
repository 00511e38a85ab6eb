"""Optimizer and learning-rate schedule of the score networks.

AdamW; the rate is `lr · factor(s)` after `s` completed steps (a `LambdaLR`): linear warm-up over
`train.warmup_steps`, then `cosine` decay to 0 at `train.max_steps`, `cosine_restarts` (the seed's
`CosineAnnealingWarmRestarts(T_0=restart_period, T_mult=1, eta_min=0)`, after the warm-up) or
`constant`. A pure function of the step, so a resumed run gets the same rates.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from refcfa.config.schema import TrainConfig


def build_optimizer(model: torch.nn.Module, tc: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW over the trainable parameters (fused kernels on CUDA, foreach elsewhere)."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    kernel = {"fused": True} if device.type == "cuda" else {"foreach": True}
    return torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay, **kernel)


def lr_factor_fn(tc: TrainConfig, max_steps: int | None = None) -> Callable[[int], float]:
    """Learning-rate multiplier for the step after `s` completed steps.

    Linear warm-up over `warmup_steps`, then `cosine` (to 0 at `max_steps`), `cosine_restarts`
    (`0.5 (1 + cos(π ((s − warmup) mod P) / P))`, `P = restart_period`) or `constant`.
    """
    warmup, total, kind, period = (
        int(tc.warmup_steps),
        int(max_steps if max_steps is not None else tc.max_steps),
        tc.scheduler,
        int(tc.restart_period),
    )

    def factor(s: int) -> float:
        if warmup > 0 and s < warmup:
            return (s + 1) / warmup
        if kind == "constant":
            return 1.0
        p = s - warmup
        if kind == "cosine_restarts":
            return 0.5 * (1.0 + math.cos(math.pi * (p % period) / period))
        span = max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(p, span) / span))

    return factor


__all__ = ["build_optimizer", "lr_factor_fn"]
