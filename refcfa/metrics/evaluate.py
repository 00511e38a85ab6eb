"""All metrics of one evaluation from anomaly maps, masks and image labels."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from refcfa.metrics._validation import (
    as_binary,
    as_scores,
    check_both_classes,
    check_ndim,
    check_same_shape,
)
from refcfa.metrics.aupro import _pro_curve, area_up_to, check_fpr_limit
from refcfa.metrics.ranking import (
    _ap_from_curve,
    _auroc_from_curve,
    _f1_max_from_curve,
    binary_clf_curve,
)
from refcfa.metrics.smoothing import _smooth, default_sigma

__all__ = ["METRIC_NAMES", "evaluate_maps"]

#: keys of the dict returned by :func:`evaluate_maps`, in order
METRIC_NAMES = ("image_auroc", "pixel_auroc", "aupro", "pixel_ap", "f1_max")


def evaluate_maps(
    maps: ArrayLike,
    masks: ArrayLike,
    labels: ArrayLike | None = None,
    sigma: float | None = None,
    *,
    smooth_pixel_maps: bool = True,
    fpr_limit: float = 0.3,
) -> dict[str, float]:
    """Image and pixel metrics of a set of anomaly maps.

    The maps are Gaussian-smoothed once (``sigma``); the image score is the maximum of the
    smoothed map (:func:`~refcfa.metrics.smoothing.smooth_and_max`). With
    ``smooth_pixel_maps=True`` (default) the pixel metrics are computed on the same smoothed
    maps, so image and pixel metrics judge one anomaly map per image (as DDAD and PatchCore
    evaluate); ``False`` uses the raw maps for the pixel metrics.

    Args:
        maps: ``(N, H, W)`` anomaly maps, higher = more anomalous.
        masks: ``(N, H, W)`` bool ground truth.
        labels: ``(N,)`` 0/1 image labels; ``None`` derives them as "mask not empty". An image
            labelled 0 must have an empty mask; an image labelled 1 may have an empty one.
        sigma: smoothing sigma in pixels; ``None`` = ``default_sigma((H, W))`` (4 at 256).
        smooth_pixel_maps: compute pixel metrics on the smoothed maps.
        fpr_limit: integration limit of AUPRO.

    Returns:
        ``{"image_auroc", "pixel_auroc", "aupro", "pixel_ap", "f1_max"}`` as floats, where
        ``f1_max`` is the image-level F1-max of the image scores against ``labels``.

    Raises:
        ValueError: mismatched shapes, non-finite maps, one class only (images or pixels),
            labels contradicting masks, masks all empty.
    """
    func = "evaluate_maps"
    m = as_scores(maps, "maps", func)
    g = as_binary(masks, "masks", func)
    check_same_shape(m, g, "maps", "masks", func)
    check_ndim(m, 3, "maps", func, "(N, H, W)", "add or squeeze axes, e.g. maps[None] for one image")
    has_defect = g.reshape(g.shape[0], -1).any(axis=1)
    if labels is None:
        y = has_defect
    else:
        y = as_binary(labels, "labels", func)
        if y.shape != (m.shape[0],):
            raise ValueError(
                f"{func}: labels must have shape (N,) = ({m.shape[0]},) to match maps {m.shape}, got {y.shape}"
            )
        bad = np.flatnonzero(~y & has_defect)
        if bad.size:
            raise ValueError(
                f"{func}: labels say image {int(bad[0])} is normal (0) but its mask has anomalous pixels "
                f"({bad.size} such image(s)); fix the labels or the masks"
            )
    check_both_classes(y, "labels", func, "images")
    check_both_classes(g, "masks", func, "pixels")
    limit = check_fpr_limit(fpr_limit, func)

    s = default_sigma((m.shape[1], m.shape[2])) if sigma is None else sigma
    smoothed = _smooth(m, s, func)
    image_scores = smoothed.reshape(smoothed.shape[0], -1).max(axis=1).astype(np.float64)
    pixel_maps = smoothed if smooth_pixel_maps else m

    image_curve = binary_clf_curve(image_scores, y)[:2]
    pixel_curve = binary_clf_curve(pixel_maps.ravel(), g.ravel())[:2]
    fpr, pro = _pro_curve(pixel_maps, g)
    return {
        "image_auroc": _auroc_from_curve(*image_curve),
        "pixel_auroc": _auroc_from_curve(*pixel_curve),
        "aupro": area_up_to(fpr, pro, limit) / limit,
        "pixel_ap": _ap_from_curve(*pixel_curve),
        "f1_max": _f1_max_from_curve(*image_curve),
    }
