"""The evaluation part of the Results dock: metrics table, ROC curves, score histograms, CFA
diagnostics and the per-image scores of the latest run.

:meth:`EvaluationPanel.load` reads an output folder or a ``metrics.json`` in a pool thread
(:func:`refcfa_gui.state.results.load_results` smooths every anomaly map) and draws the
:class:`~refcfa_gui.state.results.Results` it returns; :meth:`set_metrics` shows a metrics dict
at once (e.g. ``PipelineFinished.metrics``). A click on a per-image row emits
``image_requested(image_id)`` (the target category is :attr:`category`); the main window opens
that image in the timeline viewer. "Export figures…" writes the publication figures of
``refcfa.evaluation.figures`` (matplotlib, in a pool thread).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QThreadPool, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from refcfa_gui.state.results import (
    DIAGNOSTIC_ROWS,
    METRIC_KEYS,
    METRIC_LABELS,
    Results,
    export_figures,
    load_results,
)
from refcfa_gui.workers.generator_worker import GeneratorWorker

log = logging.getLogger(__name__)

# Okabe-Ito, in method order (residual … ref_cfa), then extras
METHOD_COLORS = ("#999999", "#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#F0E442")
NORMAL_COLOR, ANOMALOUS_COLOR = "#0072B2", "#D55E00"


class _NumberItem(QTableWidgetItem):
    """A table cell that sorts by its number."""

    def __init__(self, value: float, text: str | None = None) -> None:
        super().__init__(text if text is not None else (f"{value:.3f}" if math.isfinite(value) else "n/a"))
        self.value = value
        self.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    def __lt__(self, other: QTableWidgetItem) -> bool:  # noqa: D105
        if isinstance(other, _NumberItem):
            return self.value < other.value
        return super().__lt__(other)


def _readonly(item: QTableWidgetItem) -> QTableWidgetItem:
    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
    return item


class EvaluationPanel(QWidget):
    """See the module docstring. Signals: ``image_requested(str)``, ``loaded(object)`` (Results)."""

    image_requested = Signal(str)
    loaded = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("EvaluationPanel")
        self.results: Results | None = None
        self.dialog_parent: QWidget | None = self
        self.error: str = ""
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._bg: set[GeneratorWorker] = set()
        self._request = 0
        self._build()

    # == construction ==============================================================================
    def _build(self) -> None:
        self.title = QLabel("No evaluation loaded — run the chain (Run all) or T2, or open a metrics.json.")
        self.title.setObjectName("EvaluationTitle")
        self.title.setWordWrap(True)
        self.open_button = QPushButton("Open metrics…")
        self.open_button.setToolTip("Load metrics.json (and the maps.npz beside it) of a run")
        self.export_button = QPushButton("Export figures…")
        self.export_button.setToolTip(
            "ROC curves, score histograms and CFA diagnostics as PNG or SVG (matplotlib)"
        )
        self.export_button.setEnabled(False)
        self.status = QLabel("")
        self.status.setObjectName("EvaluationStatus")
        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(self.status)
        head.addWidget(self.open_button)
        head.addWidget(self.export_button)

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.metrics_table = QTableWidget(0, len(METRIC_KEYS))
        self.metrics_table.setObjectName("MetricsTable")
        self.metrics_table.setHorizontalHeaderLabels([METRIC_LABELS[k] for k in METRIC_KEYS])
        self.metrics_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.metrics_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.metrics_table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.metrics_table.setAlternatingRowColors(True)
        self.tabs.addTab(self.metrics_table, "Metrics")

        self.roc_plot = pg.PlotWidget()
        self.roc_plot.setObjectName("RocPlot")
        self.roc_plot.setLabel("bottom", "false positive rate")
        self.roc_plot.setLabel("left", "true positive rate")
        self.roc_plot.showGrid(x=True, y=True, alpha=0.3)
        self.roc_plot.setXRange(0, 1, padding=0.02)
        self.roc_plot.setYRange(0, 1, padding=0.02)
        self.roc_plot.setAspectLocked(False)
        self.roc_plot.setMenuEnabled(False)
        self.roc_key = QLabel("")  # the legend beside the plot: never over the curves
        self.roc_key.setObjectName("RocKey")
        self.roc_key.setTextFormat(Qt.TextFormat.RichText)
        self.roc_key.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.roc_key.setWordWrap(True)
        self.roc_key.setToolTip(
            "AUROC: the run's image AUROC (metrics.json). curve: the AUROC of the curve drawn, recomputed from "
            "the maps in maps.npz (float16 in runs before 2026-12, whose ties can make them differ)"
        )
        self.roc_key.setMinimumWidth(150)
        roc = QWidget()
        rl = QHBoxLayout(roc)
        rl.setContentsMargins(2, 2, 2, 2)
        rl.addWidget(self.roc_plot, 3)
        rl.addWidget(self.roc_key, 1)
        self.tabs.addTab(roc, "ROC")

        hist = QWidget()
        hl = QVBoxLayout(hist)
        hl.setContentsMargins(2, 2, 2, 2)
        row = QHBoxLayout()
        row.addWidget(QLabel("Method"))
        self.hist_method = QComboBox()
        self.hist_method.setObjectName("HistogramMethod")
        self.hist_method.currentTextChanged.connect(self._draw_histogram)
        row.addWidget(self.hist_method)
        self.hist_note = QLabel("")
        self.hist_note.setWordWrap(True)
        row.addWidget(self.hist_note, 1)
        hl.addLayout(row)
        self.hist_plot = pg.PlotWidget()
        self.hist_plot.setObjectName("HistogramPlot")
        self.hist_plot.setLabel("bottom", "image anomaly score (max of the smoothed map)")
        self.hist_plot.setLabel("left", "images")
        self.hist_plot.showGrid(x=True, y=True, alpha=0.3)
        self.hist_plot.setMenuEnabled(False)
        self.hist_plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.hist_legend = self.hist_plot.addLegend(offset=(-10, 10), labelTextSize="8pt")
        hl.addWidget(self.hist_plot, 1)
        self.tabs.addTab(hist, "Scores")

        cfa = QSplitter(Qt.Orientation.Horizontal)
        self.cfa_table = QTableWidget(0, 2)
        self.cfa_table.setObjectName("CfaTable")
        self.cfa_table.setHorizontalHeaderLabels(["before", "after"])
        self.cfa_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.cfa_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.angles_plot = pg.PlotWidget()
        self.angles_plot.setObjectName("AnglesPlot")
        self.angles_plot.setLabel("bottom", "principal angle #")
        self.angles_plot.setLabel("left", "degrees")
        self.angles_plot.setTitle("DSA: principal angles source ↔ target", size="9pt")
        self.angles_plot.showGrid(y=True, alpha=0.3)
        self.angles_plot.setMenuEnabled(False)
        self.angles_legend = self.angles_plot.addLegend(offset=(-10, 10), labelTextSize="8pt")
        cfa.addWidget(self.cfa_table)
        cfa.addWidget(self.angles_plot)
        cfa.setStretchFactor(0, 2)
        cfa.setStretchFactor(1, 3)
        self.tabs.addTab(cfa, "CFA")

        self.image_table = QTableWidget(0, 4)
        self.image_table.setObjectName("ImageTable")
        self.image_table.setHorizontalHeaderLabels(["image", "label", "ref_cfa score", "residual score"])
        self.image_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.image_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.image_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.image_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.image_table.verticalHeader().hide()
        self.image_table.setToolTip("Click a row to open the image in the timeline viewer")
        self.image_table.cellClicked.connect(self._on_image_clicked)
        self.tabs.addTab(self.image_table, "Per image")

        for w in (
            self.metrics_table,
            self.roc_plot,
            self.hist_plot,
            self.cfa_table,
            self.angles_plot,
            self.image_table,
        ):
            w.setMinimumHeight(40)  # the Results dock may be short: the tabs scroll or squeeze, never push
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(2)
        layout.addLayout(head)
        layout.addWidget(self.tabs, 1)
        self.open_button.clicked.connect(self.choose_metrics)
        self.export_button.clicked.connect(self.choose_export_folder)

    def set_plot_colors(self, background: str, foreground: str) -> None:
        for plot in (self.roc_plot, self.hist_plot, self.angles_plot):
            plot.setBackground(background)
            for name in ("left", "bottom"):
                axis = plot.getAxis(name)
                axis.setPen(foreground)
                axis.setTextPen(foreground)

    # == loading ===================================================================================
    @property
    def category(self) -> str:
        """The target category of the shown run (its images are in the per-image table)."""
        return self.results.target_category if self.results is not None else ""

    def choose_metrics(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self.dialog_parent,
            "Open the metrics of a run",
            str(Path.cwd()),
            "metrics.json (metrics.json *.json);;All files (*)",
        )
        if path:
            self.load(path)

    def load(self, path: str | os.PathLike[str]) -> GeneratorWorker:
        """Read ``path`` (output folder or metrics.json) in the background, then show it."""
        self._request += 1
        rid = self._request
        self.status.setText("loading…")
        worker = GeneratorWorker(load_results, str(path), name="load results")
        worker.returned.connect(lambda res, r=rid: self._on_loaded(r, res))
        worker.errored.connect(lambda exc, r=rid, p=str(path): self._on_load_error(r, p, exc))
        worker.finished.connect(lambda w=worker: self._bg.discard(w))
        self._bg.add(worker)
        self._pool.start(worker)
        return worker

    def idle(self) -> bool:
        return not self._bg

    def _on_loaded(self, rid: int, res: Results) -> None:
        if rid != self._request:
            return  # a newer request was made
        self.set_results(res)

    def _on_load_error(self, rid: int, path: str, exc: BaseException) -> None:
        if rid != self._request:
            return
        self.error = f"Could not load the results from {path}: {exc}"
        log.error("%s", self.error)
        self.status.setText("")
        self.title.setText(self.error)

    def set_metrics(self, metrics: dict, metrics_path: str = "") -> None:
        """Show a metrics dict now (no maps: ROC, histograms and the per-image table stay empty)."""
        self.set_results(Results(metrics_path, metrics, note="scores not loaded"))

    def set_results(self, res: Results) -> None:
        self.results = res
        self.error = ""
        self.status.setText("")
        tip = res.metrics_path + (f"\n{res.note}" if res.note else "")
        self.title.setText(f"<b>{res.title()}</b>")
        self.title.setToolTip(tip)
        self._fill_metrics(res)
        self._draw_roc(res)
        self._fill_histogram_methods(res)
        self._fill_cfa(res)
        self._fill_images(res)
        self.export_button.setEnabled(True)
        self.loaded.emit(res)

    # == drawing ===================================================================================
    def _fill_metrics(self, res: Results) -> None:
        methods = res.methods
        t = self.metrics_table
        t.setRowCount(len(methods))
        t.setVerticalHeaderLabels(list(methods))
        best = {
            k: max(
                (v.get(k, float("nan")) for v in methods.values() if isinstance(v.get(k), (int, float))),
                default=float("nan"),
            )
            for k in METRIC_KEYS
        }
        for r, (name, vals) in enumerate(methods.items()):
            for c, key in enumerate(METRIC_KEYS):
                v = vals.get(key)
                value = float(v) if isinstance(v, (int, float)) else float("nan")
                item = _readonly(_NumberItem(value))
                item.setToolTip(f"{name} {METRIC_LABELS[key]}: {value!r}")
                if value == best[key] and name != "oracle":
                    f = item.font()
                    f.setBold(True)
                    item.setFont(f)
                t.setItem(r, c, item)
        t.resizeRowsToContents()

    def metrics_values(self) -> dict[str, dict[str, float]]:
        """The table as numbers: ``{method: {metric: value}}`` (what the user sees, unrounded)."""
        out = {}
        t = self.metrics_table
        for r in range(t.rowCount()):
            name = t.verticalHeaderItem(r).text()
            out[name] = {key: t.item(r, c).value for c, key in enumerate(METRIC_KEYS)}
        return out

    def _draw_roc(self, res: Results) -> None:
        p = self.roc_plot
        p.clear()
        p.plot([0, 1], [0, 1], pen=pg.mkPen("#888888", width=1, style=Qt.PenStyle.DashLine), name="chance")
        rows, differs = [], False
        for i, (name, (fpr, tpr, auc)) in enumerate(res.roc.items()):
            color = METHOD_COLORS[i % len(METHOD_COLORS)]
            p.plot(
                fpr,
                tpr,
                pen=pg.mkPen(color, width=3 if name == "ref_cfa" else 1.6),
                name=f"{name} ({auc:.3f})",
            )
            table = (res.methods.get(name) or {}).get("image_auroc")
            exact = f"{table:.3f}" if isinstance(table, (int, float)) else "—"
            differs |= isinstance(table, (int, float)) and abs(table - auc) > 5e-4
            weight = "font-weight:bold;" if name == "ref_cfa" else ""
            rows.append(
                f"<tr><td style='color:{color};font-size:14pt'>━</td><td style='{weight}'>{name}</td>"
                f"<td align='right'>{exact}</td><td align='right' style='color:gray'>{auc:.3f}</td></tr>"
            )
        note = "<p style='color:gray'>curve: from maps.npz (float16 in older runs)</p>" if differs else ""
        head = "<tr><td></td><td><i>method</i></td><td><i>AUROC</i></td><td><i>curve</i></td></tr>"
        self.roc_key.setText(f"<table cellspacing='3'>{head}{''.join(rows)}</table>{note}" if rows else "")
        p.setTitle("image-level ROC, target test split" if res.roc else (res.note or "no ROC"), size="9pt")

    def _fill_histogram_methods(self, res: Results) -> None:
        self.hist_method.blockSignals(True)
        self.hist_method.clear()
        self.hist_method.addItems(list(res.scores))
        if "ref_cfa" in res.scores:
            self.hist_method.setCurrentText("ref_cfa")
        self.hist_method.blockSignals(False)
        self._draw_histogram(self.hist_method.currentText())

    def _draw_histogram(self, method: str) -> None:
        p = self.hist_plot
        p.clear()
        self.hist_legend.clear()
        res = self.results
        if res is None or method not in res.scores:
            self.hist_note.setText(res.note if res is not None else "")
            return
        s, y = res.scores[method], res.labels
        lo, hi = float(s.min()), float(s.max())
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, min(30, max(8, s.size // 2)) + 1)
        for name, values, color in (("normal", s[~y], NORMAL_COLOR), ("anomalous", s[y], ANOMALOUS_COLOR)):
            if values.size == 0:
                continue
            counts, _ = np.histogram(values, bins=edges)
            fill = QColor(color)
            fill.setAlpha(70)
            p.plot(
                edges,
                counts,
                stepMode="center",
                fillLevel=0,
                brush=fill,
                pen=pg.mkPen(color, width=2),
                name=f"{name} (n = {values.size})",
            )
        self.hist_note.setText(
            f"target domain ({res.target_category}); source scores are not written by the run"
        )

    def _fill_cfa(self, res: Results) -> None:
        diag = res.diagnostics
        rows = [
            (stem, label)
            for stem, label in DIAGNOSTIC_ROWS
            if f"{stem}_before" in diag or f"{stem}_after" in diag
        ]
        t = self.cfa_table
        t.setRowCount(len(rows))
        t.setVerticalHeaderLabels([label for _, label in rows])
        for r, (stem, _label) in enumerate(rows):
            for c, when in enumerate(("before", "after")):
                v = diag.get(f"{stem}_{when}")
                if isinstance(v, list):
                    top = max((float(a) for a in v), default=float("nan"))
                    item = _NumberItem(top, f"max {top:.1f}" if v else "—")
                    item.setToolTip(f"{len(v)} angles (degrees): " + ", ".join(f"{float(a):.2f}" for a in v))
                elif isinstance(v, (int, float)):
                    item = _NumberItem(float(v), f"{float(v):.4g}")
                else:
                    item = _NumberItem(float("nan"), "—")
                t.setItem(r, c, _readonly(item))
        t.resizeRowsToContents()
        p = self.angles_plot
        p.clear()
        self.angles_legend.clear()
        before, after = diag.get("principal_angles_before"), diag.get("principal_angles_after")
        if isinstance(before, list) and isinstance(after, list) and before:
            x = np.arange(1, len(before) + 1, dtype=float)
            p.addItem(pg.BarGraphItem(x=x - 0.18, height=before, width=0.34, brush="#999999", name="before"))
            p.addItem(pg.BarGraphItem(x=x + 0.18, height=after, width=0.34, brush="#009E73", name="after"))
            p.getAxis("bottom").setTicks([[(float(i), str(int(i))) for i in x]])
            p.setXRange(0.4, len(before) + 0.6, padding=0)
            p.setYRange(0, max(max(before), max(after), 1.0) * 1.1, padding=0)
        if not diag:
            p.setTitle("no CFA diagnostics in this run", size="9pt")
        else:
            p.setTitle("DSA: principal angles source ↔ target", size="9pt")

    def _fill_images(self, res: Results) -> None:
        t = self.image_table
        t.setSortingEnabled(False)
        t.clearContents()
        t.setRowCount(len(res.image_ids))
        cfa, resid = res.scores.get("ref_cfa"), res.scores.get("residual")
        for r, image_id in enumerate(res.image_ids):
            item = _readonly(QTableWidgetItem(image_id))
            item.setData(Qt.ItemDataRole.UserRole, image_id)
            t.setItem(r, 0, item)
            anomalous = bool(res.labels[r]) if r < len(res.labels) else False
            label = _readonly(QTableWidgetItem("anomalous" if anomalous else "good"))
            label.setForeground(QColor(ANOMALOUS_COLOR if anomalous else NORMAL_COLOR))
            t.setItem(r, 1, label)
            for c, arr in ((2, cfa), (3, resid)):
                v = float(arr[r]) if arr is not None else float("nan")
                t.setItem(r, c, _readonly(_NumberItem(v, f"{v:.4g}" if math.isfinite(v) else "n/a")))
        t.setSortingEnabled(True)
        if cfa is not None:
            t.sortItems(2, Qt.SortOrder.DescendingOrder)  # the most anomalous first
        else:
            t.sortItems(0, Qt.SortOrder.AscendingOrder)

    def _on_image_clicked(self, row: int, _column: int) -> None:
        item = self.image_table.item(row, 0)
        if item is not None:
            self.image_requested.emit(str(item.data(Qt.ItemDataRole.UserRole)))

    # == export ====================================================================================
    def choose_export_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self.dialog_parent, "Export the figures to", str(Path.cwd())
        )
        if folder:
            self.export(folder)

    def export(self, folder: str | os.PathLike[str], fmt: str = "png") -> GeneratorWorker | None:
        """Write roc / score_histograms / cfa_diagnostics figures into ``folder`` (background)."""
        if self.results is None:
            return None
        self.status.setText("exporting…")
        worker = GeneratorWorker(export_figures, self.results, str(folder), fmt, name="export figures")
        worker.returned.connect(self._on_exported)
        worker.errored.connect(lambda exc: self._on_export_error(exc))
        worker.finished.connect(lambda w=worker: self._bg.discard(w))
        self._bg.add(worker)
        self._pool.start(worker)
        return worker

    def _on_exported(self, paths: list) -> None:
        self.exported = [Path(p) for p in paths]
        text = ", ".join(Path(p).name for p in paths) or "nothing to export"
        self.status.setText(f"saved {text}")
        log.info("exported %s", ", ".join(str(p) for p in paths))

    def _on_export_error(self, exc: BaseException) -> None:
        self.status.setText("export failed")
        self.error = f"Export failed: {exc}"
        log.error("%s", self.error)

    def shutdown(self, timeout_s: float = 10.0) -> bool:
        self._pool.clear()
        return self._pool.waitForDone(int(timeout_s * 1000))


__all__ = ["EvaluationPanel"]
