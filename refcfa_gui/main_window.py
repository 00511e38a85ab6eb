"""The main window: docks, menus with shortcuts, the status bar, persistence, shutdown.

Docks: Dataset browser (left), Timeline viewer (centre, the central widget), Training / CFA
(right; a placeholder until :meth:`MainWindow.set_training_panel` fills it), Results and Log
(bottom, tabbed). The state models live here and are handed to the views; nothing in this
module reads data itself.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from refcfa_gui import theme
from refcfa_gui.menus import build_menus
from refcfa_gui.settings import Settings
from refcfa_gui.state import DatasetState, ProbeState, SelectionState, TimelineState
from refcfa_gui.timeline_controller import TimelineController
from refcfa_gui.training_dock import install_training
from refcfa_gui.widgets.dataset_browser import DatasetBrowser
from refcfa_gui.widgets.log_panel import LogPanel
from refcfa_gui.widgets.results_panel import ResultsPanel
from refcfa_gui.widgets.status_bar import StatusBarView
from refcfa_gui.widgets.timeline import TimelineViewer
from refcfa_gui.workers.generator_worker import GeneratorWorker, WorkerManager

log = logging.getLogger(__name__)

DEMO_ROOT = Path("data/synthetic")
DEFAULT_CACHE = Path("output/cache")


class TrainingPlaceholder(QWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        label = QLabel(
            "<b>Training / CFA</b><br/><br/>Stages S1, T1, S2, T2 will be run from here.<br/>"
            "For now run <code>refcfa pipeline</code> in a terminal."
        )
        label.setObjectName("TrainingPlaceholderLabel")
        label.setWordWrap(True)
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout = QVBoxLayout(self)
        layout.addWidget(label)


class MainWindow(QMainWindow):
    """Signals: ``shown`` once the window is first shown; ``ready`` when a requested image's frame is drawn."""

    shown = Signal()

    def __init__(
        self,
        settings: Settings | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        checkpoint: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        self.setWindowTitle("refcfa — Residual-Evolution Fields viewer")
        self.setObjectName("MainWindow")
        self.settings = settings or Settings()
        self.dataset = DatasetState()
        self.selection = SelectionState()
        self.timeline_state = TimelineState()
        self.probe = ProbeState()
        self.workers = WorkerManager(max_threads=4, parent=self)
        self.controller = TimelineController(
            self.timeline_state, self.selection, self.probe, self.dataset, self.workers, self
        )
        self._shown_once = False
        self._closing = False
        self.pending_image: str | None = None
        self.pending_step: int | None = None
        self.dialog_parent: QWidget | None = self  # tests replace dialogs, never this
        self._load_persisted_state()

        self.timeline = TimelineViewer(self.timeline_state, self.probe, self.controller)
        self.setCentralWidget(self.timeline)
        self.browser = DatasetBrowser(self.dataset, self.selection, self.workers)
        self.results = ResultsPanel()
        self.results_tabs = QTabWidget()
        self.results_tabs.setObjectName("ResultsTabs")
        self.results_tabs.setDocumentMode(True)
        self.results_tabs.addTab(self.results, "Export")
        self.log_panel = LogPanel()
        self.log_panel.install()
        self.training_placeholder = TrainingPlaceholder()
        self.docks: dict[str, QDockWidget] = {}
        self._add_dock("dataset", "Dataset browser", self.browser, Qt.DockWidgetArea.LeftDockWidgetArea)
        self._add_dock(
            "training", "Training / CFA", self.training_placeholder, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self._add_dock("results", "Results", self.results_tabs, Qt.DockWidgetArea.BottomDockWidgetArea)
        self._add_dock("log", "Log", self.log_panel, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.tabifyDockWidget(self.docks["results"], self.docks["log"])
        self.docks["results"].raise_()
        self._layout_restored = False

        self.status = StatusBarView(self.statusBar(), self.timeline_state, self.probe, self.controller)
        build_menus(self)
        self._connect()
        install_training(self)  # self.training (right dock), self.evaluation (Results), Training menu
        self._apply_theme()
        self._restore_layout()
        self.controller.set_cache_dir(cache_dir or self.settings.get_str("last_cache", str(DEFAULT_CACHE)))
        ckpt = checkpoint or self.settings.get_str("last_checkpoint", "")
        if ckpt and (checkpoint or Path(ckpt).exists()):
            self.controller.set_checkpoint(ckpt)
        if checkpoint and not Path(checkpoint).exists():
            self.report_error(
                f"Checkpoint not found: {checkpoint}. Uncached images cannot be computed until "
                "an existing checkpoint is chosen (File ▸ Choose Checkpoint…)."
            )

    # -- construction ----------------------------------------------------------------------------
    def _add_dock(self, name: str, title: str, widget: QWidget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{name}")
        dock.setWidget(widget)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
        )
        self.addDockWidget(area, dock)
        self.docks[name] = dock
        return dock

    def set_training_panel(self, widget: QWidget) -> None:
        """Replace the Training / CFA placeholder with ``widget`` (the pipeline panel)."""
        dock = self.docks["training"]
        old = dock.widget()
        dock.setWidget(widget)
        if old is not None and old is not widget:
            old.deleteLater()
        self.training_placeholder = None

    def add_results_panel(self, widget: QWidget, title: str = "Evaluation") -> None:
        """Show ``widget`` (e.g. the evaluation table) as the first tab of the Results dock."""
        self.results_tabs.insertTab(0, widget, title)
        self.results_tabs.setCurrentIndex(0)

    def show_image(self, image_id: str, category: str | None = None) -> bool:
        """Select an image of the open dataset in the viewer (``image_id`` as in the dataset)."""
        sample = self.dataset.find_image(image_id, category)
        if sample is None:
            self.report_error(f"image {image_id} is not in the open dataset {self.dataset.root}")
            return False
        self.selection.select(sample)
        return True

    def _connect(self) -> None:
        self.browser.root_opened.connect(self._on_root_opened)
        self.dataset.events.loaded.connect(lambda _s: self._on_dataset_loaded())
        self.dataset.events.filter.connect(self._on_filter)
        self.timeline_state.events.entry.connect(lambda _s: self._on_entry())
        self.timeline_state.events.visible.connect(self._on_visible)
        self.timeline_state.events.overlay.connect(self._on_overlay)
        self.timeline_state.events.overlays_available.connect(self._on_overlays_available)
        self.timeline_state.events.colormap.connect(self._on_colormap)
        self.timeline_state.events.loop.connect(lambda on: self._set_checked(self.actions["loop"], on))
        self.timeline.grid.hovered.connect(self.status.set_cursor)
        self.timeline.overlays.roi_toggled.connect(lambda on: self._set_checked(self.actions["roi"], on))
        self.timeline.overlays.load_map_requested.connect(self.choose_anomaly_map)
        self.controller.cache_listed.connect(self._on_cache_listed)
        self.workers.jobs_changed.connect(self.status.set_jobs)
        self.results.png_button.clicked.connect(lambda: self.export_png())
        self.results.gif_button.clicked.connect(lambda: self.export_gif())
        self.results.mp4_button.clicked.connect(lambda: self.export_mp4())
        hints = QGuiApplication.styleHints()
        if hasattr(hints, "colorSchemeChanged"):
            hints.colorSchemeChanged.connect(lambda _scheme: self._apply_theme())

    # -- persistence -----------------------------------------------------------------------------
    def _load_persisted_state(self) -> None:
        s = self.settings
        self.timeline_state.set_fps(s.get_int("fps", self.timeline_state.fps))
        self.timeline_state.set_loop(s.get_bool("loop", self.timeline_state.loop))
        for field, name in s.get_dict("colormaps").items():
            self.timeline_state.set_colormap(field, name)

    def _restore_layout(self) -> None:
        geometry = self.settings.get_bytes("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1500, 950)
        state = self.settings.get_bytes("window_state")
        if state is not None:
            self._layout_restored = self.restoreState(state)
        self.browser.last_dir = self.settings.get_str("last_dir", "")

    def save_settings(self) -> None:
        s = self.settings
        s.set("geometry", self.saveGeometry())
        s.set("window_state", self.saveState())
        s.set("fps", self.timeline_state.fps)
        s.set("loop", self.timeline_state.loop)
        s.set_dict("colormaps", dict(self.timeline_state.colormaps))
        if self.dataset.root is not None:
            s.set("last_root", str(self.dataset.root))
        s.set("last_dir", self.browser.last_dir)
        if self.controller.cache_dir:
            s.set("last_cache", self.controller.cache_dir)
        if self.controller.checkpoint:
            s.set("last_checkpoint", self.controller.checkpoint)
        s.sync()

    # -- start-up --------------------------------------------------------------------------------
    def start(self, root: str | os.PathLike[str] | None = None) -> None:
        """Open ``root`` (else the last root, else the demo dataset); look for a checkpoint under output/."""
        if root is not None:
            self.open_dataset(root)
        else:
            last = self.settings.get_str("last_root", "")
            if last and Path(last).is_dir():
                self.open_dataset(last)
            else:
                self.open_demo()
        if not self.controller.checkpoint:
            self._find_checkpoint()

    def _find_checkpoint(self) -> None:
        from refcfa import api

        worker = GeneratorWorker(api.find_checkpoint, "output", name="find checkpoint")
        worker.returned.connect(self._found_checkpoint)
        self.workers.start(worker)

    def _found_checkpoint(self, path: Any) -> None:
        if path is not None and not self.controller.checkpoint and not self._closing:
            log.info("using checkpoint %s (found under output/)", path)
            self.controller.set_checkpoint(path)

    def open_dataset(self, root: str | os.PathLike[str]) -> GeneratorWorker:
        return self.browser.open_root(root)

    def open_demo(self) -> None:
        """Open ``data/synthetic``, generating it first (on a worker) when it is missing."""
        if (DEMO_ROOT / "source_texture").is_dir():
            self.open_dataset(DEMO_ROOT)
            return
        from refcfa.data import make_synthetic

        log.info("generating the demo dataset in %s", DEMO_ROOT)
        self.statusBar().showMessage(f"Generating the demo dataset in {DEMO_ROOT} …")
        worker = GeneratorWorker(make_synthetic, DEMO_ROOT, name="generate demo dataset")
        worker.returned.connect(lambda root: self.open_dataset(root))
        worker.errored.connect(lambda exc: self.report_error(f"Could not generate the demo dataset: {exc}"))
        self.workers.start(worker, visible=True)

    # -- panel actions ---------------------------------------------------------------------------
    def choose_cache(self) -> None:
        path = QFileDialog.getExistingDirectory(
            self.dialog_parent, "Trajectory cache folder", self.controller.cache_dir or str(Path.cwd())
        )
        if path:
            self.open_cache(path)

    def open_cache(self, path: str | os.PathLike[str]) -> None:
        log.info("cache folder: %s", path)
        self.controller.set_cache_dir(path)

    def choose_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self.dialog_parent,
            "Score-network checkpoint",
            self.controller.checkpoint or "output",
            "Checkpoints (*.pth);;All files (*)",
        )
        if path:
            self.set_checkpoint(path)

    def set_checkpoint(self, path: str | os.PathLike[str]) -> None:
        if not Path(path).exists():
            self.report_error(f"Checkpoint not found: {path}. Choose an existing .pth file.")
        log.info("checkpoint: %s", path)
        self.controller.set_checkpoint(path)

    def choose_anomaly_map(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self.dialog_parent,
            "Anomaly map A(u) for this image",
            "output",
            "Maps (*.npy *.npz *.png *.tif *.tiff);;All files (*)",
        )
        if path:
            self.controller.set_detector_map(path)

    def report_error(self, text: str) -> None:
        """A user-facing error: in the timeline's banner and in the Log."""
        log.error("%s", text)
        self.timeline.banner.show_message(text, "error")

    def _export_path(self, title: str, suffix: str, filt: str) -> str:
        sample = self.controller.sample
        stem = "refcfa" if sample is None else f"{sample.category}_{sample.image_id}".replace("/", "_")
        if suffix == ".png":
            stem += f"_step{self.timeline_state.step}"
        default = str(Path(self.browser.last_dir or ".") / f"{stem}{suffix}")
        path, _ = QFileDialog.getSaveFileName(self.dialog_parent, title, default, filt)
        return path

    def export_png(self, path: str | os.PathLike[str] | None = None) -> Path | None:
        from refcfa_gui.export import save_png

        path = path or self._export_path("Export the view as PNG", ".png", "PNG images (*.png)")
        if not path:
            return None
        try:
            out = save_png(self.timeline, path)
        except OSError as exc:
            self.report_error(str(exc))
            return None
        self._exported(out)
        return out

    def _export_scrub(self, kind: str, path: str | os.PathLike[str] | None) -> Path | None:
        from refcfa_gui.export import save_gif, save_mp4, scrub_frames

        if self.timeline_state.available == 0:
            self.report_error("Nothing to export: select an image whose fields are cached or computed.")
            return None
        suffix, filt = (".gif", "GIF animations (*.gif)") if kind == "gif" else (".mp4", "MP4 videos (*.mp4)")
        path = path or self._export_path(f"Export the scrub as {kind.upper()}", suffix, filt)
        if not path:
            return None
        self.statusBar().showMessage(f"Rendering {self.timeline_state.available} frames …")
        try:
            frames = scrub_frames(self.timeline)
            writer = save_gif if kind == "gif" else save_mp4
            out = writer(frames, path, self.timeline_state.fps)
        except (OSError, RuntimeError, ValueError) as exc:
            self.report_error(f"Export failed: {exc}")
            return None
        self._exported(out)
        return out

    def export_gif(self, path: str | os.PathLike[str] | None = None) -> Path | None:
        return self._export_scrub("gif", path)

    def export_mp4(self, path: str | os.PathLike[str] | None = None) -> Path | None:
        return self._export_scrub("mp4", path)

    def _exported(self, path: Path) -> None:
        log.info("exported %s", path)
        self.results.status.setText(f"Saved {path}")
        self.statusBar().showMessage(f"Saved {path}", 5000)

    def show_shortcuts(self) -> None:
        rows = []
        for action in self.findChildren(QAction):
            if not action.shortcut().isEmpty() and action.text():
                rows.append(
                    f"<tr><td>{action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)}</td>"
                    f"<td>{action.text().replace('&', '')}</td></tr>"
                )
        QMessageBox.information(
            self.dialog_parent,
            "Keyboard shortcuts",
            "<table>" + "".join(sorted(set(rows))) + "</table>"
            "<p>←/→, Space, Home/End work while the timeline has the focus (click it).</p>",
        )

    def show_about(self) -> None:
        from refcfa import __version__

        QMessageBox.about(
            self.dialog_parent,
            "About refcfa-gui",
            f"refcfa {__version__}: Residual-Evolution Fields and Cross-domain Field Alignment.",
        )

    # -- state → window --------------------------------------------------------------------------
    def _on_root_opened(self, root: str) -> None:
        self.settings.set("last_root", root)

    def _on_dataset_loaded(self) -> None:
        self._on_cache_listed(self.controller.cached)
        current = self.selection.current
        if current is not None and self.dataset.find(current.category, current.image_id) != current:
            self.selection.clear()  # the image belonged to the previous dataset
        if self.pending_image:
            image = self.pending_image
            self.pending_image = None
            sample = self.find_sample(image)
            if sample is None:
                self.report_error(
                    f"--image {image}: no such image in {self.dataset.root} "
                    "(give an image id like test/crack/000, optionally as category:id)"
                )
            else:
                self.selection.select(sample)

    def find_sample(self, spec: str) -> Any | None:
        """A sample by ``image_id``, ``category:image_id`` or cache key."""
        category, _, image_id = spec.rpartition(":")
        found = self.dataset.find_image(image_id, category or None)
        if found is None:
            for c in self.controller.cached:
                if c.key == spec:
                    return self.dataset.find_image(c.image_id, c.category or None)
        return found

    def _on_entry(self) -> None:
        if self.pending_step is not None and self.timeline_state.key:
            self.timeline_state.set_step(self.pending_step)
            self.pending_step = None

    def _on_cache_listed(self, cached: list) -> None:
        self.browser.set_cached({(c.category, c.image_id) for c in cached if c.compatible})

    def _on_filter(self, mode: str) -> None:
        self._set_checked(self.actions[f"filter_{mode}"], True)
        self.browser.filter_combo.blockSignals(True)
        self.browser.filter_combo.setCurrentIndex(("all", "good", "defective").index(mode))
        self.browser.filter_combo.blockSignals(False)

    def _on_visible(self, views: set[str]) -> None:
        for view, act in self.view_actions.items():
            self._set_checked(act, view in views)

    def _on_overlay(self, item) -> None:
        name, overlay = item
        self._set_checked(self.overlay_actions[name], overlay.visible)

    def _on_overlays_available(self, names: set[str]) -> None:
        for name, act in self.overlay_actions.items():
            act.setEnabled(name in names)

    def _on_colormap(self, item) -> None:
        field, name = item
        act = self.colormap_actions.get((field, name))
        if act is not None:
            self._set_checked(act, True)

    @staticmethod
    def _set_checked(action: QAction, on: bool) -> None:
        if action.isChecked() != on:
            action.blockSignals(True)
            action.setChecked(on)
            action.blockSignals(False)

    # -- theme -----------------------------------------------------------------------------------
    def _apply_theme(self) -> None:
        app = QApplication.instance()
        dark = theme.apply_theme(app) if app is not None else False
        background, foreground = theme.plot_colors(dark)
        self.timeline.set_plot_colors(background, foreground)
        self.training.set_plot_colors(background, foreground)
        self.evaluation.set_plot_colors(background, foreground)
        self.dark = dark

    # -- lifecycle -------------------------------------------------------------------------------
    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if not self._shown_once:
            self._shown_once = True
            if not self._layout_restored:
                self.default_layout()
            QTimer.singleShot(0, self.shown.emit)

    def default_layout(self) -> None:
        """Dock sizes of a first start: browser and training panel narrow, bottom tabs short."""
        self.resizeDocks(
            [self.docks["dataset"], self.docks["training"]], [330, 210], Qt.Orientation.Horizontal
        )
        self.resizeDocks([self.docks["results"]], [130], Qt.Orientation.Vertical)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        if self._closing:
            event.accept()
            return
        if not self.training.confirm_close(self.dialog_parent):  # jobs running and the user said no
            event.ignore()
            return
        self._closing = True
        running = self.workers.job_names()
        if running:
            log.info("closing: cancelling %s", ", ".join(running))
        self.save_settings()
        self.timeline_state.set_playing(False)
        self.controller.shutdown()
        if not self.workers.shutdown(timeout_s=30.0):
            log.warning("some jobs did not stop within 30 s")
        if not self.training.shutdown(timeout_s=30.0):  # cancel: each stops within a batch
            log.warning("some training jobs did not stop within 30 s")
        self.evaluation.shutdown(timeout_s=10.0)
        self.log_panel.uninstall()
        event.accept()
