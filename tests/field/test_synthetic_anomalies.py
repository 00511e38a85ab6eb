"""DRAEM-style synthetic anomalies: Perlin noise, masks, pasting, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from refcfa.field.synthetic_anomalies import (
    make_synthetic_anomalies,
    paste_anomaly,
    perlin_mask,
    perlin_noise_2d,
)


def _images(n=4, size=32, C=3, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    base = 128 + 40 * np.sin(xx / 3.0) * np.cos(yy / 5.0)
    return [
        np.clip(base[..., None] + rng.normal(0, 6, (size, size, C)), 0, 255).astype(np.uint8)
        for _ in range(n)
    ]


def test_perlin_noise_is_smooth_bounded_and_deterministic():
    a = perlin_noise_2d((40, 56), (4, 7), np.random.default_rng(0))
    b = perlin_noise_2d((40, 56), (4, 7), np.random.default_rng(0))
    assert a.shape == (40, 56) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert np.abs(a).max() <= 1.0 and a.std() > 0.1
    # smooth and continuous across lattice cells (white noise: mean |diff| ~ 1.13 std)
    s = perlin_noise_2d((64, 64), (4, 4), np.random.default_rng(3))
    for axis in (0, 1):
        steps = np.abs(np.diff(s, axis=axis))
        assert steps.mean() < 0.2 * s.std() and steps.max() < 0.5
    # any shape, not just multiples of res
    assert perlin_noise_2d((17, 9), (3, 2), np.random.default_rng(1)).shape == (17, 9)
    with pytest.raises(ValueError, match="positive"):
        perlin_noise_2d((8, 8), (0, 2), np.random.default_rng(0))


@pytest.mark.parametrize("threshold", [None, 0.35])
def test_perlin_mask_area_is_in_range(threshold):
    rng = np.random.default_rng(2)
    for _ in range(20):
        m = perlin_mask((48, 40), rng, threshold=threshold, min_area_frac=0.02, max_area_frac=0.15)
        assert m.dtype == bool and m.shape == (48, 40)
        assert np.ceil(0.02 * 48 * 40) <= m.sum() <= 0.15 * 48 * 40


@pytest.mark.parametrize("C", [1, 3])
@pytest.mark.parametrize("use_foreign", [False, True])
def test_paste_changes_only_the_masked_pixels(C, use_foreign):
    images = _images(C=C)
    rng = np.random.default_rng(5)
    for _ in range(10):
        foreign = images[1] if use_foreign else None
        out, mask = paste_anomaly(images[0], rng, foreign)
        assert out.dtype == np.uint8 and out.shape == images[0].shape
        assert 0.01 <= mask.mean() <= 0.15 + 1e-9
        np.testing.assert_array_equal(out[~mask], images[0][~mask])
        diff = np.abs(out.astype(int) - images[0].astype(int))[mask]
        assert diff.mean() > 5  # a visible change: opacity >= 0.25 of a contrasting texture
        assert (diff.max(axis=-1) > 0).mean() > 0.5


def test_paste_with_a_given_mask_and_refusals():
    img = _images(1)[0]
    mask = np.zeros(img.shape[:2], bool)
    mask[4:10, 5:9] = True
    out, m = paste_anomaly(img, np.random.default_rng(0), mask=mask)
    np.testing.assert_array_equal(m, mask)
    np.testing.assert_array_equal(out[~mask], img[~mask])
    with pytest.raises(ValueError, match="non-empty"):
        paste_anomaly(img, np.random.default_rng(0), mask=np.zeros_like(mask))
    with pytest.raises(ValueError, match="uint8"):
        paste_anomaly(img.astype(np.float32), np.random.default_rng(0))


def test_make_synthetic_anomalies_is_deterministic_per_seed():
    images = _images(5)
    originals = [im.copy() for im in images]
    a_imgs, a_masks = make_synthetic_anomalies(images, 12, seed=7)
    b_imgs, b_masks = make_synthetic_anomalies(images, 12, seed=7)
    c_imgs, _ = make_synthetic_anomalies(images, 12, seed=8)
    assert len(a_imgs) == len(a_masks) == 12
    for x, y in zip(a_imgs + a_masks, b_imgs + b_masks, strict=True):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a_imgs, c_imgs, strict=True))
    for im, orig in zip(images, originals, strict=True):  # inputs untouched
        np.testing.assert_array_equal(im, orig)
    # every output is one of the inputs with changes inside its mask only, each base used
    bases = set()
    for im, m in zip(a_imgs, a_masks, strict=True):
        assert m.any()
        match = [i for i, orig in enumerate(images) if np.array_equal(im[~m], orig[~m])]
        assert match
        bases.add(match[0])
    assert bases == set(range(5))
    # a prefix of a longer run is the shorter run
    d_imgs, _ = make_synthetic_anomalies(images, 5, seed=7)
    for x, y in zip(d_imgs, a_imgs[:5], strict=True):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match="at least one"):
        make_synthetic_anomalies([], 3, seed=0)
