"""The scrub through a trajectory: step, playback, visible fields, overlays, levels, colormaps.

Plain Python (no Qt). Steps are DESIGN's ``n = 1..K`` (0 when nothing is loaded). While an image is
computed, ``available`` (< ``K``) steps exist and the step stays inside them.

Levels are fixed per field for the whole entry (computed once from all steps, e.g. the 1–99
percentiles), so a scrub compares like with like; the views never autoscale per frame.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from refcfa_gui.state.signals import Events

VIEWS: tuple[str, ...] = ("image", "R", "M", "Q", "x0_hat")
"""Views of the timeline, left to right: the input, the three REF primitives, the clean estimate."""
FIELDS: tuple[str, ...] = ("R", "M", "Q", "x0_hat")
"""The per-step arrays read for every frame."""
SCALAR_FIELDS: tuple[str, ...] = ("R", "M", "Q")
OVERLAYS: tuple[str, ...] = ("E", "NS", "DV", "A", "contour")
"""Overlays on the image: adaptive statistics, the anomaly map, the ground-truth contour."""

DEFAULT_COLORMAPS: dict[str, str] = {
    "R": "inferno",
    "M": "magma",
    "Q": "viridis",
    "E": "inferno",
    "NS": "cividis",
    "DV": "cividis",
    "A": "turbo",
}
FPS_RANGE = (1, 60)


@dataclass(frozen=True)
class Overlay:
    visible: bool = False
    opacity: float = 0.5


class TimelineState:
    """State of the timeline viewer.

    Events (callbacks get the new value): ``entry`` (the state, when a new trajectory is set),
    ``step``, ``available``, ``playing``, ``fps``, ``loop``, ``visible`` (set of views),
    ``overlay`` (``(name, Overlay)``), ``overlays_available`` (set of names), ``levels``
    (``(field, (lo, hi))``), ``colormap`` (``(field, name)``).
    """

    def __init__(self) -> None:
        self.events = Events(
            "entry",
            "step",
            "available",
            "playing",
            "fps",
            "loop",
            "visible",
            "overlay",
            "overlays_available",
            "levels",
            "colormap",
        )
        self.key: str | None = None
        self.K = 0
        self.available = 0
        self.step = 0
        self.timesteps: tuple[int, ...] = ()
        self.playing = False
        self.fps = 8
        self.loop = True
        self.visible: set[str] = set(VIEWS)
        # the ground-truth contour is on by default: a defective image shows where its defect is
        self.overlays: dict[str, Overlay] = {name: Overlay(visible=name == "contour") for name in OVERLAYS}
        self.overlays_available: set[str] = set()
        self.levels: dict[str, tuple[float, float]] = {}
        self.colormaps: dict[str, str] = dict(DEFAULT_COLORMAPS)

    # -- the trajectory --------------------------------------------------------------------------
    def set_entry(
        self,
        key: str | None,
        K: int,
        levels: Mapping[str, tuple[float, float]] | None = None,
        available: int | None = None,
        timesteps: Iterable[int] = (),
        step: int | None = None,
    ) -> None:
        """Show a new trajectory of ``K`` steps (``available`` of them readable; default all).

        The step is kept when it still exists (so switching images keeps the scrub position),
        else clamped; ``step`` forces one.
        """
        self.key = key
        self.K = max(0, int(K))
        self.available = self.K if available is None else max(0, min(int(available), self.K))
        self.timesteps = tuple(int(t) for t in timesteps)
        self.levels = {f: (float(lo), float(hi)) for f, (lo, hi) in (levels or {}).items()}
        wanted = self.step if step is None else int(step)
        self.step = self._clamp(wanted if wanted >= 1 else 1)
        if self.available == 0:
            self.step = 0
        if self.playing and self.available == 0:
            self.playing = False
            self.events.playing.emit(False)
        self.events.entry.emit(self)
        self.events.step.emit(self.step)

    def clear(self) -> None:
        self.set_entry(None, 0)

    def set_available(self, available: int) -> None:
        """More steps arrived (streaming); the first one becomes the current step."""
        available = max(0, min(int(available), self.K))
        if available == self.available:
            return
        self.available = available
        self.events.available.emit(available)
        if self.step == 0 and available > 0:
            self.set_step(1)
        elif self.step > available:
            self.set_step(available)

    def _clamp(self, n: int) -> int:
        if self.available == 0:
            return 0
        return max(1, min(int(n), self.available))

    # -- stepping --------------------------------------------------------------------------------
    def set_step(self, n: int) -> None:
        n = self._clamp(n)
        if n != self.step:
            self.step = n
            self.events.step.emit(n)

    def next_step(self) -> None:
        self.set_step(self.step + 1)

    def prev_step(self) -> None:
        self.set_step(self.step - 1)

    def first(self) -> None:
        self.set_step(1)

    def last(self) -> None:
        self.set_step(self.available)

    def advance(self) -> None:
        """One playback tick: next step; at the end wrap (``loop``) or stop playing."""
        if self.available == 0:
            self.set_playing(False)
        elif self.step < self.available:
            self.set_step(self.step + 1)
        elif self.loop:
            self.set_step(1)
        else:
            self.set_playing(False)

    # -- playback --------------------------------------------------------------------------------
    def set_playing(self, playing: bool) -> None:
        playing = bool(playing) and self.available > 0
        if playing != self.playing:
            if playing and not self.loop and self.step >= self.available:
                self.set_step(1)  # play from the start when stopped at the end
            self.playing = playing
            self.events.playing.emit(playing)

    def toggle_playing(self) -> None:
        self.set_playing(not self.playing)

    def set_fps(self, fps: float) -> None:
        fps = int(round(max(FPS_RANGE[0], min(FPS_RANGE[1], float(fps)))))
        if fps != self.fps:
            self.fps = fps
            self.events.fps.emit(fps)

    def set_loop(self, loop: bool) -> None:
        if bool(loop) != self.loop:
            self.loop = bool(loop)
            self.events.loop.emit(self.loop)

    # -- what is drawn ---------------------------------------------------------------------------
    def set_visible(self, view: str, visible: bool) -> None:
        if view not in VIEWS:
            raise ValueError(f"view {view!r}: expected one of {', '.join(VIEWS)}")
        new = set(self.visible)
        (new.add if visible else new.discard)(view)
        if new != self.visible:
            self.visible = new
            self.events.visible.emit(set(new))

    def set_overlay(self, name: str, visible: bool | None = None, opacity: float | None = None) -> None:
        if name not in OVERLAYS:
            raise ValueError(f"overlay {name!r}: expected one of {', '.join(OVERLAYS)}")
        old = self.overlays[name]
        new = old
        if visible is not None:
            new = replace(new, visible=bool(visible))
        if opacity is not None:
            new = replace(new, opacity=float(max(0.0, min(1.0, opacity))))
        if new != old:
            self.overlays[name] = new
            self.events.overlay.emit((name, new))

    def set_overlays_available(self, names: Iterable[str]) -> None:
        names = {n for n in names if n in OVERLAYS}
        if names != self.overlays_available:
            self.overlays_available = names
            self.events.overlays_available.emit(set(names))

    def visible_overlays(self) -> list[str]:
        """Overlays drawn now: switched on and available for the current image."""
        return [n for n in OVERLAYS if self.overlays[n].visible and n in self.overlays_available]

    def set_levels(self, field: str, lo: float, hi: float) -> None:
        """Fix ``field``'s display range (``lo < hi``; equal values are widened a little)."""
        lo, hi = float(lo), float(hi)
        if hi < lo:
            lo, hi = hi, lo
        if hi == lo:
            hi = lo + (abs(lo) * 1e-3 or 1e-6)
        if self.levels.get(field) != (lo, hi):
            self.levels[field] = (lo, hi)
            self.events.levels.emit((field, (lo, hi)))

    def set_colormap(self, field: str, name: str) -> None:
        if self.colormaps.get(field) != name:
            self.colormaps[field] = name
            self.events.colormap.emit((field, name))
