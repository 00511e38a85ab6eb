"""Persistent settings (QSettings, organisation ``refcfa``): layout, last folders, fps, colormaps.

``REFCFA_GUI_SETTINGS=/path/file.ini`` (or passing a ``QSettings``) keeps tests and screenshots
away from the user's settings.
"""

from __future__ import annotations

import os
from typing import Any

from PySide6.QtCore import QByteArray, QSettings

ORGANISATION = "refcfa"
APPLICATION = "refcfa-gui"
ENV_PATH = "REFCFA_GUI_SETTINGS"


def make_qsettings(path: str | os.PathLike[str] | None = None) -> QSettings:
    """The app's QSettings: an INI file at ``path`` (or ``$REFCFA_GUI_SETTINGS``), else the user's."""
    path = path or os.environ.get(ENV_PATH)
    if path:
        return QSettings(str(path), QSettings.Format.IniFormat)
    return QSettings(ORGANISATION, APPLICATION)


class Settings:
    """Typed access to the few values the app keeps between sessions."""

    def __init__(self, qsettings: QSettings | None = None) -> None:
        self.q = qsettings if qsettings is not None else make_qsettings()

    def get_str(self, key: str, default: str = "") -> str:
        value = self.q.value(key, default)
        return str(value) if value is not None else default

    def get_int(self, key: str, default: int) -> int:
        try:
            return int(self.q.value(key, default))
        except (TypeError, ValueError):
            return default

    def get_bool(self, key: str, default: bool) -> bool:
        value = self.q.value(key, default)
        if isinstance(value, str):
            return value.lower() in ("1", "true", "yes")
        return bool(value)

    def get_bytes(self, key: str) -> QByteArray | None:
        value = self.q.value(key)
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    def get_dict(self, group: str) -> dict[str, str]:
        self.q.beginGroup(group)
        try:
            return {k: str(self.q.value(k)) for k in self.q.childKeys()}
        finally:
            self.q.endGroup()

    def set(self, key: str, value: Any) -> None:
        self.q.setValue(key, value)

    def set_dict(self, group: str, values: dict[str, Any]) -> None:
        self.q.beginGroup(group)
        try:
            for k, v in values.items():
                self.q.setValue(k, v)
        finally:
            self.q.endGroup()

    def sync(self) -> None:
        self.q.sync()
