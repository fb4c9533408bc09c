"""Audit anchors at the destinations: the chain head (sequence, MAC) that every snapshot's index.json
carries (`"audit"`, written by ops/backup.py from `History.anchor()`).

index.json is plaintext, so an anchor is read without the key; its MAC is only meaningful checked
against the local log with the key (ops/audit.py). This module imports no workspace: the workspace
passes `newest_anchor` to its History, so a new log links its first record to the last anchor found.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from drgui.core.engine.destinations.base import Destination
from drgui.core.engine.snapshot import INDEX_FILE, snapshot_prefix
from drgui.core.errors import DrguiError
from drgui.core.ops.history import Head

log = logging.getLogger(__name__)
INDEX_KEY = "audit"
ANCHORS_PER_DESTINATION = 3  # the newest few, so one damaged index does not hide the others


@dataclass(frozen=True)
class Anchor:
    head: Head
    destination: str
    snapshot_id: str
    snapshot_time: str

    @property
    def where(self) -> str:
        return f"snapshot {self.snapshot_id} at '{self.destination}'"

    def to_json(self) -> dict[str, Any]:
        return {
            **self.head.to_json(),
            "destination": self.destination,
            "snapshot": self.snapshot_id,
            "snapshot_time": self.snapshot_time,
        }


def index_anchor(data: bytes) -> Head | None:
    """The anchor an index.json holds (top level, or under "extra" as v1 indexes carry it), or None."""
    try:
        body = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(body, dict):
        return None
    extra = body.get("extra")
    found = body.get(INDEX_KEY) or (extra.get(INDEX_KEY) if isinstance(extra, dict) else None)
    return Head.from_json(found)


def destination_anchors(
    dest: Destination, limit: int = ANCHORS_PER_DESTINATION
) -> tuple[list[Anchor], list[str]]:
    """The anchors of the newest `limit` snapshots at `dest` that carry one (newest first), and the
    snapshots it lists at all (oldest first); an unreachable destination gives ([], [])."""
    try:
        if not dest.available():
            return [], []
        infos = [info for info in dest.snapshots() if info.complete and not info.legacy]
    except (DrguiError, OSError) as error:
        log.info("destination %s: no anchors read (%s)", dest.name, error)
        return [], []
    anchors: list[Anchor] = []
    for info in reversed(infos):
        if len(anchors) >= limit:
            break
        try:
            data = dest.get_bytes(f"{snapshot_prefix(info.snapshot_id)}/{INDEX_FILE}")
        except (DrguiError, OSError):
            continue
        head = index_anchor(data)
        if head is not None and head.mac:
            time = info.index.time if info.index else ""
            anchors.append(Anchor(head, dest.name, info.snapshot_id, time))
    return anchors, [info.snapshot_id for info in infos]


def newest_anchor(dests: list[Destination]) -> tuple[Head, str] | None:
    """The anchor with the highest sequence at any reachable destination, and where it is."""
    best: Anchor | None = None
    for dest in dests:
        anchors, _ = destination_anchors(dest, limit=1)
        for anchor in anchors:
            if best is None or anchor.head.seq > best.head.seq:
                best = anchor
    return (best.head, best.where) if best else None
