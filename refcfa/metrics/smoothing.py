"""Image scores from anomaly maps: the maximum of the Gaussian-smoothed map.

The smoothing width follows the usual MVTec practice (PatchCore, DDAD, anomalib: ``sigma = 4`` at
256x256) and scales linearly with the image side, so the same physical blur is applied at every
resolution: ``default_sigma(image_size) = 4 * image_size / 256`` (1.0 at 64, 8.0 at 512).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

from refcfa.metrics._validation import as_scores, check_ndim

__all__ = ["default_sigma", "smooth_maps", "smooth_and_max"]

#: sigma at the reference side ``REFERENCE_SIZE`` (pixels)
REFERENCE_SIGMA = 4.0
REFERENCE_SIZE = 256


def default_sigma(image_size: int | tuple[int, int]) -> float:
    """Gaussian sigma (pixels) for maps of side ``image_size``: ``4 * image_size / 256``.

    Args:
        image_size: the side of square maps, or ``(H, W)``; for non-square maps the geometric
            mean ``sqrt(H * W)`` is used as the side.
    """
    if isinstance(image_size, tuple):
        if len(image_size) != 2 or not all(_is_positive_int(s) for s in image_size):
            raise ValueError(
                f"default_sigma: image_size must be a positive int or (H, W), got {image_size!r}"
            )
        side = math.sqrt(image_size[0] * image_size[1])
    elif _is_positive_int(image_size):
        side = float(image_size)
    else:
        raise ValueError(f"default_sigma: image_size must be a positive int or (H, W), got {image_size!r}")
    return REFERENCE_SIGMA * side / REFERENCE_SIZE


def _is_positive_int(x: object) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool) and x > 0


def _check_sigma(sigma: float, func: str) -> float:
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.floating, np.integer)):
        raise TypeError(f"{func}: sigma must be a number, got {type(sigma).__name__}")
    if not math.isfinite(sigma) or sigma < 0:
        raise ValueError(f"{func}: sigma must be finite and >= 0 (0 = no smoothing), got {sigma!r}")
    return float(sigma)


def _smooth(maps: ArrayLike, sigma: float, func: str) -> np.ndarray:
    m = as_scores(maps, "maps", func)
    check_ndim(m, 3, "maps", func, "(N, H, W)", "use maps[None] for a single map")
    s = _check_sigma(sigma, func)
    if s == 0.0:
        return m
    return ndimage.gaussian_filter(m, sigma=(0.0, s, s), mode="reflect", truncate=4.0)


def smooth_maps(maps: ArrayLike, sigma: float) -> np.ndarray:
    """Gaussian-smooth each map over its two spatial axes.

    Args:
        maps: ``(N, H, W)`` anomaly maps.
        sigma: standard deviation in pixels; 0 returns the maps unchanged (as float).

    Returns:
        ``(N, H, W)`` smoothed maps (``scipy.ndimage.gaussian_filter``, ``mode="reflect"``,
        kernel truncated at 4 sigma), the dtype of ``maps`` if floating, else float64.
    """
    return _smooth(maps, sigma, "smooth_maps")


def smooth_and_max(maps: ArrayLike, sigma: float) -> np.ndarray:
    """Image anomaly scores: the maximum of each Gaussian-smoothed map.

    Args:
        maps: ``(N, H, W)`` anomaly maps.
        sigma: smoothing sigma in pixels (see :func:`default_sigma`); 0 = plain maximum.

    Returns:
        ``(N,)`` float64 image scores.
    """
    smoothed = _smooth(maps, sigma, "smooth_and_max")
    return smoothed.reshape(smoothed.shape[0], -1).max(axis=1).astype(np.float64)
