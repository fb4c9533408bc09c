"""Sunday-evening review and first-Sunday restore-test reminders, with snooze; the clock is injectable.

The rules are the plan's RFC 5545 schedule (`weekly_review`, `drill`). A slot that passed while the app
was not running is shown once when it starts (within a week), not once per missed slot.

Test hooks (read only when set; the end-to-end tests use them): `DRGUI_FAKE_NOW=ISO-8601 time` starts
the default clock at that time (it then advances with the real one); `DRGUI_DEBUG_STATE_FILE=PATH`
makes the running app write its state as JSON there (see drgui.gui.debug_state).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo

from dateutil import tz as dateutil_tz
from PySide6.QtCore import QObject, QTimer, Signal, Slot

from drgui.core.ops.runstatus import VERDICT
from drgui.core.ops.status import DRIVE_SYNC_MAX_AGE_DAYS, Status, compute_status
from drgui.core.ops.unattended import reminder_lines
from drgui.core.plan.config import DEFAULT_SCHEDULE
from drgui.core.plan.workspace import Workspace
from drgui.core.timing.clock import parse_iso, parse_iso_or_none
from drgui.core.timing.schedule import previous_occurrence
from drgui.gui.debug_state import install_from_env

Clock = Callable[[], datetime]
CATCH_UP = timedelta(days=6)
WEEKLY = "weekly_review"
DRILL = "drill"
FAKE_NOW_ENV = "DRGUI_FAKE_NOW"


def system_clock() -> datetime:
    return datetime.now(UTC)


def fake_clock(start: datetime) -> Clock:
    """A clock that reads `start` now and then advances with real time (test hook)."""
    origin = time.monotonic()

    def now() -> datetime:
        return start + timedelta(seconds=time.monotonic() - origin)

    return now


def default_clock() -> Clock:
    """The system clock, or the fake one when $DRGUI_FAKE_NOW is set (an aware ISO-8601 time)."""
    fake = os.environ.get(FAKE_NOW_ENV)
    if not fake:
        return system_clock
    return fake_clock(parse_iso(fake))


@dataclass
class Reminder:
    kind: str  # weekly_review | drill
    slot: datetime  # the scheduled time this reminder is for (aware)
    title: str
    lines: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(f"• {line}" for line in self.lines)


def last_slot(rule_text: str, now: datetime, local: tzinfo) -> datetime | None:
    """The latest occurrence of `rule_text` at or before `now`, interpreted in `local` time."""
    return previous_occurrence(rule_text, now, local)


def weekly_review_lines(status: Status | None, now: datetime) -> list[str]:
    """What the Sunday review asks the founder to look at, from the plan's status."""
    lines: list[str] = []
    if status is not None:
        for source in status.sources:
            if source.rpo_state == "never":
                lines.append(f"Source '{source.name}' has never been backed up.")
            elif source.rpo_state == "overdue":
                lines.append(f"Source '{source.name}' has no backup within the RPO.")
        if status.last_backup and status.last_backup.get("status") in ("failed", "interrupted"):
            lines.append("The last backup failed: open drgui to see why, then Back up now.")
        if status.queue:
            lines.append(f"{len(status.queue)} snapshot copy(ies) still waiting to be uploaded.")
        sync = status.drive_sync
        has_drive = any(d.kind == "drive" for d in status.destinations)
        age = sync["age_seconds"] if sync else None
        if age and age > DRIVE_SYNC_MAX_AGE_DAYS * 86400:
            lines.append(f"The .env was last copied to the drive {int(age // 86400)} days ago.")
        elif has_drive and not sync:
            lines.append("The .env has never been copied to the drive: plug it in and sync.")
    lines.append("Do the weekly manual exports (the weekly checklist).")
    return lines


class ReminderService(QObject):
    """Checks every minute; emits `reminder_due` once per slot unless snoozed or acknowledged."""

    reminder_due = Signal(object)  # Reminder
    snoozed = Signal(object)  # datetime until

    def __init__(
        self,
        ws: Workspace,
        *,
        clock: Clock | None = None,
        local: tzinfo | None = None,
        status: Callable[[], Status | None] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.ws = ws
        self.clock = clock or default_clock()
        self.local = local or dateutil_tz.tzlocal()
        self._status = status
        self.snoozed_until: datetime | None = None
        self.shown: dict[str, datetime] = {}  # kind -> slot already shown
        self.pending: list[Reminder] = []
        self.timer = QTimer(self)
        self.timer.setInterval(60_000)
        self.timer.timeout.connect(self.check)

    def start(self) -> None:
        self.timer.start()
        QTimer.singleShot(0, self.check)
        install_from_env(self)  # test hook, inert unless $DRGUI_DEBUG_STATE_FILE is set

    def current_status(self) -> Status | None:
        return self._status() if self._status else compute_status(self.ws, self.clock())

    def due(self) -> list[Reminder]:
        """Reminders whose slot has passed (within a week), not yet shown; ignores snoozing."""
        now = self.clock()
        found: list[Reminder] = []
        schedule = {**DEFAULT_SCHEDULE, **self.ws.plan.schedule}
        for kind in (DRILL, WEEKLY):
            slot = last_slot(schedule[kind], now, self.local)
            if slot is None or now - slot > CATCH_UP or self.shown.get(kind) == slot:
                continue
            if self._handled_since(kind, slot):
                continue
            if kind == DRILL:
                found.append(
                    Reminder(
                        DRILL,
                        slot,
                        "Monthly restore test",
                        # After an unattended drill, only its manual part is asked for.
                        reminder_lines(self.ws, self.local)
                        or [
                            "A backup is only proven by a restore. Start the restore test: it restores the latest "
                            "snapshot into a scratch database, checks it and measures your RTO."
                        ],
                    )
                )
            else:
                found.append(
                    Reminder(WEEKLY, slot, "Weekly review", weekly_review_lines(self.current_status(), now))
                )
        return found

    def _handled_since(self, kind: str, slot: datetime) -> bool:
        """The plan did not exist yet at that slot, or the review or drill was done after it."""
        created = parse_iso_or_none(self.ws.plan.created)
        if created and created > slot:
            return True
        if kind == DRILL:
            runs = [r for r in self.ws.history.runs("drill", limit=20) if r.status in VERDICT]
        else:
            runs = [r for r in self.ws.history.runs("checklist", limit=50) if r.target == "weekly-review"]
        return any(r.started_at >= slot for r in runs)

    @Slot()
    def check(self) -> list[Reminder]:
        now = self.clock()
        if self.snoozed_until and now < self.snoozed_until:
            return []
        self.snoozed_until = None
        fresh = self.due()
        for reminder in fresh:
            self.shown[reminder.kind] = reminder.slot
            self.pending = [r for r in self.pending if r.kind != reminder.kind] + [reminder]
            self.reminder_due.emit(reminder)
        return fresh

    @Slot()
    def preview_weekly(self) -> Reminder:
        """The Sunday reminder as it would read now (Settings → Preview reminder); nothing is recorded."""
        now = self.clock()
        reminder = Reminder(WEEKLY, now, "Weekly review", weekly_review_lines(self.current_status(), now))
        self.reminder_due.emit(reminder)
        return reminder

    @Slot()
    def snooze_hour(self) -> None:
        self.snooze(self.clock() + timedelta(hours=1))

    @Slot()
    def snooze_until_tomorrow(self) -> None:
        local_now = self.clock().astimezone(self.local)
        tomorrow = (local_now + timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0)
        self.snooze(tomorrow)

    def snooze(self, until: datetime) -> None:
        """Hide pending reminders until `until`; they come back then."""
        self.snoozed_until = until
        for reminder in self.pending:
            self.shown.pop(reminder.kind, None)
        self.pending = []
        self.snoozed.emit(until)

    def acknowledge(self, kind: str) -> None:
        self.pending = [r for r in self.pending if r.kind != kind]
