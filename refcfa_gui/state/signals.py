"""A tiny signal/callback mechanism for the plain-Python state models (no Qt).

Modelled on napari's ``EmitterGroup`` but much smaller: a model owns an :class:`Events` namespace
(``model.events.step``), each a :class:`Signal` that calls its callbacks with the new value.
Widgets subscribe; the models are tested without Qt.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Callback = Callable[..., Any]


class Signal:
    """An ordered list of callbacks, called synchronously by :meth:`emit`."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._callbacks: list[Callback] = []
        self._blocked = 0

    def connect(self, callback: Callback) -> Callback:
        """Call ``callback(*args)`` on every emit; returns ``callback`` (usable as a decorator)."""
        if callback not in self._callbacks:
            self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callback | None = None) -> None:
        """Remove ``callback`` (all callbacks when ``None``); unknown callbacks are ignored."""
        if callback is None:
            self._callbacks.clear()
        elif callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, *args: Any) -> None:
        if self._blocked:
            return
        for callback in list(self._callbacks):
            callback(*args)

    @contextmanager
    def blocked(self) -> Iterator[None]:
        """Suppress emits inside the ``with`` block."""
        self._blocked += 1
        try:
            yield
        finally:
            self._blocked -= 1

    def __len__(self) -> int:
        return len(self._callbacks)

    def __repr__(self) -> str:
        return f"Signal({self.name!r}, {len(self._callbacks)} callbacks)"


class Events:
    """A namespace of named :class:`Signal` objects: ``Events("step", "fps").step.connect(cb)``."""

    def __init__(self, *names: str) -> None:
        self._names = tuple(names)
        for name in names:
            setattr(self, name, Signal(name))

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    @contextmanager
    def blocked(self) -> Iterator[None]:
        """Suppress every signal of the group inside the ``with`` block."""
        signals = [getattr(self, n) for n in self._names]
        for s in signals:
            s._blocked += 1
        try:
            yield
        finally:
            for s in signals:
                s._blocked -= 1
