"""Evaluation metrics: pure functions on numpy arrays (DESIGN.md section 7).

``image_auroc``, ``pixel_auroc``, ``pixel_ap``, ``f1_max`` (sort-based, ties as scikit-learn),
``aupro`` (exact PRO integration up to an FPR limit), ``smooth_and_max`` / ``default_sigma``
(image scores from maps) and ``evaluate_maps`` (all of them at once).
"""

from refcfa.metrics.aupro import aupro, pro_curve
from refcfa.metrics.evaluate import METRIC_NAMES, evaluate_maps
from refcfa.metrics.ranking import binary_clf_curve, f1_max, image_auroc, pixel_ap, pixel_auroc
from refcfa.metrics.smoothing import default_sigma, smooth_and_max, smooth_maps

__all__ = [
    "METRIC_NAMES",
    "aupro",
    "binary_clf_curve",
    "default_sigma",
    "evaluate_maps",
    "f1_max",
    "image_auroc",
    "pixel_ap",
    "pixel_auroc",
    "pro_curve",
    "smooth_and_max",
    "smooth_maps",
]
