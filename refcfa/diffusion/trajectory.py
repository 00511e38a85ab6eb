"""Partial, deterministic reverse trajectory (DDIM, η = 0) that records every step.

The sampler is kept apart from the score network, as in diffusers' ``DDIMScheduler``: the
network is any :data:`ScoreFn` ``(x_t (B, C, H, W), t (B,) long) -> eps_hat (B, C, H, W)``
(:func:`as_score_fn` adapts a diffusers ``UNet2DModel``), and :func:`reverse_trajectory` is a
generator that yields one small :class:`StepRecord` per reverse step.

Formulas are those of ``DESIGN.md`` section 2. Notation map (DESIGN symbol -> code name ->
diffusers ``DDIMScheduler.step`` name):

======================  =================  ==========================================
DESIGN                  code               diffusers
======================  =================  ==========================================
``T``                   ``len(alphas_cumprod)``  ``num_train_timesteps``
``t0 = s_1``            ``t0``             first entry of ``timesteps``
``s_n``                 ``timestep``       ``timestep``
``s_{n+1}``             ``next_timestep``  ``prev_timestep``
``ᾱ = ᾱ_{s_n}``         ``abar``           ``alpha_prod_t``
``ᾱ_{s_{n+1}}``         ``abar_next``      ``alpha_prod_t_prev``
``x`` (the input)       ``x``              —
``ξ``                   ``start_noise``    —
``x_{s_n}``             ``x_t``            ``sample``
``ε_θ(x_s, s)``         ``eps_hat``        ``model_output`` / ``pred_epsilon``
``x0_hat``              ``x0_hat``         ``pred_original_sample``
``eps_star``            ``eps_star``       —
``delta``               ``delta``          —
``r``                   ``r``              —
``x_{s_{n+1}}``         ``x_next``         ``prev_sample``
``v``                   ``v``              —
======================  =================  ==========================================

Documented choices:

* **ᾱ at the end of the grid.** The grid ends at ``s_{K+1} = 0``. The network is never called at
  0 (``s_K ≥ 1``); for the last update ``ᾱ_{s_{K+1}}`` is taken as **1.0** (the clean image),
  diffusers' ``set_alpha_to_one=True``, *not* ``alphas_cumprod[0]``. Hence the final state
  ``x_{s_{K+1}}`` equals the last step's ``x0_hat`` exactly, and ``v_K = x0_hat_K − x_{s_K}``.
* **No clipping** of ``x0_hat`` (diffusers' ``clip_sample=False``), so the identities of
  DESIGN section 2 (``x0_hat − x = −sqrt((1−ᾱ)/ᾱ)·delta``) hold exactly.
* **Noise.** ``ξ`` is drawn per image on the CPU from a ``torch.Generator`` seeded with the first
  63 bits of ``sha256(f"{seed}\\0{image_id}")`` (:func:`image_seed`), then moved to ``x``'s
  device: the same image gives bit-identical noise whatever the batch composition, order or device.
* **Optional input-conditioned guidance** (DDAD, Mousakhan et al. 2023, eq. of the conditioned
  denoising step; config ``guidance_w``, default 0 = the seed's unconditional steps):
  ``y_t = sqrt(ᾱ) x + sqrt(1−ᾱ) ε_θ(x_s, s)`` and
  ``eps_hat = ε_θ(x_s, s) − w · sqrt(1−ᾱ) · (y_t − x_s)``. The guided ``eps_hat`` is the one
  recorded and used for ``x0_hat``, ``delta`` and the DDIM update.
* **dtype/device** follow ``x`` (float32 expected; float64 works for exact tests); the network
  output is cast to them. The whole generator runs under ``torch.inference_mode()``: yielded
  tensors are inference tensors (use out-of-place ops on them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``(x_t (B, C, H, W), t (B,) long) -> eps_hat (B, C, H, W)``."""

__all__ = [
    "ScoreFn",
    "StepRecord",
    "as_score_fn",
    "image_seed",
    "reverse_trajectory",
    "start_noise",
    "step_weights",
    "timestep_grid",
]


@dataclass
class StepRecord:
    """One reverse step ``n`` (1-based) of the partial trajectory; tensors are ``(B, C, H, W)``.

    ``x_t`` is the state ``x_{s_n}`` entering the step, ``v = x_{s_{n+1}} − x_{s_n}`` its
    displacement; the other fields are the DESIGN section 2 quantities at ``s = timestep``.
    """

    n: int
    timestep: int
    next_timestep: int
    x_t: torch.Tensor
    eps_hat: torch.Tensor
    x0_hat: torch.Tensor
    eps_star: torch.Tensor
    delta: torch.Tensor
    r: torch.Tensor
    v: torch.Tensor


def timestep_grid(t0: int, K: int, num_train_timesteps: int = 1000) -> list[int]:
    """Evenly spaced grid ``[s_1 = t0, s_2, …, s_K, s_{K+1} = 0]`` (length ``K + 1``).

    ``s_m = floor(t0 · (K + 1 − m) / K + 1/2)`` in exact integer arithmetic (round half up), so
    the grid is strictly decreasing whenever ``K ≤ t0``.

    Raises:
        ValueError: ``K < 1``, ``t0 < 1``, ``K > t0`` (steps would repeat) or
            ``t0 ≥ num_train_timesteps`` (no ``ᾱ_{t0}``).
    """
    t0, K, T = int(t0), int(K), int(num_train_timesteps)
    if K < 1:
        raise ValueError(
            f"K (number of reverse steps) = {K}: expected K >= 1; set field.K to a positive integer"
        )
    if t0 < 1 or t0 >= T:
        raise ValueError(
            f"t0 (start step) = {t0}: expected 1 <= t0 < T = {T}; choose a start step inside the schedule"
        )
    if K > t0:
        raise ValueError(
            f"K = {K} reverse steps do not fit below t0 = {t0}: expected K <= t0; lower K or raise t0"
        )
    return [(2 * t0 * (K + 1 - m) + K) // (2 * K) for m in range(1, K + 2)]


def step_weights(grid: Sequence[int]) -> np.ndarray:
    """Path weights ``w_m = (s_m − s_{m+1}) / t0``, ``m = 1..K`` → float64 ``(K,)``, summing to 1."""
    s = np.asarray(grid, dtype=np.int64)
    if s.ndim != 1 or s.size < 2 or s[-1] != 0 or np.any(np.diff(s) >= 0):
        raise ValueError(
            f"grid = {list(s)}: expected a strictly decreasing list ending in 0 (use timestep_grid(t0, K))"
        )
    return (s[:-1] - s[1:]).astype(np.float64) / float(s[0])


def image_seed(seed: int, image_id: str) -> int:
    """Stable 63-bit generator seed for ``(global seed, image id)`` (sha256; not Python's ``hash``)."""
    digest = hashlib.sha256(f"{int(seed)}\0{image_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)


def start_noise(
    image_ids: Sequence[str],
    shape: Sequence[int],
    seed: int,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Start noise ``ξ ~ N(0, I)`` → ``(B, C, H, W)``, one generator per image id.

    Args:
        image_ids: ``B`` image ids.
        shape: per-image ``(C, H, W)``, or ``(B, C, H, W)`` with ``B == len(image_ids)``.
        seed: the global seed.
    """
    ids = list(image_ids)
    shape = tuple(int(s) for s in shape)
    if len(shape) == 4:
        if shape[0] != len(ids):
            raise ValueError(
                f"shape {shape} has batch {shape[0]} but {len(ids)} image ids were given: pass one id per image"
            )
        shape = shape[1:]
    if len(shape) != 3:
        raise ValueError(f"shape {shape}: expected (C, H, W) or (B, C, H, W)")
    noise = []
    for image_id in ids:
        g = torch.Generator(device="cpu").manual_seed(image_seed(seed, str(image_id)))
        noise.append(torch.randn(shape, generator=g, dtype=torch.float32))
    out = torch.stack(noise) if noise else torch.empty((0, *shape))
    return out.to(device=device, dtype=dtype)


def _as_float64(alphas_cumprod: Any) -> np.ndarray:
    if isinstance(alphas_cumprod, torch.Tensor):
        alphas_cumprod = alphas_cumprod.detach().to("cpu", torch.float64).numpy()
    abar = np.asarray(alphas_cumprod, dtype=np.float64)
    if abar.ndim != 1 or abar.size < 2 or not np.all(np.isfinite(abar)):
        raise ValueError(
            f"alphas_cumprod: expected a finite 1-D schedule of T values, got shape {abar.shape}; "
            "pass scheduler.alphas_cumprod"
        )
    return abar


@torch.inference_mode()
def reverse_trajectory(
    score_fn: ScoreFn,
    alphas_cumprod: torch.Tensor | np.ndarray,
    x: torch.Tensor,
    image_ids: Sequence[str],
    t0: int,
    K: int,
    seed: int,
    guidance_w: float = 0.0,
) -> Iterator[StepRecord]:
    """Noise ``x`` to ``t0`` and run ``K`` deterministic DDIM steps, yielding a :class:`StepRecord` each.

    Args:
        score_fn: ``(x_t (B,C,H,W), t (B,) long) -> eps_hat (B,C,H,W)``.
        alphas_cumprod: ``ᾱ_t`` for ``t = 0..T−1`` (``scheduler.alphas_cumprod``).
        x: input images ``(B, C, H, W)`` in ``[-1, 1]``; dtype/device of every output.
        image_ids: ``B`` ids seeding the start noise (see :func:`start_noise`).
        t0, K: start step and number of reverse steps (:func:`timestep_grid`).
        seed: global seed.
        guidance_w: DDAD input-conditioning weight ``w`` (0 = unconditional).

    Per step (``s = s_n``, ``ᾱ = ᾱ_s``, ``ᾱ' = ᾱ_{s_{n+1}}``, ``ᾱ_0 := 1``)::

        eps_hat  = ε_θ(x_s, s)                       [ − w sqrt(1−ᾱ) (y_t − x_s) if w ≠ 0 ]
        x0_hat   = (x_s − sqrt(1−ᾱ) eps_hat) / sqrt(ᾱ)          # DDIM eq. (12), "predicted x_0"
        eps_star = (x_s − sqrt(ᾱ) x) / sqrt(1−ᾱ)
        delta    = eps_hat − eps_star,  r = x0_hat − x
        x_next   = sqrt(ᾱ') x0_hat + sqrt(1−ᾱ') eps_hat         # η = 0
        v        = x_next − x_s
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        raise TypeError(
            f"x: expected a floating torch tensor (B, C, H, W), got {type(x).__name__} "
            f"{tuple(getattr(x, 'shape', ()))}"
        )
    ids = list(image_ids)
    if len(ids) != x.shape[0]:
        raise ValueError(
            f"image_ids has {len(ids)} ids for a batch of {x.shape[0]} images: pass one id per image"
        )
    abar_all = _as_float64(alphas_cumprod)
    grid = timestep_grid(t0, K, num_train_timesteps=abar_all.size)
    used = abar_all[grid[:-1]]
    if np.any(used <= 0) or np.any(used >= 1):
        raise ValueError(
            f"alphas_cumprod at the timesteps {grid[:-1]} must lie in (0, 1), got {used.min():.3g}..{used.max():.3g}; "
            "check the noise schedule (diffusion.beta_*)"
        )
    w = float(guidance_w)

    xi = start_noise(ids, x.shape, seed, device=x.device, dtype=x.dtype)
    a0 = abar_all[grid[0]]
    x_s = float(np.sqrt(a0)) * x + float(np.sqrt(1.0 - a0)) * xi  # x_{s_1}
    B = x.shape[0]
    for n in range(1, K + 1):
        s, s_next = grid[n - 1], grid[n]
        abar = abar_all[s]
        abar_next = 1.0 if s_next == 0 else abar_all[s_next]  # ᾱ_{s_{K+1}} := 1 (clean)
        sa, s1a = float(np.sqrt(abar)), float(np.sqrt(1.0 - abar))
        sa_n, s1a_n = float(np.sqrt(abar_next)), float(np.sqrt(1.0 - abar_next))

        t = torch.full((B,), s, dtype=torch.long, device=x.device)
        eps_hat = score_fn(x_s, t).to(device=x.device, dtype=x.dtype)
        if eps_hat.shape != x_s.shape:
            raise ValueError(
                f"score_fn returned shape {tuple(eps_hat.shape)} for input {tuple(x_s.shape)}: "
                "the network must predict ε with the input's shape"
            )
        if w != 0.0:
            y_t = sa * x + s1a * eps_hat  # DDAD: the input noised with the model's own noise
            eps_hat = eps_hat - w * s1a * (y_t - x_s)

        x0_hat = (x_s - s1a * eps_hat) / sa
        eps_star = (x_s - sa * x) / s1a
        x_next = sa_n * x0_hat + s1a_n * eps_hat
        yield StepRecord(
            n=n,
            timestep=s,
            next_timestep=s_next,
            x_t=x_s,
            eps_hat=eps_hat,
            x0_hat=x0_hat,
            eps_star=eps_star,
            delta=eps_hat - eps_star,
            r=x0_hat - x,
            v=x_next - x_s,
        )
        x_s = x_next


def as_score_fn(unet: torch.nn.Module) -> ScoreFn:
    """Adapt a diffusers ``UNet2DModel`` (``unet(x, t).sample``) to a :data:`ScoreFn`."""

    def score_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return unet(x_t, t).sample

    return score_fn
