"""Issue 14: the screen never contradicts the state (messages bound to what they describe), one formatter
for durations, sizes and schedules, the restore wizard's steps and bar, fit and finish."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtWidgets import QLabel

from drgui.cli.output import human_bytes
from drgui.core import fmt
from drgui.core.config import format_duration
from drgui.core.errors import OperationFailed
from drgui.core.schedule import PRESETS
from drgui.core.setup import add_destination
from drgui.gui import humanize
from drgui.gui.app import App


@pytest.fixture
def started(qtbot, gui_app) -> App:
    with qtbot.waitSignal(gui_app.controller.status_changed, timeout=30_000):
        gui_app.start("dashboard")
    return gui_app


def refreshed(qtbot, app: App) -> None:
    with qtbot.waitSignal(app.controller.status_changed, timeout=30_000):
        app.controller.refresh()


def test_the_no_restore_test_hint_goes_once_a_test_passed_also_after_coming_back(qtbot, started) -> None:
    page = started.window.pages["drills"]
    started.window.show_page("drills")
    qtbot.waitUntil(lambda: page.empty_hint.isVisible(), timeout=30_000)
    assert "No restore test yet" in page.empty_hint.text()
    run_id = started.ws.history.start_run("drill", snapshot_id="20261101T020000Z-aaaaaaaa")
    started.ws.history.finish_run(run_id, "ok", detail={"rto_seconds": 754})
    refreshed(qtbot, started)
    qtbot.waitUntil(lambda: page.table.rowCount() == 1, timeout=30_000)
    assert not page.empty_hint.isVisible()
    started.window.show_page("dashboard")
    started.window.show_page("drills")
    qtbot.waitUntil(lambda: page.table.rowCount() == 1, timeout=30_000)
    assert not page.empty_hint.isVisible()
    assert "No restore test yet" not in page.message.text()


def test_no_drive_destination_goes_once_a_drive_is_added(qtbot, started, tmp_path: Path) -> None:
    page = started.window.pages["destinations"]
    started.window.show_page("destinations")
    page.sync_env()
    qtbot.waitUntil(lambda: "no drive destination" in page.message.text(), timeout=30_000)
    assert page.message.isVisible()
    (tmp_path / "drive").mkdir()
    add_destination(started.ws, "usb", "drive", {"path": str(tmp_path / "drive")})
    refreshed(qtbot, started)
    assert page.message.text() == ""
    assert not page.message.isVisible()


def test_an_outcome_goes_when_a_later_run_starts_or_the_page_is_left(qtbot, started) -> None:
    page = started.window.pages["sources"]
    started.window.show_page("sources")
    page.say("Backup cancelled. Nothing half-written was kept.")
    refreshed(qtbot, started)  # nothing happened since: the message holds
    assert page.message.text().startswith("Backup cancelled")
    started.ws.history.start_run("backup")  # a backup (from the tray, the CLI, the schedule) runs
    refreshed(qtbot, started)
    assert page.message.text() == ""

    page.say("✓ Source 'files' is reachable.", "done")
    started.window.show_page("dashboard")
    started.window.show_page("sources")
    assert page.message.text() == ""


def test_an_outcome_reporting_its_own_run_stays_after_the_refresh(qtbot, started) -> None:
    """The .env sync records its run, then says so: the refresh that shows the run keeps the message."""
    page = started.window.pages["destinations"]
    started.window.show_page("destinations")
    run_id = started.ws.history.start_run("drive_sync", target="usb")
    started.ws.history.finish_run(run_id, "ok")
    page.say("✓ .env copied to the drive.", "done")
    refreshed(qtbot, started)
    assert page.message.text().startswith("✓ .env copied")


def test_a_backup_starting_clears_the_old_outcome(qtbot, started) -> None:
    page = started.window.pages["snapshots"]
    page.message.say("✓ Snapshot x is intact.", "done")
    started.controller.backup_started.emit()
    assert page.message.text() == ""


def test_the_add_dialog_error_goes_when_the_kind_changes(qtbot, started) -> None:
    page = started.window.pages["sources"]
    dialog = page.add()
    dialog.name_edit.setText("media")
    dialog.set_kind("folder")
    dialog.add_button.click()  # no path
    assert "Choose a path" in dialog.error.text()
    assert dialog.error.isVisible()
    dialog.set_kind("env")
    assert dialog.error.text() == ""
    assert not dialog.error.isVisible()


def test_a_failed_backup_is_said_once_and_a_status_banner_goes_when_the_status_is_read(
    qtbot, started
) -> None:
    window = started.window
    error = OperationFailed("Destination 'local' is full.", hint="Free some space.")
    started.controller.backup_failed.emit(error)
    assert not window.banner.isVisible()  # the dashboard says it beside Back up now
    started.controller.problem.emit(OperationFailed("The history could not be read."))
    assert window.banner.isVisible()
    refreshed(qtbot, started)
    assert not window.banner.isVisible()


def test_ctrl_b_shows_the_dashboard_where_the_backup_is_shown(qtbot, started) -> None:
    started.window.show_page("settings")
    with qtbot.waitSignal(started.controller.backup_done, timeout=60_000):
        started.window.backup_now()
    assert started.window.current_page == "dashboard"


# --- one formatter --------------------------------------------------------------------------------


def test_one_duration_and_size_notation_in_the_gui_the_cli_and_settings(started) -> None:
    assert humanize.duration(86400) == format_duration(86400) == "1d"
    assert humanize.duration(4 * 3600) == "4h"
    assert humanize.duration(None) == "n/a"
    assert humanize.size(1_234_567) == human_bytes(1_234_567) == fmt.size(1_234_567) == "1.2 MB"
    settings = started.window.pages["settings"]
    assert settings.rpo.text() == humanize.duration(started.ws.plan.rpo_seconds)


def test_the_drill_schedule_is_described_the_same_way_everywhere(started) -> None:
    assert fmt.describe_rule(PRESETS["drill"]) == "first Sunday of the month, 19:00"
    assert fmt.describe_rule(PRESETS["weekly_review"]) == "every Sunday, 19:00"
    assert fmt.describe_rule(PRESETS["backup"]) == "every day, 02:00"
    assert fmt.describe_rule("FREQ=HOURLY;INTERVAL=6;BYMINUTE=0;BYSECOND=0") == "every 6 hours"
    assert fmt.describe_rule("FREQ=YEARLY;BYMONTH=1") == "FREQ=YEARLY;BYMONTH=1"
    combo = started.window.pages["settings"].combos["drill"]
    assert combo.currentText() == "First Sunday of the month, 19:00"
    next_drill = started.controller.status.next.get("drill")
    text = humanize.scheduled(PRESETS["drill"], next_drill)
    assert text.startswith("first Sunday of the month, 19:00 (next: ")
    # a weekday alone does not say which week: the date is there
    assert str(next_drill.astimezone().day) in humanize.when(next_drill)


def test_plural_reads_right() -> None:
    assert humanize.plural(1, "check") == "1 check"
    assert humanize.plural(3, "check") == "3 checks"


def test_snapshot_count_and_verify_outcome_do_not_overwrite_each_other(qtbot, started) -> None:
    page = started.window.pages["snapshots"]
    assert isinstance(page.summary, QLabel)
    page.message.say("✓ Snapshot x is intact.", "done")
    page.show_snapshots([])
    assert "No snapshot here yet" in page.summary.text()
    assert page.message.text().startswith("✓ Snapshot x")
