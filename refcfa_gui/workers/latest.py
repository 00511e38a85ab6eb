"""A worker thread where the newest request wins: stale requests are dropped, never queued.

The timeline asks for a frame on every step change; when reading or drawing falls behind, only
the newest request per channel is kept (one slot per channel, overwritten), and the GUI ignores
results that are not the newest it asked for. Used for frames (its own thread, so a slow
computation never delays a frame) and for probes, bands, levels and overlays.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QThread, Signal

log = logging.getLogger(__name__)


class LatestRequestThread(QThread):
    """Runs ``fn(*args)`` requests one at a time; per channel only the newest pending one survives.

    Signals (delivered on the GUI thread): ``done(channel, request_id, result)``,
    ``failed(channel, request_id, exception)``. :meth:`is_current` tells whether a result is the
    newest asked for on its channel.
    """

    done = Signal(str, int, object)
    failed = Signal(str, int, object)

    def __init__(self, name: str = "loader", parent=None) -> None:
        super().__init__(parent)
        self.setObjectName(name)
        self._cond = threading.Condition()
        self._pending: dict[str, tuple[int, Callable[..., Any], tuple]] = {}
        self._latest: dict[str, int] = {}
        self._counter = 0
        self._stop = False
        self.dropped = 0  # requests replaced before they ran (for the benchmark and tests)

    def submit(self, channel: str, fn: Callable[..., Any], *args: Any) -> int:
        """Ask for ``fn(*args)`` on ``channel``; replaces the channel's pending request. Returns its id."""
        with self._cond:
            self._counter += 1
            rid = self._counter
            if channel in self._pending:
                self.dropped += 1
            self._pending[channel] = (rid, fn, args)
            self._latest[channel] = rid
            self._cond.notify()
        if not self.isRunning() and not self._stop:
            self.start()
        return rid

    def cancel(self, channel: str) -> None:
        """Forget the channel's pending request and make any result in flight stale."""
        with self._cond:
            self._pending.pop(channel, None)
            self._counter += 1
            self._latest[channel] = self._counter

    def is_current(self, channel: str, rid: int) -> bool:
        with self._cond:
            return self._latest.get(channel) == rid

    def idle(self) -> bool:
        """No pending request (one may still be running)."""
        with self._cond:
            return not self._pending

    def run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                channel = next(iter(self._pending))
                rid, fn, args = self._pending.pop(channel)
            try:
                result = fn(*args)
            except Exception as exc:  # noqa: BLE001 - reported to the GUI
                log.debug("request %s/%d failed", channel, rid, exc_info=True)
                self.failed.emit(channel, rid, exc)
            else:
                self.done.emit(channel, rid, result)

    def stop(self, timeout_ms: int = 5000) -> bool:
        """Drop pending requests, finish the running one, end the thread. True if it ended in time."""
        with self._cond:
            self._stop = True
            self._pending.clear()
            self._cond.notify_all()
        if self.isRunning():
            return self.wait(timeout_ms)
        return True
