"""Dark and light palettes following the system (``QStyleHints.colorScheme``), pyqtgraph included.

``REFCFA_GUI_THEME=dark|light`` forces one (screenshots, tests). The Fusion style is used so both
palettes look the same on every platform.
"""

from __future__ import annotations

import os

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

ENV_THEME = "REFCFA_GUI_THEME"


def system_is_dark() -> bool:
    forced = os.environ.get(ENV_THEME, "").lower()
    if forced in ("dark", "light"):
        return forced == "dark"
    hints = QGuiApplication.styleHints()
    scheme = hints.colorScheme() if hasattr(hints, "colorScheme") else Qt.ColorScheme.Unknown
    if scheme == Qt.ColorScheme.Dark:
        return True
    if scheme == Qt.ColorScheme.Light:
        return False
    # Unknown: judge from the platform palette's window colour.
    return QGuiApplication.palette().color(QPalette.ColorRole.Window).lightness() < 128


def dark_palette() -> QPalette:
    p = QPalette()
    base, window, text = QColor(30, 30, 32), QColor(45, 45, 48), QColor(225, 225, 225)
    disabled = QColor(128, 128, 128)
    for role, color in (
        (QPalette.ColorRole.Window, window),
        (QPalette.ColorRole.WindowText, text),
        (QPalette.ColorRole.Base, base),
        (QPalette.ColorRole.AlternateBase, window),
        (QPalette.ColorRole.ToolTipBase, QColor(60, 60, 64)),
        (QPalette.ColorRole.ToolTipText, text),
        (QPalette.ColorRole.Text, text),
        (QPalette.ColorRole.Button, window),
        (QPalette.ColorRole.ButtonText, text),
        (QPalette.ColorRole.BrightText, QColor(255, 80, 80)),
        (QPalette.ColorRole.Link, QColor(90, 160, 255)),
        (QPalette.ColorRole.Highlight, QColor(45, 110, 200)),
        (QPalette.ColorRole.HighlightedText, QColor(255, 255, 255)),
        (QPalette.ColorRole.PlaceholderText, disabled),
    ):
        p.setColor(role, color)
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        p.setColor(QPalette.ColorGroup.Disabled, role, disabled)
    return p


def plot_colors(dark: bool) -> tuple[str, str]:
    """``(background, foreground)`` for pyqtgraph views."""
    return ("#1e1e20", "#d0d0d0") if dark else ("#ffffff", "#303030")


def apply_theme(app: QApplication, dark: bool | None = None) -> bool:
    """Apply the palette (and pyqtgraph's defaults) for ``dark`` (default: the system's). Returns it."""
    dark = system_is_dark() if dark is None else dark
    app.setStyle("Fusion")
    app.setPalette(dark_palette() if dark else app.style().standardPalette())
    background, foreground = plot_colors(dark)
    pg.setConfigOptions(
        background=background, foreground=foreground, imageAxisOrder="row-major", antialias=True
    )
    return dark
