"""drgui run-due: what the OS timer calls every 15 minutes. Runs the backup when the schedule says so
(a run missed while the machine was off happens once, a few minutes after boot), then prunes; then the
unattended restore test when it is due (core/ops/unattended.py), never beside a backup.

`--at TIME` evaluates the schedule as if it were TIME (what runs on Sunday night?) and runs what is due
then; `--dry-run` only says what would run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from drgui.cli.common import add_command, workspace
from drgui.core.errors import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL, UsageError
from drgui.core.ops import unattended
from drgui.core.ops.backup import retry_queue, run_backup
from drgui.core.ops.prune import prune
from drgui.core.ops.runstatus import ATTEMPTED
from drgui.core.plan.lock import LockHeld
from drgui.core.timing import schedule
from drgui.core.timing.clock import format_iso, parse_iso, parse_iso_or_none


def register(sub, common) -> None:
    parser = add_command(
        sub, common, "run-due", "run what the schedule says is due (called by the OS timer)", run
    )
    parser.add_argument(
        "--at",
        metavar="TIME",
        help="evaluate the schedule as if it were TIME (ISO 8601, e.g. 2026-12-06T03:30; local time "
        "unless it names a zone) and run what is due then",
    )
    parser.add_argument("--dry-run", action="store_true", help="only say what would run")


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


def parse_at(text: str | None, tz) -> datetime:
    if not text:
        return datetime.now(UTC)
    try:
        return parse_iso(text, naive=tz)
    except ValueError:
        raise UsageError(
            f"--at {text!r} is not a time.", hint="Use ISO 8601, e.g. --at 2026-12-06T03:30 (local time)."
        ) from None


def run(args, out) -> int:
    from drgui.report.drill_report import write_report

    ws = workspace(args)
    tz = schedule.local_tz()
    now = parse_at(args.at, tz)
    created = parse_iso_or_none(ws.plan.created)
    started_at = boot_time()
    due = schedule.evaluate(
        ws.plan.schedule.get("backup", schedule.PRESETS["backup"]),
        last_backup_start(ws),
        now,
        tz,
        created=created,
        started_at=started_at,
    )
    data: dict[str, Any] = {
        "ok": True,
        "at": format_iso(now),
        "backup": {
            "due": due.due,
            "reason": due.reason,
            "run_at": format_iso(due.run_at) if due.run_at else None,
        },
    }
    human: list[str] = []
    code = EXIT_OK
    if args.dry_run:
        data["dry_run"] = True
        data["backup"]["would_run"] = due.due
        human.append(f"Backup: {due.reason}" + (" It would run now." if due.due else ""))
    elif not due.due:
        line = due.reason
        if ws.history.queue():  # copies an earlier run owes a destination (failed, or killed mid-copy)
            try:
                copied = retry_queue(ws, progress=out.progress)
            except LockHeld as error:
                copied, line = [], f"{line} {error.message}"
            waiting = len(ws.history.queue())
            data["queue"] = {"copied": copied, "waiting": waiting}
            line += f" Copied {len(copied)} queued snapshot(s); {waiting} still waiting."
        human.append(line)
    else:
        try:
            result = run_backup(ws)
        except LockHeld as error:
            data["backup"]["skipped"] = error.message
            human.append(error.message)
        else:
            data["backup"]["result"] = result.to_json()
            data["ok"] = result.ok
            data["prune"] = prune(ws).to_json() if result.ok else None
            human.append(
                f"{due.reason} Snapshot {result.snapshot_id}: {'ok' if result.ok else 'see errors'}."
            )
            if not result.ok:
                code = EXIT_PARTIAL if result.partial else EXIT_FAILED
    # After the backup, never beside it: the drill tests what the night's backup wrote.
    drill = unattended.run_if_due(
        ws, now, tz, report=write_report, started_at=started_at, dry_run=bool(args.dry_run)
    )
    data["drill"] = drill.to_json()
    human.append(drill.describe(tz))
    if not drill.ok:
        data["ok"] = False
        code = code or EXIT_FAILED
    out.result(data, "\n".join(human))
    return code
