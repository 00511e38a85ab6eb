"""Dynamic time warping and the warp derived from its path."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from refcfa.alignment import dtw, warp_from_path


def brute_force_dtw_cost(a: np.ndarray, b: np.ndarray) -> float:
    """Minimum over all monotone paths, by plain recursion (tiny inputs only)."""

    def best(i: int, j: int) -> float:
        here = abs(a[i] - b[j])
        if (i, j) == (0, 0):
            return here
        options = [best(i - di, j - dj) for di, dj in ((1, 1), (1, 0), (0, 1)) if i - di >= 0 and j - dj >= 0]
        return here + min(options)

    return best(len(a) - 1, len(b) - 1)


@pytest.mark.parametrize(("n", "m", "seed"), list(itertools.product([1, 3, 5], [2, 4, 6], [0, 1])))
def test_cost_matches_brute_force(n: int, m: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=m)
    cost, path = dtw(a, b)
    assert cost == pytest.approx(brute_force_dtw_cost(a, b), abs=1e-12)
    assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (n - 1, m - 1)
    steps = np.diff(path, axis=0)
    assert np.all((steps >= 0) & (steps <= 1)) and np.all(steps.sum(axis=1) >= 1)
    assert cost == pytest.approx(np.abs(a[path[:, 0]] - b[path[:, 1]]).sum())


def test_identity_and_known_path() -> None:
    curve = np.array([0.0, 0.0, 1.0, 1.0, 2.0])  # flat parts: ties must prefer the diagonal
    cost, path = dtw(curve, curve)
    assert cost == 0.0
    np.testing.assert_array_equal(path, np.stack([np.arange(5)] * 2, axis=1))
    cost, path = dtw(np.array([0.0, 1.0, 2.0]), np.array([0.0, 0.0, 1.0, 2.0]))
    assert cost == 0.0
    np.testing.assert_array_equal(path, [[0, 0], [0, 1], [1, 2], [2, 3]])
    np.testing.assert_allclose(warp_from_path(path, 3, 4), [0.5, 2.0, 3.0])


def test_warp_is_monotone_and_clipped() -> None:
    path = np.array([[0, 0], [1, 1], [1, 2], [1, 3], [2, 3]])
    np.testing.assert_allclose(warp_from_path(path, 3, 4), [0.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="must visit every source index"):
        warp_from_path(np.array([[0, 0], [2, 1]]), 3, 2)
    with pytest.raises(ValueError, match="non-empty 1-D curves"):
        dtw(np.zeros((2, 2)), np.zeros(3))
