"""A folder as a tar stream (produced in a thread into a pipe), every entry described in the manifest.

Regular files, directories (empty ones too) and symbolic links are stored as what they are: a link is
a tar SYMTYPE member with its target unchanged, never followed. Fifos, sockets and devices are skipped
with a warning in the source's result. Each manifest entry records `path`, `type` (file, dir, symlink),
`mode`, `mtime`, and `size` + `sha256` (files) or `target` (links); see docs/snapshot-format.md.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import io
import os
import stat
import tarfile
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO

from drgui.core.engine.kinds import RESTORE_TREE, Kind, Setting
from drgui.core.engine.manifest import FILE_LIST_PART, FileEntry
from drgui.core.engine.packs import SMALL_FILE, PackContext, forget_members, hash_file
from drgui.core.engine.sources.base import CaptureContext, PartStream, Source, tar_part_stream
from drgui.core.errors import SourceError
from drgui.core.progress import CancelToken

SPECIAL_KINDS = (
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
)


class _HashingFile:
    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.digest.update(data)
        return data


def is_excluded(relative: str, patterns: list[str]) -> bool:
    name = relative.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(relative, p) or fnmatch.fnmatch(name, p) for p in patterns)


def walk(
    root: Path, excludes: list[str], skip: set[tuple[int, int]] | None = None
) -> Iterator[tuple[str, Path, os.stat_result]]:
    """(relative posix path, absolute path, lstat) of every entry below `root`, parents before children,
    sorted by name; links are reported, never followed; excluded directories are not entered, nor those
    whose (st_dev, st_ino) is in `skip`."""

    def visit(directory: Path, rel_dir: str) -> Iterator[tuple[str, Path, os.stat_result]]:
        try:
            with os.scandir(directory) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as error:
            raise SourceError(f"Cannot read the directory {directory}: {error.strerror}.") from None
        for item in entries:
            relative = rel_dir + item.name
            if is_excluded(relative, excludes):
                continue
            try:
                info = item.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed since the listing
            if skip and (info.st_dev, info.st_ino) in skip:
                continue
            yield relative, Path(item.path), info
            if stat.S_ISDIR(info.st_mode):
                yield from visit(Path(item.path), relative + "/")

    yield from visit(root, "")


def _special_kind(mode: int) -> str | None:
    return next((name for test, name in SPECIAL_KINDS if test(mode)), None)


def _tar_info(relative: str, info: os.stat_result) -> tarfile.TarInfo:
    member = tarfile.TarInfo(relative)
    member.mode = stat.S_IMODE(info.st_mode)
    member.mtime = info.st_mtime
    member.uid, member.gid = info.st_uid, info.st_gid
    return member


def _add_file(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> str:
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as error:
        raise SourceError(f"Cannot read {path}: {error.strerror}.") from None
    with handle:
        member.size = os.fstat(handle.fileno()).st_size
        hashing = _HashingFile(handle)
        tar.addfile(member, hashing)
    return hashing.digest.hexdigest()


def _skipped_dirs(
    root: Path, never_capture: dict[Path, str] | None, warnings: list[str] | None
) -> set[tuple[int, int]]:
    """(st_dev, st_ino) of drgui's own directories, each inside the folder said in `warnings`."""
    skip = {}
    for directory, what in (never_capture or {}).items():
        with contextlib.suppress(OSError):
            info = directory.stat()
            skip[(info.st_dev, info.st_ino)] = (directory, what)
    for directory, what in skip.values():
        if warnings is not None and directory.resolve().is_relative_to(root.resolve()):
            warnings.append(f"{directory}: skipped, it is {what} (drgui never backs up its own backups)")
    return set(skip)


class Throttle:
    """Calls `report` with the counts at most every `interval` seconds (and once at the end)."""

    def __init__(self, packs: PackContext, interval: float = 0.2) -> None:
        self.packs = packs
        self.interval = interval
        self.last = 0.0

    def tick(self, final: bool = False) -> None:
        now = time.monotonic()
        if final or now - self.last >= self.interval:
            self.last = now
            self.packs.report(self.packs.counts)


def store_content(
    packs: PackContext, handle: IO[bytes], size: int, mtime: int, what: str
) -> tuple[int, str, str, str]:
    """(size, sha256, pack, member) of an open file's content: found in the content index (not stored again),
    or added to a pack. A small file is read once; a large one is hashed, then read again into the pack
    and must hash the same (else it changed while read: SourceError naming it)."""
    cancel = packs.writer.cancel
    if size <= SMALL_FILE:
        data = handle.read(SMALL_FILE + 1)
        cancel.check()
        sha256 = hashlib.sha256(data).hexdigest()
        found = packs.existing(sha256)
        if found is None:
            found = packs.store(sha256, len(data), io.BytesIO(data), mtime)
            packs.counts.files_new += 1
            packs.counts.bytes_new += len(data)
        return len(data), sha256, *found
    size, sha256 = hash_file(handle, cancel)  # type: ignore[arg-type]
    found = packs.existing(sha256)
    if found is None:
        handle.seek(0)
        hashing = _HashingFile(handle)
        found = packs.store(sha256, size, hashing, mtime)  # type: ignore[arg-type]
        if hashing.digest.hexdigest() != sha256:
            raise SourceError(f"{what} changed while it was being backed up.", hint="Back up again.")
        packs.counts.files_new += 1
        packs.counts.bytes_new += size
    return size, sha256, *found


def reuse_unchanged(packs: PackContext, entry: FileEntry, parent: FileEntry, size: int) -> None:
    """An unchanged file (as the parent snapshot had it): its content is the parent's, not read again."""
    entry.size, entry.sha256, entry.pack, entry.member = (
        parent.size,
        parent.sha256,
        parent.pack,
        parent.member,
    )
    packs.counts.files_unchanged += 1
    packs.counts.bytes_unchanged += size


def scan_folder(
    root: Path,
    excludes: list[str],
    out: BinaryIO,
    packs: PackContext,
    warnings: list[str],
    never_capture: dict[Path, str] | None,
    totals: dict[str, int],
) -> None:
    """Format 2: write the file list (JSON Lines) into `out`; a file whose size, mtime_ns and inode equal
    its parent-snapshot entry is not read (its content is referenced), any other is hashed and stored
    once (content already at the destination is referenced, not stored again)."""
    skip = _skipped_dirs(root, never_capture, warnings)
    counts, throttle = packs.counts, Throttle(packs)
    cancel = packs.writer.cancel
    for relative, path, info in walk(root, excludes, skip):
        cancel.check()
        mode = stat.S_IMODE(info.st_mode)
        entry = FileEntry(relative, "file", mode=mode, mtime=int(info.st_mtime))
        if stat.S_ISREG(info.st_mode):
            entry.mtime_ns, entry.inode = info.st_mtime_ns, info.st_ino
            parent = None if packs.force_read else packs.index.parent_entry(relative)
            counts.files_scanned += 1
            counts.bytes_scanned += info.st_size
            if (
                parent is not None
                and parent.type == "file"
                and (parent.size, parent.mtime_ns, parent.inode)
                == (info.st_size, info.st_mtime_ns, info.st_ino)
                and packs.reusable(parent.pack)
            ):
                reuse_unchanged(packs, entry, parent, info.st_size)
            else:
                try:
                    handle = open(path, "rb")  # noqa: SIM115 - closed below
                except OSError as error:
                    raise SourceError(f"Cannot read {path}: {error.strerror}.") from None
                with handle:
                    size = os.fstat(handle.fileno()).st_size
                    entry.size, entry.sha256, entry.pack, entry.member = store_content(
                        packs, handle, size, entry.mtime, str(path)
                    )
            packs.referenced.add(str(entry.pack))
            totals["files"] += 1
            totals["bytes"] += int(entry.size or 0)
        elif stat.S_ISDIR(info.st_mode):
            entry.type = "dir"
        elif stat.S_ISLNK(info.st_mode):
            entry.type, entry.target = "symlink", os.readlink(path)
        else:
            warnings.append(f"{relative}: skipped, a {_special_kind(info.st_mode)} is not backed up")
            continue
        out.write(entry.line())
        packs.record(entry)
        throttle.tick()
    throttle.tick(final=True)


def write_tar(
    root: Path,
    excludes: list[str],
    out: BinaryIO,
    files: list[dict[str, Any]],
    cancel: CancelToken,
    warnings: list[str] | None = None,
    never_capture: dict[Path, str] | None = None,
) -> None:
    """Write the folder as a pax tar into `out`; append one manifest entry per member to `files`.
    Directories of `never_capture` inside the folder are left out, with a warning naming them."""
    skip = _skipped_dirs(root, never_capture, warnings)
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for relative, path, info in walk(root, excludes, set(skip)):
            cancel.check()
            member = _tar_info(relative, info)
            entry: dict[str, Any] = {"path": relative, "mode": member.mode, "mtime": int(info.st_mtime)}
            if stat.S_ISREG(info.st_mode):  # a hard link is stored as a file of its own
                member.type = tarfile.REGTYPE
                digest = _add_file(tar, member, path)
                entry.update({"type": "file", "size": member.size, "sha256": digest})
            elif stat.S_ISDIR(info.st_mode):
                member.type = tarfile.DIRTYPE
                tar.addfile(member)
                entry["type"] = "dir"
            elif stat.S_ISLNK(info.st_mode):
                member.type = tarfile.SYMTYPE
                member.linkname = os.readlink(path)
                tar.addfile(member)
                entry.update({"type": "symlink", "target": member.linkname})
            else:
                if warnings is not None:
                    warnings.append(f"{relative}: skipped, a {_special_kind(info.st_mode)} is not backed up")
                continue
            forget_members(tar)
            files.append(entry)


class FolderSource(Source):
    kind = "folder"

    @property
    def root(self) -> Path:
        return Path(self.config.settings["path"]).expanduser()

    @property
    def excludes(self) -> list[str]:
        return list(self.config.settings.get("exclude", []))

    def describe(self) -> str:
        extra = f" (excluding {', '.join(self.excludes)})" if self.excludes else ""
        return f"folder {self.root}{extra}"

    def preflight(self) -> None:
        if not self.root.is_dir():
            raise SourceError(
                f"Folder source '{self.name}': {self.root} is not a directory.",
                hint="Check the path, or remove the source with `drgui source remove`.",
            )
        if not os.access(self.root, os.R_OK | os.X_OK):
            raise SourceError(f"Folder source '{self.name}': {self.root} is not readable.")

    def capture(self, ctx: CaptureContext) -> Generator[PartStream, None, None]:
        if ctx.packs is not None:
            yield from self._capture_v2(ctx, ctx.packs)
            return
        files: list[dict[str, Any]] = []
        yield from tar_part_stream(
            "files.tar.zst",
            f"Folder source '{self.name}'",
            lambda out: write_tar(
                self.root, self.excludes, out, files, ctx.cancel, ctx.warnings, ctx.never_capture
            ),
        )
        ctx.manifest.update(
            {
                "path": str(self.root),
                "files": files,
                "file_count": sum(1 for f in files if f["type"] == "file"),
                "bytes": sum(f.get("size", 0) for f in files),
            }
        )

    def _capture_v2(self, ctx: CaptureContext, packs: PackContext) -> Generator[PartStream, None, None]:
        totals = {"files": 0, "bytes": 0}
        yield from tar_part_stream(
            FILE_LIST_PART,
            f"Folder source '{self.name}'",
            lambda out: scan_folder(
                self.root, self.excludes, out, packs, ctx.warnings, ctx.never_capture, totals
            ),
        )
        ctx.manifest.update(
            {
                "format": 2,
                "path": str(self.root),
                "files_part": FILE_LIST_PART,
                "file_count": totals["files"],
                "bytes": totals["bytes"],
                "scan": packs.counts.to_json(),
            }
        )


KIND = Kind(
    name="folder",
    role="source",
    label="Folder (uploads, media)",
    description="a directory tree (uploads, media): every file with its sha256",
    settings=(
        Setting("path", "the folder to back up", label="Folder", required=True, path=True, widget="dir"),
        Setting(
            "exclude",
            "skip paths matching this glob (repeatable)",
            label="Exclude (globs, comma-separated)",
            repeatable=True,
            placeholder="'*.tmp'",
        ),
    ),
    opener=FolderSource,
    restore_as=RESTORE_TREE,
    order=1,
)
