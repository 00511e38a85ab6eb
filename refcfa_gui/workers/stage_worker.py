"""One training/CFA job on its own ``QThread``: a worker object moved to the thread (Qt's
``moveToThread`` pattern), iterating ``refcfa.evaluation.pipeline.run_stage``'s generator.

Every library event is turned into a small ``dict`` in the worker thread
(:func:`refcfa_gui.state.jobs.summarize_event`) and emitted as ``event(job_id, payload)``; the
receiver lives in the GUI thread, so Qt queues the call there. Signals, in order:
``event(int, object)`` (many), ``errored(int, str, str)`` (message, traceback; at most once),
``finished(int, str)`` (``"done" | "cancelled" | "failed"``, always last).

:meth:`StageWorker.cancel` is thread-safe and may be called from the GUI thread at any time: it
sets the engine's ``CancelToken``, which the trainer checks before every step, the extraction
between batches and the detector between epochs — the job stops within one batch and the last
checkpoint written stays usable. torch (through the engine) is imported in the worker thread,
never in the GUI thread: the token is created there, and a cancel that arrives before it exists
is remembered and applied as soon as it does. The worker thread lowers its own scheduling
priority (:func:`lower_thread_priority`) so training never starves the GUI thread of CPU, and
the first job takes the heavy imports out of the garbage collector's sight
(:func:`freeze_heavy_imports`), whose full collections would otherwise stall every thread.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal, Slot

from refcfa_gui.state.jobs import summarize_event

log = logging.getLogger(__name__)

StageFn = Callable[[Any, str, Any, Any], Iterator[Any]]


def user_message(exc: BaseException) -> str:
    """The message shown to the user: refcfa's user errors as they are, others with their type."""
    from refcfa.errors import RefcfaError

    text = str(exc).strip()
    if isinstance(exc, (RefcfaError, FileNotFoundError, ValueError, TypeError)) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def lower_thread_priority(increment: int = 10) -> bool:
    """Raise the calling thread's nice value (Linux: nice is per thread) so the GUI thread wins the
    CPU over training; threads it starts later (torch's intra-op pool) inherit it. Never changes
    results. Returns False where it is not supported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + increment))
    except (AttributeError, OSError):
        return False
    return True


_HEAVY_MODULES = (
    "torch",
    "diffusers",
    "refcfa.engine.trainer",
    "refcfa.evaluation.pipeline",
    "refcfa.field.detector",
    "refcfa.field.extract",
    "refcfa.alignment",
    "refcfa.metrics",
)
_frozen = False


def freeze_heavy_imports() -> None:
    """Import what the stages need, then move every object alive now out of the cyclic GC's view.

    torch and diffusers bring ~400k long-lived objects; a full collection walks them all while
    holding the GIL (~170 ms on this machine), and whichever thread triggers it stalls the GUI
    thread that long. ``gc.freeze()`` once, right after the imports and before any job creates data
    (so nothing a job allocates is frozen), keeps later collections small. Once per process.
    """
    global _frozen
    if _frozen:
        return
    import importlib

    for name in _HEAVY_MODULES:
        importlib.import_module(name)
    gc.freeze()
    _frozen = True


def _default_stage_fn(cfg: Any, stage: str, device: Any, cancel: Any) -> Iterator[Any]:
    from refcfa.evaluation.pipeline import run_stage

    return run_stage(cfg, stage, device, cancel)


class StageWorker(QObject):
    """Runs ``stage_fn(cfg, stage, device, cancel)`` (default ``run_stage``) in :meth:`run`.

    ``device=None`` keeps the config's ``device``; the worker resolves it first
    (``refcfa.engine.devices.resolve_device``, which also refuses e.g. ``cuda`` without CUDA) and
    reports it as an ``{"kind": "device"}`` event.
    """

    event = Signal(int, object)
    errored = Signal(int, str, str)
    finished = Signal(int, str)

    def __init__(
        self, job_id: int, stage: str, cfg: Any, device: str | None = None, stage_fn: StageFn | None = None
    ) -> None:
        super().__init__()
        self.job_id, self.stage, self.cfg, self.device = job_id, stage, cfg, device
        self.stage_fn = stage_fn or _default_stage_fn
        self._lock = threading.Lock()
        self._cancel_requested = False
        self._token: Any = None
        self.thread_name = ""  # the thread run() ran in (for tests)
        self.low_priority = True  # nice the worker thread: the GUI thread stays responsive

    @property
    def cancel_requested(self) -> bool:
        return self._cancel_requested

    def cancel(self) -> None:
        """Ask the job to stop after the current batch (thread-safe)."""
        with self._lock:
            self._cancel_requested = True
            token = self._token
        if token is not None:
            token.cancel()

    def _make_token(self) -> Any:
        from refcfa.engine.trainer import CancelToken  # imports torch: in the worker thread

        token = CancelToken()
        with self._lock:
            self._token = token
            if self._cancel_requested:
                token.cancel()
        return token

    @Slot()
    def run(self) -> None:
        self.thread_name = threading.current_thread().name
        if self.low_priority:
            lower_thread_priority()
        status = "done"
        try:
            freeze_heavy_imports()
            token = self._make_token()
            spec = self.device if self.device is not None else getattr(self.cfg, "device", "auto")
            from refcfa.engine.devices import resolve_device

            self.event.emit(self.job_id, {"kind": "device", "device": str(resolve_device(spec))})
            gen = self.stage_fn(self.cfg, self.stage, self.device, token)
            try:
                for ev in gen:
                    payload = summarize_event(ev)
                    if payload is not None:
                        self.event.emit(self.job_id, payload)
            finally:
                close = getattr(gen, "close", None)
                if close is not None:
                    close()
            status = "cancelled" if token.cancelled else "done"
        except Exception as exc:  # noqa: BLE001 - every failure reaches the GUI as a message
            log.debug("job %d (%s) failed", self.job_id, self.stage, exc_info=True)
            status = "failed"
            self.errored.emit(self.job_id, user_message(exc), traceback.format_exc())
        finally:
            self.finished.emit(self.job_id, status)
            # end the thread's event loop as soon as run() returns, whoever (if anyone) listens
            app = QCoreApplication.instance()
            if app is not None and QThread.currentThread() is not app.thread():
                QThread.currentThread().quit()


__all__ = ["StageWorker", "user_message"]
