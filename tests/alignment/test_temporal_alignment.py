"""TemporalAlignment: a known warp recovered, identity, K_S != K_T, errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import brentq

from refcfa.alignment import FieldSet, NotFittedError, SourceFieldStats, TemporalAlignment
from refcfa.alignment.temporal import resample_steps

K = 30
STEPS = np.arange(K)


def _warp(a: float, b: float, x: np.ndarray) -> np.ndarray:
    """Monotone (for the a, b used), endpoints fixed, odd-symmetric about the centre."""
    return x + a * np.sin(2 * np.pi * x / (K - 1)) + b * np.sin(4 * np.pi * x / (K - 1))


def _std_preserving_warp(a: float) -> tuple[np.ndarray, np.ndarray]:
    """w on the K steps and w^{-1} at the K steps.

    The curves are z-normalised before DTW (DESIGN.md 6.1), so a warp is identifiable only if it
    leaves the mean and the std of the sampled curve unchanged; symmetry fixes the mean, ``b`` is
    solved for the std.
    """
    b = brentq(lambda b: _warp(a, b, STEPS).std() - STEPS.std(), -2.3, 2.3)
    fine = np.linspace(0, K - 1, 20001)
    warped = _warp(a, b, fine)
    assert np.all(np.diff(warped) > 0)
    return _warp(a, b, STEPS), np.interp(STEPS, warped, fine)


def _curve(x: np.ndarray) -> np.ndarray:
    return 1.5 - 4.0 * x / (K - 1)  # log R_n: smooth, monotone


@pytest.mark.parametrize(("a", "seed"), [(0.8, 0), (-0.6, 1), (0.4, 2)])
def test_known_warp_recovered_within_half_a_step(fields_factory, a: float, seed: int) -> None:
    w, w_inv = _std_preserving_warp(a)
    assert np.abs(w_inv - STEPS).max() > 1.0  # a real warp: the identity would fail
    source = fields_factory(_curve(STEPS), seed=seed)
    # target step m looks like source step w(m); gain and spread of log R differ as well
    target = fields_factory(0.7 * _curve(w) + 1.0, seed=seed + 10)
    ta = TemporalAlignment().fit(source, target)
    # source step n <-> target step w^{-1}(n)
    error = np.abs(ta.warp_ - w_inv)[1 : K - 1]  # interior steps
    assert error.max() < 0.5 and error.mean() < 0.15
    assert np.all(np.diff(ta.warp_) >= 0) and ta.warp_[0] >= 0 and ta.warp_[-1] <= K - 1
    diag = ta.diagnostics_
    assert diag["index_cost_after"] < 0.3 * diag["index_cost_before"]
    assert diag["dtw_cost_after"] <= diag["dtw_cost_before"] + 1e-3


def test_plain_dtw_resolution_is_about_half_a_step(fields_factory) -> None:
    w, w_inv = _std_preserving_warp(0.8)
    source = fields_factory(_curve(STEPS))
    target = fields_factory(_curve(w), seed=10)
    plain = TemporalAlignment(upsample=1).fit(source, target)
    assert np.abs(plain.warp_ - w_inv)[1:-1].max() < 0.7  # integer matches, averaged


def test_resampled_fields_follow_the_source_steps(fields_factory) -> None:
    w, _ = _std_preserving_warp(0.8)
    source = fields_factory(_curve(STEPS))
    target = fields_factory(_curve(w), seed=10)
    ta = TemporalAlignment().fit(source, target)
    out = ta.transform(target)
    assert (out.N, out.K, out.C, out.H, out.W) == (target.N, K, target.C, target.H, target.W)
    np.testing.assert_array_equal(out.timesteps, source.timesteps)
    median_log_r = np.median(np.log(out.R + 1e-6), axis=(0, 2, 3))
    source_median = np.median(np.log(source.R + 1e-6), axis=(0, 2, 3))
    # the source's curve up to the centring the z-normalisation removes, within 0.3 step
    gap = (median_log_r - median_log_r.mean()) - (source_median - source_median.mean())
    change_per_step = 4.0 / (K - 1)
    assert np.abs(gap).max() < 0.3 * change_per_step
    # directions stay unit vectors
    np.testing.assert_allclose(np.linalg.norm(out.d, axis=2), 1.0, atol=1e-5)


def test_identity_when_curves_agree(fields_factory) -> None:
    fields = fields_factory(_curve(STEPS), channels=1)
    ta = TemporalAlignment().fit(fields, fields)
    np.testing.assert_array_equal(ta.warp_, STEPS)
    assert ta.diagnostics_["dtw_cost_before"] == 0.0 and ta.diagnostics_["index_cost_after"] == 0.0
    out = ta.transform(fields)
    for name in ("R", "M", "Q", "d"):
        np.testing.assert_array_equal(getattr(out, name), getattr(fields, name))


def test_different_numbers_of_steps(fields_factory) -> None:
    k_s, k_t = 20, 30
    source = fields_factory(_curve(np.linspace(0, K - 1, k_s)))
    target = fields_factory(_curve(np.linspace(0, K - 1, k_t)), seed=3)
    ta = TemporalAlignment().fit(SourceFieldStats.from_fields(source), target)
    expected = np.arange(k_s) * (k_t - 1) / (k_s - 1)
    assert np.abs(ta.warp_ - expected)[1:-1].max() < 0.5
    out = ta.transform(target)
    assert out.K == k_s and out.R.shape == (target.N, k_s, target.H, target.W)
    np.testing.assert_array_equal(out.timesteps, source.timesteps)


def test_timesteps_without_source_timesteps(fields_factory) -> None:
    fields = fields_factory(_curve(STEPS))
    stats = SourceFieldStats.from_fields(FieldSet(fields.R, fields.M, fields.Q, fields.d))  # no timesteps
    out = TemporalAlignment().fit(stats, fields).transform(fields)
    np.testing.assert_allclose(out.timesteps, fields.timesteps)


def test_resample_steps_interpolates_linearly() -> None:
    x = np.arange(12.0).reshape(2, 3, 2)  # step axis 1: values 0, 2, 4 (+1)
    out = resample_steps(x, np.array([0.0, 0.5, 2.0, 1.25]))
    np.testing.assert_allclose(out[0, :, 0], [0.0, 1.0, 4.0, 2.5])


def test_errors(fields_factory) -> None:
    fields = fields_factory(_curve(STEPS))
    with pytest.raises(
        NotFittedError, match=r"TemporalAlignment is not fitted: call fit\(source, target\) first"
    ):
        TemporalAlignment().transform(fields)
    with pytest.raises(ValueError, match="upsample must be an int in"):
        TemporalAlignment(upsample=0).fit(fields, fields)
    with pytest.raises(ValueError, match="max_pixels must be an int >= 2"):
        TemporalAlignment(max_pixels=1).fit(fields, fields)
    with pytest.raises(TypeError, match="target must be a FieldSet"):
        TemporalAlignment().fit(fields, fields.R)
    with pytest.raises(TypeError, match="source must be SourceFieldStats"):
        TemporalAlignment().fit({"R": fields.R}, fields)
    ta = TemporalAlignment().fit(fields, fields)
    shorter = fields_factory(_curve(STEPS[:10]))
    with pytest.raises(
        ValueError, match="fields have K=10 steps and C=3 channels but the aligner was fitted"
    ):
        ta.transform(shorter)
    with pytest.raises(
        ValueError, match="target fields have C=1 channels but the source statistics have C=3"
    ):
        TemporalAlignment().fit(fields, fields_factory(_curve(STEPS), channels=1))
