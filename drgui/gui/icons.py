"""The app's SVG icons, shipped as package data in drgui/resources/icons."""

from __future__ import annotations

from importlib import resources

from PySide6.QtGui import QIcon

TRAY_STATES = ("ok", "due", "running", "failed")


def icon_path(name: str) -> str:
    return str(resources.files("drgui").joinpath("resources", "icons", f"{name}.svg"))


def icon(name: str) -> QIcon:
    return QIcon(icon_path(name))


def tray_icon(state: str) -> QIcon:
    return icon(f"tray-{state if state in TRAY_STATES else 'due'}")
