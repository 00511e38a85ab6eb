"""R_t, M_t, Q_t of the probed pixel (or ROI mean) against the step, with the normal reference band.

Three small plots side by side (the fields have different scales), a vertical cursor at the
current step, and the band (5–95 % filled, median dashed) of the same field over normal pixels.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from refcfa_gui.state.timeline import SCALAR_FIELDS
from refcfa_gui.widgets.field_grid import cache_static, direction_text

CURVE_COLORS = {"R": "#e4572e", "M": "#a846a0", "Q": "#2e86ab"}


class ProbePlot(QWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.caption = QLabel("Click a pixel (or drag a region) to plot its fields over the steps.")
        self.caption.setObjectName("ProbeCaption")
        self.caption.setWordWrap(True)
        self.band_label = QLabel("")
        self.band_label.setObjectName("BandLabel")
        self.band_label.setWordWrap(True)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setObjectName("ProbeGraphics")
        self.plots: dict[str, pg.PlotItem] = {}
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.medians: dict[str, pg.PlotDataItem] = {}
        self.fills: dict[str, pg.FillBetweenItem] = {}
        self.cursors: dict[str, pg.InfiniteLine] = {}
        self._lo: dict[str, pg.PlotDataItem] = {}
        self._hi: dict[str, pg.PlotDataItem] = {}
        for col, name in enumerate(SCALAR_FIELDS):
            plot = self.graphics.addPlot(row=0, col=col)
            plot.setTitle(f"{name}<sub>t</sub> ({direction_text(name)})", size="9pt")
            plot.setLabel("bottom", "step n")
            plot.showGrid(x=True, y=True, alpha=0.25)
            plot.setMouseEnabled(x=False, y=True)
            cache_static(plot.getAxis("left"), plot.getAxis("bottom"), plot.titleLabel)
            color = CURVE_COLORS[name]
            self._lo[name] = pg.PlotDataItem(pen=pg.mkPen(None))
            self._hi[name] = pg.PlotDataItem(pen=pg.mkPen(None))
            fill = pg.FillBetweenItem(self._lo[name], self._hi[name], brush=pg.mkBrush(128, 128, 128, 70))
            plot.addItem(self._lo[name])
            plot.addItem(self._hi[name])
            plot.addItem(fill)
            median = plot.plot(pen=pg.mkPen("#888888", width=1.5, style=pg.QtCore.Qt.PenStyle.DashLine))
            curve = plot.plot(
                pen=pg.mkPen(color, width=2), symbol="o", symbolSize=5, symbolBrush=color, symbolPen=None
            )
            cursor = pg.InfiniteLine(pos=1, angle=90, movable=False, pen=pg.mkPen("#f0c000", width=1.5))
            plot.addItem(cursor)
            if col > 0:
                plot.setXLink(self.plots[SCALAR_FIELDS[0]])
            self.plots[name], self.curves[name], self.medians[name] = plot, curve, median
            self.fills[name], self.cursors[name] = fill, cursor
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.caption)
        layout.addWidget(self.graphics, 1)
        layout.addWidget(self.band_label)

    def set_series(self, series: dict[str, np.ndarray] | None, caption: str = "") -> None:
        """Plot ``{field: (K,)}`` against ``n = 1..K`` (``None`` clears)."""
        for name in SCALAR_FIELDS:
            data = None if series is None else series.get(name)
            if data is None:
                self.curves[name].setData([], [])
            else:
                self.curves[name].setData(np.arange(1, len(data) + 1), np.asarray(data, dtype=np.float64))
        if caption:
            self.caption.setText(caption)
        elif series is None:
            self.caption.setText("Click a pixel (or drag a region) to plot its fields over the steps.")

    def series(self, name: str) -> np.ndarray:
        """The plotted y values of ``name`` (tests compare them with the cache)."""
        _x, y = self.curves[name].getData()
        return np.asarray(y) if y is not None else np.zeros(0)

    def set_band(self, bands: dict | None) -> None:
        """``{field: ReferenceBand}`` (``None`` clears); the label says which pixels it is over."""
        description = ""
        for name in SCALAR_FIELDS:
            band = None if bands is None else bands.get(name)
            if band is None:
                for item in (self._lo[name], self._hi[name], self.medians[name]):
                    item.setData([], [])
                continue
            n = np.arange(1, len(band.median) + 1)
            self._lo[name].setData(n, band.p5.astype(np.float64))
            self._hi[name].setData(n, band.p95.astype(np.float64))
            self.medians[name].setData(n, band.median.astype(np.float64))
            description = band.description
        self.band_label.setText(f"<small>Grey: {description}</small>" if description else "")

    def set_band_message(self, text: str) -> None:
        self.band_label.setText(f"<small>{text}</small>")

    def set_cursor(self, n: int) -> None:
        for cursor in self.cursors.values():
            cursor.setValue(n)

    def set_x_range(self, K: int) -> None:
        if K > 0:
            self.plots[SCALAR_FIELDS[0]].setXRange(0.5, K + 0.5, padding=0)

    def set_plot_colors(self, background: str, foreground: str) -> None:
        self.graphics.setBackground(background)
