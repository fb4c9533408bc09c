"""A directory on this machine (or on a mounted drive): atomic via `.partial` + fsync + rename."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from drgui.core.engine.destinations.base import Destination, ObjectInfo, SnapshotWriter, list_snapshot_dirs
from drgui.core.engine.fsutil import atomic_writer, fsync_dir
from drgui.core.engine.kinds import Kind, Setting
from drgui.core.engine.snapshot import INDEX_FILE, SNAPSHOTS_DIR, Index
from drgui.core.errors import DestinationError, UsageError
from drgui.core.plan.config import DestConfig
from drgui.core.plan.secrets import SecretStore


@contextlib.contextmanager
def translate_os_errors(where: Path, name: str) -> Iterator[None]:
    """Turn OSError into a message that names the destination, the path and the fix."""
    try:
        yield
    except FileNotFoundError:
        raise
    except PermissionError:
        raise DestinationError(
            f"Destination '{name}': permission denied writing to {where}.",
            hint="Choose a directory you can write to, or fix its owner and permissions.",
        ) from None
    except OSError as error:
        if error.errno == errno.ENOSPC or error.errno == errno.EDQUOT:
            raise DestinationError(
                f"Destination '{name}': the disk holding {where} is full.",
                hint="Free some space there (or run `drgui prune`), then back up again.",
            ) from None
        if error.errno == errno.EROFS:
            raise DestinationError(
                f"Destination '{name}': {where} is on a read-only file system.",
                hint="Remount it read-write or choose another directory.",
            ) from None
        raise DestinationError(f"Destination '{name}': {error.strerror} at {where}.") from None


class _LocalSnapshotWriter(SnapshotWriter):
    def __init__(self, dest: LocalDestination, snapshot_id: str) -> None:
        super().__init__(snapshot_id)
        self.dest = dest
        self.partial = dest.snapshots_dir / f"{snapshot_id}.partial"
        self.final = dest.snapshots_dir / snapshot_id
        with translate_os_errors(self.partial, dest.name):
            self.partial.mkdir(parents=True, mode=0o700)
        self._dirs: set[Path] = {self.partial}

    @contextlib.contextmanager
    def open_part(self, key: str) -> Iterator[BinaryIO]:
        path = self.partial / key
        with translate_os_errors(path, self.dest.name):
            path.parent.mkdir(parents=True, exist_ok=True)
            self._dirs.add(path.parent)
            with open(path, "wb") as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())

    def commit(self, index: Index) -> None:
        with translate_os_errors(self.partial, self.dest.name):
            with atomic_writer(self.partial / INDEX_FILE, 0o644) as handle:
                handle.write(index.to_bytes())
            for directory in sorted(self._dirs, key=lambda p: len(p.parts), reverse=True):
                fsync_dir(directory)
            os.rename(self.partial, self.final)
            fsync_dir(self.dest.snapshots_dir)

    def abort(self) -> None:
        shutil.rmtree(self.partial, ignore_errors=True)

    def discard(self, key: str) -> None:
        path = self.partial / key
        with translate_os_errors(path, self.dest.name), contextlib.suppress(FileNotFoundError):
            path.unlink()
        if path.parent != self.partial and path.parent.is_dir() and not any(path.parent.iterdir()):
            path.parent.rmdir()
            self._dirs.discard(path.parent)


class LocalDestination(Destination):
    kind = "local"

    def __init__(
        self,
        config: DestConfig,
        store: SecretStore | None = None,
        root: Path | None = None,
        scope: str = "",
    ) -> None:
        super().__init__(config, store, scope)
        self.base_root = Path(root or config.settings["path"]).expanduser()
        self.root = self.base_root / scope if scope else self.base_root

    def _open_legacy_view(self) -> LocalDestination:
        return LocalDestination(self.config, self.store, self.base_root)

    @classmethod
    def at(cls, root: Path, name: str = "queue") -> LocalDestination:
        return cls(DestConfig(name=name, kind="local", settings={"path": str(root)}), None, root)

    @property
    def snapshots_dir(self) -> Path:
        return self.root / SNAPSHOTS_DIR

    def describe(self) -> str:
        return f"local directory {self.base_root}"

    def _path(self, key: str) -> Path:
        legacy = self._legacy_route(key)
        if isinstance(legacy, LocalDestination):
            return legacy._path(key)
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise UsageError(f"Key {key!r} leaves the destination root.")
        return path

    def available(self) -> bool:
        return self.base_root.is_dir()  # the plan's scope inside it is created by the first write

    def local_path(self, key: str) -> Path | None:
        path = self._path(key)
        return path if path.is_file() else None

    def free_space(self) -> int | None:
        where = self.root
        while not where.exists() and where != where.parent:
            where = where.parent  # not created yet: the filesystem it will be created on
        try:
            return shutil.disk_usage(where).free
        except OSError:
            return None

    def ensure_root(self) -> None:
        with translate_os_errors(self.root, self.name):
            self.root.mkdir(parents=True, exist_ok=True)
            if not os.access(self.root, os.W_OK):
                if hasattr(os, "statvfs") and os.statvfs(self.root).f_flag & os.ST_RDONLY:
                    raise OSError(errno.EROFS, "read-only file system", str(self.root))
                raise PermissionError(errno.EACCES, "not writable", str(self.root))

    @contextlib.contextmanager
    def open_read(self, key: str) -> Iterator[BinaryIO]:
        with open(self._path(key), "rb") as handle:
            yield handle

    @contextlib.contextmanager
    def open_write(self, key: str) -> Iterator[BinaryIO]:
        path = self._path(key)
        with translate_os_errors(path, self.name), atomic_writer(path, 0o600) as handle:
            yield handle

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        legacy = self._legacy_route(prefix)
        if legacy is not None:
            yield from legacy.list_objects(prefix)
            return
        base = self.root
        start = base / prefix.rsplit("/", 1)[0] if "/" in prefix else base  # walk only what can match
        if not start.is_dir():
            return
        for directory, _dirs, files in os.walk(start):
            for filename in files:
                path = Path(directory) / filename
                key = path.relative_to(base).as_posix()
                if key.startswith(prefix):
                    stat = path.stat()
                    yield ObjectInfo(key, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC))

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            stat = self._path(key).stat()
        except FileNotFoundError:
            return None
        return ObjectInfo(key, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC))

    def delete(self, key: str) -> None:
        legacy = self._legacy_route(key)
        if legacy is not None:
            legacy.delete(key)
            return
        path = self._path(key)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        parent = path.parent
        while parent != self.root and parent.is_relative_to(self.root):
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def begin(self, snapshot_id: str) -> SnapshotWriter:
        self.ensure_root()
        with translate_os_errors(self.snapshots_dir, self.name):
            self.snapshots_dir.mkdir(parents=True, exist_ok=True)
        return _LocalSnapshotWriter(self, snapshot_id)

    def _dir_names(self) -> Iterator[str]:
        if self.snapshots_dir.is_dir():
            for entry in os.scandir(self.snapshots_dir):
                if entry.is_dir():
                    yield entry.name

    def incomplete_ids(self) -> list[str]:
        complete, incomplete = list_snapshot_dirs(self._dir_names())
        broken = [sid for sid in complete if not (self.snapshots_dir / sid / INDEX_FILE).exists()]
        return sorted(incomplete + broken)

    def remove_incomplete(self, snapshot_id: str) -> None:
        for name in (f"{snapshot_id}.partial", snapshot_id):
            path = self.snapshots_dir / name
            if name.endswith(".partial") or not (path / INDEX_FILE).exists():
                shutil.rmtree(path, ignore_errors=True)

    def delete_snapshot(self, snapshot_id: str) -> None:
        legacy = self._legacy_route(f"{SNAPSHOTS_DIR}/{snapshot_id}")
        if legacy is not None:
            legacy.delete_snapshot(snapshot_id)
            self._forget_legacy(snapshot_id)
            return
        path = self.snapshots_dir / snapshot_id
        with contextlib.suppress(FileNotFoundError):
            (path / INDEX_FILE).unlink()
        shutil.rmtree(path, ignore_errors=True)


def check_folder(path: str) -> str:
    """A destination folder is an existing folder or a new one inside an existing folder: a missing parent
    is most often a NAS or drive that is not mounted, and creating it would fill the system disk instead."""
    folder = Path(path)
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise UsageError(
            f"{existing} is a file, not a folder"
            + ("." if existing == folder else f", so {folder} cannot be made inside it."),
            hint="Choose a folder, or a new name for one.",
        )
    if not folder.exists() and not folder.parent.is_dir():
        raise UsageError(
            f"Cannot make the destination folder {folder}: its parent folder {folder.parent} does not exist.",
            hint="Create the parent folder first (or mount the NAS or drive it is on), or choose another folder.",
        )
    return path


def locate_folder(settings: Mapping[str, Any], plan_id: str) -> tuple[str, str]:
    return f"{settings.get('path', '?')}/{plan_id}/snapshots/", "a directory on the old machine"


KIND = Kind(
    name="local",
    role="destination",
    label="Folder on this computer or a NAS",
    description="a directory on this computer or a mounted NAS",
    settings=(
        Setting(
            "path",
            "the folder (made if missing, inside an existing folder)",
            label="Folder",
            required=True,
            path=True,
            widget="dir",
            validate=check_folder,
        ),
    ),
    opener=LocalDestination,
    locate=locate_folder,
    default_retention={"daily": 7},
    creates_root=True,
    order=0,
)
