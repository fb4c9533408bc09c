"""Human times and sizes for the GUI: "2 hours ago", "Sun 6 Dec 19:00", "1.2 GB", "1d".

Sizes, durations and schedule rules come from `drgui.core.fmt`, the formatter the CLI and the reports
use too: one notation everywhere ("RPO 1d" on the dashboard, in Settings and in `drgui status`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from drgui.core import fmt
from drgui.core.timing.clock import parse_iso_or_none
from drgui.core.timing.schedule import PRESETS


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
    return f"{day(moment, now)} {moment.astimezone().strftime('%H:%M')}"


def day(moment: datetime, now: datetime | None = None) -> str:
    """The day of a future time: "today", "tomorrow", "Sun 6 Dec" (and the year when it is not this one)."""
    now = now or datetime.now(UTC)
    local = moment.astimezone()
    days = (local.date() - now.astimezone().date()).days
    if days == 0:
        return "today"
    if days == 1:
        return "tomorrow"
    year = f" {local.year}" if local.year != now.astimezone().year and days > 300 else ""
    return f"{local.strftime('%a')} {local.day} {local.strftime('%b')}{year}"


def scheduled(rule: str | None, moment: datetime | None, now: datetime | None = None) -> str:
    """A schedule in Settings' words and its next run: "first Sunday of the month, 19:00 · next Sun 6 Dec"
    (the clock is said once when the next run keeps the rule's time)."""
    if not rule:
        return when(moment, now)
    described = fmt.describe_rule(rule)
    if moment is None:
        return described
    clock = moment.astimezone().strftime("%H:%M")
    upcoming = day(moment, now) if described.endswith(clock) else when(moment, now)
    return f"{described} · next {upcoming}"


def next_run(rules: Mapping[str, str], key: str, moment: datetime | None, now: datetime | None = None) -> str:
    """The plan's schedule `key` ("backup", "weekly_review", "drill"; its preset when the plan has no rule)
    and its next run, as Settings words it: "first Sunday of the month, 19:00 · next Sun 6 Dec"."""
    return scheduled(rules.get(key, PRESETS.get(key)), moment, now)


def duration(seconds: float | None) -> str:
    """86400 -> "1d", 5400 -> "1h 30m": `drgui.core.fmt.duration`, the notation Settings accepts."""
    return fmt.duration(seconds)


def size(count: float | None) -> str:
    """1234567 -> "1.2 MB": `drgui.core.fmt.size`, as the CLI prints it."""
    return fmt.size(count)


def plural(count: int, word: str) -> str:
    """plural(1, "check") -> "1 check"; plural(3, "check") -> "3 checks"."""
    return f"{count} {word}{'' if count == 1 else 's'}"


# The pages read stored times through the one parser (`drgui.core.timing.clock`; no offset: UTC).
parse_iso = parse_iso_or_none
