"""What snapshots exist where, merged across destinations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from drgui.core.engine.destinations.base import SnapshotInfo
from drgui.core.plan.workspace import Workspace


def list_snapshots(ws: Workspace, dest_name: str | None = None) -> list[dict[str, Any]]:
    """[{id, time, sources, destinations, bytes, complete, problems}], oldest first by start time.

    Every snapshot of the plan with an index.json is listed; one that is damaged or not complete on a
    destination (index unreadable, renamed folder, a file missing or of the wrong size) has
    `complete: false` and a reason per destination in `problems`.
    """
    dests = [ws.destination(dest_name)] if dest_name else ws.destinations()
    merged: dict[str, dict[str, Any]] = {}
    order: dict[str, tuple[datetime, str]] = {}
    for dest in dests:
        if not dest.available():
            continue
        for info in dest.snapshots():
            row = merged.setdefault(info.snapshot_id, {"destinations": [], "complete": True, "problems": []})
            if "id" not in row or (not row["sources"] and info.index is not None):
                row.update(_describe(info))  # the first readable index describes the snapshot
                order[info.snapshot_id] = info.order
            row["destinations"].append(dest.name)
            if not info.complete:
                row["complete"] = False
                row["problems"].append(f"{dest.name}: {info.problem}")
    return [merged[k] for k in sorted(merged, key=lambda k: order[k])]


def _describe(info: SnapshotInfo) -> dict[str, Any]:
    return {
        "id": info.snapshot_id,
        "time": info.time.isoformat(),
        "sources": info.source_names,
        "bytes": info.index.total_size if info.index else 0,
    }
