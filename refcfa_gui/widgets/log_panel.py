"""The Log dock: Python logging records, coloured by level."""

from __future__ import annotations

import html
import logging

from PySide6.QtWidgets import QHBoxLayout, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from refcfa_gui.logging_bridge import QtLogHandler

_COLORS = {logging.ERROR: "#d04040", logging.WARNING: "#c08000", logging.INFO: "", logging.DEBUG: "#808080"}


class LogPanel(QWidget):
    """Shows records of the ``refcfa`` and ``refcfa_gui`` loggers (attach with :meth:`install`)."""

    LOGGERS = ("refcfa", "refcfa_gui", "py.warnings")

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.view = QPlainTextEdit()
        self.view.setReadOnly(True)
        self.view.setMaximumBlockCount(5000)
        self.view.setObjectName("LogView")
        clear = QPushButton("Clear")
        clear.setToolTip("Clear the log view")
        clear.clicked.connect(self.view.clear)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(clear)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.view)
        layout.addLayout(buttons)
        self.handler = QtLogHandler()
        self.handler.emitter.record.connect(self.append)
        self._installed: list[logging.Logger] = []

    def install(self) -> None:
        for name in self.LOGGERS:
            logger = logging.getLogger(name)
            logger.addHandler(self.handler)
            if logger.level == logging.NOTSET or logger.level > logging.INFO:
                logger.setLevel(logging.INFO)
            self._installed.append(logger)
        logging.captureWarnings(True)

    def uninstall(self) -> None:
        for logger in self._installed:
            logger.removeHandler(self.handler)
        self._installed.clear()

    def append(self, text: str, levelno: int = logging.INFO) -> None:
        color = next((c for lvl, c in sorted(_COLORS.items(), reverse=True) if levelno >= lvl), "")
        body = html.escape(text)
        self.view.appendHtml(f'<span style="color:{color}">{body}</span>' if color else body)

    def text(self) -> str:
        return self.view.toPlainText()
