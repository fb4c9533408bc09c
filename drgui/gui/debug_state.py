"""Test hook: with $DRGUI_DEBUG_STATE_FILE=PATH the running app writes what it shows as JSON to PATH.

Inert unless the variable is set. The file is rewritten atomically whenever the state changes (checked
every 200 ms), so the end-to-end tests can poll it. Keys: `tray_available`, `tray_visible`,
`tray_geometry` ([x, y, width, height] or null), `page`, `window_visible`, `snoozed_until` (ISO or
null), `pending` (reminder kinds shown and not snoozed) and `notifications` (what was sent over D-Bus:
kind, id, actions).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Slot
from PySide6.QtWidgets import QApplication, QSystemTrayIcon

from drgui.core.engine.fsutil import atomic_write_text

DEBUG_STATE_ENV = "DRGUI_DEBUG_STATE_FILE"


class DebugState(QObject):
    """Writes the app's state to `path` whenever it changes; parented to the reminder service."""

    def __init__(self, reminders: Any, path: Path) -> None:
        super().__init__(reminders)
        self.reminders = reminders
        self.path = path
        self.written = ""
        self.timer = QTimer(self)
        self.timer.setInterval(200)
        self.timer.timeout.connect(self.write)

    def start(self) -> None:
        self.timer.start()
        QTimer.singleShot(0, self.write)

    def state(self) -> dict[str, Any]:
        app = QApplication.instance()
        widgets = app.topLevelWidgets() if isinstance(app, QApplication) else []
        window = next((w for w in widgets if w.objectName() == "mainWindow"), None)
        tray = window.findChild(QObject, "tray") if window is not None else None
        icon = getattr(tray, "icon", None)
        geometry = icon.geometry() if icon is not None and icon.isVisible() else None
        snoozed = self.reminders.snoozed_until
        return {
            "tray_available": QSystemTrayIcon.isSystemTrayAvailable(),
            "tray_visible": bool(icon is not None and icon.isVisible()),
            "tray_geometry": [geometry.x(), geometry.y(), geometry.width(), geometry.height()]
            if geometry is not None
            else None,
            "page": getattr(window, "current_page", None),
            "window_visible": bool(window is not None and window.isVisible()),
            "snoozed_until": snoozed.isoformat() if snoozed else None,
            "pending": [r.kind for r in self.reminders.pending],
            "notifications": list(getattr(getattr(tray, "notifier", None), "sent", [])),
        }

    @Slot()
    def write(self) -> None:
        text = json.dumps(self.state(), indent=1)
        if text != self.written:
            atomic_write_text(self.path, text + "\n", mode=0o644)
            self.written = text


def install_from_env(reminders: Any) -> DebugState | None:
    """Start writing the state file when $DRGUI_DEBUG_STATE_FILE is set; otherwise do nothing."""
    path = os.environ.get(DEBUG_STATE_ENV)
    if not path:
        return None
    debug = DebugState(reminders, Path(path))
    debug.start()
    return debug
