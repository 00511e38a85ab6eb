"""Threshold-free ranking metrics: AUROC, average precision, F1-max.

All three are read off one sort of the scores (descending), with tied scores merged into a
single threshold, as scikit-learn's ``_binary_clf_curve`` does:

* ``fps[i], tps[i]``: false/true positives when everything with ``score >= thresholds[i]`` is
  called anomalous, ``thresholds`` the distinct scores in decreasing order.
* AUROC: trapezoidal area under ``(FPR, TPR)`` from ``(0, 0)`` — equals ``roc_auc_score``
  (a tie between a positive and a negative counts one half).
* AP: ``sum_i (recall_i - recall_{i-1}) * precision_i`` — equals ``average_precision_score``
  (step-wise, no interpolation).
* F1-max: ``max_i 2 tp_i / (tp_i + fp_i + P)`` over the same thresholds.

Each metric needs both classes; one class only raises ``ValueError`` (scikit-learn returns NaN
or warns; here a silent NaN in a results table is the worse failure).
"""

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

__all__ = ["image_auroc", "pixel_auroc", "pixel_ap", "f1_max", "binary_clf_curve"]


def binary_clf_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts of false and true positives at every distinct threshold.

    Args:
        scores: ``(P,)`` finite scores, higher = more anomalous.
        labels: ``(P,)`` bool, True = anomalous.

    Returns:
        ``fps, tps`` ``(T,)`` int64 and ``thresholds`` ``(T,)``, the distinct scores in decreasing
        order; entry ``i`` counts the samples with ``score >= thresholds[i]``.
    """
    order = np.argsort(scores)[::-1]
    sorted_scores = scores[order]
    # last index of each run of equal scores: ties form one threshold
    last = np.r_[np.flatnonzero(np.diff(sorted_scores)), sorted_scores.size - 1]
    tps = np.cumsum(labels[order], dtype=np.int64)[last]
    fps = last + 1 - tps
    return fps, tps, sorted_scores[last]


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1])) / 2.0)


def _auroc_from_curve(fps: np.ndarray, tps: np.ndarray) -> float:
    fpr = np.r_[0, fps] / fps[-1]
    tpr = np.r_[0, tps] / tps[-1]
    return _trapezoid(tpr, fpr)


def _ap_from_curve(fps: np.ndarray, tps: np.ndarray) -> float:
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _f1_max_from_curve(fps: np.ndarray, tps: np.ndarray) -> float:
    return float(np.max(2.0 * tps / (tps + fps + tps[-1])))


def _vectors(
    scores: ArrayLike, labels: ArrayLike, func: str, unit: str = "images"
) -> tuple[np.ndarray, np.ndarray]:
    s = as_scores(scores, "scores", func)
    y = as_binary(labels, "labels", func)
    check_same_shape(s, y, "scores", "labels", func)
    check_ndim(s, 1, "scores", func, "(N,)", "pass flattened arrays (x.ravel()) for pixel-level scores")
    check_both_classes(y, "labels", func, unit)
    return s, y


def _pixels(maps: ArrayLike, masks: ArrayLike, func: str) -> tuple[np.ndarray, np.ndarray]:
    m = as_scores(maps, "maps", func)
    g = as_binary(masks, "masks", func)
    check_same_shape(m, g, "maps", "masks", func)
    check_ndim(m, 3, "maps", func, "(N, H, W)", "add or squeeze axes, e.g. maps[None] for one image")
    check_both_classes(g, "masks", func, "pixels")
    return m.ravel(), g.ravel()


def image_auroc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Area under the ROC curve of image scores.

    Args:
        scores: ``(N,)`` image anomaly scores, higher = more anomalous.
        labels: ``(N,)`` 0/1 or bool, 1 = anomalous image.

    Returns:
        AUROC in ``[0, 1]``, identical to ``sklearn.metrics.roc_auc_score`` (ties count 1/2).

    Raises:
        ValueError: shapes differ, scores are not finite, or labels hold one class only.
    """
    s, y = _vectors(scores, labels, "image_auroc")
    return _auroc_from_curve(*binary_clf_curve(s, y)[:2])


def pixel_auroc(maps: ArrayLike, masks: ArrayLike) -> float:
    """Area under the ROC curve over all pixels of all images.

    Args:
        maps: ``(N, H, W)`` anomaly maps.
        masks: ``(N, H, W)`` bool ground truth, True = anomalous pixel.

    Returns:
        AUROC of the flattened pixels (as ``roc_auc_score(masks.ravel(), maps.ravel())``).
    """
    s, y = _pixels(maps, masks, "pixel_auroc")
    return _auroc_from_curve(*binary_clf_curve(s, y)[:2])


def pixel_ap(maps: ArrayLike, masks: ArrayLike) -> float:
    """Average precision over all pixels of all images.

    Args:
        maps: ``(N, H, W)`` anomaly maps.
        masks: ``(N, H, W)`` bool ground truth.

    Returns:
        AP of the flattened pixels, identical to ``sklearn.metrics.average_precision_score``.
    """
    s, y = _pixels(maps, masks, "pixel_ap")
    return _ap_from_curve(*binary_clf_curve(s, y)[:2])


def f1_max(scores: ArrayLike, labels: ArrayLike) -> float:
    """Best F1 score over all thresholds ``score >= t`` (t ranging over the distinct scores).

    Args:
        scores: ``(P,)`` scores; for pixel-level F1-max pass ``maps.ravel()``.
        labels: ``(P,)`` 0/1 or bool; for pixel level ``masks.ravel()``.

    Returns:
        ``max_t 2 TP / (2 TP + FP + FN)``.
    """
    s, y = _vectors(scores, labels, "f1_max", unit="samples")
    return _f1_max_from_curve(*binary_clf_curve(s, y)[:2])
