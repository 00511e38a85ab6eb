"""Source-domain statistics that the alignment needs (stored in the detector checkpoint)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from refcfa.alignment._features import DELTA, covariance, delta_vectors, median_log_r, pca, z_vectors
from refcfa.alignment.fields import FieldSet, PixelFields, RngLike

__all__ = ["SourceFieldStats"]

FORMAT = "refcfa.alignment.SourceFieldStats"
VERSION = 1
_ARRAYS = ("log_r_median", "z_mean", "z_cov", "delta_mean", "delta_basis", "delta_variance")


@dataclass(frozen=True, eq=False)
class SourceFieldStats:
    """What CFA keeps of the source fields: enough to fit every aligner without them.

    Attributes:
        log_r_median: ``(K,)`` ``l(n) = median log(R_n + eps)`` (not z-normalised).
        z_mean: ``(3K,)`` mean of ``z(u) = concat_n [log(R_n+eps), log(M_n+eps), log(Q_n+eps)]``.
        z_cov: ``(3K, 3K)`` covariance of ``z`` (unregularised, ``ddof = 1``).
        delta_mean: ``(CK,)`` mean of ``delta(u) = concat_n d_n(u)``.
        delta_basis: ``(CK, CK)`` PCA basis of ``delta`` (columns, decreasing variance).
        delta_variance: ``(CK,)`` variance along each basis column.
        n_pixels: number of pixels the statistics were computed from.
        eps: the ``delta`` inside the logarithms (the aligners use the same one for the target).
        timesteps: ``(K,)`` source timesteps, or ``None``.
    """

    log_r_median: np.ndarray
    z_mean: np.ndarray
    z_cov: np.ndarray
    delta_mean: np.ndarray
    delta_basis: np.ndarray
    delta_variance: np.ndarray
    n_pixels: int
    eps: float = DELTA
    timesteps: np.ndarray | None = None

    def __post_init__(self) -> None:
        for name in _ARRAYS:
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            if not np.isfinite(arr).all():
                raise ValueError(
                    f"SourceFieldStats: {name} contains NaN/infinite values; recompute the statistics"
                )
            object.__setattr__(self, name, arr)
        k = self.log_r_median.shape[0] if self.log_r_median.ndim == 1 else -1
        ck = self.delta_mean.shape[0] if self.delta_mean.ndim == 1 else -1
        expected = {
            "log_r_median": (k,),
            "z_mean": (3 * k,),
            "z_cov": (3 * k, 3 * k),
            "delta_mean": (ck,),
            "delta_basis": (ck, ck),
            "delta_variance": (ck,),
        }
        for name, shape in expected.items():
            if k < 1 or ck < 1 or ck % k or getattr(self, name).shape != shape:
                raise ValueError(
                    f"SourceFieldStats: {name} has shape {getattr(self, name).shape}, expected {shape} "
                    f"for K = {k} steps and C*K = {ck} (C = {ck // k if k > 0 else '?'}); the statistics "
                    "are inconsistent — recompute them with SourceFieldStats.from_fields"
                )
        if self.timesteps is not None:
            ts = np.asarray(self.timesteps)
            if ts.shape != (k,):
                raise ValueError(f"SourceFieldStats: timesteps must have shape ({k},), got {ts.shape}")
            object.__setattr__(self, "timesteps", ts)
        object.__setattr__(self, "n_pixels", int(self.n_pixels))
        object.__setattr__(self, "eps", float(self.eps))
        if self.n_pixels < 2 or not self.eps > 0:
            raise ValueError(
                f"SourceFieldStats: need n_pixels >= 2 and eps > 0, got {self.n_pixels} and {self.eps}"
            )

    @property
    def K(self) -> int:
        return int(self.log_r_median.shape[0])

    @property
    def C(self) -> int:
        return int(self.delta_mean.shape[0]) // self.K

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_fields(
        cls, fields: FieldSet, max_pixels: int | None = 20000, seed: RngLike = 0, eps: float = DELTA
    ) -> SourceFieldStats:
        """Statistics of a random sample of at most ``max_pixels`` pixels of the source fields.

        Args:
            fields: source :class:`FieldSet` (``R, M, Q: (N, K, H, W)``, ``d: (N, K, C, H, W)``).
            max_pixels: pixel sample size (``None`` = every pixel).
            seed: seed or generator of the sample.
            eps: the ``delta`` inside ``log(. + delta)``.
        """
        if not isinstance(fields, FieldSet):
            raise TypeError(
                f"SourceFieldStats.from_fields: fields must be a FieldSet, got {type(fields).__name__}"
            )
        return cls.from_pixels(fields.sample_pixels(max_pixels, seed), eps=eps, timesteps=fields.timesteps)

    @classmethod
    def from_pixels(
        cls, pixels: PixelFields, eps: float = DELTA, timesteps: np.ndarray | None = None
    ) -> SourceFieldStats:
        """Statistics of the pixels ``R, M, Q: (P, K)``, ``d: (P, K, C)`` (``P >= 2``)."""
        if pixels.P < 2:
            raise ValueError(
                f"SourceFieldStats: need at least 2 pixels to estimate covariances, got {pixels.P}; "
                "pass more images or a larger max_pixels"
            )
        z = z_vectors(pixels, eps)
        delta_mean, delta_basis, delta_variance = pca(delta_vectors(pixels))
        return cls(
            log_r_median=median_log_r(pixels, eps),
            z_mean=z.mean(axis=0),
            z_cov=covariance(z),
            delta_mean=delta_mean,
            delta_basis=delta_basis,
            delta_variance=delta_variance,
            n_pixels=pixels.P,
            eps=eps,
            timesteps=timesteps,
        )

    # -- serialisation -----------------------------------------------------------------------
    def to_dict(self, arrays: Literal["numpy", "list"] = "numpy") -> dict[str, Any]:
        """Plain dict: strings, ints, floats and numpy arrays (``arrays="numpy"``) or nested lists
        (``arrays="list"``). ``torch.load(weights_only=True)`` refuses numpy arrays: store them
        as tensors (``torch.from_numpy``) or ask for lists. ``timesteps`` is absent when ``None``.
        """
        if arrays not in ("numpy", "list"):
            raise ValueError(f"SourceFieldStats.to_dict: arrays must be 'numpy' or 'list', got {arrays!r}")
        convert = (lambda a: a.copy()) if arrays == "numpy" else (lambda a: a.tolist())
        out: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "n_pixels": self.n_pixels,
            "eps": self.eps,
        }
        out.update({name: convert(getattr(self, name)) for name in _ARRAYS})
        if self.timesteps is not None:
            out["timesteps"] = convert(self.timesteps)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SourceFieldStats:
        """Inverse of :meth:`to_dict`; arrays may be numpy arrays, CPU torch tensors or lists."""
        if not isinstance(data, Mapping):
            raise TypeError(f"SourceFieldStats.from_dict: data must be a mapping, got {type(data).__name__}")
        if data.get("format") != FORMAT:
            raise ValueError(
                f"SourceFieldStats.from_dict: data['format'] is {data.get('format')!r}, expected {FORMAT!r}; "
                "pass the dict written by SourceFieldStats.to_dict"
            )
        if data.get("version") != VERSION:
            raise ValueError(
                f"SourceFieldStats.from_dict: version {data.get('version')!r} is not supported (this refcfa "
                f"reads version {VERSION}); recompute the source statistics with this version"
            )
        missing = [key for key in (*_ARRAYS, "n_pixels", "eps") if key not in data]
        if missing:
            raise ValueError(
                f"SourceFieldStats.from_dict: missing key(s) {missing}; pass the dict written by to_dict"
            )
        timesteps = data.get("timesteps")
        return cls(
            n_pixels=int(data["n_pixels"]),
            eps=float(data["eps"]),
            timesteps=None if timesteps is None else np.asarray(timesteps),
            **{name: np.asarray(data[name], dtype=np.float64) for name in _ARRAYS},
        )
