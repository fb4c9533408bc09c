"""Snapshot formats 1 and 2: ids, the plaintext index and the encrypted manifest.

Every plan's data at a destination lives under its own scope, `<dest root>/<plan id>/`:
<dest root>/<plan id>/identity.age
<dest root>/<plan id>/snapshots/<id>/index.json       plaintext, no secrets, self-checking
<dest root>/<plan id>/snapshots/<id>/manifest.age     encrypted JSON manifest
<dest root>/<plan id>/snapshots/<id>/parts/<source>/<part>.age
<dest root>/<plan id>/packs/<id[:2]>/<id>.age          format 2: files of folder and S3 sources, shared
Older versions wrote `<dest root>/identity.age` and `<dest root>/snapshots/<id>/` (the legacy layout,
still read; a legacy snapshot belongs to the plan its index.json names). See docs/snapshot-format.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets as _random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from drgui import FORMAT_VERSION
from drgui.core.errors import OperationFailed

SNAPSHOT_ID_RE = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{8}$")
SNAPSHOTS_DIR = "snapshots"
IDENTITY_FILE = "identity.age"
INDEX_FILE = "index.json"
MANIFEST_FILE = "manifest.age"
PACKS_DIR = "packs"
FORMAT_V1 = 1
FORMAT_V2 = 2  # folder and S3 sources as whole files in shared packs (engine/packs.py)
READ_FORMATS = (FORMAT_V1, FORMAT_V2)
PACK_ID_RE = re.compile(r"^[0-9a-f]{32}$")


def new_snapshot_id(start: datetime) -> str:
    return start.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + _random.token_hex(4)


def snapshot_time(snapshot_id: str) -> datetime:
    return datetime.strptime(snapshot_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def start_time(time: str, snapshot_id: str) -> datetime:
    """A snapshot's start: the index's full ISO time (sub-second), or the id's second when unreadable."""
    try:
        parsed = datetime.fromisoformat(time)
    except (TypeError, ValueError):
        return snapshot_time(snapshot_id)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def order_key(time: str, snapshot_id: str) -> tuple[datetime, str]:
    """The one ordering of snapshots: start time, then the id (ids have only second resolution)."""
    return start_time(time, snapshot_id), snapshot_id


def is_snapshot_id(name: str) -> bool:
    return bool(SNAPSHOT_ID_RE.match(name))


def part_key(source: str, filename: str) -> str:
    return f"parts/{source}/{filename}.age"


def find_part(entry: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The part called `name` (e.g. db.dump.zst) of a manifest's source entry, or None."""
    return next((p for p in entry["parts"] if p["name"] == name), None)


@dataclass
class PartRecord:
    """One encrypted file of a snapshot. `size`/`sha256` describe the plaintext after zstd -d (or as is)."""

    source: str
    name: str  # e.g. db.dump.zst (stored as parts/<source>/<name>.age)
    compressed: bool
    size: int = 0
    sha256: str = ""
    cipher_size: int = 0
    cipher_sha256: str = ""

    @property
    def key(self) -> str:
        return part_key(self.source, self.name)

    def to_index(self) -> dict[str, Any]:
        return {
            "path": self.key,
            "source": self.source,
            "size": self.cipher_size,
            "sha256": self.cipher_sha256,
        }

    def to_manifest(self) -> dict[str, Any]:
        return {
            "path": self.key,
            "source": self.source,
            "name": self.name,
            "compressed": self.compressed,
            "size": self.size,
            "sha256": self.sha256,
            "cipher_size": self.cipher_size,
            "cipher_sha256": self.cipher_sha256,
        }


def write_format() -> int:
    """The format new snapshots are written in: 2, or 1 when DRGUI_SNAPSHOT_FORMAT=1 (the test suite's
    format-1 tests, and a plan that must stay readable by older drgui versions)."""
    return FORMAT_V1 if os.environ.get("DRGUI_SNAPSHOT_FORMAT", "").strip() == "1" else FORMAT_V2


def pack_key(pack_id: str) -> str:
    """Where a pack lives, relative to the plan scope (beside `snapshots/`)."""
    return f"{PACKS_DIR}/{pack_id[:2]}/{pack_id}.age"


@dataclass(frozen=True)
class PackRef:
    """One pack as index.json lists it: its id and its ciphertext's size and sha256 (no key needed)."""

    id: str
    size: int
    sha256: str

    @property
    def key(self) -> str:
        return pack_key(self.id)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "size": self.size, "sha256": self.sha256}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PackRef:
        pack_id = str(data["id"])
        if not PACK_ID_RE.match(pack_id):
            raise ValueError(f"pack id {pack_id!r} is not 32 hex digits")
        return cls(pack_id, int(data["size"]), str(data["sha256"]))


@dataclass
class Index:
    """index.json: what a keyless check needs. A checksum over its canonical form catches any flipped byte."""

    snapshot_id: str
    time: str
    plan_id: str
    sources: list[dict[str, str]]  # [{"name", "kind"}]
    parts: list[dict[str, Any]]  # [{"path", "source", "size", "sha256"}]
    manifest: dict[str, Any]  # {"path", "size", "sha256"}
    end_time: str = ""
    drgui_version: str = ""
    format: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)
    packs: list[PackRef] = field(default_factory=list)  # format 2: every pack the snapshot references

    def _body(self) -> dict[str, Any]:
        return {
            **({"packs": [p.to_json() for p in self.packs]} if self.format >= FORMAT_V2 else {}),
            "format": self.format,
            "id": self.snapshot_id,
            "time": self.time,
            "end_time": self.end_time,
            "plan": self.plan_id,
            "drgui_version": self.drgui_version,
            "sources": self.sources,
            "parts": self.parts,
            "manifest": self.manifest,
            **({"extra": self.extra} if self.extra else {}),
        }

    def to_bytes(self) -> bytes:
        body = self._body()
        body["index_sha256"] = hashlib.sha256(_canonical(body)).hexdigest()
        return _canonical(body, pretty=True) + b"\n"

    @property
    def total_size(self) -> int:
        return sum(int(p["size"]) for p in self.parts) + int(self.manifest.get("size", 0))

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "index.json") -> Index:
        try:
            body = json.loads(data.decode("utf-8"))
            claimed = body.pop("index_sha256")
            if hashlib.sha256(_canonical(body)).hexdigest() != claimed:
                raise ValueError("checksum mismatch")
            index = cls(
                snapshot_id=body["id"],
                time=body["time"],
                plan_id=body["plan"],
                sources=body["sources"],
                parts=body["parts"],
                manifest=body["manifest"],
                end_time=body.get("end_time", ""),
                drgui_version=body.get("drgui_version", ""),
                format=body["format"],
                extra=body.get("extra", {}),
                packs=[PackRef.from_json(p) for p in body.get("packs", [])],
            )
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
            raise OperationFailed(
                f"{where} is corrupt ({error}).", hint="Use another snapshot or destination."
            ) from None
        if index.to_bytes() != data:
            raise OperationFailed(f"{where} is corrupt (bytes differ from its canonical form).")
        if index.format not in READ_FORMATS:
            raise OperationFailed(
                f"{where} is snapshot format {index.format}; this drgui reads formats 1 and 2.",
                hint="Install a drgui version that reads it.",
            )
        return index


def _canonical(body: dict[str, Any], pretty: bool = False) -> bytes:
    if pretty:
        return json.dumps(body, sort_keys=True, indent=1, ensure_ascii=True).encode()
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


SAFETY_PREFIX = "pre-restore-"  # source names of a pre-restore safety snapshot (core/safety.py)
SAFETY_PIN_REASON = "pre-restore safety snapshot of"  # its pin in the history
SAFETY_KEEP = timedelta(days=30)  # how long prune keeps it (it is outside the retention policy's buckets)


def safety_source_name(source_name: str) -> str:
    """The name a source's pre-restore safety snapshot gives it (never pre-restore-pre-restore-...)."""
    return SAFETY_PREFIX + source_name.removeprefix(SAFETY_PREFIX)


def is_safety_snapshot(source_names: list[str]) -> bool:
    """A snapshot that holds only pre-restore sources (index.json's `sources` names them, no key needed).

    It is not a backup: never "latest" for a plain restore, verify or drill, and never in retention's
    buckets, where it would take the place of the day's real backup."""
    return bool(source_names) and all(name.startswith(SAFETY_PREFIX) for name in source_names)


def snapshot_prefix(snapshot_id: str) -> str:
    return f"{SNAPSHOTS_DIR}/{snapshot_id}"
