"""AUPRO: area under the per-region-overlap (PRO) curve up to a false-positive-rate limit.

Definition (Bergmann et al., MVTec AD, IJCV 2021; their reference ``pro_curve_util.py``):

* ground-truth regions = 8-connected components of each image's mask (``scipy.ndimage.label``
  with a 3x3 structure of ones; components never span two images);
* at a threshold ``t`` (pixels with ``map >= t`` are called anomalous):
  ``FPR(t)`` = called normal-pixels / all normal pixels (over all images),
  ``PRO(t)`` = mean over all regions of all images of (called pixels of the region / region size);
* the curve runs through the points of every distinct threshold, from ``(0, 0)`` to ``(1, 1)``,
  linearly between them; tied scores are one threshold;
* ``AUPRO = (1 / fpr_limit) * integral_0^fpr_limit PRO d FPR`` computed exactly with the
  trapezoid rule, the curve interpolated linearly at exactly ``fpr_limit``.

All thresholds at once: sort the pixels by score once; each pixel adds ``1`` to the false-positive
count if normal, and ``1 / |region|`` to the summed overlap if it belongs to a region; cumulative
sums then give the whole curve (no loop over thresholds). ``O(P log P)`` for ``P`` pixels.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

from refcfa.metrics._validation import as_binary, as_scores, check_ndim, check_same_shape

__all__ = ["aupro", "pro_curve"]

# 8-connectivity inside each image, none across the image axis of an (N, H, W) stack
_STRUCTURE = np.zeros((3, 3, 3), dtype=bool)
_STRUCTURE[1] = True


def _checked(maps: ArrayLike, masks: ArrayLike, func: str) -> tuple[np.ndarray, np.ndarray]:
    m = as_scores(maps, "maps", func)
    g = as_binary(masks, "masks", func)
    check_same_shape(m, g, "maps", "masks", func)
    check_ndim(m, 3, "maps", func, "(N, H, W)", "add or squeeze axes, e.g. maps[None] for one image")
    if not g.any():
        raise ValueError(
            f"{func} needs at least one anomalous region; masks are all empty (False). "
            "Evaluate on a set that contains anomalous images with ground-truth masks"
        )
    if g.all():
        raise ValueError(
            f"{func} needs normal pixels to measure the false-positive rate; masks are all True. "
            "Evaluate on a set that contains normal pixels"
        )
    return m, g


def pro_curve(maps: ArrayLike, masks: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """The PRO curve at every distinct threshold.

    Args:
        maps: ``(N, H, W)`` anomaly maps, higher = more anomalous.
        masks: ``(N, H, W)`` bool ground truth (at least one True and one False pixel).

    Returns:
        ``fpr, pro``: ``(T + 2,)`` float64 each, starting at ``(0, 0)``, ending at ``(1, 1)``,
        ``fpr`` non-decreasing, one point per distinct score (in decreasing score order).
    """
    m, g = _checked(maps, masks, "pro_curve")
    return _pro_curve(m, g)


def _pro_curve(maps: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    regions, n_regions = ndimage.label(masks, structure=_STRUCTURE)
    regions = regions.ravel()
    sizes = np.bincount(regions)
    inv_size = 1.0 / np.maximum(sizes, 1)
    inv_size[0] = 0.0  # label 0 = background (normal pixels)
    n_normal = int(sizes[0])

    scores = maps.ravel()
    order = np.argsort(scores)[::-1]
    sorted_scores = scores[order]
    sorted_regions = regions[order]
    last = np.r_[np.flatnonzero(np.diff(sorted_scores)), sorted_scores.size - 1]

    false_pos = np.cumsum(sorted_regions == 0, dtype=np.int64)[last]
    overlap = np.cumsum(inv_size[sorted_regions])[last]

    fpr = np.r_[0.0, false_pos / n_normal]
    pro = np.r_[0.0, overlap / n_regions]
    # cumulative float sums can overshoot 1 by an ulp; the last point is (1, 1) by definition
    fpr[-1] = 1.0
    pro[-1] = 1.0
    return fpr, np.minimum(pro, 1.0)


def area_up_to(x: np.ndarray, y: np.ndarray, x_max: float) -> float:
    """Exact trapezoidal area under the piecewise-linear curve ``(x, y)`` on ``[x[0], x_max]``.

    ``x`` must be non-decreasing with ``x[0] <= x_max <= x[-1]``; the curve is interpolated
    linearly at exactly ``x_max``.
    """
    k = int(np.searchsorted(x, x_max, side="right"))  # points with x <= x_max
    xs, ys = x[:k], y[:k]
    if xs[-1] < x_max:
        x0, x1, y0, y1 = x[k - 1], x[k], y[k - 1], y[k]
        y_at = y0 + (y1 - y0) * (x_max - x0) / (x1 - x0)
        xs, ys = np.r_[xs, x_max], np.r_[ys, y_at]
    return float(np.sum(np.diff(xs) * (ys[1:] + ys[:-1])) / 2.0)


def aupro(maps: ArrayLike, masks: ArrayLike, fpr_limit: float = 0.3) -> float:
    """Normalised area under the PRO curve up to ``fpr_limit``.

    Args:
        maps: ``(N, H, W)`` anomaly maps, higher = more anomalous.
        masks: ``(N, H, W)`` bool ground truth; regions are 8-connected components per image.
        fpr_limit: upper integration limit of the false-positive rate, in ``(0, 1]``.

    Returns:
        ``(1 / fpr_limit) * integral_0^fpr_limit PRO(FPR) dFPR`` in ``[0, 1]``: 1.0 for a map that
        scores every anomalous pixel above every normal one.

    Raises:
        ValueError: shapes differ, maps not finite, masks all empty or all anomalous, or
            ``fpr_limit`` outside ``(0, 1]``.
    """
    limit = check_fpr_limit(fpr_limit, "aupro")
    m, g = _checked(maps, masks, "aupro")
    fpr, pro = _pro_curve(m, g)
    return area_up_to(fpr, pro, limit) / limit


def check_fpr_limit(fpr_limit: float, func: str) -> float:
    if (
        isinstance(fpr_limit, bool)
        or not isinstance(fpr_limit, (int, float, np.integer, np.floating))
        or not 0.0 < float(fpr_limit) <= 1.0
    ):
        raise ValueError(f"{func}: fpr_limit must be a number in (0, 1], got {fpr_limit!r}; the usual is 0.3")
    return float(fpr_limit)
