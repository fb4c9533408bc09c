"""Private scratch directories that never outlive their owner for long.

A restore's decrypted dump, a drill's work files and a child's pgpass file live in a directory of their
own (mode 0700) that holds an OS lock (`owner.lock`) for as long as its owner runs. It is removed when the
owner is done; when the owner was killed (`kill -9`, power loss) the OS has released the lock, and the next
drgui command to start (`sweep_stale`) removes the directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from drgui.core.plan.home import Home
from drgui.core.plan.lock import HomeLock, LockHeld

OWNER_LOCK = "owner.lock"
PGPASS_PREFIX = "drgui-pgpass-"
UNLOCKED_AGE_LIMIT = 3600.0
ELSEWHERE_FILE = "elsewhere"  # in a scratch dir: the path of a directory outside the home it also owns
STAGING_MARK = ".drgui-restore-"  # in the name of a restore's staging directory beside its target


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def private_dir(parent: Path, prefix: str, purpose: str = "scratch") -> Iterator[Path]:
    """A new 0700 directory under `parent`, locked by this process while in use, removed afterwards."""
    parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    # Locked under a temporary name, then renamed: a sweep never sees an owner lock nobody holds yet.
    lock = HomeLock(path / f".{OWNER_LOCK}.new", purpose=purpose)
    try:
        lock.acquire()
        try:
            os.replace(lock.path, path / OWNER_LOCK)
        except OSError:  # Windows cannot rename an open file; the sweep then waits for the age limit
            pass
    except BaseException:
        lock.release()
        _remove(path)
        raise
    try:
        yield path
    finally:
        lock.release()  # first: Windows cannot remove a file that is still open
        _remove(path)


@contextlib.contextmanager
def owned_elsewhere(scratch_parent: Path, path: Path) -> Iterator[None]:
    """Let the sweep remove `path` (a restore's staging directory beside its target, outside the home)
    if this process is killed while it exists: a locked scratch dir names it while it is in use."""
    with private_dir(scratch_parent, "staging-", purpose="restore staging") as holder:
        (holder / ELSEWHERE_FILE).write_text(str(path), encoding="utf-8")
        yield


def _remove_elsewhere(holder: Path) -> None:
    """The staging directory a stale scratch dir names; only one of ours (its name says so), never a link."""
    try:
        path = Path((holder / ELSEWHERE_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return
    if STAGING_MARK in path.name and path.is_dir() and not path.is_symlink():
        _remove(path)


def _stale(path: Path) -> bool:
    """True when nobody holds the directory's owner lock (its owner has exited)."""
    lock_file = path / OWNER_LOCK
    if not lock_file.exists():
        lock_file = path / f".{OWNER_LOCK}.new"
        try:
            if time.time() - lock_file.stat().st_mtime < UNLOCKED_AGE_LIMIT:
                return False  # its owner may be between mkdtemp and taking the lock
        except FileNotFoundError:
            return False  # not one of ours
    try:
        with HomeLock(lock_file, purpose="sweep"):
            return True
    except LockHeld:
        return False


def sweep_stale(parent: Path, prefix: str = "") -> list[Path]:
    """Remove the private directories under `parent` (names starting with `prefix`) whose owner is gone."""
    removed: list[Path] = []
    try:
        candidates = [p for p in parent.iterdir() if p.name.startswith(prefix) and p.is_dir()]
    except OSError:
        return removed
    for path in candidates:
        if _stale(path):
            _remove_elsewhere(path)
            _remove(path)
            removed.append(path)
    return removed


def sweep_at_start(home_path: str | os.PathLike[str] | None) -> list[Path]:
    """What every drgui command does first: remove what a killed one left (decrypted dumps in the home's
    scratch dir, pgpass files in the temp dir). Never fails the command it runs before."""
    try:
        removed = sweep_stale(Path(tempfile.gettempdir()), PGPASS_PREFIX)
        scratch_dir = Home.resolve(home_path).scratch_dir
        if scratch_dir.is_dir():
            removed += sweep_stale(scratch_dir)
    except OSError:
        return []
    return removed
