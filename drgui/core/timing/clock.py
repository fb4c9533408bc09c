"""Times at the edge: the one parser and the one formatter of ISO 8601 times.

Inside drgui a time is an aware `datetime`; it is an ISO 8601 string only in files (config.toml,
history.sqlite, index.json, drill reports) and in `--json`. Every place that reads such a string calls
`parse_iso` (or `parse_iso_or_none` where the value may be absent), every place that writes one calls
`format_iso`.

A time written without an offset is read as UTC. drgui has always written aware times (UTC, or local time
with its offset), so a naive one can only come from a hand-edited file or an outside tool, and UTC is what
drgui itself writes: reading it so keeps comparisons with aware times possible instead of raising
`TypeError` deep inside a status or reminder check.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

__all__ = ["format_iso", "now", "parse_iso", "parse_iso_or_none"]


def parse_iso(text: str, naive: tzinfo = UTC) -> datetime:
    """'2026-03-01T02:00:00+00:00' -> an aware datetime; no offset -> `naive` (UTC for what drgui wrote, the
    local zone for what a person typed, e.g. `run-due --at`); not a time -> ValueError naming it."""
    if not isinstance(text, str):
        raise ValueError(
            f"{text!r} is not an ISO 8601 time (expected text such as 2026-03-01T02:00:00+00:00)"
        )
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO 8601 time (expected text such as 2026-03-01T02:00:00+00:00)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=naive)


def parse_iso_or_none(text: str | None) -> datetime | None:
    """`parse_iso`, with None or "" (a time never recorded) read as None."""
    return parse_iso(text) if text else None


def format_iso(moment: datetime, timespec: str = "auto") -> str:
    """An aware datetime -> ISO 8601 text with its offset; a naive one is a programming error."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment!r} has no timezone; drgui writes aware times only")
    return moment.isoformat(timespec=timespec)


def now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)
