"""What snapshots exist where, merged across destinations."""

from __future__ import annotations

from typing import Any

from drgui.core.errors import DrguiError
from drgui.core.snapshot import snapshot_time
from drgui.core.workspace import Workspace


def list_snapshots(ws: Workspace, dest_name: str | None = None) -> list[dict[str, Any]]:
    """[{id, time, sources, destinations, bytes, complete}], oldest first. Only complete snapshots are listed."""
    dests = [ws.destination(dest_name)] if dest_name else ws.destinations()
    merged: dict[str, dict[str, Any]] = {}
    for dest in dests:
        if not dest.available():
            continue
        for snapshot_id in dest.snapshot_ids():
            row = merged.get(snapshot_id)
            if row is None:
                try:
                    index = dest.read_index(snapshot_id)
                except DrguiError:
                    continue
                row = merged[snapshot_id] = {
                    "id": snapshot_id,
                    "time": snapshot_time(snapshot_id).isoformat(),
                    "sources": [s["name"] for s in index.sources],
                    "destinations": [],
                    "bytes": index.total_size,
                    "complete": True,
                }
            row["destinations"].append(dest.name)
    return [merged[k] for k in sorted(merged)]
