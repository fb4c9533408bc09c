"""One Destination interface (restic's backend pattern): object operations plus atomic snapshots.

Keys are '/'-separated paths relative to the plan's scope at the destination: a destination opened
for a plan (`scope` = its plan id) keeps everything under `<root>/<plan id>/`, so plans sharing a
directory or bucket never see each other's data. Snapshots of the legacy layout (`<root>/snapshots/`)
are still read: those whose index.json names this plan are listed, read and pruned as if they were in
the scope (keys under `snapshots/<id>/` are routed to them); nothing is ever written there again.
A snapshot becomes visible only when complete: local and drive destinations write
`snapshots/<id>.partial/` and rename it; S3 writes the parts first and `index.json` last.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from drgui.core.engine.snapshot import (
    INDEX_FILE,
    PACKS_DIR,
    SNAPSHOTS_DIR,
    Index,
    is_safety_snapshot,
    is_snapshot_id,
    order_key,
    snapshot_prefix,
    start_time,
)
from drgui.core.errors import DestinationError, OperationFailed
from drgui.core.plan.config import DestConfig
from drgui.core.plan.secrets import SecretStore

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    mtime: datetime | None = None


@dataclass(frozen=True)
class SnapshotInfo:
    """One snapshot found at a destination: complete (restorable as far as a listing can tell) or not."""

    snapshot_id: str
    index: Index | None  # None when index.json cannot be read
    problem: str | None = None  # why it is not complete
    plan_id: str | None = None  # the plan its index names (None: unreadable)
    legacy: bool = False  # in the legacy layout (<root>/snapshots/), not in the plan's scope

    @property
    def complete(self) -> bool:
        return self.problem is None and self.index is not None

    @property
    def time(self) -> datetime:
        return start_time(self.index.time if self.index else "", self.snapshot_id)

    @property
    def order(self) -> tuple[datetime, str]:
        return order_key(self.index.time if self.index else "", self.snapshot_id)

    @property
    def source_names(self) -> list[str]:
        return [str(s.get("name")) for s in self.index.sources] if self.index else []


def ordered(infos: list[SnapshotInfo]) -> list[SnapshotInfo]:
    """Oldest first by full start time, the id only as a tie-break (the one ordering of snapshots)."""
    return sorted(infos, key=lambda info: info.order)


def latest_complete(infos: list[SnapshotInfo], source: str | None = None) -> SnapshotInfo | None:
    """The newest complete backup (holding `source`, when given); a pre-restore safety snapshot is
    chosen only when `source` names one of its sources."""
    candidates = [
        i
        for i in ordered(infos)
        if i.complete
        and (source in i.source_names if source is not None else not is_safety_snapshot(i.source_names))
    ]
    return candidates[-1] if candidates else None


def _claimed_plan(data: bytes) -> str | None:
    """The plan a damaged index.json names, when its JSON still parses (only to decide whose it is)."""
    try:
        plan = json.loads(data.decode("utf-8")).get("plan")
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None
    return plan if isinstance(plan, str) else None


def index_problem(index: Index, snapshot_id: str, sizes: dict[str, int], plan_id: str) -> str | None:
    """Why a readable index does not make a complete snapshot here (names relative to its folder)."""
    if index.snapshot_id != snapshot_id:
        return (
            f"its index.json is for snapshot {index.snapshot_id}: the folder was renamed or copied, "
            "so it is not a valid snapshot"
        )
    if plan_id and index.plan_id != plan_id:
        return f"it belongs to plan {index.plan_id}, not to this plan ({plan_id})"
    problems = []
    for entry in [index.manifest, *index.parts]:
        path, size = str(entry.get("path")), int(entry.get("size", 0))
        found = sizes.get(path)
        if found is None:
            problems.append(f"{path} is missing")
        elif found != size:
            problems.append(f"{path} is {found} bytes, the index says {size}")
    return "; ".join(problems) or None


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

    def __init__(self, config: DestConfig, store: SecretStore | None = None, scope: str = "") -> None:
        self.config = config
        self.name = config.name
        self.store = store
        self.scope = scope  # the plan id whose data this object sees ("" for the whole root)
        self._legacy_view: Destination | None = None
        self._legacy_ids: set[str] | None = None

    # --- the plan scope and the legacy layout --------------------------------------------------------
    def _open_legacy_view(self) -> Destination | None:
        """The same destination without the scope (where the legacy layout lives), or None."""
        return None

    def legacy_view(self) -> Destination | None:
        if not self.scope:
            return None
        if self._legacy_view is None:
            self._legacy_view = self._open_legacy_view()
        return self._legacy_view

    def _legacy_route(self, key: str) -> Destination | None:
        """The legacy view when `key` lies in a legacy snapshot of this plan; None for keys of the scope."""
        if not self.scope:
            return None
        parts = key.split("/", 2)
        if len(parts) < 2 or parts[0] != SNAPSHOTS_DIR or not is_snapshot_id(parts[1]):
            return None
        if self._legacy_ids is None:
            self.snapshots()
        assert self._legacy_ids is not None
        return self.legacy_view() if parts[1] in self._legacy_ids else None

    def _snapshot_sizes(self) -> dict[str, dict[str, int]]:
        """snapshot id -> {file name relative to its folder: size}, from one listing of snapshots/."""
        found: dict[str, dict[str, int]] = {}
        for info in self.list_objects(SNAPSHOTS_DIR + "/"):
            parts = info.key.split("/", 2)
            if len(parts) == 3 and is_snapshot_id(parts[1]):
                found.setdefault(parts[1], {})[parts[2]] = info.size
        return found

    def _inspect(self, snapshot_id: str, sizes: dict[str, int], plan_id: str) -> SnapshotInfo:
        """Check one snapshot that has an index.json: readable, its own id, our plan, every file there."""
        key = f"{snapshot_prefix(snapshot_id)}/{INDEX_FILE}"
        try:
            data = self.get_bytes(key)
        except FileNotFoundError:
            return SnapshotInfo(snapshot_id, None, "its index.json disappeared while listing")
        try:
            index = Index.from_bytes(data, where=INDEX_FILE)
        except OperationFailed as error:
            return SnapshotInfo(snapshot_id, None, error.message, _claimed_plan(data))
        return SnapshotInfo(
            snapshot_id, index, index_problem(index, snapshot_id, sizes, plan_id), index.plan_id
        )

    def snapshots(self) -> list[SnapshotInfo]:
        """Every snapshot of this plan here (those with an index.json), complete or not, oldest first.

        Costs one listing of the scope's snapshots (and one of the legacy layout's) plus one read of
        each index.json: presence and sizes are checked, not hashes (that is `verify`'s job).
        """
        legacy: list[SnapshotInfo] = []
        view = self.legacy_view()
        if view is not None:
            for snapshot_id, sizes in view._snapshot_sizes().items():
                if INDEX_FILE not in sizes:
                    continue  # an interrupted write of some plan: not ours to judge
                info = view._inspect(snapshot_id, sizes, self.scope)
                # Another plan's snapshot is never seen; a damaged one whose plan cannot be read is shown
                # (never pruned), since it may be ours.
                if info.plan_id in (self.scope, None):
                    legacy.append(
                        SnapshotInfo(
                            info.snapshot_id,
                            info.index,
                            info.problem
                            if info.plan_id
                            else f"{info.problem} (legacy layout: which plan it belongs to cannot be read)",
                            info.plan_id,
                            legacy=True,
                        )
                    )
        scoped = self._snapshot_sizes()
        self._legacy_ids = {info.snapshot_id for info in legacy if info.snapshot_id not in scoped}
        infos = [
            self._inspect(snapshot_id, sizes, self.scope)
            for snapshot_id, sizes in scoped.items()
            if INDEX_FILE in sizes
        ]
        infos += [info for info in legacy if info.snapshot_id in self._legacy_ids]
        return ordered(self._check_packs(infos))

    def _check_packs(self, infos: list[SnapshotInfo]) -> list[SnapshotInfo]:
        """Format 2: a snapshot is complete only when every pack its index lists is here with its size
        (one listing of packs/)."""
        if not any(info.complete and info.index and info.index.packs for info in infos):
            return infos
        present = {o.key: o.size for o in self.list_objects(PACKS_DIR + "/")}
        checked = []
        for info in infos:
            missing = [
                ref.key
                for ref in (info.index.packs if info.complete and info.index else [])
                if present.get(ref.key) != ref.size
            ]
            if missing:
                more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
                info = SnapshotInfo(
                    info.snapshot_id,
                    info.index,
                    f"{missing[0]}{more} missing or of another size",
                    info.plan_id,
                    info.legacy,
                )
            checked.append(info)
        return checked

    # --- objects -------------------------------------------------------------------------------
    @abstractmethod
    def open_read(self, key: str) -> contextlib.AbstractContextManager[BinaryIO]: ...

    @abstractmethod
    def open_write(self, key: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """Atomic per object: the key holds the old content or the new one, never half."""

    @abstractmethod
    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]: ...

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

    def snapshot_ids(self) -> list[str]:
        """Complete snapshots only, oldest first (by start time, see `ordered`)."""
        return [info.snapshot_id for info in self.snapshots() if info.complete]

    @abstractmethod
    def incomplete_ids(self) -> list[str]:
        """Leftovers of interrupted runs (safe to remove while holding the home lock)."""

    @abstractmethod
    def remove_incomplete(self, snapshot_id: str) -> None: ...

    def delete_snapshot(self, snapshot_id: str) -> None:
        """Index first, so an interrupted delete leaves an incomplete snapshot, never a broken listed one."""
        prefix = snapshot_prefix(snapshot_id)
        self.delete(f"{prefix}/{INDEX_FILE}")
        for info in list(self.list_objects(prefix + "/")):
            self.delete(info.key)
        self._forget_legacy(snapshot_id)

    def _forget_legacy(self, snapshot_id: str) -> None:
        if self._legacy_ids is not None:
            self._legacy_ids.discard(snapshot_id)

    def read_index(self, snapshot_id: str) -> Index:
        """The snapshot's index, only when it is this snapshot's and this plan's (OperationFailed otherwise)."""
        key = f"{snapshot_prefix(snapshot_id)}/{INDEX_FILE}"
        try:
            data = self.get_bytes(key)
        except FileNotFoundError:
            raise OperationFailed(
                f"Snapshot {snapshot_id} does not exist on destination '{self.name}'.",
                hint="List them with `drgui snapshots`.",
            ) from None
        index = Index.from_bytes(data, where=f"{self.name}:{key}")
        if index.snapshot_id != snapshot_id or (self.scope and index.plan_id != self.scope):
            problem = index_problem(index, snapshot_id, {}, self.scope)
            raise OperationFailed(
                f"Snapshot {snapshot_id} on destination '{self.name}' cannot be used: {problem}.",
                hint="Pick another snapshot (`drgui snapshots`).",
            )
        return index

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
        if not any(info.key == key for info in self.list_objects("")):
            raise DestinationError(f"Destination '{self.name}' does not list what was written.")
        self.delete(key)
        return ["write", "read", "list", "delete"]

    def available(self) -> bool:
        return True


def list_snapshot_dirs(names: Iterator[str]) -> tuple[list[str], list[str]]:
    """Split directory names under snapshots/ into finished ids and `.partial` (interrupted) ids."""
    finished, incomplete = [], []
    for name in names:
        if name.endswith(".partial") and is_snapshot_id(name[: -len(".partial")]):
            incomplete.append(name[: -len(".partial")])
        elif is_snapshot_id(name):
            finished.append(name)
    return sorted(finished), sorted(incomplete)


FREE_SPACE_MARGIN = 16 * 1024 * 1024  # filesystem metadata and the index; a full disk helps nobody


def copy_snapshot(
    source: Destination, target: Destination, snapshot_id: str, progress: Callable[[int], None] | None = None
) -> Index:
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
