"""CFA: composition order, switches, diagnostics, errors."""

from __future__ import annotations

import numpy as np
import pytest

from refcfa.alignment import (
    CFA,
    CoralAlignment,
    NotFittedError,
    SourceFieldStats,
    SubspaceAlignment,
    TemporalAlignment,
)

K = 12


def _pair(fields_factory):
    steps = np.arange(K)
    source = fields_factory(1.0 - 0.2 * steps, n_images=3, size=12, seed=0)
    # target: slower start, larger residuals, other directions and more steps
    warped = (K - 1) * (np.linspace(0, 1, 16) ** 1.3)
    target = fields_factory(0.5 + 1.3 * (1.0 - 0.2 * warped), n_images=3, size=12, seed=1)
    return source, target


def test_full_cfa_equals_the_parts_in_order(fields_factory) -> None:
    source, target = _pair(fields_factory)
    stats = SourceFieldStats.from_fields(source)
    cfa = CFA().fit(stats, target)
    out = cfa.transform(target)

    ta = TemporalAlignment().fit(stats, target)
    step1 = ta.transform(target)
    coral = CoralAlignment().fit(stats, step1)
    step2 = coral.transform(step1)
    dsa = SubspaceAlignment().fit(stats, step2)
    expected = dsa.transform(step2)

    assert out.K == source.K == K
    for name in ("R", "M", "Q", "d"):
        np.testing.assert_allclose(getattr(out, name), getattr(expected, name), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out.timesteps, source.timesteps)
    assert set(cfa.diagnostics_) == {*ta.diagnostics_, *coral.diagnostics_, *dsa.diagnostics_}
    assert cfa.diagnostics_["coral_distance_after"] < cfa.diagnostics_["coral_distance_before"]
    np.testing.assert_array_equal(cfa.temporal_.warp_, ta.warp_)


def test_fit_transform(fields_factory) -> None:
    source, target = _pair(fields_factory)
    a = CFA().fit_transform(source, target)
    b = CFA().fit(source, target).transform(target)
    np.testing.assert_array_equal(a.R, b.R)


def test_all_switches_off_is_identity(fields_factory) -> None:
    source, target = _pair(fields_factory)
    cfa = CFA(temporal=False, coral=False, subspace=False).fit(source, target)
    assert cfa.diagnostics_ == {}
    assert cfa.transform(target) is target
    assert (cfa.temporal_, cfa.coral_, cfa.subspace_) == (None, None, None)


def test_ablation_rows(fields_factory) -> None:
    source, target = _pair(fields_factory)
    ta_only = CFA(coral=False, subspace=False).fit(source, target)
    assert set(ta_only.diagnostics_) == {
        "dtw_cost_before",
        "dtw_cost_after",
        "index_cost_before",
        "index_cost_after",
    }
    out = ta_only.transform(target)
    np.testing.assert_array_equal(out.R, TemporalAlignment().fit(source, target).transform(target).R)
    ta_soa = CFA(subspace=False).fit(source, target)
    out = ta_soa.transform(target)
    np.testing.assert_array_equal(out.d, ta_only.transform(target).d)  # SOA leaves d alone
    # without TA, SOA/DSA need the source's K
    same_k = fields_factory(np.linspace(1, -1, K), n_images=2, size=12, seed=5)
    assert CFA(temporal=False).fit(source, same_k).transform(same_k).K == K
    with pytest.raises(ValueError, match="target fields have K=16 steps but the source statistics have K=12"):
        CFA(temporal=False).fit(source, target)


def test_errors(fields_factory) -> None:
    source, target = _pair(fields_factory)
    with pytest.raises(NotFittedError, match=r"CFA is not fitted: call fit\(source, target\) first"):
        CFA().transform(target)
    with pytest.raises(NotFittedError, match="not fitted"):
        CFA(temporal=False, coral=False, subspace=False).transform(target)
    with pytest.raises(TypeError, match="temporal must be True or False"):
        CFA(temporal="yes").fit(source, target)
    with pytest.raises(ValueError, match="n_components must be an int >= 1"):
        CFA(n_components=-2).fit(source, target)
    cfa = CFA().fit(source, target)
    with pytest.raises(ValueError, match="fields have K=12 steps .* fitted on target fields with K=16"):
        cfa.transform(source)
    assert "CFA(temporal=True, coral=True" in repr(cfa)
