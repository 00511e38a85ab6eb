"""AUPRO against hand-computed values and an independent per-threshold implementation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.integrate import trapezoid

from refcfa.metrics import aupro, pro_curve


def reference_aupro(
    maps: np.ndarray, masks: np.ndarray, thresholds: np.ndarray, fpr_limit: float = 0.3
) -> float:
    """Straightforward PRO: one pass over the images per threshold, one region at a time."""
    regions = []
    for i in range(len(masks)):
        lab, n = ndimage.label(masks[i], structure=np.ones((3, 3)))
        regions += [(i, lab == k) for k in range(1, n + 1)]
    normal = ~masks
    points = [(0.0, 0.0), (1.0, 1.0)]
    for t in thresholds:
        pred = maps >= t
        fpr = np.sum(pred & normal) / np.sum(normal)
        pro = np.mean([np.sum(pred[i] & region) / np.sum(region) for i, region in regions])
        points.append((fpr, pro))
    x, y = np.array(sorted(points)).T
    below = x <= fpr_limit
    if below.all():
        return trapezoid(y, x) / fpr_limit
    above = np.flatnonzero(~below)[0]
    x0, y0, x1, y1 = x[below][-1], y[below][-1], x[above], y[above]
    y_lim = y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0)
    return trapezoid(np.r_[y[below], y_lim], np.r_[x[below], fpr_limit]) / fpr_limit


def blob_case(seed: int, n: int = 6, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=(n, size, size)), sigma=(0, 2.5, 2.5))
    masks = field > np.quantile(field, 0.93)
    masks[: n // 3] = False  # some normal images
    maps = ndimage.gaussian_filter(rng.normal(size=masks.shape), sigma=(0, 1, 1)) + 0.8 * masks
    return maps, masks


def test_perfect_and_inverse_maps() -> None:
    _, masks = blob_case(0)
    perfect = masks.astype(float)
    assert aupro(perfect, masks) == 1.0
    assert aupro(1.0 - perfect, masks) == 0.0
    assert aupro(perfect + 0.01 * np.random.default_rng(1).random(masks.shape), masks) == 1.0


def test_hand_computed_curve() -> None:
    # one 1-pixel region, three normal pixels; the top score is a normal pixel:
    # curve (0,0) (1/3,0) (1/3,1) (2/3,1) (1,1)
    maps = np.array([[[0.5, 1.0, 0.2, 0.1]]])
    masks = np.array([[[True, False, False, False]]])
    fpr, pro = pro_curve(maps, masks)
    np.testing.assert_allclose(fpr, [0, 1 / 3, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(pro, [0, 0, 1, 1, 1])
    assert aupro(maps, masks, fpr_limit=0.3) == 0.0
    assert aupro(maps, masks, fpr_limit=0.5) == pytest.approx((0.5 - 1 / 3) / 0.5)
    assert aupro(maps, masks, fpr_limit=1.0) == pytest.approx(2 / 3)


def test_interpolates_at_the_limit() -> None:
    # region pixel ranks second: the curve rises from (0, 0) to (1/2, 1) in one linear segment
    maps = np.array([[[1.0, 0.9, 0.1]]])
    masks = np.array([[[False, True, False]]])
    # curve (0,0) (1/2,0) (1/2,1) (1,1): PRO(FPR <= 0.3) = 0
    assert aupro(maps, masks) == 0.0
    # tie of the normal and the anomalous pixel: one threshold, a straight segment (0,0)-(1/2,1)
    maps = np.array([[[0.9, 0.9, 0.1]]])
    # area under y = 2x on [0, 0.3] = 0.09, / 0.3
    assert aupro(maps, masks) == pytest.approx(0.3)


def test_regions_are_8_connected_per_image() -> None:
    masks = np.zeros((2, 4, 4), dtype=bool)
    masks[0, 0, 0] = masks[0, 1, 1] = masks[0, 1, 2] = True  # one 8-connected region of 3 pixels
    masks[1, 0, 0] = True  # same place in image 1: a separate 1-pixel region
    maps = np.zeros(masks.shape)
    maps[0, 0, 0] = 1.0  # finds 1/3 of the first region, none of the second
    fpr, pro = pro_curve(maps, masks)
    # 4-connectivity: mean(1, 0, 0) = 1/3; regions merged across images: 1/4; correct: (1/3 + 0) / 2
    assert pro[1] == pytest.approx((1 / 3 + 0) / 2)
    assert fpr[1] == 0.0


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_exact_reference_with_ties(seed: int) -> None:
    maps, masks = blob_case(seed, n=4, size=16)
    maps = np.round(maps * 8) / 8  # ties across normal and anomalous pixels
    thresholds = np.unique(maps)
    for limit in (0.05, 0.3, 1.0):
        assert aupro(maps, masks, limit) == pytest.approx(
            reference_aupro(maps, masks, thresholds, limit), abs=1e-9
        )


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_matches_reference_on_threshold_grid(seed: int) -> None:
    maps, masks = blob_case(seed)
    thresholds = np.quantile(maps, np.linspace(0, 1, 400))
    expected = reference_aupro(maps, masks, thresholds)
    value = aupro(maps, masks)
    assert 0.2 < value < 0.99
    assert value == pytest.approx(expected, abs=1e-2)


def test_degenerate_inputs_refused() -> None:
    maps = np.zeros((2, 3, 3))
    with pytest.raises(ValueError, match="aupro needs at least one anomalous region; masks are all empty"):
        aupro(maps, np.zeros((2, 3, 3), bool))
    with pytest.raises(ValueError, match="masks are all True"):
        aupro(maps, np.ones((2, 3, 3), bool))
    with pytest.raises(ValueError, match=r"maps has shape \(2, 3, 3\) but masks has shape \(2, 3, 4\)"):
        aupro(maps, np.ones((2, 3, 4), bool))
    with pytest.raises(ValueError, match="fpr_limit must be a number in"):
        aupro(maps, np.eye(3, dtype=bool)[None].repeat(2, 0), fpr_limit=0.0)
    bad = maps.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="maps contain 1 NaN"):
        aupro(bad, np.eye(3, dtype=bool)[None].repeat(2, 0))
