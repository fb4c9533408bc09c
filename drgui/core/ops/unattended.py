"""The unattended monthly restore test: `drgui run-due` runs the headless drill when it is due.

When: the plan's `[schedule] drill_auto` rule, by default the drill rule's days at the quiet hour
(`schedule.at_quiet_hour`: "first Sunday 19:00" gives "first Sunday 03:00", after the night's backup and
before the evening reminder). `[drill] unattended = false` turns it off. A drill started after the slot
(by hand or unattended) counts as done; a drill skipped because the home was busy is tried again on the
next call of `run-due`.

Never beside a backup: the drill holds the home's run lock (plan/lock.py) for its whole length, so a
backup that holds it makes the drill wait for the next call, and a backup starting meanwhile waits too.

The result goes where a drill's result always goes (the drill run in the history, the report under
reports/<drill id>/, the dashboard's last drill, an alert while it failed) plus an event
`drill.unattended`, a webhook message and a desktop notification (platform/desktop_notify.py). The Sunday reminder then asks only for the manual part:
`pending_signoff` says which drill waits for it and how many questions are left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from drgui.core.errors import DrguiError
from drgui.core.ops import notify
from drgui.core.ops.drill import DrillResult, ReportWriter, load_result, run_drill
from drgui.core.ops.runstatus import VERDICT
from drgui.core.plan.lock import HomeLock, LockHeld
from drgui.core.plan.workspace import Workspace
from drgui.core.platform import desktop_notify
from drgui.core.timing import schedule
from drgui.core.timing.clock import format_iso, parse_iso, parse_iso_or_none

UNATTENDED_EVENT = "drill.unattended"
SIGNED_EVENT = "drill.signed"
LOCK_PURPOSE = "restore drill"


def enabled(ws: Workspace) -> bool:
    return bool(ws.plan.drill.get("unattended", True))


def rule(ws: Workspace) -> str:
    """The unattended drill's rule: `[schedule] drill_auto`, else the drill rule at the quiet hour."""
    explicit = ws.plan.schedule.get("drill_auto")
    if explicit:
        return str(explicit)
    return schedule.at_quiet_hour(ws.plan.schedule.get("drill", schedule.PRESETS["drill"]))


def last_attempt(ws: Workspace) -> datetime | None:
    """Start of the newest drill run of any outcome (a drill by hand after the slot covers it too), or of
    an unattended drill that could not start (no snapshot yet...): one try per slot, not one per call."""
    runs = ws.history.runs("drill", limit=1)
    times = [runs[0].started_at] if runs else []
    failed_starts = [e for e in ws.history.events() if e["kind"] == UNATTENDED_EVENT and "error" in e["data"]]
    if failed_starts:
        times.append(parse_iso(failed_starts[-1]["time"]))
    return max(times) if times else None


def evaluate(ws: Workspace, now: datetime, tz: tzinfo, *, started_at: datetime | None = None) -> schedule.Due:
    created = parse_iso_or_none(ws.plan.created)
    return schedule.evaluate(rule(ws), last_attempt(ws), now, tz, created=created, started_at=started_at)


@dataclass
class UnattendedDrill:
    """What `run_if_due` did: `ran` with a `result`, or why not (`skipped`, `error`)."""

    due: schedule.Due
    enabled: bool = True
    dry_run: bool = False
    result: DrillResult | None = None
    skipped: str | None = None
    error: str | None = None
    notified: bool = False  # a desktop notification server accepted the message

    @property
    def ran(self) -> bool:
        return self.result is not None

    @property
    def ok(self) -> bool:
        """False only when a drill ran (or tried to) and failed; skipping is not a failure."""
        return self.error is None and (self.result is None or self.result.ok)

    @property
    def would_run(self) -> bool:
        return self.due.due and self.enabled

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "due": self.due.due,
            "enabled": self.enabled,
            "reason": self.due.reason,
            "run_at": format_iso(self.due.run_at) if self.due.run_at else None,
        }
        if self.dry_run:
            data["would_run"] = self.would_run
        if self.skipped:
            data["skipped"] = self.skipped
        if self.error:
            data["error"] = self.error
        if self.result is not None or self.error:
            data["notified"] = self.notified
        if self.result is not None:
            data["result"] = self.result.to_json()
            data["questions_left"] = questions_left(self.result)
        return data

    def describe(self, tz: tzinfo) -> str:
        if not self.enabled:
            return "The unattended restore test is off ([drill] unattended = false)."
        if self.dry_run:
            return f"Restore test: {self.due.reason}" + (" It would run now." if self.would_run else "")
        if self.skipped:
            return f"Restore test due, not started: {self.skipped}"
        if self.error:
            return f"Restore test could not run: {self.error}"
        if self.result is None:
            return f"Restore test: {self.due.reason}"
        return summary(self.result, tz)


def questions_left(result: DrillResult) -> int:
    """Manual checklist items of the drill nobody has answered yet."""
    run = result.checklist_run()
    if run is None:
        return 0
    return sum(1 for state in run.states.values() if not state.auto and not state.done)


def _when(moment: datetime, tz: tzinfo) -> str:
    local = moment.astimezone(tz)
    return f"{local:%A} at {local:%H:%M}"


def summary(result: DrillResult, tz: tzinfo) -> str:
    """One or two sentences for the notification, the webhook and the reminder."""
    when = _when(result.started, tz)
    if result.ok:
        left = questions_left(result)
        ask = (
            f"{left} question{'s' if left != 1 else ''} left for you"
            if left
            else "nothing left but the sign-off"
        )
        return f"The automatic restore test passed on {when} (snapshot {result.snapshot_id}); {ask}."
    failed = "; ".join(f"{c['name']}: {c['detail']}" for c in result.failed_checks[:3])
    return (
        f"The automatic restore test FAILED on {when} (snapshot {result.snapshot_id}): {failed}. "
        f"Report: {result.report_pdf}"
    )


def run_if_due(
    ws: Workspace,
    now: datetime,
    tz: tzinfo,
    *,
    report: ReportWriter,
    started_at: datetime | None = None,
    dry_run: bool = False,
) -> UnattendedDrill:
    """Run the headless drill of the latest snapshot when the unattended drill is due at `now`."""
    outcome = UnattendedDrill(evaluate(ws, now, tz, started_at=started_at), enabled(ws), dry_run)
    if dry_run or not outcome.would_run:
        return outcome
    try:
        with HomeLock(ws.home.lock_path, LOCK_PURPOSE):
            outcome.result = run_drill(ws, "latest", report=report)
    except LockHeld as error:
        outcome.skipped = error.message
        return outcome
    except DrguiError as error:  # no snapshot yet, destination unreachable, keyring locked...
        outcome.error = error.message
    record: dict[str, Any] = {"ok": outcome.ok, "slot": outcome.due.run_at}
    if outcome.result is not None:
        result = outcome.result
        record |= {
            "drill": result.drill_id,
            "run": result.run_id,
            "snapshot": result.snapshot_id,
            "questions_left": questions_left(result),
            "report": result.report_pdf,
        }
        text = summary(result, tz)
    else:
        record["error"] = outcome.error
        text = f"The automatic restore test could not run: {outcome.error}"
    ws.history.append_event(UNATTENDED_EVENT, record)
    notify.notify(ws, text)
    title = "Restore test passed" if outcome.ok else "Restore test FAILED"
    outcome.notified = desktop_notify.send(f"{title} ({ws.plan.name})", text)
    return outcome


def pending_signoff(ws: Workspace) -> DrillResult | None:
    """The newest drill when it ran unattended and nobody has signed it off yet (the reminder's question)."""
    runs = [r for r in ws.history.runs("drill", limit=1) if r.status in VERDICT]
    if not runs:
        return None
    drill_id = runs[0].detail.get("drill")
    events = ws.history.events()
    unattended = any(e["kind"] == UNATTENDED_EVENT and e["data"].get("drill") == drill_id for e in events)
    signed = any(e["kind"] == SIGNED_EVENT and e["data"].get("drill") == drill_id for e in events)
    if not unattended or signed or not drill_id:
        return None
    try:
        return load_result(ws, str(drill_id))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def reminder_lines(ws: Workspace, tz: tzinfo) -> list[str] | None:
    """The drill reminder's text when an unattended drill waits for its manual part, else None."""
    result = pending_signoff(ws)
    if result is None:
        return None
    lines = [summary(result, tz)]
    if result.ok:
        lines.append("Open the restore test to answer the checklist and sign the drill off.")
    else:
        lines.append("Open the report, fix what failed, and run the restore test again.")
    return lines
