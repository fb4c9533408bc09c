"""Human sizes, durations and schedule descriptions: the one formatter the CLI, the GUI and the reports share.

No Qt here: `drgui.cli.output` and `drgui.gui.humanize` both import it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from drgui.core.plan.config import format_duration

__all__ = ["describe_rule", "duration", "size"]

_DAYS = {"MO": "Monday", "TU": "Tuesday", "WE": "Wednesday", "TH": "Thursday", "FR": "Friday",
         "SA": "Saturday", "SU": "Sunday"}  # fmt: skip
_ORDINALS = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", -1: "last"}


def size(count: float | None) -> str:
    """1234567 -> '1.2 MB' (decimal units, as disks and S3 consoles count); None or negative -> 'n/a'."""
    if count is None or count < 0:
        return "n/a"
    value = float(count)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover (the loop returns at TB)


def duration(seconds: float | None) -> str:
    """86400 -> '1d', 5400 -> '1h 30m', 42 -> '42s': the notation Settings and the CLI accept as input too."""
    return "n/a" if seconds is None else format_duration(seconds)


def describe_rule(rule: str) -> str:
    """An RFC 5545 rule in words: 'every day, 02:00', 'every Sunday, 19:00', 'first Sunday of the month,
    19:00', 'every 6 hours'. A rule it cannot put in words is returned as it is."""
    parts = dict(p.split("=", 1) for p in re.sub(r"\s+", "", rule).upper().split(";") if "=" in p)
    freq = parts.get("FREQ")
    interval_text = parts.get("INTERVAL", "1")
    if not interval_text.isdigit():
        return rule
    interval = int(interval_text)
    clock = _clock(parts)
    days = [d for d in parts.get("BYDAY", "").split(",") if d]
    known = {"FREQ", "INTERVAL", "BYHOUR", "BYMINUTE", "BYSECOND", "BYDAY"}
    if set(parts) - known or clock is None:
        return rule
    if freq == "HOURLY" and not days:
        return "every hour" if interval == 1 else f"every {interval} hours"
    if freq == "DAILY" and not days:
        return f"every day, {clock}" if interval == 1 else f"every {interval} days, {clock}"
    if freq == "WEEKLY" and days and all(d in _DAYS for d in days) and interval == 1:
        return f"every {_and(_DAYS[d] for d in days)}, {clock}"
    if freq == "MONTHLY" and len(days) == 1 and interval == 1:
        match = re.fullmatch(r"([+-]?\d)(MO|TU|WE|TH|FR|SA|SU)", days[0])
        if match and int(match.group(1)) in _ORDINALS:
            return f"{_ORDINALS[int(match.group(1))]} {_DAYS[match.group(2)]} of the month, {clock}"
    return rule


def _clock(parts: dict[str, str]) -> str | None:
    hours = [h for h in parts.get("BYHOUR", "").split(",") if h]
    minutes = [m for m in parts.get("BYMINUTE", "0").split(",") if m]
    if not all(x.isdigit() for x in hours + minutes) or len(minutes) != 1:
        return None
    if not hours:
        return "" if parts.get("FREQ") == "HOURLY" else None
    return _and(f"{int(h):02d}:{int(minutes[0]):02d}" for h in hours)


def _and(parts: Iterable[str]) -> str:
    items = list(parts)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
