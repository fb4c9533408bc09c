"""Prune: apply each destination's retention policy (restic's forget semantics, retention.py).

Only the plan's own snapshots are considered (its scope at the destination, and legacy-layout ones
whose index names it). Never removed: incomplete snapshots (their leftovers are cleaned only once
older than a day, so a running upload elsewhere is never touched), damaged ones (an index that cannot
be read, a renamed folder, a missing file: reported, left for a person to judge), pinned ones
(History.pinned(), e.g. a drill's evidence) and object-locked ones. Stale multipart uploads under the
plan's prefix are aborted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from drgui.core.engine.destinations.base import Destination, SnapshotInfo
from drgui.core.engine.snapshot import SAFETY_KEEP, SAFETY_PIN_REASON, is_safety_snapshot, snapshot_time
from drgui.core.errors import DestinationError
from drgui.core.plan.config import DestConfig
from drgui.core.plan.lock import HomeLock
from drgui.core.plan.workspace import Workspace
from drgui.core.timing import retention

LEFTOVER_AGE = timedelta(days=1)
STALE_UPLOAD_AGE = timedelta(hours=24)


@dataclass
class DestPrune:
    name: str
    policy: str
    keep: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    reasons: dict[str, list[str]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # id -> why a planned removal was not done
    damaged: dict[str, str] = field(default_factory=dict)  # id -> why it is not complete (left alone)
    leftovers: list[str] = field(default_factory=list)
    aborted_uploads: list[str] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "policy": self.policy,
            "keep": self.keep,
            "remove": self.remove,
            "reasons": self.reasons,
            "skipped": self.skipped,
            "damaged": self.damaged,
            "leftovers_removed": self.leftovers,
            "uploads_aborted": self.aborted_uploads,
        }
        if self.error:
            data["error"] = self.error
        return data


@dataclass
class PruneResult:
    dry_run: bool
    destinations: list[DestPrune]

    @property
    def ok(self) -> bool:
        return not any(d.error for d in self.destinations)

    def to_json(self) -> dict[str, Any]:
        keep: set[str] = set()
        remove: set[str] = set()
        reasons: dict[str, list[str]] = {}
        several = len(self.destinations) > 1
        for dest in self.destinations:
            keep.update(dest.keep)
            remove.update(dest.remove)
            for snapshot_id, why in dest.reasons.items():
                reasons.setdefault(snapshot_id, []).extend(f"{dest.name}: {w}" if several else w for w in why)
        return {
            "ok": self.ok,
            "dry_run": self.dry_run,
            "keep": sorted(keep),
            "remove": sorted(remove - keep) if several else sorted(remove),
            "reasons": reasons,
            "destinations": [d.to_json() for d in self.destinations],
        }


def policy_for(config: DestConfig) -> retention.Policy:
    if config.retention:
        return retention.Policy.from_dict(config.retention)
    return retention.DEFAULT_POLICIES.get(config.kind, retention.DEFAULT_POLICIES["local"])


def _times(infos: list[SnapshotInfo]) -> dict[datetime, str]:
    """One distinct instant per snapshot: its full start time (identical times get microsecond offsets,
    in the one snapshot order)."""
    by_time: dict[datetime, str] = {}
    for info in sorted(infos, key=lambda i: i.order):
        time = info.time
        while time in by_time:
            time += timedelta(microseconds=1)
        by_time[time] = info.snapshot_id
    return by_time


def plan_destination(
    dest: Destination, config: DestConfig, pinned: dict[str, str], now: datetime
) -> DestPrune:
    policy = policy_for(config)
    result = DestPrune(dest.name, policy.describe())
    found = dest.snapshots()
    complete = [info for info in found if info.complete]
    backups = [info for info in complete if not is_safety_snapshot(info.source_names)]
    by_time = _times(backups)
    decided = retention.plan(list(by_time), policy, now=now)
    for kept in decided.keep:
        snapshot_id = by_time[kept.time]
        result.keep.append(snapshot_id)
        result.reasons[snapshot_id] = list(kept.reasons)
    lock_reason = getattr(dest, "snapshot_lock_reason", None)
    for time in decided.remove:
        snapshot_id = by_time[time]
        protected = []
        if snapshot_id in pinned:
            protected.append(f"pinned ({pinned[snapshot_id]})")
        locked = lock_reason(snapshot_id) if lock_reason else None
        if locked:
            protected.append(locked)
        if protected:
            result.keep.append(snapshot_id)
            result.reasons[snapshot_id] = protected
        else:
            result.remove.append(snapshot_id)
            result.reasons[snapshot_id] = ["not kept by the policy " + policy.describe()]
    for info in complete:
        if is_safety_snapshot(info.source_names):
            _plan_safety_snapshot(result, info, pinned, now)
    result.keep.sort()
    result.remove.sort()
    for info in found:
        if not info.complete:
            result.damaged[info.snapshot_id] = str(info.problem)
            result.reasons[info.snapshot_id] = [f"not complete, never pruned: {info.problem}"]
    for snapshot_id in dest.incomplete_ids():
        result.reasons.setdefault(snapshot_id, []).append("incomplete (never pruned as a snapshot)")
    return result


def _plan_safety_snapshot(
    result: DestPrune, info: SnapshotInfo, pinned: dict[str, str], now: datetime
) -> None:
    """A pre-restore safety snapshot is outside the policy's buckets (it must not displace the day's real
    backup): kept SAFETY_KEEP_DAYS after it was taken, longer only when something else pinned it."""
    until = info.time + SAFETY_KEEP
    other_pin = pinned.get(info.snapshot_id, "")
    if other_pin.startswith(SAFETY_PIN_REASON):
        other_pin = ""
    if now < until or other_pin:
        reason = (
            f"pinned ({other_pin})"
            if other_pin
            else f"pre-restore safety snapshot, kept until {until:%Y-%m-%d}"
        )
        result.keep.append(info.snapshot_id)
        result.reasons[info.snapshot_id] = [reason]
    else:
        result.remove.append(info.snapshot_id)
        result.reasons[info.snapshot_id] = [f"pre-restore safety snapshot older than {SAFETY_KEEP.days} days"]


def _apply(dest: Destination, result: DestPrune, now: datetime) -> None:
    for snapshot_id in list(result.remove):
        try:
            dest.delete_snapshot(snapshot_id)
        except DestinationError as error:
            result.remove.remove(snapshot_id)
            result.keep.append(snapshot_id)
            result.skipped[snapshot_id] = error.message
            result.reasons[snapshot_id] = [f"could not be removed: {error.message}"]
    for snapshot_id in dest.incomplete_ids():
        if snapshot_time(snapshot_id) < now - LEFTOVER_AGE:
            dest.remove_incomplete(snapshot_id)
            result.leftovers.append(snapshot_id)


def prune(
    ws: Workspace,
    dest_names: list[str] | None = None,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> PruneResult:
    now = now or datetime.now(UTC)
    configs = [ws.plan.destination(n) for n in dest_names] if dest_names else list(ws.plan.destinations)
    results: list[DestPrune] = []
    with HomeLock(ws.home.lock_path, "prune"):
        run_id = None if dry_run else ws.history.start_run("prune")
        pinned = ws.history.pinned()
        for config in configs:
            dest = ws.destination(config.name, for_prune=True)
            if not dest.available():
                results.append(DestPrune(config.name, "", error=f"{dest.describe()} is not available."))
                continue
            try:
                result = plan_destination(dest, config, pinned, now)
                if not dry_run:
                    _apply(dest, result, now)
                abort = getattr(dest, "abort_stale_uploads", None)
                if abort:
                    result.aborted_uploads = abort(now - STALE_UPLOAD_AGE, dry_run=dry_run)
            except DestinationError as error:
                result = DestPrune(config.name, policy_for(config).describe(), error=error.message)
            results.append(result)
        outcome = PruneResult(dry_run, results)
        if run_id is not None:
            ws.history.finish_run(
                run_id,
                "ok" if outcome.ok else "partial",
                detail={
                    "removed": {d.name: d.remove for d in results},
                    "leftovers": {d.name: d.leftovers for d in results},
                    "uploads_aborted": {d.name: d.aborted_uploads for d in results},
                    "errors": {d.name: d.error for d in results if d.error},
                },
            )
    return outcome
