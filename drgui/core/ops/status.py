"""Readiness of a plan: last success per source and destination, RPO state, what is next, why not 100 %.

Used by `drgui status`, the dashboard and the tray icon; reads the history and the config only
(no network), so it is cheap enough to call every minute.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from dateutil import tz as dateutil_tz

from drgui.core.ops.alerts import compute_alerts
from drgui.core.ops.history import Run
from drgui.core.ops.runstatus import SUCCESS, VERDICT
from drgui.core.plan.workspace import Workspace
from drgui.core.timing.clock import format_iso

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
    snapshots: int
    queued: int


@dataclass
class Status:
    plan_name: str
    rpo_seconds: int
    rto_seconds: int
    sources: list[SourceStatus]
    destinations: list[DestStatus]
    next: dict[str, datetime | None]
    queue: list[dict[str, Any]]
    last_backup: dict[str, Any] | None
    last_drill: dict[str, Any] | None
    drive_sync: dict[str, Any] | None
    readiness: int
    reasons: list[str] = field(default_factory=list)
    state: str = "ok"  # ok | due | running | partial (a source was not backed up) | failed
    notices: list[str] = field(default_factory=list)  # told once, e.g. the history was damaged

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
    from drgui.core.timing import schedule

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
        if run.target == checklist and run.status == "ok":
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


def compute_status(ws: Workspace, now: datetime | None = None, local: tzinfo | None = None) -> Status:
    now = now or datetime.now(UTC)
    local = local or dateutil_tz.tzlocal()
    plan = ws.plan
    backups = ws.history.runs("backup", limit=500)
    queue = ws.history.queue()
    reasons: list[str] = []
    score = 100

    sources = []
    for source in ws.sources():
        run = _source_last_success(backups, source.name)
        last = run.finished_at if run else None
        age = (now - last).total_seconds() if last else None
        if age is None:
            state = "never"
        elif age > plan.rpo_seconds:
            state = "overdue"
        elif age > plan.rpo_seconds * RPO_WARNING_FRACTION:
            state = "warning"
        else:
            state = "ok"
        last_error = _source_last_error(backups, source.name)
        sources.append(
            SourceStatus(
                source.name,
                source.kind,
                source.describe(),
                last,
                run.snapshot_id if run else None,
                age,
                state,
                last_error,
            )
        )
        if last_error:
            score -= 15
            reasons.append(f"Source '{source.name}' was not backed up by the last backup: {last_error}")
        if state in ("never", "overdue"):
            score -= 25
            reasons.append(
                f"Source '{source.name}' "
                + ("has never been backed up." if state == "never" else "is older than the RPO.")
            )
        elif state == "warning":
            score -= 5
            reasons.append(f"Source '{source.name}' is close to the RPO.")

    destinations = []
    for dest in ws.destinations():
        available = dest.available()
        uploads = [
            r for r in ws.history.runs("upload", limit=200) if r.target == dest.name and r.status == "ok"
        ]
        last = uploads[0].finished_at if uploads else None
        if last is None:
            primary = next(
                (
                    r
                    for r in backups
                    if r.status in SUCCESS
                    and any(
                        d.get("name") == dest.name and d.get("ok") for d in r.detail.get("destinations", [])
                    )
                ),
                None,
            )
            last = primary.finished_at if primary else None
        try:
            count = len(dest.snapshot_ids()) if available and dest.kind != "s3" else -1
        except Exception:
            count = -1
        queued = sum(1 for q in queue if q["destination"] == dest.name)
        destinations.append(DestStatus(dest.name, dest.kind, dest.describe(), available, last, count, queued))
        if queued:
            score -= 10
            reasons.append(f"{queued} snapshot(s) waiting to be copied to '{dest.name}'.")
    if not plan.sources:
        score, reasons = 0, ["The plan has no source yet."]
    if not plan.destinations:
        score, reasons = 0, [*reasons, "The plan has no destination yet."]

    last_backup = None
    if backups:
        run = backups[0]
        last_backup = {
            "time": run.ended_at,
            "status": run.status,
            "snapshot": run.snapshot_id,
            "error": run.detail.get("error"),
            "failed_sources": failed_sources(run),
        }
    state = "ok"
    if backups and backups[0].status == "running":
        state = "running"
    elif backups and backups[0].status == "interrupted":
        state = "failed"
        score -= 15
        reasons.append(
            "The last backup was interrupted (the program was stopped or killed) before it finished."
        )
    elif backups and backups[0].status == "failed":
        state = "failed"
        score -= 15
        reasons.append("The last backup failed.")
    elif any(s.last_error for s in sources):
        state = "partial"
    elif any(s.rpo_state in ("overdue", "never") for s in sources):
        state = "due"
    notices = list(ws.history.notices().values())
    reasons.extend(notices)

    last_drill = None
    drills = ws.history.runs("drill", limit=20)
    finished_drills = [r for r in drills if r.status in VERDICT]
    if finished_drills:
        run = finished_drills[0]
        last_drill = {
            "time": run.finished_at,
            "ok": run.status == "ok",
            "rto_seconds": run.detail.get("rto_seconds"),
            "report": run.detail.get("report"),
        }
        age_days = (now - run.finished_at).days if run.finished else 999  # type: ignore[operator]
        if run.status != "ok":
            score -= 15
            reasons.append("The last restore test failed.")
        elif age_days > DRILL_MAX_AGE_DAYS:
            score -= 10
            reasons.append(f"The last restore test is {age_days} days old.")
    else:
        score -= 15
        reasons.append("No restore test yet: a backup is only proven by a restore.")

    drive_sync = None
    syncs = [r for r in ws.history.runs("drive_sync", limit=20) if r.status == "ok"]
    if syncs:
        when = syncs[0].finished_at
        drive_sync = {
            "name": syncs[0].target,
            "time": when,
            "age_seconds": (now - when).total_seconds() if when else None,
        }
        if when and (now - when).days > DRIVE_SYNC_MAX_AGE_DAYS:
            score -= 5
            reasons.append(f"The .env was last copied to the drive {(now - when).days} days ago.")
    elif any(d.kind == "drive" for d in plan.destinations):
        score -= 5
        reasons.append("The .env has never been copied to the drive.")

    for alert in compute_alerts(ws, now):
        if alert.kind == "size_change":  # staleness is already a source's RPO state above
            score -= 5
            reasons.append(alert.message)

    try:
        next_times = _next_times(ws, now, local)
    except ImportError:
        next_times = {"backup": None, "weekly_review": None, "drill": None}
    return Status(
        plan.name,
        plan.rpo_seconds,
        plan.rto_seconds,
        sources,
        destinations,
        next_times,
        queue,
        last_backup,
        last_drill,
        drive_sync,
        max(0, min(100, score)),
        reasons,
        state,
        notices,
    )
