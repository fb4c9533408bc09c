"""One backup run: lock, preflight, capture every source into one snapshot, replicate, record.

The snapshot is written once, to the first local destination (or to the home's queue when the plan
has only remote ones), then copied as ciphertext to the others. A destination that fails gets the
snapshot queued; the next run uploads it before doing anything else.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import drgui
from drgui.core.crypto import encrypt_bytes
from drgui.core.destinations.base import Destination, copy_snapshot
from drgui.core.errors import Cancelled, DrguiError, OperationFailed, UsageError
from drgui.core.lock import HomeLock
from drgui.core.notify import backup_finished
from drgui.core.pipeline import write_part
from drgui.core.progress import CancelToken, Progress, ProgressCallback, RateMeter, ignore_progress
from drgui.core.secrets import redact
from drgui.core.snapshot import IDENTITY_FILE, MANIFEST_FILE, Index, PartRecord, new_snapshot_id
from drgui.core.sources.base import CaptureContext, Source
from drgui.core.workspace import LOCAL_KINDS, Workspace


@dataclass
class SourceResult:
    name: str
    kind: str
    bytes: int = 0
    tables: int | None = None
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "kind": self.kind, "bytes": self.bytes}
        if self.tables is not None:
            data["tables"] = self.tables
        if self.warnings:
            data["warnings"] = self.warnings
        return data


@dataclass
class DestResult:
    name: str
    ok: bool
    error: str | None = None
    queued: bool = False

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "ok": self.ok}
        if self.error:
            data["error"] = self.error
        if self.queued:
            data["queued"] = True
        return data


@dataclass
class BackupResult:
    snapshot_id: str
    sources: list[SourceResult]
    destinations: list[DestResult]
    seconds: float
    uploaded_from_queue: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(d.ok for d in self.destinations)

    @property
    def partial(self) -> bool:
        return any(d.ok for d in self.destinations) and not self.ok

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "partial": self.partial,
            "snapshot": self.snapshot_id,
            "sources": [s.to_json() for s in self.sources],
            "destinations": [d.to_json() for d in self.destinations],
            "seconds": round(self.seconds, 3),
            "uploaded_from_queue": self.uploaded_from_queue,
        }


def cleanup_leftovers(ws: Workspace) -> list[str]:
    """Remove `.partial` snapshots of interrupted runs (call while holding the home lock)."""
    removed = []
    for dest in [*_local_destinations(ws.destinations()), ws.queue_destination()]:
        if not dest.available():
            continue
        for snapshot_id in dest.incomplete_ids():
            dest.remove_incomplete(snapshot_id)
            removed.append(f"{dest.name}:{snapshot_id}")
    shutil.rmtree(ws.home.tmp_dir, ignore_errors=True)
    return removed


def _local_destinations(dests: list[Destination]) -> list[Destination]:
    return [d for d in dests if d.kind in LOCAL_KINDS]


def ensure_identity_file(ws: Workspace, dest: Destination) -> None:
    """Every destination holds the passphrase-wrapped identity, so it alone plus the passphrase restores."""
    if ws.wrapped_identity_path.exists() and not dest.exists(IDENTITY_FILE):
        dest.put_bytes(IDENTITY_FILE, ws.wrapped_identity_path.read_bytes())


def find_local_copy(ws: Workspace, snapshot_id: str) -> Destination | None:
    for dest in [*_local_destinations(ws.destinations()), ws.queue_destination()]:
        if dest.available() and snapshot_id in dest.snapshot_ids():
            return dest
    return None


def replicate(
    ws: Workspace,
    source: Destination,
    target: Destination,
    snapshot_id: str,
    progress: ProgressCallback,
    cancel: CancelToken,
) -> DestResult:
    run_id = ws.history.start_run("upload", target=target.name, snapshot_id=snapshot_id)
    meter = RateMeter(progress, "upload", target.name)
    try:
        cancel.check()
        ensure_identity_file(ws, target)
        if snapshot_id not in target.snapshot_ids():
            copy_snapshot(source, target, snapshot_id, progress=lambda n: (cancel.check(), meter.add(n)))
    except Cancelled:
        ws.history.finish_run(run_id, "cancelled")
        raise
    except DrguiError as error:
        message = redact(error.message)
        ws.history.enqueue(snapshot_id, target.name, message)
        ws.history.finish_run(run_id, "failed", detail={"error": message})
        return DestResult(target.name, False, message, queued=True)
    ws.history.dequeue(snapshot_id, target.name)
    ws.history.finish_run(run_id, "ok")
    return DestResult(target.name, True)


def flush_queue(ws: Workspace, progress: ProgressCallback, cancel: CancelToken) -> list[str]:
    """Upload snapshots queued by earlier runs; drop the queue copy once every destination has it."""
    uploaded = []
    names = {d.name for d in ws.plan.destinations}
    for entry in ws.history.queue():
        if entry["destination"] not in names:
            ws.history.dequeue(entry["snapshot"], entry["destination"])
            continue
        local = find_local_copy(ws, entry["snapshot"])
        if local is None:
            ws.history.dequeue(entry["snapshot"], entry["destination"])
            continue
        result = replicate(
            ws, local, ws.destination(entry["destination"]), entry["snapshot"], progress, cancel
        )
        if result.ok:
            uploaded.append(f"{entry['snapshot']}->{entry['destination']}")
    _drop_uploaded_queue_copies(ws)
    return uploaded


def _drop_uploaded_queue_copies(ws: Workspace) -> None:
    queue = ws.queue_destination()
    pending = {e["snapshot"] for e in ws.history.queue()}
    for snapshot_id in queue.snapshot_ids() if queue.available() else []:
        if snapshot_id not in pending:
            queue.delete_snapshot(snapshot_id)


def _capture_source(
    ws: Workspace, source: Source, writer, recipient: str, cancel: CancelToken, progress: ProgressCallback
) -> tuple[dict[str, Any], list[PartRecord], SourceResult]:
    ctx = CaptureContext(workdir=ws.home.tmp_dir, cancel=cancel)
    records: list[PartRecord] = []
    meter = RateMeter(progress, "backup", source.name)
    progress(Progress("backup", source.name, f"Backing up {source.describe()}"))
    parts = source.capture(ctx)
    try:
        for part in parts:
            record = PartRecord(source.name, part.name, part.compressed)
            with writer.open_part(record.key) as out:
                write_part(record, part.stream, out, recipient, cancel, meter)
            records.append(record)
    finally:
        parts.close()
    cancel.check()
    entry = {
        "name": source.name,
        "kind": source.kind,
        **ctx.manifest,
        "parts": [r.to_manifest() for r in records],
        "warnings": ctx.warnings,
    }
    result = SourceResult(
        source.name,
        source.kind,
        sum(r.size for r in records),
        len(ctx.manifest["tables"]) if "tables" in ctx.manifest else None,
        ctx.warnings,
    )
    progress(Progress("backup", source.name, "done", meter.done))
    return entry, records, result


def write_snapshot(
    ws: Workspace,
    sources: list[Source],
    primary: Destination,
    progress: ProgressCallback,
    cancel: CancelToken,
) -> tuple[str, list[SourceResult]]:
    started = datetime.now(UTC)
    snapshot_id = new_snapshot_id(started)
    ws.home.tmp_dir.mkdir(parents=True, exist_ok=True)
    writer = primary.begin(snapshot_id)
    try:
        entries, records, results = [], [], []
        for source in sources:
            entry, source_records, result = _capture_source(
                ws, source, writer, ws.plan.recipient, cancel, progress
            )
            entries.append(entry)
            records.extend(source_records)
            results.append(result)
        ended = datetime.now(UTC)
        manifest = {
            "format": drgui.FORMAT_VERSION,
            "plan": {"id": ws.plan.plan_id, "name": ws.plan.name},
            "snapshot": snapshot_id,
            "start": started.isoformat(),
            "end": ended.isoformat(),
            "drgui_version": drgui.__version__,
            "sources": entries,
        }
        manifest_cipher = encrypt_bytes(json.dumps(manifest, sort_keys=True).encode(), ws.plan.recipient)
        with writer.open_part(MANIFEST_FILE) as out:
            out.write(manifest_cipher)
        index = Index(
            snapshot_id=snapshot_id,
            time=started.isoformat(),
            end_time=ended.isoformat(),
            plan_id=ws.plan.plan_id,
            drgui_version=drgui.__version__,
            sources=[{"name": s.name, "kind": s.kind} for s in sources],
            parts=[r.to_index() for r in records],
            manifest={
                "path": MANIFEST_FILE,
                "size": len(manifest_cipher),
                "sha256": hashlib.sha256(manifest_cipher).hexdigest(),
            },
        )
        cancel.check()
        writer.commit(index)
    except BaseException:
        writer.abort()
        raise
    return snapshot_id, results


def refuse_sources_missing_secrets(sources: list[Source]) -> None:
    """Sources imported from a recovery kit have no password on this machine until added again."""
    for source in sources:
        missing = source.config.settings.get("secrets_missing")
        if missing:
            raise UsageError(
                f"Source '{source.name}' was imported from a recovery kit without its {', '.join(missing)}.",
                hint=f"Add it again: `drgui source remove {source.name}` then `drgui source add {source.name} ...`.",
            )


def run_backup(
    ws: Workspace,
    source_names: list[str] | None = None,
    dest_names: list[str] | None = None,
    progress: ProgressCallback = ignore_progress,
    cancel: CancelToken | None = None,
) -> BackupResult:
    cancel = cancel or CancelToken()
    started = time.monotonic()
    plan = ws.plan
    if not plan.sources:
        raise OperationFailed("The plan has no source to back up.", hint="Add one with `drgui source add`.")
    if not plan.destinations:
        raise OperationFailed("The plan has no destination.", hint="Add one with `drgui dest add`.")
    ws.store.ensure_ready()
    sources = ws.sources(source_names)
    refuse_sources_missing_secrets(sources)
    dests = ws.destinations(dest_names)
    with HomeLock(ws.home.lock_path, "backup"):
        ws.history.mark_interrupted()
        cleanup_leftovers(ws)
        run_id = ws.history.start_run("backup")
        try:
            uploaded = flush_queue(ws, progress, cancel)
            progress(Progress("backup", None, "Checking sources"))
            for source in sources:
                source.preflight()
            locals_ = [d for d in _local_destinations(dests) if d.available()]
            primary = locals_[0] if locals_ else ws.queue_destination()
            if primary in dests:
                ensure_identity_file(ws, primary)
            snapshot_id, source_results = write_snapshot(ws, sources, primary, progress, cancel)
            dest_results = []
            for dest in dests:
                if dest is primary:
                    dest_results.append(DestResult(dest.name, True))
                    continue
                if dest.kind in LOCAL_KINDS and not dest.available():
                    message = f"{dest.describe()} is not available (unplugged or unmounted)."
                    ws.history.enqueue(snapshot_id, dest.name, message)
                    dest_results.append(DestResult(dest.name, False, message, queued=True))
                    continue
                dest_results.append(replicate(ws, primary, dest, snapshot_id, progress, cancel))
            _drop_uploaded_queue_copies(ws)
        except Cancelled:
            ws.history.finish_run(run_id, "cancelled")
            shutil.rmtree(ws.home.tmp_dir, ignore_errors=True)
            raise
        except DrguiError as error:
            ws.history.finish_run(run_id, "failed", detail={"error": redact(str(error.message))})
            backup_finished(ws, "failed", redact(error.message))
            shutil.rmtree(ws.home.tmp_dir, ignore_errors=True)
            raise
        result = BackupResult(snapshot_id, source_results, dest_results, time.monotonic() - started, uploaded)
        status = "ok" if result.ok else ("partial" if result.partial else "failed")
        ws.history.finish_run(run_id, status, snapshot_id=snapshot_id, detail=result.to_json())
        backup_finished(ws, status, "; ".join(f"{d.name}: {d.error}" for d in dest_results if d.error))
        shutil.rmtree(ws.home.tmp_dir, ignore_errors=True)
        return result
