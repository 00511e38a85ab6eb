"""Dynamic time warping of two 1-D curves (endpoints fixed, monotone, steps (1,0), (0,1), (1,1)).

``O(K_a K_b)`` dynamic programme; the curves here have ``K <= ~50`` points.
"""

from __future__ import annotations

import numpy as np

__all__ = ["dtw", "warp_from_path"]


def dtw(a: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray]:
    """Optimal monotone alignment of curves ``a`` ``(K_a,)`` and ``b`` ``(K_b,)``.

    Local cost ``|a_i - b_j|``; the path starts at ``(0, 0)``, ends at ``(K_a-1, K_b-1)`` and moves
    by ``(1, 1)``, ``(1, 0)`` or ``(0, 1)``. Ties prefer the diagonal, so equal curves give the
    identity path.

    Returns:
        ``cost`` (sum of the local costs along the path) and ``path`` ``(L, 2)`` int64 pairs
        ``(i, j)`` in increasing order.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1 or a.size == 0 or b.size == 0:
        raise ValueError(f"dtw: a and b must be non-empty 1-D curves, got shapes {a.shape} and {b.shape}")
    n, m = a.size, b.size
    local = np.abs(a[:, None] - b[None, :])
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, n + 1):
        row, prev = acc[i], acc[i - 1]
        for j in range(1, m + 1):
            row[j] = local[i - 1, j - 1] + min(prev[j - 1], prev[j], row[j - 1])

    path = [(n - 1, m - 1)]
    i, j = n, m
    while (i, j) != (1, 1):
        # candidates in tie-break order: diagonal, then vertical (i-1), then horizontal (j-1)
        steps = ((i - 1, j - 1), (i - 1, j), (i, j - 1))
        i, j = min(steps, key=lambda s: acc[s])  # min keeps the first of equal values
        path.append((i - 1, j - 1))
    return float(acc[n, m]), np.array(path[::-1], dtype=np.int64)


def warp_from_path(path: np.ndarray, n_source: int, n_target: int) -> np.ndarray:
    """Monotone map ``pi(n)`` from source step to fractional target step.

    ``pi(n)`` = mean of the target indices the path matches to source step ``n``, then made
    non-decreasing (running maximum) and clipped to ``[0, n_target - 1]``.

    Args:
        path: ``(L, 2)`` pairs ``(source index, target index)`` covering every source index.

    Returns:
        ``(n_source,)`` float64.
    """
    counts = np.bincount(path[:, 0], minlength=n_source)
    if counts.size != n_source or np.any(counts == 0):
        raise ValueError(f"warp_from_path: the path must visit every source index 0..{n_source - 1}")
    warp = np.bincount(path[:, 0], weights=path[:, 1], minlength=n_source) / counts
    return np.clip(np.maximum.accumulate(warp), 0.0, n_target - 1.0)
