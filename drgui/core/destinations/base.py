"""One Destination interface (restic's backend pattern): object operations plus atomic snapshots.

Keys are '/'-separated paths relative to the destination's root. A snapshot becomes visible only
when complete: local and drive destinations write `snapshots/<id>.partial/` and rename it; S3
writes the parts first and `index.json` last.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from drgui.core.config import DestConfig
from drgui.core.errors import DestinationError, OperationFailed
from drgui.core.secrets import SecretStore
from drgui.core.snapshot import INDEX_FILE, SNAPSHOTS_DIR, Index, is_snapshot_id, snapshot_prefix

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    mtime: datetime | None = None


class SnapshotWriter(ABC):
    """Writes one snapshot's files; `commit` makes it visible atomically, `abort` removes every trace."""

    def __init__(self, snapshot_id: str) -> None:
        self.snapshot_id = snapshot_id

    @abstractmethod
    def open_part(self, key: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """A writer for `key` relative to the snapshot directory (e.g. parts/db/db.dump.zst.age)."""

    def put_file(self, key: str, path: Path) -> None:
        """Store a local file as `key` (destinations with a faster path for whole files override it)."""
        with open(path, "rb") as reader, self.open_part(key) as out:
            shutil.copyfileobj(reader, out, CHUNK)

    @abstractmethod
    def commit(self, index: Index) -> None: ...

    @abstractmethod
    def abort(self) -> None: ...

    @abstractmethod
    def discard(self, key: str) -> None:
        """Remove one part (whole or half-written) from this uncommitted snapshot, e.g. of a source that failed."""


class Destination(ABC):
    kind: str = ""

    def __init__(self, config: DestConfig, store: SecretStore | None = None) -> None:
        self.config = config
        self.name = config.name
        self.store = store

    # --- objects -------------------------------------------------------------------------------
    @abstractmethod
    def open_read(self, key: str) -> contextlib.AbstractContextManager[BinaryIO]: ...

    @abstractmethod
    def open_write(self, key: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """Atomic per object: the key holds the old content or the new one, never half."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo | None: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    def exists(self, key: str) -> bool:
        return self.stat(key) is not None

    def put_bytes(self, key: str, data: bytes) -> None:
        with self.open_write(key) as handle:
            handle.write(data)

    def get_bytes(self, key: str) -> bytes:
        with self.open_read(key) as handle:
            return handle.read()

    # --- snapshots -----------------------------------------------------------------------------
    @abstractmethod
    def begin(self, snapshot_id: str) -> SnapshotWriter: ...

    @abstractmethod
    def snapshot_ids(self) -> list[str]:
        """Complete snapshots only, oldest first."""

    @abstractmethod
    def incomplete_ids(self) -> list[str]:
        """Leftovers of interrupted runs (safe to remove while holding the home lock)."""

    @abstractmethod
    def remove_incomplete(self, snapshot_id: str) -> None: ...

    def delete_snapshot(self, snapshot_id: str) -> None:
        """Index first, so an interrupted delete leaves an incomplete snapshot, never a broken listed one."""
        prefix = snapshot_prefix(snapshot_id)
        self.delete(f"{prefix}/{INDEX_FILE}")
        for info in list(self.list(prefix + "/")):
            self.delete(info.key)

    def read_index(self, snapshot_id: str) -> Index:
        key = f"{snapshot_prefix(snapshot_id)}/{INDEX_FILE}"
        try:
            data = self.get_bytes(key)
        except FileNotFoundError:
            raise OperationFailed(
                f"Snapshot {snapshot_id} does not exist on destination '{self.name}'.",
                hint="List them with `drgui snapshots`.",
            ) from None
        return Index.from_bytes(data, where=f"{self.name}:{key}")

    def describe(self) -> str:
        return self.kind

    def local_path(self, key: str) -> Path | None:
        """The file holding `key` on this machine, when the destination is a directory."""
        return None

    def free_space(self) -> int | None:
        """Bytes free where snapshots are written; None when unknown or unbounded (S3)."""
        return None

    def test(self) -> list[str]:
        """Check that we can write, read, list and delete; return what was checked. Raises DestinationError."""
        key = ".drgui-test"
        payload = b"drgui destination test\n"
        self.put_bytes(key, payload)
        if self.get_bytes(key) != payload:
            raise DestinationError(f"Destination '{self.name}' returned different bytes than were written.")
        if not any(info.key == key for info in self.list("")):
            raise DestinationError(f"Destination '{self.name}' does not list what was written.")
        self.delete(key)
        return ["write", "read", "list", "delete"]

    def available(self) -> bool:
        return True


def list_snapshot_dirs(names: Iterator[str]) -> tuple[list[str], list[str]]:
    """Split directory names under snapshots/ into complete ids and incomplete ids."""
    complete, incomplete = [], []
    for name in names:
        if name.endswith(".partial") and is_snapshot_id(name[: -len(".partial")]):
            incomplete.append(name[: -len(".partial")])
        elif is_snapshot_id(name):
            complete.append(name)
    return sorted(complete), sorted(incomplete)


FREE_SPACE_MARGIN = 16 * 1024 * 1024  # filesystem metadata and the index; a full disk helps nobody


def copy_snapshot(source: Destination, target: Destination, snapshot_id: str, progress=None) -> Index:
    """Copy the ciphertext of a snapshot, checking every file's sha256 against the index while copying."""
    index = source.read_index(snapshot_id)
    needed = index.total_size
    free = target.free_space()
    if free is not None and needed + FREE_SPACE_MARGIN > free:
        raise OperationFailed(
            f"Snapshot {snapshot_id} needs {needed / 1e6:,.1f} MB but '{target.name}' has only "
            f"{free / 1e6:,.1f} MB free; it was not copied there.",
            hint=f"Free space on it or remove old snapshots (`drgui prune --dest {target.name}`), "
            "or use a bigger drive. The next backup tries again.",
        )
    writer = target.begin(snapshot_id)
    try:
        files = [*index.parts, {"path": index.manifest["path"], **index.manifest}]
        for entry in files:
            key = f"{snapshot_prefix(snapshot_id)}/{entry['path']}"
            digest = hashlib.sha256()
            local = source.local_path(key)
            if local is not None:
                # Check the file first, then let the target send it straight from disk.
                with open(local, "rb") as reader:
                    while chunk := reader.read(CHUNK):
                        digest.update(chunk)
                if digest.hexdigest() == entry["sha256"]:
                    writer.put_file(entry["path"], local)
                    if progress:
                        progress(int(entry["size"]))
            else:
                with source.open_read(key) as reader, writer.open_part(entry["path"]) as out:
                    while chunk := reader.read(CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                        if progress:
                            progress(len(chunk))
            if digest.hexdigest() != entry["sha256"]:
                raise OperationFailed(
                    f"{entry['path']} of snapshot {snapshot_id} on '{source.name}' is corrupt; not copied to "
                    f"'{target.name}'.",
                    hint=f"Run `drgui verify {snapshot_id} --dest {source.name}`.",
                )
        writer.commit(index)
    except BaseException:
        writer.abort()
        raise
    return index


def snapshots_root() -> str:
    return SNAPSHOTS_DIR
