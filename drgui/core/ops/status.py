"""Readiness of a plan: last success per source and destination, RPO state, what is next, why not 100 %.

Used by `drgui status`, the dashboard and the tray icon; reads the history and the config only
(no network), so it is cheap enough to call every minute.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, TypedDict

from dateutil import tz as dateutil_tz

from drgui.core.engine.destinations.base import Destination
from drgui.core.engine.sources.base import Source
from drgui.core.errors import DrguiError
from drgui.core.ops.alerts import compute_alerts
from drgui.core.ops.history import Run
from drgui.core.ops.offsite import add_to_status as offsite_status
from drgui.core.ops.runstatus import FAILED, INTERRUPTED, OK, RUNNING, SUCCESS, VERDICT
from drgui.core.plan.workspace import Workspace
from drgui.core.timing import schedule
from drgui.core.timing.clock import format_iso

log = logging.getLogger(__name__)

RPO_WARNING_FRACTION = 0.75
DRILL_MAX_AGE_DAYS = 35
DRIVE_SYNC_MAX_AGE_DAYS = 7


@dataclass
class SourceStatus:
    name: str
    kind: str
    description: str
    last_success: datetime | None
    last_snapshot: str | None
    age_seconds: float | None
    rpo_state: str  # ok | warning | overdue | never
    last_error: str | None = None  # why the newest backup that tried this source could not back it up


@dataclass
class DestStatus:
    name: str
    kind: str
    description: str
    available: bool
    last_success: datetime | None
    snapshots: int  # complete snapshots there; -1: not counted (absent, S3, or listing failed: `problem`)
    queued: int
    problem: str | None = None  # why the snapshots could not be counted


class LastBackup(TypedDict):
    time: datetime
    status: str
    snapshot: str | None
    error: str | None
    failed_sources: list[dict[str, Any]]


class LastDrill(TypedDict):
    time: datetime | None
    ok: bool
    rto_seconds: float | None
    report: str | None


class DriveSync(TypedDict):
    name: str | None
    time: datetime | None
    age_seconds: float | None


@dataclass
class Status:
    plan_name: str
    rpo_seconds: int
    rto_seconds: int
    sources: list[SourceStatus]
    destinations: list[DestStatus]
    next: dict[str, datetime | None]
    queue: list[dict[str, Any]]
    last_backup: LastBackup | None
    last_drill: LastDrill | None
    drive_sync: DriveSync | None
    readiness: int
    reasons: list[str] = field(default_factory=list)
    state: str = "ok"  # ok | due | running | partial (a source was not backed up) | failed
    notices: list[str] = field(default_factory=list)  # told once, e.g. the history was damaged
    offsite: list[dict[str, Any]] = field(default_factory=list)  # could a stolen laptop delete (offsite.py)

    def to_json(self) -> dict[str, Any]:
        def convert(value: Any) -> Any:
            if isinstance(value, datetime):
                return format_iso(value)
            if isinstance(value, dict):
                return {k: convert(v) for k, v in value.items()}
            if isinstance(value, list):
                return [convert(v) for v in value]
            return value

        converted: dict[str, Any] = convert(asdict(self))
        return converted


def _next_times(ws: Workspace, now: datetime, local: tzinfo) -> dict[str, datetime | None]:
    last = {
        "backup": _last_time(ws, "backup", SUCCESS),
        "weekly_review": _last_checklist(ws, "weekly-review"),
        "drill": _last_time(ws, "drill", VERDICT),
    }
    rules = {
        key: ws.plan.schedule.get(key, schedule.PRESETS[key]) for key in ("backup", "weekly_review", "drill")
    }
    return schedule.next_times(rules, last, now, local)


def _last_time(ws: Workspace, kind: str, statuses: tuple[str, ...]) -> datetime | None:
    for run in ws.history.runs(kind):
        if run.status in statuses:
            return run.ended_at
    return None


def _last_checklist(ws: Workspace, checklist: str) -> datetime | None:
    for run in ws.history.runs("checklist"):
        if run.target == checklist and run.status == OK:
            return run.ended_at
    return None


def _source_last_success(backups: list[Run], name: str) -> Run | None:
    for run in backups:
        if run.status not in SUCCESS:
            continue
        names = [s.get("name") for s in run.detail.get("sources", []) if s.get("ok", True)]
        if name in names:
            return run
    return None


def failed_sources(run: Run) -> list[dict[str, Any]]:
    """[{"name", "kind", "error"}] of the sources a backup run could not back up."""
    return [s for s in run.detail.get("sources", []) if s.get("ok", True) is False]


def _source_last_error(backups: list[Run], name: str) -> str | None:
    """The error of this source in the newest finished backup that tried it (None if it succeeded)."""
    for run in backups:
        if run.status not in SUCCESS:
            continue
        for entry in run.detail.get("sources", []):
            if entry.get("name") == name:
                return None if entry.get("ok", True) else str(entry.get("error") or "not backed up")
    return None


class _Readiness:
    """The readiness score and its reasons, in the order they were found."""

    def __init__(self) -> None:
        self.score = 100
        self.reasons: list[str] = []

    def lose(self, points: int, reason: str) -> None:
        self.score -= points
        self.reasons.append(reason)

    @property
    def clamped(self) -> int:
        return max(0, min(100, self.score))


def compute_status(ws: Workspace, now: datetime | None = None, local: tzinfo | None = None) -> Status:
    now = now or datetime.now(UTC)
    local = local or dateutil_tz.tzlocal()
    plan = ws.plan
    backups = ws.history.runs("backup", limit=500)
    queue = ws.history.queue()
    readiness = _Readiness()
    sources = [_source_status(ws, source, backups, now, readiness) for source in ws.sources()]
    destinations = [_dest_status(ws, dest, backups, queue, readiness) for dest in ws.destinations()]
    if not plan.sources:
        readiness.score, readiness.reasons = 0, ["The plan has no source yet."]
    if not plan.destinations:
        readiness.score, readiness.reasons = 0, [*readiness.reasons, "The plan has no destination yet."]
    state = _backup_state(backups, sources, readiness)
    notices = list(ws.history.notices().values())
    readiness.reasons.extend(notices)
    last_drill = _last_drill(ws, now, readiness)
    drive_sync = _drive_sync(ws, now, readiness)
    for alert in compute_alerts(ws, now):
        if alert.kind == "size_change":  # staleness is already a source's RPO state above
            readiness.lose(5, alert.message)
        elif alert.kind == "audit":  # the audit log does not match what the destinations prove
            readiness.score -= 20
            readiness.reasons.insert(0, alert.message)
    offsite, offsite_penalty = offsite_status(ws, readiness.reasons)
    readiness.score -= offsite_penalty
    return Status(
        plan.name,
        plan.rpo_seconds,
        plan.rto_seconds,
        sources,
        destinations,
        _next_times(ws, now, local),
        queue,
        _last_backup(backups),
        last_drill,
        drive_sync,
        readiness.clamped,
        readiness.reasons,
        state,
        notices,
        offsite,
    )


def _rpo_state(age: float | None, rpo_seconds: int) -> str:
    if age is None:
        return "never"
    if age > rpo_seconds:
        return "overdue"
    if age > rpo_seconds * RPO_WARNING_FRACTION:
        return "warning"
    return "ok"


def _source_status(
    ws: Workspace, source: Source, backups: list[Run], now: datetime, readiness: _Readiness
) -> SourceStatus:
    run = _source_last_success(backups, source.name)
    last = run.finished_at if run else None
    age = (now - last).total_seconds() if last else None
    state = _rpo_state(age, ws.plan.rpo_seconds)
    last_error = _source_last_error(backups, source.name)
    if last_error:
        readiness.lose(15, f"Source '{source.name}' was not backed up by the last backup: {last_error}")
    if state == "never":
        readiness.lose(25, f"Source '{source.name}' has never been backed up.")
    elif state == "overdue":
        readiness.lose(25, f"Source '{source.name}' is older than the RPO.")
    elif state == "warning":
        readiness.lose(5, f"Source '{source.name}' is close to the RPO.")
    return SourceStatus(
        source.name,
        source.kind,
        source.describe(),
        last,
        run.snapshot_id if run else None,
        age,
        state,
        last_error,
    )


def _dest_last_success(ws: Workspace, name: str, backups: list[Run]) -> datetime | None:
    """The last upload to it, or else the last backup that wrote it as the primary destination."""
    uploads = [r for r in ws.history.runs("upload", limit=200) if r.target == name and r.status == OK]
    if uploads:
        return uploads[0].finished_at
    primary = next(
        (
            r
            for r in backups
            if r.status in SUCCESS
            and any(d.get("name") == name and d.get("ok") for d in r.detail.get("destinations", []))
        ),
        None,
    )
    return primary.finished_at if primary else None


def _snapshot_count(dest: Destination, available: bool) -> tuple[int, str | None]:
    """(complete snapshots there, or -1 when not counted, why not). S3 is not listed: status makes no
    network call. A destination that fails while listing (unplugged meanwhile, unreadable) is -1, said."""
    if not available or dest.kind == "s3":
        return -1, None
    try:
        return len(dest.snapshot_ids()), None
    except DrguiError as error:
        problem = error.message
    except OSError as error:
        problem = f"{type(error).__name__}: {error}"
    log.warning("status: could not count the snapshots on %s: %s", dest.name, problem)
    return -1, f"its snapshots could not be listed: {problem}"


def _dest_status(
    ws: Workspace, dest: Destination, backups: list[Run], queue: list[dict[str, Any]], readiness: _Readiness
) -> DestStatus:
    available = dest.available()
    last = _dest_last_success(ws, dest.name, backups)
    count, problem = _snapshot_count(dest, available)
    queued = sum(1 for q in queue if q["destination"] == dest.name)
    if queued:
        readiness.lose(10, f"{queued} snapshot(s) waiting to be copied to '{dest.name}'.")
    return DestStatus(dest.name, dest.kind, dest.describe(), available, last, count, queued, problem)


def _last_backup(backups: list[Run]) -> LastBackup | None:
    if not backups:
        return None
    run = backups[0]
    return {
        "time": run.ended_at,
        "status": run.status,
        "snapshot": run.snapshot_id,
        "error": run.detail.get("error"),
        "failed_sources": failed_sources(run),
    }


def _backup_state(backups: list[Run], sources: list[SourceStatus], readiness: _Readiness) -> str:
    """ok | due | running | partial (a source was not backed up) | failed, from the newest backup."""
    newest = backups[0].status if backups else None
    if newest == RUNNING:
        return "running"
    if newest == INTERRUPTED:
        readiness.lose(
            15, "The last backup was interrupted (the program was stopped or killed) before it finished."
        )
        return "failed"
    if newest == FAILED:
        readiness.lose(15, "The last backup failed.")
        return "failed"
    if any(s.last_error for s in sources):
        return "partial"
    if any(s.rpo_state in ("overdue", "never") for s in sources):
        return "due"
    return "ok"


def _last_drill(ws: Workspace, now: datetime, readiness: _Readiness) -> LastDrill | None:
    finished = [r for r in ws.history.runs("drill", limit=20) if r.status in VERDICT]
    if not finished:
        readiness.lose(15, "No restore test yet: a backup is only proven by a restore.")
        return None
    run = finished[0]
    when = run.finished_at
    age_days = (now - when).days if when else 999
    if run.status != OK:
        readiness.lose(15, "The last restore test failed.")
    elif age_days > DRILL_MAX_AGE_DAYS:
        readiness.lose(10, f"The last restore test is {age_days} days old.")
    return {
        "time": when,
        "ok": run.status == OK,
        "rto_seconds": run.detail.get("rto_seconds"),
        "report": run.detail.get("report"),
    }


def _drive_sync(ws: Workspace, now: datetime, readiness: _Readiness) -> DriveSync | None:
    syncs = [r for r in ws.history.runs("drive_sync", limit=20) if r.status == OK]
    if not syncs:
        if any(d.kind == "drive" for d in ws.plan.destinations):
            readiness.lose(5, "The .env has never been copied to the drive.")
        return None
    when = syncs[0].finished_at
    if when and (now - when).days > DRIVE_SYNC_MAX_AGE_DAYS:
        readiness.lose(5, f"The .env was last copied to the drive {(now - when).days} days ago.")
    return {
        "name": syncs[0].target,
        "time": when,
        "age_seconds": (now - when).total_seconds() if when else None,
    }
