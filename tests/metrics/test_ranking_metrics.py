"""AUROC, AP and F1-max against scikit-learn on random data with ties."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from refcfa.metrics import binary_clf_curve, f1_max, image_auroc, pixel_ap, pixel_auroc


def _random_case(seed: int, n: int, n_levels: int | None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < rng.uniform(0.1, 0.6)
    labels[:2] = [True, False]  # both classes present
    scores = rng.normal(size=n) + 1.2 * labels
    if n_levels is not None:  # quantise: many ties, also across classes
        scores = np.round(scores * n_levels / 4) / n_levels
    return scores, labels


def _sklearn_f1_max(scores: np.ndarray, labels: np.ndarray) -> float:
    precision, recall, _ = precision_recall_curve(labels, scores)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return float(f1.max())


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("n_levels", [None, 3, 12])
def test_auroc_ap_f1_match_sklearn(seed: int, n_levels: int | None) -> None:
    scores, labels = _random_case(seed, 500, n_levels)
    assert image_auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)
    assert f1_max(scores, labels) == pytest.approx(_sklearn_f1_max(scores, labels), abs=1e-9)
    maps, masks = scores.reshape(5, 10, 10), labels.reshape(5, 10, 10)
    assert pixel_auroc(maps, masks) == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)
    assert pixel_ap(maps, masks) == pytest.approx(average_precision_score(labels, scores), abs=1e-9)


def test_float32_maps_and_int_labels_accepted() -> None:
    scores, labels = _random_case(7, 400, 5)
    maps = scores.astype(np.float32).reshape(4, 10, 10)
    masks = labels.astype(np.uint8).reshape(4, 10, 10)
    expected = roc_auc_score(labels, scores.astype(np.float32))
    assert pixel_auroc(maps, masks) == pytest.approx(expected, abs=1e-9)


def test_known_values() -> None:
    # all positives above all negatives, one tie between classes
    assert image_auroc([0.1, 0.2, 0.9, 0.8], [0, 0, 1, 1]) == 1.0
    assert image_auroc([0.9, 0.8, 0.1, 0.2], [0, 0, 1, 1]) == 0.0
    assert image_auroc([0.5, 0.5], [0, 1]) == 0.5
    # 2 positives, best threshold 0.7 keeps both with one false positive: F1 = 4/5
    assert f1_max([0.9, 0.8, 0.7, 0.1], [1, 0, 1, 0]) == pytest.approx(0.8)
    # AP = (1/2)*1 + (1/2)*(2/3)
    assert pixel_ap(
        np.array([0.9, 0.8, 0.7, 0.1]).reshape(1, 2, 2), np.array([1, 0, 1, 0]).reshape(1, 2, 2)
    ) == (pytest.approx(0.5 + 1 / 3))


def test_binary_clf_curve_merges_ties() -> None:
    fps, tps, thr = binary_clf_curve(np.array([0.3, 0.3, 0.9, 0.1]), np.array([True, False, True, False]))
    np.testing.assert_array_equal(thr, [0.9, 0.3, 0.1])
    np.testing.assert_array_equal(tps, [1, 2, 2])
    np.testing.assert_array_equal(fps, [0, 1, 2])


@pytest.mark.parametrize("only", [0, 1])
def test_one_class_refused(only: int) -> None:
    with pytest.raises(
        ValueError, match=f"image_auroc needs both normal and anomalous images; labels contain only {only}"
    ):
        image_auroc([0.1, 0.4, 0.3], [only] * 3)
    with pytest.raises(ValueError, match="f1_max needs both"):
        f1_max([0.1, 0.4, 0.3], [only] * 3)
    with pytest.raises(
        ValueError, match="pixel_auroc needs both normal and anomalous pixels; masks contain only"
    ):
        pixel_auroc(np.zeros((2, 3, 3)), np.full((2, 3, 3), bool(only)))
    with pytest.raises(ValueError, match="pixel_ap needs both"):
        pixel_ap(np.zeros((2, 3, 3)), np.full((2, 3, 3), bool(only)))


def test_shape_mismatch_names_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"scores has shape \(3,\) but labels has shape \(4,\)"):
        image_auroc([0.1, 0.2, 0.3], [0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"maps has shape \(2, 4, 4\) but masks has shape \(2, 4, 5\)"):
        pixel_auroc(np.zeros((2, 4, 4)), np.zeros((2, 4, 5), bool))


def test_bad_values_refused() -> None:
    with pytest.raises(ValueError, match="scores contain 1 NaN"):
        image_auroc([0.1, np.nan, 0.3], [0, 1, 0])
    with pytest.raises(ValueError, match="maps contain 0 NaN and 1 infinite"):
        pixel_auroc(np.array([[[0.1, np.inf]]]), np.array([[[True, False]]]))
    with pytest.raises(ValueError, match="labels must hold only 0/1.*labels > 0"):
        image_auroc([0.1, 0.2], [0, 255])
    with pytest.raises(ValueError, match=r"maps must have shape \(N, H, W\)"):
        pixel_auroc(np.zeros((4, 4)), np.eye(4, dtype=bool))
    with pytest.raises(ValueError, match=r"scores must have shape \(N,\).*ravel"):
        f1_max(np.zeros((2, 2)), np.eye(2))
    with pytest.raises(TypeError, match="scores must be a real numeric array"):
        image_auroc(["a", "b"], [0, 1])
    with pytest.raises(ValueError, match="scores is empty"):
        image_auroc([], [])
