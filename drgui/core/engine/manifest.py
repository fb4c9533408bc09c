"""Format 2's file list: one typed entry per file, directory and link of a folder or S3 source.

A v2 source's manifest entry (in manifest.age) carries `"format": 2` and names its file list part,
`parts/<source>/files.jsonl.zst.age`: JSON Lines (one `FileEntry` per line, parents before children),
zstd, age, hashed and listed in the index like any part. Streaming it keeps memory bounded whatever the
number of files. `ContentIndex` holds the parent snapshot's entries and the content index
(sha256 -> pack, member) in an SQLite file in the home's tmp dir, not in memory.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, BinaryIO

FILE_LIST_PART = "files.jsonl.zst"
ENTRY_TYPES = ("file", "dir", "symlink")


@dataclass
class FileEntry:
    """One line of the file list. Files have size, sha256 and (pack, member); links their target."""

    path: str  # relative, '/'-separated (for S3: the tree name, see sources/s3.py member_names)
    type: str  # file, dir, symlink
    mode: int = 0o644
    mtime: int = 0  # seconds (what restore sets)
    mtime_ns: int | None = None  # change detection (folder)
    inode: int | None = None  # change detection (folder)
    size: int | None = None
    sha256: str | None = None
    pack: str | None = None  # pack id holding the content
    member: str | None = None  # tar member name in that pack (the content's sha256)
    target: str | None = None  # symlink target, unchanged
    key: str | None = None  # S3: the object's full key
    object: str | None = None  # S3: the key after the source's prefix
    etag: str | None = None  # S3: change detection

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileEntry:
        if not isinstance(data, dict) or not isinstance(data.get("path"), str):
            raise ValueError("a file list entry without a path")
        if data.get("type") not in ENTRY_TYPES:
            raise ValueError(f"'{data.get('path')}': unknown type {data.get('type')!r}")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def line(self) -> bytes:
        return json.dumps(self.to_json(), sort_keys=True, ensure_ascii=True).encode() + b"\n"


class LineSplitter:
    """A sink for read_part: decrypted bytes in, whole FileEntry lines out (into an SQLite table)."""

    def __init__(self, on_entry: Any) -> None:
        self.on_entry = on_entry
        self.rest = b""
        self.count = 0

    def write(self, data: bytes) -> int:
        lines = (self.rest + data).split(b"\n")
        self.rest = lines.pop()
        for line in lines:
            if line.strip():
                self.on_entry(FileEntry.from_json(json.loads(line)))
                self.count += 1
        return len(data)

    def finish(self) -> None:
        if self.rest.strip():
            self.on_entry(FileEntry.from_json(json.loads(self.rest)))
            self.count += 1
        self.rest = b""


def iter_entries(stream: BinaryIO) -> Iterator[FileEntry]:
    for line in stream:
        if line.strip():
            yield FileEntry.from_json(json.loads(line))


class ContentIndex:
    """The parent snapshot's entries by path, and content sha256 -> (pack, member), on disk (SQLite)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("CREATE TABLE IF NOT EXISTS parent (path TEXT PRIMARY KEY, entry TEXT NOT NULL)")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS content (sha256 TEXT PRIMARY KEY, pack TEXT NOT NULL, "
            "member TEXT NOT NULL)"
        )

    def add_parent(self, entry: FileEntry) -> None:
        """Keyed by path (folders) or by the object's key after the prefix (S3: tree names can move)."""
        key = entry.object if entry.object is not None else entry.path
        self.db.execute("INSERT OR REPLACE INTO parent VALUES (?, ?)", (key, json.dumps(entry.to_json())))
        if entry.type == "file" and entry.sha256 and entry.pack and entry.member:
            self.add_content(entry.sha256, entry.pack, entry.member)

    def parent_entry(self, key: str) -> FileEntry | None:
        row = self.db.execute("SELECT entry FROM parent WHERE path = ?", (key,)).fetchone()
        return FileEntry.from_json(json.loads(row[0])) if row else None

    def add_content(self, sha256: str, pack: str, member: str, *, replace: bool = False) -> None:
        """`replace`: a content just stored takes the place of an entry naming a pack no longer there."""
        verb = "REPLACE" if replace else "IGNORE"
        self.db.execute(f"INSERT OR {verb} INTO content VALUES (?, ?, ?)", (sha256, pack, member))

    def content(self, sha256: str) -> tuple[str, str] | None:
        row = self.db.execute("SELECT pack, member FROM content WHERE sha256 = ?", (sha256,)).fetchone()
        return (str(row[0]), str(row[1])) if row else None

    def close(self) -> None:
        self.db.close()
        self.path.unlink(missing_ok=True)

    # --- the local cache: the entries of the snapshot just written, for the next run ------------------
    def keep_as(self, snapshot_id: str, cache: Path) -> None:
        """Close, labelled with `snapshot_id`, and move to `cache` (replacing an older cache)."""
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (snapshot TEXT NOT NULL)")
        self.db.execute("DELETE FROM meta")
        self.db.execute("INSERT INTO meta VALUES (?)", (snapshot_id,))
        self.db.commit()
        self.db.close()
        cache.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path, cache)
