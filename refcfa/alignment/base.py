"""The fit/transform skeleton shared by the aligners (scikit-learn's estimator shape).

``__init__`` stores settings only; :meth:`Aligner.fit` validates them, draws a seeded pixel sample
of the target and learns state whose names end in ``_`` (``diagnostics_`` last);
:meth:`Aligner.transform` refuses to run before ``fit`` and then maps every pixel, a few whole
images at a time. A subclass implements ``_check_params``, ``_fit_impl`` (on pixel samples) and
``_transform_pixels`` (on any pixels); pixel-level hooks let :class:`~refcfa.alignment.cfa.CFA`
chain aligners on one sample and in one pass over the images.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from typing import Any, TypeVar

import numpy as np

from refcfa.alignment.fields import FieldSet, PixelFields, map_pixels
from refcfa.alignment.stats import SourceFieldStats
from refcfa.errors import RefcfaError

__all__ = ["Aligner", "NotFittedError"]

_A = TypeVar("_A", bound="Aligner")


class NotFittedError(RefcfaError, ValueError):
    """``transform`` (or a fitted attribute) was used before ``fit``."""


def check_max_pixels(max_pixels: Any, owner: str) -> None:
    if max_pixels is None:
        return
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)) or max_pixels < 2:
        raise ValueError(
            f"{owner}: max_pixels must be an int >= 2 (pixels sampled to fit) or None for all pixels, "
            f"got {max_pixels!r}"
        )


def check_seed(seed: Any, owner: str) -> None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise TypeError(f"{owner}: seed must be an int or None, got {type(seed).__name__}")


def as_source_stats(source: Any, max_pixels: int | None, seed: int | None, owner: str) -> SourceFieldStats:
    """``source`` as statistics: a :class:`SourceFieldStats` as is, a :class:`FieldSet` summarised."""
    if isinstance(source, SourceFieldStats):
        return source
    if isinstance(source, FieldSet):
        return SourceFieldStats.from_fields(source, max_pixels=max_pixels, seed=seed)
    raise TypeError(
        f"{owner}.fit: source must be SourceFieldStats (e.g. from the detector checkpoint) or a FieldSet "
        f"of source fields, got {type(source).__name__}"
    )


def as_fieldset(fields: Any, name: str, owner: str) -> FieldSet:
    if not isinstance(fields, FieldSet):
        raise TypeError(
            f"{owner}: {name} must be a FieldSet (R, M, Q: (N, K, H, W), d: (N, K, C, H, W)), "
            f"got {type(fields).__name__}; build one with FieldSet(R=..., M=..., Q=..., d=...)"
        )
    return fields


class Aligner(ABC):
    """Base of the field aligners. Settings common to all: ``max_pixels``, ``seed``."""

    max_pixels: int | None
    seed: int | None

    # -- public API --------------------------------------------------------------------------
    def fit(self: _A, source: SourceFieldStats | FieldSet, target: FieldSet) -> _A:
        """Learn the map from target fields to the source's field space.

        Args:
            source: :class:`SourceFieldStats` (what the detector checkpoint stores), or a
                :class:`FieldSet` of source fields (summarised with ``max_pixels`` and ``seed``).
            target: unlabelled target fields, ``R, M, Q: (N, K_T, H, W)``, ``d: (N, K_T, C, H, W)``.

        Returns:
            ``self``, fitted.
        """
        owner = type(self).__name__
        self._check_params()
        stats = as_source_stats(source, self.max_pixels, self.seed, owner)
        target = as_fieldset(target, "target", f"{owner}.fit")
        self._fit_pixels(stats, target.sample_pixels(self.max_pixels, self.seed))
        return self

    def transform(self, fields: FieldSet) -> FieldSet:
        """Map target fields into the source's field space.

        Args:
            fields: target fields with the ``K`` and ``C`` seen in :meth:`fit`.

        Returns:
            A new :class:`FieldSet` (``K`` = the source's after temporal alignment).
        """
        fields = self._checked_input(fields)
        return map_pixels(fields, self._transform_pixels, self._output_timesteps(fields))

    def fit_transform(self, source: SourceFieldStats | FieldSet, target: FieldSet) -> FieldSet:
        """``fit(source, target).transform(target)``."""
        return self.fit(source, target).transform(target)

    def __repr__(self) -> str:
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return f"{type(self).__name__}({', '.join(f'{n}={getattr(self, n)!r}' for n in names)})"

    # -- pixel-level hooks -------------------------------------------------------------------
    def _fit_pixels(self, stats: SourceFieldStats, pixels: PixelFields) -> None:
        """Fit on a target pixel sample (``R, M, Q: (P, K_T)``, ``d: (P, K_T, C)``)."""
        owner = type(self).__name__
        self.__dict__.pop("diagnostics_", None)  # a failed refit must not look fitted
        if pixels.C != stats.C:
            raise ValueError(
                f"{owner}.fit: target fields have C={pixels.C} channels but the source statistics have "
                f"C={stats.C}; source and target must be extracted with the same number of image channels"
            )
        if pixels.P < 2:
            raise ValueError(
                f"{owner}.fit: need at least 2 target pixels, got {pixels.P}; pass more target images"
            )
        self.n_steps_in_ = pixels.K
        self.n_channels_in_ = pixels.C
        self.eps_ = stats.eps
        self._fit_impl(stats, pixels)

    def _checked_input(self, fields: Any) -> FieldSet:
        """``fields`` for ``transform``: fitted aligner, a FieldSet with the fitted ``K`` and ``C``."""
        self._check_fitted()
        fields = as_fieldset(fields, "fields", f"{type(self).__name__}.transform")
        if fields.K != self.n_steps_in_ or fields.C != self.n_channels_in_:
            raise ValueError(
                f"{type(self).__name__}.transform: fields have K={fields.K} steps and C={fields.C} channels "
                f"but the aligner was fitted on target fields with K={self.n_steps_in_}, "
                f"C={self.n_channels_in_}; pass fields extracted with the target's trajectory settings"
            )
        return fields

    def _check_fitted(self) -> None:
        if not hasattr(self, "diagnostics_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit(source, target) first")

    def _output_timesteps(self, fields: FieldSet) -> np.ndarray | None:
        return fields.timesteps

    def _require_source_steps(self, stats: SourceFieldStats, pixels: PixelFields, hint: str) -> None:
        if pixels.K != stats.K:
            raise ValueError(
                f"{type(self).__name__}.fit: target fields have K={pixels.K} steps but the source statistics "
                f"have K={stats.K}; {hint}"
            )

    @abstractmethod
    def _check_params(self) -> None:
        """Validate the settings (called by ``fit``)."""

    @abstractmethod
    def _fit_impl(self, stats: SourceFieldStats, pixels: PixelFields) -> None:
        """Learn the state; set ``diagnostics_`` last."""

    @abstractmethod
    def _transform_pixels(self, pixels: PixelFields) -> PixelFields:
        """Map pixels ``(P, K_in)`` to ``(P, K_out)``."""
