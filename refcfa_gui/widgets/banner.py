"""A non-modal message strip (info / warning / error) shown inside a panel, with a close button."""

from __future__ import annotations

from typing import Literal

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton

Level = Literal["info", "warning", "error"]
_STYLE = {
    "info": ("#1f4e79", "#dcebf8", "ℹ"),
    "warning": ("#7a5200", "#fff1cc", "⚠"),
    "error": ("#8b1a1a", "#fbe0e0", "✖"),
}


class MessageBanner(QFrame):
    """Shows one message; hidden when empty. ``closed`` is emitted when the user dismisses it."""

    closed = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("MessageBanner")
        self.level: Level | None = None
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        self.icon = QLabel()
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.close_button = QToolButton()
        self.close_button.setText("×")
        self.close_button.setToolTip("Dismiss this message")
        self.close_button.setAutoRaise(True)
        self.close_button.clicked.connect(self.clear)
        layout.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def show_message(self, text: str, level: Level = "info") -> None:
        fg, bg, icon = _STYLE[level]
        self.level = level
        self.icon.setText(icon)
        self.text.setText(text)
        self.setStyleSheet(
            f"#MessageBanner {{ background: {bg}; border: 1px solid {fg}; border-radius: 4px; }}"
            f"#MessageBanner QLabel {{ color: {fg}; }} #MessageBanner QToolButton {{ color: {fg}; }}"
        )
        self.show()

    def message(self) -> str:
        return self.text.text() if self.isVisible() else ""

    def clear(self) -> None:
        was_visible = self.isVisible()
        self.level = None
        self.text.setText("")
        self.hide()
        if was_visible:
            self.closed.emit()
