"""SubspaceAlignment: a known rotation of the direction subspace undone."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from refcfa.alignment import FieldSet, NotFittedError, SourceFieldStats, SubspaceAlignment

K, C, SIDE, N_IMAGES = 6, 3, 16, 2


def _fields(d: np.ndarray) -> FieldSet:
    """FieldSet from directions d: (P, K, C) with P = N_IMAGES * SIDE * SIDE; R, M, Q arbitrary."""
    rng = np.random.default_rng(0)
    shape = (N_IMAGES, K, SIDE, SIDE)
    d = np.moveaxis(d.reshape(N_IMAGES, SIDE, SIDE, K, C), (3, 4), (1, 2))
    return FieldSet(R=rng.random(shape), M=rng.random(shape), Q=rng.random(shape), d=d)


def _pixel_directions(fields: FieldSet) -> np.ndarray:
    return fields.pixels().d.astype(np.float64)


def test_rank_one_rotation_recovered_per_sample() -> None:
    rng = np.random.default_rng(1)
    p = N_IMAGES * SIDE * SIDE
    a = rng.normal(size=(K, C))
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    sign = np.repeat([1.0, -1.0], p // 2)[rng.permutation(p)]  # exactly balanced: zero mean
    d_source = sign[:, None, None] * a
    # target: every step's direction rotated by its own rotation (< 90 degrees overall)
    rotations = Rotation.from_rotvec(0.6 * rng.normal(size=(K, 3)) / np.sqrt(3)).as_matrix()
    b = np.einsum("kij,kj->ki", rotations, a)
    assert np.sum(a * b) > 0
    d_target = sign[:, None, None] * b
    source, target = _fields(d_source), _fields(d_target)
    dsa = SubspaceAlignment(n_components=1, max_pixels=None).fit(source, target)
    assert dsa.diagnostics_["principal_angles_before"][0] > 10
    assert dsa.diagnostics_["principal_angles_after"][0] < 1e-3
    out = dsa.transform(target)
    np.testing.assert_allclose(_pixel_directions(out), d_source, atol=1e-5)
    for name in ("R", "M", "Q"):
        np.testing.assert_array_equal(getattr(out, name), getattr(target, name))


def _plane_directions(phi: np.ndarray, omega: np.ndarray) -> np.ndarray:
    """d_n(u) = cos(phi_u + omega_n) e1 + sin(phi_u + omega_n) e2: a rank-2 family, (P, K, 3)."""
    angle = phi[:, None] + omega[None, :]
    return np.stack([np.cos(angle), np.sin(angle), np.zeros_like(angle)], axis=2)


def test_rotated_plane_recovered() -> None:
    p = N_IMAGES * SIDE * SIDE
    phi = np.random.default_rng(2).permutation(np.arange(p) * 2 * np.pi / p)  # uniform: zero mean
    omega = 2 * np.pi * np.arange(K) / K
    d_source = _plane_directions(phi, omega)
    theta = np.radians(60)
    about_e1 = Rotation.from_rotvec([theta, 0, 0]).as_matrix()
    d_target = d_source @ about_e1.T  # every direction tilted out of the e1-e2 plane
    dsa = SubspaceAlignment(n_components=2, max_pixels=None).fit(_fields(d_source), _fields(d_target))
    # the 2-D subspaces meet at equal principal angles arccos((1 + cos theta) / 2)
    expected = np.degrees(np.arccos((1 + np.cos(theta)) / 2))
    np.testing.assert_allclose(dsa.diagnostics_["principal_angles_before"], [expected, expected], atol=1e-6)
    np.testing.assert_allclose(dsa.diagnostics_["principal_angles_after"], 0.0, atol=1e-3)
    out = _pixel_directions(dsa.transform(_fields(d_target)))
    np.testing.assert_allclose(out, d_source, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out, axis=2), 1.0, atol=1e-6)


def test_noisy_rotation_brings_subspaces_together(fields_factory) -> None:
    rng = np.random.default_rng(3)
    p = N_IMAGES * SIDE * SIDE
    d_source = _plane_directions(rng.uniform(0, 2 * np.pi, p), 2 * np.pi * np.arange(K) / K)
    d_source = d_source + 0.1 * rng.normal(size=d_source.shape)
    d_source /= np.linalg.norm(d_source, axis=2, keepdims=True)
    d_target = d_source @ Rotation.from_rotvec([0.5, 0.3, 0.0]).as_matrix().T
    dsa = SubspaceAlignment(n_components=2).fit(_fields(d_source), _fields(d_target))
    before = dsa.diagnostics_["principal_angles_before"]
    after = dsa.diagnostics_["principal_angles_after"]
    assert before.max() > 15 and after.max() < 0.25 * before.max()
    assert np.all(np.diff(before) >= 0)  # ascending


def test_default_components_and_errors(fields_factory) -> None:
    fields = fields_factory(np.zeros(K), channels=2)
    dsa = SubspaceAlignment().fit(fields, fields)
    assert dsa.n_components_ == 8 and dsa.basis_source_.shape == (2 * K, 8)
    assert (
        SubspaceAlignment()
        .fit(fields_factory(np.zeros(2), channels=1), fields_factory(np.zeros(2), channels=1))
        .n_components_
        == 2
    )
    with pytest.raises(
        NotFittedError, match=r"SubspaceAlignment is not fitted: call fit\(source, target\) first"
    ):
        SubspaceAlignment().transform(fields)
    with pytest.raises(ValueError, match="n_components=13 exceeds the dimension C\\*K = 12"):
        SubspaceAlignment(n_components=13).fit(fields, fields)
    with pytest.raises(ValueError, match="n_components must be an int >= 1"):
        SubspaceAlignment(n_components=0).fit(fields, fields)
    stats = SourceFieldStats.from_fields(fields)
    with pytest.raises(ValueError, match="target fields have K=4 steps but the source statistics have K=6"):
        SubspaceAlignment().fit(stats, fields_factory(np.zeros(4), channels=2))
