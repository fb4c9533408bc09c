"""One lock file in the plan home makes a backup single-flight across the GUI, the CLI and the OS timer.

The lock is an OS file lock (flock on POSIX, msvcrt.locking on Windows), so the OS releases it
when the holder exits or crashes: there is no stale-lock clean-up by pid, and none is needed.
The lock file also holds a small JSON record of the holder (pid, purpose, program name, start
time) for the "another backup is running" message; the program name is the basename of argv[0],
never the whole command line, which may contain secrets.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from drgui.core.errors import OperationFailed
from drgui.core.timing.clock import format_iso, parse_iso

LOCK_NAME = "backup.lock"
"""The lock file's name inside a plan home (the same as `Home.lock_path`)."""

_POLL = 0.05
# Holder() briefly takes the lock to see whether it is free; an acquirer that meets such a probe
# (or a holder that is just letting go) tries again for this long even with wait=0.
_GRACE = 0.25
# On Windows the locked byte range cannot be read by others, so the lock is on one byte far past
# the holder record, which stays readable.
_WINDOWS_LOCK_OFFSET = 1 << 30
_INFO_LIMIT = 4096

if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


class LockHeld(OperationFailed):
    """The home is locked by another operation; `holder` says who (see HomeLock.holder)."""

    def __init__(self, message: str, hint: str | None = None, holder: dict[str, Any] | None = None) -> None:
        super().__init__(message, hint)
        self.holder = holder or _unknown_holder()


def _lock_path(path: Path) -> Path:
    """A plan home directory stands for the lock file inside it."""
    path = Path(path)
    return path / LOCK_NAME if path.is_dir() else path


def _program_name() -> str:
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else ""
    name = Path(argv0).name
    if name in ("__main__.py", "-c", "-m", ""):
        parent = Path(argv0).parent.name if name == "__main__.py" else ""
        return parent or Path(sys.executable).name or "python"
    return name


def _open(path: Path) -> int:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        return os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o600)
    except OSError as err:
        raise OperationFailed(
            f"Cannot open the lock file {path}: {err.strerror}.",
            hint="Check that the plan home exists and that you can write to it.",
        ) from None


class HomeLock:
    """Exclusive lock of a plan home; use as a context manager.

    `path` is the lock file, or a plan home directory (then `<home>/backup.lock`). With `wait` > 0
    it waits up to that many seconds for the holder to finish. When the lock is held it raises
    LockHeld naming the holder: pid, program, since when. The lock is per open file, so a
    second HomeLock on the same home in the same process is refused too. The error is LockHeld,
    an OperationFailed, so callers that skip quietly when busy (`drgui run-due`) can catch it.
    """

    def __init__(self, path: Path, purpose: str = "backup", wait: float = 0) -> None:
        self.path = _lock_path(path)
        self.purpose = purpose
        self.wait = wait
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def acquire(self) -> Self:
        if self._fd is not None:
            raise RuntimeError(f"HomeLock {self.path} is already held by this object")
        fd = _open(self.path)
        deadline = time.monotonic() + max(self.wait, _GRACE)
        while not _try_lock(fd):
            if time.monotonic() >= deadline:
                os.close(fd)
                raise self._held_error()
            time.sleep(_POLL)
        self._fd = fd
        try:
            self._write_info(fd)
        except OSError:
            self.release()
            raise
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            # Clear the record first, so nobody reads a finished holder as the current one.
            os.ftruncate(fd, 0)
        except OSError:
            pass
        finally:
            try:
                _unlock(fd)
            finally:
                os.close(fd)

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def _write_info(self, fd: int) -> None:
        info = {
            "pid": os.getpid(),
            "purpose": self.purpose,
            "program": _program_name(),
            "since": format_iso(datetime.now().astimezone(), timespec="seconds"),
        }
        data = json.dumps(info).encode()
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, data)

    def _held_error(self) -> LockHeld:
        holder = HomeLock.holder(self.path) or _unknown_holder()
        return LockHeld(
            f"Another {holder['purpose'] or 'backup'} is running ({_describe_holder(holder)}).",
            hint="Wait for it to finish or cancel it there.",
            holder=holder,
        )

    @staticmethod
    def holder(path: Path) -> dict[str, Any] | None:
        """Who holds the lock: {"pid", "purpose", "program", "since"} (values None if unknown), or None."""
        path = _lock_path(path)
        try:
            fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))
        except FileNotFoundError:
            return None
        try:
            if _try_lock(fd):
                _unlock(fd)
                return None
            return _read_info(fd)
        finally:
            os.close(fd)


def _unknown_holder() -> dict[str, Any]:
    return {"pid": None, "purpose": None, "program": None, "since": None}


def _read_info(fd: int) -> dict[str, Any]:
    """The holder record; it may be missing for a moment while the holder is writing it."""
    for _ in range(3):
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.read(fd, _INFO_LIMIT)
        try:
            loaded = json.loads(data)
        except ValueError:
            time.sleep(_POLL)
            continue
        if isinstance(loaded, dict):
            return _unknown_holder() | {key: loaded.get(key) for key in _unknown_holder()}
    return _unknown_holder()


def _describe_holder(holder: dict[str, Any]) -> str:
    parts = []
    if holder["pid"] is not None:
        parts.append(f"pid {holder['pid']}")
    if holder["program"]:
        parts.append(str(holder["program"]))
    since = _format_since(holder["since"])
    if since:
        parts.append(f"since {since}")
    return ", ".join(parts) or "holder unknown"


def _format_since(since: object) -> str | None:
    if not isinstance(since, str):
        return None
    try:
        moment = parse_iso(since)
    except ValueError:
        return None
    now = datetime.now(moment.tzinfo)
    if timedelta(0) <= now - moment < timedelta(hours=20):
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%Y-%m-%d %H:%M:%S")
