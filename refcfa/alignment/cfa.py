"""Cross-domain Field Alignment (CFA, DESIGN.md section 6): TA -> SOA -> DSA.

One seeded pixel sample of the target is drawn; temporal alignment is fitted on it and the sample
is resampled to the source's steps; CORAL and subspace alignment are then fitted on the resampled
sample (CORAL changes only ``R, M, Q``, subspace alignment only ``d``). ``transform`` runs the
fitted parts in the same order in one pass over the images. Each part can be switched off (the
ablation rows); with all three off ``transform`` returns its input unchanged (the same object).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from refcfa.alignment.base import Aligner, check_max_pixels, check_seed
from refcfa.alignment.coral import CoralAlignment
from refcfa.alignment.fields import FieldSet, PixelFields
from refcfa.alignment.stats import SourceFieldStats
from refcfa.alignment.subspace import SubspaceAlignment
from refcfa.alignment.temporal import TemporalAlignment

__all__ = ["CFA"]


class CFA(Aligner):
    """Composition of :class:`TemporalAlignment`, :class:`CoralAlignment` and
    :class:`SubspaceAlignment`.

    Args:
        temporal, coral, subspace: switch each part on or off.
        temporal_upsample: :class:`TemporalAlignment`'s ``upsample``.
        coral_reg, coral_reg_kind: :class:`CoralAlignment`'s ``reg`` and ``reg_kind``.
        n_components: :class:`SubspaceAlignment`'s ``n_components``.
        max_pixels: size of the one target pixel sample every part is fitted on.
        seed: seed of that sample.

    Attributes (after ``fit``):
        temporal_, coral_, subspace_: the fitted parts, ``None`` where switched off.
        diagnostics_: the parts' diagnostics merged (``dtw_cost_*``, ``coral_distance_*``,
        ``mean_shift_*``, ``principal_angles_*``).

    Without temporal alignment the target must already have the source's ``K`` (for CORAL and
    subspace alignment).
    """

    def __init__(
        self,
        temporal: bool = True,
        coral: bool = True,
        subspace: bool = True,
        *,
        temporal_upsample: int = 4,
        coral_reg: float = 1e-3,
        coral_reg_kind: Literal["relative", "absolute"] = "relative",
        n_components: int | None = None,
        max_pixels: int | None = 20000,
        seed: int | None = 0,
    ) -> None:
        self.temporal = temporal
        self.coral = coral
        self.subspace = subspace
        self.temporal_upsample = temporal_upsample
        self.coral_reg = coral_reg
        self.coral_reg_kind = coral_reg_kind
        self.n_components = n_components
        self.max_pixels = max_pixels
        self.seed = seed

    def _parts(self) -> tuple[Aligner | None, Aligner | None, Aligner | None]:
        return (
            TemporalAlignment(self.temporal_upsample, max_pixels=self.max_pixels, seed=self.seed)
            if self.temporal
            else None,
            CoralAlignment(self.coral_reg, self.coral_reg_kind, max_pixels=self.max_pixels, seed=self.seed)
            if self.coral
            else None,
            SubspaceAlignment(self.n_components, max_pixels=self.max_pixels, seed=self.seed)
            if self.subspace
            else None,
        )

    def _check_params(self) -> None:
        for name in ("temporal", "coral", "subspace"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"CFA: {name} must be True or False, got {getattr(self, name)!r}")
        check_max_pixels(self.max_pixels, "CFA")
        check_seed(self.seed, "CFA")
        for part in self._parts():
            if part is not None:
                part._check_params()

    def _fit_impl(self, stats: SourceFieldStats, pixels: PixelFields) -> None:
        self.temporal_, self.coral_, self.subspace_ = self._parts()
        diagnostics: dict[str, Any] = {}
        for part in (self.temporal_, self.coral_, self.subspace_):
            if part is None:
                continue
            if part is not self.temporal_ and pixels.K != stats.K:
                raise ValueError(
                    f"CFA.fit: target fields have K={pixels.K} steps but the source statistics have "
                    f"K={stats.K}; switch temporal alignment on (CFA(temporal=True)) or extract the "
                    "target with the source's K"
                )
            part._fit_pixels(stats, pixels)
            diagnostics.update(part.diagnostics_)
            pixels = part._transform_pixels(pixels)
        self.diagnostics_ = diagnostics

    def _fitted_parts(self) -> list[Aligner]:
        return [p for p in (self.temporal_, self.coral_, self.subspace_) if p is not None]

    def transform(self, fields: FieldSet) -> FieldSet:
        """Map target fields into the source's field space (see :meth:`Aligner.transform`)."""
        self._check_fitted()
        if not self._fitted_parts():
            return self._checked_input(fields)
        return super().transform(fields)

    def _transform_pixels(self, pixels: PixelFields) -> PixelFields:
        for part in self._fitted_parts():
            pixels = part._transform_pixels(pixels)
        return pixels

    def _output_timesteps(self, fields: FieldSet) -> np.ndarray | None:
        if self.temporal_ is not None:
            return self.temporal_._output_timesteps(fields)
        return fields.timesteps
