"""Stream a part: source bytes -> sha256 -> zstd -> age -> sha256 -> destination. Bounded memory."""

from __future__ import annotations

import hashlib
import io
from typing import Any, BinaryIO, Protocol

import zstandard

from drgui.core.engine.crypto import decrypt_stream, encrypt_stream
from drgui.core.engine.snapshot import PartRecord
from drgui.core.errors import Cancelled, OperationFailed
from drgui.core.progress import CancelToken, RateMeter

ZSTD_LEVEL = 1  # on pg_dump output level 1 is twice as fast as 3 and compresses as well (bench/README.md)
READ_SIZE = 1024 * 1024


class HashingReader(io.RawIOBase):
    """Reads from `raw`, hashing and counting, checking for cancel between chunks."""

    def __init__(
        self, raw: BinaryIO, cancel: CancelToken | None = None, meter: RateMeter | None = None
    ) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()
        self.size = 0
        self.cancel = cancel
        self.meter = meter

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self.cancel is not None and self.cancel.cancelled:
            raise Cancelled("Cancelled. Nothing half-written was kept.")
        count = self.raw.readinto(buffer)  # type: ignore[attr-defined]
        if count:
            self.digest.update(memoryview(buffer)[:count])
            self.size += count
            if self.meter:
                self.meter.add(count)
        return count or 0


class HashingWriter(io.RawIOBase):
    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()
        self.size = 0
        self.error: OSError | None = None

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        try:
            self.raw.write(data)
        except OSError as error:
            self.error = error  # pyrage turns it into EncryptError; _encrypt re-raises the original
            raise
        self.digest.update(data)
        self.size += len(data)
        return len(data)


def write_part(
    record: PartRecord,
    stream: BinaryIO,
    out: BinaryIO,
    recipient: str,
    cancel: CancelToken | None = None,
    meter: RateMeter | None = None,
) -> PartRecord:
    """Fill in the record's sizes and hashes while streaming `stream` into `out` encrypted."""
    plain = HashingReader(stream, cancel, meter)
    buffered = io.BufferedReader(plain, READ_SIZE)
    cipher = HashingWriter(out)
    if record.compressed:
        compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True)
        with compressor.stream_reader(buffered, read_size=READ_SIZE, closefd=False) as compressed:
            _encrypt(compressed, cipher, recipient, cancel)
    else:
        _encrypt(buffered, cipher, recipient, cancel)
    record.size, record.sha256 = plain.size, plain.digest.hexdigest()
    record.cipher_size, record.cipher_sha256 = cipher.size, cipher.digest.hexdigest()
    return record


def _encrypt(reader: BinaryIO, writer: HashingWriter, recipient: str, cancel: CancelToken | None) -> None:
    try:
        encrypt_stream(reader, writer, recipient)  # type: ignore[arg-type]
    except OperationFailed:
        if cancel is not None and cancel.cancelled:
            raise Cancelled("Cancelled. Nothing half-written was kept.") from None
        if writer.error is not None:
            # The destination refused the write (disk full, read-only): let the destination name it.
            raise writer.error from None
        raise
    if cancel is not None:
        cancel.check()


class ByteSink(Protocol):
    """Where `read_part` writes the plaintext: a file, a pipe to pg_restore or tar, anything with write."""

    def write(self, data: bytes, /) -> object: ...


class _DecompressingWriter(io.RawIOBase):
    """age plaintext -> (zstd -d) -> sha256 -> sink."""

    def __init__(self, sink: ByteSink | None, compressed: bool, cancel: CancelToken | None) -> None:
        self.sink = sink
        self.digest = hashlib.sha256()
        self.size = 0
        self.cancel = cancel
        self._decompressor = zstandard.ZstdDecompressor().decompressobj() if compressed else None

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        if self.cancel is not None and self.cancel.cancelled:
            raise Cancelled("Cancelled.")
        plain = self._decompressor.decompress(bytes(data)) if self._decompressor else bytes(data)
        if plain:
            self.digest.update(plain)
            self.size += len(plain)
            if self.sink is not None:
                self.sink.write(plain)
        return len(data)


def read_part(
    record: PartRecord | dict[str, Any],
    reader: BinaryIO,
    identity: str,
    sink: ByteSink | None,
    cancel: CancelToken | None = None,
    meter: RateMeter | None = None,
) -> tuple[int, str, str]:
    """Decrypt (and decompress) a part into `sink`; return (plain size, plain sha256, cipher sha256)."""
    compressed = record.compressed if isinstance(record, PartRecord) else bool(record["compressed"])
    cipher = HashingReader(reader, cancel, meter)
    writer = _DecompressingWriter(sink, compressed, cancel)
    try:
        decrypt_stream(io.BufferedReader(cipher, READ_SIZE), writer, identity)
    except (zstandard.ZstdError, OperationFailed) as error:
        if cancel is not None and cancel.cancelled:
            raise Cancelled("Cancelled.") from None
        raise OperationFailed(f"cannot be decrypted or decompressed: {error}") from None
    return writer.size, writer.digest.hexdigest(), cipher.digest.hexdigest()
