"""The Timeline viewer: the field grid, the scrubber, the overlays and the probe plot.

A view over :class:`~refcfa_gui.state.TimelineState` and :class:`~refcfa_gui.state.ProbeState`,
fed by a :class:`~refcfa_gui.timeline_controller.TimelineController`. Keyboard: ←/→ step,
Space play/pause, Home/End first/last step (while the viewer has the focus).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from refcfa_gui.state import ProbeState, TimelineState
from refcfa_gui.state.probe import Probe
from refcfa_gui.timeline_controller import TimelineController
from refcfa_gui.widgets.banner import MessageBanner
from refcfa_gui.widgets.field_grid import FieldGrid
from refcfa_gui.widgets.overlay_controls import OverlayControls
from refcfa_gui.widgets.probe_plot import ProbePlot
from refcfa_gui.widgets.scrubber import Scrubber

log = logging.getLogger(__name__)


class TimelineViewer(QWidget):
    """Signals: ``frame_shown(n)`` after a step's images are set (benchmarks and tests wait on it)."""

    frame_shown = Signal(int)

    def __init__(
        self, state: TimelineState, probe: ProbeState, controller: TimelineController, parent=None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("TimelineViewer")
        self.state, self.probe, self.controller = state, probe, controller
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

        self.banner = MessageBanner()
        self.title = QLabel("Select an image in the Dataset browser")
        self.title.setObjectName("TimelineTitle")
        self.progress = QProgressBar()
        self.progress.setObjectName("ComputeProgress")
        self.progress.setMaximumWidth(260)
        self.progress.setFormat("computing step %v / %m")
        self.progress.hide()
        self.compute_button = QPushButton("Compute")
        self.compute_button.setToolTip("Compute this image's fields with the checkpoint (Ctrl+R)")
        self.compute_button.clicked.connect(lambda: controller.compute())
        self.compute_button.setEnabled(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the computation (nothing is cached)")
        self.cancel_button.clicked.connect(controller.cancel_compute)
        self.cancel_button.hide()
        header = QHBoxLayout()
        header.addWidget(self.title, 1)
        header.addWidget(self.progress)
        header.addWidget(self.compute_button)
        header.addWidget(self.cancel_button)

        self.grid = FieldGrid()
        self.grid.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.scrubber = Scrubber(state)
        self.overlays = OverlayControls(state)
        self.probe_plot = ProbePlot()
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(self.overlays)
        bottom.addWidget(self.probe_plot)
        bottom.setStretchFactor(0, 0)
        bottom.setStretchFactor(1, 1)
        bottom.setSizes([300, 900])
        main = QSplitter(Qt.Orientation.Vertical)
        main.setObjectName("TimelineSplitter")
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.grid, 1)
        top_layout.addWidget(self.scrubber)
        main.addWidget(top)
        main.addWidget(bottom)
        main.setStretchFactor(0, 3)
        main.setStretchFactor(1, 2)
        main.setSizes([420, 330])
        self.splitter = main

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.banner)
        layout.addLayout(header)
        layout.addWidget(main, 1)

        # grid → state
        self.grid.clicked.connect(self._on_clicked)
        self.grid.roi_changed.connect(probe.set_roi)
        self.grid.levels_edited.connect(self._on_levels_edited)
        self.grid.colormap_edited.connect(state.set_colormap)
        self.overlays.roi_toggled.connect(self.set_roi_mode)
        self.overlays.clear_probe_requested.connect(probe.clear)
        # state → views
        state.events.entry.connect(self._on_entry)
        state.events.step.connect(self.probe_plot.set_cursor)
        state.events.visible.connect(self.grid.set_visible_views)
        state.events.levels.connect(lambda item: self.grid.set_levels(item[0], *item[1]))
        state.events.colormap.connect(lambda item: self.grid.set_colormap(*item))
        state.events.overlay.connect(lambda _item: self._apply_overlays())
        state.events.overlays_available.connect(lambda _names: self._apply_overlays())
        probe.events.changed.connect(self._on_probe)
        # controller → views
        controller.image_ready.connect(self._on_image)
        controller.frame_ready.connect(self._on_frame)
        controller.overlays_ready.connect(self._on_overlays)
        controller.series_ready.connect(self._on_series)
        controller.bands_ready.connect(self.probe_plot.set_band)
        controller.band_message.connect(self.probe_plot.set_band_message)
        controller.message.connect(self._on_message)
        controller.progress.connect(self._on_progress)
        controller.computing.connect(self._on_computing)
        for field, name in state.colormaps.items():
            self.grid.set_colormap(field, name)

    # -- state → views ---------------------------------------------------------------------------
    def _on_entry(self, state: TimelineState) -> None:
        for field, (lo, hi) in state.levels.items():
            self.grid.set_levels(field, lo, hi)
        self.probe_plot.set_x_range(state.K)
        if state.available == 0:
            self.grid.clear_frame()
        sample = self.controller.sample
        if sample is not None:
            where = (
                "cached" if state.key else ("computing" if self.controller.is_computing() else "not cached")
            )
            label = "defective" if sample.label else "good"
            self.title.setText(
                f"<b>{sample.category} / {sample.image_id}</b> — {label}, {where}"
                + (f", K = {state.K}" if state.K else "")
            )
        self.compute_button.setEnabled(sample is not None and not state.key)

    def _on_image(self, image: np.ndarray, _mask: Any) -> None:
        self.grid.set_base_image(image)
        self._apply_overlays()

    def _on_frame(self, n: int, frame: dict[str, np.ndarray]) -> None:
        self.grid.set_frame(frame, self.state.levels)
        self.frame_shown.emit(n)

    def _on_overlays(self, maps: dict[str, np.ndarray]) -> None:
        for name, data in maps.items():
            lv = self.state.levels.get(name)
            if lv is not None:
                self.grid.set_levels(name, *lv)
            self.grid.set_overlay_data(name, data)
        self._apply_overlays()

    def _apply_overlays(self) -> None:
        shown = [n for n in self.state.visible_overlays() if n in self.controller.overlay_data]
        opacity = {n: o.opacity for n, o in self.state.overlays.items()}
        self.grid.set_overlays(shown, opacity)

    def _on_series(self, probe: Probe | None, series: dict | None) -> None:
        caption = "" if probe is None else f"{probe.label()} — red/purple/blue: this image"
        self.probe_plot.set_series(series, caption)

    def _on_probe(self, probe: Probe | None) -> None:
        self.grid.set_probe(None if probe is None else (probe.y0, probe.x0, probe.y1, probe.x1))

    def _on_message(self, text: str, level: str) -> None:
        if text:
            self.banner.show_message(text, level or "info")
        else:
            self.banner.clear()

    def _on_progress(self, n: int, K: int) -> None:
        if n < 0:
            self.progress.hide()
            return
        self.progress.setRange(0, max(K, 1))
        self.progress.setValue(n)
        self.progress.show()

    def _on_computing(self, running: bool) -> None:
        self.cancel_button.setVisible(running)
        self.compute_button.setVisible(not running)

    # -- interaction -----------------------------------------------------------------------------
    def _on_clicked(self, y: int, x: int) -> None:
        if self.grid.roi is None:
            self.probe.set_pixel(y, x)
        self.setFocus()

    def _on_levels_edited(self, field: str, lo: float, hi: float) -> None:
        self.state.set_levels(field, lo, hi)

    def set_roi_mode(self, on: bool) -> None:
        if self.overlays.roi_button.isChecked() != on:
            self.overlays.roi_button.setChecked(on)  # re-enters through roi_toggled
            return
        self.grid.set_roi_mode(on)
        if not on and self.probe.probe is not None and not self.probe.probe.is_pixel:
            self.probe.clear()

    def reset_zoom(self) -> None:
        self.grid.reset_zoom()

    def set_plot_colors(self, background: str, foreground: str) -> None:
        self.grid.set_plot_colors(background, foreground)
        self.probe_plot.set_plot_colors(background, foreground)
