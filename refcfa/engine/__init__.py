"""Training loops, hooks, checkpoints, distributed setup and progress events.

`refcfa.engine.events` is torch-free; the rest imports torch. Names are loaded lazily so that
`import refcfa.engine` stays cheap:

- `DiffusionTrainer`, `CancelToken`, `train_score_network` (`refcfa.engine.trainer`)
- `load_checkpoint`, `load_score_network`, `find_last_checkpoint` (`refcfa.engine.checkpoint`)
- `resolve_device` (`refcfa.engine.devices`), `init_distributed` (`refcfa.engine.distributed`)
"""

from __future__ import annotations

import importlib

_LAZY = {
    "DiffusionTrainer": "refcfa.engine.trainer",
    "CancelToken": "refcfa.engine.trainer",
    "train_score_network": "refcfa.engine.trainer",
    "split_training_images": "refcfa.engine.trainer",
    "load_checkpoint": "refcfa.engine.checkpoint",
    "load_score_network": "refcfa.engine.checkpoint",
    "find_last_checkpoint": "refcfa.engine.checkpoint",
    "save_checkpoint": "refcfa.engine.checkpoint",
    "resolve_device": "refcfa.engine.devices",
    "init_distributed": "refcfa.engine.distributed",
    "cleanup_distributed": "refcfa.engine.distributed",
    "HookBase": "refcfa.engine.hooks",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'refcfa.engine' has no attribute {name!r}")
