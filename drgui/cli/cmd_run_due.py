"""drgui run-due: what the OS timer calls every 15 minutes. Runs the backup when the schedule says so
(a run missed while the machine was off happens once, a few minutes after boot), then prunes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from drgui.cli.common import add_command, workspace
from drgui.core.errors import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL
from drgui.core.ops.backup import retry_queue, run_backup
from drgui.core.ops.prune import prune
from drgui.core.ops.runstatus import ATTEMPTED
from drgui.core.plan.lock import LockHeld
from drgui.core.timing import schedule
from drgui.core.timing.clock import format_iso, parse_iso_or_none


def register(sub, common) -> None:
    add_command(sub, common, "run-due", "run what the schedule says is due (called by the OS timer)", run)


def boot_time() -> datetime | None:
    """When this machine started (a run missed while it was off catches up a few minutes after)."""
    try:
        with open("/proc/uptime") as handle:
            uptime = float(handle.read().split()[0])
    except (OSError, ValueError):
        return None
    return datetime.now(UTC) - timedelta(seconds=uptime)


def last_backup_start(ws) -> datetime | None:
    for run in ws.history.runs("backup", limit=50):
        if run.status in ATTEMPTED:
            return run.started_at
    return None


def run(args, out) -> int:
    ws = workspace(args)
    now = datetime.now(UTC)
    tz = schedule.local_tz()
    created = parse_iso_or_none(ws.plan.created)
    due = schedule.evaluate(
        ws.plan.schedule.get("backup", schedule.PRESETS["backup"]),
        last_backup_start(ws),
        now,
        tz,
        created=created,
        started_at=boot_time(),
    )
    data: dict = {
        "ok": True,
        "backup": {
            "due": due.due,
            "reason": due.reason,
            "run_at": format_iso(due.run_at) if due.run_at else None,
        },
    }
    if not due.due:
        human = due.reason
        if ws.history.queue():  # copies an earlier run owes a destination (failed, or killed mid-copy)
            try:
                copied = retry_queue(ws, progress=out.progress)
            except LockHeld as error:
                copied, human = [], f"{human} {error.message}"
            waiting = len(ws.history.queue())
            data["queue"] = {"copied": copied, "waiting": waiting}
            human += f" Copied {len(copied)} queued snapshot(s); {waiting} still waiting."
        out.result(data, human)
        return EXIT_OK
    try:
        result = run_backup(ws)
    except LockHeld as error:
        data["backup"]["skipped"] = error.message
        out.result(data, error.message)
        return EXIT_OK
    data["backup"]["result"] = result.to_json()
    data["ok"] = result.ok
    data["prune"] = prune(ws).to_json() if result.ok else None
    out.result(data, f"{due.reason} Snapshot {result.snapshot_id}: {'ok' if result.ok else 'see errors'}.")
    if result.ok:
        return EXIT_OK
    return EXIT_PARTIAL if result.partial else EXIT_FAILED
