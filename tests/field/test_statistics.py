"""Adaptive statistics E, NS, DV (DESIGN.md 4): known answers."""

from __future__ import annotations

import pytest
import torch

from refcfa.field.statistics import adaptive_statistics, uniform_weights


def _unit_dirs(B, K, C, H, W, seed=0):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(B, K, C, H, W, generator=g)
    return v / v.norm(dim=2, keepdim=True)


def test_constant_R_has_zero_NS_and_energy_R_squared():
    R = torch.full((2, 5, 3, 4), 0.7)
    st = adaptive_statistics(R, _unit_dirs(2, 5, 3, 3, 4))
    assert torch.allclose(st["E"], torch.full((2, 3, 4), 0.49))
    assert torch.all(st["NS"] == 0)
    assert st["E"].shape == st["NS"].shape == st["DV"].shape == (2, 3, 4)


def test_constant_direction_has_zero_DV():
    d = _unit_dirs(1, 1, 3, 4, 4).expand(1, 6, 3, 4, 4)
    st = adaptive_statistics(torch.rand(1, 6, 4, 4), d)
    assert torch.allclose(st["DV"], torch.zeros(1, 4, 4), atol=1e-6)


def test_alternating_direction_has_DV_one():
    base = _unit_dirs(1, 1, 1, 4, 4)  # C = 1: the sign
    signs = torch.tensor([1.0, -1.0] * 3).view(1, 6, 1, 1, 1)
    st = adaptive_statistics(torch.rand(1, 6, 4, 4), base * signs)
    assert torch.allclose(st["DV"], torch.ones(1, 4, 4), atol=1e-6)


def test_hand_computed_NS_with_uniform_weights():
    R = torch.tensor([1.0, 2.0, 4.0]).view(1, 3, 1, 1)
    d = torch.ones(1, 3, 1, 1, 1)
    st = adaptive_statistics(R, d, delta=0.0)
    # E = (1 + 4 + 16) / 3 = 7;  NS = ((2-1)^2 + (4-2)^2) / 3 / 7 = 5 / 21
    assert st["E"].item() == pytest.approx(7.0)
    assert st["NS"].item() == pytest.approx(5.0 / 21.0)
    assert st["DV"].item() == pytest.approx(0.0, abs=1e-6)


def test_weights_select_steps():
    R = torch.tensor([1.0, 3.0, 2.0]).view(1, 3, 1, 1)
    d = torch.tensor([1.0, -1.0, 1.0]).view(1, 3, 1, 1, 1)
    a = torch.tensor([0.0, 1.0, 0.0]).view(1, 3, 1, 1)
    st = adaptive_statistics(R, d, a, delta=0.0)
    assert st["E"].item() == pytest.approx(9.0)
    assert st["NS"].item() == pytest.approx((3.0 - 1.0) ** 2 / 9.0)  # a_2 (R_2 - R_1)^2 / E
    assert st["DV"].item() == pytest.approx(0.0, abs=1e-6)
    # None is the same as explicit uniform weights
    ref = adaptive_statistics(R, d)
    uni = adaptive_statistics(R, d, uniform_weights(R))
    for k in ref:
        assert torch.allclose(ref[k], uni[k])


def test_shape_errors_name_the_input():
    with pytest.raises(ValueError, match="d: expected"):
        adaptive_statistics(torch.rand(1, 3, 4, 4), torch.rand(1, 2, 1, 4, 4))
    with pytest.raises(ValueError, match="a: expected"):
        adaptive_statistics(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 1, 4, 4), torch.rand(1, 2, 4, 4))
