"""FieldSet validation, pixel views and sampling."""

from __future__ import annotations

import numpy as np
import pytest

from refcfa.alignment import FieldSet
from refcfa.alignment.fields import map_pixels


def _arrays(n: int = 2, k: int = 4, c: int = 3, h: int = 5, w: int = 6) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "R": rng.random((n, k, h, w)),
        "M": rng.random((n, k, h, w)),
        "Q": rng.random((n, k, h, w)),
        "d": rng.standard_normal((n, k, c, h, w)),
    }


def test_shapes_dtype_and_properties() -> None:
    arrays = _arrays()
    arrays["R"] = arrays["R"].astype(np.float16)  # the cache's dtype is accepted
    fs = FieldSet(**arrays, timesteps=np.array([100, 75, 50, 25]))
    assert (fs.N, fs.K, fs.C, fs.H, fs.W) == (2, 4, 3, 5, 6)
    assert all(getattr(fs, name).dtype == np.float32 for name in ("R", "M", "Q", "d"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"M": np.zeros((2, 4, 5, 7))}, r"R has shape \(2, 4, 5, 6\) but M has shape \(2, 4, 5, 7\)"),
        ({"d": np.zeros((2, 3, 3, 5, 6))}, r"d must have shape \(2, 4, C, 5, 6\), got \(2, 3, 3, 5, 6\)"),
        ({"R": np.zeros((4, 5, 6))}, r"R must have shape \(N, K, H, W\), got shape \(4, 5, 6\)"),
        ({"Q": -np.ones((2, 4, 5, 6))}, "Q has negative values"),
        ({"R": np.full((2, 4, 5, 6), np.nan)}, "R contains 240 NaN"),
        ({"timesteps": np.arange(3)}, r"timesteps must be a numeric array of shape \(K,\) = \(4,\)"),
    ],
)
def test_invalid_fields_refused(change: dict, message: str) -> None:
    arrays = {**_arrays(), **change}
    with pytest.raises(ValueError, match=message):
        FieldSet(**arrays)


def test_non_numeric_refused() -> None:
    with pytest.raises(TypeError, match="R must be a real numeric array"):
        FieldSet(**{**_arrays(), "R": np.full((2, 4, 5, 6), "x")})


def test_pixels_round_trip_and_layout() -> None:
    fs = FieldSet(**_arrays())
    px = fs.pixels()
    assert px.R.shape == (2 * 5 * 6, 4) and px.d.shape == (60, 4, 3)
    # pixel p = (image, row, col) in C order
    np.testing.assert_array_equal(px.R[1 * 30 + 2 * 6 + 3], fs.R[1, :, 2, 3])
    np.testing.assert_array_equal(px.d[7], fs.d[0, :, :, 1, 1])
    back = FieldSet.from_pixels(px, 2, 5, 6)
    for name in ("R", "M", "Q", "d"):
        np.testing.assert_array_equal(getattr(back, name), getattr(fs, name))
    # chunked mapping (one image per chunk) reassembles the same set
    same = map_pixels(fs, lambda p: p, fs.timesteps, chunk_pixels=30)
    np.testing.assert_array_equal(same.d, fs.d)


def test_sample_pixels_is_seeded_and_bounded() -> None:
    fs = FieldSet(**_arrays())
    a = fs.sample_pixels(17, 3)
    b = fs.sample_pixels(17, np.random.default_rng(3))
    assert a.R.shape == (17, 4) and a.d.shape == (17, 4, 3)
    np.testing.assert_array_equal(a.R, b.R)
    idx = fs.pixel_index(17, 3)
    assert np.unique(idx).size == 17
    n, y, x = np.unravel_index(idx[5], (2, 5, 6))
    np.testing.assert_array_equal(a.M[5], fs.M[n, :, y, x])
    np.testing.assert_array_equal(a.d[5], fs.d[n, :, :, y, x])
    assert fs.sample_pixels(None).R.shape == (60, 4)
    assert fs.sample_pixels(1000).R.shape == (60, 4)
    with pytest.raises(ValueError, match="max_pixels must be a positive int"):
        fs.sample_pixels(0)


def test_stack_records() -> None:
    class Record:
        def __init__(self, i: int) -> None:
            arrays = _arrays(n=1)
            self.R, self.M, self.Q, self.d = (arrays[k][0].astype(np.float16) for k in "RMQd")
            self.timesteps = np.array([40, 30, 20, 10])

    fs = FieldSet.stack([Record(0), Record(1), Record(2)])
    assert (fs.N, fs.K, fs.C) == (3, 4, 3)
    np.testing.assert_array_equal(fs.timesteps, [40, 30, 20, 10])
    with pytest.raises(ValueError, match="records is empty"):
        FieldSet.stack([])
