"""Generator workers on a thread pool, after napari's ``_qt/qthreading.py`` (much smaller).

A :class:`GeneratorWorker` runs a function on a pool thread. When the function returns a
generator, every yielded value is emitted as ``yielded``; :meth:`GeneratorWorker.quit` asks it to
stop at the next yield (the generator is closed, so ``finally`` blocks and context managers run).
A plain function's return value is emitted as ``returned``. Signals are delivered on the GUI
thread (queued): ``started``, ``yielded(object)``, ``returned(object)``, ``errored(object)``
(the exception), ``aborted``, and always ``finished`` last.

:class:`WorkerManager` starts workers on its own pool, keeps them alive until they finish, tells
the status bar which jobs run, and on shutdown aborts them all and waits.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

log = logging.getLogger(__name__)


class WorkerSignals(QObject):
    started = Signal()
    yielded = Signal(object)
    returned = Signal(object)
    errored = Signal(object)
    aborted = Signal()
    finished = Signal()


class GeneratorWorker(QRunnable):
    """Run ``func(*args, **kwargs)`` on a pool thread (see the module docstring)."""

    def __init__(self, func: Callable[..., Any], *args: Any, name: str = "", **kwargs: Any) -> None:
        super().__init__()
        self.setAutoDelete(False)  # the Python object (and its signals) outlives run()
        self.func, self.args, self.kwargs = func, args, kwargs
        self.name = name or getattr(func, "__name__", "job")
        self.signals = WorkerSignals()
        self._abort = threading.Event()
        self._done = threading.Event()
        self.started = self.signals.started
        self.yielded = self.signals.yielded
        self.returned = self.signals.returned
        self.errored = self.signals.errored
        self.aborted = self.signals.aborted
        self.finished = self.signals.finished

    @property
    def abort_requested(self) -> bool:
        return self._abort.is_set()

    @property
    def is_done(self) -> bool:
        return self._done.is_set()

    def quit(self) -> None:
        """Ask the worker to stop at its next yield (a running plain function cannot be stopped)."""
        self._abort.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until ``run`` has returned (True) or ``timeout`` seconds passed (False)."""
        return self._done.wait(timeout)

    def run(self) -> None:  # pool thread
        try:
            self.signals.started.emit()
            if self._abort.is_set():
                self.signals.aborted.emit()
                return
            result = self.func(*self.args, **self.kwargs)
            if inspect.isgenerator(result):
                try:
                    for value in result:
                        if self._abort.is_set():
                            break
                        self.signals.yielded.emit(value)
                        if self._abort.is_set():
                            break
                finally:
                    result.close()
                if self._abort.is_set():
                    self.signals.aborted.emit()
            else:
                self.signals.returned.emit(result)
        except Exception as exc:  # noqa: BLE001 - every failure goes to the GUI as a message
            log.debug("worker %s failed", self.name, exc_info=True)
            self.signals.errored.emit(exc)
        finally:
            self._done.set()
            self.signals.finished.emit()


class WorkerManager(QObject):
    """Starts workers on a private pool and tracks them.

    Signals: ``jobs_changed(list[str])`` — names of the running user-visible jobs.
    """

    jobs_changed = Signal(list)

    def __init__(self, max_threads: int = 4, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self._workers: dict[int, tuple[GeneratorWorker, bool]] = {}
        self._closed = False

    def start(self, worker: GeneratorWorker, visible: bool = False) -> GeneratorWorker:
        """Start ``worker``; ``visible`` jobs are listed in the status bar while they run."""
        if self._closed:
            worker.quit()
        wid = id(worker)
        self._workers[wid] = (worker, visible)
        worker.finished.connect(lambda wid=wid: self._finished(wid))
        self.pool.start(worker)
        if visible:
            self.jobs_changed.emit(self.job_names())
        return worker

    def _finished(self, wid: int) -> None:
        entry = self._workers.pop(wid, None)
        if entry is not None and entry[1]:
            self.jobs_changed.emit(self.job_names())

    def job_names(self) -> list[str]:
        return [w.name for w, visible in self._workers.values() if visible and not w.is_done]

    def running(self) -> list[GeneratorWorker]:
        return [w for w, _ in self._workers.values() if not w.is_done]

    def shutdown(self, timeout_s: float = 10.0) -> bool:
        """Abort every worker and wait for the pool; True when all stopped within ``timeout_s``."""
        self._closed = True
        for worker, _ in list(self._workers.values()):
            worker.quit()
        self.pool.clear()  # queued, not yet started
        return self.pool.waitForDone(int(timeout_s * 1000))
