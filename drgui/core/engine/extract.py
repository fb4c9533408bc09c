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
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, Protocol

from drgui.core.engine.destinations.base import CHUNK, Destination
from drgui.core.engine.pipeline import read_part
from drgui.core.engine.snapshot import snapshot_prefix
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
    if path in seen:
        raise OperationFailed(f"'{path}': appears twice in the archive")
    parts = path.split("/")
    for depth in range(1, len(parts)):
        parent = "/".join(parts[:depth])
        if seen.get(parent, "dir") != "dir":
            raise OperationFailed(f"'{path}': would be written through the {seen[parent]} '{parent}'")
    seen[path] = kind
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
