"""A live loss curve: points arrive one by one, the plot redraws at most ``max_fps`` times a second.

:meth:`LossPlot.append` only writes into growable numpy buffers and arms a single-shot timer;
the timer hands the buffers to pyqtgraph (``setData``), so a burst of training steps costs one
redraw per interval, never one per point. Two curves: the training loss and the validation loss.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QVBoxLayout, QWidget

TRAIN_COLOR = "#0072B2"  # Okabe-Ito blue
VAL_COLOR = "#D55E00"  # vermillion


class _Buffer:
    def __init__(self) -> None:
        self.x = np.empty(256)
        self.y = np.empty(256)
        self.n = 0

    def append(self, x: float, y: float) -> None:
        if self.n == self.x.size:
            self.x = np.concatenate([self.x, np.empty_like(self.x)])
            self.y = np.concatenate([self.y, np.empty_like(self.y)])
        self.x[self.n], self.y[self.n] = x, y
        self.n += 1

    def clear(self) -> None:
        self.n = 0

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        return self.x[: self.n], self.y[: self.n]


class LossPlot(QWidget):
    """``append(x, loss)``, ``append_val(x, loss)``, ``set_points(train, val)``, ``clear()``.

    ``redraws`` counts the redraws (for tests and the benchmark).
    """

    def __init__(self, parent=None, max_fps: float = 10.0) -> None:
        super().__init__(parent)
        self.plot = pg.PlotWidget()
        self.plot.setObjectName("LossPlot")
        self.plot.setMinimumHeight(120)
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.plot.setLabel("bottom", "step")
        self.plot.setLabel("left", "loss")
        self.plot.setMenuEnabled(False)
        self.legend = self.plot.addLegend(offset=(-8, 8), labelTextSize="8pt")
        self.train_curve = self.plot.plot([], [], pen=pg.mkPen(TRAIN_COLOR, width=2), name="train loss")
        self.val_curve = self.plot.plot(
            [],
            [],
            pen=pg.mkPen(VAL_COLOR, width=2),
            symbol="o",
            symbolSize=5,
            symbolBrush=VAL_COLOR,
            symbolPen=None,
            name="validation loss",
        )
        for curve in (self.train_curve, self.val_curve):
            curve.setClipToView(True)
            curve.setDownsampling(auto=True, method="peak")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)
        self._train, self._val = _Buffer(), _Buffer()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(int(1000 / max_fps))
        self._timer.timeout.connect(self.redraw)
        self.redraws = 0

    # -- data ------------------------------------------------------------------------------------
    def append(self, x: float, loss: float) -> None:
        self._train.append(x, loss)
        self._schedule()

    def append_val(self, x: float, loss: float) -> None:
        self._val.append(x, loss)
        self._schedule()

    def set_points(self, train: list[tuple[float, float]], val: list[tuple[float, float]] = ()) -> None:
        """Replace both curves (e.g. when another job or stage is shown)."""
        self._train.clear()
        self._val.clear()
        for x, y in train:
            self._train.append(x, y)
        for x, y in val:
            self._val.append(x, y)
        self._schedule()

    def clear(self) -> None:
        self.set_points([], [])

    def set_plot_colors(self, background: str, foreground: str) -> None:
        self.plot.setBackground(background)
        for name in ("left", "bottom"):
            axis = self.plot.getAxis(name)
            axis.setPen(foreground)
            axis.setTextPen(foreground)

    def set_title(self, title: str, x_label: str = "step") -> None:
        self.plot.setTitle(title, size="9pt")
        self.plot.setLabel("bottom", x_label)

    def point_count(self) -> int:
        return self._train.n

    def val_count(self) -> int:
        return self._val.n

    def shown_count(self) -> int:
        """Points drawn by the last redraw."""
        x, _ = self.train_curve.getOriginalDataset()
        return 0 if x is None else len(x)

    # -- drawing ---------------------------------------------------------------------------------
    def _schedule(self) -> None:
        if not self._timer.isActive():
            self._timer.start()

    def redraw(self) -> None:
        self.redraws += 1
        self.train_curve.setData(*self._train.data())
        self.val_curve.setData(*self._val.data())


__all__ = ["LossPlot"]
