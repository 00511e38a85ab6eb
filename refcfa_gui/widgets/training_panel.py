"""The Training / CFA dock: the stages S1, T1, S2, T2 with their settings, jobs, progress, outputs.

The settings come from — and are saved back to — the YAML configs the CLI uses
(:class:`~refcfa_gui.state.training.TrainingSettings`, drawn by
:class:`~refcfa_gui.widgets.config_form.ConfigForm`). "Run" on a stage, or "Run all" (the chain,
exactly what ``refcfa pipeline`` runs), queues a job on a snapshot of the config; the
:class:`~refcfa_gui.workers.job_runner.JobRunner` runs the jobs one at a time on QThreads and
:class:`~refcfa_gui.widgets.job_monitor.JobMonitor` draws progress with ETA, the live loss
curve, the queue and the log lines. Errors go to a banner, the traceback behind "Details…".
The Outputs tab lists what earlier runs left in the output folder (scanned off the GUI thread).

Signals: ``results_ready(str)`` — a ``metrics.json`` to show in the Results dock (after a job that
evaluated, and on opening when the output folder holds one).

Closing: :meth:`confirm_close` asks, :meth:`shutdown` cancels every job and waits with a time-out.
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QThreadPool, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QTabWidget,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from refcfa_gui.state.jobs import Job, JobQueue
from refcfa_gui.state.training import Outputs, TrainingSettings, format_bytes, scan_outputs
from refcfa_gui.widgets.banner import MessageBanner
from refcfa_gui.widgets.config_form import STAGES, ConfigForm
from refcfa_gui.widgets.job_monitor import JobMonitor
from refcfa_gui.workers.generator_worker import GeneratorWorker
from refcfa_gui.workers.job_runner import JobRunner

log = logging.getLogger(__name__)

DEFAULT_CONFIG = "experiments/synthetic/demo.yaml"
SETTINGS_KEY = "training/config"


class TrainingPanel(QWidget):
    """See the module docstring. ``runner`` defaults to a new :class:`JobRunner`; ``app_settings``
    (a :class:`refcfa_gui.settings.Settings`) remembers the last config file."""

    results_ready = Signal(str)

    def __init__(
        self,
        app_settings: Any = None,
        runner: JobRunner | None = None,
        config: str | os.PathLike[str] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("TrainingPanel")
        self.app_settings = app_settings
        self.model = TrainingSettings()
        self.runner = runner or JobRunner(parent=self)
        self.queue: JobQueue = self.runner.queue
        self.dialog_parent: QWidget | None = self  # tests replace dialogs, never this
        self.outputs: Outputs | None = None
        self.last_error = ""
        self.last_error_details = ""
        self.auto_load_results = True
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._bg: set[GeneratorWorker] = set()
        self._status_of: tuple[int, str] | None = None
        self._build()
        self._connect()
        path = config or (app_settings.get_str(SETTINGS_KEY, "") if app_settings is not None else "")
        self.open_config(path or DEFAULT_CONFIG, quiet=not path)

    # == construction ==============================================================================
    def _build(self) -> None:
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(4, 4, 4, 4)
        top_layout.setSpacing(4)
        head = QHBoxLayout()
        self.config_label = QLabel("no config")
        self.config_label.setObjectName("ConfigLabel")
        self.config_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.open_button = QToolButton()
        self.open_button.setText("Open…")
        self.open_button.setToolTip("Open a YAML config (the same files `refcfa pipeline --config` takes)")
        self.save_button = QToolButton()
        self.save_button.setText("Save…")
        self.save_button.setToolTip(
            "Save the settings as a self-contained YAML that `refcfa pipeline --config` runs"
        )
        head.addWidget(QLabel("Config:"))
        head.addWidget(self.config_label, 1)
        head.addWidget(self.open_button)
        head.addWidget(self.save_button)
        top_layout.addLayout(head)

        self.banner = MessageBanner()
        self.details_button = QPushButton("Details…")
        self.details_button.setToolTip("The full error report (traceback)")
        self.details_button.hide()
        row = QHBoxLayout()
        row.addWidget(self.banner, 1)
        row.addWidget(self.details_button, 0, Qt.AlignmentFlag.AlignTop)
        top_layout.addLayout(row)

        self.form = ConfigForm(self.model)
        self.form.dialog_parent = self
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)  # a narrow dock scrolls
        scroll.setWidget(self.form)
        top_layout.addWidget(scroll, 1)

        self.monitor = JobMonitor(self.runner, self)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.monitor.progress_page, "Progress")
        self.tabs.addTab(self.monitor.queue_page, "Queue")
        self.tabs.addTab(self.monitor.log_page, "Log")
        self.tabs.addTab(self._outputs_page(), "Outputs")

        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(top)
        self.splitter.addWidget(self.tabs)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.splitter)

    def _outputs_page(self) -> QWidget:
        w = QWidget()
        layout = QVBoxLayout(w)
        layout.setContentsMargins(4, 4, 4, 4)
        self.outputs_tree = QTreeWidget()
        self.outputs_tree.setObjectName("OutputsTree")
        self.outputs_tree.setHeaderLabels(["What", "Details"])
        self.outputs_tree.setColumnWidth(0, 170)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setToolTip("Look again at what the output folder holds")
        self.load_results_button = QPushButton("Show results")
        self.load_results_button.setToolTip("Load the newest metrics.json into the Results dock")
        self.load_results_button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.refresh_button)
        buttons.addStretch(1)
        buttons.addWidget(self.load_results_button)
        layout.addWidget(self.outputs_tree, 1)
        layout.addLayout(buttons)
        return w

    def _connect(self) -> None:
        self.open_button.clicked.connect(self.choose_config)
        self.save_button.clicked.connect(self.choose_save_path)
        self.form.run_requested.connect(self.run_stage)
        self.form.edited.connect(self._on_edited)
        self.details_button.clicked.connect(self.show_error_details)
        self.banner.closed.connect(self.details_button.hide)
        self.refresh_button.clicked.connect(lambda: self.refresh_outputs())
        self.load_results_button.clicked.connect(self._emit_latest_results)
        self.model.events.opened.connect(lambda _path: self._update_config_label())
        self.model.events.changed.connect(lambda _item: self._update_config_label())
        self.model.events.error.connect(self._on_config_error)
        self.queue.events.changed.connect(self._on_job_changed)
        self.queue.events.finished.connect(self._on_job_finished)

    # views the tests and the main window reach through the panel
    @property
    def loss_plot(self):
        return self.monitor.loss_plot

    @property
    def cancel_button(self):
        return self.monitor.cancel_button

    @property
    def stage_labels(self):
        return self.form.stage_labels

    @property
    def run_buttons(self):
        return self.form.run_buttons

    def set_plot_colors(self, background: str, foreground: str) -> None:
        self.monitor.loss_plot.set_plot_colors(background, foreground)

    # == config ====================================================================================
    def open_config(self, path: str | os.PathLike[str], quiet: bool = False) -> bool:
        """Open a YAML config; errors go to the banner (``quiet``: only to the log)."""
        from refcfa.errors import RefcfaError

        try:
            self.model.open(path)
        except (RefcfaError, FileNotFoundError, ValueError, TypeError) as exc:
            if quiet:
                log.info("no training config opened: %s", exc)
            else:
                self.show_error(f"Could not open the config: {exc}")
            return False
        if self.app_settings is not None:
            self.app_settings.set(SETTINGS_KEY, str(self.model.path))
        self.refresh_outputs()
        return True

    def choose_config(self) -> None:
        start = str(self.model.path.parent) if self.model.path else str(Path.cwd())
        path, _ = QFileDialog.getOpenFileName(
            self.dialog_parent, "Open a refcfa config", start, "YAML configs (*.yaml *.yml);;All files (*)"
        )
        if path:
            self.open_config(path)

    def choose_save_path(self) -> None:
        start = str(self.model.path) if self.model.path else "config.yaml"
        path, _ = QFileDialog.getSaveFileName(
            self.dialog_parent, "Save the config", start, "YAML configs (*.yaml)"
        )
        if path:
            self.save_config(path)

    def save_config(self, path: str | os.PathLike[str]) -> Path | None:
        """Write the settings as a self-contained YAML (``refcfa pipeline --config PATH`` runs it)."""
        from refcfa.errors import RefcfaError

        try:
            out = self.model.save(path)
        except (RefcfaError, OSError, ValueError) as exc:
            self.show_error(f"Could not save the config: {exc}")
            return None
        log.info("saved the config to %s", out)
        if self.app_settings is not None:
            self.app_settings.set(SETTINGS_KEY, str(out))
        self._update_config_label()
        self.banner.show_message(f"Saved {out} — run it with: refcfa pipeline --config {out}", "info")
        self.details_button.hide()
        return out

    def set_value(self, key: str, value: Any) -> bool:
        """Change one setting (as the widgets do); True when the settings are valid."""
        ok = self.model.set(key, value)
        self._on_edited(key)
        return ok

    def set_domain(
        self, which: str, root: str | None = None, category: str | None = None, fmt: str | None = None
    ):
        """Set the source/target dataset (the dataset browser's roles call this)."""
        for key, value in (("root", root), ("format", fmt), ("category", category)):
            if value is not None:
                self.model.set(f"{which}.{key}", value)
        self.form.fill_categories(which)
        self._on_edited(f"{which}.root")

    def _on_edited(self, key: str) -> None:
        if key == "output_dir" or key.startswith(("source.", "target.")):
            self.refresh_outputs()

    def _update_config_label(self) -> None:
        path = self.model.path
        edited = " <i>(edited)</i>" if self.model.is_edited else ""
        self.config_label.setText(f"<b>{path.name if path else 'no config'}</b>{edited}")
        self.config_label.setToolTip(str(path) if path else "")

    def _on_config_error(self, message: str | None) -> None:
        self.save_button.setEnabled(message is None)
        if message:
            self.show_error(f"Invalid setting: {message}")
        elif self.banner.level == "error" and self.banner.message().startswith("Invalid setting"):
            self.banner.clear()

    # == jobs ======================================================================================
    def run_stage(self, stage: str) -> Job | None:
        """Queue ``stage`` (S1, T1, S2, T2 or all) on the current settings; None when they are invalid."""
        from refcfa.errors import RefcfaError

        try:
            cfg = self.model.config()
        except (RefcfaError, ValueError) as exc:
            self.show_error(f"Cannot run {stage}: {exc}")
            return None
        job = self.runner.submit(stage, copy.deepcopy(cfg))
        self.tabs.setCurrentIndex(0)
        return job

    def cancel_current(self) -> None:
        self.monitor.cancel_current()

    def has_active_jobs(self) -> bool:
        return self.runner.is_busy()

    def confirm_close(self, parent: QWidget | None = None) -> bool:
        """Ask whether to cancel the unfinished jobs and quit; True when there is nothing to ask."""
        active = self.queue.active()
        if not active:
            return True
        names = ", ".join(f"#{j.id} {j.stage} ({j.status})" for j in active)
        answer = QMessageBox.question(
            parent or self.dialog_parent,
            "Jobs are running",
            f"{len(active)} job(s) are not finished: {names}.\n\nCancel them and quit? A cancelled training "
            "stops after its current batch and keeps its last checkpoint.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def shutdown(self, timeout_s: float = 30.0) -> bool:
        """Cancel every job and wait for the threads (True when all stopped in time)."""
        ok = self.runner.shutdown(timeout_s)
        self._pool.clear()
        return self._pool.waitForDone(int(max(1.0, timeout_s) * 1000)) and ok

    def _on_job_changed(self, job: Job) -> None:
        if job.device:
            self.form.update_device_note(job.device)
        if job.status == "running" and (job.id, job.part) != self._status_of:
            self._status_of = (job.id, job.part)
            self._draw_stage_status()
            self.refresh_outputs(emit_results=False)  # a chain's finished parts get their ✓

    def _on_job_finished(self, job: Job) -> None:
        if job.status == "failed":
            self.show_error(f"#{job.id} {job.stage} failed: {job.error}", job.error_details)
        elif job.status == "cancelled":
            ckpt = f" Last checkpoint: {job.checkpoints[-1]}" if job.checkpoints else ""
            self.banner.show_message(f"#{job.id} {job.stage} cancelled.{ckpt}", "warning")
            self.details_button.hide()
        if job.metrics_path and job.status == "done":
            self.results_ready.emit(job.metrics_path)
        self.refresh_outputs(emit_results=False)

    # == errors ====================================================================================
    def show_error(self, text: str, details: str = "") -> None:
        self.last_error, self.last_error_details = text, details
        log.error("%s", text)
        self.banner.show_message(text, "error")
        self.details_button.setVisible(bool(details))

    def show_error_details(self) -> QMessageBox:
        """The last error with its traceback in a (non-blocking) message box."""
        box = QMessageBox(self.dialog_parent)
        box.setIcon(QMessageBox.Icon.Critical)
        box.setWindowTitle("Job error")
        box.setText(self.last_error)
        box.setDetailedText(self.last_error_details)
        box.setStandardButtons(QMessageBox.StandardButton.Close)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        return box

    # == outputs (life cycle) ======================================================================
    def refresh_outputs(self, emit_results: bool | None = None) -> None:
        """Scan the output folder off the GUI thread: what was trained, and the latest metrics.

        ``emit_results``: emit ``results_ready`` for the newest metrics.json (default: on the first
        scan only, when ``auto_load_results``).
        """
        cfg = self.model.cfg
        if cfg is None:
            return
        if emit_results is None:
            emit_results = self.auto_load_results and self.outputs is None
        worker = GeneratorWorker(scan_outputs, cfg, name="scan outputs")
        worker.returned.connect(lambda out, e=emit_results: self._on_outputs(out, e))
        worker.errored.connect(lambda exc: log.warning("could not scan the output folder: %s", exc))
        worker.finished.connect(lambda w=worker: self._bg.discard(w))
        self._bg.add(worker)
        self._pool.start(worker)

    def scan_idle(self) -> bool:
        return not self._bg

    def _on_outputs(self, out: Outputs, emit_results: bool) -> None:
        cfg = self.model.cfg
        if cfg is not None and out.output_dir != str(cfg.output_dir):
            return  # an older scan of another folder
        self.outputs = out
        tree = self.outputs_tree
        tree.clear()
        root = QTreeWidgetItem([out.output_dir, "empty" if out.empty else ""])
        tree.addTopLevelItem(root)
        for exp, paths in out.checkpoints.items():
            item = QTreeWidgetItem([exp, f"{len(paths)} checkpoint(s), newest {Path(paths[-1]).name}"])
            for p in paths:
                item.addChild(QTreeWidgetItem([Path(p).name, p]))
            root.addChild(item)
        for p in out.segmenters:
            root.addChild(QTreeWidgetItem(["detector (S2)", p]))
        if out.cache_entries:
            text = f"{out.cache_entries} entries, {format_bytes(out.cache_bytes)} in {out.cache_dir}"
            root.addChild(QTreeWidgetItem(["trajectory cache", text]))
        for p in out.metrics:
            root.addChild(QTreeWidgetItem(["metrics", p]))
        tree.expandItem(root)
        self.load_results_button.setEnabled(out.latest_metrics is not None)
        self._draw_stage_status()
        if emit_results and out.latest_metrics:
            self.results_ready.emit(out.latest_metrics)

    def _draw_stage_status(self) -> None:
        """✓ and the output of each stage done, "running…" on the one a job runs now."""
        stages = self.outputs.stages if self.outputs is not None else {}
        running = self.queue.running()
        for stage in STAGES:
            done = stages.get(stage)
            if running is not None and stage in (running.stage, running.part):
                self.form.set_stage_status(stage, "<span style='color:#1f6fb2'>running…</span>")
            elif done:
                self.form.set_stage_status(stage, f"<span style='color:#2e7d32'>✓</span> {done}", done)
            else:
                self.form.set_stage_status(stage, "<span style='color:#808080'>not run yet</span>")

    def _emit_latest_results(self) -> None:
        if self.outputs is not None and self.outputs.latest_metrics:
            self.results_ready.emit(self.outputs.latest_metrics)


__all__ = ["DEFAULT_CONFIG", "TrainingPanel"]
