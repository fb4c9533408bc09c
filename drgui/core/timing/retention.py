"""Retention: which snapshots a destination keeps, reproducing restic's ``forget`` policy exactly.

This is restic's ``ApplyPolicy`` (``internal/data/snapshot_policy.go``, restic >= 0.16) without tags,
host/path grouping and ``--keep-unique``:

* Snapshots are sorted newest first by instant; the sort is stable, so snapshots with the same instant
  keep their input order.
* Each count rule (``last``, ``hourly``, ``daily``, ``weekly``, ``monthly``, ``yearly``) walks that list
  and keeps a snapshot whenever its bucket differs from the bucket of the last snapshot the rule kept,
  until the count is used up (-1: never used up).  So each bucket keeps its newest snapshot.  Buckets are
  the snapshot's own wall clock in its own timezone: hour, day, ISO week, month, year.  ``last`` gives
  every snapshot its own bucket.
* While a rule still has counts left, it also keeps the oldest snapshot ("oldest daily snapshot") even
  if that snapshot shares a bucket with a newer kept one: this keeps the longest history.
* ``within`` keeps every snapshot newer than the reference time minus the duration; ``within_hourly``
  and friends keep the newest snapshot of each bucket among those snapshots (and the oldest one, if it
  is in range).  The reference is the newest snapshot, not the clock.  Restic skips snapshots dated in
  the future when it picks that reference; pass ``now`` to :func:`plan` to get the same.
* Rules are ORed; a kept snapshot carries one reason per rule that kept it, worded as restic does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta, tzinfo
from types import MappingProxyType

from drgui.core.errors import UsageError

__all__ = [
    "DEFAULT_POLICIES",
    "Duration",
    "Keep",
    "Policy",
    "RetentionPlan",
    "parse_retention_span",
    "plan",
]

_DURATION_HINT = (
    "write a duration as numbers with units, e.g. '1y2m3d3h' (y = years, m = months, d = days, h = hours)"
)
# Go's time.Duration holds at most this many hours; restic silently overflows beyond it, we refuse.
_MAX_DURATION_NUMBER = 2_562_047

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_US_PER_HOUR = 3_600_000_000
_US_PER_DAY = 24 * _US_PER_HOUR


def _refuse_interval_units(text: str) -> None:
    """'30min', '90s', '2w': units of a time interval, which a retention span does not have."""
    match = re.search(r"\d\s*(min(?:ute)?s?|s(?:ec(?:ond)?s?)?|w(?:eeks?)?)(?![a-z])", text.strip())
    if match is None:
        return
    unit = match.group(1)
    meaning = "minutes" if unit.startswith("m") else "seconds" if unit.startswith("s") else "weeks"
    raise UsageError(
        f"invalid duration {text!r}: {unit!r} ({meaning}) is a time-interval unit; a retention span counts in "
        "y, m (months, not minutes), d and h",
        hint=_DURATION_HINT + (" (for weeks, write days: 2w is 14d)" if meaning == "weeks" else ""),
    )


@dataclass(frozen=True)
class Duration:
    """restic's calendar duration: applied as years, months and days on the wall clock, then hours."""

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0

    def is_zero(self) -> bool:
        return self.years == 0 and self.months == 0 and self.days == 0 and self.hours == 0

    def has_negative(self) -> bool:
        return self.years < 0 or self.months < 0 or self.days < 0 or self.hours < 0

    def __str__(self) -> str:
        """restic's wording: '1y2m3d3h', zero parts left out (so '1y1d1m' prints as '1y1m1d')."""
        parts = zip((self.years, self.months, self.days, self.hours), "ymdh", strict=True)
        return "".join(f"{number}{unit}" for number, unit in parts if number != 0)


def parse_retention_span(text: str) -> Duration:
    """Parse restic's duration syntax for `within*` rules: numbers with units y, m, d, h, in any order,
    e.g. '1y2m3d3h'. Here m means months: a time interval's units (s, m = minutes, w; `plan.config.
    parse_interval`) and spelled-out minutes are refused by name rather than read as something else.

    Like restic: surrounding whitespace is ignored, "" is the zero duration, a number may be negative,
    and a unit given twice keeps the last value.
    """
    if not isinstance(text, str):
        raise UsageError(f"invalid duration {text!r}: expected a string", hint=_DURATION_HINT)
    _refuse_interval_units(text)
    rest = text.strip()
    values = {"y": 0, "m": 0, "d": 0, "h": 0}
    while rest:
        sign = -1 if rest[0] == "-" else 1
        if sign < 0:
            rest = rest[1:]
        digits_end = 0
        while digits_end < len(rest) and rest[digits_end] in "0123456789":
            digits_end += 1
        if digits_end == 0:
            raise UsageError(f"invalid duration {text!r}: no number found at {rest!r}", hint=_DURATION_HINT)
        number = sign * int(rest[:digits_end])
        rest = rest[digits_end:]
        if not rest:
            raise UsageError(f"invalid duration {text!r}: no unit after number {number}", hint=_DURATION_HINT)
        if rest[0] not in values:
            raise UsageError(
                f"invalid duration {text!r}: unknown unit {rest[0]!r} after number {number}",
                hint=_DURATION_HINT,
            )
        if abs(number) > _MAX_DURATION_NUMBER:
            raise UsageError(
                f"invalid duration {text!r}: {number} is too large (at most {_MAX_DURATION_NUMBER})",
                hint=_DURATION_HINT,
            )
        values[rest[0]] = number
        rest = rest[1:]
    return Duration(years=values["y"], months=values["m"], days=values["d"], hours=values["h"])


COUNT_FIELDS = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
WITHIN_FIELDS = (
    "within",
    "within_hourly",
    "within_daily",
    "within_weekly",
    "within_monthly",
    "within_yearly",
)


@dataclass(frozen=True)
class Policy:
    """A destination's retention policy, restic's ``--keep-*`` options.

    Counts: 0 turns the rule off, -1 keeps every bucket (restic's 'unlimited').  Durations use restic's
    syntax ('1y2m3d3h'); "" turns the rule off.  Invalid values raise UsageError.
    """

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within: str = ""
    within_hourly: str = ""
    within_daily: str = ""
    within_weekly: str = ""
    within_monthly: str = ""
    within_yearly: str = ""

    def __post_init__(self) -> None:
        for name in COUNT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < -1:
                raise UsageError(
                    f"invalid retention count {name} = {value!r}: expected a whole number >= 0, or -1 (all)",
                    hint=f"set for example {name} = 7, or {name} = -1 to keep one per bucket without limit",
                )
        for name in WITHIN_FIELDS:
            duration = parse_retention_span(getattr(self, name))
            if duration.has_negative():
                raise UsageError(
                    f"invalid retention duration {name} = {getattr(self, name)!r}: negative values are not "
                    "allowed",
                    hint=_DURATION_HINT,
                )

    def durations(self) -> dict[str, Duration]:
        """The parsed duration of every ``within*`` rule, by field name."""
        return {name: parse_retention_span(getattr(self, name)) for name in WITHIN_FIELDS}

    def is_empty(self) -> bool:
        """True when no rule is on (restic's ``Empty``): such a policy removes nothing."""
        no_counts = all(getattr(self, name) == 0 for name in COUNT_FIELDS)
        return no_counts and all(duration.is_zero() for duration in self.durations().values())

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Policy:
        """Build from a config table such as ``[destinations.X.retention]``; keys are the field names.

        A count may also be "unlimited" (restic's spelling of -1).
        """
        if not isinstance(data, Mapping):
            raise UsageError(
                f"invalid retention policy {data!r}: expected a table of rules",
                hint="write for example: [destinations.NAME.retention] daily = 7",
            )
        known = ", ".join(COUNT_FIELDS + WITHIN_FIELDS)
        values: dict[str, object] = {}
        for key, value in data.items():
            if key not in COUNT_FIELDS and key not in WITHIN_FIELDS:
                raise UsageError(f"unknown retention rule {key!r}", hint=f"use one of: {known}")
            if key in COUNT_FIELDS and value == "unlimited":
                value = -1
            if key in WITHIN_FIELDS and not isinstance(value, str):
                raise UsageError(
                    f"invalid retention duration {key} = {value!r}: expected a string such as '1y2m3d3h'",
                    hint=_DURATION_HINT,
                )
            values[key] = value
        return cls(**values)  # type: ignore[arg-type]  # __post_init__ checks the types

    def to_dict(self) -> dict[str, object]:
        """The fields that differ from the default, for writing back to config.toml."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != f.default}

    def describe(self) -> str:
        """restic's one-line summary, e.g. 'keep 30 daily, 12 monthly snapshots'."""
        counts = []
        for name, word in zip(COUNT_FIELDS, ("latest", *COUNT_FIELDS[1:]), strict=True):
            value = getattr(self, name)
            if value > 0:
                counts.append(f"{value} {word}")
            elif value == -1:
                counts.append(f"all {word}")
        durations = self.durations()
        text = f"{', '.join(counts)} snapshots" if counts else ""
        bucketed = [
            f"{name.removeprefix('within_')} snapshots within {durations[name]}"
            for name in WITHIN_FIELDS[1:]
            if not durations[name].is_zero()
        ]
        text = ", ".join(part for part in (text, *bucketed) if part)
        if not durations["within"].is_zero():
            text += (" and " if text else "") + f"all snapshots within {durations['within']} of the newest"
        # restic says "remove" for an empty policy, but forget (and plan) then removes nothing.
        return f"keep {text}" if text else "keep all snapshots (no policy)"


@dataclass(frozen=True)
class Keep:
    """A kept snapshot time and why it is kept (restic's wording, in restic's rule order)."""

    time: datetime
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class RetentionPlan:
    """The result of :func:`plan`: both lists newest first; duplicates in the input stay duplicates."""

    keep: list[Keep] = field(default_factory=list)
    remove: list[datetime] = field(default_factory=list)


def _hour_bucket(time: datetime) -> object:
    return (time.year, time.month, time.day, time.hour)


def _day_bucket(time: datetime) -> object:
    return (time.year, time.month, time.day)


def _week_bucket(time: datetime) -> object:
    iso = time.isocalendar()
    return (iso.year, iso.week)


def _month_bucket(time: datetime) -> object:
    return (time.year, time.month)


def _year_bucket(time: datetime) -> object:
    return time.year


_BUCKETS: dict[str, Callable[[datetime], object]] = {
    "hourly": _hour_bucket,
    "daily": _day_bucket,
    "weekly": _week_bucket,
    "monthly": _month_bucket,
    "yearly": _year_bucket,
}


@dataclass
class _BucketRule:
    """A rule walking the sorted snapshots: a count rule (``remaining``) or a within rule (``threshold``)."""

    reason: str
    bucket: Callable[[datetime], object] | None  # None: every snapshot is its own bucket ('last')
    remaining: int | None = None
    threshold: int | None = None  # instant in µs a snapshot must be newer than; None: no limit
    last_bucket: object = None

    def reason_for(self, time: datetime, position: int, is_oldest: bool) -> str | None:
        """The reason this rule keeps the snapshot at ``position``, or None; updates the rule's state."""
        bucket = (position,) if self.bucket is None else self.bucket(time)
        if bucket == self.last_bucket and not is_oldest:
            return None
        reason = f"oldest {self.reason}" if bucket == self.last_bucket else self.reason
        self.last_bucket = bucket
        if self.remaining is not None and self.remaining > 0:
            self.remaining -= 1
        return reason


def plan(times: Sequence[datetime], policy: Policy, *, now: datetime | None = None) -> RetentionPlan:
    """Which of ``times`` to keep and which to remove under ``policy``, as restic's ``forget`` decides.

    Pure: the result depends only on the arguments.  Times must be timezone-aware; each is bucketed by
    its own wall clock.  An empty policy keeps everything, with no reasons: restic's ``forget`` prints
    "no policy was specified, no snapshots will be removed" (its ``ApplyPolicy`` alone would keep none).

    The ``within*`` rules count back from the newest snapshot.  restic ignores snapshots dated at or
    after the current time when it picks that newest one; give ``now`` to do the same (when none is
    older than ``now``, every snapshot counts as within, as in restic).  Without ``now`` the newest
    snapshot of all is the reference.
    """
    instants = [_instant(time, "snapshot time") for time in times]
    now_instant = None if now is None else _instant(now, "now")
    # Newest first; Python's sort is stable even with reverse=True, like restic's sort.Stable.
    order = sorted(range(len(times)), key=instants.__getitem__, reverse=True)
    if policy.is_empty():
        return RetentionPlan(keep=[Keep(times[index], ()) for index in order])

    reference = next((i for i in order if now_instant is None or instants[i] < now_instant), None)
    durations = policy.durations()

    def threshold(name: str) -> int | None:
        return None if reference is None else _go_within_threshold(times[reference], durations[name])

    keep_within = not durations["within"].is_zero()
    within_threshold = threshold("within") if keep_within else None
    count_rules = [
        _BucketRule(f"{name} snapshot", _BUCKETS.get(name), remaining=count)
        for name in COUNT_FIELDS
        if (count := getattr(policy, name)) != 0
    ]
    within_rules = [
        _BucketRule(f"{kind} within {durations[name]}", _BUCKETS[kind], threshold=threshold(name))
        for name in WITHIN_FIELDS[1:]
        if not durations[name].is_zero() and (kind := name.removeprefix("within_"))
    ]

    result = RetentionPlan()
    for position, index in enumerate(order):
        time, instant = times[index], instants[index]
        is_oldest = position == len(order) - 1
        reasons: list[str] = []
        if keep_within and _is_newer(instant, within_threshold):
            reasons.append(f"within {durations['within']}")
        for rule in count_rules:
            if rule.remaining != 0 and (reason := rule.reason_for(time, position, is_oldest)):
                reasons.append(reason)
        for rule in within_rules:
            if _is_newer(instant, rule.threshold) and (reason := rule.reason_for(time, position, is_oldest)):
                reasons.append(reason)
        if reasons:
            result.keep.append(Keep(time, tuple(reasons)))
        else:
            result.remove.append(time)
    return result


def _is_newer(instant: int, threshold: int | None) -> bool:
    """restic's ``cur.Time.After(t)``; no threshold (no reference snapshot) means every time is newer."""
    return threshold is None or instant > threshold


def _instant(time: datetime, what: str) -> int:
    """Microseconds since the Unix epoch; exact for every aware datetime, including DST folds."""
    if not isinstance(time, datetime):
        raise TypeError(f"{what} must be a datetime, not {type(time).__name__}")
    if time.utcoffset() is None:
        raise ValueError(f"{what} {time.isoformat()} has no timezone; retention needs aware datetimes")
    return (time - _EPOCH) // _MICROSECOND


def _go_within_threshold(reference: datetime, duration: Duration) -> int:
    """restic's ``latest.AddDate(-Y, -M, -D).Add(-H hours)`` as an instant in µs.

    Go's AddDate works on the wall clock and normalises overflow (March 31 minus one month is March 2
    or 3, not February 28); the hours are then subtracted from the instant.
    """
    month_index = reference.year * 12 + reference.month - 1 - duration.years * 12 - duration.months
    year, month0 = divmod(month_index, 12)
    day_number = _days_from_civil(year, month0 + 1, 1) + reference.day - 1 - duration.days
    seconds_of_day = reference.hour * 3600 + reference.minute * 60 + reference.second
    wall = day_number * _US_PER_DAY + seconds_of_day * 1_000_000 + reference.microsecond
    fallback = reference.utcoffset() or timedelta(0)
    offset = _go_zone_offset(reference.tzinfo, wall, fallback)
    return wall - offset - duration.hours * _US_PER_HOUR


def _go_zone_offset(zone: tzinfo | None, wall: int, fallback: timedelta) -> int:
    """The UTC offset (µs) Go's ``time.Date`` picks for a wall clock time (µs, read as if UTC) in ``zone``.

    Go looks up the offset in force at the wall clock read as UTC, then, if subtracting it lands in
    another zone period, the offset in force at that instant.  For a fixed offset this is the offset.
    """
    guess = _offset_at(zone, wall, fallback)
    return _offset_at(zone, wall - guess, fallback)


def _offset_at(zone: tzinfo | None, instant: int, fallback: timedelta) -> int:
    try:
        offset = (_EPOCH + instant * _MICROSECOND).astimezone(zone).utcoffset()
    except OverflowError:  # beyond datetime's years 1..9999: far from any snapshot
        offset = fallback
    return (fallback if offset is None else offset) // _MICROSECOND


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date, for any year (datetime stops at 1..9999)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146_097 + day_of_era - 719_468


DEFAULT_POLICIES: Mapping[str, Policy] = MappingProxyType(
    {"local": Policy(daily=7), "drive": Policy(daily=7), "s3": Policy(daily=30, monthly=12)}
)
