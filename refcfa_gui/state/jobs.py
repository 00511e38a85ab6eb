"""The job queue of the Training / CFA panel: plain Python, no Qt (tested without Qt).

A :class:`Job` is one run of a stage (``S1``, ``T1``, ``S2``, ``T2`` or ``all``, the chain) on a
snapshot of the config taken when it was queued. :class:`JobQueue` holds the jobs in order and
their life cycle::

    queued ──start──▶ running ──▶ done | failed | cancelled
       └──────cancel───────────────────────────▶ cancelled

Jobs run one at a time (the stages share the machine and depend on each other's outputs);
:meth:`JobQueue.next_queued` tells the runner what to start next.

The worker thread turns every library event into a small ``dict`` with :func:`summarize_event`
(no tensors, no models: the detector's trained network stays in the worker), and the GUI thread
folds it into the job with :meth:`JobQueue.apply`: progress, ETA, loss points, checkpoints, log
lines and the metrics of a finished evaluation. Views subscribe to ``queue.events``.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from refcfa_gui.state.signals import Events

Stage = Literal["S1", "T1", "S2", "T2", "all"]
Status = Literal["queued", "running", "done", "failed", "cancelled"]
STAGES: tuple[str, ...] = ("S1", "T1", "S2", "T2", "all")
FINISHED: tuple[str, ...] = ("done", "failed", "cancelled")
STAGE_TITLES = {
    "S1": "S1 · source score network",
    "T1": "T1 · target score network",
    "S2": "S2 · source REF + detector",
    "T2": "T2 · CFA + detection + metrics",
    "all": "Run all · S1 → T1 → REF → S2 → T2 → eval",
}
_PART_OF_DOMAIN = {"source": "S1", "target": "T1"}
MAX_LOG_LINES = 2000


@dataclass
class Job:
    """One queued/running/finished stage run.

    ``config`` is the validated ``refcfa.config.Config`` snapshot the job runs on (opaque here).
    ``loss[part]`` holds ``(x, train loss)`` points (x = step for S1/T1, epoch for S2) and
    ``val_loss[part]`` the validation points; ``part`` is the sub-stage being trained.
    """

    id: int
    stage: str
    config: Any = None
    output_dir: str = ""
    status: str = "queued"
    part: str = ""  # the sub-stage running now (S1, T1, extract, S2, T2, eval)
    done: int = 0
    total: int = 0
    eta_s: float | None = None
    message: str = ""
    device: str = ""
    loss: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    val_loss: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    checkpoints: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    metrics: dict | None = None
    metrics_path: str = ""
    error: str = ""
    error_details: str = ""
    cancel_requested: bool = False
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    _part_started: float = 0.0
    _part_done0: int = 0
    _per_step: float | None = None  # smoothed seconds per step (ETA)

    @property
    def title(self) -> str:
        return STAGE_TITLES.get(self.stage, self.stage)

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    @property
    def fraction(self) -> float | None:
        """Progress of the current part in [0, 1], or None when its length is unknown."""
        if self.total <= 0:
            return None
        return min(1.0, max(0.0, self.done / self.total))

    def summary(self) -> str:
        """One line for the queue list: ``#3 S1 · running · 120/1000 · ETA 2 min``."""
        parts = [
            f"#{self.id} {self.stage}",
            self.status + (" (cancelling)" if self.cancel_requested and self.status == "running" else ""),
        ]
        if self.status == "running":
            if self.part and self.part != self.stage:
                parts.append(self.part)
            if self.total:
                parts.append(f"{self.done}/{self.total}")
            if self.eta_s is not None:
                parts.append("ETA " + format_eta(self.eta_s))
        elif self.status == "failed" and self.error:
            parts.append(self.error.splitlines()[0][:80])
        elif self.status in ("done", "cancelled") and self.started and self.finished:
            parts.append(format_eta(self.finished - self.started))
        return " · ".join(parts)


def format_eta(seconds: float | None) -> str:
    """``"45 s"``, ``"3 min 20 s"``, ``"1 h 05 min"``; ``"?"`` for None/NaN."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def summarize_event(ev: Any) -> dict | None:
    """A library event → a small ``dict`` with a ``kind`` (runs in the worker thread).

    Dispatches on the class name, so this module imports neither torch nor the engine. Returns
    None for events the GUI does not show (``EpochEnd``).
    """
    name = type(ev).__name__
    g = lambda attr, default=None: getattr(ev, attr, default)  # noqa: E731
    if name == "TrainStarted":
        return {
            "kind": "train_started",
            "part": _PART_OF_DOMAIN.get(g("domain"), "S1"),
            "total": int(g("total_steps", 0)),
            "start": int(g("start_step", 0)),
            "device": str(g("device", "")),
            "n_train": int(g("n_train", 0)),
            "resumed_from": g("resumed_from"),
        }
    if name == "StepEvent":
        return {
            "kind": "step",
            "step": int(ev.step),
            "epoch": int(ev.epoch),
            "loss": float(ev.loss),
            "lr": float(ev.lr),
            "throughput": float(ev.throughput),
            "eta_s": float(ev.eta_s),
        }
    if name == "ValidationEvent":
        return {"kind": "val", "step": int(ev.step), "val_loss": float(ev.val_loss)}
    if name == "CheckpointSaved":
        return {"kind": "checkpoint", "step": int(ev.step), "path": str(ev.path)}
    if name == "LogEvent":
        return {"kind": "log", "message": str(ev.message), "level": str(g("level", "info"))}
    if name == "TrainFinished":
        return {
            "kind": "train_finished",
            "step": int(ev.step),
            "checkpoint": g("checkpoint"),
            "cancelled": bool(g("cancelled", False)),
            "reason": str(g("reason", "")),
        }
    if name == "StageStarted":
        return {
            "kind": "stage_started",
            "stage": str(ev.stage),
            "description": str(g("description", "")),
            "total": int(g("total", 0)),
        }
    if name == "StageProgress":
        return {
            "kind": "stage_progress",
            "stage": str(ev.stage),
            "done": int(ev.done),
            "total": int(ev.total),
            "message": str(g("message", "")),
        }
    if name == "StageFinished":
        return {
            "kind": "stage_finished",
            "stage": str(ev.stage),
            "seconds": float(g("seconds", 0.0)),
            "message": str(g("message", "")),
            "skipped": bool(g("skipped", False)),
        }
    if name == "PipelineFinished":
        return {
            "kind": "pipeline_finished",
            "output_dir": str(ev.output_dir),
            "metrics_path": str(ev.metrics_path),
            "metrics": dict(ev.metrics or {}),
            "cancelled": bool(g("cancelled", False)),
        }
    if name == "DetectorTrainStarted":
        return {
            "kind": "detector_started",
            "epochs": int(ev.epochs),
            "n_train": int(g("n_train", 0)),
            "n_val": int(g("n_val", 0)),
            "device": str(g("device", "")),
        }
    if name == "DetectorEpoch":
        val = g("val_loss")
        auroc = g("val_auroc")
        return {
            "kind": "detector_epoch",
            "epoch": int(ev.epoch),
            "epochs": int(ev.epochs),
            "loss": float(ev.loss),
            "val_loss": None if val is None else float(val),
            "val_auroc": None if auroc is None else float(auroc),
            "elapsed_s": float(g("elapsed_s", 0.0)),
        }
    if name == "DetectorTrained":
        return {
            "kind": "detector_trained",
            "epochs_run": int(g("epochs_run", 0)),
            "best_epoch": int(g("best_epoch", 0)),
            "cancelled": bool(g("cancelled", False)),
        }
    if name == "EpochEnd":
        return None
    return {"kind": "other", "name": name}


class JobQueue:
    """The jobs of the panel, in submission order (see the module docstring).

    Events (callbacks get the job unless noted): ``added``, ``changed`` (status or progress),
    ``loss`` (``(job, part)``: new loss points), ``log`` (``(job, line)``), ``finished``,
    ``removed``.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.events = Events("added", "changed", "loss", "log", "finished", "removed")
        self.jobs: list[Job] = []
        self._ids = itertools.count(1)
        self._clock = clock

    # -- queries ---------------------------------------------------------------------------------
    def get(self, job_id: int) -> Job | None:
        return next((j for j in self.jobs if j.id == job_id), None)

    def running(self) -> Job | None:
        return next((j for j in self.jobs if j.status == "running"), None)

    def queued(self) -> list[Job]:
        return [j for j in self.jobs if j.status == "queued"]

    def active(self) -> list[Job]:
        """Jobs not finished yet (running and queued)."""
        return [j for j in self.jobs if not j.is_finished]

    def next_queued(self) -> Job | None:
        """The job to start now: the oldest queued one, when nothing runs."""
        if self.running() is not None:
            return None
        q = self.queued()
        return q[0] if q else None

    def latest(self) -> Job | None:
        """The running job, else the most recently started one."""
        run = self.running()
        if run is not None:
            return run
        started = [j for j in self.jobs if j.started is not None]
        return max(started, key=lambda j: j.started) if started else None

    # -- life cycle ------------------------------------------------------------------------------
    def submit(self, stage: str, config: Any = None, output_dir: str = "") -> Job:
        if stage not in STAGES:
            raise ValueError(f"stage {stage!r}: expected one of {', '.join(STAGES)}")
        job = Job(next(self._ids), stage, config, output_dir)
        self.jobs.append(job)
        self.events.added.emit(job)
        return job

    def mark_running(self, job: Job) -> None:
        if job.status != "queued":
            raise ValueError(f"job #{job.id} is {job.status}; only a queued job can start")
        job.status = "running"
        job.started = self._clock()
        job.part = job.stage if job.stage != "all" else ""
        job._part_started = job.started
        job.message = "starting…"
        self.events.changed.emit(job)

    def cancel(self, job: Job) -> bool:
        """Cancel a queued job now, or flag a running one (the runner stops its worker).

        Returns True when the job was queued or running.
        """
        if job.status == "queued":
            self._finish(job, "cancelled", "cancelled before it started")
            return True
        if job.status == "running":
            job.cancel_requested = True
            job.message = "cancelling: stopping after the current batch…"
            self.events.changed.emit(job)
            return True
        return False

    def mark_done(self, job: Job) -> None:
        self._finish(job, "cancelled" if job.cancel_requested else "done")

    def mark_cancelled(self, job: Job) -> None:
        self._finish(job, "cancelled")

    def mark_failed(self, job: Job, error: str, details: str = "") -> None:
        job.error, job.error_details = error, details
        self._finish(job, "failed", error)

    def _finish(self, job: Job, status: str, message: str | None = None) -> None:
        if job.is_finished:
            return
        job.status = status
        job.finished = self._clock()
        job.eta_s = None
        if message is not None:
            job.message = message
        elif status == "done":
            job.message = "finished"
        elif status == "cancelled":
            job.message = "cancelled" + (
                f"; last checkpoint {job.checkpoints[-1]}" if job.checkpoints else ""
            )
        self._add_log(job, f"#{job.id} {job.stage}: {job.message}")
        self.events.changed.emit(job)
        self.events.finished.emit(job)

    def remove_finished(self) -> None:
        """Forget finished jobs (the list only)."""
        for job in [j for j in self.jobs if j.is_finished]:
            self.jobs.remove(job)
            self.events.removed.emit(job)

    # -- events from the worker --------------------------------------------------------------------
    def _add_log(self, job: Job, line: str) -> None:
        job.log.append(line)
        if len(job.log) > MAX_LOG_LINES:
            del job.log[: len(job.log) - MAX_LOG_LINES]
        self.events.log.emit((job, line))

    def _set_part(self, job: Job, part: str, total: int = 0, done: int = 0) -> None:
        job.part = part
        job.total = total
        job.done = done
        job.eta_s = None
        job._part_started = self._clock()
        job._part_done0 = done
        job._per_step = None

    def _rate_eta(self, job: Job) -> float | None:
        """ETA of the current part from its pace so far (stages without their own ETA)."""
        n = job.done - job._part_done0
        if n <= 0 or job.total <= 0:
            return None
        elapsed = self._clock() - job._part_started
        return elapsed / n * max(0, job.total - job.done)

    @staticmethod
    def _smoothed_eta(job: Job, step: int, eta_s: float) -> float | None:
        """The engine's ETA (from the pace of its last log window) smoothed over the windows.

        With ``train.log_every: 1`` one slow step (a checkpoint, a validation) would make the raw
        ETA jump; an exponential average of the seconds per step (weight 0.3 on the newest) keeps
        the estimate steady and still follows a real change of pace within a few windows.
        """
        remaining = job.total - step
        if not math.isfinite(eta_s) or remaining <= 0:
            return None if remaining > 0 else 0.0
        per_step = eta_s / remaining
        job._per_step = per_step if job._per_step is None else 0.7 * job._per_step + 0.3 * per_step
        return job._per_step * remaining

    def apply(self, job: Job, ev: dict) -> None:
        """Fold one :func:`summarize_event` payload into ``job`` and emit what changed."""
        kind = ev.get("kind")
        if kind == "train_started":
            self._set_part(job, ev["part"], ev["total"], ev["start"])
            job.device = ev["device"] or job.device
            job.loss.setdefault(job.part, [])
            what = f"resuming at step {ev['start']}" if ev["start"] else "from scratch"
            job.message = f"{job.part}: training on {job.device} ({what})"
            self._add_log(
                job, f"{job.part}: {ev['total']} steps on {job.device}, {ev['n_train']} images, {what}"
            )
        elif kind == "step":
            job.done = ev["step"]
            job.eta_s = self._smoothed_eta(job, ev["step"], ev["eta_s"])
            job.loss.setdefault(job.part or job.stage, []).append((float(ev["step"]), ev["loss"]))
            job.message = f"{job.part}: step {ev['step']}/{job.total}, loss {ev['loss']:.4f}"
            self.events.loss.emit((job, job.part or job.stage))
        elif kind == "val":
            job.val_loss.setdefault(job.part or job.stage, []).append((float(ev["step"]), ev["val_loss"]))
            self._add_log(job, f"{job.part}: validation loss {ev['val_loss']:.4f} at step {ev['step']}")
            self.events.loss.emit((job, job.part or job.stage))
        elif kind == "checkpoint":
            job.checkpoints.append(ev["path"])
            self._add_log(job, f"{job.part}: checkpoint {ev['path']} (step {ev['step']})")
        elif kind == "log":
            self._add_log(job, f"{job.part or job.stage}: {ev['message']}")
        elif kind == "train_finished":
            if ev["checkpoint"] and ev["checkpoint"] not in job.checkpoints:
                job.checkpoints.append(ev["checkpoint"])
            job.done = ev["step"]
            job.eta_s = None
            self._add_log(
                job,
                f"{job.part}: stopped at step {ev['step']} ({ev['reason']})"
                + (f", checkpoint {ev['checkpoint']}" if ev["checkpoint"] else ""),
            )
        elif kind == "stage_started":
            self._set_part(job, ev["stage"], ev["total"])
            job.message = f"{ev['stage']}: {ev['description']}"
            self._add_log(job, job.message)
        elif kind == "stage_progress":
            if job.part != ev["stage"]:
                self._set_part(job, ev["stage"], ev["total"])
            job.done, job.total = ev["done"], ev["total"]
            job.eta_s = self._rate_eta(job)
            job.message = f"{ev['stage']}: {ev['done']}/{ev['total']}" + (
                f" {ev['message']}" if ev["message"] else ""
            )
        elif kind == "stage_finished":
            note = f" ({ev['message']})" if ev["message"] else ""
            self._add_log(job, f"{ev['stage']}: finished in {ev['seconds']:.1f} s{note}")
        elif kind == "detector_started":
            if job.part not in ("S2",):
                self._set_part(job, "S2", ev["epochs"])
            job.total = ev["epochs"]
            job.loss.setdefault("S2", [])
            self._add_log(
                job,
                f"S2: detector, {ev['epochs']} epochs on {ev['device']}, "
                f"{ev['n_train']} train / {ev['n_val']} val images",
            )
        elif kind == "detector_epoch":
            if job.part != "S2":
                self._set_part(job, "S2", ev["epochs"])
            job.done, job.total = ev["epoch"], ev["epochs"]
            job.eta_s = (
                ev["elapsed_s"] / max(1, ev["epoch"]) * (ev["epochs"] - ev["epoch"])
                if ev["elapsed_s"]
                else self._rate_eta(job)
            )
            job.loss.setdefault("S2", []).append((float(ev["epoch"]), ev["loss"]))
            if ev["val_loss"] is not None:
                job.val_loss.setdefault("S2", []).append((float(ev["epoch"]), ev["val_loss"]))
            auroc = f", val AUROC {ev['val_auroc']:.3f}" if ev["val_auroc"] is not None else ""
            job.message = f"S2: epoch {ev['epoch']}/{ev['epochs']}, loss {ev['loss']:.4f}{auroc}"
            self._add_log(job, job.message)
            self.events.loss.emit((job, "S2"))
        elif kind == "detector_trained":
            self._add_log(
                job,
                f"S2: detector trained ({ev['epochs_run']} epochs, best {ev['best_epoch']})"
                + (" — cancelled" if ev["cancelled"] else ""),
            )
        elif kind == "pipeline_finished":
            if ev["metrics"].get("methods"):
                job.metrics = ev["metrics"]
                job.metrics_path = ev["metrics_path"]
                self._add_log(job, f"metrics written to {ev['metrics_path']}")
            elif ev["metrics_path"]:
                self._add_log(job, f"wrote {ev['metrics_path']}")
            if ev["output_dir"]:
                job.output_dir = job.output_dir or ev["output_dir"]
        elif kind == "device":
            job.device = ev["device"]
        self.events.changed.emit(job)


__all__ = [
    "FINISHED",
    "STAGES",
    "STAGE_TITLES",
    "Job",
    "JobQueue",
    "format_eta",
    "summarize_event",
]
