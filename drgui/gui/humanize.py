"""Human times and sizes for the GUI: "2 hours ago", "Sun 6 Dec 19:00", "1.2 GB", "1d".

Sizes, durations and schedule rules come from `drgui.core.fmt`, the formatter the CLI and the reports
use too: one notation everywhere ("RPO 1d" on the dashboard, in Settings and in `drgui status`)."""

from __future__ import annotations

from datetime import UTC, datetime

from drgui.core import fmt


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    if moment is None:
        return "never"
    now = now or datetime.now(UTC)
    seconds = (now - moment).total_seconds()
    if seconds < 0:
        return "just now" if seconds > -60 else "in the future"
    if seconds < 60:
        return "just now"
    for size, unit in (
        (86400 * 365, "year"),
        (86400 * 30, "month"),
        (86400 * 7, "week"),
        (86400, "day"),
        (3600, "hour"),
        (60, "minute"),
    ):
        if seconds >= size:
            count = int(seconds // size)
            if unit == "day" and count == 1:
                return "yesterday"
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "just now"


def when(moment: datetime | None, now: datetime | None = None) -> str:
    """A future time: "today 19:00", "tomorrow 02:00", "Sun 6 Dec 19:00" (a weekday alone would not say
    which week: a monthly restore test is not "Sun 19:00")."""
    if moment is None:
        return "not scheduled"
    now = now or datetime.now(UTC)
    local = moment.astimezone()
    today = now.astimezone().date()
    days = (local.date() - today).days
    clock = local.strftime("%H:%M")
    if days == 0:
        return f"today {clock}"
    if days == 1:
        return f"tomorrow {clock}"
    year = f" {local.year}" if local.year != now.astimezone().year and days > 300 else ""
    return f"{local.strftime('%a')} {local.day} {local.strftime('%b')}{year} {clock}"


def scheduled(rule: str | None, moment: datetime | None, now: datetime | None = None) -> str:
    """A schedule and its next run: "first Sunday of the month, 19:00 (next: Sun 6 Dec 19:00)"."""
    if not rule:
        return when(moment, now)
    described = fmt.describe_rule(rule)
    return f"{described} (next: {when(moment, now)})" if moment is not None else described


def duration(seconds: float | None) -> str:
    """86400 -> "1d", 5400 -> "1h 30m": `drgui.core.fmt.duration`, the notation Settings accepts."""
    return fmt.duration(seconds)


def size(count: float | None) -> str:
    """1234567 -> "1.2 MB": `drgui.core.fmt.size`, as the CLI prints it."""
    return fmt.size(count)


def plural(count: int, word: str) -> str:
    """plural(1, "check") -> "1 check"; plural(3, "check") -> "3 checks"."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
