"""The DDPM noise schedule (Ho et al. 2020): `β_t`, `α_t = 1 − β_t`, `ᾱ_t = Π_{s≤t} α_s`.

`x_t = sqrt(ᾱ_t) x_0 + sqrt(1 − ᾱ_t) ε`, `t = 0 … T−1`. Linear betas 1e-4 → 0.02 with T = 1000 by
default (DESIGN.md §2); `squaredcos_cap_v2` is the cosine schedule of Nichol & Dhariwal (2021).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from diffusers import DDPMScheduler

    from refcfa.config.schema import DiffusionConfig


def build_scheduler(diffusion_cfg: DiffusionConfig) -> DDPMScheduler:
    """A `diffusers.DDPMScheduler` for ε-prediction with the configured betas."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=int(diffusion_cfg.num_train_timesteps),
        beta_start=float(diffusion_cfg.beta_start),
        beta_end=float(diffusion_cfg.beta_end),
        beta_schedule=diffusion_cfg.beta_schedule,
        prediction_type="epsilon",
        clip_sample=False,
    )


def alphas_cumprod(scheduler: DDPMScheduler) -> torch.Tensor:
    """`ᾱ_t` for `t = 0 … T−1`: a float32 tensor of shape `(T,)` on the CPU (a copy)."""
    import torch

    return scheduler.alphas_cumprod.detach().to(device="cpu", dtype=torch.float32).clone()


__all__ = ["alphas_cumprod", "build_scheduler"]
