"""Prune from the app (issue 14): the dry-run plan with its reasons first, then the prune once confirmed."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox, QPushButton

from drgui.core.ops.backup import run_backup


def _two_backups_and_keep_one(ws) -> None:
    run_backup(ws)
    run_backup(ws)
    ws.plan.destination("local").retention = {"last": 1}
    ws.save()


def test_prune_shows_the_plan_then_prunes_when_confirmed(qtbot, gui_app) -> None:
    ws = gui_app.ws
    _two_backups_and_keep_one(ws)
    with qtbot.waitSignal(gui_app.controller.status_changed, timeout=30_000):
        gui_app.start("destinations")
    page = gui_app.window.pages["destinations"]
    button = page.findChild(QPushButton, "pruneButton")
    assert button is not None and button.isEnabled()
    button.click()
    qtbot.waitUntil(lambda: page.prune_confirm is not None, timeout=30_000)
    box = page.prune_confirm
    assert isinstance(box, QMessageBox) and box.isVisible()
    plan = box.informativeText()
    assert "keep 1, would remove 1" in plan and "last snapshot" in plan, plan
    assert len(ws.destination("local").snapshot_ids()) == 2  # the plan removed nothing
    prune = next(b for b in box.buttons() if b.text() == "Prune")
    prune.click()
    qtbot.waitUntil(lambda: "Pruned: 1 snapshot(s) removed" in page.message.text(), timeout=30_000)
    assert len(ws.destination("local").snapshot_ids()) == 1
    assert button.isEnabled()


def test_cancelling_the_prune_removes_nothing(qtbot, gui_app) -> None:
    ws = gui_app.ws
    _two_backups_and_keep_one(ws)
    with qtbot.waitSignal(gui_app.controller.status_changed, timeout=30_000):
        gui_app.start("destinations")
    page = gui_app.window.pages["destinations"]
    page.findChild(QPushButton, "pruneButton").click()
    qtbot.waitUntil(lambda: page.prune_confirm is not None, timeout=30_000)
    page.prune_confirm.reject()
    qtbot.waitUntil(lambda: "nothing was removed" in page.message.text(), timeout=10_000)
    assert len(ws.destination("local").snapshot_ids()) == 2
