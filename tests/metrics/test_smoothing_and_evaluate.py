"""Image scores from smoothed maps, default sigma, and evaluate_maps."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import average_precision_score, roc_auc_score

from refcfa.metrics import (
    METRIC_NAMES,
    aupro,
    default_sigma,
    evaluate_maps,
    f1_max,
    image_auroc,
    smooth_and_max,
    smooth_maps,
)


def test_default_sigma_scales_linearly() -> None:
    assert default_sigma(256) == 4.0
    assert default_sigma(64) == 1.0
    assert default_sigma(512) == 8.0
    assert default_sigma((128, 128)) == 2.0
    assert default_sigma((64, 256)) == pytest.approx(2.0)  # geometric mean side 128
    with pytest.raises(ValueError, match="image_size must be a positive int"):
        default_sigma(0)
    with pytest.raises(ValueError, match="image_size must be a positive int"):
        default_sigma((64,))


def test_smooth_and_max_is_max_of_per_image_gaussian() -> None:
    rng = np.random.default_rng(0)
    maps = rng.random((3, 20, 24))
    scores = smooth_and_max(maps, 2.0)
    expected = [ndimage.gaussian_filter(m, 2.0).max() for m in maps]  # 2-D filter per image
    np.testing.assert_allclose(scores, expected, rtol=1e-12)
    np.testing.assert_array_equal(smooth_and_max(maps, 0), maps.max(axis=(1, 2)))
    # smoothing never mixes images: a spike in image 0 leaves image 1 untouched
    spike = np.zeros((2, 9, 9))
    spike[0, 4, 4] = 1.0
    assert smooth_maps(spike, 1.5)[1].max() == 0.0
    assert scores.shape == (3,) and scores.dtype == np.float64


def test_smoothing_arguments_checked() -> None:
    with pytest.raises(ValueError, match="sigma must be finite and >= 0"):
        smooth_and_max(np.zeros((1, 4, 4)), -1.0)
    with pytest.raises(TypeError, match="sigma must be a number"):
        smooth_and_max(np.zeros((1, 4, 4)), "4")
    with pytest.raises(ValueError, match=r"maps must have shape \(N, H, W\)"):
        smooth_and_max(np.zeros((4, 4)), 1.0)


def _eval_case(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    masks = np.zeros((8, 32, 32), dtype=bool)
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    for i in range(4, 8):
        y, x = rng.integers(4, 24, size=2)
        masks[i, y : y + 6, x : x + 5] = True
    maps = rng.random(masks.shape) + 0.7 * masks
    return maps, masks, labels


def test_evaluate_maps_matches_individual_metrics() -> None:
    maps, masks, labels = _eval_case()
    sigma = 1.5
    result = evaluate_maps(maps, masks, labels, sigma)
    assert tuple(result) == METRIC_NAMES
    smoothed = smooth_maps(maps, sigma)
    scores = smooth_and_max(maps, sigma)
    assert result["image_auroc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert result["f1_max"] == pytest.approx(f1_max(scores, labels), abs=1e-12)
    assert result["pixel_auroc"] == pytest.approx(roc_auc_score(masks.ravel(), smoothed.ravel()), abs=1e-9)
    assert result["pixel_ap"] == pytest.approx(
        average_precision_score(masks.ravel(), smoothed.ravel()), abs=1e-9
    )
    assert result["aupro"] == pytest.approx(aupro(smoothed, masks), abs=1e-12)
    raw = evaluate_maps(maps, masks, labels, sigma, smooth_pixel_maps=False)
    assert raw["pixel_auroc"] == pytest.approx(roc_auc_score(masks.ravel(), maps.ravel()), abs=1e-9)
    assert raw["image_auroc"] == result["image_auroc"]


def test_evaluate_maps_defaults() -> None:
    maps, masks, labels = _eval_case(1)
    by_default = evaluate_maps(maps, masks)  # labels from masks, sigma = default_sigma(32) = 0.5
    explicit = evaluate_maps(maps, masks, labels, default_sigma(32))
    assert by_default == explicit
    assert image_auroc(smooth_and_max(maps, 0.5), labels) == by_default["image_auroc"]


def test_evaluate_maps_refuses_inconsistent_input() -> None:
    maps, masks, labels = _eval_case()
    with pytest.raises(ValueError, match="labels say image 4 is normal"):
        evaluate_maps(maps, masks, np.zeros(8, int) | (np.arange(8) > 4), 1.0)
    with pytest.raises(ValueError, match=r"labels must have shape \(N,\) = \(8,\)"):
        evaluate_maps(maps, masks, labels[:5], 1.0)
    with pytest.raises(ValueError, match="needs both normal and anomalous images; labels contain only 1"):
        evaluate_maps(maps, masks, np.ones(8, int), 1.0)
    with pytest.raises(ValueError, match="masks contain only False"):
        evaluate_maps(maps, np.zeros_like(masks), labels, 1.0)
