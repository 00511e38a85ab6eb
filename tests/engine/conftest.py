"""Helpers for the engine tests: quick configs pointing at the session's synthetic data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def make_cfg(quick_cfg_path, synthetic_root, tmp_path) -> Callable:
    """`make_cfg(*overrides, out=None)`: the quick config on the synthetic data, output in tmp."""
    from refcfa.config import load_config

    def _make(*overrides: str, out: Path | None = None):
        out = out or tmp_path / "out"
        base = [
            f"output_dir={out}",
            f"source.root={synthetic_root}",
            f"target.root={synthetic_root}",
            "device=cpu",
        ]
        return load_config(quick_cfg_path, [*base, *overrides])

    return _make


@pytest.fixture(scope="package", autouse=True)
def _one_torch_thread():
    """Tiny networks run fastest on one thread, and much faster on a shared, busy CI machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
