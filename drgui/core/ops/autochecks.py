"""The automatic checklist checks (``checklists.AUTO_CHECKS``), evaluated from the plan's history.

Each check returns ``(ok, detail)``; ``evaluate`` returns ``{name: (ok, detail)}`` for the names
asked for, ready for ``ChecklistRun.apply_auto``. Nothing here touches a destination or a source:
the history is the record of what happened, and the checks read only that.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from drgui.core.ops.history import Run
from drgui.core.ops.runstatus import FAILED, OK, SUCCESS
from drgui.core.plan.config import format_duration
from drgui.core.plan.workspace import Workspace

CheckResult = tuple[bool, str]


def _backed_up_sources(run: Run) -> list[str]:
    return [s.get("name", "") for s in run.detail.get("sources", []) if isinstance(s, dict)]


def backup_within_rpo(ws: Workspace, now: datetime) -> CheckResult:
    target = ws.plan.rpo_seconds
    runs = [r for r in ws.history.runs("backup") if r.status in SUCCESS]
    late = []
    for source in ws.plan.sources:
        last = next((r for r in runs if source.name in _backed_up_sources(r)), None)
        if last is None:
            late.append(f"{source.name}: never")
        elif (now - last.ended_at).total_seconds() > target:
            late.append(f"{source.name}: {format_duration((now - last.ended_at).total_seconds())} ago")
    if not ws.plan.sources:
        return False, "the plan has no source"
    if late:
        return False, f"older than the RPO ({format_duration(target)}): " + ", ".join(late)
    return True, f"every source backed up within {format_duration(target)}"


def _last_ok_within(
    ws: Workspace, now: datetime, kind: str, days: int, *, never: str, what: str
) -> CheckResult:
    """The last ok run of `kind` ended at most `days` days before now: "<what> <age> ago"."""
    last = ws.history.last_run(kind, status=OK)
    if last is None:
        return False, never
    age = now - last.ended_at
    if age > timedelta(days=days):
        return False, f"{what} {age.days} days ago"
    return True, f"{what} {format_duration(age.total_seconds())} ago"


def drill_within_35_days(ws: Workspace, now: datetime) -> CheckResult:
    return _last_ok_within(
        ws, now, "drill", 35, never="no passed restore drill in the history", what="last passed drill"
    )


def drive_synced_within_7_days(ws: Workspace, now: datetime) -> CheckResult:
    drives = [d.name for d in ws.plan.destinations if d.kind == "drive"]
    if not drives:
        return True, "no drive in the plan (nothing to sync)"
    return _last_ok_within(ws, now, "drive_sync", 7, never="the drive was never synced", what="last sync")


def s3_queue_empty(ws: Workspace, now: datetime) -> CheckResult:
    queue = ws.history.queue()
    if queue:
        waiting = ", ".join(f"{q['snapshot']} → {q['destination']}" for q in queue[:3])
        return False, f"{len(queue)} upload(s) waiting: {waiting}"
    return True, "nothing waiting for upload"


def no_failed_backups_7_days(ws: Workspace, now: datetime) -> CheckResult:
    since = now - timedelta(days=7)
    failed = [r for r in ws.history.runs("backup") if r.status == FAILED and r.ended_at >= since]
    if failed:
        return (
            False,
            f"{len(failed)} failed backup(s), last at {failed[0].ended_at.isoformat(timespec='minutes')}",
        )
    return True, "no failed backup in 7 days"


def verify_latest_ok(ws: Workspace, now: datetime) -> CheckResult:
    last = next((r for r in ws.history.runs("backup") if r.status in SUCCESS and r.snapshot_id), None)
    if last is None:
        return False, "no snapshot yet"
    verified = {
        r.target for r in ws.history.runs("verify") if r.snapshot_id == last.snapshot_id and r.status == OK
    }
    failed = {
        r.target
        for r in ws.history.runs("verify")
        if r.target is not None and r.snapshot_id == last.snapshot_id and r.status == FAILED
    }
    dests = [d.name for d in ws.plan.destinations]
    missing = [d for d in dests if d not in verified]
    if failed - verified:
        return False, f"{last.snapshot_id} failed verification on {', '.join(sorted(failed - verified))}"
    if missing:
        return False, f"{last.snapshot_id} not verified on {', '.join(missing)}"
    return True, f"{last.snapshot_id} verified on {', '.join(dests)}"


CHECKS: dict[str, Callable[[Workspace, datetime], CheckResult]] = {
    "backup_within_rpo": backup_within_rpo,
    "drill_within_35_days": drill_within_35_days,
    "drive_synced_within_7_days": drive_synced_within_7_days,
    "s3_queue_empty": s3_queue_empty,
    "no_failed_backups_7_days": no_failed_backups_7_days,
    "verify_latest_ok": verify_latest_ok,
}


def evaluate(ws: Workspace, names: Iterable[str], now: datetime) -> dict[str, CheckResult]:
    """Results for the named checks; an unknown name is left out (apply_auto would refuse it)."""
    return {name: CHECKS[name](ws, now) for name in names if name in CHECKS}
