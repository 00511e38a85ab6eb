"""Per-pixel feature vectors and small linear-algebra helpers shared by the aligners."""

from __future__ import annotations

import numpy as np

from refcfa.alignment.fields import PixelFields

#: delta of DESIGN.md section 3: ``log(R + DELTA)``, direction norms below it count as zero
DELTA = 1e-6


def median_log_r(pixels: PixelFields, eps: float) -> np.ndarray:
    """``l(n) = median over pixels of log(R_n + eps)``: ``(K,)`` float64."""
    return np.median(np.log(pixels.R.astype(np.float64) + eps), axis=0)


def z_vectors(pixels: PixelFields, eps: float, dtype: type = np.float64) -> np.ndarray:
    """``z(u) = concat_n [log(R_n+eps), log(M_n+eps), log(Q_n+eps)]``: ``(P, 3K)``,
    step-major (entries ``3n, 3n+1, 3n+2`` are ``R, M, Q`` of step ``n``). Statistics are fitted
    in float64; transforms run in float32 (the fields' precision)."""
    stacked = np.stack([pixels.R, pixels.M, pixels.Q], axis=2).astype(dtype)  # (P, K, 3)
    stacked += dtype(eps)
    return np.log(stacked, out=stacked).reshape(pixels.P, -1)


def delta_vectors(pixels: PixelFields, dtype: type = np.float64) -> np.ndarray:
    """``delta(u) = concat_n d_n(u)``: ``(P, C K)``, step-major."""
    return pixels.d.astype(dtype).reshape(pixels.P, -1)


def covariance(x: np.ndarray) -> np.ndarray:
    """Sample covariance (``ddof = 1``) of the rows of ``x`` ``(P, D)``: ``(D, D)``."""
    centred = x - x.mean(axis=0)
    return centred.T @ centred / (x.shape[0] - 1)


def pca(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PCA of the rows of ``x`` ``(P, D)`` by eigendecomposition of the covariance.

    Returns:
        ``mean (D,)``, ``basis (D, D)`` orthonormal columns in decreasing variance, each column's
        largest-magnitude entry made positive (a deterministic sign), ``variance (D,)``.
    """
    mean = x.mean(axis=0)
    variance, basis = np.linalg.eigh(covariance(x))
    variance, basis = variance[::-1].clip(min=0.0), basis[:, ::-1]
    signs = np.sign(basis[np.argmax(np.abs(basis), axis=0), np.arange(basis.shape[1])])
    return mean, basis * np.where(signs == 0, 1.0, signs), variance


def sym_power(cov: np.ndarray, power: float) -> np.ndarray:
    """``cov ** power`` of a symmetric positive-definite matrix via ``eigh``."""
    w, v = np.linalg.eigh(cov)
    return (v * w.clip(min=np.finfo(np.float64).tiny) ** power) @ v.T


def z_normalise(curve: np.ndarray) -> np.ndarray:
    """``(l - mean l) / std l``; a flat curve (std < 1e-12) is only centred."""
    centred = curve - curve.mean()
    std = centred.std()
    return centred / std if std > 1e-12 else centred


def unit_directions(d: np.ndarray, eps: float) -> np.ndarray:
    """Normalise ``d (..., C)`` to unit norm along the last axis; norms ``<= eps`` become 0."""
    norm = np.sqrt(np.einsum("...c,...c->...", d, d))[..., None]
    return np.where(norm > eps, d / np.maximum(norm, eps), 0.0).astype(d.dtype, copy=False)
