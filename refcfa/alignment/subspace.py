"""Directional subspace alignment (DSA, DESIGN.md section 6.3): subspace alignment of Fernando
et al. (ICCV 2013) on the residual directions.

Per pixel ``delta(u) = concat_n d_n(u) in R^{CK}``. PCA bases ``B_S``, ``B_T`` ``(CK, k)`` (top
``k`` principal directions; the source's from :class:`SourceFieldStats`, the target's from a
seeded pixel sample), then

    delta' = (delta - mu_T) B_T (B_T^T B_S) B_S^T + mu_S

i.e. target coordinates in its own basis, mapped by ``M = B_T^T B_S`` to source coordinates and
back to ``R^{CK}`` with the source basis. Finally each step's ``d_n'`` is renormalised to unit
norm (a norm ``<= delta`` gives the zero vector). ``k`` defaults to ``min(8, CK)``.

Diagnostics: principal angles (degrees, ascending, ``scipy.linalg.subspace_angles``) between
``B_S`` and ``B_T`` before, and between ``B_S`` and the top-``k`` PCA basis of the aligned target
sample after.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import subspace_angles

from refcfa.alignment._features import delta_vectors, pca, unit_directions
from refcfa.alignment.base import Aligner, check_max_pixels, check_seed
from refcfa.alignment.fields import PixelFields
from refcfa.alignment.stats import SourceFieldStats

__all__ = ["SubspaceAlignment", "principal_angles"]

DEFAULT_MAX_COMPONENTS = 8


def principal_angles(basis_a: np.ndarray, basis_b: np.ndarray) -> np.ndarray:
    """Principal angles in degrees, ascending, between the column spans of ``(D, k)`` bases."""
    return np.sort(np.degrees(subspace_angles(basis_a, basis_b)))


class SubspaceAlignment(Aligner):
    """Subspace alignment of the residual directions ``d`` (see the module docstring).

    Args:
        n_components: ``k``, the subspace dimension; ``None`` = ``min(8, C*K)``.
        max_pixels: target pixels sampled for the PCA (``None`` = all).
        seed: seed of that sample.

    Attributes (after ``fit``):
        n_components_: the ``k`` used.
        basis_source_, basis_target_: ``(CK, k)``.
        mean_source_, mean_target_: ``(CK,)``.
        projection_: ``(CK, CK)`` ``B_T B_T^T B_S B_S^T``.
        diagnostics_: ``{"principal_angles_before", "principal_angles_after"}`` ``(k,)`` degrees.
    """

    def __init__(
        self, n_components: int | None = None, max_pixels: int | None = 20000, seed: int | None = 0
    ) -> None:
        self.n_components = n_components
        self.max_pixels = max_pixels
        self.seed = seed

    def _check_params(self) -> None:
        k = self.n_components
        if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1):
            raise ValueError(f"SubspaceAlignment: n_components must be an int >= 1 or None, got {k!r}")
        check_max_pixels(self.max_pixels, "SubspaceAlignment")
        check_seed(self.seed, "SubspaceAlignment")

    def _fit_impl(self, stats: SourceFieldStats, pixels: PixelFields) -> None:
        self._require_source_steps(
            stats, pixels, "resample the target first (TemporalAlignment, or CFA(temporal=True))"
        )
        dim = pixels.C * pixels.K
        k = min(DEFAULT_MAX_COMPONENTS, dim) if self.n_components is None else int(self.n_components)
        if k > dim:
            raise ValueError(
                f"SubspaceAlignment.fit: n_components={k} exceeds the dimension C*K = {dim} of the "
                "direction vectors; use n_components <= C*K or None"
            )
        self.n_components_ = k
        delta = delta_vectors(pixels)
        self.mean_target_, basis_target, _ = pca(delta)
        self.mean_source_ = stats.delta_mean.copy()
        self.basis_source_ = stats.delta_basis[:, :k].copy()
        self.basis_target_ = basis_target[:, :k]
        self.projection_ = (
            self.basis_target_ @ (self.basis_target_.T @ self.basis_source_) @ self.basis_source_.T
        )
        _, basis_after, _ = pca(delta_vectors(self._transform_pixels(pixels)))
        self.diagnostics_ = {
            "principal_angles_before": principal_angles(self.basis_source_, self.basis_target_),
            "principal_angles_after": principal_angles(self.basis_source_, basis_after[:, :k]),
        }

    def _transform_pixels(self, pixels: PixelFields) -> PixelFields:
        f32 = np.float32
        delta = delta_vectors(pixels, f32) - self.mean_target_.astype(f32)
        delta = delta @ self.projection_.astype(f32)
        delta += self.mean_source_.astype(f32)
        d = unit_directions(delta.reshape(pixels.P, pixels.K, pixels.C), self.eps_)
        return PixelFields(R=pixels.R, M=pixels.M, Q=pixels.Q, d=d)
