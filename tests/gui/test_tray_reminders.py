"""Tray menu, reminders at a simulated Sunday 19:00, snooze, and the no-tray banner fallback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QPushButton

from drgui.gui.app import App
from drgui.gui.reminders import DRILL, WEEKLY, ReminderService
from drgui.gui.tray import Tray

pytestmark = pytest.mark.gui

SUNDAY_1900 = datetime(2026, 11, 22, 19, 0, tzinfo=UTC)  # a Sunday, not the first of the month
FIRST_SUNDAY_1900 = datetime(2026, 12, 6, 19, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def plan_made_in_october(files_ws):
    """The simulated Sundays lie before today: the plan must be older than them to be reminded."""
    files_ws.plan.created = "2026-10-01T00:00:00+00:00"


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make_app(ws, clock: FakeClock, *, tray: bool) -> App:
    reminders = ReminderService(ws, clock=clock, local=UTC)
    return App(ws, tray=tray, reminders=reminders)


def test_tray_menu_has_every_action_and_they_trigger(qtbot, files_ws) -> None:
    app = make_app(files_ws, FakeClock(SUNDAY_1900), tray=False)
    qtbot.addWidget(app.window)
    tray = Tray(app.actions, app.reminders, app.controller)
    texts = [a.text() for a in tray.menu.actions() if not a.isSeparator()]
    assert texts == [
        "Reading the status…",  # the status line first (tests/gui/test_app_complete.py follows it)
        "Back up now",
        "Open drgui",
        "Sync .env to drive",
        "Start restore test",
        "Snooze reminders",
        "Quit",
    ]
    snooze_texts = [a.text() for a in tray.menu.findChild(type(tray.menu), "traySnoozeMenu").actions()]
    assert snooze_texts == ["For 1 hour", "Until tomorrow"]
    for state in ("ok", "due", "running", "failed"):
        tray.set_state(state)
        assert not tray.icon.icon().isNull()

    with qtbot.waitSignal(app.controller.backup_done, timeout=60_000):
        app.actions.backup.trigger()
        assert app.controller.backup_running
        assert not app.actions.backup.isEnabled()
    assert app.actions.backup.isEnabled()

    app.actions.restore_test.trigger()
    assert app.window.current_page == "drills" and app.window.isVisible()
    app.actions.sync_env.trigger()
    assert app.window.current_page == "destinations"
    app.actions.snooze_hour.trigger()
    assert app.reminders.snoozed_until == SUNDAY_1900 + timedelta(hours=1)
    with qtbot.waitSignal(app.actions.quit_requested):
        app.window.findChild(QAction, "actionQuit").trigger()


def test_weekly_review_at_sunday_1900_lists_what_is_due(qtbot, files_ws) -> None:
    clock = FakeClock(SUNDAY_1900 - timedelta(minutes=1))
    service = ReminderService(files_ws, clock=clock, local=UTC)
    assert service.check() == []
    clock.now = SUNDAY_1900
    with qtbot.waitSignal(service.reminder_due) as blocker:
        service.check()
    reminder = blocker.args[0]
    assert reminder.kind == WEEKLY
    text = reminder.text
    assert "never been backed up" in text  # no backup yet: failed or missing backups are listed
    assert "weekly manual exports" in text
    assert service.check() == []  # once per slot


def test_pending_uploads_and_failed_backup_are_in_the_review(qtbot, files_ws) -> None:
    files_ws.history.enqueue("20261122T020000Z-abcdef01", "local", "offline")
    run = files_ws.history.start_run("backup")
    files_ws.history.finish_run(run, "failed", detail={"error": "disk full"})
    service = ReminderService(files_ws, clock=FakeClock(SUNDAY_1900 + timedelta(hours=2)), local=UTC)
    [reminder] = service.check()
    assert "waiting to be uploaded" in reminder.text
    assert "last backup failed" in reminder.text


def test_snooze_one_hour_and_until_tomorrow(qtbot, files_ws) -> None:
    clock = FakeClock(SUNDAY_1900)
    service = ReminderService(files_ws, clock=clock, local=UTC)
    assert len(service.check()) == 1
    service.snooze_hour()
    clock.now += timedelta(minutes=30)
    assert service.check() == []
    clock.now += timedelta(minutes=31)
    assert [r.kind for r in service.check()] == [WEEKLY]
    service.snooze_until_tomorrow()
    assert service.snoozed_until == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    clock.now = datetime(2026, 11, 23, 8, 59, tzinfo=UTC)
    assert service.check() == []
    clock.now = datetime(2026, 11, 23, 9, 1, tzinfo=UTC)
    assert [r.kind for r in service.check()] == [WEEKLY]


def test_first_sunday_brings_the_drill_reminder_that_opens_the_restore_test(qtbot, files_ws) -> None:
    app = make_app(files_ws, FakeClock(FIRST_SUNDAY_1900), tray=False)
    qtbot.addWidget(app.window)
    kinds = [r.kind for r in app.reminders.check()]
    assert kinds == [DRILL, WEEKLY]
    app.reminders.snooze_hour()
    app.reminders.clock.now += timedelta(hours=2)
    app.reminders.shown[WEEKLY] = app.reminders.due()[1].slot  # only the drill one this time
    [drill] = app.reminders.check()
    assert drill.kind == DRILL
    button = app.window.findChild(QPushButton, "reminderStartDrill")
    assert button is not None
    button.click()
    assert app.window.current_page == "drills"


def test_no_tray_fallback_banner_raises_window_and_snoozes(qtbot, files_ws) -> None:
    assert not Tray.available()  # offscreen: no system tray
    clock = FakeClock(SUNDAY_1900 - timedelta(hours=1))
    app = make_app(files_ws, clock, tray=True)
    qtbot.addWidget(app.window)
    assert app.tray is None and app.banner is not None
    assert app.reminders.check() == []
    assert not app.window.isVisible()
    clock.now = SUNDAY_1900
    app.reminders.check()
    assert app.window.isVisible()  # raised at the due time
    assert app.window.banner.isVisible()
    assert "Weekly review" in app.window.banner.text.text()
    app.window.findChild(QPushButton, "reminderOpenChecklist").click()
    assert app.window.current_page == "checklists"
    app.window.findChild(QPushButton, "reminderSnoozeHour").click()
    assert not app.window.banner.isVisible()
    assert app.reminders.snoozed_until == SUNDAY_1900 + timedelta(hours=1)


def test_no_reminder_for_a_slot_before_the_plan_existed(files_ws) -> None:
    files_ws.plan.created = (SUNDAY_1900 + timedelta(hours=1)).isoformat()
    service = ReminderService(files_ws, clock=FakeClock(SUNDAY_1900 + timedelta(hours=2)), local=UTC)
    assert service.check() == []


def test_no_weekly_reminder_once_the_weekly_checklist_was_run(files_ws) -> None:
    run_id = files_ws.history.start_run("checklist", target="weekly-review")
    files_ws.history.finish_run(run_id, "ok")
    now = datetime.now(UTC)
    service = ReminderService(files_ws, clock=FakeClock(now), local=UTC)
    assert all(r.kind != WEEKLY for r in service.check())


def test_notification_buttons_map_to_the_tray_and_banner_slots(qtbot, files_ws) -> None:
    from drgui.gui.notification_requests import reminder_actions

    app = make_app(files_ws, FakeClock(SUNDAY_1900), tray=False)
    qtbot.addWidget(app.window)
    [weekly] = app.reminders.check()  # before the tray exists: no D-Bus notification from a unit test
    tray = Tray(app.actions, app.reminders, app.controller)
    assert [label for _, label in reminder_actions(weekly)][1:] == [
        "Open checklist",
        "Snooze 1 h",
        "Tomorrow",
    ]
    tray.on_notification_action(WEEKLY, "default")
    assert app.window.current_page == "checklists"
    tray.on_notification_action(DRILL, "start-drill")
    assert app.window.current_page == "drills"
    tray.on_notification_action(WEEKLY, "snooze-tomorrow")
    assert app.reminders.snoozed_until == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    tray.on_notification_action(WEEKLY, "snooze-hour")
    assert app.reminders.snoozed_until == SUNDAY_1900 + timedelta(hours=1)
