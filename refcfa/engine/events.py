"""Progress events that leave the training engine.

`DiffusionTrainer.run()` is a generator of these dataclasses: the CLI renders them with tqdm,
the GUI iterates the same generator in a worker thread. They hold only plain Python values
(no tensors), so they can cross threads and be logged as JSON (`dataclasses.asdict`).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TrainStarted:
    """Training is about to take its first step (after a resume: step `start_step + 1`)."""

    total_steps: int
    start_step: int = 0
    domain: str = "source"
    experiment_dir: str = ""
    device: str = "cpu"
    world_size: int = 1
    n_train: int = 0
    n_val: int = 0
    steps_per_epoch: int = 1
    global_batch_size: int = 1
    n_parameters: int = 0
    transductive: bool = False
    resumed_from: str | None = None
    init_from: str | None = None


@dataclass(frozen=True)
class StepEvent:
    """Emitted every `train.log_every` steps.

    `loss` is the mean training loss over the steps since the previous StepEvent (all ranks),
    `lr` the learning rate of the last step, `throughput` images/s over that window (global
    batch), `eta_s` the estimated seconds left.
    """

    step: int
    epoch: int
    loss: float
    lr: float
    throughput: float
    eta_s: float


@dataclass(frozen=True)
class EpochEnd:
    """The last step of an epoch (a pass over the training set) was taken."""

    epoch: int
    step: int


@dataclass(frozen=True)
class ValidationEvent:
    """Denoising loss of the EMA network on the held-out normals (fixed seeded t and noise)."""

    step: int
    val_loss: float
    best_val_loss: float = float("nan")


@dataclass(frozen=True)
class CheckpointSaved:
    step: int
    path: str
    epoch: int = 0


@dataclass(frozen=True)
class LogEvent:
    message: str
    level: str = "info"


@dataclass(frozen=True)
class TrainFinished:
    """Training ended; `checkpoint` is the last checkpoint written (usable also after a cancel)."""

    step: int
    checkpoint: str | None
    cancelled: bool = False
    val_loss: float | None = None
    reason: str = "max_steps"  # max_steps | cancelled | early_stop | time_budget | already_done
    extra: dict = field(default_factory=dict)


TrainEvent = (
    TrainStarted | StepEvent | EpochEnd | ValidationEvent | CheckpointSaved | LogEvent | TrainFinished
)

__all__ = [
    "CheckpointSaved",
    "EpochEnd",
    "LogEvent",
    "StepEvent",
    "TrainEvent",
    "TrainFinished",
    "TrainStarted",
    "ValidationEvent",
]
