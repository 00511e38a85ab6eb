"""The status bar: the pixel under the cursor (or the probed one), every visible value there, the
device and the running jobs. The device is known without importing torch at start-up.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar

if TYPE_CHECKING:  # pragma: no cover
    from refcfa_gui.state import ProbeState, TimelineState
    from refcfa_gui.timeline_controller import TimelineController


def initial_device() -> tuple[str, str]:
    """``(label, tooltip)`` for the device, without importing torch."""
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        if torch.cuda.is_available():
            return "GPU", f"CUDA: {torch.cuda.get_device_name(0)}"
        return "CPU", "torch found no CUDA device"
    if importlib.util.find_spec("torch") is None:
        return "CPU", "torch is not installed: viewing only"
    if os.environ.get("CUDA_VISIBLE_DEVICES") not in ("", "-1") and Path("/dev/nvidiactl").exists():
        return "GPU", "a CUDA device is present (torch loads on the first computation)"
    return "CPU", "no CUDA device found (torch loads on the first computation)"


def _pixel_text(value) -> str:
    return (
        f"{int(value)}"
        if getattr(value, "ndim", 0) == 0
        else "(" + ",".join(str(int(t)) for t in value) + ")"
    )


class StatusBarView(QObject):
    """Fills ``bar`` from the timeline's state and controller (a view: it only reads)."""

    def __init__(
        self, bar: QStatusBar, timeline: TimelineState, probe: ProbeState, controller: TimelineController
    ) -> None:
        super().__init__(bar)
        self.timeline, self.probe, self.controller = timeline, probe, controller
        self.cursor: tuple[int, int] | None = None
        self.cursor_label = QLabel("")
        self.cursor_label.setObjectName("CursorLabel")
        self.values_label = QLabel("")
        self.values_label.setObjectName("ValuesLabel")
        label, tip = initial_device()
        self.device_label = QLabel(f"Device: {label}")
        self.device_label.setObjectName("DeviceLabel")
        self.device_label.setToolTip(tip)
        self.jobs_label = QLabel("No jobs running")
        self.jobs_label.setObjectName("JobsLabel")
        self.jobs_busy = QProgressBar()
        self.jobs_busy.setRange(0, 0)
        self.jobs_busy.setMaximumWidth(80)
        self.jobs_busy.setMaximumHeight(14)
        self.jobs_busy.hide()
        bar.addWidget(self.cursor_label)
        bar.addWidget(self.values_label, 1)
        bar.addPermanentWidget(self.jobs_busy)
        bar.addPermanentWidget(self.jobs_label)
        bar.addPermanentWidget(self.device_label)
        controller.frame_ready.connect(lambda _n, _frame: self.update_values())
        controller.overlays_ready.connect(lambda _maps: self.update_values())
        controller.device_changed.connect(self.set_device)
        probe.events.changed.connect(lambda _probe: self.update_values())
        timeline.events.visible.connect(lambda _views: self.update_values())

    def set_cursor(self, y: int, x: int) -> None:
        """The pixel under the mouse (``-1, -1``: off the images)."""
        self.cursor = None if y < 0 else (y, x)
        self.update_values()

    def update_values(self) -> None:
        """Values under the cursor; with the cursor off the images, at the probed pixel."""
        where = "y {}, x {}"
        pixel = self.cursor
        probe = self.probe.probe
        if pixel is None and probe is not None and probe.is_pixel:
            pixel, where = (probe.y0, probe.x0), "probe y {}, x {}"
        if pixel is None:
            self.cursor_label.setText("")
            self.values_label.setText("")
            return
        self.cursor_label.setText(where.format(*pixel))
        self.values_label.setText("   ".join(self.values_at(*pixel)))

    def values_at(self, y: int, x: int) -> list[str]:
        """``"name value"`` of every visible view (and drawn overlay) at pixel ``(y, x)``."""
        c, visible = self.controller, self.timeline.visible
        if c.image is None or y >= c.image.shape[0] or x >= c.image.shape[1]:
            return []
        out = []
        if "image" in visible:
            out.append("image " + _pixel_text(c.image[y, x]))
        for name in ("R", "M", "Q"):
            data = c.frame.get(name)
            if name in visible and data is not None:
                out.append(f"{name} {float(data[y, x]):.4g}")
        x0 = c.frame.get("x0_hat")
        if "x0_hat" in visible and x0 is not None:
            out.append("x̂0 " + _pixel_text(x0[y, x]))
        for name in self.timeline.visible_overlays():
            data = c.overlay_data.get(name)
            if name != "contour" and data is not None:
                out.append(f"{name} {float(data[y, x]):.4g}")
        return out

    def set_device(self, device: str) -> None:
        label = "GPU" if device.startswith("cuda") else "CPU"
        self.device_label.setText(f"Device: {label}")
        self.device_label.setToolTip(f"the last computation ran on {device}")

    def set_jobs(self, names: list[str]) -> None:
        if names:
            self.jobs_label.setText(f"Running: {', '.join(names)}")
            self.jobs_busy.show()
        else:
            self.jobs_label.setText("No jobs running")
            self.jobs_busy.hide()
