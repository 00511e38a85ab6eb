"""Score network builder, noise schedule and the partial reverse trajectory.

Submodules import torch/diffusers lazily; import from them directly
(`refcfa.diffusion.model`, `refcfa.diffusion.schedule`).
"""

from refcfa.diffusion.model import architecture_signature, build_score_network, resolve_in_channels
from refcfa.diffusion.schedule import alphas_cumprod, build_scheduler

__all__ = [
    "alphas_cumprod",
    "architecture_signature",
    "build_scheduler",
    "build_score_network",
    "resolve_in_channels",
]
