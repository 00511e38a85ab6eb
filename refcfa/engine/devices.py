"""Device selection: one machine, CPU or one GPU, chosen automatically and overridable."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch


def resolve_device(spec: str | torch.device | None = "auto", local_rank: int | None = None) -> torch.device:
    """Turn `cfg.device` (`auto | cpu | cuda | cuda:N | mps`) into a `torch.device`.

    `auto` (or None) picks CUDA when available, else the CPU. Under torchrun, `local_rank` picks
    the GPU of this process when the spec is `auto` or `cuda`. Asking for a device that is not
    there is a `ValueError` that says what is available.
    """
    import torch

    if isinstance(spec, torch.device):
        spec = str(spec)
    text = (spec or "auto").strip().lower()
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    if text == "cpu":
        return torch.device("cpu")
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {spec!r} was requested but CUDA is not available here; "
                "use --device cpu (or device: auto in the config)"
            )
        try:
            dev = torch.device(text)
        except RuntimeError:
            raise ValueError(
                f"device {spec!r} is not a valid device; expected auto, cpu, cuda or cuda:N"
            ) from None
        index = dev.index
        if index is None:
            index = local_rank if local_rank is not None else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"device {spec!r}: only {torch.cuda.device_count()} CUDA device(s) here (cuda:0 … "
                f"cuda:{torch.cuda.device_count() - 1})"
            )
        return torch.device("cuda", index)
    if text == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ValueError(f"device {spec!r} was requested but MPS is not available; use --device cpu")
        return torch.device("mps")
    raise ValueError(f"device {spec!r} is not known; expected auto, cpu, cuda, cuda:N or mps")


__all__ = ["resolve_device"]
