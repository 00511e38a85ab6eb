"""torchrun / DDP setup: PyTorch's own distributed engine, no home-made scheduler.

`torchrun --standalone --nproc_per_node=N -m refcfa train ...` starts N processes with
`RANK`, `WORLD_SIZE` and `LOCAL_RANK` set; `init_distributed()` joins the process group
(NCCL on CUDA, gloo on the CPU). Semantics (see `DiffusionTrainer`): `train.batch_size` is the
*global* batch, split evenly over the ranks; every rank draws the same global batch indices,
timesteps and noise from the step's seeded generator and keeps its slice, so N ranks follow the
same training as one process (up to float summation order). Rank 0 writes checkpoints; every
rank yields events, the CLI renders rank 0's only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job (`world_size == 1` when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def env_world_size() -> int:
    """`WORLD_SIZE` as set by torchrun (1 when absent)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def current() -> DistInfo:
    """The process group's view if one is initialised, else a single process."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return DistInfo(
            rank=dist.get_rank(),
            world_size=dist.get_world_size(),
            local_rank=int(os.environ.get("LOCAL_RANK", "0")),
            backend=str(dist.get_backend()),
        )
    return DistInfo()


def init_distributed(device_spec: str = "auto") -> DistInfo:
    """Join the torchrun process group when `WORLD_SIZE > 1`; a no-op for one process.

    The backend is NCCL when this rank trains on CUDA, gloo otherwise. Returns `current()`.
    """
    import torch
    import torch.distributed as dist

    if env_world_size() <= 1 or (dist.is_available() and dist.is_initialized()):
        return current()
    if not dist.is_available():  # pragma: no cover - all supported builds have it
        raise RuntimeError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    from refcfa.engine.devices import resolve_device

    device = resolve_device(device_spec, local_rank=local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, device_id=device)
    else:
        dist.init_process_group(backend=backend)
    return current()


def cleanup_distributed(barrier: bool = True) -> None:
    """Leave the process group, if one was joined (after a barrier unless `barrier=False`,
    which is for error paths: a rank that failed must not wait for the others)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        try:
            if barrier:
                dist.barrier()
        finally:
            dist.destroy_process_group()


def all_reduce_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of a tensor over the ranks (returned as is for one process)."""
    if not info.distributed:
        return value
    import torch.distributed as dist

    value = value.clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / info.world_size


def any_rank(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank when `flag` is true on any rank (a collective: call it on all ranks)."""
    if not info.distributed:
        return flag
    import torch
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def broadcast_object(obj, info: DistInfo, src: int = 0):
    """`obj` from rank `src` on every rank (picklable Python values only)."""
    if not info.distributed:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


__all__ = [
    "DistInfo",
    "all_reduce_mean",
    "any_rank",
    "broadcast_object",
    "cleanup_distributed",
    "current",
    "env_world_size",
    "init_distributed",
]
