"""The thin torch view over samples: images as ``float32 (C, H, W)`` in ``[-1, 1]``.

Imports torch, so :mod:`refcfa.data` does not import this module; import it explicitly. Masks are
not served by the dataset (training never sees them); evaluation reads them with
:func:`load_masks`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from refcfa.data.io import image_shape, read_image, read_mask
from refcfa.data.sample import Sample
from refcfa.errors import DatasetError

AUGMENTATIONS: tuple[str, ...] = ("hflip", "vflip", "rot90")


def _resize(image: np.ndarray, size: int, interpolation: int) -> np.ndarray:
    if image.shape[0] == size and image.shape[1] == size:
        return image
    resized = cv2.resize(image, (size, size), interpolation=interpolation)
    return resized if resized.ndim == image.ndim else resized[:, :, None]


def infer_channels(samples: Sequence[Sample]) -> int:
    """Channel count (1 or 3) of the first sample's image.

    Raises:
        DatasetError: ``samples`` is empty.
    """
    if not samples:
        raise DatasetError("no samples to infer the channel count from: the category is empty")
    return int(read_image(samples[0].path).shape[2])


class ImageDataset(Dataset):
    """Images of ``samples``, resized and scaled for the score network.

    Item ``i`` is ``{"image": float32 (C, H, W) in [-1, 1], "image_id": str, "label": int,
    "index": i}``. Images are resized to ``image_size x image_size`` with ``cv2.INTER_AREA`` and
    converted to ``channels`` (see :func:`refcfa.data.io.read_image`), then mapped by
    ``x / 127.5 - 1``.

    Args:
        samples: The samples to serve, in order.
        image_size: Side length of the square output.
        channels: 1 or 3.
        augment: Optional ``{"hflip": bool, "vflip": bool, "rot90": bool}``; each enabled
            transform is drawn per item from torch's global RNG (flip with probability 1/2; a
            rotation by ``k * 90`` degrees, ``k`` uniform in 0..3). A ``DataLoader`` with workers
            seeds each worker from its ``generator``, so a seeded generator serves the same
            images in every run; with ``num_workers=0`` the draws come from the main process's
            RNG, so seed it too (``torch.manual_seed``).

    Raises:
        ValueError: bad ``image_size``/``channels``, or unknown augmentation keys.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        image_size: int,
        channels: int,
        augment: Mapping[str, bool] | None = None,
    ) -> None:
        if int(image_size) < 1:
            raise ValueError(f"image_size={image_size!r}: expected a positive integer")
        if channels not in (1, 3):
            raise ValueError(f"channels={channels!r}: expected 1 or 3")
        augment = dict(augment or {})
        unknown = sorted(set(augment) - set(AUGMENTATIONS))
        if unknown:
            raise ValueError(
                f"unknown augmentation(s) {', '.join(unknown)}: known are {', '.join(AUGMENTATIONS)}"
            )
        self.samples = list(samples)
        self.image_size = int(image_size)
        self.channels = int(channels)
        self.augment = {k: bool(augment.get(k, False)) for k in AUGMENTATIONS}

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> np.ndarray:
        """The resized ``uint8 (H, W, C)`` image of sample ``index``, without augmentation."""
        sample = self.samples[index]
        image = read_image(sample.path, channels=self.channels)
        return _resize(image, self.image_size, cv2.INTER_AREA)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        tensor = torch.from_numpy(self.load(index)).permute(2, 0, 1).float() / 127.5 - 1.0
        # The draws happen in a fixed order whatever is enabled, so switching one transform
        # off does not change the others' outcomes.
        flip_h = bool(torch.rand(()) < 0.5)
        flip_v = bool(torch.rand(()) < 0.5)
        k = int(torch.randint(0, 4, ()))
        if self.augment["hflip"] and flip_h:
            tensor = tensor.flip(-1)
        if self.augment["vflip"] and flip_v:
            tensor = tensor.flip(-2)
        if self.augment["rot90"] and k:
            tensor = torch.rot90(tensor, k, dims=(-2, -1))
        return {
            "image": tensor.contiguous(),
            "image_id": sample.image_id,
            "label": int(sample.label),
            "index": int(index),
        }


def load_masks(
    samples: Sequence[Sample], image_size: int, missing: Literal["error", "zeros"] = "error"
) -> np.ndarray:
    """Ground-truth masks of ``samples`` resized to ``image_size`` (``cv2.INTER_NEAREST``).

    Args:
        samples: The samples, in the order of the returned stack.
        image_size: Side length of the square masks.
        missing: What an anomalous sample without a mask file gives: ``"error"`` (default) raises,
            ``"zeros"`` gives an empty mask.

    Returns:
        ``bool (N, image_size, image_size)``; all false for normal samples.

    Raises:
        DatasetError: a mask whose size differs from its image (naming both files), or a missing
            mask with ``missing="error"``.
    """
    if missing not in ("error", "zeros"):
        raise ValueError(f"missing={missing!r}: expected 'error' or 'zeros'")
    out = np.zeros((len(samples), image_size, image_size), dtype=bool)
    for i, sample in enumerate(samples):
        if not sample.label:
            continue
        if sample.mask_path is None:
            if missing == "error":
                raise DatasetError(
                    f"anomalous image {sample.path} ({sample.image_id}) has no mask file: pixel "
                    "metrics need one (add the mask, or use image-level metrics only)"
                )
            continue
        mask = read_mask(sample.mask_path, image_shape(sample.path), image_path=sample.path)
        out[i] = (
            _resize(mask.astype(np.uint8), image_size, cv2.INTER_NEAREST).reshape(image_size, image_size) > 0
        )
    return out
