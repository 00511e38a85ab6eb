"""CoralAlignment: a known affine shift of z removed."""

from __future__ import annotations

import numpy as np
import pytest

from refcfa.alignment import CoralAlignment, FieldSet, NotFittedError, SourceFieldStats, coral_distance

K = 4
EPS = 1e-6


def _fields_from_z(z: np.ndarray, n_images: int, size: int, seed: int) -> FieldSet:
    """Fields with log(R, M, Q + eps) = z, z: (P, 3K) step-major."""
    p = z.shape[0]
    values = (np.exp(z) - EPS).reshape(n_images, size, size, K, 3)
    r, m, q = (np.moveaxis(values[..., i], 3, 1) for i in range(3))
    d = np.random.default_rng(seed).standard_normal((n_images, K, 2, size, size))
    d /= np.linalg.norm(d, axis=2, keepdims=True)
    assert p == n_images * size * size
    return FieldSet(R=r, M=m, Q=q, d=d)


def _z_of(fields: FieldSet) -> np.ndarray:
    px = fields.pixels()
    return np.log(np.stack([px.R, px.M, px.Q], axis=2).astype(np.float64) + EPS).reshape(px.P, -1)


@pytest.fixture
def shifted_pair() -> tuple[FieldSet, FieldSet, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    dim = 3 * K
    mixing = rng.normal(size=(dim, dim)) / np.sqrt(dim)
    mean_s = rng.normal(size=dim) - 1.0
    z_s = rng.normal(size=(4 * 24 * 24, dim)) @ mixing * 0.5 + mean_s
    # target: a known affine map of an independent draw from the same distribution
    z_src_like = rng.normal(size=(4 * 24 * 24, dim)) @ mixing * 0.5 + mean_s
    affine = np.eye(dim) + 0.4 * rng.normal(size=(dim, dim)) / np.sqrt(dim)
    z_t = (z_src_like - mean_s) @ affine * 1.5 + mean_s + 0.8
    return _fields_from_z(z_s, 4, 24, 1), _fields_from_z(z_t, 4, 24, 2), z_s, z_t


def test_affine_covariance_shift_removed(shifted_pair) -> None:
    source, target, z_s, z_t = shifted_pair
    coral = CoralAlignment(max_pixels=None).fit(source, target)
    diag = coral.diagnostics_
    assert diag["coral_distance_before"] == pytest.approx(
        coral_distance(np.cov(z_s.T), np.cov(z_t.T)), rel=1e-4
    )
    assert diag["coral_distance_after"] <= 0.05 * diag["coral_distance_before"]
    assert diag["mean_shift_after"] < 0.01 * diag["mean_shift_before"]

    out = coral.transform(target)
    z_out = _z_of(out)
    np.testing.assert_allclose(z_out.mean(axis=0), z_s.mean(axis=0), atol=1e-3)
    cov_s, cov_out = np.cov(z_s.T), np.cov(z_out.T)
    assert coral_distance(cov_s, cov_out) <= 0.05 * coral_distance(cov_s, np.cov(z_t.T))
    np.testing.assert_allclose(cov_out, cov_s, atol=0.02 * np.abs(cov_s).max())
    # directions untouched, magnitudes stay >= 0
    np.testing.assert_array_equal(out.d, target.d)
    assert min(out.R.min(), out.M.min(), out.Q.min()) >= 0


def test_matrix_is_the_coral_formula(shifted_pair) -> None:
    source, target, _, z_t = shifted_pair
    coral = CoralAlignment(reg=1e-2, reg_kind="absolute", max_pixels=None).fit(
        SourceFieldStats.from_fields(source, max_pixels=None), target
    )

    def power(c: np.ndarray, p: float) -> np.ndarray:
        w, v = np.linalg.eigh(c)
        return v @ np.diag(w**p) @ v.T

    eye = np.eye(3 * K)
    expected = power(np.cov(z_t.T) + 1e-2 * eye, -0.5) @ power(np.cov(_z_of(source).T) + 1e-2 * eye, 0.5)
    np.testing.assert_allclose(coral.matrix_, expected, rtol=1e-6, atol=1e-9)
    assert coral.lambda_source_ == coral.lambda_target_ == 1e-2


def test_relative_regularisation(shifted_pair) -> None:
    source, target, _, z_t = shifted_pair
    coral = CoralAlignment(reg=1e-3, max_pixels=None).fit(source, target)
    cov_t = np.cov(z_t.T)
    assert coral.lambda_target_ == pytest.approx(1e-3 * np.trace(cov_t) / cov_t.shape[0], rel=1e-4)


def test_same_domain_is_nearly_identity(shifted_pair) -> None:
    source, _, _, _ = shifted_pair
    out = CoralAlignment().fit(source, source).transform(source)
    np.testing.assert_allclose(np.log(out.R + EPS), np.log(source.R + EPS), atol=5e-3)


def test_errors(shifted_pair, fields_factory) -> None:
    source, target, _, _ = shifted_pair
    with pytest.raises(
        NotFittedError, match=r"CoralAlignment is not fitted: call fit\(source, target\) first"
    ):
        CoralAlignment().transform(target)
    with pytest.raises(ValueError, match="reg must be a number >= 0"):
        CoralAlignment(reg=-1.0).fit(source, target)
    with pytest.raises(ValueError, match="reg_kind must be 'relative' or 'absolute'"):
        CoralAlignment(reg_kind="trace").fit(source, target)
    other = fields_factory(np.zeros(6), channels=2)
    with pytest.raises(ValueError, match="target fields have K=6 steps but the source statistics have K=4"):
        CoralAlignment().fit(source, other)
