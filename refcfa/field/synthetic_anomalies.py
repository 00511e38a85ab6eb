"""DRAEM-style synthetic anomalies on source normal images (DESIGN.md section 5).

A Perlin-noise mask (Perlin 1985; as in DRAEM, Zavrtanik et al. 2021) is filled with a foreign
texture blended at opacity ``α``: ``out = (1 − α·m) · image + α·m · texture`` with ``m`` the binary
mask. No external texture dataset is needed: the texture is procedural (coloured Perlin noise,
stripes, blurred speckle) or another source image rotated, shifted and colour-jittered.

The anomalies are pasted into *images*; their Residual-Evolution Fields are then computed on the
composited images like any other image (never pasted into fields).

Choices (DESIGN.md leaves them open):
- mask area: a fraction drawn uniformly in ``[min_area_frac, max_area_frac]`` (default 1–15 % of
  the image) and realised exactly by keeping the top-ranked noise pixels; a fixed ``threshold``
  is tried first when given;
- opacity ``α ∈ [0.25, 0.9]``: below ~0.25 the change is too faint for a small score network to
  see, which would make the synthetic labels noise;
- a texture that barely differs from the image under the mask (mean |Δ| < 24 grey levels) is
  inverted, so every pasted region is a visible change.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

OPACITY_RANGE = (0.25, 0.9)
MIN_MEAN_CONTRAST = 24.0


def _fade(t: np.ndarray) -> np.ndarray:
    return t * t * t * (t * (t * 6 - 15) + 10)


def perlin_noise_2d(shape: tuple[int, int], res: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Gradient (Perlin) noise, vectorised.

    Args:
        shape: ``(H, W)`` of the output.
        res: ``(ry, rx)`` lattice cells along each axis (any positive ints; need not divide shape).
        rng: the random generator of the lattice gradients.

    Returns:
        ``(H, W)`` float32, roughly in ``[-1, 1]``.
    """
    H, W = int(shape[0]), int(shape[1])
    ry, rx = int(res[0]), int(res[1])
    if H < 1 or W < 1 or ry < 1 or rx < 1:
        raise ValueError(f"perlin_noise_2d: shape and res must be positive, got shape={shape}, res={res}")
    angles = rng.uniform(0.0, 2.0 * np.pi, size=(ry + 1, rx + 1))
    grad = np.stack([np.cos(angles), np.sin(angles)], axis=-1)  # (ry+1, rx+1, 2)
    ys = (np.arange(H) + 0.5) * ry / H
    xs = (np.arange(W) + 0.5) * rx / W
    iy, ix = np.floor(ys).astype(int), np.floor(xs).astype(int)
    fy, fx = (ys - iy)[:, None], (xs - ix)[None, :]
    iy, ix = iy[:, None], ix[None, :]

    def dot(oy: int, ox: int) -> np.ndarray:
        g = grad[iy + oy, ix + ox]  # (H, W, 2)
        return g[..., 0] * (fy - oy) + g[..., 1] * (fx - ox)

    n00, n01, n10, n11 = dot(0, 0), dot(0, 1), dot(1, 0), dot(1, 1)
    uy, ux = _fade(fy), _fade(fx)
    n0 = n00 * (1 - ux) + n01 * ux
    n1 = n10 * (1 - ux) + n11 * ux
    return (np.sqrt(2.0) * (n0 * (1 - uy) + n1 * uy)).astype(np.float32)


def _random_res(shape: tuple[int, int], rng: np.random.Generator, min_cell: int = 8) -> tuple[int, int]:
    """Powers of two per axis with cells of at least ``min_cell`` pixels (DRAEM's scale draw)."""
    res = []
    for size in shape:
        max_log = max(0, int(math.floor(math.log2(max(size // min_cell, 1)))))
        res.append(2 ** int(rng.integers(0, max_log + 1)))
    return res[0], res[1]


def perlin_mask(
    shape: tuple[int, int],
    rng: np.random.Generator,
    threshold: float | None = None,
    min_area_frac: float = 0.01,
    max_area_frac: float = 0.15,
    max_tries: int = 8,
) -> np.ndarray:
    """A non-empty binary Perlin mask covering ``[min_area_frac, max_area_frac]`` of the image.

    With ``threshold``, ``noise > threshold`` is tried on up to ``max_tries`` noise draws; when
    none lands in the area range (or without ``threshold``), an area fraction is drawn uniformly
    in the range and the top-ranked noise pixels are kept.

    Returns:
        ``(H, W)`` bool.
    """
    H, W = int(shape[0]), int(shape[1])
    if not 0.0 < min_area_frac <= max_area_frac <= 1.0:
        raise ValueError(
            f"perlin_mask: expected 0 < min_area_frac <= max_area_frac <= 1, got {min_area_frac}, {max_area_frac}"
        )
    total = H * W
    lo = max(1, math.ceil(min_area_frac * total))
    hi = max(lo, math.floor(max_area_frac * total))
    if threshold is not None:
        for _ in range(max_tries):
            mask = perlin_noise_2d((H, W), _random_res((H, W), rng), rng) > threshold
            if lo <= int(mask.sum()) <= hi:
                return mask
    noise = perlin_noise_2d((H, W), _random_res((H, W), rng), rng)
    count = int(np.clip(round(rng.uniform(min_area_frac, max_area_frac) * total), lo, hi))
    top = np.argpartition(noise.ravel(), total - count)[total - count :]
    mask = np.zeros(total, dtype=bool)
    mask[top] = True
    return mask.reshape(H, W)


# -- textures --------------------------------------------------------------------------------------


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _texture_noise(H: int, W: int, C: int, rng: np.random.Generator) -> np.ndarray:
    """Coloured Perlin noise: each channel its own noise, random contrast and mean."""
    res = (int(rng.integers(2, max(3, H // 4) + 1)), int(rng.integers(2, max(3, W // 4) + 1)))
    chans = []
    for _ in range(C):
        n = perlin_noise_2d((H, W), res, rng)
        chans.append(rng.uniform(40, 215) + rng.uniform(60, 160) * n)
    return _to_uint8(np.stack(chans, axis=-1))


def _texture_stripes(H: int, W: int, C: int, rng: np.random.Generator) -> np.ndarray:
    """Straight stripes at a random angle, period and phase between two random colours."""
    theta = rng.uniform(0, np.pi)
    period = rng.uniform(3.0, max(4.0, min(H, W) / 4))
    yy, xx = np.mgrid[0:H, 0:W]
    wave = np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period + rng.uniform(0, 2 * np.pi))
    t = (wave > 0).astype(np.float64)[..., None] if rng.random() < 0.5 else (0.5 + 0.5 * wave)[..., None]
    c0, c1 = rng.uniform(0, 255, size=C), rng.uniform(0, 255, size=C)
    return _to_uint8(c0 * (1 - t) + c1 * t)


def _texture_speckle(H: int, W: int, C: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform noise blurred by a random Gaussian, rescaled to a random range."""
    import cv2

    x = rng.uniform(0, 1, size=(H, W, C)).astype(np.float32)
    sigma = float(rng.uniform(0.5, 2.5))
    x = cv2.GaussianBlur(x, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    x = x.reshape(H, W, C)
    x = (x - x.min()) / max(float(x.max() - x.min()), 1e-6)
    lo = rng.uniform(0, 128)
    return _to_uint8(lo + x * rng.uniform(64, 255 - lo))


def _texture_from_image(foreign: np.ndarray, H: int, W: int, C: int, rng: np.random.Generator) -> np.ndarray:
    """Another image, rotated by a random angle, shifted and colour-jittered."""
    import cv2

    img = foreign
    if img.shape[:2] != (H, W):
        img = cv2.resize(img, (W, H), interpolation=cv2.INTER_LINEAR).reshape(H, W, -1)
    if img.shape[2] != C:
        img = img.mean(axis=2, keepdims=True) if C == 1 else np.repeat(img[..., :1], C, axis=2)
    angle = float(rng.uniform(0, 360))
    rot = cv2.getRotationMatrix2D((W / 2.0, H / 2.0), angle, 1.0)
    img = cv2.warpAffine(img.astype(np.float32), rot, (W, H), borderMode=cv2.BORDER_REFLECT).reshape(H, W, C)
    img = np.roll(img, (int(rng.integers(0, H)), int(rng.integers(0, W))), axis=(0, 1))
    gain = rng.uniform(0.6, 1.6, size=C)
    bias = rng.uniform(-60, 60, size=C)
    out = img * gain + bias
    if rng.random() < 0.5:
        out = 255.0 - out
    return _to_uint8(out)


_PROCEDURAL = (_texture_noise, _texture_stripes, _texture_speckle)


def _check_image(image: np.ndarray, name: str) -> None:
    if (
        not isinstance(image, np.ndarray)
        or image.dtype != np.uint8
        or image.ndim != 3
        or image.shape[2] not in (1, 3)
    ):
        desc = f"{type(image).__name__} {getattr(image, 'dtype', '')} {getattr(image, 'shape', '')}"
        raise ValueError(f"{name}: expected a uint8 image of shape (H, W, C) with C in (1, 3), got {desc}")


def paste_anomaly(
    image: np.ndarray,
    rng: np.random.Generator,
    foreign: np.ndarray | None = None,
    *,
    mask: np.ndarray | None = None,
    min_area_frac: float = 0.01,
    max_area_frac: float = 0.15,
) -> tuple[np.ndarray, np.ndarray]:
    """Blend a foreign texture into a Perlin mask of ``image``.

    Args:
        image: ``(H, W, C)`` uint8, ``C ∈ {1, 3}``.
        rng: drives the mask, the texture and the opacity.
        foreign: an image (any size, uint8 ``(h, w, c)``) to use as the texture, rotated, shifted
            and colour-jittered; ``None`` draws a procedural texture.
        mask: ``(H, W)`` bool to use instead of a Perlin mask (must be non-empty).

    Returns:
        ``(composited (H, W, C) uint8, mask (H, W) bool)``; pixels outside the mask are untouched.
    """
    _check_image(image, "image")
    H, W, C = image.shape
    if mask is None:
        mask = perlin_mask((H, W), rng, min_area_frac=min_area_frac, max_area_frac=max_area_frac)
    else:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (H, W) or not mask.any():
            raise ValueError(f"mask: expected a non-empty bool mask of shape {(H, W)}, got {mask.shape}")
    if foreign is not None:
        _check_image(foreign, "foreign")
        texture = _texture_from_image(foreign, H, W, C, rng)
    else:
        texture = _PROCEDURAL[int(rng.integers(len(_PROCEDURAL)))](H, W, C, rng)
    inside = image[mask].astype(np.float32)
    if np.abs(texture[mask].astype(np.float32) - inside).mean() < MIN_MEAN_CONTRAST:
        texture = 255 - texture
        if np.abs(texture[mask].astype(np.float32) - inside).mean() < MIN_MEAN_CONTRAST:
            # a mid-grey texture on a mid-grey image: push it away from the image
            texture = np.full_like(texture, 230 if inside.mean() < 128 else 25)
    alpha = float(rng.uniform(*OPACITY_RANGE))
    out = image.copy()
    out[mask] = _to_uint8((1.0 - alpha) * inside + alpha * texture[mask].astype(np.float32))
    return out, mask


def make_synthetic_anomalies(
    images: Sequence[np.ndarray],
    n: int,
    seed: int,
    *,
    foreign_prob: float = 0.5,
    min_area_frac: float = 0.01,
    max_area_frac: float = 0.15,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``n`` synthetic anomalies pasted into (copies of) normal ``images``; deterministic in ``seed``.

    Base images cycle through a seeded permutation of ``images`` (each used before any repeats);
    with probability ``foreign_prob`` (and at least two images) the texture is another of the
    images, otherwise procedural. Item ``i`` depends only on ``(seed, i)`` and the inputs.

    Returns:
        ``(images, masks)``: lists of ``n`` uint8 ``(H, W, C)`` images and ``(H, W)`` bool masks.
    """
    if len(images) == 0:
        raise ValueError("images: expected at least one normal image to paste synthetic anomalies into")
    if n < 0:
        raise ValueError(f"n: expected a non-negative number of synthetic anomalies, got {n}")
    for i, im in enumerate(images):
        _check_image(im, f"images[{i}]")
    order = np.random.default_rng([seed, 0x5EED]).permutation(len(images))
    out_images, out_masks = [], []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        base_idx = int(order[i % len(images)])
        foreign = None
        if len(images) > 1 and rng.random() < foreign_prob:
            j = int(rng.integers(len(images) - 1))
            foreign = images[j + (j >= base_idx)]
        img, mask = paste_anomaly(
            images[base_idx], rng, foreign, min_area_frac=min_area_frac, max_area_frac=max_area_frac
        )
        out_images.append(img)
        out_masks.append(mask)
    return out_images, out_masks
