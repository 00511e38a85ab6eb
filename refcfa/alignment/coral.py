"""Second-order feature alignment (SOA, DESIGN.md section 6.2): CORAL (Sun et al., AAAI 2016).

Per pixel ``z(u) = concat_n [log(R_n+delta), log(M_n+delta), log(Q_n+delta)] in R^{3K}``
(``delta`` = the source statistics' ``eps``). With covariances ``Sigma + lambda I`` estimated from
pixel samples (``max_pixels``, seeded; the source's from :class:`SourceFieldStats`):

    z' = (z - mu_T) Sigma_T^{-1/2} Sigma_S^{1/2} + mu_S

(row vectors; symmetric matrix powers by ``eigh``), so ``z'`` has the source's mean and,
up to the regularisation, its covariance. Back to fields: ``R, M, Q = max(exp(z') - delta, 0)``;
``d`` is untouched. Sun et al. recolour the source with the target's statistics; here the target
is recoloured with the source's, because the source detector is what gets reused.

Regularisation ``lambda``: ``reg_kind="relative"`` (default) ``lambda = reg * trace(Sigma) / d``
(``d = 3K``), i.e. ``reg`` times the average variance, so it does not depend on the units of the
log fields (falls back to ``lambda = reg`` if the trace is 0); ``"absolute"``: ``lambda = reg``.
Each domain's covariance gets its own ``lambda``.

Diagnostics: CORAL distance ``||Sigma_S - Sigma_T||_F^2 / (4 d^2)`` (unregularised covariances)
before, and after (covariance of the transformed target sample, mapped back to fields and to
``z`` again, so the clip at 0 is included); likewise the mean shift
``||mu_S - mu_T|| / sqrt(d)``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from refcfa.alignment._features import covariance, sym_power, z_vectors
from refcfa.alignment.base import Aligner, check_max_pixels, check_seed
from refcfa.alignment.fields import PixelFields
from refcfa.alignment.stats import SourceFieldStats

__all__ = ["CoralAlignment", "coral_distance"]


def coral_distance(cov_a: np.ndarray, cov_b: np.ndarray) -> float:
    """``||cov_a - cov_b||_F^2 / (4 d^2)`` for ``(d, d)`` covariances."""
    d = cov_a.shape[0]
    return float(np.sum((cov_a - cov_b) ** 2) / (4.0 * d * d))


class CoralAlignment(Aligner):
    """CORAL alignment of the log magnitude fields ``R, M, Q`` (see the module docstring).

    Args:
        reg: regularisation strength (see ``reg_kind``), >= 0.
        reg_kind: ``"relative"`` (``lambda = reg * trace / d``) or ``"absolute"`` (``lambda = reg``).
        max_pixels: target pixels sampled for the mean and covariance (``None`` = all).
        seed: seed of that sample.

    Attributes (after ``fit``):
        matrix_: ``(3K, 3K)`` ``Sigma_T^{-1/2} Sigma_S^{1/2}`` (regularised).
        mean_source_, mean_target_: ``(3K,)``.
        lambda_source_, lambda_target_: the regularisers used.
        diagnostics_: ``{"coral_distance_before", "coral_distance_after",
        "mean_shift_before", "mean_shift_after"}``.
    """

    def __init__(
        self,
        reg: float = 1e-3,
        reg_kind: Literal["relative", "absolute"] = "relative",
        max_pixels: int | None = 20000,
        seed: int | None = 0,
    ) -> None:
        self.reg = reg
        self.reg_kind = reg_kind
        self.max_pixels = max_pixels
        self.seed = seed

    def _check_params(self) -> None:
        if (
            isinstance(self.reg, bool)
            or not isinstance(self.reg, (int, float, np.floating))
            or not self.reg >= 0
        ):
            raise ValueError(f"CoralAlignment: reg must be a number >= 0, got {self.reg!r}")
        if self.reg_kind not in ("relative", "absolute"):
            raise ValueError(
                f"CoralAlignment: reg_kind must be 'relative' or 'absolute', got {self.reg_kind!r}"
            )
        check_max_pixels(self.max_pixels, "CoralAlignment")
        check_seed(self.seed, "CoralAlignment")

    def _lambda(self, cov: np.ndarray) -> float:
        if self.reg_kind == "absolute":
            return float(self.reg)
        mean_variance = float(np.trace(cov)) / cov.shape[0]
        return float(self.reg) * (mean_variance if mean_variance > 0 else 1.0)

    def _fit_impl(self, stats: SourceFieldStats, pixels: PixelFields) -> None:
        self._require_source_steps(
            stats, pixels, "resample the target first (TemporalAlignment, or CFA(temporal=True))"
        )
        z = z_vectors(pixels, stats.eps)
        cov_t, cov_s = covariance(z), stats.z_cov
        eye = np.eye(cov_t.shape[0])
        self.lambda_source_ = self._lambda(cov_s)
        self.lambda_target_ = self._lambda(cov_t)
        if self.lambda_source_ == 0 or self.lambda_target_ == 0:
            # reg = 0 is allowed, but the covariances must then be non-singular
            for name, cov in (("source", cov_s), ("target", cov_t)):
                if np.linalg.eigvalsh(cov)[0] <= 1e-12 * max(1.0, float(np.trace(cov))):
                    raise ValueError(
                        f"CoralAlignment.fit: the {name} covariance of z is singular and reg=0; "
                        "use reg > 0 (the default 1e-3 is usually right)"
                    )
        self.matrix_ = sym_power(cov_t + self.lambda_target_ * eye, -0.5) @ sym_power(
            cov_s + self.lambda_source_ * eye, 0.5
        )
        self.mean_source_ = stats.z_mean.copy()
        self.mean_target_ = z.mean(axis=0)
        z_after = z_vectors(self._transform_pixels(pixels), stats.eps)
        dim = z.shape[1]
        self.diagnostics_ = {
            "coral_distance_before": coral_distance(cov_s, cov_t),
            "coral_distance_after": coral_distance(cov_s, covariance(z_after)),
            "mean_shift_before": float(np.linalg.norm(self.mean_source_ - self.mean_target_) / np.sqrt(dim)),
            "mean_shift_after": float(
                np.linalg.norm(self.mean_source_ - z_after.mean(axis=0)) / np.sqrt(dim)
            ),
        }

    def _transform_pixels(self, pixels: PixelFields) -> PixelFields:
        f32 = np.float32
        z = z_vectors(pixels, self.eps_, f32)
        z -= self.mean_target_.astype(f32)
        z = z @ self.matrix_.astype(f32)
        z += self.mean_source_.astype(f32)
        fields = np.exp(z, out=z)
        fields -= f32(self.eps_)
        fields = np.maximum(fields, 0.0, out=fields).reshape(pixels.P, pixels.K, 3)
        return PixelFields(R=fields[..., 0], M=fields[..., 1], Q=fields[..., 2], d=pixels.d)
