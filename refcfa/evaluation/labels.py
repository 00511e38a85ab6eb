"""Target labels under lock: nothing before the evaluation stage may read them.

The target domain is unlabelled for every stage of the method (T1, CFA, T2). `TargetImages`
hands out the images and their ids only; the labels, defect names and masks stay inside until
`open_for_evaluation()` is called, and any earlier request is an error. The pipeline calls it
once, right before computing the metrics — a test checks that nothing reads them earlier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from refcfa.data.sample import Sample
from refcfa.errors import RefcfaError


class LabelsLockedError(RefcfaError, RuntimeError):
    """A stage before the evaluation asked for target labels."""


@dataclass(frozen=True)
class UnlabelledSample:
    """What the method may know of a target image: where it is, its id, its split."""

    image_id: str
    path: object
    split: str
    category: str


class TargetImages:
    """The target's samples, with their labels locked until evaluation."""

    def __init__(self, samples: Sequence[Sample]):
        self._samples = list(samples)
        self._open = False

    def __len__(self) -> int:
        return len(self._samples)

    @property
    def unlabelled(self) -> list[UnlabelledSample]:
        return [UnlabelledSample(s.image_id, s.path, s.split, s.category) for s in self._samples]

    def samples_for_loading(self) -> list[Sample]:
        """Samples stripped of label, defect name and mask, for reading the images only."""
        return [
            Sample(image_id=s.image_id, path=s.path, split=s.split, label=0, defect="unknown",
                   mask_path=None, category=s.category)
            for s in self._samples
        ]

    def open_for_evaluation(self) -> None:
        self._open = True

    @property
    def is_open(self) -> bool:
        return self._open

    def _check(self, what: str) -> None:
        if not self._open:
            raise LabelsLockedError(
                f"target {what} requested before the evaluation stage: the target domain is unlabelled "
                "for T1, CFA and T2 (call open_for_evaluation() only when computing metrics)"
            )

    def labels(self) -> np.ndarray:
        self._check("labels")
        return np.array([s.label for s in self._samples], dtype=np.int64)

    def defects(self) -> list[str]:
        self._check("defect names")
        return [s.defect for s in self._samples]

    def masks(self, image_size: int) -> np.ndarray:
        self._check("masks")
        from refcfa.data.torch_dataset import load_masks

        return load_masks(self._samples, image_size)
