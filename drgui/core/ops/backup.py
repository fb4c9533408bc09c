"""One backup run: lock, preflight, capture every source into one snapshot, replicate, record.

The snapshot is written once, to the first local destination (or to the home's queue when the plan
has only remote ones), then copied as ciphertext to the others. A destination that fails gets the
snapshot queued; the next run uploads it before doing anything else. A source that cannot be read
does not stop the others: the snapshot holds the rest and the run is partial (exit 4).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import drgui
from drgui.core.engine import destlock
from drgui.core.engine.crypto import encrypt_bytes
from drgui.core.engine.destinations.base import Destination, SnapshotInfo, SnapshotWriter, copy_snapshot
from drgui.core.engine.manifest import FILE_LIST_PART, ContentIndex, LineSplitter
from drgui.core.engine.packs import PackContext, PackWriter, copy_packs, list_packs
from drgui.core.engine.pipeline import read_part, write_part
from drgui.core.engine.snapshot import (
    FORMAT_V2,
    IDENTITY_FILE,
    MANIFEST_FILE,
    PACKS_DIR,
    Index,
    PackRef,
    PartRecord,
    find_part,
    is_safety_snapshot,
    new_snapshot_id,
    pack_key,
    snapshot_prefix,
    write_format,
)
from drgui.core.engine.sources.base import CaptureContext, Source
from drgui.core.engine.verify import load_manifest
from drgui.core.errors import (
    Cancelled,
    DestinationError,
    DrguiError,
    OperationFailed,
    SourceError,
    UsageError,
)
from drgui.core.ops.notify import backup_finished
from drgui.core.plan.lock import HomeLock
from drgui.core.plan.secrets import redact
from drgui.core.plan.workspace import LOCAL_KINDS, Workspace
from drgui.core.progress import (
    CancelToken,
    Progress,
    ProgressCallback,
    RateMeter,
    ScanCounts,
    ignore_progress,
)

PACKED_KINDS = ("folder", "s3")  # sources written as format 2 packs; the others stay whole parts


@dataclass
class SourceResult:
    name: str
    kind: str
    bytes: int = 0
    tables: int | None = None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None  # set when this source could not be backed up (the others were)
    scan: ScanCounts | None = None  # format 2: files and bytes scanned, unchanged, new

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "kind": self.kind, "bytes": self.bytes, "ok": self.ok}
        if self.tables is not None:
            data["tables"] = self.tables
        if self.warnings:
            data["warnings"] = self.warnings
        if self.error:
            data["error"] = self.error
        if self.scan is not None:
            data["scan"] = self.scan.to_json()
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
    warnings: list[str] = field(default_factory=list)  # about the run itself, e.g. a damaged history

    @property
    def failed_sources(self) -> list[SourceResult]:
        return [s for s in self.sources if not s.ok]

    @property
    def ok(self) -> bool:
        return all(d.ok for d in self.destinations) and not self.failed_sources

    @property
    def partial(self) -> bool:
        """The snapshot is complete somewhere, but a source or a destination is missing from it."""
        return any(d.ok for d in self.destinations) and not self.ok

    def problems(self) -> list[str]:
        """One line per failed source and destination (history detail, notifications)."""
        return [f"source {s.name}: {s.error}" for s in self.failed_sources] + [
            f"{d.name}: {d.error}" for d in self.destinations if d.error
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "partial": self.partial,
            "snapshot": self.snapshot_id,
            "sources": [s.to_json() for s in self.sources],
            "destinations": [d.to_json() for d in self.destinations],
            "seconds": round(self.seconds, 3),
            "uploaded_from_queue": self.uploaded_from_queue,
            "warnings": self.warnings,
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
        removed += [f"{dest.name}:{key}" for key in remove_stale_pack_temps(dest)]
    shutil.rmtree(ws.home.tmp_dir, ignore_errors=True)
    return removed


STALE_PACK_TEMP = 3600.0  # seconds; a younger temp file may be a pack another run is writing


def remove_stale_pack_temps(dest: Destination) -> list[str]:
    """The temp files of packs a killed run was writing (`packs/xx/.<id>.age.*.tmp`), over an hour old."""
    root = getattr(dest, "root", None)
    if not isinstance(root, Path) or not (root / PACKS_DIR).is_dir():
        return []
    packs = root / PACKS_DIR
    removed = []
    now = time.time()
    for path in packs.glob("*/.*.tmp"):
        with contextlib.suppress(OSError):
            if now - path.stat().st_mtime > STALE_PACK_TEMP:
                path.unlink()
                removed.append(path.relative_to(root).as_posix())
    return removed


def _local_destinations(dests: list[Destination]) -> list[Destination]:
    return [d for d in dests if d.kind in LOCAL_KINDS]


def ensure_identity_file(ws: Workspace, dest: Destination) -> None:
    """Every destination holds the passphrase-wrapped identity, so it alone plus the passphrase restores."""
    if ws.wrapped_identity_path.exists() and not dest.exists(IDENTITY_FILE):
        dest.put_bytes(IDENTITY_FILE, ws.wrapped_identity_path.read_bytes())


def repair_identity_copies(ws: Workspace, dests: list[Destination]) -> list[str]:
    """Compare each destination's identity.age with the home's; a copy that differs while another
    destination holds the home's bytes is damaged: it is kept aside (identity.age.damaged-<time>) and
    rewritten. When no destination agrees with the home, nothing is written (the home's copy may be the
    damaged one: corruption is never spread); the warning says how to check. Returns the warnings."""
    if not ws.wrapped_identity_path.exists():
        return []
    home_copy = ws.wrapped_identity_path.read_bytes()
    copies: dict[str, bytes] = {}
    for dest in dests:
        try:
            if dest.available() and dest.exists(IDENTITY_FILE):
                with dest.open_read(IDENTITY_FILE) as handle:
                    copies[dest.name] = handle.read()
        except (DrguiError, OSError):
            continue  # unreachable now: the copy's own error is reported elsewhere
    agreeing = [name for name, data in copies.items() if data == home_copy]
    warnings = []
    for dest in dests:
        if dest.name not in copies or copies[dest.name] == home_copy:
            continue
        if not agreeing:
            warnings.append(
                f"identity.age at destination '{dest.name}' differs from this plan's copy in its home. "
                f"Check it: `age -d` of it must accept the recovery passphrase; if not, delete it and the "
                "next backup writes it again."
            )
            continue
        aside = f"{IDENTITY_FILE}.damaged-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
        try:
            dest.put_bytes(aside, copies[dest.name])
            dest.put_bytes(IDENTITY_FILE, home_copy)
        except (DrguiError, OSError) as error:
            warnings.append(
                f"identity.age at destination '{dest.name}' is damaged and could not be rewritten: {error}"
            )
            continue
        warnings.append(
            f"identity.age at destination '{dest.name}' was damaged (it differed from the copy at "
            f"'{agreeing[0]}' and in the home): rewritten, the damaged one kept as {aside}."
        )
    return warnings


def find_local_copy(ws: Workspace, snapshot_id: str) -> Destination | None:
    for dest in [*_local_destinations(ws.destinations()), ws.queue_destination()]:
        if dest.available() and snapshot_id in dest.snapshot_ids():
            return dest
    return None


COPY_PENDING = "the copy did not finish (interrupted); the next backup or run-due copies it"


def replicate(
    ws: Workspace,
    source: Destination,
    target: Destination,
    snapshot_id: str,
    progress: ProgressCallback,
    cancel: CancelToken,
) -> DestResult:
    """Copy one snapshot to `target`. The copy is in the queue while it runs (durably, before the first
    byte), so a run killed mid-copy leaves an entry that the next backup or run-due retries."""
    ws.history.enqueue(snapshot_id, target.name, COPY_PENDING)
    run_id = ws.history.start_run("upload", target=target.name, snapshot_id=snapshot_id)
    meter = RateMeter(progress, "upload", target.name)

    def copied(size: int) -> None:
        cancel.check()
        meter.add(size)

    try:
        cancel.check()
        ensure_identity_file(ws, target)
        if snapshot_id not in target.snapshot_ids():
            target.remove_incomplete(snapshot_id)  # what a killed copy left there (parts, an S3 upload)
            refs = source.read_index(snapshot_id).packs
            if not refs:
                copy_snapshot(source, target, snapshot_id, progress=copied)
            else:
                with destlock.shared(target, "copy") as lock:
                    # Only the packs the target lacks, all before the snapshot's index (copied last).
                    others = [d for d in ws.destinations() if d.name not in (source.name, target.name)]
                    copy_packs([source, *others], target, refs, progress=copied)
                    lock.check()
                    copy_snapshot(source, target, snapshot_id, progress=copied)
    except Cancelled:
        ws.history.finish_run(run_id, "cancelled")
        raise
    except DrguiError as error:
        message = redact(error.message)
        ws.history.enqueue(snapshot_id, target.name, message, attempt=False)
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
    if not queue.available():
        return
    kept: set[str] = set()
    for snapshot_id in queue.snapshot_ids():
        if snapshot_id not in pending:
            queue.delete_snapshot(snapshot_id)
        else:
            kept.update(ref.id for ref in queue.read_index(snapshot_id).packs)
    for pack_id in set(list_packs(queue)) - kept:  # packs only the uploaded snapshots needed
        queue.delete(pack_key(pack_id))


def own_directories(ws: Workspace) -> dict[Path, str]:
    """drgui's own directories, never captured by a folder source: the home and local destinations."""
    own = {ws.home.path: "this plan's drgui home"}
    for dest in _local_destinations(ws.destinations()):
        root = getattr(dest, "base_root", None) or getattr(dest, "root", None)  # with other plans' scopes
        if isinstance(root, Path):
            own[root] = f"the destination '{dest.name}'"
    return own


def own_s3_prefixes(ws: Workspace) -> dict[tuple[str, str, str], str]:
    """The plan's S3 destinations as key prefixes an S3 source never captures: the whole prefix given to
    drgui, or with none, the plan's scope and the legacy `snapshots/`."""
    own = {}
    for config in ws.plan.destinations:
        if config.kind != "s3":
            continue
        endpoint, bucket = str(config.settings.get("endpoint_url") or ""), str(config.settings["bucket"])
        base = str(config.settings.get("prefix", "")).strip("/")
        for prefix in [base] if base else [ws.plan.plan_id, "snapshots"]:
            own[(endpoint, bucket, prefix + "/")] = f"the destination '{config.name}'"
    return own


@dataclass
class PackedRun:
    """A format-2 run: new packs go to `primary`; the parent snapshots and the packs that may be
    referenced come from `reference` (the primary, or for a queued run the first remote destination)."""

    ws: Workspace
    primary: Destination
    reference: Destination | None
    force_read: bool
    infos: list[SnapshotInfo] = field(default_factory=list)
    known: dict[str, PackRef] = field(default_factory=dict)
    writers: list[PackWriter] = field(default_factory=list)
    indexes: list[ContentIndex] = field(default_factory=list)
    identity: str | None = None
    warnings: list[str] = field(default_factory=list)
    lock: destlock.DestLock | None = None  # the shared lock at the primary destination
    next_indexes: dict[str, ContentIndex] = field(default_factory=dict)

    @classmethod
    def open(
        cls, ws: Workspace, primary: Destination, reference: Destination | None, force_read: bool
    ) -> PackedRun:
        run = cls(ws, primary, reference, force_read)
        if reference is not None:
            try:
                run.infos = [i for i in reference.snapshots() if i.complete and i.index is not None]
            except DrguiError as error:
                run.warnings.append(
                    f"destination '{reference.name}' could not be listed ({redact(error.message)}): "
                    "every file is read and stored again"
                )
                run.reference = None
        # A pack is referenced only when an index at the reference destination lists it (the parent's
        # entries are never trusted over the destination: prune may have removed packs since).
        run.known = {ref.id: ref for info in run.infos if info.index for ref in info.index.packs}
        return run

    def parent(self, source: Source) -> SnapshotInfo | None:
        """The newest complete format-2 snapshot of this source at the reference destination."""
        candidates = [
            i
            for i in self.infos
            if i.index is not None
            and i.index.format >= FORMAT_V2
            and source.name in i.source_names
            and not is_safety_snapshot(i.source_names)
        ]
        return candidates[-1] if candidates else None

    def context(self, source: Source, cancel: CancelToken, progress: ProgressCallback) -> PackContext | None:
        if source.kind not in PACKED_KINDS or write_format() < FORMAT_V2:
            return None
        self.ws.home.tmp_dir.mkdir(parents=True, exist_ok=True)
        index = ContentIndex(self.ws.home.tmp_dir / f"content-{len(self.indexes)}-{source.name}.sqlite")
        self.indexes.append(index)
        parent = self.parent(source)
        warnings: list[str] = []
        if parent is not None and self.reference is not None:
            try:
                cache = self.cache_path(source.name)
                if not self.force_read and _cached_snapshot(cache) == parent.snapshot_id:
                    index.close()  # the entries this home wrote last time, for this very parent
                    shutil.copyfile(cache, index.path)
                    index = ContentIndex(index.path)
                    self.indexes[-1] = index
                else:
                    if self.identity is None:
                        self.identity = self.ws.identity()
                    load_parent(self.reference, parent.snapshot_id, source.name, self.identity, index, cancel)
            except (DrguiError, ValueError, OSError, sqlite3.Error) as error:
                with contextlib.suppress(OSError, sqlite3.Error):
                    index.close()
                index = ContentIndex(index.path)  # empty: no parent, every file is read
                self.indexes[-1] = index
                detail = redact(error.message) if isinstance(error, DrguiError) else str(error)
                warnings.append(
                    f"the parent snapshot {parent.snapshot_id} could not be read ({detail}): every file "
                    "was read and stored again"
                )
        writer = PackWriter(self.primary, self.ws.plan.recipient, cancel)
        self.writers.append(writer)
        next_index = ContentIndex(self.ws.home.tmp_dir / f"next-{len(self.indexes)}-{source.name}.sqlite")
        self.indexes.append(next_index)
        self.next_indexes[source.name] = next_index

        def report(counts: ScanCounts) -> None:
            message = (
                f"{counts.files_scanned} files scanned, {counts.files_unchanged} unchanged, "
                f"{counts.files_new} new"
            )
            snapshot = ScanCounts(**counts.to_json())
            progress(Progress("backup", source.name, message, counts.bytes_scanned, scan=snapshot))

        return PackContext(
            writer,
            index,
            self.known,
            self.force_read,
            report=report,
            warnings=warnings,
            next_index=next_index,
        )

    def cache_path(self, name: str) -> Path:
        """This home's copy of the last file list it wrote for source `name` at the reference destination:
        used only while that snapshot is still the parent there, and its packs only when an index there
        lists them (so it is never trusted over the destination)."""
        where = self.reference.name if self.reference is not None else "-"
        return self.ws.home.path / "cache" / "file-lists" / where / f"{name}.sqlite"

    def keep_caches(self, snapshot_id: str, captured: set[str]) -> None:
        """After the commit: the new file lists become the next run's parents (for a queued snapshot,
        once it is at the reference destination: until then the parent there is another one)."""
        for name, next_index in self.next_indexes.items():
            if name in captured:
                with contextlib.suppress(OSError, sqlite3.Error):
                    next_index.keep_as(snapshot_id, self.cache_path(name))

    def discard_new_packs(self) -> None:
        """The run failed: its new packs are referenced by nothing; remove them (prune would, a day later)."""
        for writer in self.writers:
            writer.abort()
            for pack_id in writer.written:
                with contextlib.suppress(DrguiError, OSError):
                    self.primary.delete(pack_key(pack_id))

    def close(self) -> None:
        for index in self.indexes:
            with contextlib.suppress(OSError, sqlite3.Error):
                index.close()


def _cached_snapshot(cache: Path) -> str | None:
    if not cache.is_file():
        return None
    try:
        db = sqlite3.connect(cache)
        try:
            row = db.execute("SELECT snapshot FROM meta").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    return str(row[0]) if row else None


def load_parent(
    dest: Destination,
    snapshot_id: str,
    source_name: str,
    identity: str,
    index: ContentIndex,
    cancel: CancelToken,
) -> None:
    """Stream the parent snapshot's file list of `source_name` into `index` (checked like any part)."""
    manifest = load_manifest(dest, dest.read_index(snapshot_id), identity)
    entry = next((e for e in manifest["sources"] if e["name"] == source_name), None)
    if entry is None or entry.get("format") != FORMAT_V2:
        return
    part = find_part(entry, FILE_LIST_PART)
    if part is None:
        raise OperationFailed(f"its manifest names no {FILE_LIST_PART} for source '{source_name}'")
    sink = LineSplitter(index.add_parent)
    try:
        with dest.open_read(f"{snapshot_prefix(snapshot_id)}/{part['path']}") as reader:
            size, digest, _cipher = read_part(part, reader, identity, sink, cancel)
    except FileNotFoundError:
        raise OperationFailed(f"{part['path']}: missing") from None
    sink.finish()
    if size != part["size"] or digest != part["sha256"]:
        raise OperationFailed(f"{part['path']}: does not match its manifest (sha256)")


def _capture_source(
    ws: Workspace,
    source: Source,
    writer: SnapshotWriter,
    recipient: str,
    cancel: CancelToken,
    progress: ProgressCallback,
    never_capture: dict[Path, str],
    never_capture_keys: dict[tuple[str, str, str], str],
    packed: PackedRun | None = None,
) -> tuple[dict[str, Any], list[PartRecord], SourceResult, list[PackRef]]:
    """Capture one source; on failure every part it opened is discarded, then the error is re-raised."""
    packs = packed.context(source, cancel, progress) if packed is not None else None
    ctx = CaptureContext(
        workdir=ws.home.tmp_dir,
        cancel=cancel,
        never_capture=never_capture,
        never_capture_keys=never_capture_keys,
        packs=packs,
    )
    if packs is not None:
        ctx.warnings.extend(packs.warnings)
    records: list[PartRecord] = []
    opened: list[str] = []
    meter = RateMeter(progress, "backup", source.name)
    progress(Progress("backup", source.name, f"Backing up {source.describe()}"))
    refs: list[PackRef] = []
    try:
        parts = source.capture(ctx)
        try:
            for part in parts:
                record = PartRecord(source.name, part.name, part.compressed)
                opened.append(record.key)
                with writer.open_part(record.key) as out:
                    write_part(record, part.stream, out, recipient, cancel, meter)
                records.append(record)
        finally:
            parts.close()
        cancel.check()
        if packs is not None:
            refs = packs.refs()  # the last pack is complete before the index can name it
    except BaseException:
        for key in opened:
            writer.discard(key)
        if packs is not None and packed is not None:
            packs.writer.abort()
            for pack_id in packs.writer.written:
                with contextlib.suppress(DrguiError, OSError):
                    packed.primary.delete(pack_key(pack_id))
            packs.writer.written.clear()
        raise
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
        int(ctx.manifest["bytes"]) if packs is not None else sum(r.size for r in records),
        len(ctx.manifest["tables"]) if "tables" in ctx.manifest else None,
        ctx.warnings,
        scan=packs.counts if packs is not None else None,
    )
    progress(Progress("backup", source.name, "done", meter.done, scan=result.scan))
    return entry, records, result, refs


def write_snapshot(
    ws: Workspace,
    sources: list[Source],
    primary: Destination,
    progress: ProgressCallback,
    cancel: CancelToken,
    *,
    force_read: bool = False,
    reference: Destination | None = None,
) -> tuple[str, list[SourceResult]]:
    """One snapshot of every source that can be read; the others are in the results with their error.
    When none can be read nothing is written and the (first) error is raised.

    Format 2 (folder and S3 sources): `reference` (default: `primary`) is where the parent snapshot is
    read and which packs may be referenced; new packs are written to `primary` before its index."""
    if write_format() < FORMAT_V2:
        return _write_snapshot(ws, sources, primary, progress, cancel, None)
    with destlock.shared(primary, "backup") as lock:
        packed = PackedRun.open(ws, primary, reference or primary, force_read)
        packed.lock = lock
        try:
            return _write_snapshot(ws, sources, primary, progress, cancel, packed)
        except BaseException:
            packed.discard_new_packs()
            raise
        finally:
            packed.close()


def _write_snapshot(
    ws: Workspace,
    sources: list[Source],
    primary: Destination,
    progress: ProgressCallback,
    cancel: CancelToken,
    packed: PackedRun | None,
) -> tuple[str, list[SourceResult]]:
    started = datetime.now(UTC)
    snapshot_id = new_snapshot_id(started)
    failures: dict[str, DrguiError] = {}
    ready = []
    for source in sources:  # preflight first: nothing is written when no source is reachable
        progress(Progress("backup", source.name, f"Checking {source.describe()}"))
        try:
            source.preflight()
        except Cancelled:
            raise
        except (DrguiError, OSError) as caught:
            failures[source.name] = source_failure(source, caught)
            continue
        ready.append(source)
    if not ready:
        _raise_all_failed(list(failures.values()))
    ws.home.tmp_dir.mkdir(parents=True, exist_ok=True)
    writer = primary.begin(snapshot_id)
    try:
        entries, records = [], []
        pack_refs: dict[str, PackRef] = {}
        captured: dict[str, SourceResult] = {}
        own_dirs, own_keys = own_directories(ws), own_s3_prefixes(ws)  # once per run, not per source
        for source in ready:
            try:
                entry, source_records, result, refs = _capture_source(
                    ws, source, writer, ws.plan.recipient, cancel, progress, own_dirs, own_keys, packed
                )
            except (Cancelled, DestinationError):  # the snapshot itself cannot be written: stop
                raise
            except (DrguiError, OSError) as caught:
                failures[source.name] = source_failure(source, caught)
                continue
            entries.append(entry)
            records.extend(source_records)
            pack_refs.update((ref.id, ref) for ref in refs)
            captured[source.name] = result
        if not entries:
            _raise_all_failed(list(failures.values()))
        results = [
            captured.get(s.name) or SourceResult(s.name, s.kind, error=redact(failures[s.name].message))
            for s in sources
        ]
        for result in results:
            if not result.ok:
                progress(Progress("backup", result.name, f"failed: {result.error}"))
        failed = [{"name": r.name, "kind": r.kind} for r in results if not r.ok]
        ended = datetime.now(UTC)
        snapshot_format = write_format()
        manifest: dict[str, Any] = {
            "format": snapshot_format,
            "plan": {"id": ws.plan.plan_id, "name": ws.plan.name},
            "snapshot": snapshot_id,
            "start": started.isoformat(),
            "end": ended.isoformat(),
            "drgui_version": drgui.__version__,
            "sources": entries,
        }
        if failed:
            manifest["failed_sources"] = [
                {"name": r.name, "kind": r.kind, "error": r.error} for r in results if not r.ok
            ]
        manifest_cipher = encrypt_bytes(json.dumps(manifest, sort_keys=True).encode(), ws.plan.recipient)
        with writer.open_part(MANIFEST_FILE) as out:
            out.write(manifest_cipher)
        index = Index(
            snapshot_id=snapshot_id,
            time=started.isoformat(),
            end_time=ended.isoformat(),
            plan_id=ws.plan.plan_id,
            drgui_version=drgui.__version__,
            sources=[{"name": e["name"], "kind": e["kind"]} for e in entries],
            parts=[r.to_index() for r in records],
            manifest={
                "path": MANIFEST_FILE,
                "size": len(manifest_cipher),
                "sha256": hashlib.sha256(manifest_cipher).hexdigest(),
            },
            extra={"failed_sources": failed} if failed else {},
            format=snapshot_format,
            packs=sorted(pack_refs.values(), key=lambda ref: ref.id),
        )
        cancel.check()
        if packed is not None and packed.lock is not None:
            packed.lock.check()  # a prune that broke our lock may have swept packs this index names
        writer.commit(index)
        if packed is not None:
            packed.keep_caches(snapshot_id, set(captured))
    except BaseException:
        writer.abort()
        raise
    return snapshot_id, results


def source_failure(source: Source, error: DrguiError | OSError) -> DrguiError:
    """A source's failure as a DrguiError that names the source (OSError has no user-facing message)."""
    if isinstance(error, DrguiError):
        if source.name not in error.message:
            return type(error)(f"{source.kind} source '{source.name}': {error.message}", error.hint)
        return error
    where = f" ({error.filename})" if error.filename else ""
    return SourceError(
        f"{source.kind.capitalize()} source '{source.name}': {error.strerror or error}{where}.",
        hint="Fix the source (path, permissions) or remove it with `drgui source remove`.",
    )


def _raise_all_failed(errors: list[DrguiError]) -> NoReturn:
    """No source could be read: one source's own error (its exit code too), or all of them."""
    if len(errors) == 1:
        raise errors[0]
    lines = "; ".join(redact(error.message) for error in errors)
    raise OperationFailed(f"No source could be backed up: {lines}", hint=errors[0].hint)


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
    *,
    force_read: bool = False,
) -> BackupResult:
    """`force_read`: read and hash every file of folder and S3 sources, even those unchanged since the
    parent snapshot (their contents are still stored once)."""
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
        warnings = list(ws.history.notices().values())
        cleanup_leftovers(ws)
        run_id = ws.history.start_run("backup")
        try:
            uploaded = flush_queue(ws, progress, cancel)
            locals_ = [d for d in _local_destinations(dests) if d.available()]
            primary = locals_[0] if locals_ else ws.queue_destination()
            if primary in dests:
                ensure_identity_file(ws, primary)
            # Queued (no local destination): parents and packs are those of the first remote destination.
            reference = primary if locals_ else next((d for d in dests if d.kind not in LOCAL_KINDS), None)
            snapshot_id, source_results = write_snapshot(
                ws, sources, primary, progress, cancel, force_read=force_read, reference=reference
            )
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
            reached = [
                d for d, r in zip(dests, dest_results, strict=True) if r.ok
            ]  # not an unreachable one again
            warnings += repair_identity_copies(ws, reached)
        except Cancelled:
            ws.history.finish_run(run_id, "cancelled")
            shutil.rmtree(ws.home.tmp_dir, ignore_errors=True)
            raise
        except DrguiError as error:
            ws.history.finish_run(run_id, "failed", detail={"error": redact(str(error.message))})
            backup_finished(ws, "failed", redact(error.message))
            shutil.rmtree(ws.home.tmp_dir, ignore_errors=True)
            raise
        result = BackupResult(
            snapshot_id, source_results, dest_results, time.monotonic() - started, uploaded, warnings
        )
        status = "ok" if result.ok else ("partial" if result.partial else "failed")
        problems = "; ".join(result.problems())
        detail = {**result.to_json(), **({"error": problems} if problems else {})}
        ws.history.finish_run(run_id, status, snapshot_id=snapshot_id, detail=detail)
        for key in ws.history.notices():
            ws.history.clear_notice(key)  # told once: in this result
        backup_finished(ws, status, problems)
        shutil.rmtree(ws.home.tmp_dir, ignore_errors=True)
        return result


def retry_queue(
    ws: Workspace, progress: ProgressCallback = ignore_progress, cancel: CancelToken | None = None
) -> list[str]:
    """Copy the snapshots still owed to a destination (an earlier copy failed or was killed), under the
    home lock; `drgui run-due` calls it when no backup is due. Raises LockHeld when the home is busy."""
    cancel = cancel or CancelToken()
    if not ws.history.queue():
        return []
    with HomeLock(ws.home.lock_path, "upload"):
        ws.history.mark_interrupted()
        cleanup_leftovers(ws)
        return flush_queue(ws, progress, cancel)
