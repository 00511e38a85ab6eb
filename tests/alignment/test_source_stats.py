"""SourceFieldStats: values, and the round trip through a weights_only checkpoint."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from refcfa.alignment import CFA, SourceFieldStats


def test_statistics_values(fields_factory) -> None:
    fs = fields_factory(np.linspace(1.0, -1.0, 5), channels=2)
    stats = SourceFieldStats.from_fields(fs, max_pixels=None)
    assert (stats.K, stats.C, stats.n_pixels) == (5, 2, fs.N * fs.H * fs.W)
    px = fs.pixels()
    log_r = np.log(px.R.astype(np.float64) + stats.eps)
    np.testing.assert_allclose(stats.log_r_median, np.median(log_r, axis=0))
    z = np.log(np.stack([px.R, px.M, px.Q], axis=2).astype(np.float64) + stats.eps).reshape(px.P, -1)
    np.testing.assert_allclose(stats.z_mean, z.mean(axis=0))
    np.testing.assert_allclose(stats.z_cov, np.cov(z, rowvar=False), rtol=1e-10, atol=1e-12)
    delta = px.d.astype(np.float64).reshape(px.P, -1)
    basis = stats.delta_basis
    np.testing.assert_allclose(basis.T @ basis, np.eye(10), atol=1e-10)
    # columns are principal directions in decreasing variance
    np.testing.assert_allclose(
        np.var(delta @ basis, axis=0, ddof=1), stats.delta_variance, rtol=1e-8, atol=1e-12
    )
    assert np.all(np.diff(stats.delta_variance) <= 1e-12)
    np.testing.assert_array_equal(stats.timesteps, fs.timesteps)


def _same(a: SourceFieldStats, b: SourceFieldStats) -> None:
    for name in (
        "log_r_median",
        "z_mean",
        "z_cov",
        "delta_mean",
        "delta_basis",
        "delta_variance",
        "timesteps",
    ):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert (a.n_pixels, a.eps) == (b.n_pixels, b.eps)


def test_round_trip_numpy_lists_and_torch_checkpoint(fields_factory) -> None:
    source = fields_factory(np.linspace(1.0, -1.0, 6))
    stats = SourceFieldStats.from_fields(source, max_pixels=300, seed=1)
    _same(SourceFieldStats.from_dict(stats.to_dict()), stats)
    as_lists = stats.to_dict(arrays="list")
    assert all(isinstance(v, (list, str, int, float)) for v in as_lists.values())
    _same(SourceFieldStats.from_dict(as_lists), stats)
    # into a weights_only checkpoint: arrays as tensors, the rest as plain values
    buffer = io.BytesIO()
    payload = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in stats.to_dict().items()}
    torch.save({"cfa_source_stats": payload}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)["cfa_source_stats"]
    restored = SourceFieldStats.from_dict(loaded)
    _same(restored, stats)
    buffer = io.BytesIO()
    torch.save(as_lists, buffer)
    buffer.seek(0)
    _same(SourceFieldStats.from_dict(torch.load(buffer, weights_only=True)), stats)
    # an aligner fitted from restored statistics is the same aligner
    target = fields_factory(np.linspace(1.2, -0.5, 6), seed=5)
    a = CFA().fit(stats, target).transform(target)
    b = CFA().fit(restored, target).transform(target)
    np.testing.assert_array_equal(a.R, b.R)
    np.testing.assert_array_equal(a.d, b.d)


def test_from_dict_errors(fields_factory) -> None:
    good = SourceFieldStats.from_fields(fields_factory(np.zeros(3)), max_pixels=100).to_dict()
    with pytest.raises(ValueError, match="data\\['format'\\] is None"):
        SourceFieldStats.from_dict({})
    with pytest.raises(ValueError, match="version 99 is not supported"):
        SourceFieldStats.from_dict({**good, "version": 99})
    with pytest.raises(ValueError, match=r"missing key\(s\) \['z_cov'\]"):
        SourceFieldStats.from_dict({k: v for k, v in good.items() if k != "z_cov"})
    with pytest.raises(ValueError, match=r"z_cov has shape \(8, 8\), expected \(9, 9\)"):
        SourceFieldStats.from_dict({**good, "z_cov": np.eye(8)})
    with pytest.raises(TypeError, match="data must be a mapping"):
        SourceFieldStats.from_dict([1, 2])
    with pytest.raises(TypeError, match="fields must be a FieldSet"):
        SourceFieldStats.from_fields(np.zeros((1, 3, 4, 4)))
