"""REF primitives (DESIGN section 3) against known answers, a brute-force reference and an oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from refcfa.diffusion.trajectory import StepRecord, reverse_trajectory, step_weights, timestep_grid
from refcfa.field.primitives import (
    FieldStep,
    RefAccumulator,
    compute_fields,
    directional_offset,
    gradient_residual,
    residual_direction,
)

ALPHAS_CUMPROD = torch.cumprod(1.0 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny tensors on a busy 2-core machine: one intra-op thread avoids OpenMP stalls (seen ~100x)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def gaussian_oracle(mu: float, sigma: float):
    """Exact ε-prediction for data N(mu, sigma²) per pixel."""

    def score_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = ALPHAS_CUMPROD[t].to(x_t.dtype).view(-1, 1, 1, 1)
        return (1 - a).sqrt() * (x_t - a.sqrt() * mu) / (a * sigma**2 + 1 - a)

    return score_fn


def fake_record(n: int, r: torch.Tensor, delta: torch.Tensor | None = None, v: torch.Tensor | None = None):
    z = torch.zeros_like(r)
    return StepRecord(
        n=n, timestep=100 - n, next_timestep=99 - n, x_t=z, eps_hat=z, x0_hat=z, eps_star=z,
        delta=z if delta is None else delta, r=r, v=z if v is None else v,
    )  # fmt: skip


def directional_offset_reference(delta: np.ndarray, v: np.ndarray, patch: int, eps: float) -> np.ndarray:
    """Pixel-by-pixel DESIGN formula on reflect-padded arrays (the slow, obvious version)."""
    B, C, H, W = delta.shape
    p = patch // 2
    pad = ((0, 0), (0, 0), (p, p), (p, p))
    dp, vp = np.pad(delta, pad, mode="reflect"), np.pad(v, pad, mode="reflect")
    out = np.zeros((B, H, W))
    for b in range(B):
        for y in range(H):
            for x in range(W):
                a = dp[b, :, y : y + patch, x : x + patch].ravel()
                c = vp[b, :, y : y + patch, x : x + patch].ravel()
                out[b, y, x] = np.linalg.norm(a - (a @ c / (c @ c + eps)) * c) / math.sqrt(C * patch * patch)
    return out


# -- R, d -----------------------------------------------------------------------------------------


def test_gradient_residual_known_values():
    delta = torch.tensor([[3.0, -1.0], [4.0, 1.0]]).view(1, 2, 1, 2)  # C = 2, two pixels
    R = gradient_residual(delta)
    assert R.shape == (1, 1, 2)
    torch.testing.assert_close(R, torch.tensor([[[math.sqrt(12.5), 1.0]]]))


def test_residual_direction_is_sign_for_one_channel_and_unit_for_three():
    r1 = torch.tensor([-2.0, 0.5, 0.0]).view(1, 1, 1, 3)
    torch.testing.assert_close(
        residual_direction(r1), torch.tensor([-1.0, 1.0, 0.0]).view(1, 1, 1, 3), atol=1e-5, rtol=0
    )
    r3 = torch.randn(2, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    d = residual_direction(r3)
    torch.testing.assert_close(d.norm(dim=1), torch.ones(2, 5, 5), atol=1e-5, rtol=0)
    torch.testing.assert_close(d * r3.norm(dim=1, keepdim=True), r3, atol=1e-5, rtol=1e-5)


# -- M --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("patch", [1, 3, 5])
def test_directional_offset_matches_pixelwise_reference(patch):
    g = torch.Generator().manual_seed(1)
    delta = torch.randn(2, 3, 6, 7, generator=g)
    v = 0.5 * delta + torch.randn(2, 3, 6, 7, generator=g)
    M = directional_offset(delta, v, patch=patch)
    assert M.shape == (2, 6, 7) and M.dtype == torch.float32
    ref = directional_offset_reference(delta.double().numpy(), v.double().numpy(), patch, 1e-6)
    np.testing.assert_allclose(M.numpy(), ref, rtol=1e-5, atol=1e-6)


def test_directional_offset_zero_when_delta_parallel_to_v():
    delta = torch.randn(2, 3, 9, 9, generator=torch.Generator().manual_seed(2))
    for scale in (-2.5, 0.3, 4.0):
        M = directional_offset(delta, scale * delta)
        assert M.abs().max().item() < 1e-5 * gradient_residual(delta).max().item()


def test_directional_offset_equals_R_when_orthogonal_and_constant():
    a, b = 1.7, -0.4
    delta = torch.zeros(1, 2, 6, 6)
    v = torch.zeros(1, 2, 6, 6)
    delta[:, 0], v[:, 1] = a, b  # delta ⟂ v in every neighbourhood
    torch.testing.assert_close(directional_offset(delta, v), gradient_residual(delta))
    # C = 1: with no flow the whole residual is "off the flow"
    delta1 = torch.full((1, 1, 5, 5), -0.8)
    torch.testing.assert_close(
        directional_offset(delta1, torch.zeros_like(delta1)), gradient_residual(delta1)
    )


def test_directional_offset_rejects_bad_patch_and_shapes():
    x = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match="odd"):
        directional_offset(x, x, patch=2)
    with pytest.raises(ValueError, match="too large"):
        directional_offset(x, x, patch=9)
    with pytest.raises(ValueError, match="same shape"):
        directional_offset(x, torch.zeros(1, 2, 4, 4))


# -- Q and the accumulator ----------------------------------------------------------------------


def test_Q_of_alternating_residual_stays_near_zero_and_constant_residual_gives_abs_a():
    K, a = 10, 0.8
    w = np.full(K, 1.0 / K)
    alt, const = RefAccumulator(w), RefAccumulator(w)
    ones = torch.ones(1, 3, 4, 4)
    for n in range(1, K + 1):
        q_alt = alt.update(fake_record(n, (a if n % 2 else -a) * ones)).Q
        q_const = const.update(fake_record(n, a * ones)).Q
        assert q_alt.max().item() <= a / K + 1e-6
        torch.testing.assert_close(q_const, torch.full((1, 4, 4), a * n / K))
    torch.testing.assert_close(q_alt, torch.zeros(1, 4, 4), atol=1e-6, rtol=0)
    torch.testing.assert_close(q_const, torch.full((1, 4, 4), a))


def test_Q_uses_the_grid_weights():
    grid = timestep_grid(7, 3)  # [7, 5, 2, 0]: w = [2/7, 3/7, 2/7]
    acc = RefAccumulator(step_weights(grid))
    rs = [torch.full((1, 1, 2, 2), v) for v in (1.0, -2.0, 0.5)]
    qs = [acc.update(fake_record(n, r)).Q for n, r in enumerate(rs, 1)]
    expected = [abs(2 / 7), abs(2 / 7 - 6 / 7), abs(2 / 7 - 6 / 7 + 1 / 7)]
    for q, e in zip(qs, expected, strict=True):
        torch.testing.assert_close(q, torch.full((1, 2, 2), e))


def test_accumulator_step_fields_and_order():
    g = torch.Generator().manual_seed(3)
    r, delta, v = (torch.randn(2, 3, 5, 5, generator=g) for _ in range(3))
    acc = RefAccumulator([0.5, 0.5], patch=3)
    step = acc.update(fake_record(1, r, delta, v))
    assert isinstance(step, FieldStep) and step.n == 1 and step.timestep == 99
    torch.testing.assert_close(step.R, gradient_residual(delta))
    torch.testing.assert_close(step.M, directional_offset(delta, v))
    torch.testing.assert_close(step.d, residual_direction(r))
    torch.testing.assert_close(step.Q, (0.5 * r).square().mean(1).sqrt())
    with pytest.raises(ValueError, match="in order"):
        acc.update(fake_record(3, r))
    acc.update(fake_record(2, r))
    with pytest.raises(ValueError, match="in order"):
        acc.update(fake_record(3, r))


def _tensor_state(obj) -> tuple[int, int]:
    tensors = [v for v in vars(obj).values() if isinstance(v, torch.Tensor)]
    nested = [v for v in vars(obj).values() if isinstance(v, (list, dict, set))]
    assert not nested, "the accumulator must not keep per-step collections"
    return len(tensors), sum(t.numel() for t in tensors)


def test_accumulator_memory_does_not_grow_with_K():
    shape = (2, 3, 6, 6)
    states = []
    for K in (3, 40):
        acc = RefAccumulator(np.full(K, 1.0 / K))
        for n in range(1, K + 1):
            acc.update(fake_record(n, torch.randn(shape)))
        states.append(_tensor_state(acc))
    assert states[0] == states[1] == (1, math.prod(shape))


# -- oracle experiments ----------------------------------------------------------------------------


def test_compute_fields_matches_accumulator_over_trajectory_and_R_identity():
    mu, sigma, t0, K = 0.0, 0.3, 100, 5
    x = (torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(4)) * sigma + mu).float()
    ids = ["u", "v"]
    steps = list(compute_fields(gaussian_oracle(mu, sigma), ALPHAS_CUMPROD, x, ids, t0, K, seed=5))
    acc = RefAccumulator(step_weights(timestep_grid(t0, K)))
    recs = list(reverse_trajectory(gaussian_oracle(mu, sigma), ALPHAS_CUMPROD, x, ids, t0, K, seed=5))
    for step, rec in zip(steps, recs, strict=True):
        ref = acc.update(rec)
        for f in ("R", "M", "Q", "d", "x0_hat"):
            assert torch.equal(getattr(step, f), getattr(ref, f))
        # R_n = sqrt(ᾱ/(1−ᾱ)) · sqrt(mean_c r_n²), from x0_hat − x = −sqrt((1−ᾱ)/ᾱ) delta
        a = ALPHAS_CUMPROD[rec.timestep].item()
        torch.testing.assert_close(step.R, math.sqrt(a / (1 - a)) * rec.r.square().mean(1).sqrt())


def test_planted_anomaly_has_persistent_directed_drift():
    """Data N(μ, σ²) everywhere; the input has an 8×8 patch at μ + 4σ.

    The patch keeps being pulled back towards the data: larger Q_K and late R_K, and a steady
    direction (lower DV, uniform weights) than the background.
    """
    mu, sigma, t0, K = 0.1, 0.3, 100, 10
    g = torch.Generator().manual_seed(6)
    x = (torch.randn(2, 1, 32, 32, generator=g) * sigma + mu).float()
    mask = torch.zeros(32, 32, dtype=torch.bool)
    mask[10:18, 12:20] = True
    x[:, :, mask] = mu + 4 * sigma
    steps = list(compute_fields(gaussian_oracle(mu, sigma), ALPHAS_CUMPROD, x, ["a", "b"], t0, K, seed=0))
    Q_K, R_K = steps[-1].Q, steps[-1].R
    DV = 1 - torch.stack([s.d for s in steps]).mean(0).norm(dim=1)  # uniform weights

    def inside_outside(f):
        return f[:, mask].mean().item(), f[:, ~mask].mean().item()

    q_in, q_out = inside_outside(Q_K)
    r_in, r_out = inside_outside(R_K)
    dv_in, dv_out = inside_outside(DV)
    assert q_in > 2 * q_out
    assert r_in > 2 * r_out
    assert dv_in < 0.5 * dv_out
    # the drift points back to the data: the residual sign is negative on the whole patch
    assert (steps[-1].d[:, 0][:, mask] < 0).float().mean() > 0.9
