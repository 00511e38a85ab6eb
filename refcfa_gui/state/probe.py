"""The probed pixel or region of interest (plain Python, no Qt)."""

from __future__ import annotations

from dataclasses import dataclass

from refcfa_gui.state.signals import Events


@dataclass(frozen=True)
class Probe:
    """A probe in image coordinates: one pixel ``(y, x)`` or a box ``[y0, y1) × [x0, x1)``."""

    y0: int
    x0: int
    y1: int
    x1: int

    @property
    def is_pixel(self) -> bool:
        return self.y1 - self.y0 == 1 and self.x1 - self.x0 == 1

    def label(self) -> str:
        if self.is_pixel:
            return f"pixel (y={self.y0}, x={self.x0})"
        return f"ROI y {self.y0}–{self.y1 - 1}, x {self.x0}–{self.x1 - 1} ({(self.y1 - self.y0) * (self.x1 - self.x0)} px)"


class ProbeState:
    """The probe the time-series plot follows. Events: ``changed`` (a :class:`Probe` or ``None``).

    ``shape`` ``(H, W)`` of the current image clamps every probe inside it.
    """

    def __init__(self) -> None:
        self.events = Events("changed")
        self.probe: Probe | None = None
        self.shape: tuple[int, int] | None = None

    def set_shape(self, shape: tuple[int, int] | None) -> None:
        """Set the image size; a probe that no longer fits is clipped (or cleared)."""
        self.shape = None if shape is None else (int(shape[0]), int(shape[1]))
        if self.probe is not None:
            p = self.probe
            self._set(self._clip(p.y0, p.x0, p.y1, p.x1))

    def set_pixel(self, y: int, x: int) -> None:
        self._set(self._clip(int(y), int(x), int(y) + 1, int(x) + 1))

    def set_roi(self, y0: int, x0: int, y1: int, x1: int) -> None:
        """Probe the box ``[y0, y1) × [x0, x1)`` (corners in any order; at least one pixel)."""
        ya, yb = sorted((int(y0), int(y1)))
        xa, xb = sorted((int(x0), int(x1)))
        self._set(self._clip(ya, xa, max(yb, ya + 1), max(xb, xa + 1)))

    def clear(self) -> None:
        self._set(None)

    def _clip(self, y0: int, x0: int, y1: int, x1: int) -> Probe | None:
        if self.shape is None:
            return Probe(y0, x0, y1, x1)
        h, w = self.shape
        y0, y1 = max(0, y0), min(h, y1)
        x0, x1 = max(0, x0), min(w, x1)
        if y1 <= y0 or x1 <= x0:
            return None
        return Probe(y0, x0, y1, x1)

    def _set(self, probe: Probe | None) -> None:
        if probe != self.probe:
            self.probe = probe
            self.events.changed.emit(probe)
