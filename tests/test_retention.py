"""Retention follows restic's forget: restic's own golden cases, hand-checked edge cases, and properties
checked against an independent brute-force reference implementation."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drgui.core.errors import UsageError
from drgui.core.timing.retention import (
    COUNT_FIELDS,
    DEFAULT_POLICIES,
    WITHIN_FIELDS,
    Duration,
    Keep,
    Policy,
    RetentionPlan,
    parse_retention_span,
    plan,
)

RESTIC_DATA = Path(__file__).parent / "data" / "restic_policy"
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def kept(result: RetentionPlan) -> list[tuple[datetime, tuple[str, ...]]]:
    return [(keep.time, keep.reasons) for keep in result.keep]


# --- restic's golden files -------------------------------------------------------------------------

RESTIC_TIMES = [
    datetime.fromisoformat(text) for text in json.loads((RESTIC_DATA / "snapshots.json").read_text())["times"]
]
RESTIC_CASES = sorted(
    RESTIC_DATA.glob("policy_keep_snapshots_*.json"), key=lambda p: int(p.stem.split("_")[-1])
)


def test_restic_case_files_are_present() -> None:
    assert len(RESTIC_TIMES) == 103
    assert len(RESTIC_CASES) == 20


@pytest.mark.parametrize(
    "case_file", [p for p in RESTIC_CASES if p.stem != "policy_keep_snapshots_0"], ids=str
)
def test_restic_golden_case(case_file: Path) -> None:
    case = json.loads(case_file.read_text())
    result = plan(RESTIC_TIMES, Policy.from_dict(case["policy"]))

    expected = [(datetime.fromisoformat(k["time"]), tuple(k["reasons"])) for k in case["keep"]]
    assert kept(result) == expected
    expected_removed = Counter(RESTIC_TIMES) - Counter(time for time, _ in expected)
    assert Counter(result.remove) == expected_removed
    assert result.remove == sorted(result.remove, reverse=True)


def test_empty_policy_keeps_everything_like_restic_forget() -> None:
    """restic's ApplyPolicy with an empty policy keeps nothing (golden file 0), but forget never calls it:
    it prints "no policy was specified, no snapshots will be removed"."""
    case = json.loads((RESTIC_DATA / "policy_keep_snapshots_0.json").read_text())
    assert case["policy"] == {} and case["keep"] == []

    result = plan(RESTIC_TIMES, Policy())
    assert [keep.time for keep in result.keep] == sorted(RESTIC_TIMES, reverse=True)
    assert all(keep.reasons == () for keep in result.keep)
    assert result.remove == []


# --- durations -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "duration", "printed"),
    [  # restic's TestParseDuration
        ("9h", Duration(hours=9), "9h"),
        ("3d", Duration(days=3), "3d"),
        ("4d2h", Duration(days=4, hours=2), "4d2h"),
        ("7m5d", Duration(months=7, days=5), "7m5d"),
        ("6m4d8h", Duration(months=6, days=4, hours=8), "6m4d8h"),
        ("5d7m", Duration(months=7, days=5), "7m5d"),
        ("4h3d9m", Duration(months=9, days=3, hours=4), "9m3d4h"),
        ("-7m5d", Duration(months=-7, days=5), "-7m5d"),
        ("1y4m-5d-3h", Duration(years=1, months=4, days=-5, hours=-3), "1y4m-5d-3h"),
        ("2y7m-5d", Duration(years=2, months=7, days=-5), "2y7m-5d"),
        ("1y2m3d3h", Duration(1, 2, 3, 3), "1y2m3d3h"),
        ("  5d  ", Duration(days=5), "5d"),
        ("", Duration(), ""),
        ("0d", Duration(), ""),
        ("1d2d", Duration(days=2), "2d"),
    ],
)
def test_parse_duration_like_restic(text: str, duration: Duration, printed: str) -> None:
    assert parse_retention_span(text) == duration
    assert str(duration) == printed


@pytest.mark.parametrize(
    "text", ["2w", "1y4m3w1d", "s", "\u07c0d", "5", "-", "1d 2h", "--1d", "99999999999y"]
)
def test_parse_duration_rejects_bad_text(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_retention_span(text)
    assert repr(text) in caught.value.message
    assert "1y2m3d3h" in str(caught.value)


# --- the policy object ---------------------------------------------------------------------------


def test_policy_round_trips_through_config_dict() -> None:
    policy = Policy(daily=7, monthly=-1, within_weekly="1y")
    assert policy.to_dict() == {"daily": 7, "monthly": -1, "within_weekly": "1y"}
    assert Policy.from_dict(policy.to_dict()) == policy
    assert Policy.from_dict({}) == Policy()
    assert Policy().to_dict() == {}
    assert Policy.from_dict({"yearly": "unlimited"}) == Policy(yearly=-1)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"keep_daily": 7}, "keep_daily"),
        ({"daily": -2}, "-2"),
        ({"daily": "7"}, "'7'"),
        ({"daily": True}, "True"),
        ({"daily": 1.5}, "1.5"),
        ({"within": 7}, "7"),
        ({"within": "7w"}, "7w"),
        ({"within_daily": "-1d"}, "-1d"),
    ],
)
def test_policy_from_dict_names_the_bad_value(data: dict[str, object], named: str) -> None:
    with pytest.raises(UsageError) as caught:
        Policy.from_dict(data)
    assert named in caught.value.message
    assert caught.value.hint


def test_policy_emptiness_and_description() -> None:
    assert Policy().is_empty()
    assert Policy(within="0d0h").is_empty()
    assert not Policy(last=-1).is_empty()
    assert not Policy(within_yearly="1h").is_empty()
    assert Policy(daily=7, weekly=2, monthly=3, yearly=10).describe() == (
        "keep 7 daily, 2 weekly, 3 monthly, 10 yearly snapshots"
    )
    assert Policy(last=-1, within_daily="1y1d1m", within="2d").describe() == (
        "keep all latest snapshots, daily snapshots within 1y1m1d and all snapshots within 2d of the newest"
    )
    assert Policy().describe() == "keep all snapshots (no policy)"


def test_default_policies() -> None:
    assert dict(DEFAULT_POLICIES) == {
        "local": Policy(daily=7),
        "drive": Policy(daily=7),
        "s3": Policy(daily=30, monthly=12),
    }
    with pytest.raises(TypeError):
        DEFAULT_POLICIES["local"] = Policy()  # type: ignore[index]


# --- plan: hand-checked cases --------------------------------------------------------------------


def test_plan_rejects_naive_times() -> None:
    with pytest.raises(ValueError, match="timezone"):
        plan([datetime(2024, 1, 1)], Policy(daily=1))
    with pytest.raises(ValueError, match="timezone"):
        plan([utc("2024-01-01")], Policy(daily=1), now=datetime(2024, 1, 2))


def test_plan_result_shape() -> None:
    time = utc("2024-01-01T10:00")
    assert plan([time], Policy(daily=1)) == RetentionPlan(keep=[Keep(time, ("daily snapshot",))], remove=[])


def test_plan_of_nothing_is_empty() -> None:
    assert plan([], Policy(daily=7)) == RetentionPlan(keep=[], remove=[])
    assert plan([], Policy()) == RetentionPlan(keep=[], remove=[])


def test_ties_keep_input_order() -> None:
    first = utc("2024-05-01T10:00:00")
    second = first.astimezone(BERLIN)  # the same instant, another offset
    third = first.astimezone(timezone(timedelta(hours=-3)))
    times = [first, second, third]

    result = plan(times, Policy(last=1))
    assert [keep.time.utcoffset() for keep in result.keep] == [timedelta(0)]
    assert [t.utcoffset() for t in result.remove] == [timedelta(hours=2), timedelta(hours=-3)]

    # three in one bucket: the newest (first given) and, counts being left, the oldest (last given)
    same_second = [utc("2024-05-01T10:00:00.5"), utc("2024-05-01T10:00:00.2"), utc("2024-05-01T10:00:00.2")]
    result = plan(same_second, Policy(daily=2))
    assert [(k.time.microsecond, k.reasons) for k in result.keep] == [
        (500_000, ("daily snapshot",)),
        (200_000, ("oldest daily snapshot",)),
    ]
    assert result.remove == [same_second[1]]
    assert result.remove[0] is same_second[1]


def test_oldest_is_kept_only_while_counts_are_left() -> None:
    times = [utc(f"2024-05-0{day}T0{hour}:00") for day in (1, 2) for hour in (1, 2)]
    assert kept(plan(times, Policy(daily=2))) == [
        (utc("2024-05-02T02:00"), ("daily snapshot",)),
        (utc("2024-05-01T02:00"), ("daily snapshot",)),
    ]
    assert kept(plan(times, Policy(daily=3)))[-1] == (utc("2024-05-01T01:00"), ("oldest daily snapshot",))
    assert kept(plan(times, Policy(daily=-1)))[-1] == (utc("2024-05-01T01:00"), ("oldest daily snapshot",))


def test_buckets_use_each_snapshots_own_wall_clock() -> None:
    late_utc = utc("2021-06-01T23:00")  # June 1 in UTC
    early_berlin = datetime(2021, 6, 2, 0, 30, tzinfo=BERLIN)  # June 2 in Berlin, 22:30 UTC on June 1
    result = plan([early_berlin, late_utc], Policy(daily=5))
    assert kept(result) == [(late_utc, ("daily snapshot",)), (early_berlin, ("daily snapshot",))]


def test_iso_week_53() -> None:
    times = [
        utc("2021-01-04T12:00"),
        utc("2021-01-03T12:00"),
        utc("2020-12-31T12:00"),
        utc("2019-12-30T12:00"),
    ]
    # 2020-12-31 and 2021-01-03 are both in 2020-W53; 2019-12-30 is in 2020-W01
    result = plan(times, Policy(weekly=-1))
    assert [keep.time for keep in result.keep] == [times[0], times[1], times[3]]
    assert result.remove == [times[2]]
    assert [keep.time for keep in plan(times, Policy(yearly=-1)).keep] == [times[0], times[2], times[3]]


def test_within_months_overflow_like_go_add_date() -> None:
    """Go: 2016-03-31 minus one month is 'February 31', i.e. March 2 (not February 29 as dateutil says)."""
    times = [
        utc("2016-03-31T12:00"),
        utc("2016-03-02T12:00:00.000001"),
        utc("2016-03-02T12:00:00"),  # exactly the limit: restic keeps only times strictly after it
        utc("2016-03-01T00:00"),
    ]
    result = plan(times, Policy(within="1m"))
    assert kept(result) == [(times[0], ("within 1m",)), (times[1], ("within 1m",))]
    assert result.remove == times[2:]


def test_within_from_a_leap_day() -> None:
    times = [
        utc("2020-02-29T10:00"),
        utc("2019-03-01T10:00:01"),
        utc("2019-03-01T10:00"),
        utc("2019-02-28T23:00"),
    ]
    result = plan(times, Policy(within="1y"))  # 2019-02-29 does not exist: Go makes it March 1
    assert [keep.time for keep in result.keep] == times[:2]


@pytest.mark.parametrize(
    ("reference", "just_in", "just_out"),
    [
        # Berlin, clocks go forward: 2021-03-28 02:30 does not exist; Go takes 01:30 UTC (03:30 CEST)
        (datetime(2021, 3, 29, 2, 30, tzinfo=BERLIN), utc("2021-03-28T01:30:01"), utc("2021-03-28T01:30")),
        # New York, clocks go forward: 2021-03-14 02:30 does not exist; Go takes 06:30 UTC (01:30 EST),
        # where Python's fold=0 would say 07:30 UTC
        (datetime(2021, 3, 15, 2, 30, tzinfo=NEW_YORK), utc("2021-03-14T06:30:01"), utc("2021-03-14T06:30")),
        # Berlin, clocks go back: 2021-10-31 02:30 happens twice; Go takes the second (01:30 UTC, CET),
        # where Python's fold=0 would take the first (00:30 UTC)
        (datetime(2021, 11, 1, 2, 30, tzinfo=BERLIN), utc("2021-10-31T01:30:01"), utc("2021-10-31T01:30")),
        # New York, clocks go back: 2021-11-07 01:30 happens twice; Go takes the first (05:30 UTC, EDT)
        (datetime(2021, 11, 8, 1, 30, tzinfo=NEW_YORK), utc("2021-11-07T05:30:01"), utc("2021-11-07T05:30")),
    ],
)
def test_within_across_dst_picks_the_offset_go_picks(
    reference: datetime, just_in: datetime, just_out: datetime
) -> None:
    result = plan([reference, just_in, just_out], Policy(within="1d"))
    assert [keep.time for keep in result.keep] == [reference, just_in]
    assert result.remove == [just_out]


def test_within_hours_are_absolute_time() -> None:
    """Go adds the hours to the instant, so across a DST change "24h" and "1d" differ."""
    reference = datetime(2021, 3, 28, 12, 0, tzinfo=BERLIN)  # CEST, 10:00 UTC; a day earlier was CET
    assert datetime(2021, 3, 27, 12, 0, tzinfo=BERLIN).astimezone(UTC) == utc("2021-03-27T11:00")
    in_between = utc("2021-03-27T10:30")  # 23.5 hours back
    assert plan([reference, in_between], Policy(within="1d")).remove == [in_between]
    assert plan([reference, in_between], Policy(within="24h")).remove == []


def test_future_snapshots_with_and_without_now() -> None:
    now = utc("2024-06-01T12:00")
    future, recent, old = now + timedelta(days=10), now - timedelta(hours=1), now - timedelta(days=3)
    times = [old, future, recent]
    # restic: the reference is the newest snapshot that is not in the future
    with_now = plan(times, Policy(within="2d"), now=now)
    assert [keep.time for keep in with_now.keep] == [future, recent]
    assert with_now.remove == [old]
    # pure default: the newest snapshot of all
    without_now = plan(times, Policy(within="2d"))
    assert [keep.time for keep in without_now.keep] == [future]
    # all in the future: restic measures from the zero time, so every snapshot is within
    assert plan(times, Policy(within="1h"), now=old).remove == []
    # count rules do not look at now
    assert [keep.time for keep in plan(times, Policy(last=1), now=now).keep] == [future]


def test_all_reason_kinds_in_restic_order() -> None:
    times = [utc("2024-01-01T00:00"), utc("2023-12-31T23:00")]
    policy = Policy(
        last=1, hourly=1, daily=1, weekly=1, monthly=1, yearly=1, within="1h",
        within_hourly="1d", within_daily="1d", within_weekly="1d", within_monthly="1d", within_yearly="1d",
    )  # fmt: skip
    assert kept(plan(times, policy))[0] == (
        times[0],
        (
            "within 1h",
            "last snapshot",
            "hourly snapshot",
            "daily snapshot",
            "weekly snapshot",
            "monthly snapshot",
            "yearly snapshot",
            "hourly within 1d",
            "daily within 1d",
            "weekly within 1d",
            "monthly within 1d",
            "yearly within 1d",
        ),
    )
    # the oldest: its own hour, day, month and year, but the same ISO week (2023-W52 ends on Sunday 12-31,
    # 2024-01-01 is W01 of 2024) - so every bucket differs, and the within-1h is off
    assert kept(plan(times, policy))[1][1] == (
        "hourly within 1d",
        "daily within 1d",
        "weekly within 1d",
        "monthly within 1d",
        "yearly within 1d",
    )


# --- the reference implementation ---------------------------------------------------------------


def _iso_week(day: date) -> tuple[int, int]:
    """ISO week from its definition: the week belongs to the year of its Thursday."""
    thursday = day + timedelta(days=3 - day.weekday())
    return thursday.year, (thursday - date(thursday.year, 1, 1)).days // 7 + 1


REFERENCE_KEYS = {
    "hourly": lambda t: (t.date(), t.hour),
    "daily": lambda t: t.date(),
    "weekly": lambda t: _iso_week(t.date()),
    "monthly": lambda t: t.strftime("%Y-%m"),
    "yearly": lambda t: t.year,
}


def _reference_cutoff(reference: datetime, text: str) -> datetime:
    """Go's ``reference.AddDate(-y, -m, -d).Add(-h hours)``, built from datetime pieces."""
    duration = parse_retention_span(text)
    years, month = divmod(
        reference.year * 12 + reference.month - 1 - duration.years * 12 - duration.months, 12
    )
    wall = datetime(years, month + 1, 1, reference.hour, reference.minute, reference.second,
                    reference.microsecond) + timedelta(days=reference.day - 1 - duration.days)  # fmt: skip
    zone = reference.tzinfo
    assert zone is not None
    first_guess = wall.replace(tzinfo=UTC).astimezone(zone).utcoffset()
    assert first_guess is not None
    offset = (wall - first_guess).replace(tzinfo=UTC).astimezone(zone).utcoffset()
    assert offset is not None
    return (wall - offset).replace(tzinfo=UTC) - timedelta(hours=duration.hours)


def _reference_rule(
    members: list[int], keys: list[object], count: int, includes_oldest: bool
) -> dict[int, str]:
    """Keep the newest of each run of equal consecutive keys, up to ``count`` runs (-1: all runs),
    and the oldest too when it starts no run and runs are left over."""
    starts = [p for p in range(len(members)) if p == 0 or keys[p] != keys[p - 1]]
    chosen = starts if count == -1 else starts[:count]
    marks = {members[p]: "" for p in chosen}
    last = len(members) - 1
    if includes_oldest and members and last not in starts and (count == -1 or len(starts) < count):
        marks[members[last]] = "oldest "
    return marks


def reference_plan(
    times: Sequence[datetime], policy: Policy, now: datetime | None = None
) -> list[tuple[int, tuple[str, ...]]]:
    """Indices of kept times, newest first, with reasons; written independently of drgui's plan()."""
    in_utc = [time.astimezone(UTC) for time in times]
    order = sorted(range(len(times)), key=lambda i: (in_utc[i], -i), reverse=True)
    if policy.is_empty():
        return [(i, ()) for i in order]
    not_future = [i for i in order if now is None or in_utc[i] < now]
    reference = times[not_future[0]] if not_future else None

    def in_range(text: str) -> list[int]:
        if reference is None:
            return order
        cutoff = _reference_cutoff(reference, text)
        return [i for i in order if in_utc[i] > cutoff]

    reasons: dict[int, list[str]] = {i: [] for i in order}
    if not parse_retention_span(policy.within).is_zero():
        for i in in_range(policy.within):
            reasons[i].append(f"within {parse_retention_span(policy.within)}")
    for name in COUNT_FIELDS:
        count = getattr(policy, name)
        if count != 0:
            keys = (
                list(range(len(order))) if name == "last" else [REFERENCE_KEYS[name](times[i]) for i in order]
            )
            for i, prefix in _reference_rule(order, keys, count, True).items():
                reasons[i].append(f"{prefix}{name} snapshot")
    for name in WITHIN_FIELDS[1:]:
        text = getattr(policy, name)
        if not parse_retention_span(text).is_zero():
            kind = name.removeprefix("within_")
            members = in_range(text)
            keys = [REFERENCE_KEYS[kind](times[i]) for i in members]
            includes_oldest = bool(members) and members[-1] == order[-1]
            for i, prefix in _reference_rule(members, keys, -1, includes_oldest).items():
                reasons[i].append(f"{prefix}{kind} within {parse_retention_span(text)}")
    return [(i, tuple(reasons[i])) for i in order if reasons[i]]


# --- properties ----------------------------------------------------------------------------------

ZONES: list[tzinfo] = [
    UTC,
    BERLIN,
    NEW_YORK,
    timezone(timedelta(hours=5, minutes=30)),
    timezone(-timedelta(hours=9)),
]
ANCHORS = [
    utc("2020-12-31T12:00"),  # ISO week 53 of 2020 runs to Sunday 2021-01-03
    utc("2021-03-28T01:00"),  # Berlin springs forward
    utc("2021-10-31T01:00"),  # Berlin falls back
    utc("2021-03-14T07:00"),  # New York springs forward
    utc("2021-11-07T06:00"),  # New York falls back
    utc("2020-02-29T12:00"),  # leap day
    utc("2024-02-29T23:30"),
    utc("2025-06-15T12:00"),
]


@st.composite
def snapshot_times(draw: st.DrawFn) -> list[datetime]:
    anchor = draw(st.sampled_from(ANCHORS))
    spread = draw(st.sampled_from([3_600, 86_400 * 3, 86_400 * 40, 86_400 * 800]))
    count = draw(st.integers(0, 25))
    times = []
    for _ in range(count):
        instant = anchor + timedelta(seconds=draw(st.integers(-spread, spread)))
        instant += timedelta(microseconds=draw(st.sampled_from([0, 0, 1, 250_000, 999_999])))
        times.append(instant.astimezone(draw(st.sampled_from(ZONES))))
    # several snapshots in the same second or at the same instant, in another zone
    for source in draw(st.lists(st.sampled_from(times), max_size=5)) if times else []:
        same_second = source + timedelta(microseconds=draw(st.integers(0, 999_999 - source.microsecond)))
        times.append(draw(st.sampled_from([source, same_second])).astimezone(draw(st.sampled_from(ZONES))))
    return draw(st.permutations(times))


counts = st.sampled_from([0, 0, 0, 1, 2, 3, 7, -1])
durations = st.one_of(
    st.just(""),
    st.builds(
        lambda y, m, d, h: f"{y}y{m}m{d}d{h}h",
        st.integers(0, 2),
        st.integers(0, 14),
        st.integers(0, 40),
        st.integers(0, 50),
    ),
)
policies = st.builds(Policy, *[counts] * 6, *[st.one_of(st.just(""), durations)] * 6)
single_rule_policies = st.one_of(
    *[st.builds(Policy, **{name: counts}) for name in COUNT_FIELDS],
    *[st.builds(Policy, **{name: durations}) for name in WITHIN_FIELDS],
)
optional_now = st.one_of(st.none(), st.sampled_from(ANCHORS))
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _in_utc(time: datetime) -> datetime:
    return time.astimezone(UTC)


def _identities(times: Sequence[datetime]) -> Counter[int]:
    return Counter(id(time) for time in times)


@FAST
@given(times=snapshot_times(), policy=policies, now=optional_now)
def test_plan_matches_the_reference_implementation(
    times: list[datetime], policy: Policy, now: datetime | None
) -> None:
    result = plan(times, policy, now=now)
    expected = reference_plan(times, policy, now)
    assert [(id(k.time), k.reasons) for k in result.keep] == [(id(times[i]), why) for i, why in expected]


@FAST
@given(times=snapshot_times(), policy=policies, now=optional_now)
def test_plan_partitions_the_input_newest_first(
    times: list[datetime], policy: Policy, now: datetime | None
) -> None:
    result = plan(times, policy, now=now)
    kept_times = [keep.time for keep in result.keep]
    assert _identities(kept_times) + _identities(result.remove) == _identities(times)
    # sort by instant: Python compares two times in the same ZoneInfo by wall clock, ignoring fold
    assert kept_times == sorted(kept_times, key=_in_utc, reverse=True)
    assert result.remove == sorted(result.remove, key=_in_utc, reverse=True)
    assert all(keep.reasons for keep in result.keep) or policy.is_empty()
    if times:
        assert result.keep, "a non-empty policy always keeps the newest snapshot, an empty one keeps all"
    if policy.is_empty():
        assert result.remove == []


@FAST
@given(times=snapshot_times(), n=st.integers(1, 30))
def test_last_n_keeps_exactly_the_n_newest(times: list[datetime], n: int) -> None:
    result = plan(times, Policy(last=n))
    newest_first = sorted(times, key=_in_utc, reverse=True)  # stable for ties
    assert [id(keep.time) for keep in result.keep] == [id(t) for t in newest_first[:n]]
    assert all(keep.reasons == ("last snapshot",) for keep in result.keep)


@FAST
@given(times=snapshot_times(), rules=st.lists(single_rule_policies, min_size=1, max_size=4), now=optional_now)
def test_rules_are_ored(times: list[datetime], rules: list[Policy], now: datetime | None) -> None:
    combined = Policy(**{k: v for rule in rules for k, v in rule.to_dict().items()})
    singles = [Policy(**{k: v}) for k, v in combined.to_dict().items()]
    union = set().union(*(_identities(k.time for k in plan(times, p, now=now).keep) for p in singles))
    assert set(_identities(k.time for k in plan(times, combined, now=now).keep)) == (
        union if singles else set(_identities(times))
    )


@FAST
@given(times=snapshot_times(), count=st.integers(1, 10), name=st.sampled_from(COUNT_FIELDS[1:]))
def test_count_rules_keep_one_per_bucket_and_the_oldest_while_counts_remain(
    times: list[datetime], count: int, name: str
) -> None:
    result = plan(times, Policy(**{name: count}))
    key = REFERENCE_KEYS[name]
    regular = [k.time for k in result.keep if k.reasons == (f"{name} snapshot",)]
    # restic compares a snapshot's bucket with the last kept one only: with mixed offsets, one bucket
    # can be kept twice (e.g. hours 13, 12, 13), so only neighbours are sure to differ
    assert all(key(newer) != key(older) for newer, older in pairwise(regular))
    assert len(regular) <= count
    if len({t.utcoffset() for t in times}) == 1:
        assert len({key(t) for t in regular}) == len(regular)
    oldest = [k.time for k in result.keep if k.reasons == (f"oldest {name} snapshot",)]
    assert len(oldest) <= 1
    if oldest:
        assert len(regular) < count
        assert oldest[0] is sorted(times, key=_in_utc, reverse=True)[-1]
    # more counts never keep less (monotone)
    more = plan(times, Policy(**{name: count + 1}))
    assert set(_identities(k.time for k in result.keep)) <= set(_identities(k.time for k in more.keep))
