"""Runs the :class:`~refcfa_gui.state.jobs.JobQueue` one job at a time, each on its own QThread.

``JobRunner.submit(stage, cfg)`` queues a job and starts it when nothing else runs. For every job
the runner creates a ``QThread`` and a :class:`~refcfa_gui.workers.stage_worker.StageWorker`,
moves the worker to the thread and starts it; the worker's signals arrive queued in the runner's
slots (GUI thread), which fold them into the queue model and log job lines through ``logging``.
When a job ends, its thread is quit and joined (it has already left ``run``) and the next queued
job starts.

:meth:`JobRunner.shutdown` is the close-the-window path: cancel everything, then wait (keeping the
GUI painting) up to a time-out. A thread still running after the time-out is kept referenced
(never destroyed while running) and reported.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from PySide6.QtCore import QCoreApplication, QEventLoop, QObject, QThread, Signal, Slot

from refcfa_gui.state.jobs import Job, JobQueue
from refcfa_gui.workers.stage_worker import StageFn, StageWorker

log = logging.getLogger("refcfa_gui.jobs")

# every started (thread, worker) until its thread has finished: a running QThread is never
# destroyed, even when its runner is (Qt aborts on "QThread: Destroyed while thread is still running")
_LIVE: dict[int, tuple[QThread, StageWorker]] = {}


class JobRunner(QObject):
    """Starts queued jobs on QThreads (see the module docstring).

    Signals: ``running_changed(list)`` — titles of the jobs not finished yet (for the status bar).
    """

    running_changed = Signal(list)

    def __init__(
        self, queue: JobQueue | None = None, stage_fn: StageFn | None = None, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.queue = queue or JobQueue()
        self.stage_fn = stage_fn
        self._threads: dict[int, tuple[QThread, StageWorker]] = {}
        self._closed = False
        self.queue.events.log.connect(self._log_line)

    # -- public ----------------------------------------------------------------------------------
    def submit(self, stage: str, cfg: Any, device: str | None = None) -> Job:
        """Queue ``stage`` on a snapshot ``cfg`` (a validated ``Config``); starts it when idle."""
        job = self.queue.submit(stage, cfg, str(getattr(cfg, "output_dir", "")))
        job.device = device or ""
        self._start_next()
        self.running_changed.emit(self.job_titles())
        return job

    def cancel(self, job: Job | int) -> bool:
        """Cancel a queued job, or ask a running one to stop after its current batch."""
        job = self.queue.get(job) if isinstance(job, int) else job
        if job is None:
            return False
        ok = self.queue.cancel(job)
        entry = self._threads.get(job.id)
        if entry is not None:
            entry[1].cancel()
        self.running_changed.emit(self.job_titles())
        return ok

    def cancel_all(self) -> None:
        for job in list(self.queue.active()):
            self.cancel(job)

    def is_busy(self) -> bool:
        return bool(self.queue.active()) or bool(self._threads)

    def job_titles(self) -> list[str]:
        return [f"{j.stage} ({j.status})" for j in self.queue.active()]

    def worker_of(self, job: Job | int) -> StageWorker | None:
        jid = job if isinstance(job, int) else job.id
        entry = self._threads.get(jid)
        return entry[1] if entry else None

    def shutdown(self, timeout_s: float = 30.0) -> bool:
        """Cancel every job and wait for the threads; True when all stopped within ``timeout_s``."""
        self._closed = True
        self.cancel_all()
        deadline = time.monotonic() + timeout_s
        app = QCoreApplication.instance()
        while self._threads and time.monotonic() < deadline:
            for thread, _worker in list(self._threads.values()):
                thread.wait(20)
            if app is not None:  # deliver the workers' last signals; keep the window painted
                app.processEvents(QEventLoop.ProcessEventsFlag.ExcludeUserInputEvents)
            for jid, (thread, _worker) in list(self._threads.items()):
                if thread.isFinished():
                    self._release(jid)
        if self._threads:
            names = ", ".join(f"#{jid}" for jid in self._threads)
            log.warning(
                "jobs %s did not stop within %.0f s; leaving their threads to finish", names, timeout_s
            )
            self._threads.clear()  # still referenced in _LIVE until they finish
            return False
        return True

    # -- internals -------------------------------------------------------------------------------
    def _start_next(self) -> None:
        if self._closed or self._threads:
            return
        job = self.queue.next_queued()
        if job is None:
            return
        thread = QThread()
        thread.setObjectName(f"refcfa-job-{job.id}-{job.stage}")
        worker = StageWorker(job.id, job.stage, job.config, job.device or None, self.stage_fn)
        worker.moveToThread(thread)
        worker.event.connect(self._on_event)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        thread.started.connect(worker.run)
        self._threads[job.id] = (thread, worker)
        _LIVE[id(thread)] = (thread, worker)
        self.queue.mark_running(job)
        log.info("job #%d %s started (output %s)", job.id, job.stage, job.output_dir)
        thread.start()

    @Slot(int, object)
    def _on_event(self, job_id: int, payload: object) -> None:
        job = self.queue.get(job_id)
        if job is not None and isinstance(payload, dict):
            self.queue.apply(job, payload)

    @Slot(int, str, str)
    def _on_error(self, job_id: int, message: str, details: str) -> None:
        job = self.queue.get(job_id)
        if job is None:
            return
        if job.cancel_requested:
            log.info("job #%d %s stopped with an error after the cancel: %s", job_id, job.stage, message)
            self.queue.mark_cancelled(job)
        else:
            log.error("job #%d %s failed: %s", job_id, job.stage, message)
            self.queue.mark_failed(job, message, details)

    @Slot(int, str)
    def _on_finished(self, job_id: int, status: str) -> None:
        job = self.queue.get(job_id)
        if job is not None and not job.is_finished:
            if status == "cancelled" or job.cancel_requested:
                self.queue.mark_cancelled(job)
            else:
                self.queue.mark_done(job)
        entry = self._threads.get(job_id)
        if entry is not None:
            thread = entry[0]
            thread.quit()
            if thread.wait(2000):  # run() has returned: the event loop ends at once
                self._release(job_id)
        self.running_changed.emit(self.job_titles())
        self._start_next()

    def _release(self, job_id: int) -> None:
        """Forget a finished job's thread (and any earlier one that finished after a time-out)."""
        self._threads.pop(job_id, None)
        for key, (thread, _worker) in list(_LIVE.items()):
            if thread.isFinished():
                del _LIVE[key]

    def _log_line(self, item: tuple[Job, str]) -> None:
        job, line = item
        log.info("%s", line)


__all__ = ["JobRunner"]
