"""Exponential moving average of the score network's weights (the weights used for inference).

After optimizer update `k = 0, 1, 2, …`: `θ_ema ← d_k θ_ema + (1 − d_k) θ` with the warm-up
`d_k = min(ema_decay, (1 + k) / (10 + k))` (as diffusers' `EMAModel` without power warm-up; a fixed
0.999 keeps mostly the random initialisation for the first thousand steps, DESIGN.md §11).
The update is one fused `torch._foreach_lerp_` over all parameters: no host sync, no Python loop.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch


class EMA:
    """Shadow copies of a module's parameters (float32, on the module's device)."""

    def __init__(self, module: torch.nn.Module, decay: float = 0.999) -> None:
        import torch

        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema decay {decay!r}: expected a value in [0, 1)")
        self.decay = float(decay)
        self.updates = 0
        self._names = [n for n, _ in module.named_parameters()]
        with torch.no_grad():
            self.shadow = [p.detach().clone().float() for _, p in module.named_parameters()]

    def current_decay(self) -> float:
        """`d_k` for the next update (`k = self.updates`)."""
        k = self.updates
        return min(self.decay, (1.0 + k) / (10.0 + k))

    def update(self, module: torch.nn.Module) -> None:
        """Move the shadow weights towards `module`'s current parameters."""
        import torch

        weight = 1.0 - self.current_decay()
        with torch.no_grad():
            params = [p.detach() for p in module.parameters()]
            if params and params[0].dtype != torch.float32:  # pragma: no cover - we train in fp32
                params = [p.float() for p in params]
            torch._foreach_lerp_(self.shadow, params, weight)
        self.updates += 1

    def state_dict(self, module: torch.nn.Module) -> OrderedDict:
        """A full state dict of `module` with the EMA weights in place of its parameters (CPU)."""
        shadow = dict(zip(self._names, self.shadow, strict=True))
        out = OrderedDict()
        for key, value in module.state_dict().items():
            src = shadow.get(key, value)
            out[key] = src.detach().to("cpu", copy=True).to(value.dtype)
        return out

    def load_state_dict(self, state: dict, updates: int) -> None:
        """Restore shadow weights from a state dict written by `state_dict`."""
        import torch

        missing = [n for n in self._names if n not in state]
        if missing:
            raise KeyError(f"EMA state misses {len(missing)} parameter(s), e.g. {missing[0]}")
        with torch.no_grad():
            for name, shadow in zip(self._names, self.shadow, strict=True):
                shadow.copy_(state[name])
        self.updates = int(updates)

    def copy_to(self, module: torch.nn.Module) -> None:
        """Write the EMA weights into `module`'s parameters."""
        import torch

        with torch.no_grad():
            for p, s in zip(module.parameters(), self.shadow, strict=True):
                p.copy_(s)


__all__ = ["EMA"]
