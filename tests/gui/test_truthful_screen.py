"""Issue 14: the screen never contradicts the state (messages bound to what they describe), one formatter
for durations, sizes and schedules, the restore wizard's steps and bar, fit and finish."""

from __future__ import annotations

import logging
import subprocess
from datetime import UTC, datetime
from logging.handlers import RotatingFileHandler
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractScrollArea,
    QApplication,
    QLabel,
    QPushButton,
    QScrollArea,
    QWizard,
)
from pytestqt.exceptions import TimeoutError as QtTimeout

from drgui.cli.output import human_bytes
from drgui.core import fmt
from drgui.core.errors import OperationFailed
from drgui.core.ops.checklists import run_checklist
from drgui.core.ops.drill import DrillResult
from drgui.core.plan.config import format_duration
from drgui.core.plan.setup import add_destination
from drgui.core.progress import Progress
from drgui.core.timing.schedule import PRESETS
from drgui.gui import humanize
from drgui.gui.app import App
from drgui.gui.logfile import log_dir, setup_logging
from drgui.gui.main_window import MIN_HEIGHT, MIN_WIDTH, PAGES
from drgui.gui.restore_wizard import STEP_ORDER, RestoreWizard, StepTracker
from drgui.report.drill_report import render_html, write_pdf
from tests.gui.test_restore_wizard import drill_ws  # noqa: F401 (a fixture)


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
    assert text == f"first Sunday of the month, 19:00 · next {humanize.day(next_drill)}"
    assert humanize.next_run({}, "drill", next_drill) == text  # the preset when the plan has no rule
    assert humanize.next_run(started.ws.plan.schedule, "drill", next_drill) == text
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


# --- the restore wizard -----------------------------------------------------------------------------

# What run_drill reports, in its order, for a plan with two databases and a folder: the scratch server
# starts in the background before the verification, the restore functions report under "restore"
# (also while the folder is restored), and the second database repeats restore, rows and schema.
DRILL_EVENTS = [
    Progress("snapshot", None, "Choosing the snapshot"),
    Progress("scratch", None, "Starting a scratch PostgreSQL"),
    Progress("verify", None, "Verifying"),
    Progress("verify", "local", "", 500, 1000, 1.0),
    Progress("restore", "db", "Downloading and decrypting the dump"),
    Progress("restore", "db", "", 480, 1000, 1.0),
    Progress("scratch", None, "Scratch server: PostgreSQL 18"),
    Progress("restore", "db", "pg_restore of db"),
    Progress("restore", "db", "Running pg_restore"),
    Progress("restore", "db", "", 180, 1000, 1.0),
    Progress("rows", "db", "4 tables counted in db"),
    Progress("schema", "db", "Comparing the schema of db"),
    Progress("restore", "db2", "pg_restore of db2"),
    Progress("restore", "db2", "", 100, 1000, 1.0),
    Progress("rows", "db2", "4 tables counted in db2"),
    Progress("schema", "db2", "Comparing the schema of db2"),
    Progress("smoke", None, "Running 1 smoke query"),
    Progress("files", "files", "Restoring files to a temp folder"),
    Progress("restore", "files", "", 10, 100, 1.0),
    Progress("env", "env", "Checking the key names of env"),
    Progress("targets", None, "Comparing RTO and RPO"),
    Progress("cleanup", None, "Stopping the scratch PostgreSQL"),
    Progress("checklist", None, "Evaluating the checklist"),
]


def test_no_later_step_is_ticked_while_an_earlier_one_runs_and_the_bar_never_goes_back() -> None:
    tracker = StepTracker()
    percents = []
    for event in DRILL_EVENTS:
        tracker.feed(event)
        percents.append(tracker.percent)
        current = STEP_ORDER.index(tracker.current)
        for step in STEP_ORDER[current + 1 :]:
            assert tracker.symbol(step) != "✔", f"{step} ticked while {tracker.current} runs"
        for step in STEP_ORDER[:current]:
            assert tracker.symbol(step) in ("✔", "○"), step
    assert percents == sorted(percents), percents
    assert tracker.current == "checklist"
    # the folder's inner "restore" progress did not send the list back to "Restore the databases"
    tracker.feed(Progress("restore", "files", "", 50, 100, 1.0))
    assert tracker.current == "checklist"
    assert tracker.symbol("report", finished=True) == "✔"


def test_the_run_page_shows_percent_and_goes_forward_only(qtbot, files_ws) -> None:
    wizard = RestoreWizard(files_ws)
    qtbot.addWidget(wizard)
    page = wizard.run_page
    page.reset_steps()
    values = []
    for event in DRILL_EVENTS[:10]:
        page.on_progress(event)
        values.append(page.bar.value())
    assert values == sorted(values)
    assert page.bar.format() == "%p%"
    texts = [page.steps.item(i).text() for i in range(page.steps.count())]
    assert texts[STEP_ORDER.index("restore")].startswith("▶")
    assert all(not t.startswith("✔") for t in texts[STEP_ORDER.index("rows") :])


def test_back_is_disabled_while_the_drill_runs_and_cancel_still_cleans_up(qtbot, drill_ws) -> None:  # noqa: F811
    """(test_restore_wizard's cancel test checks that nothing is left behind: not repeated here.)"""
    wizard = RestoreWizard(drill_ws)
    qtbot.addWidget(wizard)
    wizard.show()
    wizard.next()
    wizard.next()
    back = wizard.button(QWizard.WizardButton.BackButton)
    assert wizard.running
    assert not back.isEnabled()
    qtbot.waitUntil(
        lambda: wizard.run_page.current in ("scratch", "verify", "restore", "rows"), timeout=120_000
    )
    assert not back.isEnabled()
    wizard.run_page.cancel_button.click()
    qtbot.waitUntil(lambda: wizard.run_page.state == "cancelled", timeout=120_000)
    assert back.isEnabled()  # once it has stopped: back to choose another snapshot
    last = drill_ws.history.last_run("drill")
    assert last is not None and last.status == "cancelled"
    with qtbot.waitSignal(wizard.rejected, timeout=10_000):
        wizard.reject()


# --- fit and finish ---------------------------------------------------------------------------------


def test_the_drill_report_pdf_breaks_no_word_in_its_table_cells(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    run = run_checklist(
        "monthly-restore-test",
        {"verify_latest_ok": (True, "20261201T214243Z-aaee9df5 verified on local")},
        now=now,
    )
    result = DrillResult(
        drill_id="drill-20261201T213810Z-3ab40a",
        plan="Acme",
        snapshot_id="20261201T213808Z-ff24bc02",
        destination="local",
        scratch="embedded PostgreSQL 18",
        started=now,
        finished=now,
        checks=[{"step": "verify", "name": "verify", "ok": True, "detail": "5 files match the index"}],
        rto_seconds=4,
        rpo_seconds=3,
        rto_target=4 * 3600,
        rpo_target=86400,
        checklist=run.to_dict(),
    )
    pdf = tmp_path / "report.pdf"
    write_pdf(render_html(result, for_pdf=True), pdf)
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True)
    words = set(text.stdout.split())
    # the short columns (State, By, When, Result) keep their words whole ("ope n", "Stat e" before)
    assert {"State", "open", "done", "(automatic)", "Result", "PASS"} <= words, sorted(words)
    assert not {"ope", "Stat", "don", "(automa"} & words


def test_at_the_minimum_size_nothing_is_cut_off_and_nothing_scrolls_sideways(qtbot, started) -> None:
    run_id = started.ws.history.start_run("drill", snapshot_id="20261101T020000Z-aaaaaaaa")
    report = started.ws.home.reports_dir / "drill-20261101T020000Z-aaaaaa" / "report.html"
    report.parent.mkdir(parents=True)
    report.write_text("<html></html>")
    started.ws.history.finish_run(
        run_id, "ok", detail={"rto_seconds": 754, "report": str(report), "checks": 16, "failed": []}
    )
    window = started.window
    window.resize(640, 480)  # smaller than the minimum: the window stays at its minimum
    assert (window.width(), window.height()) == (MIN_WIDTH, MIN_HEIGHT) == (800, 600)
    for name in PAGES:
        window.show_page(name)
        page = window.pages[name]
        qtbot.waitUntil(lambda page=page: page.isVisible())
        if name == "drills":
            qtbot.waitUntil(lambda page=page: page.table.rowCount() == 1, timeout=30_000)
        QApplication.processEvents()
        for scroll in page.findChildren(QAbstractScrollArea):
            bar = scroll.horizontalScrollBar()
            # layouts settle over a few posted events (word-wrapped labels): poll, then judge
            try:
                qtbot.waitUntil(lambda bar=bar: bar.maximum() == 0, timeout=5_000)
            except QtTimeout:
                content = scroll.widget()
                raise AssertionError(
                    f"the {name} page scrolls sideways by {bar.maximum()} px: viewport {scroll.viewport().width()},"
                    f" content {content.width()}, its minimum {content.minimumSizeHint().width()}"
                ) from None
        for button in page.findChildren(QPushButton):
            if not button.isVisible():
                continue
            corner = button.mapTo(window, button.rect().bottomRight())
            scroll = next(
                (s for s in page.findChildren(QScrollArea) if s.widget().isAncestorOf(button)), None
            )
            if scroll is not None:  # on a scrolling page: within the width, reachable by scrolling down
                content = scroll.widget()
                assert content.rect().contains(button.mapTo(content, button.rect().bottomRight()))
                assert 0 <= corner.x() <= window.width(), f"{name}: {button.text()!r} is cut off at the side"
            else:
                assert window.rect().contains(corner), f"{name}: {button.text()!r} is cut off"
    dashboard = window.pages["dashboard"]
    window.show_page("dashboard")
    assert dashboard.backup_button.isVisible()


def test_keyboard_focus_is_visible_and_icon_only_controls_have_names(started) -> None:
    window = started.window
    style = window.styleSheet()
    assert "QListWidget#sidebar:focus" in style and "QPushButton:focus" in style
    assert window.sidebar.focusPolicy() & Qt.FocusPolicy.TabFocus
    assert window.sidebar.accessibleName() == "Pages"
    for widget in window.findChildren(QAbstractButton) + window.findChildren(QLabel):
        text = widget.text().strip()
        iconic = not text or (len(text) == 1 and not text.isalnum())  # an icon or a symbol such as ●
        if iconic and widget.isVisibleTo(window):
            assert widget.accessibleName(), f"{type(widget).__name__} {widget.objectName()!r} has no name"


def test_the_log_file_rotates_under_the_log_folder_and_holds_no_secret(started, tmp_path: Path) -> None:
    from drgui.core.plan.secrets import remember

    remember("hunter2-very-secret")  # what the keyring store does with every secret it reads or writes
    path = setup_logging(tmp_path / "logs")
    assert path == tmp_path / "logs" / "drgui.log"
    assert setup_logging(tmp_path / "logs") == path  # a second call adds no second handler
    log = logging.getLogger("drgui.gui.worker")
    log.error("pg_dump failed for postgresql://app:s3cr3t-in-url@db/app with hunter2-very-secret")
    try:
        raise RuntimeError("boom hunter2-very-secret")
    except RuntimeError:
        log.exception("unexpected")
    for handler in logging.getLogger("drgui").handlers:
        handler.flush()
    text = path.read_text()
    assert "pg_dump failed" in text and "boom" in text
    assert "hunter2-very-secret" not in text and "s3cr3t-in-url" not in text
    assert "postgresql://app:***@db/app" in text
    handler = next(h for h in logging.getLogger("drgui").handlers if isinstance(h, RotatingFileHandler))
    assert handler.maxBytes > 0 and handler.backupCount > 0
    assert "drgui" in str(log_dir())
    actions = [a.text() for a in started.window.menuBar().actions()[-1].menu().actions()]
    assert "Open log folder" in actions


def test_gui_size_option_is_parsed_and_refused_when_bad() -> None:
    from drgui.cli.cmd_gui import parse_size
    from drgui.core.errors import UsageError

    assert parse_size("800x600") == (800, 600)
    for bad in ("800", "x600", "800x", "axb", "0x600"):
        with pytest.raises(UsageError, match="window size"):
            parse_size(bad)


def test_screenshot_at_a_size(qtbot, files_ws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRGUI_LOG_DIR", str(tmp_path / "logs"))
    from PySide6.QtGui import QImage

    from drgui.gui.app import run_app

    png = tmp_path / "shot.png"
    assert run_app(files_ws.home, page="settings", screenshot=png, tray=False, size=(900, 640)) == 0
    image = QImage(str(png))
    assert (image.width(), image.height()) == (900, 640)
    small = tmp_path / "small.png"
    assert run_app(files_ws.home, page="dashboard", screenshot=small, tray=False, size=(640, 480)) == 0
    assert QImage(str(small)).width() == 800  # never below the minimum: nothing cut off


def test_the_restore_tests_page_says_the_schedule_as_settings_does(qtbot, started) -> None:
    page = started.window.pages["drills"]
    started.window.show_page("drills")
    assert "Scheduled: first Sunday of the month, 19:00." in page.about.text()


def test_a_drive_message_in_the_banner_goes_when_the_drive_comes_or_goes(qtbot, started) -> None:
    started.show_drive_message("error", "The .env could not be copied to the drive", "Plug it in again.")
    assert started.window.banner.isVisible()
    started._clear_drive_banner("usb")
    assert not started.window.banner.isVisible()
    started.window.show_problem(OperationFailed("The history could not be read."))
    started._clear_drive_banner("usb")  # another topic: stays
    assert started.window.banner.isVisible()
