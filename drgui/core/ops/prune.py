"""Prune: apply each destination's retention policy (restic's forget semantics, retention.py).

Only the plan's own snapshots are considered (its scope at the destination, and legacy-layout ones
whose index names it). Never removed: incomplete snapshots (their leftovers are cleaned only once
older than a day, so a running upload elsewhere is never touched), damaged ones (an index that cannot
be read, a renamed folder, a missing file: reported, left for a person to judge), pinned ones
(History.pinned(), e.g. a drill's evidence) and object-locked ones. Stale multipart uploads under the
plan's prefix are aborted.

Format 2 packs (`packs/<2 hex>/<id>.age`, shared by snapshots) are marked and swept: a pack is
removed only when no index.json left at the destination lists it (any snapshot prune keeps, damaged
or incomplete ones with a readable index included), and an unreferenced pack that no removed snapshot
named (a crashed backup's leftover) only once it is older than a day. Order: a dropped snapshot's
index.json, then its other files, then the packs, so a kill at any moment never leaves a listed
snapshot without a pack it needs. A real prune holds the destination's exclusive lock
(engine/destlock.py), so no backup writes while packs are judged; a dry run takes no lock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from drgui.core import fmt
from drgui.core.engine import destlock
from drgui.core.engine.destinations.base import Destination, ObjectInfo, SnapshotInfo
from drgui.core.engine.snapshot import (
    INDEX_FILE,
    PACK_ID_RE,
    PACKS_DIR,
    SAFETY_KEEP,
    SAFETY_PIN_REASON,
    SNAPSHOTS_DIR,
    is_safety_snapshot,
    pack_key,
    snapshot_time,
)
from drgui.core.errors import DestinationError
from drgui.core.plan.config import DestConfig
from drgui.core.plan.lock import HomeLock
from drgui.core.plan.workspace import Workspace
from drgui.core.timing import retention

LEFTOVER_AGE = timedelta(days=1)
STALE_UPLOAD_AGE = timedelta(hours=24)
UNREFERENCED_PACK_AGE = timedelta(hours=24)  # younger unreferenced packs may be a running backup's


@dataclass
class PackSweep:
    """What prune did (or would do) with one destination's packs."""

    present: int = 0
    referenced: int = 0
    referenced_bytes: int = 0
    remove: list[str] = field(default_factory=list)  # pack ids removed (or, in a dry run, to remove)
    freed_bytes: int = 0
    young: list[str] = field(default_factory=list)  # unreferenced, younger than a day: kept for now
    skipped: dict[str, str] = field(default_factory=dict)  # pack id -> why it could not be removed
    blocked: str | None = None  # why no pack was judged at all
    freed: set[str] = field(default_factory=set)  # named only by the snapshots this prune removes

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "present": self.present,
            "referenced": self.referenced,
            "referenced_bytes": self.referenced_bytes,
            "remove": self.remove,
            "removed_count": len(self.remove),
            "bytes_freed": self.freed_bytes,
            "unreferenced_young": self.young,
            "skipped": self.skipped,
        }
        if self.blocked:
            data["blocked"] = self.blocked
        return data


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
    packs: PackSweep = field(default_factory=PackSweep)
    warnings: list[str] = field(default_factory=list)  # e.g. a stale destination lock that was broken
    error: str | None = None
    locked: bool = False  # the error is another holder's lock at the destination (exit 3)

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
            "packs": self.packs.to_json(),
            "warnings": self.warnings,
        }
        if self.error:
            data["error"] = self.error
        return data


def _pack_lines(dest: DestPrune, dry_run: bool) -> list[str]:
    packs = dest.packs
    if packs.blocked:
        return [f"  packs: not swept: {packs.blocked}"]
    if not packs.present:
        return []
    verb = "would free" if dry_run else "freed"
    lines = [
        f"  packs: {packs.referenced} referenced ({fmt.size(packs.referenced_bytes)}), "
        f"{verb} {len(packs.remove)} ({fmt.size(packs.freed_bytes)})"
    ]
    if packs.young:
        lines.append(
            f"  packs: {len(packs.young)} unreferenced but younger than a day (maybe a backup under way): kept"
        )
    for pack_id, why in packs.skipped.items():
        lines.append(f"  pack {pack_id} not removed: {why}")
    return lines


@dataclass
class PruneResult:
    dry_run: bool
    destinations: list[DestPrune]

    @property
    def ok(self) -> bool:
        return not any(d.error for d in self.destinations)

    @property
    def locked(self) -> bool:
        """Every failure was a lock held by someone else at the destination (exit 3, try again later)."""
        failed = [d for d in self.destinations if d.error]
        return bool(failed) and all(d.locked for d in failed)

    def describe(self) -> list[str]:
        """The plan (a dry run) or what was done, per destination, with each kept snapshot's reasons: the
        text `drgui prune` prints and the app shows before asking to prune."""
        dry_run = self.dry_run
        verb = "would remove" if dry_run else "removed"
        lines: list[str] = []
        for dest in self.destinations:
            lines.extend(f"{dest.name}: {warning}" for warning in dest.warnings)
            if dest.error:
                lines.append(f"{dest.name}: FAILED: {dest.error}")
                continue
            lines.append(f"{dest.name} ({dest.policy}): keep {len(dest.keep)}, {verb} {len(dest.remove)}")
            for snapshot_id in dest.keep:
                lines.append(f"  keep   {snapshot_id}  {'; '.join(dest.reasons.get(snapshot_id, []))}")
            for snapshot_id in dest.remove:
                lines.append(f"  {'remove' if dry_run else 'gone  '} {snapshot_id}")
            for snapshot_id, why in dest.skipped.items():
                lines.append(f"  skipped {snapshot_id}: {why}")
            for snapshot_id, why in dest.damaged.items():
                lines.append(f"  left   {snapshot_id}: not complete ({why}); check it with `drgui verify`")
            if dest.leftovers:
                lines.append(f"  leftovers of interrupted runs removed: {', '.join(dest.leftovers)}")
            if dest.aborted_uploads:
                lines.append(
                    f"  stale uploads {'to abort' if dry_run else 'aborted'}: {len(dest.aborted_uploads)}"
                )
            lines.extend(_pack_lines(dest, dry_run))
        return lines

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
            "packs_removed": sum(len(d.packs.remove) for d in self.destinations),
            "pack_bytes_freed": sum(d.packs.freed_bytes for d in self.destinations),
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


def _pack_references(dest: Destination) -> tuple[dict[str, set[str]], str | None]:
    """Folder name under snapshots/ -> the pack ids its index.json lists, for every index.json there
    (complete or not, readable by this version or not); the second value says why the references are
    unknown (an index.json that is not JSON, or lists packs in a shape we cannot read)."""
    references: dict[str, set[str]] = {}
    for info in list(dest.list_objects(SNAPSHOTS_DIR + "/")):
        parts = info.key.split("/")
        if len(parts) != 3 or parts[2] != INDEX_FILE:
            continue
        try:
            body = json.loads(dest.get_bytes(info.key).decode("utf-8"))
        except FileNotFoundError:
            continue  # removed while we listed (we hold the lock: only by a hand)
        except (ValueError, UnicodeDecodeError) as error:
            return references, f"{info.key} cannot be read ({error}), so the packs it needs are unknown"
        ids = _listed_packs(body)
        if ids is None:
            return references, f"{info.key} does not list its packs in a form this drgui reads"
        references[parts[1]] = ids
    return references, None


def _listed_packs(body: object) -> set[str] | None:
    """The pack ids an index.json body lists (format 1: none), or None when it cannot be told."""
    if not isinstance(body, dict):
        return None
    if "packs" not in body:
        return set() if body.get("format") == 1 else None
    packs = body["packs"]
    if not isinstance(packs, list) or not all(
        isinstance(p, dict) and isinstance(p.get("id"), str) for p in packs
    ):
        return None
    return {p["id"] for p in packs}


def _packs_present(dest: Destination) -> dict[str, ObjectInfo]:
    """Pack id -> its object, for every well-formed pack key. Anything else under packs/ is left alone
    (a killed pack write's temp file is the next backup's to remove: ops/backup.py)."""
    found: dict[str, ObjectInfo] = {}
    for info in dest.list_objects(PACKS_DIR + "/"):
        pack_id = info.key.rsplit("/", 1)[-1].removesuffix(".age")
        if PACK_ID_RE.match(pack_id) and info.key == pack_key(pack_id):
            found[pack_id] = info
    return found


def plan_packs(
    dest: Destination, dropped: set[str], now: datetime, known_freed: set[str] | None = None
) -> tuple[PackSweep, dict[str, ObjectInfo]]:
    """Mark the packs some index.json outside `dropped` lists; sweep the rest when a dropped snapshot
    named them (or `known_freed` holds them: freed by this prune's first pass) or when nobody named
    them and they are older than a day. Returns the plan and the objects to delete."""
    sweep = PackSweep()
    references, unknown = _pack_references(dest)
    present = _packs_present(dest)
    sweep.present = len(present)
    cutoff = now - UNREFERENCED_PACK_AGE
    if unknown:
        sweep.blocked = unknown + "; no pack was removed"
        return sweep, {}
    marked: set[str] = set().union(*(ids for name, ids in references.items() if name not in dropped))
    named_by_dropped: set[str] = set().union(*(ids for name, ids in references.items() if name in dropped))
    sweep.freed = (named_by_dropped | (known_freed or set())) - marked
    doomed: dict[str, ObjectInfo] = {}
    for pack_id, info in sorted(present.items()):
        if pack_id in marked:
            sweep.referenced += 1
            sweep.referenced_bytes += info.size
        elif pack_id in sweep.freed or (info.mtime is not None and info.mtime < cutoff):
            doomed[pack_id] = info
        else:
            sweep.young.append(pack_id)
    sweep.remove = sorted(doomed)
    sweep.freed_bytes = sum(info.size for info in doomed.values())
    return sweep, doomed


def _sweep_packs(dest: Destination, result: DestPrune, now: datetime) -> None:
    """After the dropped snapshots are gone: mark again from the index files there now, then delete."""
    sweep, doomed = plan_packs(dest, set(), now, known_freed=result.packs.freed)
    removed: list[str] = []
    for pack_id, info in sorted(doomed.items()):
        try:
            dest.delete(info.key)
        except DestinationError as error:
            sweep.skipped[pack_id] = error.message
            continue
        removed.append(pack_id)
    sweep.remove = removed
    sweep.freed_bytes = sum(doomed[p].size for p in removed)
    result.packs = sweep


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


def _prune_destination(
    dest: Destination,
    config: DestConfig,
    pinned: dict[str, str],
    now: datetime,
    lock: destlock.DestLock | None,
) -> DestPrune:
    """Plan (and, holding `lock`, apply) one destination's prune; no lock means a dry run."""
    result = plan_destination(dest, config, pinned, now)
    result.packs, _ = plan_packs(dest, set(result.remove), now)
    if lock is not None:
        lock.check()
        _apply(dest, result, now)
        if result.packs.blocked is None:
            # A prune stalled past the stale limit may have lost its lock to a backup, which may now
            # reference packs this sweep would take: check again just before deleting any.
            lock.check()
            _sweep_packs(dest, result, now)
    abort = getattr(dest, "abort_stale_uploads", None)
    if abort:
        result.aborted_uploads = abort(now - STALE_UPLOAD_AGE, dry_run=lock is None)
    return result


def prune(
    ws: Workspace,
    dest_names: list[str] | None = None,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    lock_wait: float | None = None,
) -> PruneResult:
    """Apply each destination's policy; a real run holds the destination's exclusive lock, waiting up
    to `lock_wait` seconds (destlock.EXCLUSIVE_WAIT) for backups there to finish."""
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
            warnings: list[str] = []
            try:
                if dry_run:
                    result = _prune_destination(dest, config, pinned, now, None)
                else:
                    with destlock.exclusive(dest, "prune", wait=lock_wait, warn=warnings.append) as lock:
                        result = _prune_destination(dest, config, pinned, now, lock)
            except destlock.DestinationLocked as error:
                result = DestPrune(
                    config.name, policy_for(config).describe(), error=error.message, locked=True
                )
            except DestinationError as error:
                result = DestPrune(config.name, policy_for(config).describe(), error=error.message)
            result.warnings = warnings + result.warnings
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
                    "packs_removed": {d.name: len(d.packs.remove) for d in results},
                    "pack_bytes_freed": {d.name: d.packs.freed_bytes for d in results},
                    "errors": {d.name: d.error for d in results if d.error},
                    "warnings": {d.name: d.warnings for d in results if d.warnings},
                },
            )
    return outcome
