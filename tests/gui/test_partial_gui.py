"""A partial backup (one source failed, the others saved) is shown as such on the dashboard and in the tray."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QPushButton

from drgui.gui.tray import Tray

pytestmark = pytest.mark.gui


def test_dashboard_and_tray_name_the_source_that_was_not_backed_up(qtbot, gui_app) -> None:
    folder = Path(gui_app.ws.plan.source("files").settings["path"])
    shutil.rmtree(folder)
    gui_app.start("dashboard")
    tray = Tray(gui_app.actions, gui_app.reminders, gui_app.controller)
    finished = []
    gui_app.controller.backup_finished.connect(finished.append)
    with qtbot.waitSignal(gui_app.controller.backup_done, timeout=120_000):
        qtbot.mouseClick(gui_app.window.findChild(QPushButton, "backupNowButton"), Qt.MouseButton.LeftButton)
    assert finished and finished[0].partial and [s.name for s in finished[0].failed_sources] == ["files"]

    dashboard = gui_app.window.pages["dashboard"]
    result_text = dashboard.result_label.text()
    assert "Partial backup" in result_text and "files" in result_text and str(folder) in result_text

    qtbot.waitUntil(lambda: gui_app.controller.state == "partial", timeout=30_000)
    qtbot.waitUntil(lambda: dashboard.findChild(QLabel, "sourceError_files") is not None, timeout=30_000)
    label = dashboard.findChild(QLabel, "sourceError_files")
    assert label.text() == "Not in the last backup" and str(folder) in label.toolTip()
    assert "files" in dashboard.reasons.text() and "not backed up" in dashboard.reasons.text()
    qtbot.waitUntil(lambda: tray.state == "partial", timeout=30_000)
    assert "partial" in tray.icon.toolTip() and "files" in tray.icon.toolTip()
    assert str(folder) in tray.icon.toolTip()
    assert not tray.icon.icon().isNull()


def test_a_damaged_history_is_reported_with_the_backup_result(qtbot, gui_app) -> None:
    history = gui_app.ws.home.history_path
    history.write_bytes(b"this is not an sqlite database " * 100)
    gui_app.start("dashboard")
    finished = []
    gui_app.controller.backup_finished.connect(finished.append)
    with qtbot.waitSignal(gui_app.controller.backup_done, timeout=120_000):
        qtbot.mouseClick(gui_app.window.findChild(QPushButton, "backupNowButton"), Qt.MouseButton.LeftButton)
    assert finished and finished[0].ok, finished
    text = gui_app.window.pages["dashboard"].result_label.text()
    assert "Backed up" in text and "history file was damaged" in text
    assert list(history.parent.glob("history.sqlite.damaged-*"))
