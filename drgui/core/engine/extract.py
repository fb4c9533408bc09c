"""The one set of rules for unpacking a folder or bucket part (a tar), shared by restore and verify --deep.

A member is accepted only when
- it is a regular file, a directory or a symbolic link (hard links, devices, fifos are refused);
- its name is relative and plain: not absolute, no `..`, `.` or empty component;
- no parent of it is a symbolic link (or a file) of the same archive: nothing is written through a link;
- it appears once, and the manifest lists it with the same type, the same link target and, for a
  file, the same size and sha256; and every manifest entry appears in the archive.
A link's *target* may point anywhere (absolute, outside the folder): it is recreated unchanged and
never followed. Modes are restored without setuid/setgid bits; owners are not restored.

`check_archive` streams the tar through a `TreeWriter`: `DiskWriter` writes into a private staging
directory (restore), `HashWriter` only reads and hashes (deep verify). Both see the same rules, so a
snapshot that restore would refuse is never called intact.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, Protocol

from drgui.core.engine.destinations.base import CHUNK, Destination
from drgui.core.engine.manifest import FILE_LIST_PART, FileEntry, iter_entries
from drgui.core.engine.packs import forget_members, open_pack
from drgui.core.engine.pipeline import read_part
from drgui.core.engine.snapshot import PackRef, snapshot_prefix
from drgui.core.engine.sources.base import pump_in_thread
from drgui.core.errors import OperationFailed
from drgui.core.progress import CancelToken, ProgressCallback, RateMeter

TAR_PARTS = ("files.tar.zst", "objects.tar.zst")
MODE_BITS = 0o1777  # permissions and sticky; never setuid/setgid
MAX_PROBLEMS = 20


# --- the part as a whole -------------------------------------------------------------------------------
def part_problems(
    part: dict[str, Any], size: int, digest: str, cipher_digest: str, index_sha256: str | None
) -> list[str]:
    """What is wrong with a decrypted part against the manifest (plaintext) and the index (ciphertext)."""
    problems = []
    if cipher_digest != part["cipher_sha256"]:
        problems.append(f"{part['path']}: ciphertext sha256 does not match the manifest")
    elif index_sha256 is not None and cipher_digest != index_sha256:
        problems.append(f"{part['path']}: ciphertext sha256 does not match the index")
    if size != part["size"] or digest != part["sha256"]:
        problems.append(f"{part['path']}: decrypted content does not match the manifest (sha256)")
    return problems


def index_sha256_of(dest: Destination, snapshot_id: str, part: dict[str, Any]) -> str:
    """The part's ciphertext sha256 as index.json lists it; a part the index does not list is not restored."""
    found = next((p["sha256"] for p in dest.read_index(snapshot_id).parts if p["path"] == part["path"]), None)
    if found is None:
        raise OperationFailed(f"{part['path']}: not listed in index.json; not restored.")
    return str(found)


@contextlib.contextmanager
def decrypted_pipe(
    dest: Destination,
    snapshot_id: str,
    entry: dict[str, Any],
    part: dict[str, Any],
    identity: str,
    cancel: CancelToken,
    progress: ProgressCallback,
    *,
    index_sha256: str | None = None,
    meter: RateMeter | None = None,
) -> Iterator[tuple[BinaryIO, list[BaseException]]]:
    """The decrypted plaintext of `part` as a pipe that a producer thread fills, for a streaming consumer.

    Yields (reader, errors): the consumer may append its own error after the producer's. On leaving, the
    reader is closed (unblocking the producer), the producer joined, and the first error raised: a
    missing part, one that cannot be decrypted, or one whose hashes differ from the manifest or index.
    When the consumer returns normally, what it left unread is read and hashed before the checks.
    """
    read_fd, write_fd = os.pipe()
    reader = os.fdopen(read_fd, "rb")
    writer = os.fdopen(write_fd, "wb")
    key = f"{snapshot_prefix(snapshot_id)}/{part['path']}"

    def produce() -> None:
        with writer:
            try:
                with dest.open_read(key) as cipher:
                    rate = meter or RateMeter(progress, "restore", entry["name"], part["cipher_size"])
                    size, digest, cipher_digest = read_part(part, cipher, identity, writer, cancel, rate)
            except FileNotFoundError:
                raise OperationFailed(f"{part['path']}: missing") from None
            except OperationFailed as error:
                if error.message.startswith(part["path"]):
                    raise
                raise OperationFailed(f"{part['path']}: {error.message}") from None
        problems = part_problems(part, size, digest, cipher_digest, index_sha256)
        if problems:
            raise OperationFailed("; ".join(problems))

    thread, errors = pump_in_thread(produce)
    try:
        yield reader, errors
        drain(reader)  # the rest (tar padding) is hashed too, and the producer never meets a closed pipe
    finally:
        reader.close()
        thread.join()
    if errors:
        raise errors[0]


def drain(reader: BinaryIO) -> None:
    """Read what is left after the tar's end marker, so the whole part is hashed."""
    while reader.read(CHUNK):
        pass


# --- members -------------------------------------------------------------------------------------------
@dataclass
class Expected:
    """A source's manifest `files` as {path: entry}, types filled in for manifests older than `type`."""

    items: dict[str, dict[str, Any]]
    typed: bool  # directories are listed too (folder manifests since issue 11)

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> Expected:
        items = {}
        typed = False
        for item in entry.get("files", []):
            typed = typed or "type" in item
            kind = item.get("type") or ("symlink" if "symlink" in item else "file")
            items[item["path"]] = {**item, "type": kind, "target": item.get("target", item.get("symlink"))}
        return cls(items, typed)


def member_kind(member: tarfile.TarInfo) -> str | None:
    if member.isreg():
        return "file"
    if member.isdir():
        return "dir"
    if member.issym():
        return "symlink"
    return None


def member_path(member: tarfile.TarInfo) -> str:
    """The member's relative path, or OperationFailed when it is absolute or not plain."""
    name = member.name
    if name.startswith("./"):
        name = name[2:]
    if member.isdir():
        name = name.rstrip("/")
    if not name or name.startswith("/") or "\x00" in name:
        raise OperationFailed(f"'{member.name}': an absolute or empty name")
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise OperationFailed(f"'{member.name}': a name with '..', '.' or an empty component")
    return name


class TreeWriter(Protocol):
    def directory(self, path: str) -> None: ...
    def file(self, path: str, data: IO[bytes], mode: int, mtime: float) -> tuple[int, str]: ...
    def symlink(self, path: str, target: str, mtime: float) -> None: ...
    def duplicate(self, path: str, written: str, mode: int, mtime: float) -> None:
        """`path` has the same content as `written` (format 2: one member, several paths)."""


class HashWriter:
    """Reads and hashes file contents, writes nothing (verify --deep)."""

    def directory(self, path: str) -> None:
        pass

    def file(self, path: str, data: IO[bytes], mode: int, mtime: float) -> tuple[int, str]:
        digest = hashlib.sha256()
        size = 0
        while chunk := data.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
        return size, digest.hexdigest()

    def symlink(self, path: str, target: str, mtime: float) -> None:
        pass

    def duplicate(self, path: str, written: str, mode: int, mtime: float) -> None:
        pass


class DiskWriter:
    """Writes members below `root`, a fresh directory inside a private one: never through a link, never
    replacing. Listed directories get their modes afterwards (`restore.apply_directory_modes`)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _place(self, path: str) -> Path:
        """`root/path`, creating plain parent directories; refuses a parent that is not a real directory."""
        current = self.root
        for part in path.split("/")[:-1]:
            current = current / part
            try:
                info = current.lstat()
            except FileNotFoundError:
                current.mkdir()  # a parent the archive does not list (older snapshots): default mode
                continue
            if not stat.S_ISDIR(info.st_mode):
                raise OperationFailed(f"'{path}': its parent {part} is not a directory (a link?)")
        return current / path.rsplit("/", 1)[-1]

    def directory(self, path: str) -> None:
        target = self._place(path)
        try:
            target.mkdir(mode=0o700)
        except FileExistsError:
            if not stat.S_ISDIR(target.lstat().st_mode):
                raise OperationFailed(f"'{path}': exists and is not a directory") from None

    def file(self, path: str, data: IO[bytes], mode: int, mtime: float) -> tuple[int, str]:
        target = self._place(path)
        flags = (
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        )
        fd = os.open(target, flags, 0o600)
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as out:
            while chunk := data.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            os.chmod(out.fileno(), mode & MODE_BITS)
        os.utime(target, (mtime, mtime), follow_symlinks=False)
        return size, digest.hexdigest()

    def duplicate(self, path: str, written: str, mode: int, mtime: float) -> None:
        with open(self._place(written), "rb") as data:
            self.file(path, data, mode, mtime)

    def symlink(self, path: str, target: str, mtime: float) -> None:
        link = self._place(path)
        os.symlink(target, link)
        with contextlib.suppress(NotImplementedError, OSError):
            os.utime(link, (mtime, mtime), follow_symlinks=False)


@dataclass
class ArchiveReport:
    problems: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {"file": 0, "dir": 0, "symlink": 0})
    directories: list[tuple[str, int, float]] = field(default_factory=list)  # (path, mode, mtime)

    @property
    def summary(self) -> str:
        return (
            f"{self.counts['file']} files, {self.counts['symlink']} links and {self.counts['dir']} "
            "directories match the manifest"
        )


def _check_member(
    member: tarfile.TarInfo,
    tar: tarfile.TarFile,
    expected: Expected,
    seen: dict[str, str],
    writer: TreeWriter,
    report: ArchiveReport,
) -> None:
    path = member_path(member)
    kind = member_kind(member)
    if kind is None:
        raise OperationFailed(f"'{path}': not a file, directory or symbolic link; not restored")
    _claim(path, kind, seen, "appears twice in the archive")
    item = expected.items.get(path)
    if item is None:
        if kind == "dir" and not expected.typed:
            item = {"type": "dir"}
        else:
            raise OperationFailed(f"'{path}': not in the manifest")
    if item["type"] != kind:
        raise OperationFailed(f"'{path}': a {kind} in the archive, a {item['type']} in the manifest")
    if kind == "dir":
        writer.directory(path)
        report.directories.append((path, member.mode & MODE_BITS, member.mtime))
    elif kind == "symlink":
        if not member.linkname or "\x00" in member.linkname or member.linkname != item.get("target"):
            raise OperationFailed(f"'{path}': link target differs from the manifest")
        writer.symlink(path, member.linkname, member.mtime)
    else:
        data = tar.extractfile(member)
        assert data is not None
        size, digest = writer.file(path, data, member.mode, member.mtime)
        if size != item.get("size", size) or digest != item.get("sha256"):
            raise OperationFailed(f"'{path}': content differs from the manifest (sha256)")
    report.counts[kind] += 1


def _claim(path: str, kind: str, seen: dict[str, str], twice: str) -> None:
    """Refuse a path met before (`twice` says how) or below something that is not a directory; then
    remember it as a `kind`."""
    if path in seen:
        raise OperationFailed(f"'{path}': {twice}")
    parts = path.split("/")
    for depth in range(1, len(parts)):
        parent = "/".join(parts[:depth])
        if seen.get(parent, "dir") != "dir":
            raise OperationFailed(f"'{path}': would be written through the {seen[parent]} '{parent}'")
    seen[path] = kind


def check_archive(
    stream: BinaryIO, entry: dict[str, Any], writer: TreeWriter, cancel: CancelToken, where: str
) -> ArchiveReport:
    """Apply the rules to every member of the tar in `stream`; `where` prefixes every problem."""
    expected = Expected.from_entry(entry)
    report = ArchiveReport()
    seen: dict[str, str] = {}
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                cancel.check()
                forget_members(tar)
                try:
                    _check_member(member, tar, expected, seen, writer, report)
                except OperationFailed as error:
                    report.problems.append(f"{where}: {error.message}")
                    if len(report.problems) >= MAX_PROBLEMS:
                        break
        drain(stream)
    except (tarfile.TarError, EOFError) as error:
        report.problems.append(f"{where}: the archive is damaged: {error}")
        return report
    missing = [path for path in expected.items if path not in seen]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        report.problems.append(f"{where}: missing from the archive: {', '.join(missing[:5])}{more}")
    return report


# --- format 2: a file list and the packs holding the contents ----------------------------------------
def entry_path(path: str) -> str:
    """A file list path, or OperationFailed when it is absolute or not plain (the rules of member_path)."""
    if not path or path.startswith("/") or "\x00" in path:
        raise OperationFailed(f"'{path}': an absolute or empty name")
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise OperationFailed(f"'{path}': a name with '..', '.' or an empty component")
    return path


class _Wanted:
    """The file entries still to fill, by (pack, member), in an SQLite file (bounded memory)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute(
            "CREATE TABLE want (seq INTEGER PRIMARY KEY, pack TEXT, member TEXT, path TEXT, size INTEGER, "
            "sha256 TEXT, mode INTEGER, mtime INTEGER, done INTEGER DEFAULT 0)"
        )
        self.db.execute("CREATE INDEX want_member ON want (pack, member)")

    def add(self, item: FileEntry) -> None:
        self.db.execute(
            "INSERT INTO want (pack, member, path, size, sha256, mode, mtime) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (item.pack, item.member, item.path, item.size, item.sha256, item.mode, item.mtime),
        )

    def packs(self) -> list[str]:
        return [str(row[0]) for row in self.db.execute("SELECT DISTINCT pack FROM want ORDER BY pack")]

    def rows(self, pack: str, member: str) -> list[tuple[int, str, int, str, int, int]]:
        return list(
            self.db.execute(
                "SELECT seq, path, size, sha256, mode, mtime FROM want WHERE pack = ? AND member = ? "
                "AND done = 0 ORDER BY seq",
                (pack, member),
            )
        )

    def done(self, seqs: list[int]) -> None:
        self.db.executemany("UPDATE want SET done = 1 WHERE seq = ?", [(seq,) for seq in seqs])

    def missing(self) -> list[tuple[str, str]]:
        return [
            (str(r[0]), str(r[1]))
            for r in self.db.execute("SELECT path, pack FROM want WHERE done = 0 ORDER BY seq LIMIT 6")
        ]

    def close(self) -> None:
        self.db.close()
        self.path.unlink(missing_ok=True)


def check_packed_tree(
    dest: Destination,
    snapshot_id: str,
    entry: dict[str, Any],
    identity: str,
    writer: TreeWriter,
    cancel: CancelToken,
    workdir: Path,
    progress: ProgressCallback,
    index_parts: dict[str, str] | None = None,
) -> ArchiveReport:
    """Format 2's counterpart of `check_archive`: the file list part (checked against the manifest and
    the index like any part) gives every entry; directories and links are made in list order, then each
    pack the files need is decrypted once (ciphertext checked against the index) and every file written
    with its content's sha256 checked. The same path rules as a tar member's; a parent that is a link
    or a file of the same snapshot refuses the entry (DiskWriter never writes through one)."""
    report = ArchiveReport()
    part = next((p for p in entry["parts"] if p["name"] == FILE_LIST_PART), None)
    if part is None:
        report.problems.append(f"source '{entry['name']}': the manifest names no file list")
        return report
    index = dest.read_index(snapshot_id)
    listed_parts = index_parts if index_parts is not None else {p["path"]: p["sha256"] for p in index.parts}
    if part["path"] not in listed_parts:
        report.problems.append(f"{part['path']}: not listed in index.json")
        return report
    refs = {ref.id: ref for ref in index.packs}
    workdir.mkdir(parents=True, exist_ok=True)
    wanted = _Wanted(Path(tempfile.mkstemp(prefix="wanted-", suffix=".sqlite", dir=workdir)[1]))
    try:
        seen: dict[str, str] = {}
        with decrypted_pipe(
            dest,
            snapshot_id,
            entry,
            part,
            identity,
            cancel,
            progress,
            index_sha256=listed_parts[part["path"]],
        ) as (reader, _errors):
            for item in iter_entries(reader):
                cancel.check()
                try:
                    _check_entry(item, seen, refs, writer, wanted, report)
                except OperationFailed as error:
                    report.problems.append(f"{part['path']}: {error.message}")
                    if len(report.problems) >= MAX_PROBLEMS:
                        return report
        for pack_id in wanted.packs():
            _fill_from_pack(dest, refs[pack_id], identity, writer, wanted, report, cancel)
            if len(report.problems) >= MAX_PROBLEMS:
                return report
        missing = wanted.missing()
        if missing and not report.problems:
            shown = ", ".join(f"{path} (pack {pack})" for path, pack in missing[:5])
            report.problems.append(f"missing from their packs: {shown}")
    except (ValueError, UnicodeDecodeError) as error:
        report.problems.append(f"{part['path']}: the file list is damaged: {error}")
    finally:
        wanted.close()
    return report


def _check_entry(
    item: FileEntry,
    seen: dict[str, str],
    refs: dict[str, PackRef],
    writer: TreeWriter,
    wanted: _Wanted,
    report: ArchiveReport,
) -> None:
    path = entry_path(item.path)
    _claim(path, item.type, seen, "listed twice")
    if item.type == "dir":
        writer.directory(path)
        report.directories.append((path, item.mode & MODE_BITS, float(item.mtime)))
        report.counts["dir"] += 1
    elif item.type == "symlink":
        if not item.target or "\x00" in item.target:
            raise OperationFailed(f"'{path}': a link without a target")
        writer.symlink(path, item.target, float(item.mtime))
        report.counts["symlink"] += 1
    else:
        if not item.pack or not item.member or item.sha256 is None or item.size is None:
            raise OperationFailed(f"'{path}': a file without its content's pack")
        if item.pack not in refs:
            raise OperationFailed(f"'{path}': its pack {item.pack} is not listed in index.json")
        register = getattr(writer, "register", None)  # a bucket's writer maps tree names to keys
        if register is not None:
            register(item)
        wanted.add(item)


def _fill_from_pack(
    dest: Destination,
    ref: PackRef,
    identity: str,
    writer: TreeWriter,
    wanted: _Wanted,
    report: ArchiveReport,
    cancel: CancelToken,
) -> None:
    try:
        with open_pack(dest, ref, identity, cancel) as tar:
            for member in tar:
                cancel.check()
                forget_members(tar)
                rows = wanted.rows(ref.id, member.name) if member.isreg() else []
                if not rows:
                    continue
                data = tar.extractfile(member)
                assert data is not None
                _seq, path, size, sha256, mode, mtime = rows[0]
                got_size, digest = writer.file(path, data, mode, float(mtime))
                if (got_size, digest) != (size, sha256) or member.name != sha256:
                    report.problems.append(
                        f"{ref.key}: member {member.name} of '{path}' differs from the file list (sha256)"
                    )
                    continue
                for other in rows[1:]:
                    writer.duplicate(other[1], path, other[4], float(other[5]))
                wanted.done([row[0] for row in rows])
                report.counts["file"] += len(rows)
    except OperationFailed as error:
        report.problems.append(error.message)
