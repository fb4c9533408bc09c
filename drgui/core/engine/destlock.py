"""A lock at the destination, so that a backup and a prune from another machine never interleave.

The home lock (plan/lock.py) only covers one machine; a kit restore on a laptop can prune the same
bucket a server backs up to. Lock objects live at the plan's scope of the destination:

    locks/<32 hex>.json   {"host", "pid", "mode": "shared"|"exclusive", "purpose", "started", "refreshed"}

Backups hold a shared lock (several may run), prune holds the exclusive one. A holder rewrites its
object every REFRESH_INTERVAL from a thread; a lock not refreshed for STALE_AFTER (by its own clock and,
where the destination keeps one, by the object's modification time), or held on this host by a process
that no longer exists, is stale: it is removed with a message naming host, pid and age. Acquiring writes
the own object first, then lists the others: a conflicting live one makes it remove its object and wait
(bounded) or fail with DestinationLocked (exit 3). Works on every Destination (put/get/list/delete).

A holder whose lock was broken by someone else (it was hung longer than STALE_AFTER) learns it at the
next refresh: `check()` then raises, and a backup must call it before committing its index.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from drgui.core import fmt
from drgui.core.engine.destinations.base import Destination
from drgui.core.errors import DestinationError, EnvironmentNotReady
from drgui.core.timing.clock import format_iso, parse_iso

log = logging.getLogger(__name__)

LOCKS_DIR = "locks"
REFRESH_INTERVAL = timedelta(minutes=1)
STALE_AFTER = timedelta(hours=1)
EXCLUSIVE_WAIT = 30.0  # seconds an exclusive lock waits for live locks to go away by default
SHARED_WAIT = 0.0  # a backup does not wait for a prune: the next scheduled run will do
_POLL = 0.5

Mode = Literal["shared", "exclusive"]
Warn = Callable[[str], None]


class DestinationLocked(EnvironmentNotReady):
    """Another machine or process holds a conflicting lock at the destination (exit 3)."""


@dataclass(frozen=True)
class LockRecord:
    """One lock object found at the destination."""

    key: str
    host: str | None
    pid: int | None
    mode: str | None
    purpose: str | None
    started: datetime | None
    refreshed: datetime | None
    mtime: datetime | None  # the destination's own time of the last write, when it has one

    @property
    def exclusive(self) -> bool:
        return self.mode != "shared"  # an unreadable mode is taken as the stricter one

    def age(self, now: datetime) -> timedelta | None:
        """Time since the last refresh; the younger of the two clocks (the holder's and the store's)."""
        ages = [now - moment for moment in (self.refreshed, self.mtime) if moment is not None]
        return min(ages) if ages else None

    def stale_reason(self, now: datetime) -> str | None:
        """Why this lock's holder is gone, or None while it may still be working."""
        if self.host == socket.gethostname() and self.pid is not None and not _process_alive(self.pid):
            return f"process {self.pid} no longer runs on this host"
        age = self.age(now)
        if age is not None and age > STALE_AFTER:
            return f"not refreshed for {fmt.duration(age.total_seconds())}"
        return None

    def describe(self, now: datetime) -> str:
        what = f"{self.mode or 'unknown'} lock"
        if self.purpose:
            what += f" ({self.purpose})"
        holder = f"host {self.host or 'unknown'}, pid {self.pid if self.pid is not None else 'unknown'}"
        age = self.age(now)
        since = f", refreshed {fmt.duration(max(age.total_seconds(), 0))} ago" if age is not None else ""
        started = f", started {self.started.isoformat(timespec='seconds')}" if self.started else ""
        return f"{what} held by {holder}{started}{since}"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's) or cannot tell: assume it runs
    return True


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_iso(value)
    except ValueError:
        return None


def read_locks(dest: Destination) -> list[LockRecord]:
    """Every lock object at the destination's scope (an unreadable one counts, as exclusive)."""
    records = []
    for info in dest.list_objects(LOCKS_DIR + "/"):
        if not info.key.endswith(".json"):
            continue
        try:
            data: Any = json.loads(dest.get_bytes(info.key).decode("utf-8"))
        except FileNotFoundError:
            continue  # released while we listed
        except (ValueError, UnicodeDecodeError):
            data = {}
        if not isinstance(data, dict):
            data = {}
        pid = data.get("pid")
        records.append(
            LockRecord(
                key=info.key,
                host=data.get("host") if isinstance(data.get("host"), str) else None,
                pid=pid if isinstance(pid, int) else None,
                mode=data.get("mode") if data.get("mode") in ("shared", "exclusive") else None,
                purpose=data.get("purpose") if isinstance(data.get("purpose"), str) else None,
                started=_time(data.get("started")),
                refreshed=_time(data.get("refreshed")),
                mtime=info.mtime,
            )
        )
    return records


class DestLock:
    """One lock object held at a destination; use `shared()` / `exclusive()` as context managers."""

    def __init__(
        self,
        dest: Destination,
        mode: Mode,
        purpose: str,
        *,
        wait: float | None = None,
        warn: Warn | None = None,
    ) -> None:
        self.dest = dest
        self.mode: Mode = mode
        self.purpose = purpose
        self.wait = (EXCLUSIVE_WAIT if mode == "exclusive" else SHARED_WAIT) if wait is None else wait
        self.warn = warn or (lambda message: log.warning("%s", message))
        self.key = f"{LOCKS_DIR}/{secrets.token_hex(16)}.json"
        self.started = datetime.now(UTC)
        self.refreshed = self.started
        self.broken: list[str] = []  # messages about stale locks this acquisition removed
        self.lost: str | None = None  # why this lock is no longer held (broken by someone else)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._held = False

    # --- the object -----------------------------------------------------------------------------
    def _body(self) -> bytes:
        return json.dumps(
            {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "mode": self.mode,
                "purpose": self.purpose,
                "started": format_iso(self.started),
                "refreshed": format_iso(self.refreshed),
            },
            sort_keys=True,
        ).encode()

    def _write(self) -> None:
        self.dest.put_bytes(self.key, self._body())

    def _remove_own(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.dest.delete(self.key)

    # --- acquiring --------------------------------------------------------------------------------
    def _conflicts(self) -> list[LockRecord]:
        """Live locks of others that exclude ours; stale ones are removed (and said) on the way."""
        now = datetime.now(UTC)
        conflicts = []
        for record in read_locks(self.dest):
            if record.key == self.key:
                continue
            if not (self.mode == "exclusive" or record.exclusive):
                continue
            reason = record.stale_reason(now)
            if reason is None:
                conflicts.append(record)
                continue
            message = f"Destination '{self.dest.name}': removed a stale {record.describe(now)} ({reason})."
            try:
                self.dest.delete(record.key)
            except FileNotFoundError:
                pass
            except DestinationError as error:  # e.g. object-locked: stale all the same, so not in the way
                message += f" It could not be deleted ({error.message})."
            self.broken.append(message)
            self.warn(message)
        return conflicts

    def acquire(self) -> DestLock:
        if self._held:
            raise RuntimeError(f"lock {self.key} is already held")
        deadline = time.monotonic() + max(self.wait, 0.0)
        while True:
            self.refreshed = datetime.now(UTC)
            self._write()
            try:
                conflicts = self._conflicts()
            except BaseException:
                self._remove_own()
                raise
            if not conflicts:
                break
            self._remove_own()
            if time.monotonic() >= deadline:
                raise self._locked_error(conflicts)
            time.sleep(_POLL * (0.5 + random.random()))  # jitter: two waiters do not collide forever
        self._held = True
        self._stop.clear()
        self._thread = threading.Thread(target=self._refresh_loop, name="drgui-destlock", daemon=True)
        self._thread.start()
        return self

    def _locked_error(self, conflicts: list[LockRecord]) -> DestinationLocked:
        now = datetime.now(UTC)
        holders = "; ".join(record.describe(now) for record in conflicts)
        doing = "prune" if self.mode == "exclusive" else "back up to"
        return DestinationLocked(
            f"Cannot {doing} destination '{self.dest.name}' now: {holders}.",
            hint=(
                "Wait for it to finish (a lock whose holder is gone is removed after "
                f"{fmt.duration(STALE_AFTER.total_seconds())}), then try again."
            ),
        )

    # --- holding ----------------------------------------------------------------------------------
    def _refresh_loop(self) -> None:
        interval = REFRESH_INTERVAL.total_seconds()
        while not self._stop.wait(interval):
            self.refresh()

    def refresh(self) -> None:
        """Rewrite the lock object with a new time; notice when someone removed it as stale."""
        if self.lost:
            return
        try:
            if not self.dest.exists(self.key):
                self.lost = (
                    f"the {self.mode} lock at destination '{self.dest.name}' was removed by another "
                    "process (it took it for stale)"
                )
                self.warn(self.lost[0].upper() + self.lost[1:] + ".")
                return
            self.refreshed = datetime.now(UTC)
            self._write()
        except DestinationError as error:  # keep trying; check() fails once the lock may count as stale
            log.warning("could not refresh %s: %s", self.key, error.message)

    def check(self) -> None:
        """Raise unless the lock is still ours: call it before making a snapshot visible."""
        if not self._held:
            raise RuntimeError(f"lock {self.key} is not held")
        if self.lost is None and datetime.now(UTC) - self.refreshed > STALE_AFTER - REFRESH_INTERVAL:
            self.lost = (
                f"the {self.mode} lock at destination '{self.dest.name}' could not be refreshed for "
                f"{fmt.duration((datetime.now(UTC) - self.refreshed).total_seconds())}"
            )
        if self.lost:
            raise DestinationLocked(
                f"Lost the lock: {self.lost}; nothing was made visible.",
                hint="Run the operation again.",
            )

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.lost is None:
            try:
                self._remove_own()
            except DestinationError as error:  # it goes stale in an hour; say so, do not hide the result
                self.warn(
                    f"Could not remove the lock {self.key} at destination '{self.dest.name}' "
                    f"({error.message}); it counts as stale after "
                    f"{fmt.duration(STALE_AFTER.total_seconds())}."
                )

    def __enter__(self) -> DestLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextlib.contextmanager
def shared(
    dest: Destination, purpose: str = "backup", *, wait: float | None = None, warn: Warn | None = None
) -> Iterator[DestLock]:
    """Held by a backup: several may run together; fails (DestinationLocked) while a prune holds it."""
    with DestLock(dest, "shared", purpose, wait=wait, warn=warn) as lock:
        yield lock


@contextlib.contextmanager
def exclusive(
    dest: Destination, purpose: str = "prune", *, wait: float | None = None, warn: Warn | None = None
) -> Iterator[DestLock]:
    """Held by prune: waits up to `wait` seconds (EXCLUSIVE_WAIT) for every other live lock to go."""
    with DestLock(dest, "exclusive", purpose, wait=wait, warn=warn) as lock:
        yield lock
