"""schedule.py: rules, next times, catch-up after sleep (once), DST, wake detection."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from dateutil import tz as dateutil_tz
from hypothesis import given, settings
from hypothesis import strategies as st

from drgui.core.errors import EXIT_USAGE, UsageError
from drgui.core.timing import schedule
from drgui.core.timing.schedule import (
    PRESETS,
    Due,
    WakeDetector,
    daily_at,
    evaluate,
    every_n_hours,
    iter_slots,
    next_occurrence,
    next_times,
    previous_occurrence,
    validate_rule,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
BACKUP, WEEKLY, DRILL = PRESETS["backup"], PRESETS["weekly_review"], PRESETS["drill"]
# Both kinds of zone objects callers may pass: the standard library's and dateutil's.
ZONE_FACTORIES = [pytest.param(ZoneInfo, id="zoneinfo"), pytest.param(dateutil_tz.gettz, id="dateutil")]


def at(tz: tzinfo, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=tz, fold=fold)


def utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(UTC)


def slots(rule: str, after: datetime, tz: tzinfo, count: int) -> list[datetime]:
    return [utc(slot) for slot in itertools.islice(iter_slots(rule, after, tz), count)]


# --- rules -------------------------------------------------------------------------------------


def test_presets_are_the_documented_rules_in_normal_form() -> None:
    assert PRESETS == {
        "backup": "FREQ=DAILY;BYHOUR=2;BYMINUTE=0;BYSECOND=0",
        "weekly_review": "FREQ=WEEKLY;BYDAY=SU;BYHOUR=19;BYMINUTE=0;BYSECOND=0",
        "drill": "FREQ=MONTHLY;BYDAY=1SU;BYHOUR=19;BYMINUTE=0;BYSECOND=0",
    }
    for rule in PRESETS.values():
        assert validate_rule(rule) == rule


@pytest.mark.parametrize(
    ("given_rule", "normal"),
    [
        (" rrule:freq=daily;byhour=2;byminute=0;bysecond=0 ", BACKUP),
        ("FREQ=MONTHLY;BYDAY=+1SU;BYHOUR=19;BYMINUTE=0;BYSECOND=0;", DRILL),
        ("FREQ=MINUTELY;INTERVAL=15", "FREQ=MINUTELY;INTERVAL=15"),
        ("FREQ=DAILY;UNTIL=20301231T000000Z;BYHOUR=3", "FREQ=DAILY;UNTIL=20301231T000000;BYHOUR=3"),
    ],
)
def test_validate_rule_normalises(given_rule: str, normal: str) -> None:
    assert validate_rule(given_rule) == normal


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("DAILY", "NAME=VALUE"),
        ("BYHOUR=2", "FREQ is missing"),
        ("FREQ=SOMETIMES", "FREQ must be one of"),
        ("FREQ=DAILY;FOO=1", "unknown part FOO"),
        ("FREQ=DAILY;BYHOUR=2;BYHOUR=3", "given twice"),
        ("FREQ=DAILY;BYHOUR=25", "hour must be in 0..23"),
        ("FREQ=DAILY;BYDAY=XX", "BYDAY"),
        ("FREQ=DAILY;INTERVAL=0", "INTERVAL"),
        ("FREQ=DAILY;INTERVAL=-2", "INTERVAL"),
        ("FREQ=DAILY;COUNT=3", "use UNTIL"),
        ("FREQ=DAILY;UNTIL=2020", "UNTIL must look like"),
        ("DTSTART:20260101T000000\nRRULE:FREQ=DAILY", "DTSTART"),
        ("FREQ=MINUTELY", "every 1 minutes"),
        ("FREQ=MINUTELY;INTERVAL=14", "every 14 minutes"),
        ("FREQ=SECONDLY;INTERVAL=30", "every 30 seconds"),
        ("FREQ=HOURLY;BYMINUTE=0,10", "every 10 minutes"),
        ("FREQ=DAILY;BYHOUR=2;BYMINUTE=0;BYSECOND=0,1", "every 1 seconds"),
        ("FREQ=DAILY;UNTIL=19990101", "never fires"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "never fires"),
    ],
)
def test_invalid_rules_are_refused_with_the_bad_text_and_an_example(bad: str, why: str) -> None:
    with pytest.raises(UsageError) as caught:
        validate_rule(bad)
    error = caught.value
    assert error.exit_code == EXIT_USAGE
    assert why in error.message
    assert repr(bad) in error.message
    assert BACKUP in (error.hint or "")
    with pytest.raises(UsageError):  # every entry point validates
        next_occurrence(bad, datetime(2026, 1, 1, tzinfo=UTC), UTC)


def test_preset_builders() -> None:
    assert daily_at(2, 0) == BACKUP
    assert validate_rule(daily_at(23, 45)) == "FREQ=DAILY;BYHOUR=23;BYMINUTE=45;BYSECOND=0"
    assert validate_rule(every_n_hours(6)) == every_n_hours(6)
    assert validate_rule(every_n_hours(1)) == every_n_hours(1)
    start = at(BERLIN, 2026, 6, 10, 0, 0)
    six_hourly = [s.astimezone(BERLIN).hour for s in slots(every_n_hours(6), start, BERLIN, 5)]
    assert six_hourly == [6, 12, 18, 0, 6]
    hourly = slots(every_n_hours(1), start, BERLIN, 3)
    assert [b - a for a, b in itertools.pairwise(hourly)] == [timedelta(hours=1)] * 2


@pytest.mark.parametrize("bad", [(-1, 0), (24, 0), (2, 60), (2.5, 0), (True, 0)])
def test_daily_at_refuses_impossible_times(bad: tuple) -> None:
    with pytest.raises(UsageError, match="daily_at"):
        daily_at(*bad)


@pytest.mark.parametrize("bad", [0, -3, 1.5, 10_001])
def test_every_n_hours_refuses_bad_counts(bad: object) -> None:
    with pytest.raises(UsageError, match="every_n_hours"):
        every_n_hours(bad)  # type: ignore[arg-type]


def test_naive_datetimes_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_occurrence(BACKUP, datetime(2026, 1, 1), BERLIN)
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate(BACKUP, None, datetime(2026, 1, 1), BERLIN)


def test_schedule_module_is_pure() -> None:
    source = Path(schedule.__file__).read_text()
    assert not re.search(r"^\s*import (os|time|subprocess)|\.now\(|\.today\(|open\(", source, re.M)


# --- next occurrences --------------------------------------------------------------------------


def test_next_occurrence_is_strictly_after() -> None:
    two = at(BERLIN, 2026, 5, 4, 2, 0)
    assert next_occurrence(BACKUP, two - timedelta(microseconds=1), BERLIN) == two
    assert next_occurrence(BACKUP, two, BERLIN) == at(BERLIN, 2026, 5, 5, 2, 0)
    assert next_occurrence(BACKUP, two.astimezone(UTC), BERLIN).tzinfo is BERLIN


def test_previous_occurrence_is_at_or_before() -> None:
    two = at(BERLIN, 2026, 5, 4, 2, 0)
    assert previous_occurrence(BACKUP, two, BERLIN) == two
    assert previous_occurrence(BACKUP, two - timedelta(seconds=1), BERLIN) == two - timedelta(days=1)
    assert previous_occurrence(DRILL, at(BERLIN, 2026, 5, 20, 12, 0), BERLIN) == at(BERLIN, 2026, 5, 3, 19, 0)


@pytest.mark.parametrize("weekday_offset", range(7))
@pytest.mark.parametrize("clock", [(0, 0), (18, 59), (19, 0), (23, 59)])
def test_weekly_review_is_the_next_sunday_at_19(weekday_offset: int, clock: tuple[int, int]) -> None:
    monday = datetime(2026, 6, 1, *clock, tzinfo=BERLIN)
    after = monday + timedelta(days=weekday_offset)
    upcoming = next_occurrence(WEEKLY, after, BERLIN)
    assert upcoming is not None
    assert (upcoming.weekday(), upcoming.hour, upcoming.minute) == (6, 19, 0)
    assert after < upcoming <= after + timedelta(days=7)
    if weekday_offset == 6 and clock < (19, 0):
        assert upcoming.date() == after.date()


ANY_MOMENT = st.datetimes(datetime(2020, 1, 1), datetime(2035, 12, 31), timezones=st.just(UTC))


def next_local(rule: str, after: datetime, tz: tzinfo) -> datetime:
    """The next occurrence of `rule` after `after`, in `tz` (there must be one)."""
    upcoming = next_occurrence(rule, after, tz)
    assert upcoming is not None
    return upcoming.astimezone(tz)


@settings(max_examples=60, deadline=None)
@given(after=ANY_MOMENT)
def test_weekly_review_from_any_moment(after: datetime) -> None:
    local = next_local(WEEKLY, after, NEW_YORK)
    assert (local.weekday(), local.hour, local.minute, local.second) == (6, 19, 0, 0)
    assert timedelta(0) < utc(local) - after <= timedelta(days=7)


def test_drills_are_on_the_first_sunday_of_each_month() -> None:
    found = [s.astimezone(BERLIN) for s in slots(DRILL, at(BERLIN, 2025, 12, 31, 0, 0), BERLIN, 12)]
    assert [(s.month, s.day) for s in found] == [
        (1, 4), (2, 1), (3, 1), (4, 5), (5, 3), (6, 7), (7, 5), (8, 2), (9, 6), (10, 4), (11, 1), (12, 6),
    ]  # fmt: skip
    assert all((s.weekday(), s.hour, s.minute) == (6, 19, 0) for s in found)


@settings(max_examples=60, deadline=None)
@given(after=ANY_MOMENT)
def test_drill_from_any_moment_is_the_next_first_sunday(after: datetime) -> None:
    local = next_local(DRILL, after, BERLIN)
    assert (local.weekday(), local.hour, local.minute) == (6, 19, 0)
    assert local.day <= 7
    # No first Sunday 19:00 was skipped: every Sunday strictly between is not a first Sunday.
    day = after.astimezone(BERLIN).date()
    while day < local.date():
        if day.weekday() == 6 and day.day <= 7:
            assert datetime(day.year, day.month, day.day, 19, tzinfo=BERLIN) <= after
        day += timedelta(days=1)


def test_rule_that_has_ended() -> None:
    rule = "FREQ=DAILY;UNTIL=20260301T000000;BYHOUR=2;BYMINUTE=0;BYSECOND=0"
    assert next_occurrence(rule, at(BERLIN, 2026, 2, 27, 12, 0), BERLIN) == at(BERLIN, 2026, 2, 28, 2, 0)
    assert next_occurrence(rule, at(BERLIN, 2026, 2, 28, 2, 0), BERLIN) is None
    due = evaluate(rule, at(BERLIN, 2026, 2, 28, 2, 0), at(BERLIN, 2026, 6, 1, 0, 0), BERLIN)
    assert due == Due(False, None, None, None, "The schedule has no further runs.")


def test_sparse_rules_are_found() -> None:
    leap_day = "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYHOUR=9;BYMINUTE=0;BYSECOND=0"
    assert next_occurrence(leap_day, at(BERLIN, 2026, 1, 1, 0, 0), BERLIN) == at(BERLIN, 2028, 2, 29, 9, 0)
    assert previous_occurrence(leap_day, at(BERLIN, 2026, 1, 1, 0, 0), BERLIN) == at(
        BERLIN, 2024, 2, 29, 9, 0
    )


# --- daylight saving -----------------------------------------------------------------------------


@pytest.mark.parametrize("zone", ZONE_FACTORIES)
def test_berlin_spring_forward_runs_the_0200_backup_once_at_0300(zone) -> None:
    berlin = zone("Europe/Berlin")
    found = slots(BACKUP, datetime(2026, 3, 27, 12, tzinfo=UTC), berlin, 4)
    assert found == [
        datetime(2026, 3, 28, 1, 0, tzinfo=UTC),  # 02:00 CET
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),  # 02:00 does not exist: 03:00 CEST, once
        datetime(2026, 3, 30, 0, 0, tzinfo=UTC),  # 02:00 CEST
        datetime(2026, 3, 31, 0, 0, tzinfo=UTC),
    ]
    # Nothing between 02:00 CET on the 28th's run and the 29th's 03:00, nothing doubled after it.
    after_run = next_occurrence(BACKUP, datetime(2026, 3, 29, 1, 0, tzinfo=UTC), berlin)
    assert utc(after_run) == datetime(2026, 3, 30, 0, 0, tzinfo=UTC)
    assert awake_runs(
        BACKUP, berlin, datetime(2026, 3, 28, 12, tzinfo=UTC), datetime(2026, 3, 30, 12, tzinfo=UTC)
    ) == [
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
        datetime(2026, 3, 30, 0, 0, tzinfo=UTC),
    ]


@pytest.mark.parametrize("zone", ZONE_FACTORIES)
def test_berlin_fall_back_runs_a_repeated_time_once_the_first_time(zone) -> None:
    berlin = zone("Europe/Berlin")
    found = slots(daily_at(2, 30), datetime(2026, 10, 24, 12, tzinfo=UTC), berlin, 2)
    assert found == [datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 26, 1, 30, tzinfo=UTC)]
    assert awake_runs(
        BACKUP, berlin, datetime(2026, 10, 24, 12, tzinfo=UTC), datetime(2026, 10, 26, 12, tzinfo=UTC)
    ) == [datetime(2026, 10, 25, 0, 0, tzinfo=UTC), datetime(2026, 10, 26, 1, 0, tzinfo=UTC)]


def test_hourly_rule_across_spring_forward_has_no_duplicate() -> None:
    found = slots(every_n_hours(1), datetime(2026, 3, 28, 23, 30, tzinfo=UTC), BERLIN, 4)
    assert found == [datetime(2026, 3, 29, hour, tzinfo=UTC) for hour in (0, 1, 2, 3)]


@pytest.mark.parametrize("zone", ZONE_FACTORIES)
def test_new_york_transitions(zone) -> None:
    new_york = zone("America/New_York")
    assert slots(BACKUP, datetime(2026, 3, 7, 12, tzinfo=UTC), new_york, 2) == [
        datetime(2026, 3, 8, 7, 0, tzinfo=UTC),  # 02:00 does not exist: 03:00 EDT
        datetime(2026, 3, 9, 6, 0, tzinfo=UTC),  # 02:00 EDT
    ]
    # 01:30 happens twice on 1 November 2026: first in EDT (05:30 UTC), then in EST; run once.
    assert slots(daily_at(1, 30), datetime(2026, 10, 31, 12, tzinfo=UTC), new_york, 2) == [
        datetime(2026, 11, 1, 5, 30, tzinfo=UTC),
        datetime(2026, 11, 2, 6, 30, tzinfo=UTC),
    ]
    # Sunday 19:00 reviews and first-Sunday drills keep their wall time across both changes.
    reviews = [s.astimezone(new_york) for s in slots(WEEKLY, datetime(2026, 3, 1, tzinfo=UTC), new_york, 3)]
    assert [(r.day, r.hour) for r in reviews] == [(1, 19), (8, 19), (15, 19)]
    assert utc(next_occurrence(DRILL, datetime(2026, 10, 5, tzinfo=UTC), new_york)) == datetime(
        2026, 11, 2, 0, 0, tzinfo=UTC
    )  # Sunday 1 November 19:00 EST


def awake_runs(rule: str, tz: tzinfo, start: datetime, end: datetime) -> list[datetime]:
    """Runs of a scheduler that is awake from `start` to `end` and wakes up at each run_at."""
    runs: list[datetime] = []
    now, last_run = start, start
    while now <= end:
        due = evaluate(rule, last_run, now, tz, started_at=start - timedelta(days=1))
        if due.due:
            runs.append(now)
            last_run = now
            continue
        if due.run_at is None:
            break
        assert utc(due.run_at) > now
        now = utc(due.run_at)
    return runs


DST_EDGES = [
    datetime(2026, 3, 28, 12, tzinfo=UTC),
    datetime(2026, 3, 7, 12, tzinfo=UTC),
    datetime(2026, 10, 24, 12, tzinfo=UTC),
    datetime(2026, 10, 31, 12, tzinfo=UTC),
]
RULES = st.sampled_from(
    [
        BACKUP,
        WEEKLY,
        DRILL,
        every_n_hours(1),
        every_n_hours(6),
        daily_at(2, 30),
        daily_at(23, 45),
        "FREQ=MINUTELY;INTERVAL=15",
        "FREQ=HOURLY;BYMINUTE=0,30",
    ]
)
ZONES = st.sampled_from([BERLIN, NEW_YORK, ZoneInfo("UTC"), ZoneInfo("Australia/Lord_Howe")])
STARTS = st.one_of(
    st.datetimes(datetime(2025, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC)),
    st.builds(
        lambda edge, shift: edge + shift,
        st.sampled_from(DST_EDGES),
        st.timedeltas(timedelta(0), timedelta(hours=36)),
    ),
)


@settings(max_examples=60, deadline=None)
@given(rule=RULES, tz=ZONES, start=STARTS, count=st.integers(1, 12))
def test_awake_scheduler_runs_every_slot_exactly_once(
    rule: str, tz: tzinfo, start: datetime, count: int
) -> None:
    expected = slots(rule, start, tz, count)
    assert expected == sorted(set(expected))
    assert awake_runs(rule, tz, start, expected[-1]) == expected


# --- evaluate ----------------------------------------------------------------------------------


SUNDAY_0200 = at(BERLIN, 2026, 5, 3, 2, 0)  # a Sunday


def test_never_run_and_no_creation_time_waits_for_the_first_slot() -> None:
    now = at(BERLIN, 2026, 5, 3, 8, 0)
    assert evaluate(BACKUP, None, now, BERLIN) == Due(
        False, at(BERLIN, 2026, 5, 4, 2, 0), None, at(BERLIN, 2026, 5, 4, 2, 0), "Next run Mon 02:00."
    )


def test_slot_since_creation_is_due() -> None:
    now = at(BERLIN, 2026, 5, 3, 8, 0)
    due = evaluate(BACKUP, None, now, BERLIN, created=at(BERLIN, 2026, 5, 1, 12, 0))
    assert due.due and due.run_at == SUNDAY_0200 and due.missed_slot is None
    assert due.reason == "The run of Sun 02:00 is due."
    created_after_slot = evaluate(BACKUP, None, now, BERLIN, created=at(BERLIN, 2026, 5, 3, 3, 0))
    assert not created_after_slot.due


def test_slot_arriving_while_awake_is_due_immediately() -> None:
    started = at(BERLIN, 2026, 5, 2, 9, 0)
    last = at(BERLIN, 2026, 5, 2, 2, 0)
    before = evaluate(BACKUP, last, SUNDAY_0200 - timedelta(seconds=1), BERLIN, started_at=started)
    assert not before.due and before.run_at == SUNDAY_0200
    due = evaluate(
        BACKUP, last, SUNDAY_0200, BERLIN, started_at=started, woke_at=at(BERLIN, 2026, 5, 2, 23, 0)
    )
    assert due == Due(True, SUNDAY_0200, None, at(BERLIN, 2026, 5, 4, 2, 0), "The run of Sun 02:00 is due.")


def test_slot_missed_while_asleep_runs_once_after_wake_plus_delay() -> None:
    last = at(BERLIN, 2026, 4, 28, 2, 0)  # four slots missed
    woke = at(BERLIN, 2026, 5, 3, 8, 0, 7)
    started = at(BERLIN, 2026, 4, 1, 9, 0)
    at_wake = evaluate(BACKUP, last, woke, BERLIN, started_at=started, woke_at=woke)
    assert not at_wake.due
    assert at_wake.run_at == woke + timedelta(minutes=5)
    assert at_wake.missed_slot == SUNDAY_0200
    assert at_wake.next_slot == at(BERLIN, 2026, 5, 4, 2, 0)
    assert (
        at_wake.reason
        == "Missed the run of Sun 02:00 while the computer was asleep; catching up at Sun 08:05."
    )
    catch_up = evaluate(BACKUP, last, woke + timedelta(minutes=5), BERLIN, started_at=started, woke_at=woke)
    assert catch_up.due and catch_up.missed_slot == SUNDAY_0200
    assert catch_up.reason == "Missed the run of Sun 02:00 while the computer was asleep; running it now."
    ran = woke + timedelta(minutes=5)
    after = evaluate(BACKUP, ran, ran + timedelta(hours=3), BERLIN, started_at=started, woke_at=woke)
    assert not after.due and after.run_at == at(BERLIN, 2026, 5, 4, 2, 0)


def test_slot_missed_while_off_runs_after_start_plus_delay() -> None:
    started = at(BERLIN, 2026, 5, 3, 9, 30)
    due = evaluate(BACKUP, at(BERLIN, 2026, 5, 2, 2, 0), started, BERLIN, started_at=started)
    assert not due.due and due.run_at == started + timedelta(minutes=5)
    assert "while drgui was not running" in due.reason
    later = evaluate(
        BACKUP, at(BERLIN, 2026, 5, 2, 2, 0), started + timedelta(minutes=7), BERLIN, started_at=started,
        catch_up_delay=timedelta(minutes=10),
    )  # fmt: skip
    assert not later.due and later.run_at == started + timedelta(minutes=10)


def test_regular_slot_before_the_catch_up_time_covers_the_missed_one() -> None:
    rule = every_n_hours(1)
    woke = at(BERLIN, 2026, 5, 3, 8, 58)
    pending = evaluate(rule, at(BERLIN, 2026, 5, 3, 1, 0), woke, BERLIN, woke_at=woke)
    assert not pending.due
    assert (
        pending.run_at == pending.next_slot == at(BERLIN, 2026, 5, 3, 9, 0)
    )  # a scheduler sleeps until 09:00
    assert pending.missed_slot == at(BERLIN, 2026, 5, 3, 8, 0)
    assert pending.reason.endswith("; the regular run at Sun 09:00 covers it.")
    nine = evaluate(rule, at(BERLIN, 2026, 5, 3, 1, 0), at(BERLIN, 2026, 5, 3, 9, 0), BERLIN, woke_at=woke)
    assert nine.due and nine.missed_slot is None


def test_long_ago_slot_is_described_with_its_date() -> None:
    woke = at(BERLIN, 2026, 5, 20, 8, 0)
    due = evaluate(DRILL, at(BERLIN, 2026, 4, 5, 19, 0), woke, BERLIN, woke_at=woke)
    assert due.missed_slot == at(BERLIN, 2026, 5, 3, 19, 0)
    assert due.reason.startswith("Missed the run of Sun 3 May 2026 19:00 while the computer was asleep")


def test_without_wake_or_start_information_a_missed_slot_is_due_at_once() -> None:
    due = evaluate(BACKUP, at(BERLIN, 2026, 4, 1, 2, 0), at(BERLIN, 2026, 5, 3, 9, 0), BERLIN)
    assert due.due and due.run_at == SUNDAY_0200 and due.missed_slot is None


def test_last_run_in_the_future_is_not_due() -> None:
    assert not evaluate(BACKUP, at(BERLIN, 2026, 6, 1, 0, 0), at(BERLIN, 2026, 5, 3, 9, 0), BERLIN).due


@settings(max_examples=80, deadline=None)
@given(
    rule=RULES,
    tz=ZONES,
    last_run=st.datetimes(datetime(2025, 6, 1), datetime(2027, 6, 1), timezones=st.just(UTC)),
    missed=st.integers(0, 30),
    fraction=st.floats(0.001, 0.999),
    how=st.sampled_from(["asleep", "off"]),
    delay_minutes=st.integers(1, 120),
    probes=st.lists(st.integers(1, 7200), max_size=30),
)
def test_catch_up_fires_once_then_nothing_until_the_next_regular_slot(
    rule: str,
    tz: tzinfo,
    last_run: datetime,
    missed: int,
    fraction: float,
    how: str,
    delay_minutes: int,
    probes: list[int],
) -> None:
    # The machine sleeps right after `last_run` and wakes between the last missed slot and the next.
    upcoming = slots(rule, last_run, tz, missed + 2)
    last_missed, next_regular = upcoming[missed], upcoming[missed + 1]
    wake = last_missed + max(timedelta(seconds=1), (next_regular - last_missed) * fraction)
    if wake >= next_regular:
        wake = last_missed + (next_regular - last_missed) / 2
    delay = timedelta(minutes=delay_minutes)
    context = (
        {"woke_at": wake, "started_at": last_run - timedelta(days=3)}
        if how == "asleep"
        else {"started_at": wake}
    )

    runs: list[datetime] = []
    now, last, probe_steps = wake, last_run, iter(probes)
    while now <= next_regular:
        due = evaluate(rule, last, now, tz, catch_up_delay=delay, **context)
        if due.due:
            runs.append(now)
            last = now
            continue
        candidates = [next_regular + timedelta(seconds=1)]
        if due.run_at is not None and utc(due.run_at) > now:
            candidates.append(utc(due.run_at))
        step = next(probe_steps, None)
        if step is not None:
            candidates.append(now + timedelta(seconds=step))
        now = min(candidates)

    if wake + delay < next_regular:
        assert runs == [wake + delay, next_regular]  # one catch-up, then the regular slot
    else:
        assert runs == [next_regular]  # the regular slot came first and covers the missed ones


def test_next_times_for_status() -> None:
    now = at(BERLIN, 2026, 5, 3, 12, 0)
    result = next_times(PRESETS, {"backup": at(BERLIN, 2026, 5, 3, 2, 0), "drill": None}, now, BERLIN)
    assert result == {
        "backup": at(BERLIN, 2026, 5, 4, 2, 0),
        "weekly_review": at(BERLIN, 2026, 5, 3, 19, 0),
        "drill": at(BERLIN, 2026, 5, 3, 19, 0),
    }
    overdue = next_times({"backup": BACKUP}, {"backup": at(BERLIN, 2026, 5, 1, 2, 0)}, now, BERLIN)
    assert overdue == {"backup": SUNDAY_0200}  # at or before now: overdue since that slot


# --- wake detection ----------------------------------------------------------------------------


def test_wake_detector_reports_a_wall_clock_jump() -> None:
    detector = WakeDetector()
    t0 = datetime(2026, 5, 3, 1, 0, tzinfo=UTC)
    assert detector.observe(1000.0, t0) is None
    assert detector.observe(1060.0, t0 + timedelta(seconds=60)) is None
    assert detector.observe(1120.0, t0 + timedelta(seconds=120 + 100)) is None  # 100 s drift: not a wake
    woke = t0 + timedelta(hours=7)
    assert detector.observe(1180.0, woke) == woke  # monotonic stood still during suspend
    assert detector.last_wake == woke
    assert detector.observe(1240.0, woke + timedelta(seconds=60)) is None
    assert detector.observe(1300.0, woke) is None  # wall clock set back: not a wake
    assert detector.last_wake == woke


def test_wake_detector_threshold_and_dst_safety() -> None:
    detector = WakeDetector(threshold=timedelta(seconds=30))
    start = datetime(2026, 3, 29, 1, 59, 30, tzinfo=BERLIN)
    detector.observe(0.0, start)
    # Aware wall times: the DST change at 02:00 is not a jump of the wall clock.
    assert detector.observe(60.0, (start.astimezone(UTC) + timedelta(seconds=60)).astimezone(BERLIN)) is None
    jumped = (start.astimezone(UTC) + timedelta(seconds=60 + 60 + 31)).astimezone(BERLIN)
    assert detector.observe(120.0, jumped) == jumped
