"""Overlay switches and opacities, with legends that say which way is anomalous."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QGridLayout, QLabel, QPushButton, QSlider, QWidget

from refcfa_gui.state import TimelineState
from refcfa_gui.state.timeline import OVERLAYS
from refcfa_gui.widgets.field_grid import OVERLAY_NAMES, direction_text

UNAVAILABLE = {
    "E": "needs a cached trajectory (the image is still being computed, or not cached)",
    "NS": "needs a cached trajectory (the image is still being computed, or not cached)",
    "DV": "needs a cached trajectory (the image is still being computed, or not cached)",
    "A": "no anomaly map for this image: load one (Load anomaly map…) or run stage T2 (`refcfa pipeline`)",
    "contour": "this image has no ground-truth mask",
}
DESCRIPTIONS = {
    "E": "Σ a_n R_n² (uniform a_n): residual energy",
    "NS": "change of R between steps relative to E: noise-like residuals are non-stationary",
    "DV": "1 − ‖mean direction‖: 0 = persistent drift direction",
    "A": "detector output sigmoid(f_ψ)",
    "contour": "outline of the ground-truth mask",
}


class OverlayControls(QWidget):
    """One row per overlay: on/off, opacity, legend. Signals: ``load_map_requested``, ``roi_toggled(bool)``."""

    load_map_requested = Signal()
    roi_toggled = Signal(bool)
    clear_probe_requested = Signal()

    def __init__(self, state: TimelineState, parent=None) -> None:
        super().__init__(parent)
        self.state = state
        grid = QGridLayout(self)
        grid.setContentsMargins(4, 2, 4, 2)
        grid.addWidget(QLabel("<b>Overlays on the image</b>"), 0, 0, 1, 3)
        self.checks: dict[str, QCheckBox] = {}
        self.sliders: dict[str, QSlider] = {}
        for row, name in enumerate(OVERLAYS, start=1):
            arrow = direction_text(name)
            check = QCheckBox(f"{OVERLAY_NAMES[name]}" + (f"  ({arrow})" if arrow else ""))
            check.setObjectName(f"overlay_{name}")
            check.toggled.connect(lambda on, n=name: state.set_overlay(n, visible=on))
            grid.addWidget(check, row, 0)
            self.checks[name] = check
            if name != "contour":
                slider = QSlider(Qt.Orientation.Horizontal)
                slider.setRange(0, 100)
                slider.setFixedWidth(90)
                slider.setToolTip(f"Opacity of {name}")
                slider.valueChanged.connect(lambda v, n=name: state.set_overlay(n, opacity=v / 100.0))
                grid.addWidget(slider, row, 1)
                self.sliders[name] = slider
        row = len(OVERLAYS) + 1
        self.load_button = QPushButton("Load anomaly map…")
        self.load_button.setToolTip("Load a detector map A(u) for this image (.npy, .npz or an image file)")
        self.load_button.clicked.connect(self.load_map_requested)
        self.roi_button = QPushButton("Probe a region (ROI)")
        self.roi_button.setCheckable(True)
        self.roi_button.setToolTip("Drag a rectangle on the image; the plot shows the mean over it")
        self.roi_button.toggled.connect(self.roi_toggled)
        self.clear_button = QPushButton("Clear probe")
        self.clear_button.clicked.connect(self.clear_probe_requested)
        grid.addWidget(self.load_button, row, 0, 1, 2)
        grid.addWidget(self.roi_button, row + 1, 0)
        grid.addWidget(self.clear_button, row + 1, 1)
        legend = QLabel(
            "<small>R, M, Q, E and A are <b>higher</b> on anomalous pixels; "
            "NS and DV are <b>lower</b> (DESIGN §11).</small>"
        )
        legend.setWordWrap(True)
        grid.addWidget(legend, row + 2, 0, 1, 2)
        grid.setRowStretch(row + 3, 1)
        state.events.overlay.connect(self._on_overlay)
        state.events.overlays_available.connect(self._on_available)
        for name in OVERLAYS:
            self._on_overlay((name, state.overlays[name]))
        self._on_available(state.overlays_available)

    def _on_overlay(self, item) -> None:
        name, overlay = item
        check = self.checks[name]
        check.blockSignals(True)
        check.setChecked(overlay.visible)
        check.blockSignals(False)
        slider = self.sliders.get(name)
        if slider is not None:
            slider.blockSignals(True)
            slider.setValue(round(overlay.opacity * 100))
            slider.blockSignals(False)

    def _on_available(self, names: set[str]) -> None:
        for name, check in self.checks.items():
            ok = name in names
            check.setEnabled(ok)
            tip = DESCRIPTIONS[name] if ok else f"Unavailable: {UNAVAILABLE[name]}"
            check.setToolTip(tip)
            if name in self.sliders:
                self.sliders[name].setEnabled(ok)
