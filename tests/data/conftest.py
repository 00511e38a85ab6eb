"""Fixtures for the refcfa.data tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep rasterised DAGM ellipse masks out of the user's cache folder."""
    monkeypatch.setenv("REFCFA_CACHE_DIR", str(tmp_path_factory.mktemp("refcfa_cache")))
