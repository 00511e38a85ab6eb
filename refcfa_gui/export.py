"""Exports of the timeline: the current view as PNG, the scrub as an animated GIF or an MP4.

Frames are rendered by the same views the user sees (each step drawn, then grabbed), so an
export looks like the window. MP4 needs an ffmpeg writer for imageio (``imageio-ffmpeg`` or
PyAV); without one the MP4 action is disabled with a tooltip saying so.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QWidget

if TYPE_CHECKING:  # pragma: no cover
    from refcfa_gui.widgets.timeline import TimelineViewer


def mp4_writer() -> tuple[str | None, str]:
    """``(imageio plugin, "")`` when MP4 can be written, else ``(None, reason)``."""
    if importlib.util.find_spec("imageio_ffmpeg") is not None:
        return "FFMPEG", ""
    if importlib.util.find_spec("av") is not None:
        return "pyav", ""
    return None, "MP4 export needs an ffmpeg writer for imageio: pip install imageio-ffmpeg (or av)"


def qimage_to_rgb(image: QImage) -> np.ndarray:
    """A QImage → uint8 ``(H, W, 3)`` (a copy)."""
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    w, h, bpl = image.width(), image.height(), image.bytesPerLine()
    buf = np.frombuffer(image.constBits(), dtype=np.uint8, count=h * bpl).reshape(h, bpl)
    return buf[:, : 3 * w].reshape(h, w, 3).copy()


def grab_rgb(widget: QWidget) -> np.ndarray:
    return qimage_to_rgb(widget.grab().toImage())


def save_png(widget: QWidget, path: str | Path) -> Path:
    """Render ``widget`` (as on screen) into a PNG at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not widget.grab().save(str(path), "PNG"):
        raise OSError(f"could not write {path}: check the folder exists and is writable")
    return path


def scrub_frames(
    viewer: TimelineViewer, progress: Callable[[int, int], None] | None = None
) -> list[np.ndarray]:
    """Draw every available step in ``viewer`` and grab the field views with the scrubber: RGB frames."""
    state, controller = viewer.state, viewer.controller
    if state.available == 0:
        raise ValueError("nothing to export: select an image whose fields are cached (or computed)")
    target = viewer.scrubber.parentWidget()  # the grid and the scrubber
    start = state.step
    frames = []
    try:
        for n in range(1, state.available + 1):
            frame = controller.read_frame_now(n)
            if frame is None:
                continue
            with state.events.step.blocked():
                state.set_step(n)
            viewer.scrubber._on_step(n)
            viewer.grid.set_frame(frame, state.levels)
            frames.append(grab_rgb(target))
            if progress is not None:
                progress(n, state.available)
    finally:
        state.set_step(start)
        viewer.scrubber._on_step(state.step)
        current = controller.read_frame_now(state.step)
        if current is not None:
            viewer.grid.set_frame(current, state.levels)
    return frames


def save_gif(frames: list[np.ndarray], path: str | Path, fps: int) -> Path:
    """An animated GIF (looping) of ``frames`` at ``fps``."""
    import imageio.v3 as iio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, np.stack(frames), extension=".gif", duration=round(1000 / max(1, fps)), loop=0)
    return path


def save_mp4(frames: list[np.ndarray], path: str | Path, fps: int) -> Path:
    import imageio.v3 as iio

    plugin, reason = mp4_writer()
    if plugin is None:
        raise RuntimeError(reason)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # codecs want even sizes
    h, w = frames[0].shape[:2]
    stack = np.stack([f[: h - h % 2, : w - w % 2] for f in frames])
    iio.imwrite(path, stack, plugin=plugin, fps=fps, **({"codec": "libx264"} if plugin == "pyav" else {}))
    return path
