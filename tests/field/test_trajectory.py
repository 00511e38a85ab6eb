"""Reverse trajectory: grid, weights, noise determinism, and the DESIGN section 2 identities.

The known answers come from an oracle score network: for data ``x0 ~ N(μ, σ² I)`` the exact
noise prediction is ``E[ε | x_t] = sqrt(1−ᾱ) (x_t − sqrt(ᾱ) μ) / (ᾱ σ² + 1 − ᾱ)``, so the whole
DDIM trajectory is linear in ``z_n = x_{s_n} − sqrt(ᾱ_n) μ`` and can be written in closed form.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch

from refcfa.diffusion.trajectory import (
    StepRecord,
    as_score_fn,
    image_seed,
    reverse_trajectory,
    start_noise,
    step_weights,
    timestep_grid,
)

T = 1000


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny tensors on a busy 2-core machine: one intra-op thread avoids OpenMP stalls (seen ~100x)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


ALPHAS_CUMPROD = torch.cumprod(1.0 - torch.linspace(1e-4, 0.02, T, dtype=torch.float64), 0)


def gaussian_oracle(mu: float, sigma: float):
    """Exact ε-prediction for data N(mu, sigma²) per pixel; records the timesteps it is called with."""
    calls: list[torch.Tensor] = []

    def score_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        calls.append(t.clone())
        a = ALPHAS_CUMPROD[t].to(x_t.dtype).view(-1, 1, 1, 1)
        return (1 - a).sqrt() * (x_t - a.sqrt() * mu) / (a * sigma**2 + 1 - a)

    score_fn.calls = calls  # type: ignore[attr-defined]
    return score_fn


def sample_images(shape, mu, sigma, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=torch.float64) * sigma + mu).to(dtype)


# -- grid and weights ---------------------------------------------------------------------------


def test_timestep_grid_known_values():
    assert timestep_grid(100, 10) == [100, 90, 80, 70, 60, 50, 40, 30, 20, 10, 0]
    assert timestep_grid(250, 25)[:3] == [250, 240, 230]
    assert timestep_grid(7, 3) == [7, 5, 2, 0]  # 7·2/3 = 4.67 → 5, 7/3 = 2.33 → 2
    assert timestep_grid(5, 5) == [5, 4, 3, 2, 1, 0]


@pytest.mark.parametrize("t0", [1, 13, 100, 999])
def test_timestep_grid_is_even_and_strictly_decreasing(t0):
    for K in sorted(k for k in {1, 2, 3, t0 // 2, t0} if 1 <= k <= t0):
        grid = timestep_grid(t0, K)
        assert len(grid) == K + 1
        assert grid[0] == t0 and grid[-1] == 0
        assert all(isinstance(s, int) for s in grid)
        gaps = np.diff(grid)
        assert np.all(gaps < 0)
        assert gaps.max() - gaps.min() <= 1  # evenly spaced up to integer rounding


@pytest.mark.parametrize(
    ("t0", "K", "match"),
    [(10, 11, "K <= t0"), (1000, 10, "t0 < T"), (0, 1, "1 <= t0"), (100, 0, "K >= 1")],
)
def test_timestep_grid_rejects_bad_arguments(t0, K, match):
    with pytest.raises(ValueError, match=match):
        timestep_grid(t0, K)


@pytest.mark.parametrize(("t0", "K"), [(100, 10), (250, 25), (7, 3), (999, 17)])
def test_step_weights_sum_to_one(t0, K):
    grid = timestep_grid(t0, K)
    w = step_weights(grid)
    assert w.shape == (K,)
    assert np.all(w > 0)
    assert math.isclose(w.sum(), 1.0, rel_tol=1e-12)
    np.testing.assert_allclose(w, (np.array(grid[:-1]) - np.array(grid[1:])) / t0)


def test_step_weights_uniform_grid():
    np.testing.assert_allclose(step_weights(timestep_grid(100, 10)), np.full(10, 0.1))


def test_step_weights_rejects_non_grid():
    with pytest.raises(ValueError, match="strictly decreasing"):
        step_weights([10, 10, 0])


# -- noise ------------------------------------------------------------------------------------


def test_image_seed_is_sha256_of_seed_and_id():
    expected = int.from_bytes(hashlib.sha256(b"7\x00train/good/000").digest()[:8], "big") & ((1 << 63) - 1)
    assert image_seed(7, "train/good/000") == expected
    assert image_seed(7, "a") != image_seed(8, "a") != image_seed(7, "b")


def test_start_noise_independent_of_batch_composition_and_order():
    shape = (3, 8, 9)
    batch = start_noise(["a", "b", "c"], shape, seed=1)
    assert batch.shape == (3, 3, 8, 9) and batch.dtype == torch.float32
    again = start_noise(["c", "a"], (2, *shape), seed=1)
    assert torch.equal(again[0], batch[2]) and torch.equal(again[1], batch[0])
    assert torch.equal(start_noise(["b"], shape, seed=1)[0], batch[1])
    assert not torch.equal(start_noise(["a"], shape, seed=2)[0], batch[0])
    assert not torch.equal(batch[0], batch[1])
    g = torch.Generator().manual_seed(image_seed(1, "b"))
    assert torch.equal(batch[1], torch.randn(shape, generator=g))


def test_start_noise_checks_batch_size():
    with pytest.raises(ValueError, match="2 image ids"):
        start_noise(["a", "b"], (3, 1, 4, 4), seed=0)


# -- trajectory identities ------------------------------------------------------------------------


def run(score_fn, x, ids, t0=100, K=10, seed=0, **kw) -> list[StepRecord]:
    return list(reverse_trajectory(score_fn, ALPHAS_CUMPROD, x, ids, t0, K, seed, **kw))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_trajectory_identities_with_oracle(dtype):
    mu, sigma, t0, K = 0.1, 0.3, 100, 10
    x = sample_images((2, 3, 16, 16), mu, sigma, dtype=dtype)
    ids = ["a", "b"]
    oracle = gaussian_oracle(mu, sigma)
    recs = run(oracle, x, ids, t0, K)
    grid = timestep_grid(t0, K)
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-12}

    assert [r.n for r in recs] == list(range(1, K + 1))
    assert [r.timestep for r in recs] == grid[:-1] and [r.next_timestep for r in recs] == grid[1:]
    for call, s in zip(oracle.calls, grid[:-1], strict=True):
        assert call.dtype == torch.long and call.shape == (2,) and torch.all(call == s)

    a0 = ALPHAS_CUMPROD[t0].item()
    xi = start_noise(ids, x.shape, seed=0, dtype=dtype)
    torch.testing.assert_close(recs[0].x_t, math.sqrt(a0) * x + math.sqrt(1 - a0) * xi, **tol)

    for rec in recs:
        assert rec.x_t.dtype == dtype and rec.x_t.shape == x.shape
        a = ALPHAS_CUMPROD[rec.timestep].item()
        torch.testing.assert_close(
            rec.x0_hat, (rec.x_t - math.sqrt(1 - a) * rec.eps_hat) / math.sqrt(a), **tol
        )
        torch.testing.assert_close(rec.eps_star, (rec.x_t - math.sqrt(a) * x) / math.sqrt(1 - a), **tol)
        torch.testing.assert_close(rec.delta, rec.eps_hat - rec.eps_star, **tol)
        torch.testing.assert_close(rec.r, rec.x0_hat - x, **tol)
        # DESIGN: x0_hat − x = −sqrt((1−ᾱ)/ᾱ) · delta
        torch.testing.assert_close(rec.x0_hat - x, -math.sqrt((1 - a) / a) * rec.delta, **tol)
    for prev, nxt in zip(recs, recs[1:], strict=False):
        torch.testing.assert_close(prev.x_t + prev.v, nxt.x_t, **tol)
    # ᾱ at s_{K+1} = 0 is taken as 1: the final state x_{s_K} + v_K is the last step's x0_hat
    # (exactly before the subtraction that forms v; up to round-off after it).
    last = recs[-1]
    assert torch.equal(last.v, last.x0_hat - last.x_t)
    torch.testing.assert_close(last.x_t + last.v, last.x0_hat, **tol)


def test_trajectory_matches_closed_form_for_gaussian_data():
    """DDIM with the exact Gaussian score: z_{n+1} = z_n (sqrt(ᾱ'ᾱ)σ² + sqrt((1−ᾱ')(1−ᾱ))) / S_n."""
    mu, sigma, t0, K = -0.2, 0.4, 200, 8
    x = sample_images((2, 1, 12, 12), mu, sigma, dtype=torch.float64)
    recs = run(gaussian_oracle(mu, sigma), x, ["p", "q"], t0, K, seed=3)
    grid = timestep_grid(t0, K)
    abar = [ALPHAS_CUMPROD[s].item() for s in grid[:-1]] + [1.0]
    xi = start_noise(["p", "q"], x.shape, seed=3, dtype=torch.float64)
    z = math.sqrt(abar[0]) * (x - mu) + math.sqrt(1 - abar[0]) * xi
    for n, rec in enumerate(recs):
        a, a_next = abar[n], abar[n + 1]
        S = a * sigma**2 + 1 - a
        torch.testing.assert_close(rec.x_t, z + math.sqrt(a) * mu)
        torch.testing.assert_close(rec.x0_hat, mu + math.sqrt(a) * sigma**2 * z / S)  # posterior mean
        z = z * (math.sqrt(a_next * a) * sigma**2 + math.sqrt((1 - a_next) * (1 - a))) / S


def test_first_step_residual_has_the_posterior_variance():
    """For x drawn from the data law, r_1 = E[x0 | x_t] − x0 has mean 0 and variance σ²(1−ᾱ)/(ᾱσ²+1−ᾱ)."""
    mu, sigma, t0 = 0.1, 0.3, 100
    x = sample_images((4, 1, 64, 64), mu, sigma, seed=11)
    rec = run(gaussian_oracle(mu, sigma), x, [f"img{i}" for i in range(4)], t0, 10)[0]
    a = ALPHAS_CUMPROD[t0].item()
    S = a * sigma**2 + 1 - a
    assert abs(rec.r.mean().item()) < 0.01
    assert rec.r.var().item() == pytest.approx(sigma**2 * (1 - a) / S, rel=0.05)
    assert rec.delta.var().item() == pytest.approx(a * sigma**2 / S, rel=0.05)
    # and the trajectory ends on (nearly) the data law: DDIM contracts the spread only slightly
    last = run(gaussian_oracle(mu, sigma), x, [f"img{i}" for i in range(4)], t0, 10)[-1]
    assert last.x0_hat.mean().item() == pytest.approx(mu, abs=0.01)
    assert last.x0_hat.std().item() == pytest.approx(sigma, rel=0.06)


# -- determinism --------------------------------------------------------------------------------


def test_trajectory_bit_identical_across_runs_and_batch_orders():
    mu, sigma = 0.0, 0.5
    x = sample_images((3, 3, 8, 8), mu, sigma)
    ids = ["x/0", "x/1", "x/2"]
    oracle = gaussian_oracle(mu, sigma)
    first = run(oracle, x, ids)
    second = run(oracle, x, ids)
    perm = [2, 0, 1]
    permuted = run(oracle, x[perm], [ids[i] for i in perm])
    alone = run(oracle, x[1:2], ids[1:2])
    fields = ("x_t", "eps_hat", "x0_hat", "eps_star", "delta", "r", "v")
    for a, b, c, d in zip(first, second, permuted, alone, strict=True):
        for f in fields:
            assert torch.equal(getattr(a, f), getattr(b, f))
            assert torch.equal(getattr(a, f)[perm], getattr(c, f))
            assert torch.equal(getattr(a, f)[1:2], getattr(d, f))


def test_different_seed_gives_different_trajectory():
    x = sample_images((1, 1, 8, 8), 0.0, 0.5)
    a = run(gaussian_oracle(0.0, 0.5), x, ["a"], seed=0)[0]
    b = run(gaussian_oracle(0.0, 0.5), x, ["a"], seed=1)[0]
    assert not torch.equal(a.x_t, b.x_t)


# -- guidance -----------------------------------------------------------------------------------


def test_ddad_guidance_formula_and_default_off():
    mu, sigma, w = 0.0, 0.3, 0.7
    x = sample_images((2, 1, 8, 8), mu, sigma)
    x[:, :, 2:4, 2:4] = 1.0
    oracle = gaussian_oracle(mu, sigma)
    plain = run(oracle, x, ["a", "b"])
    assert all(
        torch.equal(p.x_t, q.x_t)
        for p, q in zip(plain, run(oracle, x, ["a", "b"], guidance_w=0.0), strict=True)
    )
    guided = run(oracle, x, ["a", "b"], guidance_w=w)
    assert torch.equal(guided[0].x_t, plain[0].x_t)  # same start state
    for rec in guided:
        a = ALPHAS_CUMPROD[rec.timestep].item()
        raw = oracle(rec.x_t, torch.full((2,), rec.timestep))
        y_t = math.sqrt(a) * x + math.sqrt(1 - a) * raw
        torch.testing.assert_close(rec.eps_hat, raw - w * math.sqrt(1 - a) * (y_t - rec.x_t))
        torch.testing.assert_close(rec.x0_hat - x, -math.sqrt((1 - a) / a) * rec.delta)
    # conditioning on the input keeps the reconstruction closer to it
    assert guided[-1].r.abs().mean() < plain[-1].r.abs().mean()


# -- plumbing -----------------------------------------------------------------------------------


def test_generator_runs_in_inference_mode_without_leaking_it():
    x = sample_images((1, 1, 8, 8), 0.0, 0.5)
    gen = reverse_trajectory(gaussian_oracle(0.0, 0.5), ALPHAS_CUMPROD, x, ["a"], 10, 2, 0)
    rec = next(gen)
    assert rec.x0_hat.is_inference()
    assert not torch.is_inference_mode_enabled()
    assert len(list(gen)) == 1


def test_as_score_fn_with_a_tiny_unet():
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        layers_per_block=1,
        block_out_channels=(8,),
        down_block_types=("DownBlock2D",),
        up_block_types=("UpBlock2D",),
        norm_num_groups=4,
    ).eval()
    score_fn = as_score_fn(unet)
    x = sample_images((2, 1, 8, 8), 0.0, 0.5)
    recs = run(score_fn, x, ["a", "b"], t0=20, K=2)
    assert len(recs) == 2
    assert all(r.eps_hat.shape == x.shape and r.eps_hat.dtype == torch.float32 for r in recs)
    assert not recs[0].eps_hat.requires_grad
    with torch.no_grad():
        assert torch.equal(recs[1].eps_hat, unet(recs[1].x_t, torch.tensor([10, 10])).sample)


def test_trajectory_input_errors():
    oracle = gaussian_oracle(0.0, 1.0)
    x = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match="one id per image"):
        run(oracle, x, ["only-one"])
    with pytest.raises(TypeError, match=r"\(B, C, H, W\)"):
        run(oracle, x[0], ["a"])
    with pytest.raises(ValueError, match="shape"):
        run(lambda x_t, t: x_t[:, :1, :2], x, ["a", "b"])
    with pytest.raises(ValueError, match="K <= t0"):
        run(oracle, x, ["a", "b"], t0=5, K=6)


def test_schedule_checked_only_where_used():
    x = sample_images((1, 1, 4, 4), 0.0, 1.0)
    zero_snr = ALPHAS_CUMPROD.clone()
    zero_snr[-1] = 0.0  # zero terminal SNR schedules end at ᾱ = 0: fine when t0 < T − 1
    assert len(run(gaussian_oracle(0.0, 1.0), x, ["a"], t0=100, K=2)) == 2
    assert len(list(reverse_trajectory(gaussian_oracle(0.0, 1.0), zero_snr, x, ["a"], 100, 2, 0))) == 2
    broken = ALPHAS_CUMPROD.clone()
    broken[50] = 1.0
    with pytest.raises(ValueError, match=r"must lie in \(0, 1\)"):
        list(reverse_trajectory(gaussian_oracle(0.0, 1.0), broken, x, ["a"], 100, 2, 0))
