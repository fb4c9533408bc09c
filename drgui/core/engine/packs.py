"""Format 2's packs: whole files stored once per destination, in `packs/<id[:2]>/<id>.age`.

A pack is a tar (each member a file's content, named by its plaintext sha256 hex) | zstd | age to the
plan's recipient, about PACK_TARGET bytes of plaintext; a file larger than that gets a pack of its own.
A pack is written through the destination's atomic `open_write` (local: temp file, fsync, rename; S3:
a multipart upload completed at the end), so it is complete before any index names it. The index
(written last) lists every pack a snapshot references, with the ciphertext's size and sha256.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import secrets
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, BinaryIO

from drgui.core.engine.destinations.base import CHUNK, Destination
from drgui.core.engine.manifest import ContentIndex, FileEntry
from drgui.core.engine.pipeline import read_part, write_part
from drgui.core.engine.snapshot import PACKS_DIR, PackRef, PartRecord, pack_key
from drgui.core.errors import Cancelled, OperationFailed
from drgui.core.progress import CancelToken, ScanCounts

PACK_TARGET = 64 * 1024 * 1024
SMALL_FILE = 8 * 1024 * 1024  # read once into memory (hash, then pack); larger files are read twice


def forget_members(tar: tarfile.TarFile) -> None:
    """A streamed TarFile keeps every TarInfo it wrote or read; dropping them keeps memory bounded
    whatever the number of members (a pack of 200,000 small files)."""
    members = getattr(tar, "members", None)
    if isinstance(members, list):
        members.clear()


def new_pack_id() -> str:
    return secrets.token_hex(16)


class _PipeReader(io.RawIOBase):
    """The read end of a pack's pipe; at EOF after an abort it raises, so the destination discards the
    half-written pack instead of completing it."""

    def __init__(self, fd: int, aborted: threading.Event) -> None:
        self.raw = os.fdopen(fd, "rb", buffering=0)
        self.aborted = aborted

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        count = self.raw.readinto(buffer) or 0
        if not count and self.aborted.is_set():
            raise Cancelled("pack aborted")
        return count

    def close(self) -> None:
        self.raw.close()
        super().close()


class _OpenPack:
    def __init__(self, dest: Destination, recipient: str, cancel: CancelToken) -> None:
        self.pack_id = new_pack_id()
        self.plain = 0
        self.aborted = threading.Event()
        read_fd, write_fd = os.pipe()
        self.reader = _PipeReader(read_fd, self.aborted)
        self.writer = os.fdopen(write_fd, "wb", buffering=CHUNK)
        self.record = PartRecord("", self.pack_id, True)
        self.errors: list[BaseException] = []

        def produce() -> None:
            try:
                with dest.open_write(pack_key(self.pack_id)) as out:
                    write_part(self.record, self.reader, out, recipient, cancel)  # type: ignore[arg-type]
            except BaseException as error:
                self.errors.append(error)
            finally:
                self.reader.close()

        self.thread = threading.Thread(target=produce, daemon=True, name="drgui-pack")
        self.thread.start()
        self.tar = tarfile.open(fileobj=self.writer, mode="w|", format=tarfile.PAX_FORMAT)  # noqa: SIM115

    def add(self, member: str, size: int, data: IO[bytes], mtime: int) -> None:
        info = tarfile.TarInfo(member)
        info.size, info.mode, info.mtime = size, 0o600, mtime
        try:
            self.tar.addfile(info, data)
        except BrokenPipeError:
            self._raise_writer_error()
            raise
        forget_members(self.tar)
        self.plain += size

    def _raise_writer_error(self) -> None:
        self.thread.join()
        if self.errors:
            raise self.errors[0]

    def finish(self) -> PackRef:
        try:
            self.tar.close()
            self.writer.close()
        except BrokenPipeError:
            pass
        self._raise_writer_error()
        return PackRef(self.pack_id, self.record.cipher_size, self.record.cipher_sha256)

    def abort(self) -> None:
        self.aborted.set()
        with contextlib.suppress(OSError, ValueError):
            self.writer.close()
        self.thread.join()


class PackWriter:
    """Adds contents to packs at one destination; each pack is complete when `add`/`finish` return it."""

    def __init__(
        self, dest: Destination, recipient: str, cancel: CancelToken, target: int = PACK_TARGET
    ) -> None:
        self.dest = dest
        self.recipient = recipient
        self.cancel = cancel
        self.target = target
        self.current: _OpenPack | None = None
        self.written: dict[str, PackRef] = {}
        self.pending: set[str] = set()  # ids of packs being written (referenced once finished)

    def add(self, sha256: str, size: int, data: IO[bytes], mtime: int) -> str:
        """Store one content; returns the id of the pack that holds it (finished by `finish`)."""
        if self.current is not None and size >= self.target:
            self._close()
        if self.current is None:
            self.current = _OpenPack(self.dest, self.recipient, self.cancel)
            self.pending.add(self.current.pack_id)
        pack = self.current
        try:
            pack.add(sha256, size, data, mtime)
        except BaseException:
            self.abort()
            raise
        if pack.plain >= self.target:
            self._close()
        return pack.pack_id

    def _close(self) -> None:
        pack, self.current = self.current, None
        if pack is not None:
            ref = pack.finish()
            self.pending.discard(ref.id)
            self.written[ref.id] = ref

    def finish(self) -> dict[str, PackRef]:
        self._close()
        return self.written

    def abort(self) -> None:
        pack, self.current = self.current, None
        if pack is not None:
            pack.abort()
            self.pending.discard(pack.pack_id)


@dataclass
class PackContext:
    """What a v2 capture needs: where new packs go, the parent's entries and content index, the packs
    the destination holds (id -> ref, from the indexes there), and the counts for progress."""

    writer: PackWriter
    index: ContentIndex
    known: dict[str, PackRef]
    force_read: bool = False
    counts: ScanCounts = field(default_factory=ScanCounts)
    referenced: set[str] = field(default_factory=set)
    report: Callable[[ScanCounts], None] = lambda _counts: None
    warnings: list[str] = field(default_factory=list)
    next_index: ContentIndex | None = None  # this snapshot's entries, kept as the next run's cache

    def record(self, entry: FileEntry) -> None:
        if self.next_index is not None:
            self.next_index.add_parent(entry)

    def reusable(self, pack: str | None) -> bool:
        return pack is not None and pack in self.known

    def existing(self, sha256: str) -> tuple[str, str] | None:
        """(pack, member) of a content already stored at the destination or earlier in this run."""
        found = self.index.content(sha256)
        if found is None:
            return None
        pack, _member = found
        if pack in self.known or pack in self.writer.written or pack in self.writer.pending:
            return found
        return None

    def store(self, sha256: str, size: int, data: IO[bytes], mtime: int) -> tuple[str, str]:
        pack = self.writer.add(sha256, size, data, mtime)
        self.index.add_content(sha256, pack, sha256, replace=True)
        return pack, sha256

    def refs(self) -> list[PackRef]:
        """Every referenced pack, once the writer finished."""
        written = self.writer.finish()
        return sorted((written.get(p) or self.known[p] for p in self.referenced), key=lambda r: r.id)


# --- reading -------------------------------------------------------------------------------------------
@contextlib.contextmanager
def open_pack(
    dest: Destination, ref: PackRef, identity: str, cancel: CancelToken
) -> Iterator[tarfile.TarFile]:
    """The decrypted tar of a pack, streamed; on leaving, the ciphertext's size and sha256 are checked
    against `ref` (from the index) and any problem raised as OperationFailed naming the pack."""
    read_fd, write_fd = os.pipe()
    reader = os.fdopen(read_fd, "rb")
    writer = os.fdopen(write_fd, "wb")
    errors: list[BaseException] = []
    result: list[str] = []

    def produce() -> None:
        try:
            with writer:
                with dest.open_read(ref.key) as cipher:
                    _size, _digest, cipher_digest = read_part(
                        {"compressed": True}, cipher, identity, writer, cancel
                    )
                result.append(cipher_digest)
        except FileNotFoundError:
            errors.append(OperationFailed(f"{ref.key}: missing"))
        except OperationFailed as error:
            errors.append(OperationFailed(f"{ref.key}: {error.message}"))
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=produce, daemon=True, name="drgui-pack-read")
    thread.start()
    tar_error: OperationFailed | None = None
    try:
        try:
            with tarfile.open(fileobj=reader, mode="r|") as tar:
                yield tar
            while reader.read(CHUNK):
                pass
        except (tarfile.TarError, EOFError) as error:
            tar_error = OperationFailed(f"{ref.key}: the pack's archive is damaged: {error}")
    finally:
        reader.close()
        thread.join()
    if tar_error is not None and not errors:
        raise tar_error
    if errors:
        first = errors[0]
        if isinstance(first, BrokenPipeError | OSError) and not isinstance(first, FileNotFoundError):
            raise OperationFailed(f"{ref.key}: reading stopped early") from None
        raise first
    if result and result[0] != ref.sha256:
        raise OperationFailed(f"{ref.key}: ciphertext sha256 does not match the index (corrupted)")


def list_packs(dest: Destination) -> dict[str, int]:
    """Pack id -> ciphertext size of every pack at the destination (one listing)."""
    found = {}
    for info in dest.list_objects(PACKS_DIR + "/"):
        name = info.key.rsplit("/", 1)[-1]
        if name.endswith(".age") and info.key == pack_key(name[:-4]):
            found[name[:-4]] = info.size
    return found


def copy_packs(
    sources: list[Destination],
    target: Destination,
    refs: list[PackRef],
    progress: Callable[[int], None] | None = None,
) -> int:
    """Copy the packs of `refs` that `target` lacks (ciphertext, hash checked while copying) from the first
    of `sources` that holds each; returns the bytes copied. A pack no source holds is an error."""
    present = list_packs(target) if refs else {}
    copied = 0
    for ref in refs:
        if present.get(ref.id) == ref.size:
            continue
        origin = next((s for s in sources if s.exists(ref.key)), None)
        if origin is None:
            raise OperationFailed(
                f"{ref.key} is not on '{sources[0].name}' nor anywhere else; not copied to '{target.name}'.",
                hint="Run `drgui verify --deep` on the destinations; the next backup stores the files again.",
            )
        digest = hashlib.sha256()
        with origin.open_read(ref.key) as reader, target.open_write(ref.key) as out:
            while chunk := reader.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
                if progress:
                    progress(len(chunk))
            if digest.hexdigest() != ref.sha256:
                raise OperationFailed(
                    f"{ref.key} on '{origin.name}' is corrupt (ciphertext sha256); not copied to '{target.name}'.",
                    hint=f"Run `drgui verify --deep --dest {origin.name}`.",
                )
        copied += ref.size
    return copied


def hash_file(handle: BinaryIO, cancel: CancelToken) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    while chunk := handle.read(CHUNK):
        cancel.check()
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()
