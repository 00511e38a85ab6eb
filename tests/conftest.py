"""Fixtures shared by all test packages (keep small; package-specific ones live beside the tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
QUICK_CONFIG = REPO / "resources" / "configs" / "quick" / "quick.yaml"


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """A small synthetic source/target dataset (MVTec layout), written once per session.

    `make_synthetic` needs at least 32 px; the quick config resizes to 16 px.
    """
    from refcfa.data import make_synthetic

    root = tmp_path_factory.mktemp("synthetic")
    return make_synthetic(root, size=32, seed=0, n_train=12, n_test_good=4, n_test_defect=6)


@pytest.fixture
def quick_cfg_path() -> Path:
    """The tiny test config (16 px, 2-level UNet, 6 steps)."""
    return QUICK_CONFIG
