"""A synthetic domain-shift dataset: one woven texture, two acquisitions, five defect types.

``make_synthetic`` writes an MVTec-layout dataset with two categories:

* ``source_texture`` — a woven fabric: two thread families (sinusoids along two near-orthogonal
  directions, the weft at 1.7x the warp's frequency) with a smooth coordinate warp (waviness),
  fibre noise and slow shading, coloured beige. Each image draws its own phases, an orientation
  jitter (about 2 degrees), a frequency jitter (about 3 %) and a warp field, so the normals form a
  learnable distribution rather than one repeated picture.
* ``target_texture`` — the same material seen by another camera: the texture zoomed out (1.35x
  the thread frequency), an illumination gradient of random direction, lower contrast with a
  gamma of 0.8, a warm colour cast, a slight optical blur (sigma 0.6 px at 64 px, scaled with the
  size) and sensor noise. The defects are placed in the scene and then imaged, so the blur
  softens their border by about a pixel; masks are the scene's (exact before the blur).

Defect types (test only, in turn): ``scratch`` (a thin, bright, curved streak that replaces the
weave), ``crack`` (a dark, jagged tear along a random walk), ``stain`` (an irregular blob where
the weave is smeared out and the colour browner), ``hole`` (threads missing: a dark backing with
faint broken threads) and ``misweave`` (a patch woven at another angle and frequency: same
intensity statistics, different structure). A defect changes pixels inside its mask only; masks
cover roughly 1.5-15 % of the image (at least ``max(30, 0.012 * size**2)`` pixels) and are written
0/255 to ``ground_truth/<defect>/<stem>_mask.png``.

Every image draws from its own ``numpy.random.default_rng([seed, domain, split, index])``, so a
seed gives bit-identical files, whatever the other counts are.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from refcfa.errors import DatasetError

SOURCE = "source_texture"
TARGET = "target_texture"
DEFECT_TYPES: tuple[str, ...] = ("scratch", "crack", "stain", "hole", "misweave")

_BASE_FREQ = 7.0  # warp threads per image width (source)
_BASE_ANGLE = math.radians(20.0)
_TINT = np.array([1.0, 0.88, 0.70], dtype=np.float32)  # beige fabric (RGB)
_TARGET_ZOOM = 1.35
_TARGET_CAST = np.array([1.06, 0.97, 0.82], dtype=np.float32)
_TARGET_GAMMA = 0.8
_TARGET_CONTRAST = 0.8
_SPLIT_IDS = {"train": 0, "test_good": 1, "test_defect": 2}


# ------------------------------------------------------------------------------ texture


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Value noise: a ``(cells+1)^2`` Gaussian grid, bicubically upsampled to ``(size, size)``, std ~1."""
    grid = rng.standard_normal((cells + 1, cells + 1)).astype(np.float32)
    field = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
    return (field - field.mean()) / (field.std() + 1e-6)


def _weave(
    size: int, rng: np.random.Generator, freq: float, angle: float, warp: np.ndarray | None = None
) -> np.ndarray:
    """Woven height field in ``[0, 1]``, ``float32 (size, size)``."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if warp is None:
        warp = 0.018 * _smooth_noise(rng, size, 3)
    c, s = math.cos(angle), math.sin(angle)
    u = xx * c + yy * s + warp
    v = -xx * s + yy * c - 0.7 * warp
    phase_u, phase_v = rng.uniform(0.0, 2.0 * math.pi, size=2)
    warp_threads = np.sin(2.0 * math.pi * freq * u + phase_u)
    weft_threads = np.sin(2.0 * math.pi * 1.7 * freq * v + phase_v)
    # Over/under: the warp shows where the weft dips, giving a basket-like cell pattern.
    height = 0.5 + 0.22 * warp_threads + 0.12 * weft_threads * (0.6 + 0.4 * warp_threads)
    height += 0.035 * _smooth_noise(rng, size, max(4, size // 4))  # fibre noise
    height += 0.05 * _smooth_noise(rng, size, 2)  # slow shading
    return np.clip(height, 0.0, 1.0).astype(np.float32)


def _colourise(height: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``float32 (H, W, 3)`` RGB in ``[0, 1]`` from a height field, with a faint per-channel mottle."""
    base = 0.18 + 0.72 * height
    rgb = base[:, :, None] * _TINT[None, None, :]
    mottle = 0.015 * _smooth_noise(rng, height.shape[0], 5)
    return np.clip(rgb + mottle[:, :, None], 0.0, 1.0).astype(np.float32)


def _texture(size: int, rng: np.random.Generator, zoom: float) -> tuple[np.ndarray, float, float]:
    freq = _BASE_FREQ * zoom * (1.0 + 0.03 * float(rng.standard_normal()))
    angle = _BASE_ANGLE + math.radians(2.0) * float(rng.standard_normal())
    return _colourise(_weave(size, rng, freq, angle), rng), freq, angle


# ------------------------------------------------------------------------------ defects


def _blend(image: np.ndarray, content: np.ndarray, mask: np.ndarray, strength: float) -> np.ndarray:
    """Blend ``content`` into ``image`` inside ``mask`` only (a soft edge that stays inside)."""
    m = mask.astype(np.float32)
    soft = cv2.GaussianBlur(m, (0, 0), 0.8) * m
    alpha = np.clip(1.6 * soft, 0.0, 1.0) * strength
    return image * (1.0 - alpha[:, :, None]) + content * alpha[:, :, None]


def _curve_points(rng: np.random.Generator, size: int, length: float, jagged: bool) -> np.ndarray:
    start = rng.uniform(0.2, 0.8, size=2) * size
    heading = rng.uniform(0.0, 2.0 * math.pi)
    n = 24
    step = length / n
    turn = rng.normal(0.0, 0.05) if not jagged else 0.0
    points = [start]
    for _ in range(n):
        heading += turn + (rng.normal(0.0, 0.55) if jagged else rng.normal(0.0, 0.04))
        points.append(points[-1] + step * np.array([math.cos(heading), math.sin(heading)]))
    return np.round(np.array(points) * 16).astype(np.int32)  # 4 fractional bits for cv2


def _line_mask(rng: np.random.Generator, size: int, width: int, jagged: bool) -> np.ndarray:
    mask = np.zeros((size, size), dtype=np.uint8)
    points = _curve_points(rng, size, rng.uniform(0.45, 0.7) * size, jagged)
    cv2.polylines(mask, [points], False, 1, thickness=width, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def _blob_mask(rng: np.random.Generator, size: int, radius: float, roughness: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cy, cx = rng.uniform(0.25, 0.75, size=2) * size
    ratio = rng.uniform(0.6, 1.0)
    theta = rng.uniform(0.0, math.pi)
    dx, dy = xx - cx, yy - cy
    a = (dx * math.cos(theta) + dy * math.sin(theta)) / radius
    b = (-dx * math.sin(theta) + dy * math.cos(theta)) / (radius * ratio)
    field = np.sqrt(a * a + b * b) + roughness * _smooth_noise(rng, size, 6)
    return field < 1.0


def _scratch(
    image: np.ndarray, rng: np.random.Generator, size: int, ctx: dict
) -> tuple[np.ndarray, np.ndarray]:
    mask = _line_mask(rng, size, max(2, round(size / 24)), jagged=False)
    grain = _smooth_noise(rng, size, max(4, size // 3))[:, :, None]
    content = np.clip(0.86 + 0.05 * grain, 0.0, 1.0) * np.array([1.0, 0.98, 0.94], np.float32)
    return _blend(image, content, mask, 0.8), mask


def _crack(
    image: np.ndarray, rng: np.random.Generator, size: int, ctx: dict
) -> tuple[np.ndarray, np.ndarray]:
    mask = _line_mask(rng, size, max(2, round(size / 20)), jagged=True)
    shifted = np.roll(image, shift=(round(size / 16), round(size / 24)), axis=(0, 1))
    content = 0.35 * shifted
    return _blend(image, content, mask, 0.9), mask


def _stain(
    image: np.ndarray, rng: np.random.Generator, size: int, ctx: dict
) -> tuple[np.ndarray, np.ndarray]:
    mask = _blob_mask(rng, size, rng.uniform(0.11, 0.17) * size, roughness=0.25)
    smeared = cv2.GaussianBlur(image, (0, 0), max(1.5, size / 20))
    content = smeared * np.array([0.82, 0.70, 0.55], np.float32)
    return _blend(image, content, mask, 0.85), mask


def _hole(image: np.ndarray, rng: np.random.Generator, size: int, ctx: dict) -> tuple[np.ndarray, np.ndarray]:
    mask = _blob_mask(rng, size, rng.uniform(0.08, 0.12) * size, roughness=0.15)
    threads = _weave(size, rng, ctx["freq"] * 0.5, ctx["angle"] + math.pi / 2)
    content = (0.10 + 0.22 * threads**3)[:, :, None] * _TINT[None, None, :]
    return _blend(image, content, mask, 0.95), mask


def _misweave(
    image: np.ndarray, rng: np.random.Generator, size: int, ctx: dict
) -> tuple[np.ndarray, np.ndarray]:
    mask = _blob_mask(rng, size, rng.uniform(0.13, 0.19) * size, roughness=0.1)
    angle = ctx["angle"] + math.radians(rng.uniform(35.0, 60.0)) * rng.choice([-1.0, 1.0])
    content = _colourise(_weave(size, rng, ctx["freq"] * rng.uniform(0.75, 0.9), angle), rng)
    return _blend(image, content, mask, 1.0), mask


_DEFECTS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "scratch": _scratch,
    "crack": _crack,
    "stain": _stain,
    "hole": _hole,
    "misweave": _misweave,
}


def _add_defect(
    image: np.ndarray, rng: np.random.Generator, kind: str, ctx: dict
) -> tuple[np.ndarray, np.ndarray]:
    size = image.shape[0]
    min_area, max_area = max(30, 0.012 * size * size), 0.25 * size * size
    for _ in range(50):
        out, mask = _DEFECTS[kind](image, rng, size, ctx)
        if min_area <= mask.sum() <= max_area:
            return out, mask
    raise RuntimeError(f"could not place a {kind} defect of a sensible size at {size}px")  # pragma: no cover


# ------------------------------------------------------------------------------ acquisition


def _acquire_target(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The target camera: illumination gradient, gamma/contrast, colour cast, blur, sensor noise."""
    size = image.shape[0]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    direction = rng.uniform(0.0, 2.0 * math.pi)
    light = 1.0 + 0.45 * (xx * math.cos(direction) + yy * math.sin(direction))
    out = image * light[:, :, None]
    out = np.clip(out, 0.0, 1.0) ** _TARGET_GAMMA
    out = 0.5 + _TARGET_CONTRAST * (out - 0.5)
    out = out * _TARGET_CAST[None, None, :]
    out = cv2.GaussianBlur(out, (0, 0), 0.6 * size / 64)
    out = out + rng.normal(0.0, 0.025, size=out.shape).astype(np.float32)
    return out


def _acquire_source(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The source camera: even light, a small exposure jitter, little noise."""
    gain = 1.0 + 0.03 * float(rng.standard_normal())
    return image * gain + rng.normal(0.0, 0.008, size=image.shape).astype(np.float32)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------ writer


def _write_png(path: Path, array: np.ndarray) -> None:
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), array):
        raise DatasetError(f"cannot write {path}: check that the output folder is writable")


def synthesize_image(
    size: int, seed: int, domain: str, split: str, index: int, defect: str | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """One image of the synthetic dataset, without writing it.

    Args:
        size: Side length in pixels.
        seed: Global seed.
        domain: ``"source_texture"`` or ``"target_texture"``.
        split: ``"train"``, ``"test_good"`` or ``"test_defect"``.
        index: Index within the split (seeds the image's generator).
        defect: A name in :data:`DEFECT_TYPES` for ``test_defect``; ``None`` otherwise.

    Returns:
        ``(image uint8 (size, size, 3) RGB, mask bool (size, size) or None)``.
    """
    domain_id = 0 if domain == SOURCE else 1
    rng = np.random.default_rng([seed, domain_id, _SPLIT_IDS[split], index])
    zoom = _TARGET_ZOOM if domain == TARGET else 1.0
    image, freq, angle = _texture(size, rng, zoom)
    mask = None
    if defect is not None:
        image, mask = _add_defect(image, rng, defect, {"freq": freq, "angle": angle})
    image = _acquire_target(image, rng) if domain == TARGET else _acquire_source(image, rng)
    return _to_uint8(image), mask


def make_synthetic(
    out: str | Path,
    size: int = 64,
    seed: int = 0,
    n_train: int = 60,
    n_test_good: int = 20,
    n_test_defect: int = 30,
    overwrite: bool = False,
) -> Path:
    """Write the synthetic source/target dataset (MVTec layout) under ``out`` and return ``out``.

    Layout: ``out/<category>/train/good/NNN.png``, ``test/good/NNN.png``,
    ``test/<defect>/NNN.png``, ``ground_truth/<defect>/NNN_mask.png`` for the categories
    ``source_texture`` and ``target_texture``, plus ``out/synthetic.json`` with the parameters.
    Defect types are assigned in turn (image ``i`` gets ``DEFECT_TYPES[i % 5]``).

    Raises:
        ValueError: ``size < 32`` or a negative count.
        DatasetError: a category folder already exists and ``overwrite`` is false.
    """
    if size < 32:
        raise ValueError(f"size={size}: expected at least 32 pixels")
    if min(n_train, n_test_good, n_test_defect) < 0:
        raise ValueError("n_train, n_test_good and n_test_defect must be >= 0")
    out = Path(out)
    for category in (SOURCE, TARGET):
        target_dir = out / category
        if target_dir.exists():
            if not overwrite:
                raise DatasetError(
                    f"{target_dir} already exists: choose another output folder or pass overwrite=True"
                )
            shutil.rmtree(target_dir)
    width = max(3, len(str(max(n_train, n_test_good, n_test_defect, 1) - 1)))
    for category in (SOURCE, TARGET):
        root = out / category
        jobs = [("train", "train/good", i, None) for i in range(n_train)]
        jobs += [("test_good", "test/good", i, None) for i in range(n_test_good)]
        jobs += [("test_defect", None, i, DEFECT_TYPES[i % len(DEFECT_TYPES)]) for i in range(n_test_defect)]
        per_defect: dict[str, int] = {}
        for split, folder, index, defect in jobs:
            image, mask = synthesize_image(size, seed, category, split, index, defect)
            if defect is None:
                stem = f"{index:0{width}d}"
                (root / folder).mkdir(parents=True, exist_ok=True)
                _write_png(root / folder / f"{stem}.png", image)
                continue
            number = per_defect.get(defect, 0)
            per_defect[defect] = number + 1
            stem = f"{number:0{width}d}"
            (root / "test" / defect).mkdir(parents=True, exist_ok=True)
            (root / "ground_truth" / defect).mkdir(parents=True, exist_ok=True)
            _write_png(root / "test" / defect / f"{stem}.png", image)
            _write_png(root / "ground_truth" / defect / f"{stem}_mask.png", mask.astype(np.uint8) * 255)
    meta = {
        "generator": "refcfa.data.synthetic.make_synthetic",
        "size": size,
        "seed": seed,
        "n_train": n_train,
        "n_test_good": n_test_good,
        "n_test_defect": n_test_defect,
        "defect_types": list(DEFECT_TYPES),
        "categories": [SOURCE, TARGET],
    }
    (out / "synthetic.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return out
