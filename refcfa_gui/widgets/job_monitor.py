"""The job views of the Training / CFA panel: progress with ETA and the live loss curve, the job
queue, and the log lines — all drawn from a :class:`~refcfa_gui.state.jobs.JobQueue`.

Progress widgets redraw at most 10 times a second (a single-shot timer collects the queue's
``changed`` events); the loss curve has its own throttle (:class:`LossPlot`). The monitor shows
the running job, else the most recently started one. Cancelling goes through the runner.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from refcfa_gui.state.jobs import Job, format_eta
from refcfa_gui.widgets.loss_plot import LossPlot
from refcfa_gui.workers.job_runner import JobRunner

STATUS_COLORS = {
    "queued": "#808080",
    "running": "#1f6fb2",
    "done": "#2e7d32",
    "failed": "#c62828",
    "cancelled": "#b26a00",
}


class JobMonitor:
    """Builds three pages — :attr:`progress_page`, :attr:`queue_page`, :attr:`log_page` — and keeps
    them in step with ``runner.queue`` (the panel puts the pages in its tabs)."""

    def __init__(self, runner: JobRunner, owner: QWidget) -> None:
        self.runner = runner
        self.queue = runner.queue
        self._items: dict[int, QListWidgetItem] = {}
        self._shown: tuple[int, str] | None = None  # (job id, part) on the loss plot
        self._timer = QTimer(owner)
        self._timer.setSingleShot(True)
        self._timer.setInterval(100)
        self._timer.timeout.connect(self.update_progress)
        self.progress_page = self._progress_page()
        self.queue_page = self._queue_page()
        self.log_page = self._log_page()
        q = self.queue.events
        q.added.connect(self._on_added)
        q.changed.connect(self._on_changed)
        q.loss.connect(self._on_loss)
        q.log.connect(lambda item: self.log_view.appendPlainText(item[1]))
        q.removed.connect(self._on_removed)
        self.cancel_button.clicked.connect(self.cancel_current)
        self.cancel_selected_button.clicked.connect(self.cancel_selected)
        self.clear_button.clicked.connect(self.queue.remove_finished)

    # == pages =====================================================================================
    def _progress_page(self) -> QWidget:
        w = QWidget()
        layout = QVBoxLayout(w)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(3)
        self.job_label = QLabel("No job yet")
        self.job_label.setObjectName("JobLabel")
        self.job_label.setWordWrap(True)
        f = self.job_label.font()
        f.setBold(True)
        self.job_label.setFont(f)
        self.progress = QProgressBar()
        self.progress.setObjectName("JobProgress")
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setFormat("")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("CancelJob")
        self.cancel_button.setToolTip(
            "Stop the running job after its current batch (its last checkpoint stays usable)"
        )
        self.cancel_button.setEnabled(False)
        row = QHBoxLayout()
        row.addWidget(self.progress, 1)
        row.addWidget(self.cancel_button)
        self.eta_label = QLabel("")
        self.eta_label.setObjectName("EtaLabel")
        self.eta_label.setWordWrap(True)
        self.loss_plot = LossPlot()
        layout.addWidget(self.job_label)
        layout.addLayout(row)
        layout.addWidget(self.eta_label)
        layout.addWidget(self.loss_plot, 1)
        return w

    def _queue_page(self) -> QWidget:
        w = QWidget()
        layout = QVBoxLayout(w)
        layout.setContentsMargins(4, 4, 4, 4)
        self.job_list = QListWidget()
        self.job_list.setObjectName("JobList")
        self.cancel_selected_button = QPushButton("Cancel")
        self.cancel_selected_button.setToolTip(
            "Cancel the selected job (queued: at once; running: after its batch)"
        )
        self.clear_button = QPushButton("Clear finished")
        self.clear_button.setToolTip("Remove the finished jobs from the list")
        buttons = QHBoxLayout()
        buttons.addWidget(self.cancel_selected_button)
        buttons.addStretch(1)
        buttons.addWidget(self.clear_button)
        layout.addWidget(self.job_list, 1)
        layout.addLayout(buttons)
        return w

    def _log_page(self) -> QWidget:
        self.log_view = QPlainTextEdit()
        self.log_view.setObjectName("JobLog")
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(3000)
        f = QFont("monospace")
        f.setStyleHint(QFont.StyleHint.Monospace)
        f.setPointSizeF(max(7.0, self.job_label.font().pointSizeF() - 1))
        self.log_view.setFont(f)
        return self.log_view

    # == actions ===================================================================================
    def cancel_current(self) -> None:
        job = self.queue.running()
        if job is not None:
            self.runner.cancel(job)

    def cancel_selected(self) -> None:
        item = self.job_list.currentItem()
        if item is not None:
            self.runner.cancel(int(item.data(Qt.ItemDataRole.UserRole)))

    # == queue → widgets ===========================================================================
    def _on_added(self, job: Job) -> None:
        item = QListWidgetItem(job.summary())
        item.setData(Qt.ItemDataRole.UserRole, job.id)
        self.job_list.addItem(item)
        self._items[job.id] = item
        self._style(job)

    def _on_removed(self, job: Job) -> None:
        item = self._items.pop(job.id, None)
        if item is not None:
            self.job_list.takeItem(self.job_list.row(item))

    def _style(self, job: Job) -> None:
        item = self._items.get(job.id)
        if item is None:
            return
        item.setText(job.summary())
        item.setForeground(QColor(STATUS_COLORS.get(job.status, "#000000")))
        item.setToolTip(
            f"{job.title}\noutput: {job.output_dir}" + (f"\nerror: {job.error}" if job.error else "")
        )

    def _on_changed(self, job: Job) -> None:
        if job.is_finished:
            self.update_progress()  # the final state at once
        elif not self._timer.isActive():
            self._timer.start()

    def update_progress(self) -> None:
        for job in self.queue.jobs:
            self._style(job)
        job = self.queue.latest()
        if job is None:
            return
        running = job.status == "running"
        self.cancel_button.setEnabled(running and not job.cancel_requested)
        part = f" · {job.part}" if job.part and job.part != job.stage else ""
        self.job_label.setText(f"#{job.id} {job.title}{part} — {job.status}")
        frac = job.fraction
        if running and frac is None:
            self.progress.setRange(0, 0)  # busy: the length of this part is not known
        else:
            self.progress.setRange(0, 1000)
            done = 1.0 if job.status == "done" else 0.0
            self.progress.setValue(int(1000 * (frac if frac is not None else done)))
        unit = {"S1": "steps", "T1": "steps", "S2": "epochs", "extract": "images"}.get(job.part, "")
        self.progress.setFormat(f"{job.done}/{job.total} {unit}".strip() if job.total else job.status)
        eta = f"ETA {format_eta(job.eta_s)} · " if running and job.eta_s is not None else ""
        self.eta_label.setText(eta + job.message)
        self._sync_plot(job)

    def _sync_plot(self, job: Job) -> None:
        part = job.part if job.part in job.loss else (list(job.loss)[-1] if job.loss else "")
        if not part or self._shown == (job.id, part):
            return
        self._shown = (job.id, part)
        self.loss_plot.set_points(job.loss.get(part, []), job.val_loss.get(part, []))
        what = "detector" if part == "S2" else "denoising"
        self.loss_plot.set_title(f"#{job.id} {part} {what} loss", "epoch" if part == "S2" else "step")

    def _on_loss(self, item: tuple[Job, str]) -> None:
        job, part = item
        if self._shown != (job.id, part):
            if job is self.queue.latest():
                self._sync_plot(job)
            return
        plot = self.loss_plot
        for x, y in job.loss.get(part, [])[plot.point_count() :]:
            plot.append(x, y)
        for x, y in job.val_loss.get(part, [])[plot.val_count() :]:
            plot.append_val(x, y)


__all__ = ["JobMonitor", "STATUS_COLORS"]
