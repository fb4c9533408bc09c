"""Copy every `.env` source, age-encrypted, to a registered drive, keeping `current` and `previous`.

Layout under the drive destination's root (`<mount>/drgui/<plan-id>/`, docs/drive.md):

    identity.age                       the plan's identity, wrapped with the recovery passphrase
    env/<source>/current/env.age       the .env, encrypted to the plan's recipient
    env/<source>/current/meta.json     time, sha256 (plaintext and ciphertext), key names; no value
    env/<source>/previous/...          the version before the last change
    env/<source>/incoming/             the new version while it is being written (transient)

Crash safety: `current/env.age` always exists and decrypts once a first sync finished. A new
version is written and fsynced in `incoming/`, `previous/` is replaced by a copy of `current/`
(via `previous.new/` and `previous.discard/`), then `current/env.age` and `current/meta.json` are
each replaced by one atomic rename. `repair` finishes or rolls back whatever a kill left behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drgui.core.engine.crypto import decrypt_bytes, encrypt_bytes, unwrap_identity
from drgui.core.engine.destinations.drive import DriveDestination
from drgui.core.engine.fsutil import atomic_write_bytes, fsync_dir
from drgui.core.engine.snapshot import IDENTITY_FILE
from drgui.core.engine.sources.envfile import EnvSource, env_keys, env_value_digests, key_changes
from drgui.core.errors import DrguiError, EnvironmentNotReady, OperationFailed, UsageError
from drgui.core.plan.lock import HomeLock
from drgui.core.plan.workspace import Workspace
from drgui.core.progress import Progress, ProgressCallback, ignore_progress

ENV_DIR = "env"
CURRENT = "current"
PREVIOUS = "previous"
INCOMING = "incoming"
PREVIOUS_NEW = "previous.new"
PREVIOUS_DISCARD = "previous.discard"
DATA_FILE = "env.age"
META_FILE = "meta.json"
VERSIONS = (CURRENT, PREVIOUS)


@dataclass
class EnvCopy:
    """What happened to one env source on the drive. Key names only, never values."""

    source: str
    status: str  # "written" (new content), "unchanged", "first" (first copy)
    sha256: str
    keys: int
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    path: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "status": self.status,
            "sha256": self.sha256,
            "keys": self.keys,
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "repaired": self.repaired,
            "path": self.path,
        }


@dataclass
class SyncResult:
    drive: str
    root: str
    copies: list[EnvCopy]
    eject: list[list[str]] | None
    seconds: float

    @property
    def ok(self) -> bool:
        return True

    def unplug_advice(self) -> str:
        if self.eject:
            commands = " && ".join(" ".join(command) for command in self.eject)
            return f"Safe to unplug after ejecting it: {commands} (or eject it in the file manager)."
        return "Everything is written and flushed: safe to unplug once you eject it in the file manager."

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "drive": self.drive,
            "root": self.root,
            "sources": [copy.to_json() for copy in self.copies],
            "safe_to_unplug": True,
            "eject": self.eject,
            "advice": self.unplug_advice(),
            "seconds": round(self.seconds, 3),
        }


@dataclass
class RestoredEnv:
    source: str
    version: str
    target: str
    sha256: str
    keys: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "version": self.version,
            "target": self.target,
            "sha256": self.sha256,
            "keys": self.keys,
        }


# ---------------------------------------------------------------- choosing the drive


def drive_destination(ws: Workspace, drive_name: str | None = None) -> DriveDestination:
    """The named drive destination, or the first plugged-in one; EnvironmentNotReady when absent."""
    if drive_name:
        dest = ws.destination(drive_name)
        if not isinstance(dest, DriveDestination):
            raise UsageError(
                f"Destination '{drive_name}' is a {dest.kind} destination, not a drive.",
                hint="Add the drive with `drgui dest add NAME drive --path MOUNTPOINT`.",
            )
        dest.mount_point()  # raises EnvironmentNotReady with how to plug/unlock it
        return dest
    drives = [d for d in ws.destinations() if isinstance(d, DriveDestination)]
    if not drives:
        raise UsageError(
            "The plan has no drive destination.",
            hint="Plug in an encrypted USB drive and run `drgui dest add key drive --path MOUNTPOINT`.",
        )
    for dest in drives:
        if dest.available():
            return dest
    drives[0].mount_point()  # the first one's own "not plugged in / locked" message
    raise EnvironmentNotReady("No registered drive is plugged in.", hint="Plug it in and try again.")


# ---------------------------------------------------------------- files on the drive


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_meta(directory: Path) -> dict[str, Any] | None:
    try:
        meta: dict[str, Any] = json.loads((directory / META_FILE).read_bytes())
        return meta
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def _version_complete(directory: Path) -> bool:
    """Both files there and the meta describes this very ciphertext."""
    meta = _read_meta(directory)
    try:
        data = (directory / DATA_FILE).read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return False
    return meta is not None and meta.get("ciphertext_sha256") == _sha256(data)


def _rename(src: Path, dst: Path) -> None:
    os.rename(src, dst)
    fsync_dir(dst.parent)
    if src.parent != dst.parent:
        fsync_dir(src.parent)


def _remove_tree(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
        fsync_dir(path.parent)


def repair(source_dir: Path) -> list[str]:
    """Finish or roll back what an interrupted sync left in `env/<source>/`; say what was done."""
    done: list[str] = []
    if not source_dir.is_dir():
        return done
    current, incoming = source_dir / CURRENT, source_dir / INCOMING
    previous, previous_new, discard = (
        source_dir / PREVIOUS,
        source_dir / PREVIOUS_NEW,
        source_dir / PREVIOUS_DISCARD,
    )
    # Killed while replacing previous/: finish with the complete copy, else put the old one back.
    if not previous.exists():
        if _version_complete(previous_new):
            _rename(previous_new, previous)
            done.append("finished replacing previous")
        elif discard.exists():
            _rename(discard, previous)
            done.append("restored previous")
    for leftover in (previous_new, discard):
        if leftover.exists():
            _remove_tree(leftover)
            done.append(f"removed {leftover.name}")
    if incoming.exists():
        if not current.exists() and _version_complete(incoming):
            _rename(incoming, current)
            done.append("finished the first copy")
        elif current.is_dir() and not _version_complete(current) and (incoming / META_FILE).exists():
            # Killed between the two renames into current/: env.age is new, meta.json still old.
            meta = _read_meta(incoming)
            data = (current / DATA_FILE).read_bytes() if (current / DATA_FILE).exists() else b""
            if meta and meta.get("ciphertext_sha256") == _sha256(data):
                _rename(incoming / META_FILE, current / META_FILE)
                done.append("finished updating current")
        if incoming.exists():
            _remove_tree(incoming)
            done.append("removed an unfinished copy")
    for stray in source_dir.glob("*/.*.tmp"):  # atomic_writer temp files of a killed write
        stray.unlink(missing_ok=True)
    return done


def _write_version(directory: Path, ciphertext: bytes, meta: dict[str, Any]) -> None:
    """env.age first, meta.json last: a directory with a matching meta.json is complete."""
    directory.mkdir(parents=True, exist_ok=True)
    fsync_dir(directory.parent)
    atomic_write_bytes(directory / DATA_FILE, ciphertext, 0o600)
    atomic_write_bytes(directory / META_FILE, _meta_bytes(meta), 0o600)


def _meta_bytes(meta: dict[str, Any]) -> bytes:
    return (json.dumps(meta, indent=1, sort_keys=True) + "\n").encode("utf-8")


def _decrypt_version(directory: Path, identity: str) -> bytes | None:
    """Plaintext of a version on the drive, or None when it is missing or does not decrypt."""
    try:
        return decrypt_bytes((directory / DATA_FILE).read_bytes(), identity)
    except (FileNotFoundError, NotADirectoryError, OperationFailed):
        return None


def _replace_previous(source_dir: Path, old_plaintext: bytes) -> None:
    """previous/ := a copy of current/, never leaving previous/ half-written."""
    previous, previous_new, discard = (
        source_dir / PREVIOUS,
        source_dir / PREVIOUS_NEW,
        source_dir / PREVIOUS_DISCARD,
    )
    _remove_tree(previous_new)
    ciphertext = (source_dir / CURRENT / DATA_FILE).read_bytes()
    meta = {  # rebuilt from the plaintext, so it matches even if current's meta.json did not
        **(_read_meta(source_dir / CURRENT) or {}),
        "sha256": _sha256(old_plaintext),
        "bytes": len(old_plaintext),
        "keys": env_keys(old_plaintext.decode("utf-8", errors="replace")),
        "ciphertext_sha256": _sha256(ciphertext),
    }
    _write_version(previous_new, ciphertext, meta)
    if previous.exists():
        _rename(previous, discard)
    _rename(previous_new, previous)
    _remove_tree(discard)


def _replace_current(source_dir: Path) -> None:
    """Move incoming's two files into current/: each file is replaced by one atomic rename."""
    current, incoming = source_dir / CURRENT, source_dir / INCOMING
    _rename(incoming / DATA_FILE, current / DATA_FILE)
    _rename(incoming / META_FILE, current / META_FILE)
    incoming.rmdir()
    fsync_dir(source_dir)


# ---------------------------------------------------------------- sync


def _diff(old: bytes | None, new: bytes) -> dict[str, list[str]]:
    new_text = new.decode("utf-8", errors="replace")
    if old is None:
        return {"added": env_keys(new_text), "removed": [], "changed": []}
    old_text = old.decode("utf-8", errors="replace")
    changes = key_changes(env_keys(old_text), env_keys(new_text))
    old_digests, new_digests = env_value_digests(old_text), env_value_digests(new_text)
    changes["changed"] = [k for k, v in new_digests.items() if k in old_digests and old_digests[k] != v]
    return changes


def sync_source(
    source: EnvSource, source_dir: Path, *, recipient: str, identity: str, now: datetime
) -> EnvCopy:
    repaired = repair(source_dir)
    plaintext = source.read()
    digest = _sha256(plaintext)
    current = source_dir / CURRENT
    old = _decrypt_version(current, identity)
    keys = env_keys(plaintext.decode("utf-8", errors="replace"))
    copy = EnvCopy(source.name, "unchanged", digest, len(keys), repaired=repaired, path=str(current))
    if old is not None and _sha256(old) == digest and _version_complete(current):
        return copy
    ciphertext = encrypt_bytes(plaintext, recipient)
    meta = {
        "format": 1,
        "source": source.name,
        "file_name": source.path.name,
        "time": now.astimezone(UTC).isoformat(timespec="seconds"),
        "sha256": digest,
        "bytes": len(plaintext),
        "keys": keys,
        "ciphertext_sha256": _sha256(ciphertext),
    }
    incoming = source_dir / INCOMING
    _write_version(incoming, ciphertext, meta)
    if _decrypt_version(incoming, identity) != plaintext:
        raise OperationFailed(
            f"The copy of '{source.name}' read back from the drive differs from what was written.",
            hint="The drive may be failing: try another one.",
        )
    if not current.exists():
        _rename(incoming, current)
        copy.status = "first"
    else:
        if old is not None and _sha256(old) != digest:
            _replace_previous(source_dir, old)  # only a real change rotates previous away
        _replace_current(source_dir)
        copy.status = "written" if old is None or _sha256(old) != digest else "unchanged"
    if _decrypt_version(current, identity) != plaintext:
        raise OperationFailed(f"Verifying the copy of '{source.name}' on the drive failed after writing it.")
    changes = _diff(old, plaintext)
    copy.added, copy.removed, copy.changed = changes["added"], changes["removed"], changes["changed"]
    return copy


def sync_env_to_drive(
    ws: Workspace,
    drive_name: str | None = None,
    progress: ProgressCallback = ignore_progress,
    now: datetime | None = None,
) -> SyncResult:
    """Copy every env source to the drive (see the module docstring); record a `drive_sync` run."""
    started = time.monotonic()
    dest = drive_destination(ws, drive_name)
    sources = [s for s in ws.sources() if isinstance(s, EnvSource)]
    if not sources:
        raise UsageError(
            "The plan has no env source.", hint="Add one with `drgui source add NAME env --path FILE`."
        )
    identity = ws.identity()
    moment = now or datetime.now(UTC)
    with HomeLock(ws.home.lock_path.with_name("drive-sync.lock"), "drive sync"):
        run_id = ws.history.start_run("drive_sync", target=dest.name)
        try:
            dest.ensure_root()
            root = dest.root
            if ws.wrapped_identity_path.exists():
                wrapped = ws.wrapped_identity_path.read_bytes()
                target = root / IDENTITY_FILE
                if not target.exists() or target.read_bytes() != wrapped:
                    atomic_write_bytes(target, wrapped, 0o600)
            copies = []
            for source in sources:
                progress(Progress("drive_sync", source=source.name, message="copying"))
                source_dir = root / ENV_DIR / source.name
                source_dir.mkdir(parents=True, exist_ok=True)
                copies.append(
                    sync_source(
                        source, source_dir, recipient=ws.plan.recipient, identity=identity, now=moment
                    )
                )
        except DrguiError as error:
            ws.history.finish_run(run_id, "failed", detail={"error": error.message})
            raise
        except OSError as error:
            ws.history.finish_run(run_id, "failed", detail={"error": str(error.strerror)})
            raise OperationFailed(f"Writing to drive '{dest.name}' failed: {error.strerror}.") from None
        ws.history.finish_run(
            run_id,
            "ok",
            detail={
                "sources": [
                    {k: c.to_json()[k] for k in ("source", "status", "added", "removed", "changed")}
                    for c in copies
                ]
            },
        )
    return SyncResult(dest.name, str(root), copies, dest.eject_commands(), time.monotonic() - started)


def stale_fingerprint(ws: Workspace, drive_name: str) -> str | None:
    """None when the drive is absent or its `current` copies equal every env source; else a digest of
    the sources' contents, so the app acts (syncs or asks) once per change, not on every poll.

    Cheap enough to call every few seconds: it hashes the .env files and reads each `meta.json` on the
    drive, decrypting nothing. A source that cannot be read is left to the sync to report.
    """
    dest = ws.destination(drive_name)
    if not isinstance(dest, DriveDestination) or not dest.available():
        return None
    stale = False
    digests = []
    for source in ws.sources():
        if not isinstance(source, EnvSource):
            continue
        try:
            digest = _sha256(source.read())
        except DrguiError:
            continue
        digests.append(f"{source.name}:{digest}")
        meta = _read_meta(dest.root / ENV_DIR / source.name / CURRENT)
        stale = stale or meta is None or meta.get("sha256") != digest
    return _sha256("\n".join(digests).encode()) if stale else None


# ---------------------------------------------------------------- restore


def restore_env_from_drive(
    ws: Workspace,
    drive_name: str | None,
    to_dir: Path,
    version: str = CURRENT,
    *,
    source_name: str | None = None,
    passphrase: str | None = None,
    overwrite: bool = False,
) -> list[RestoredEnv]:
    """Decrypt `env/<source>/<version>/env.age` into `to_dir` (`to_dir/<source>/<file>` for several).

    With `passphrase`, the key comes from the drive's own identity.age instead of the keyring.
    """
    if version not in VERSIONS:
        raise UsageError(f"Unknown version '{version}'.", hint="Use current or previous.")
    dest = drive_destination(ws, drive_name)
    env_root = dest.root / ENV_DIR
    names = sorted(p.name for p in env_root.iterdir() if p.is_dir()) if env_root.is_dir() else []
    if source_name:
        names = [n for n in names if n == source_name]
    if not names:
        raise OperationFailed(
            f"Drive '{dest.name}' holds no .env copy" + (f" of '{source_name}'." if source_name else "."),
            hint="Run `drgui env-to-drive` first.",
        )
    if passphrase is not None:
        identity = unwrap_identity((dest.root / IDENTITY_FILE).read_bytes(), passphrase).identity
    else:
        identity = ws.identity()
    restored = []
    for name in names:
        source_dir = env_root / name
        repair(source_dir)
        directory = source_dir / version
        plaintext = _decrypt_version(directory, identity)
        meta = _read_meta(directory)
        if plaintext is None or meta is None:
            raise OperationFailed(
                f"Drive '{dest.name}' has no readable {version} copy of '{name}'.",
                hint="Try the other version (current or previous).",
            )
        if meta.get("sha256") != _sha256(plaintext):
            raise OperationFailed(f"The {version} copy of '{name}' does not match its meta.json.")
        target_dir = to_dir / name if len(names) > 1 else to_dir
        target = target_dir / Path(str(meta.get("file_name") or ".env")).name
        if target.exists() and not overwrite:
            raise UsageError(
                f"Refused: {target} exists.", hint="Choose another directory, or pass --overwrite."
            )
        target_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, plaintext, 0o600)
        restored.append(RestoredEnv(name, version, str(target), meta["sha256"], list(meta.get("keys", []))))
    ws.history.append_event("drive_sync.restore", {"drive": dest.name, "version": version, "sources": names})
    return restored
