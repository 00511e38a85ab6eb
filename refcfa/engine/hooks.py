"""Hooks around the training loop (detectron2's `engine/hooks.py` shape).

A hook sees the trainer (`self.trainer`, set when registered) and is called at
`before_train`, `before_step`, `after_step` (after `trainer.step` was incremented) and
`after_train`. Hooks report through `trainer.emit(event)` and stop training through
`trainer.request_stop(reason)`; they run in the order given (the default order is
`StepLogger, EvalHook, EarlyStopHook, TimeBudgetHook, PeriodicCheckpointer`, so the
checkpointer sees the validation loss of the same step).
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

from refcfa.engine.events import CheckpointSaved, StepEvent, ValidationEvent

if TYPE_CHECKING:  # pragma: no cover
    from refcfa.engine.trainer import DiffusionTrainer


class HookBase:
    """Base class: override any of the four calls; all default to doing nothing."""

    trainer: DiffusionTrainer

    def before_train(self) -> None:
        pass

    def after_train(self) -> None:
        pass

    def before_step(self) -> None:
        pass

    def after_step(self) -> None:
        pass


class StepLogger(HookBase):
    """Emit a `StepEvent` every `period` steps and at the last step.

    The loss is the mean over the window (summed on the device, read once per window: no
    per-step host sync), averaged over the ranks.
    """

    def __init__(self, period: int) -> None:
        self.period = max(1, int(period))
        self._t = 0.0
        self._step = 0

    def before_train(self) -> None:
        self._t = time.perf_counter()
        self._step = self.trainer.step

    def after_step(self) -> None:
        tr = self.trainer
        if tr.step % self.period and tr.step != tr.max_steps:
            return
        loss = tr.pop_window_loss()
        now = time.perf_counter()
        steps = max(1, tr.step - self._step)
        per_step = (now - self._t) / steps
        self._t, self._step = now, tr.step
        tr.emit(
            StepEvent(
                step=tr.step,
                epoch=tr.epoch,
                loss=loss,
                lr=tr.lr,
                throughput=tr.global_batch_size / per_step if per_step > 0 else float("inf"),
                eta_s=per_step * (tr.max_steps - tr.step),
            )
        )


class EvalHook(HookBase):
    """Validation loss every `period` steps (0: only at the end), and once when training ends
    (unless cancelled). The loss is `DiffusionTrainer.validate()`: the EMA network's denoising
    MSE on the held-out normals at fixed seeded timesteps and noise.
    """

    def __init__(self, period: int) -> None:
        self.period = max(0, int(period))
        self.last_step = -1

    def _evaluate(self) -> None:
        tr = self.trainer
        value = tr.validate()
        self.last_step = tr.step
        if value is None:
            return
        tr.val_history.append((tr.step, value))
        best = min(v for _, v in tr.val_history)
        tr.emit(ValidationEvent(step=tr.step, val_loss=value, best_val_loss=best))

    def after_step(self) -> None:
        tr = self.trainer
        if self.period and tr.step % self.period == 0 and tr.step != tr.max_steps:
            self._evaluate()

    def after_train(self) -> None:
        if not self.trainer.cancelled and self.trainer.step != self.last_step:
            self._evaluate()


class EarlyStopHook(HookBase):
    """Stop after `patience` validation losses in a row without an improvement of `min_delta`."""

    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.best = math.inf
        self.bad = 0
        self._seen = 0

    def after_step(self) -> None:
        tr = self.trainer
        while self._seen < len(tr.val_history):
            _, value = tr.val_history[self._seen]
            self._seen += 1
            if value < self.best - self.min_delta:
                self.best, self.bad = value, 0
            else:
                self.bad += 1
        if self.patience > 0 and self.bad >= self.patience:
            tr.request_stop("early_stop", f"early stop: no validation improvement in {self.bad} evaluations")


class TimeBudgetHook(HookBase):
    """Stop once `max_time_s` seconds of training have passed (`train.max_time_s`)."""

    def __init__(self, max_time_s: float) -> None:
        self.max_time_s = float(max_time_s)
        self._start = 0.0

    def before_train(self) -> None:
        self._start = time.perf_counter()

    def after_step(self) -> None:
        if self.max_time_s > 0 and time.perf_counter() - self._start >= self.max_time_s:
            self.trainer.request_stop("time_budget", f"time budget of {self.max_time_s:g} s reached")


class PeriodicCheckpointer(HookBase):
    """Write a checkpoint every `period` steps and when training ends (also after a cancel).

    Rank 0 writes; `trainer.last_checkpoint` holds the newest path on every rank.
    """

    def __init__(self, period: int) -> None:
        self.period = max(0, int(period))
        self.last_step = -1

    def before_train(self) -> None:
        if self.trainer.last_checkpoint is not None:  # resumed: that state is already on disk
            self.last_step = self.trainer.step

    def _save(self) -> None:
        tr = self.trainer
        path = tr.save_checkpoint()
        self.last_step = tr.step
        tr.emit(CheckpointSaved(step=tr.step, path=str(path), epoch=tr.epoch))

    def after_step(self) -> None:
        tr = self.trainer
        # the last step is saved by after_train, after the final validation loss is known
        if self.period and tr.step % self.period == 0 and tr.step != tr.max_steps:
            self._save()

    def after_train(self) -> None:
        if self.trainer.step != self.last_step:
            self._save()


__all__ = ["EarlyStopHook", "EvalHook", "HookBase", "PeriodicCheckpointer", "StepLogger", "TimeBudgetHook"]
