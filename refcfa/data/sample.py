"""The record every dataset format produces: one image, where it belongs, and its label."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Split = Literal["train", "test"]

GOOD = "good"
"""The ``defect`` name of normal samples, whatever the format calls them on disk."""


@dataclass(frozen=True)
class Sample:
    """One image of a dataset category.

    Attributes:
        image_id: Stable identifier, unique inside a category: ``"<split>/<defect>/<stem>"``
            (e.g. ``"test/crack/007"``). Seeds the trajectory noise, keys caches and reports.
        path: The image file.
        split: ``"train"`` or ``"test"``.
        label: 0 for a normal image, 1 for an anomalous one.
        defect: Defect type; ``"good"`` for normal images.
        mask_path: Ground-truth mask (non-zero = anomalous), or ``None`` (normals, and
            anomalies a dataset ships without a mask).
        category: The category (MVTec object, VisA object, DAGM ``ClassN``, folder name).
    """

    image_id: str
    path: Path
    split: Split
    label: int
    defect: str
    mask_path: Path | None
    category: str

    @property
    def is_anomalous(self) -> bool:
        """Whether the sample is labelled anomalous (``label == 1``)."""
        return self.label == 1
