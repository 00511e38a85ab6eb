"""The Results dock. This part: exports of the timeline (PNG, GIF, MP4).

The evaluation table, ROC curves and CFA diagnostics join this dock with the pipeline panel.
"""

from __future__ import annotations

from PySide6.QtWidgets import QGroupBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from refcfa_gui.export import mp4_writer


class ResultsPanel(QWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        box = QGroupBox("Export the timeline")
        self.png_button = QPushButton("Current view as PNG…")
        self.png_button.setToolTip("Save the timeline viewer as it is on screen (Ctrl+E)")
        self.gif_button = QPushButton("Scrub as animated GIF…")
        self.gif_button.setToolTip("Every step of the current image, at the playback fps (Ctrl+Shift+E)")
        self.mp4_button = QPushButton("Scrub as MP4…")
        plugin, reason = mp4_writer()
        self.mp4_button.setEnabled(plugin is not None)
        self.mp4_button.setToolTip(reason or "Every step of the current image as an MP4 video")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setObjectName("ExportStatus")
        inner = QVBoxLayout(box)
        row = QHBoxLayout()
        for w in (self.png_button, self.gif_button, self.mp4_button):
            row.addWidget(w)
        row.addStretch(1)
        inner.addLayout(row)
        inner.addWidget(self.status)
        note = QLabel(
            "<small>Evaluation tables, ROC curves and CFA diagnostics appear here after "
            "<code>refcfa pipeline</code> has run.</small>"
        )
        note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(box)
        layout.addWidget(note)
        layout.addStretch(1)
