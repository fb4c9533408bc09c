"""Sources, Destinations, Snapshots, Drills, Checklists and Settings pages; the first-run wizard."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QPushButton

from drgui.core.ops.backup import run_backup
from drgui.core.plan.home import Home
from drgui.gui.app import App
from drgui.gui.main_window import PAGES
from tests.engine_fixtures import PASSPHRASE

pytestmark = pytest.mark.gui


def test_every_page_exists_and_the_dashboard_shows_the_status(started) -> None:
    window = started.window
    assert [window.pages[name].objectName() for name in PAGES] == [f"{n}Page" for n in PAGES]
    dashboard = window.pages["dashboard"]
    assert dashboard.heading.text() == "Acme"
    assert "/ 100" in dashboard.score.text()
    assert "never been backed up" in dashboard.reasons.text()
    for name in PAGES:
        window.show_page(name)
        assert window.current_page == name


def test_add_folder_source_through_the_dialog_and_test_it(qtbot, started, tmp_path: Path) -> None:
    folder = tmp_path / "media"
    folder.mkdir()
    (folder / "a.txt").write_text("hello")
    page = started.window.pages["sources"]
    dialog = page.add()
    dialog.name_edit.setText("media")
    dialog.set_kind("folder")
    dialog.form().edits["path"].setText(str(folder))
    with qtbot.waitSignal(dialog.accepted, timeout=30_000):
        dialog.add_button.click()
    assert "media" in [s.name for s in started.ws.plan.sources]
    qtbot.waitUntil(lambda: page.table.rowCount() == 3, timeout=30_000)
    row = next(r for r in range(page.table.rowCount()) if page.table.item(r, 0).text() == "media")
    page.table.selectRow(row)
    page.test_button.click()
    qtbot.waitUntil(lambda: "reachable" in page.message.text(), timeout=30_000)


def test_add_dialog_shows_what_to_do_on_a_bad_path_and_keeps_nothing(qtbot, started, tmp_path: Path) -> None:
    page = started.window.pages["sources"]
    dialog = page.add()
    dialog.name_edit.setText("bad")
    dialog.set_kind("folder")
    dialog.form().edits["path"].setText(str(tmp_path / "missing"))
    dialog.add_button.click()
    qtbot.waitUntil(lambda: dialog.error.isVisible(), timeout=30_000)
    assert "missing" in dialog.error.text()
    assert "bad" not in [s.name for s in started.ws.plan.sources]
    dialog.name_edit.setText("no path")
    dialog.form().edits["path"].setText("")
    dialog.add_button.click()
    assert "Choose a path" in dialog.error.text()


def test_postgres_password_from_the_dialog_goes_to_the_keyring(qtbot, started, pg18_db) -> None:
    page = started.window.pages["sources"]
    dialog = page.add()
    dialog.name_edit.setText("db")
    dialog.set_kind("postgres")
    dialog.form().edits["dsn"].setText(pg18_db.dsn)
    dialog.form().edits["password"].setText(pg18_db.password)
    with qtbot.waitSignal(dialog.accepted, timeout=30_000):
        dialog.add_button.click()
    config_text = started.ws.home.config_path.read_text()
    assert pg18_db.password not in config_text
    assert started.ws.store.get("source", "db", "password") == pg18_db.password


def test_destination_test_connection(qtbot, started) -> None:
    page = started.window.pages["destinations"]
    qtbot.waitUntil(lambda: page.table.rowCount() == 1, timeout=30_000)
    page.table.selectRow(0)
    page.test_button.click()
    qtbot.waitUntil(lambda: "works" in page.message.text(), timeout=30_000)


def test_snapshots_list_verify_deep_and_restore_a_folder(qtbot, started, tmp_path: Path) -> None:
    result = run_backup(started.ws)
    page = started.window.pages["snapshots"]
    page.reload()
    qtbot.waitUntil(lambda: page.table.rowCount() == 1, timeout=30_000)
    assert page.table.item(0, 4).text() == "✓ complete"
    assert result.snapshot_id in page.table.item(0, 0).toolTip()
    with qtbot.waitSignal(page.verify_deep_selected().finished, timeout=60_000):
        pass
    qtbot.waitUntil(lambda: "intact" in page.message.text(), timeout=10_000)
    assert "deep" in page.message.text()
    dialog = page.restore_selected()
    assert "new" in dialog.findChild(QLabel, "productionGuard").text()
    dialog.source_combo.setCurrentIndex(dialog.source_combo.findData("files"))
    target = tmp_path / "restored"
    dialog.target.setText(str(target))
    dialog.start_button.click()
    qtbot.waitUntil(lambda: "check passed" in dialog.status.text(), timeout=60_000)
    assert "1 check passed" in dialog.status.text()  # one folder, one hash check: singular
    assert (target / "invoices" / "2025" / "inv-0001.pdf").exists()


def test_restore_refuses_the_live_folder_and_says_why(qtbot, started) -> None:
    run_backup(started.ws)
    page = started.window.pages["snapshots"]
    page.reload()
    qtbot.waitUntil(lambda: page.table.rowCount() == 1, timeout=30_000)
    dialog = page.restore_selected()
    dialog.source_combo.setCurrentIndex(dialog.source_combo.findData("files"))
    dialog.target.setText(started.ws.plan.source("files").settings["path"])
    dialog.start_button.click()
    qtbot.waitUntil(lambda: "Refused" in dialog.status.text(), timeout=30_000)
    assert "new directory" in dialog.status.text()


def test_checklist_run_ticks_items_and_records_history(qtbot, started) -> None:
    page = started.window.pages["checklists"]
    assert page.list.count() >= 1
    page.list.setCurrentRow(0)
    page.start_run()
    manual = [
        page.items.item(i)
        for i in range(page.items.count())
        if page.items.item(i).flags() & Qt.ItemFlag.ItemIsUserCheckable
    ]
    assert manual, "a run has tickable items"
    done_before = page.run.progress[0]  # the automatic checks that passed count too
    manual[0].setCheckState(Qt.CheckState.Checked)
    assert page.progress.text().startswith(f"{done_before + 1} of")
    assert started.ws.history.runs("checklist")[0].status == "running"


def test_drills_page_lists_history_and_start_has_a_way_forward(qtbot, started) -> None:
    run_id = started.ws.history.start_run("drill", snapshot_id="20261101T020000Z-aaaaaaaa")
    started.ws.history.finish_run(run_id, "ok", detail={"rto_seconds": 754, "report": "r.html"})
    page = started.window.pages["drills"]
    page.reload()
    qtbot.waitUntil(lambda: page.table.rowCount() == 1, timeout=30_000)
    assert page.table.item(0, 1).text() == "✓ passed"
    assert page.table.item(0, 3).text().startswith("12m")
    assert page.table.item(0, 4).text() == ""


def test_settings_save_schedule_and_targets(qtbot, started) -> None:
    page = started.window.pages["settings"]
    page.rpo.setText("12h")
    page.combos["backup"].setCurrentIndex(1)  # every 6 hours
    assert page.save()
    plan = started.ws.reload()
    assert plan.rpo_seconds == 12 * 3600
    assert plan.schedule["backup"].startswith("FREQ=HOURLY;INTERVAL=6")
    page.combos["weekly_review"].setCurrentIndex(page.combos["weekly_review"].count() - 1)
    page.rules["weekly_review"].setText("FREQ=MINUTELY")
    assert not page.save()
    assert page.message.text()


def test_about_box(qtbot, started) -> None:
    started.window.show_about()
    box = started.window.findChild(type(started.window).__mro__[0].__base__.__base__, "aboutBox")
    assert box is not None


def test_first_run_wizard_creates_plan_source_destination_and_backup(qtbot, tmp_path: Path) -> None:
    from drgui.gui.first_run import FirstRunWizard

    home = Home(tmp_path / "home")
    wizard = FirstRunWizard(home)
    qtbot.addWidget(wizard)
    wizard.show()
    plan = wizard.plan_page
    plan.name.setText("Widgets Inc")
    plan.passphrase.setText("short")
    assert "Too weak" in plan.strength.text()
    plan.passphrase.setText(PASSPHRASE)
    assert "Strong enough" in plan.strength.text()
    plan.confirm.setText(PASSPHRASE + "x")
    wizard.next()
    assert "differ" in plan.error.text()
    plan.confirm.setText(PASSPHRASE)
    with qtbot.waitSignal(wizard.currentIdChanged, timeout=30_000):
        wizard.next()
    assert home.exists()
    folder = tmp_path / "uploads"
    folder.mkdir()
    (folder / "x.txt").write_text("x")
    source = wizard.source_page
    source.kind.setCurrentIndex(source.kind.findData("folder"))
    source.name.setText("uploads")
    source.form_by_kind["folder"].edits["path"].setText(str(folder))
    with qtbot.waitSignal(wizard.currentIdChanged, timeout=30_000):
        wizard.next()
    dest = wizard.dest_page
    dest.form_by_kind["local"].edits["path"].setText(str(tmp_path / "backups"))
    with qtbot.waitSignal(wizard.currentIdChanged, timeout=30_000):
        wizard.next()
    wizard.backup_page.button.click()
    qtbot.waitUntil(lambda: "First snapshot" in wizard.backup_page.status.text(), timeout=60_000)
    assert list((tmp_path / "backups").glob("*/snapshots/*"))  # under the plan's scope
    assert wizard.findChild(QPushButton, "wizardBackupButton") is not None


def test_screenshot_mode_writes_a_png_of_the_loaded_page(qtbot, files_ws, tmp_path: Path) -> None:
    from PySide6.QtGui import QImage

    from drgui.gui.app import run_app

    png = tmp_path / "shot.png"
    assert run_app(files_ws.home, page="snapshots", screenshot=png, tray=False) == 0
    image = QImage(str(png))
    assert not image.isNull() and image.width() >= 800


def test_shutdown_stops_refreshes_and_drops_late_results(qtbot, files_ws) -> None:
    """After shutdown an app's controller neither refreshes nor shows a result still in flight."""
    app = App(files_ws, tray=False)
    qtbot.addWidget(app.window)
    app.start()
    qtbot.waitUntil(lambda: app.controller.status is not None, timeout=30_000)
    shown = []
    app.controller.status_changed.connect(shown.append)
    app.controller.refresh()  # a result still in flight when the app shuts down
    app.shutdown()
    assert app.controller.closed
    assert not app.controller.refresh_timer.isActive()
    assert not app.reminders.timer.isActive()
    # The job's `done` is queued after its result: once the worker has no job, the result was delivered.
    qtbot.waitUntil(lambda: not app.controller.worker.active, timeout=30_000)
    app.controller.refresh()
    assert not app.controller.worker.active
    assert shown == []


def test_garbage_is_collected_on_the_gui_thread(qtbot) -> None:
    """The app's collector turns automatic collection off and collects from its GUI-thread timer."""
    import gc

    from drgui.gui.gc_guard import GuiThreadCollector

    collector = GuiThreadCollector(interval_ms=10)
    collector.start()
    try:
        assert not gc.isenabled()
        cycles = []
        for _ in range(2000):
            cycle: list = []
            cycle.append(cycle)
            cycles.append(cycle)
        del cycles
        qtbot.waitUntil(lambda: collector.collections > 0, timeout=5_000)
    finally:
        collector.stop()
    assert gc.isenabled()
