"""Reading images and masks from disk, with errors that name the file.

Conventions (see ``docs/ARCHITECTURE.md``): images come back as ``uint8 (H, W, C)``, RGB channel
order, ``C in {1, 3}``; masks as ``bool (H, W)``.

Decisions documented here:

* **16-bit images** (PNG/TIFF) are scaled linearly to 8 bits over the full 16-bit range,
  ``round(v / 257)`` (65535 -> 255). No per-image contrast stretch: absolute intensities keep
  their meaning across images. A 12-bit sensor stored in 16 bits therefore reads dark.
* **Alpha** is dropped: RGBA -> RGB, gray+alpha -> gray. Transparency is not composited.
* **EXIF orientation** is ignored (files are read as stored), as industrial datasets expect.
* **Truncated files**: a PNG without its ``IEND`` chunk or a JPEG without its end-of-image marker
  is refused, even where the decoder would return a partly grey image.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from refcfa.errors import DatasetError

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
"""File suffixes (compared case-insensitively) that the dataset formats treat as images."""

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8"
_TAIL = 1024  # bytes searched for the end marker of a PNG / JPEG


def is_image_file(path: Path) -> bool:
    """Whether ``path`` is a file with one of :data:`IMAGE_EXTENSIONS` (case-insensitive)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()


def _expect_file(path: Path, what: str) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path} (check the dataset root and category)")
    if not path.is_file():
        raise DatasetError(f"{what} {path} is not a file: expected a PNG/JPEG/BMP/TIFF file")


def _cannot_decode(path: Path, why: str) -> DatasetError:
    return DatasetError(
        f"cannot decode image {path}: {why}; expected a PNG/JPEG/BMP/TIFF file (re-export or remove the file)"
    )


def _decode(path: Path, what: str) -> np.ndarray:
    """Read and decode ``path`` with ``IMREAD_UNCHANGED``, refusing corrupt or truncated files."""
    _expect_file(path, what)
    data = path.read_bytes()
    if not data:
        raise _cannot_decode(path, "the file is empty")
    head, tail = data[:8], data[-_TAIL:]
    if head.startswith(_PNG_MAGIC):
        if b"IEND" not in tail:
            raise _cannot_decode(path, "the PNG is truncated (no IEND chunk)")
    elif head.startswith(_JPEG_MAGIC):
        if b"\xff\xd9" not in tail:
            raise _cannot_decode(path, "the JPEG is truncated (no end-of-image marker)")
    elif not (head.startswith(b"BM") or head.startswith(b"II*\x00") or head.startswith(b"MM\x00*")):
        raise _cannot_decode(path, "unknown file signature")
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise _cannot_decode(path, "the decoder rejected the data")
    return image


def _to_uint8(image: np.ndarray, path: Path) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        # Linear full-range scaling, round(v / 257): 0 -> 0, 65535 -> 255 (module docstring).
        return ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    raise DatasetError(
        f"image {path} has pixel type {image.dtype}: expected 8- or 16-bit integers "
        "(convert the file to an 8-bit PNG)"
    )


def read_image(path: str | Path, channels: int | None = None) -> np.ndarray:
    """Read an image as ``uint8 (H, W, C)`` in RGB order.

    Args:
        path: Image file (PNG, JPEG, BMP or TIFF).
        channels: ``None`` keeps the file's channel count (grayscale stays ``C = 1``, colour is
            ``C = 3``); ``1`` converts colour to luma (ITU-R 601 weights, ``cv2.COLOR_RGB2GRAY``);
            ``3`` repeats a grayscale channel.

    Returns:
        ``uint8 (H, W, C)``. 16-bit files are scaled by ``1/257``; alpha is dropped.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DatasetError: the file is not a decodable image, or has an unsupported pixel type.
        ValueError: ``channels`` is not ``None``, 1 or 3.
    """
    if channels not in (None, 1, 3):
        raise ValueError(f"channels={channels!r}: expected None, 1 or 3")
    path = Path(path)
    image = _to_uint8(_decode(path, "image"), path)
    if image.ndim == 2:
        image = image[:, :, None]
    elif image.ndim != 3:
        raise _cannot_decode(path, f"unexpected array shape {image.shape}")
    n = image.shape[2]
    if n == 2:  # gray + alpha
        image = image[:, :, :1]
    elif n == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    elif n == 4:  # BGRA: alpha dropped
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    elif n != 1:
        raise _cannot_decode(path, f"{n} channels (expected 1, 3 or 4)")
    if channels == 1 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[:, :, None]
    elif channels == 3 and image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image)


def image_shape(path: str | Path) -> tuple[int, int]:
    """``(H, W)`` of an image file; reads only the header of a PNG, decodes other files."""
    path = Path(path)
    _expect_file(path, "image")
    with path.open("rb") as fh:
        head = fh.read(24)
    if head.startswith(_PNG_MAGIC) and head[12:16] == b"IHDR":
        width = int.from_bytes(head[16:20], "big")
        height = int.from_bytes(head[20:24], "big")
        return height, width
    image = _decode(path, "image")
    return int(image.shape[0]), int(image.shape[1])


def read_mask(
    path: str | Path,
    shape: Sequence[int] | None = None,
    image_path: str | Path | None = None,
) -> np.ndarray:
    """Read a ground-truth mask as ``bool (H, W)``: a pixel is anomalous where it is non-zero.

    Any non-zero value counts, so 0/255 masks, 0/1 masks and VisA's class-id masks all work;
    for a multi-channel mask a pixel is anomalous where any channel is non-zero.

    Args:
        path: Mask file.
        shape: Expected ``(H, W)`` (or ``(H, W, C)``; only the first two are compared), usually
            the image's. ``None`` skips the check.
        image_path: The image the mask belongs to, named in the mismatch message.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DatasetError: undecodable file, or a size different from ``shape``.
    """
    path = Path(path)
    mask = _decode(path, "mask")
    binary = mask != 0
    if binary.ndim == 3:
        binary = binary.any(axis=2)
    if shape is not None:
        expected = (int(shape[0]), int(shape[1]))
        if binary.shape != expected:
            image_part = f"its image {image_path}" if image_path is not None else "the image"
            raise DatasetError(
                f"mask {path} is {binary.shape[0]}x{binary.shape[1]} (HxW) but {image_part} is "
                f"{expected[0]}x{expected[1]}: a mask must have its image's size "
                "(fix or re-export the mask, or check that it belongs to this image)"
            )
    return binary
