"""The History page: runs and events, filters by kind and date, Verify in words on the worker, Export
CSV; a failed verification is an alert on the dashboard and in the tray."""

from __future__ import annotations

import sqlite3
from datetime import date, timedelta
from pathlib import Path

import pytest

from drgui.core.ops.audit import AUDIT_ALERT
from drgui.core.ops.backup import run_backup
from drgui.gui.pages.history import EVENT
from drgui.gui.tray import Tray

pytestmark = pytest.mark.gui


def test_history_page_lists_filters_verifies_and_exports(qtbot, gui_app, tmp_path: Path) -> None:
    ws = gui_app.ws
    run_backup(ws)
    ws.history.append_event("settings.schedule", {"schedule": {"backup": "daily 02:00"}})
    with qtbot.waitSignal(gui_app.controller.status_changed, timeout=30_000):
        gui_app.start("history")
    tray = Tray(gui_app.actions, gui_app.reminders, gui_app.controller)
    page = gui_app.window.pages["history"]
    assert page.objectName() == "historyPage"
    qtbot.waitUntil(lambda: page.table.rowCount() >= 3, timeout=30_000)
    kinds = {r.kind for r in page.visible_rows()}
    assert {"backup", EVENT} <= kinds, kinds

    page.set_filter("backup")
    assert page.table.rowCount() == 1 and page.table.item(0, 2).text() == "✓ ok"
    page.set_filter(EVENT)
    assert "settings.schedule" in [page.table.item(r, 1).text() for r in range(page.table.rowCount())]
    tomorrow = date.today() + timedelta(days=2)
    page.set_filter("", since=tomorrow, until=tomorrow + timedelta(days=1))
    assert page.table.rowCount() == 0 and not page.empty_hint.isHidden()
    page.set_filter("", since=date.today() - timedelta(days=2), until=tomorrow)
    assert page.table.rowCount() >= 3

    page.verify_button.click()
    qtbot.waitUntil(lambda: page.verdict.isVisible(), timeout=60_000)
    assert page.verdict.text().startswith("Audit log intact:"), page.verdict.text()
    qtbot.waitUntil(lambda: page.verify_button.isEnabled(), timeout=30_000)

    conn = sqlite3.connect(ws.home.history_path)
    with conn:
        conn.execute("UPDATE runs SET status = 'failed' WHERE kind = 'backup'")
    conn.close()
    page.verdict.clear()
    page.verify_button.click()
    qtbot.waitUntil(lambda: "NOT intact" in page.verdict.text(), timeout=60_000)
    assert "was edited: status 'failed'" in page.verdict.text(), page.verdict.text()
    dashboard = gui_app.window.pages["dashboard"]
    qtbot.waitUntil(lambda: AUDIT_ALERT in dashboard.reasons.text(), timeout=30_000)
    qtbot.waitUntil(lambda: AUDIT_ALERT in tray.icon.toolTip(), timeout=30_000)

    target = tmp_path / "audit.csv"
    page.export_to(target)
    qtbot.waitUntil(lambda: "records written" in page.message.text(), timeout=30_000)
    assert target.read_text().splitlines()[0] == "seq,time,kind,data,prev_mac,mac"


def test_screenshot_of_the_history_page_with_runs(qtbot, files_ws, tmp_path: Path) -> None:
    from PySide6.QtGui import QImage

    from drgui.cli.cmd_gui import PAGES
    from drgui.gui.app import run_app

    assert "history" in PAGES  # `drgui gui --page history --screenshot FILE`
    run_backup(files_ws)
    png = tmp_path / "history.png"
    assert run_app(files_ws.home, page="history", screenshot=png, tray=False) == 0
    image = QImage(str(png))
    assert not image.isNull() and image.width() >= 800
