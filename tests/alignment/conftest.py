"""Synthetic REF fields with known structure for the alignment tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from refcfa.alignment import FieldSet

FieldFactory = Callable[..., FieldSet]


def make_fields(
    log_r: np.ndarray,
    n_images: int = 3,
    size: int = 16,
    channels: int = 3,
    seed: int = 0,
    pixel_noise: float = 0.3,
) -> FieldSet:
    """Fields whose median log R follows ``log_r`` ``(K,)`` (plus a per-pixel offset), with M, Q
    smooth functions of R and random unit directions d."""
    rng = np.random.default_rng(seed)
    k = log_r.size
    offset = pixel_noise * rng.standard_normal((n_images, 1, size, size))
    jitter = 0.05 * rng.standard_normal((n_images, k, size, size))
    r = np.exp(log_r[None, :, None, None] + offset + jitter)
    m = 0.5 * r * np.exp(0.1 * rng.standard_normal(r.shape))
    q = np.cumsum(r, axis=1) / k
    d = rng.standard_normal((n_images, k, channels, size, size))
    d /= np.linalg.norm(d, axis=2, keepdims=True)
    return FieldSet(R=r, M=m, Q=q, d=d, timesteps=np.linspace(100, 100 / k, k).round().astype(int))


@pytest.fixture
def fields_factory() -> FieldFactory:
    return make_fields
