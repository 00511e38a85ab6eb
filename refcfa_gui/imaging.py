"""Small numpy helpers for what the views draw: RGB conversion, masks over images, thumbnails.

No Qt and no IO here (readers are passed in), so the helpers run on worker threads and in tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

MASK_COLOR = (255, 64, 64)


def to_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` → uint8 ``(H, W, 3)``."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])


def mask_outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside it: ``bool (H, W)`` (the contour)."""
    m = np.asarray(mask, dtype=bool)
    padded = np.pad(m, 1, mode="constant", constant_values=False)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return m & ~inner


def contour_rgba(mask: np.ndarray, color: tuple[int, int, int] = MASK_COLOR) -> np.ndarray:
    """A transparent ``(H, W, 4)`` uint8 image with ``mask``'s outline drawn opaque in ``color``."""
    outline = mask_outline(mask)
    rgba = np.zeros((*outline.shape, 4), dtype=np.uint8)
    rgba[outline, :3] = color
    rgba[outline, 3] = 255
    return rgba


def draw_mask(image: np.ndarray, mask: np.ndarray, alpha: float = 0.35, color=MASK_COLOR) -> np.ndarray:
    """``image`` as RGB with ``mask`` tinted (``alpha``) and outlined in ``color``."""
    rgb = to_rgb(image).astype(np.float32)
    m = np.asarray(mask, dtype=bool)
    col = np.asarray(color, dtype=np.float32)
    rgb[m] = (1.0 - alpha) * rgb[m] + alpha * col
    rgb[mask_outline(m)] = col
    return np.clip(rgb, 0, 255).astype(np.uint8)


def _resize(image: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    import cv2

    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA
    out = cv2.resize(image, (int(size[1]), int(size[0])), interpolation=interp)
    return out


def fit_size(shape: tuple[int, int], box: int) -> tuple[int, int]:
    """``(h, w)`` of an image of ``shape`` scaled to fit a ``box × box`` square (never enlarged)."""
    h, w = int(shape[0]), int(shape[1])
    scale = min(1.0, box / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def thumbnail(sample: Any, box: int = 64) -> np.ndarray:
    """RGB uint8 thumbnail of a dataset sample, its ground-truth mask drawn over it when it has one.

    Raises whatever :func:`refcfa.data.read_image` / :func:`refcfa.data.read_mask` raise for an
    unreadable file (the caller lists it with the reason).
    """
    from refcfa.data import read_image, read_mask

    image = read_image(sample.path)
    size = fit_size(image.shape[:2], box)
    small = to_rgb(_resize(image, size)) if size != image.shape[:2] else to_rgb(image)
    if getattr(sample, "mask_path", None):
        mask = read_mask(sample.mask_path, image.shape[:2], image_path=sample.path)
        small_mask = _resize(mask.astype(np.uint8), size, nearest=True) > 0 if size != mask.shape else mask
        small = draw_mask(small, small_mask)
    return small


def iter_thumbnails(samples: Iterable[Any], box: int = 64) -> Iterator[tuple[str, np.ndarray | None, str]]:
    """``(path, thumbnail or None, reason)`` per sample; a failure gives the reason, never raises."""
    for sample in samples:
        try:
            yield str(sample.path), thumbnail(sample, box), ""
        except Exception as exc:  # noqa: BLE001 - an unreadable image is listed, not fatal
            yield str(sample.path), None, str(exc) or type(exc).__name__


def read_mask_at(mask_path: str | Path | None, shape: tuple[int, int]) -> np.ndarray | None:
    """The mask at ``mask_path`` resized (nearest) to ``shape``, or ``None`` without a mask."""
    if not mask_path:
        return None
    from refcfa.data import read_mask

    mask = read_mask(mask_path)
    if mask.shape != tuple(shape):
        mask = _resize(mask.astype(np.uint8), shape, nearest=True) > 0
    return mask
