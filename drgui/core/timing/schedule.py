"""When things are due: recurrence rules, catch-up after sleep, next times (pure: no I/O, no clock).

Rules are RFC 5545 RRULE values (python-dateutil), read as wall-clock times in the user's zone:
"FREQ=DAILY;BYHOUR=2;BYMINUTE=0;BYSECOND=0" is 02:00 local time every day, summer or winter.
"now", the zone and every other moment are parameters; callers get the system zone from
`local_tz()` and the time from their own clock, so tests can drive any scenario.

Daylight-saving rules, decided once here:
- a wall time that does not exist (02:30 on a spring-forward night) runs when the clock has
  jumped past it, 03:30, once;
- a wall time that happens twice (02:30 on a fall-back night) runs the first time only;
- two wall times that land on the same instant (02:00 and 03:00 on a spring-forward night, for
  an hourly rule) run once.

A rule has no DTSTART of its own: every rule is anchored at 2001-01-01 00:00 local time (a
Monday, the first of a month), which is what INTERVAL counts from ("every 6 hours" is 00:00,
06:00, 12:00, 18:00) and where unspecified parts come from ("FREQ=DAILY" is daily at 00:00).
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from dateutil import rrule as _rrule
from dateutil import tz as _tz

from drgui.core.errors import UsageError

PRESETS: dict[str, str] = {
    "backup": "FREQ=DAILY;BYHOUR=2;BYMINUTE=0;BYSECOND=0",  # daily 02:00
    "weekly_review": "FREQ=WEEKLY;BYDAY=SU;BYHOUR=19;BYMINUTE=0;BYSECOND=0",  # Sunday 19:00
    "drill": "FREQ=MONTHLY;BYDAY=1SU;BYHOUR=19;BYMINUTE=0;BYSECOND=0",  # first Sunday 19:00
}

MIN_INTERVAL = timedelta(minutes=15)
"""Rules firing more often than this are refused: the OS timer only looks every 15 minutes."""

DEFAULT_CATCH_UP_DELAY = timedelta(minutes=5)

_EXAMPLE_HINT = f"Use an RFC 5545 rule such as '{PRESETS['backup']}' (every day at 02:00)."

# 2001-01-01 is a Monday and the first day of a month and of a year, so moving the anchor by
# whole periods keeps the parts dateutil fills in from DTSTART (weekday, day, month, 00:00:00).
_EPOCH = datetime(2001, 1, 1)
# 2001 + 19 * 400: the same place in the 400-year Gregorian cycle, close to datetime.MAXYEAR so
# that dateutil gives up quickly on a rule that never matches.
_PROBE_START = datetime(9601, 1, 1)
_PROBE_SAMPLE = 500
_FLOOR = datetime(1971, 1, 1, tzinfo=UTC)
# Offset changes this close to the ends of a range widen the range of wall times searched
# (the largest ever is Samoa skipping a whole day in 2011).
_NEAR = timedelta(hours=26)
_MAX_INTERVAL = 10_000

_FREQ_PERIOD = {
    "YEARLY": timedelta(days=366),
    "MONTHLY": timedelta(days=31),
    "WEEKLY": timedelta(weeks=1),
    "DAILY": timedelta(days=1),
    "HOURLY": timedelta(hours=1),
    "MINUTELY": timedelta(minutes=1),
    "SECONDLY": timedelta(seconds=1),
}
_KNOWN_PARTS = {
    "FREQ",
    "INTERVAL",
    "UNTIL",
    "COUNT",
    "WKST",
    "BYSETPOS",
    "BYMONTH",
    "BYMONTHDAY",
    "BYYEARDAY",
    "BYWEEKNO",
    "BYDAY",
    "BYHOUR",
    "BYMINUTE",
    "BYSECOND",
    "BYEASTER",
}
_UNTIL_RE = re.compile(r"^\d{8}(T\d{6}Z?)?$")
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def local_tz() -> tzinfo:
    """The system's local zone, for callers of the pure functions below."""
    return _tz.tzlocal()


def every_n_hours(n: int) -> str:
    """Rule for "every n hours, on the hour", counted from midnight of 2001-01-01."""
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= _MAX_INTERVAL:
        raise UsageError(
            f"Invalid number of hours {n!r}: it must be a whole number from 1 to {_MAX_INTERVAL}.",
            hint="For example every_n_hours(6) runs at 00:00, 06:00, 12:00 and 18:00.",
        )
    return f"FREQ=HOURLY;INTERVAL={n};BYMINUTE=0;BYSECOND=0" if n > 1 else "FREQ=HOURLY;BYMINUTE=0;BYSECOND=0"


def daily_at(hour: int, minute: int) -> str:
    """Rule for "every day at hour:minute" local time."""
    valid = all(isinstance(v, int) and not isinstance(v, bool) for v in (hour, minute))
    if not valid or not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise UsageError(
            f"Invalid time of day {hour!r}:{minute!r}: the hour must be 0-23 and the minute 0-59.",
            hint="For example daily_at(2, 0) runs every day at 02:00.",
        )
    return f"FREQ=DAILY;BYHOUR={hour};BYMINUTE={minute};BYSECOND=0"


def validate_rule(rule: str) -> str:
    """The rule in normal form, or UsageError naming what is wrong with it.

    Refused besides syntax errors: DTSTART, COUNT (rules here have no start to count from; use
    UNTIL), RDATE/EXDATE/EXRULE, rules firing more often than every 15 minutes, and rules that
    never fire.
    """
    return _parse(rule).text


def next_occurrence(rule: str, after: datetime, tz: tzinfo) -> datetime | None:
    """The first slot strictly after `after`, in `tz`; None when the rule has ended."""
    return _next_slot(_parse(rule), _utc(after, "after"), tz)


def previous_occurrence(rule: str, at_or_before: datetime, tz: tzinfo) -> datetime | None:
    """The latest slot at or before `at_or_before`, in `tz`; None if there was none since 1971."""
    slot = _last_slot(_parse(rule), _FLOOR, _utc(at_or_before, "at_or_before"), tz)
    return slot.astimezone(tz) if slot is not None else None


@dataclass(frozen=True)
class Due:
    """What `evaluate` says about one scheduled job."""

    due: bool
    """Should run now."""
    run_at: datetime | None
    """When it should run: the slot, the catch-up time (wake or start + delay), or the next slot."""
    missed_slot: datetime | None
    """The slot missed while asleep or off, for "missed the run of Sun 02:00"."""
    next_slot: datetime | None
    """The next regular slot after now."""
    reason: str
    """One sentence for the user."""


def evaluate(
    rule: str,
    last_run: datetime | None,
    now: datetime,
    tz: tzinfo,
    *,
    created: datetime | None = None,
    started_at: datetime | None = None,
    woke_at: datetime | None = None,
    catch_up_delay: timedelta = DEFAULT_CATCH_UP_DELAY,
) -> Due:
    """Is the job due at `now`, and if not, when?

    The job is due when a slot passed since `last_run` (the start of the last attempt), or since
    `created` when it never ran; with neither, the first regular slot is waited for. Only the
    latest passed slot counts, so any number of missed slots gives one run. If that slot passed
    while the process was not watching (it started, `started_at`, or the machine woke,
    `woke_at`, after the slot), the run waits until `catch_up_delay` after that moment;
    otherwise it is due at once. `started_at` is when the caller began watching: the tray app's
    start, or the boot time for `drgui run-due`; `woke_at` is the last wake (see WakeDetector).
    Without them a missed slot is due at once.
    """
    now_utc = _utc(now, "now")
    parsed = _parse(rule)
    since = last_run if last_run is not None else created
    next_slot = _next_slot(parsed, now_utc, tz)
    slot = None
    if since is not None:
        slot = _last_slot(parsed, _utc(since, "last_run" if last_run is not None else "created"), now_utc, tz)
    if slot is None:
        if next_slot is None:
            return Due(False, None, None, None, "The schedule has no further runs.")
        return Due(False, next_slot, None, next_slot, f"Next run {_describe(next_slot, now_utc, tz)}.")

    interruptions = [
        (_utc(moment, name), why)
        for moment, name, why in (
            (started_at, "started_at", "drgui was not running"),
            (woke_at, "woke_at", "the computer was asleep"),
        )
        if moment is not None
    ]
    interruptions = [(moment, why) for moment, why in interruptions if moment > slot]
    slot_text = _describe(slot, now_utc, tz)
    if not interruptions:
        return Due(True, slot.astimezone(tz), None, next_slot, f"The run of {slot_text} is due.")

    resumed, why = max(interruptions)
    run_at = resumed + catch_up_delay
    missed = f"Missed the run of {slot_text} while {why}"
    if now_utc >= run_at:
        return Due(True, run_at.astimezone(tz), slot.astimezone(tz), next_slot, f"{missed}; running it now.")
    if next_slot is not None and next_slot <= run_at:
        covered = f"{missed}; the regular run at {_describe(next_slot, now_utc, tz)} covers it."
        return Due(False, next_slot, slot.astimezone(tz), next_slot, covered)
    catch_up = _describe(run_at, now_utc, tz)
    return Due(
        False, run_at.astimezone(tz), slot.astimezone(tz), next_slot, f"{missed}; catching up at {catch_up}."
    )


def next_times(
    rules: Mapping[str, str],
    last_runs: Mapping[str, datetime | None],
    now: datetime,
    tz: tzinfo,
) -> dict[str, datetime | None]:
    """When each job runs next, for `drgui status` (keys "backup", "weekly_review", "drill").

    A time at or before `now` means overdue since that slot; None means the rule has ended.
    """
    return {name: evaluate(rule, last_runs.get(name), now, tz).run_at for name, rule in rules.items()}


class WakeDetector:
    """Notices sleep: fed (monotonic, wall) pairs, it reports when wall time ran ahead.

    Monotonic clocks stop while the machine is suspended (Linux CLOCK_MONOTONIC, macOS), the wall
    clock does not; a gap between the two larger than `threshold` since the previous observation
    means the machine slept, and the observation that sees it is taken as the wake time. Pass
    aware wall times (naive local times would see a DST change as a wake). A clock set forward by
    hand looks like a wake too, which only delays a catch-up by a few minutes.
    """

    def __init__(self, threshold: timedelta = timedelta(seconds=120)) -> None:
        self.threshold = threshold
        self.last_wake: datetime | None = None
        self._previous: tuple[float, datetime] | None = None

    def observe(self, monotonic: float, wall: datetime) -> datetime | None:
        """Record one observation; the wake time if the machine slept since the previous one."""
        # In UTC: Python subtracts two times of the same zone by wall clock, ignoring DST.
        instant = wall.astimezone(UTC) if wall.tzinfo is not None else wall
        previous, self._previous = self._previous, (monotonic, instant)
        if previous is None:
            return None
        ran_ahead = (instant - previous[1]) - timedelta(seconds=monotonic - previous[0])
        if ran_ahead <= self.threshold:
            return None
        self.last_wake = wall
        return wall


# --- parsing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Parsed:
    text: str
    freq: str
    interval: int
    has_until: bool
    rrule: _rrule.rrule


def _refuse(rule: str, detail: str) -> UsageError:
    return UsageError(f"Invalid schedule rule {rule!r}: {detail}.", hint=_EXAMPLE_HINT)


@functools.lru_cache(maxsize=256)
def _parse(rule: str) -> _Parsed:
    if not isinstance(rule, str) or not rule.strip():
        raise _refuse(str(rule), "it is empty")
    text = re.sub(r"\s+", "", rule).upper()
    if "\n" in rule.strip() or text.startswith(("DTSTART", "RDATE", "EXDATE", "EXRULE")):
        raise _refuse(rule, "give only the RRULE value (DTSTART, RDATE, EXDATE and EXRULE are not supported)")
    text = text.removeprefix("RRULE:").strip(";")
    parts = _split_parts(rule, text)
    try:
        parsed = _rrule.rrulestr(text, dtstart=_EPOCH, ignoretz=True)
    except (ValueError, TypeError, KeyError, IndexError) as err:
        raise _refuse(rule, str(err) or type(err).__name__) from None
    if not isinstance(parsed, _rrule.rrule):  # pragma: no cover - a single RRULE gives an rrule
        raise _refuse(rule, "give a single recurrence rule")
    normal = str(parsed).split("\n")[-1].removeprefix("RRULE:")
    normal = re.sub(r"(?<=[=,])\+(?=\d)", "", normal)  # dateutil writes BYDAY=+1SU; RFC 5545 allows 1SU
    result = _Parsed(normal, parts["FREQ"], int(parts.get("INTERVAL", "1")), "UNTIL" in parts, parsed)
    _check_frequency(rule, result)
    return result


def _split_parts(rule: str, text: str) -> dict[str, str]:
    parts: dict[str, str] = {}
    for item in text.split(";"):
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise _refuse(rule, f"{item!r} is not of the form NAME=VALUE")
        if name not in _KNOWN_PARTS:
            raise _refuse(rule, f"unknown part {name}")
        if name in parts:
            raise _refuse(rule, f"{name} is given twice")
        parts[name] = value
    if "FREQ" not in parts:
        raise _refuse(rule, "FREQ is missing")
    if parts["FREQ"] not in _FREQ_PERIOD:
        raise _refuse(rule, f"FREQ must be one of {', '.join(_FREQ_PERIOD)}")
    if "COUNT" in parts:
        raise _refuse(rule, "COUNT is not supported (the schedule has no start to count from); use UNTIL")
    interval = parts.get("INTERVAL", "1")
    if not interval.isdigit() or not 1 <= int(interval) <= _MAX_INTERVAL:
        raise _refuse(rule, f"INTERVAL must be a whole number from 1 to {_MAX_INTERVAL}")
    if "UNTIL" in parts and not _UNTIL_RE.match(parts["UNTIL"]):
        raise _refuse(rule, "UNTIL must look like 20301231 or 20301231T235959")
    return parts


def _check_frequency(rule: str, parsed: _Parsed) -> None:
    """Refuse rules that never fire or fire more often than MIN_INTERVAL."""
    # The probe drops UNTIL: an impossible rule (30 February) runs dateutil up to MAXYEAR, which
    # from the probe start is one 400-year cycle, a fraction of a second.
    probe = parsed.rrule.replace(dtstart=_PROBE_START, until=None)
    sample = list(itertools.islice(probe, _PROBE_SAMPLE))
    if not sample:
        raise _refuse(rule, "it never fires")
    if parsed.has_until and parsed.rrule.replace(dtstart=_EPOCH).after(_EPOCH, inc=True) is None:
        raise _refuse(rule, "it never fires (UNTIL is before the first run)")
    gaps = [later - earlier for earlier, later in itertools.pairwise(sample)]
    if gaps and min(gaps) < MIN_INTERVAL:
        raise _refuse(rule, f"it fires every {_format_gap(min(gaps))}; the minimum is every 15 minutes")


def _format_gap(gap: timedelta) -> str:
    seconds = int(gap.total_seconds())
    return f"{seconds // 60} minutes" if seconds >= 60 else f"{seconds} seconds"


# --- slots ---------------------------------------------------------------------------------


def _utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {moment!r}")
    return moment.astimezone(UTC)


def _wall(moment: datetime, tz: tzinfo) -> datetime:
    return moment.astimezone(tz).replace(tzinfo=None)


def _instant(wall: datetime, tz: tzinfo) -> datetime:
    """The instant a wall time stands for: the first of a repeated hour, a skipped one shifted."""
    instant = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) == wall:
        return instant
    return _tz.resolve_imaginary(wall.replace(tzinfo=tz, fold=0)).astimezone(UTC)


def _margin(start: datetime, end: datetime, tz: tzinfo) -> timedelta:
    """How far the wall times of slots in [start, end] can stray from the walls of start and end.

    A slot's wall time is its instant plus the zone's offset at (or just before) that instant, so
    only offset changes near the two ends matter; the hour on top is headroom.
    """
    moments = [moment + shift for moment in (start, end) for shift in (-_NEAR, timedelta(0), _NEAR)]
    offsets = [moment.astimezone(tz).utcoffset() or timedelta(0) for moment in moments]
    return max(offsets) - min(offsets) + timedelta(hours=1)


def _anchored(parsed: _Parsed, wall: datetime) -> _rrule.rrule:
    """The rule restarted a whole number of periods (and at least one) before `wall`."""
    if parsed.freq in ("YEARLY", "MONTHLY"):
        step = parsed.interval * (12 if parsed.freq == "YEARLY" else 1)
        months = (wall.year - _EPOCH.year) * 12 + wall.month - 1
        start = (months // step - 1) * step
        anchor = datetime(_EPOCH.year + start // 12, start % 12 + 1, 1)
    else:
        step_delta = _FREQ_PERIOD[parsed.freq] * parsed.interval
        anchor = _EPOCH + ((wall - _EPOCH) // step_delta - 1) * step_delta
    return parsed.rrule.replace(dtstart=anchor)


def _window(parsed: _Parsed) -> timedelta:
    return max(_FREQ_PERIOD[parsed.freq] * parsed.interval * 2, timedelta(hours=1))


def _slots_between(parsed: _Parsed, start: datetime, end: datetime, tz: tzinfo) -> list[datetime]:
    """Slots s with start < s <= end (UTC instants), sorted, each once."""
    margin = _margin(start, end, tz)
    low = _wall(start, tz) - margin
    high = _wall(end, tz) + margin
    found = set()
    for wall in _anchored(parsed, low).xafter(low, inc=True):
        if wall > high:
            break
        instant = _instant(wall, tz)
        if start < instant <= end:
            found.add(instant)
    return sorted(found)


def _next_slot(parsed: _Parsed, after: datetime, tz: tzinfo) -> datetime | None:
    width = _window(parsed)
    end = after + width
    while True:
        slots = _slots_between(parsed, after, end, tz)
        if slots:
            return slots[0].astimezone(tz)
        # Jump ahead to the next wall time that could still be a slot; none means the rule ended.
        upcoming = _anchored(parsed, _wall(end, tz)).after(_wall(end, tz) - _margin(end, end, tz))
        if upcoming is None:
            return None
        width *= 2
        end = max(end + width, _instant(upcoming, tz))


def _last_slot(parsed: _Parsed, floor: datetime, now: datetime, tz: tzinfo) -> datetime | None:
    """The latest slot s with floor < s <= now (UTC), searching back from now."""
    if now <= floor:
        return None
    width = _window(parsed)
    while True:
        start = max(floor, now - width)
        slots = _slots_between(parsed, start, now, tz)
        if slots:
            return slots[-1]
        if start == floor:
            return None
        width *= 4


def _describe(moment: datetime, now: datetime, tz: tzinfo) -> str:
    """'Sun 02:00' within six days of now, 'Sun 29 Mar 2026 02:00' otherwise (English, no locale)."""
    local = moment.astimezone(tz)
    clock = f"{local.hour:02d}:{local.minute:02d}"
    day = _WEEKDAYS[local.weekday()]
    if abs(moment - now) < timedelta(days=6):
        return f"{day} {clock}"
    return f"{day} {local.day} {_MONTHS[local.month - 1]} {local.year} {clock}"


def iter_slots(rule: str, after: datetime, tz: tzinfo) -> Iterator[datetime]:
    """Slots strictly after `after`, in order (for previews such as "the next 5 runs")."""
    parsed = _parse(rule)
    current = _utc(after, "after")
    while (slot := _next_slot(parsed, current, tz)) is not None:
        yield slot
        current = slot.astimezone(UTC)


QUIET_HOUR = 3
"""When the unattended restore test runs on a drill day: after the 02:00 backup, before anyone works."""


def at_quiet_hour(rule: str, hour: int = QUIET_HOUR) -> str:
    """The same days as `rule`, at `hour`:00 local time: where the unattended drill of a drill rule goes
    ("first Sunday 19:00" gives "first Sunday 03:00", so the evening reminder finds its result)."""
    parsed = _parse(rule)
    if parsed.freq not in ("YEARLY", "MONTHLY", "WEEKLY", "DAILY"):
        return parsed.text  # an hourly rule has no day to move within: run at its own slots
    parts = dict(item.partition("=")[::2] for item in parsed.text.split(";"))
    parts.update(BYHOUR=str(hour), BYMINUTE="0", BYSECOND="0")
    return validate_rule(";".join(f"{name}={value}" for name, value in parts.items()))
