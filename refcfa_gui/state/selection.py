"""The image the viewer shows (plain Python, no Qt)."""

from __future__ import annotations

from typing import Any

from refcfa_gui.state.signals import Events


class SelectionState:
    """The current image: a :class:`refcfa.data.sample.Sample` (or ``None``).

    Events: ``current`` (the new sample or ``None``).
    """

    def __init__(self) -> None:
        self.events = Events("current")
        self.current: Any | None = None

    def select(self, sample: Any | None) -> None:
        if sample is self.current or (
            sample is not None and self.current is not None and sample == self.current
        ):
            return
        self.current = sample
        self.events.current.emit(sample)

    def clear(self) -> None:
        self.select(None)
