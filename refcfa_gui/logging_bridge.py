"""Python ``logging`` records into the Log dock: a handler that emits a Qt signal (thread-safe)."""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    record = Signal(str, int)  # formatted message, level number


class QtLogHandler(logging.Handler):
    """A ``logging.Handler`` whose ``emitter.record(text, levelno)`` reaches the GUI thread queued."""

    def __init__(self, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.emitter = _Emitter()
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.emitter.record.emit(self.format(record), record.levelno)
        except RuntimeError:  # the emitter was deleted at shutdown
            pass
