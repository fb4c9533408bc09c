"""Alerts from the history: a source without a successful backup for too long, and a backup whose size
jumped or collapsed compared with the previous one (a dropped table, a runaway log table, an empty dump).

Pure reading of `history.sqlite`: the dashboard, the Sunday review and the webhook all call
`compute_alerts(ws, now)`. Thresholds come from the plan's `[reminders]` table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from drgui.core.ops.audit import failed_verification
from drgui.core.ops.history import Run
from drgui.core.ops.runstatus import OK, SUCCESS, VERDICT
from drgui.core.plan.workspace import Workspace
from drgui.core.timing.clock import format_iso, parse_iso_or_none

DEFAULT_STALE_DAYS = 3
DEFAULT_SIZE_CHANGE_PERCENT = 50.0


@dataclass(frozen=True)
class Alert:
    kind: str  # "stale", "size_change", "drill_failed" or "audit" (the last `history --verify` failed)
    source: str
    message: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "source": self.source, "message": self.message, "detail": self.detail}


def thresholds(ws: Workspace) -> tuple[int, float]:
    """(days without a successful backup, percent of size change) from the plan's [reminders]."""
    reminders = ws.plan.reminders
    return (
        int(reminders.get("alert_no_backup_days", DEFAULT_STALE_DAYS)),
        float(reminders.get("alert_size_change_percent", DEFAULT_SIZE_CHANGE_PERCENT)),
    )


def source_bytes(run: Run) -> dict[str, int]:
    """Per-source bytes a backup run recorded in its detail (`BackupResult.to_json()`); a source that
    run could not back up (`"ok": false`) is not in it, so it neither counts as a success nor as 0 bytes."""
    return {
        str(s["name"]): int(s.get("bytes", 0))
        for s in run.detail.get("sources", [])
        if isinstance(s, dict) and "name" in s and s.get("ok", True)
    }


def compute_alerts(ws: Workspace, now: datetime) -> list[Alert]:
    """Every alert that holds at `now` (an aware datetime), one list for the dashboard and the webhook."""
    stale_days, size_percent = thresholds(ws)
    successes = [r for r in ws.history.runs("backup", limit=10_000) if r.status in SUCCESS]  # newest first
    plan_created = parse_iso_or_none(ws.plan.created)
    alerts: list[Alert] = []
    for source in ws.plan.sources:
        runs = [
            (run, source_bytes(run)[source.name]) for run in successes if source.name in source_bytes(run)
        ]
        last = runs[0][0].ended_at if runs else None
        since = last or plan_created
        if since is not None and now - since > timedelta(days=stale_days):
            days = (now - since).days
            message = (
                f"No successful backup of source '{source.name}' for {days} days."
                if last
                else f"Source '{source.name}' has never been backed up successfully ({days} days)."
            )
            alerts.append(
                Alert("stale", source.name, message, {"last_success": format_iso(last) if last else None})
            )
        if len(runs) >= 2:
            current, previous = runs[0][1], runs[1][1]
            if previous > 0 and abs(current - previous) * 100.0 / previous > size_percent:
                change = (current - previous) * 100.0 / previous
                alerts.append(
                    Alert(
                        "size_change",
                        source.name,
                        f"The backup of source '{source.name}' changed size by {change:+.0f}% "
                        f"({previous} -> {current} bytes); check it is still complete.",
                        {"previous": previous, "current": current, "percent": round(change, 1)},
                    )
                )
    audit_failure = failed_verification(ws)
    if audit_failure:
        alerts.append(Alert("audit", "", audit_failure))
    alerts.extend(drill_alerts(ws))
    return alerts


def drill_alerts(ws: Workspace) -> list[Alert]:
    """A failed restore test (unattended or by hand) is an alert until a later drill passes."""
    finished = [r for r in ws.history.runs("drill", limit=50) if r.status in VERDICT]
    if not finished or finished[0].status == OK:
        return []
    run = finished[0]
    failed = [str(f) for f in run.detail.get("failed", [])][:3]
    why = "; ".join(failed) or str(run.detail.get("error") or "see the report")
    return [
        Alert(
            "drill_failed",
            "",
            f"The restore test of {run.finished or run.started} failed ({why}); "
            "the backups are not proven until a restore test passes.",
            {"drill": run.detail.get("drill"), "report": run.detail.get("report"), "since": run.finished},
        )
    ]
