"""Cross-domain Field Alignment (DESIGN.md section 6): map target REF fields into the source's
field space so the source detector can be reused without target labels.

Aligners follow scikit-learn's estimator shape (``fit(source, target)`` returns ``self``, learned
state ends in ``_``, ``transform`` refuses to run before ``fit``):
:class:`TemporalAlignment` (DTW on the step axis), :class:`CoralAlignment` (second-order
alignment of log R, M, Q), :class:`SubspaceAlignment` (subspace alignment of the directions d)
and their composition :class:`CFA`. The source side is :class:`SourceFieldStats`, small enough to
live in the detector checkpoint.
"""

from refcfa.alignment.base import Aligner, NotFittedError
from refcfa.alignment.cfa import CFA
from refcfa.alignment.coral import CoralAlignment, coral_distance
from refcfa.alignment.dtw import dtw, warp_from_path
from refcfa.alignment.fields import FieldSet, PixelFields
from refcfa.alignment.stats import SourceFieldStats
from refcfa.alignment.subspace import SubspaceAlignment, principal_angles
from refcfa.alignment.temporal import TemporalAlignment, resample_steps

__all__ = [
    "CFA",
    "Aligner",
    "CoralAlignment",
    "FieldSet",
    "NotFittedError",
    "PixelFields",
    "SourceFieldStats",
    "SubspaceAlignment",
    "TemporalAlignment",
    "coral_distance",
    "dtw",
    "principal_angles",
    "resample_steps",
    "warp_from_path",
]
