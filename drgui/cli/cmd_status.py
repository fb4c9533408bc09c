"""drgui status: readiness per source and destination, RPO state, next due, drill age, upload queue."""

from __future__ import annotations

from datetime import datetime

from drgui.cli.common import add_command, workspace
from drgui.core.ops.status import compute_status
from drgui.core.plan.config import format_duration


def register(sub, common) -> None:
    add_command(sub, common, "status", "how ready is the plan: last backups, RPO, what is next", run)


def _when(value: datetime | None) -> str:
    return value.astimezone().strftime("%a %Y-%m-%d %H:%M") if value else "never"


def run(args, out) -> int:
    ws = workspace(args)
    status = compute_status(ws)
    lines = [f"{status.plan_name}: readiness {status.readiness}% ({status.state})"]
    lines += [f"  - {reason}" for reason in status.reasons]
    lines.append("Sources:")
    for source in status.sources:
        age = format_duration(source.age_seconds) + " ago" if source.age_seconds is not None else "never"
        lines.append(f"  {source.name:<14} {source.rpo_state:<8} last backup {age}")
        if source.last_error:
            lines.append(f"  {'':<14} NOT BACKED UP by the last backup: {source.last_error}")
    lines.append("Destinations:")
    for dest in status.destinations:
        state = "available" if dest.available else "NOT AVAILABLE"
        queued = f", {dest.queued} queued" if dest.queued else ""
        lines.append(f"  {dest.name:<14} {state}, last copy {_when(dest.last_success)}{queued}")
        if dest.problem:
            lines.append(f"  {'':<14} {dest.problem}")
    lines += [f"  {answer['sentence']}" for answer in status.offsite]
    lines.append("Next: " + ", ".join(f"{k.replace('_', ' ')} {_when(v)}" for k, v in status.next.items()))
    if status.last_drill:
        lines.append(
            f"Last restore test: {_when(status.last_drill['time'])}, "
            f"{'passed' if status.last_drill['ok'] else 'FAILED'}"
        )
    out.result(status.to_json(), "\n".join(lines))
    return 0
