"""Verify a snapshot. Quick: index, sizes and ciphertext hashes, no key needed. Deep: decrypt the
manifest and every part, check plaintext hashes, read the database dump with pg_restore, and check
every member of folder and bucket parts with exactly the rules restore uses (drgui.core.engine.extract)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drgui.core.engine.crypto import decrypt_bytes
from drgui.core.engine.destinations.base import CHUNK, Destination
from drgui.core.engine.extract import (
    TAR_PARTS,
    HashWriter,
    check_archive,
    check_packed_tree,
    decrypted_pipe,
    part_problems,
)
from drgui.core.engine.manifest import FILE_LIST_PART
from drgui.core.engine.pipeline import read_part
from drgui.core.engine.snapshot import FORMAT_V2, Index, snapshot_prefix
from drgui.core.errors import Cancelled, DrguiError, OperationFailed
from drgui.core.pg import pgtools
from drgui.core.progress import CancelToken, Progress, ProgressCallback, RateMeter, ignore_progress


@dataclass
class VerifyResult:
    snapshot_id: str
    destination: str
    deep: bool
    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "snapshot": self.snapshot_id,
            "destination": self.destination,
            "deep": self.deep,
            "problems": self.problems,
            "checked": self.checked,
        }


def _hash_object(
    dest: Destination, key: str, cancel: CancelToken, meter: RateMeter | None
) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with dest.open_read(key) as reader:
        while chunk := reader.read(CHUNK):
            cancel.check()
            digest.update(chunk)
            size += len(chunk)
            if meter:
                meter.add(len(chunk))
    return size, digest.hexdigest()


def quick_check(
    dest: Destination, index: Index, result: VerifyResult, cancel: CancelToken, meter: RateMeter | None
) -> None:
    prefix = snapshot_prefix(index.snapshot_id)
    for entry in [*index.parts, index.manifest]:
        key = f"{prefix}/{entry['path']}"
        info = dest.stat(key)
        if info is None:
            result.problems.append(f"{entry['path']}: missing")
            continue
        if info.size != int(entry["size"]):
            result.problems.append(f"{entry['path']}: size {info.size} bytes, index says {entry['size']}")
            continue
        _size, digest = _hash_object(dest, key, cancel, meter)
        if digest != entry["sha256"]:
            result.problems.append(f"{entry['path']}: ciphertext sha256 does not match the index (corrupted)")
        else:
            result.checked.append(entry["path"])
    for ref in index.packs:  # format 2: every referenced pack, size and ciphertext hash
        info = dest.stat(ref.key)
        if info is None:
            result.problems.append(f"{ref.key}: missing")
        elif info.size != ref.size:
            result.problems.append(f"{ref.key}: size {info.size} bytes, index says {ref.size}")
        elif _hash_object(dest, ref.key, cancel, meter)[1] != ref.sha256:
            result.problems.append(f"{ref.key}: ciphertext sha256 does not match the index (corrupted)")
        else:
            result.checked.append(ref.key)


def load_manifest(dest: Destination, index: Index, identity: str) -> dict[str, Any]:
    try:
        data = dest.get_bytes(f"{snapshot_prefix(index.snapshot_id)}/{index.manifest['path']}")
    except FileNotFoundError:
        raise OperationFailed(
            f"{index.manifest['path']}: missing; snapshot {index.snapshot_id} cannot be restored.",
            hint="Use another snapshot, or the copy on another destination (--dest).",
        ) from None
    if hashlib.sha256(data).hexdigest() != index.manifest["sha256"]:
        raise OperationFailed(f"{index.manifest['path']}: does not match the index (corrupted).")
    try:
        manifest: dict[str, Any] = json.loads(decrypt_bytes(data, identity))
    except OperationFailed:
        raise OperationFailed(
            f"{index.manifest['path']}: cannot be decrypted (corrupted, or another plan's key)."
        ) from None
    if manifest.get("snapshot") != index.snapshot_id:
        raise OperationFailed(
            f"{index.manifest['path']}: belongs to snapshot {manifest.get('snapshot')}, not this one."
        )
    return manifest


def manifest_parts(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return [part for source in manifest["sources"] for part in source["parts"]]


class _PgRestoreSink:
    """Feeds decrypted dump bytes to `pg_restore -f /dev/null` (reads every TOC entry and all data)."""

    def __init__(self) -> None:
        pg_restore = pgtools.find_tool("pg_restore")
        self.process = subprocess.Popen(
            [str(pg_restore), "-f", "/dev/null"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.broken = False

    def write(self, data: bytes) -> int:
        if not self.broken:
            try:
                self.process.stdin.write(data)  # type: ignore[union-attr]
            except BrokenPipeError:
                self.broken = True
        return len(data)

    def finish(self) -> str | None:
        with contextlib.suppress(BrokenPipeError):
            self.process.stdin.close()  # type: ignore[union-attr]
        stderr = self.process.stderr.read().decode(errors="replace")  # type: ignore[union-attr]
        self.process.stderr.close()  # type: ignore[union-attr]
        code = self.process.wait()
        return None if code == 0 else (stderr.strip().splitlines() or [f"exit {code}"])[-1]

    def kill(self) -> None:
        self.process.kill()
        self.finish()


def deep_check(
    dest: Destination,
    index: Index,
    identity: str,
    result: VerifyResult,
    cancel: CancelToken,
    meter: RateMeter | None,
) -> None:
    try:
        manifest = load_manifest(dest, index, identity)
    except OperationFailed as error:
        result.problems.append(error.message)
        return
    indexed = {p["path"]: p for p in index.parts}
    parts = manifest_parts(manifest)
    if sorted(indexed) != sorted(p["path"] for p in parts):
        result.problems.append("manifest.age and index.json list different parts")
    for source in manifest["sources"]:
        for part in source["parts"]:
            if part["path"] not in indexed:
                continue
            index_sha256 = indexed[part["path"]]["sha256"]
            if source.get("format") == FORMAT_V2 and part["name"] == FILE_LIST_PART:
                _check_packed(dest, index, source, identity, result, cancel, meter)
            elif part["name"] in TAR_PARTS:
                _check_tar_part(dest, index, source, part, index_sha256, identity, result, cancel, meter)
            else:
                _check_part(dest, index, part, index_sha256, identity, result, cancel, meter)


def _check_packed(
    dest: Destination,
    index: Index,
    source: dict[str, Any],
    identity: str,
    result: VerifyResult,
    cancel: CancelToken,
    meter: RateMeter | None,
) -> None:
    """Format 2: the file list, then each pack it needs decrypted once, every file hashed (restore's rules)."""
    parts = {p["path"]: p["sha256"] for p in index.parts}
    with tempfile.TemporaryDirectory(prefix="drgui-verify-") as workdir:
        report = check_packed_tree(
            dest,
            index.snapshot_id,
            source,
            identity,
            HashWriter(),
            cancel,
            Path(workdir),
            ignore_progress,
            parts,
        )
    result.problems.extend(report.problems)
    if not report.problems:
        result.checked.append(f"source {source['name']}: packs decrypted; {report.summary}")


def _check_tar_part(
    dest: Destination,
    index: Index,
    source: dict[str, Any],
    part: dict[str, Any],
    index_sha256: str,
    identity: str,
    result: VerifyResult,
    cancel: CancelToken,
    meter: RateMeter | None,
) -> None:
    """Every member, through restore's own rules (drgui.core.engine.extract), hashed without writing."""
    try:
        with decrypted_pipe(
            dest,
            index.snapshot_id,
            source,
            part,
            identity,
            cancel,
            ignore_progress,
            index_sha256=index_sha256,
            meter=meter,
        ) as (reader, _errors):
            report = check_archive(reader, source, HashWriter(), cancel, part["path"])
    except OperationFailed as error:
        result.problems.append(error.message)
        return
    result.problems.extend(report.problems)
    if not report.problems:
        result.checked.append(f"{part['path']} (decrypted; {report.summary})")


def _check_part(
    dest: Destination,
    index: Index,
    part: dict[str, Any],
    index_sha256: str,
    identity: str,
    result: VerifyResult,
    cancel: CancelToken,
    meter: RateMeter | None,
) -> None:
    is_dump = part["name"] == "db.dump.zst"
    sink = _PgRestoreSink() if is_dump else None
    try:
        with dest.open_read(f"{snapshot_prefix(index.snapshot_id)}/{part['path']}") as reader:
            size, digest, cipher_digest = read_part(part, reader, identity, sink, cancel, meter)
    except (FileNotFoundError, OperationFailed, Cancelled) as error:
        if sink:
            sink.kill()
        if isinstance(error, Cancelled):
            raise
        detail = "missing" if isinstance(error, FileNotFoundError) else error.message
        result.problems.append(f"{part['path']}: {detail}")
        return
    result.problems.extend(part_problems(part, size, digest, cipher_digest, index_sha256))
    if sink:
        failure = sink.finish()
        if failure:
            result.problems.append(f"{part['path']}: pg_restore cannot read the dump: {failure}")
        else:
            result.checked.append(f"{part['path']} (pg_restore read it)")
    result.checked.append(f"{part['path']} (decrypted)")


def verify_snapshot(
    dest: Destination,
    snapshot_id: str,
    *,
    deep: bool = False,
    identity: str | None = None,
    progress: ProgressCallback = ignore_progress,
    cancel: CancelToken | None = None,
) -> VerifyResult:
    cancel = cancel or CancelToken()
    result = VerifyResult(snapshot_id, dest.name, deep)
    progress(Progress("verify", dest.name, f"Verifying {snapshot_id}"))
    try:
        index = dest.read_index(snapshot_id)
    except DrguiError as error:
        result.problems.append(f"index.json: {error.message}")
        return result
    packs = sum(ref.size for ref in index.packs)
    meter = RateMeter(progress, "verify", dest.name, total=(index.total_size + packs) * (2 if deep else 1))
    quick_check(dest, index, result, cancel, meter)
    if deep:
        if identity is None:
            raise OperationFailed(
                "A deep verify needs the plan's key.", hint="Unlock the keyring or import the kit."
            )
        deep_check(dest, index, identity, result, cancel, meter)
    return result
