"""Typed data at the edge: one ISO time parser, one interval and one retention-span grammar, run statuses
spelled once, and results that print themselves."""

from __future__ import annotations

import ast
import json
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from drgui.core.errors import UsageError
from drgui.core.ops import runstatus
from drgui.core.ops.alerts import compute_alerts
from drgui.core.ops.drill import DrillResult
from drgui.core.ops.history import Run
from drgui.core.ops.status import compute_status
from drgui.core.plan.config import (
    DestConfig,
    Plan,
    SourceConfig,
    format_duration,
    parse_interval,
    plan_from_toml,
)
from drgui.core.plan.home import Home
from drgui.core.plan.workspace import Workspace
from drgui.core.timing.clock import format_iso, parse_iso, parse_iso_or_none
from drgui.core.timing.retention import Duration, Policy, parse_retention_span

DRGUI = Path(__file__).resolve().parent.parent / "drgui"
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


# --- one ISO time parser -------------------------------------------------------------------------------


def test_parse_iso_keeps_an_offset_and_reads_none_as_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert parse_iso("2026-03-01T02:00:00+02:00") == datetime(2026, 3, 1, 2, tzinfo=plus_two)
    assert parse_iso("2026-03-01T02:00:00+02:00").utcoffset() == timedelta(hours=2)
    assert parse_iso("2026-03-01T02:00:00Z") == datetime(2026, 3, 1, 2, tzinfo=UTC)
    naive = parse_iso("2026-03-01T02:00:00")
    assert naive.tzinfo is UTC and naive == datetime(2026, 3, 1, 2, tzinfo=UTC)
    assert parse_iso_or_none(None) is None
    assert parse_iso_or_none("") is None


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01T00:00:00", "12:00 tomorrow"])
def test_parse_iso_names_bad_text(text: str) -> None:
    with pytest.raises(ValueError, match="is not an ISO 8601 time") as caught:
        parse_iso(text)
    assert repr(text) in str(caught.value)


def test_format_iso_round_trips_and_refuses_naive() -> None:
    moment = datetime(2026, 3, 1, 2, 30, 15, tzinfo=UTC)
    assert format_iso(moment) == "2026-03-01T02:30:15+00:00"
    assert parse_iso(format_iso(moment)) == moment
    with pytest.raises(ValueError, match="no timezone"):
        format_iso(datetime(2026, 3, 1))


def test_run_record_times_are_aware() -> None:
    run = Run(1, "backup", "2026-03-01T02:00:00", None, "running", None, None, {})
    assert run.started_at == datetime(2026, 3, 1, 2, tzinfo=UTC)
    assert run.finished_at is None
    assert run.ended_at == run.started_at
    done = Run(2, "backup", "2026-03-01T02:00:00+00:00", "2026-03-01T02:05:00+00:00", "ok", "s", None, {})
    assert done.ended_at - done.started_at == timedelta(minutes=5)


def _workspace(tmp_path: Path, created: str) -> Workspace:
    plan = Plan("p1", "Acme", "age1x", created=created)
    plan.sources = [SourceConfig("db", "postgres")]
    return Workspace(Home(tmp_path / "home"), plan)


def _add_run(ws: Workspace, kind: str, status: str, when: str, detail: dict[str, object]) -> None:
    run_id = ws.history.start_run(kind)
    ws.history.finish_run(run_id, status, snapshot_id=f"s{run_id}", detail=detail)
    with sqlite3.connect(ws.home.history_path) as conn:  # times written by hand or by an outside tool
        conn.execute("UPDATE runs SET started=?, finished=? WHERE id=?", (when, when, run_id))


def test_alerts_read_a_naive_plan_time_as_utc(tmp_path: Path) -> None:
    """The alerts' own parser dropped a time without an offset, so a never-backed-up source of a plan
    created 30 days ago raised no alert; the one parser reads it as UTC."""
    ws = _workspace(tmp_path, (NOW - timedelta(days=30)).replace(tzinfo=None).isoformat())
    alerts = compute_alerts(ws, NOW)
    assert [(a.kind, a.source) for a in alerts] == [("stale", "db")]
    assert "(30 days)" in alerts[0].message


def test_status_reads_naive_history_times(tmp_path: Path) -> None:
    """A naive time in history made `now - finished` raise TypeError inside compute_status."""
    ws = _workspace(tmp_path, "2026-01-01T00:00:00")
    _add_run(ws, "drill", "ok", "2026-03-09T12:00:00", {"rto_seconds": 60})
    status = compute_status(ws, NOW, UTC)
    assert status.last_drill is not None
    assert status.last_drill["time"] == datetime(2026, 3, 9, 12, tzinfo=UTC)
    assert status.to_json()["last_drill"]["time"] == "2026-03-09T12:00:00+00:00"


# --- one grammar per meaning of "duration" -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("4h", 14400), ("30m", 1800), ("90s", 90), ("2w", 1209600), ("1d 2h", 93600), ("1d2h", 93600),
     (" 1h 30m ", 5400), ("0", 0), (3600, 3600)],
)  # fmt: skip
def test_parse_interval_counts_minutes(text: str | int, seconds: int) -> None:
    assert parse_interval(text) == seconds


@pytest.mark.parametrize("seconds", [42, 60, 5400, 86400, 93600, 604800 + 7200])
def test_parse_interval_reads_what_format_duration_writes(seconds: int) -> None:
    assert parse_interval(format_duration(seconds)) == seconds
    assert parse_interval(format_duration(seconds).replace(" ", "")) == seconds  # as config.toml saves it


@pytest.mark.parametrize("text", ["1y", "6mo", "3 months", "1y2m"])
def test_parse_interval_refuses_a_retention_span(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_interval(text)
    assert f"'{text}'" in caught.value.message
    assert "retention" in caught.value.message
    assert "m means minutes" in (caught.value.hint or "")


@pytest.mark.parametrize("text", ["4 hours", "soon", "", "4x", "h"])
def test_parse_interval_refuses_other_text(text: str) -> None:
    with pytest.raises(UsageError, match="is not a time interval") as caught:
        parse_interval(text)
    assert "m (minutes)" in (caught.value.hint or "")


def test_config_names_a_bad_rpo(tmp_path: Path) -> None:
    data = {"plan": {"id": "p1", "name": "Acme", "recipient": "age1x", "rpo": "1y"}}
    with pytest.raises(UsageError) as caught:
        plan_from_toml(data, where="/x/config.toml")
    assert caught.value.message.startswith("/x/config.toml: [plan] rpo: '1y' is not a time interval")
    saved = plan_from_toml({"plan": {"id": "p1", "name": "Acme", "recipient": "age1x", "rpo": "1d12h"}})
    assert saved.rpo_seconds == 36 * 3600


@pytest.mark.parametrize(
    ("text", "unit"),
    [("30min", "minutes"), ("90s", "seconds"), ("2w", "weeks"), ("1d 45 minutes", "minutes")],
)
def test_parse_retention_span_refuses_interval_units(text: str, unit: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_retention_span(text)
    assert repr(text) in caught.value.message
    assert f"({unit})" in caught.value.message
    assert "m (months, not minutes)" in caught.value.message
    with pytest.raises(UsageError, match="months, not minutes"):
        Policy(within=text)


def test_parse_retention_span_keeps_months() -> None:
    assert parse_retention_span("30m") == Duration(months=30)
    assert parse_retention_span("1y2m3d3h") == Duration(1, 2, 3, 3)


# --- spelled once --------------------------------------------------------------------------------------


def _python_files() -> list[Path]:
    return sorted(DRGUI.rglob("*.py"))


def test_success_statuses_are_spelled_once() -> None:
    """No module spells ("ok", "partial") or ("ok", "failed") itself: they come from core/ops/runstatus."""
    assert runstatus.SUCCESS == ("ok", "partial")
    assert runstatus.VERDICT == ("ok", "failed")
    spelled = set()
    for path in _python_files():
        if path.name == "runstatus.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Tuple) and all(isinstance(e, ast.Constant) for e in node.elts):
                values = {e.value for e in node.elts if isinstance(e, ast.Constant)}
                if values in ({"ok", "partial"}, {"ok", "failed"}):
                    spelled.add(f"{path.relative_to(DRGUI)}:{node.lineno}")
    assert not spelled, f"statuses spelled outside core/ops/runstatus.py: {sorted(spelled)}"


def test_iso_times_are_parsed_in_one_place() -> None:
    """Only core/timing/clock.py calls datetime.fromisoformat (engine/snapshot.py reads its own ids' times
    and belongs to the snapshot format)."""
    callers = [
        str(path.relative_to(DRGUI))
        for path in _python_files()
        if "fromisoformat(" in path.read_text()
        and path.relative_to(DRGUI).as_posix() not in ("core/timing/clock.py", "core/engine/snapshot.py")
    ]
    assert callers == []


def test_status_says_why_a_destination_could_not_be_counted(tmp_path: Path) -> None:
    """compute_status caught every Exception around the listing and said nothing; now it catches what a
    listing raises (OSError, DrguiError) and says it on the destination."""
    ws = _workspace(tmp_path, "2026-01-01T00:00:00+00:00")
    ws.plan.destinations = [DestConfig("usb", "local", {"path": str(tmp_path / "dest")})]
    snapshot = tmp_path / "dest" / "p1" / "snapshots" / "20260301T020000Z-0123abcd"
    snapshot.mkdir(parents=True)
    (snapshot / "index.json").symlink_to(tmp_path / "gone")  # listed, then vanishes under stat()
    [dest] = compute_status(ws, NOW, UTC).destinations
    assert (dest.name, dest.available, dest.snapshots) == ("usb", True, -1)
    assert dest.problem is not None and dest.problem.startswith("its snapshots could not be listed: ")
    assert "FileNotFoundError" in dest.problem


@pytest.mark.parametrize(
    ("module", "function"),
    [
        ("core/ops/status.py", "compute_status"),
        ("core/ops/drill.py", "_restore_and_check"),
        ("core/engine/restore.py", "restore_database"),
        ("core/engine/restore.py", "restore"),
        ("report/kit.py", "import_kit"),
    ],
)
def test_long_functions_stay_split(module: str, function: str) -> None:
    """These were 100 to 160 lines; their body (without signature and docstring) now fits on a screen."""
    tree = ast.parse((DRGUI / module).read_text())
    [node] = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function]
    body = node.body[1:] if isinstance(node.body[0], ast.Expr) else node.body  # without the docstring
    length = (body[-1].end_lineno or 0) - body[0].lineno + 1
    assert length <= 45, f"{module}:{function} has a {length}-line body"


def test_compute_status_catches_only_what_a_listing_raises() -> None:
    tree = ast.parse((DRGUI / "core/ops/status.py").read_text())
    broad = [
        h.lineno
        for h in ast.walk(tree)
        if isinstance(h, ast.ExceptHandler)
        and (h.type is None or (isinstance(h.type, ast.Name) and h.type.id in ("Exception", "BaseException")))
    ]
    assert broad == []


def test_drill_result_round_trips_with_aware_times() -> None:
    """DrillResult's one (de)serialiser: times leave as ISO text with their offset and come back aware (a
    record saved without an offset comes back as UTC); the CLI's checks keep name, ok, detail."""
    plus_one = timezone(timedelta(hours=1))
    result = DrillResult(
        "drill-1", "Acme", "20260301T020000Z-0123abcd", "usb (local)", "embedded PostgreSQL",
        datetime(2026, 3, 1, 3, tzinfo=plus_one), finished=datetime(2026, 3, 1, 3, 5, tzinfo=plus_one),
    )  # fmt: skip
    result.checks.append({"step": "rows", "name": "rows public.t", "ok": True, "detail": "3 rows"})
    saved = json.loads(json.dumps(result.to_dict()))
    assert saved["started"] == "2026-03-01T03:00:00+01:00"
    again = DrillResult.from_dict(saved)
    assert again == result and again.started.utcoffset() == timedelta(hours=1)
    saved["started"], saved["finished"] = "2026-03-01T02:00:00", None
    assert DrillResult.from_dict(saved).started == datetime(2026, 3, 1, 2, tzinfo=UTC)
    assert result.to_json()["checks"] == [{"name": "rows public.t", "ok": True, "detail": "3 rows"}]
    assert result.to_json()["started"] == "2026-03-01T03:00:00+01:00"
