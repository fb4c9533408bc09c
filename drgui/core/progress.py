"""Progress events and cancellation, shared by the engine, the CLI and the GUI's worker."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from drgui.core.errors import Cancelled


@dataclass
class ScanCounts:
    """A format-2 backup's scan of a folder or bucket: everything seen, what was unchanged since the
    parent snapshot (not read again), and what was new (content stored in a new pack)."""

    files_scanned: int = 0
    bytes_scanned: int = 0
    files_unchanged: int = 0
    bytes_unchanged: int = 0
    files_new: int = 0
    bytes_new: int = 0

    def to_json(self) -> dict[str, int]:
        return dict(vars(self))


@dataclass(frozen=True)
class Progress:
    step: str  # e.g. "backup", "upload", "verify", "restore"
    source: str | None = None  # source or destination name the event is about
    message: str = ""
    bytes_done: int = 0
    bytes_total: int | None = None
    rate: float | None = None  # bytes per second
    scan: ScanCounts | None = None  # a copy, on "backup" events of folder and S3 sources (format 2)


ProgressCallback = Callable[[Progress], None]


def ignore_progress(_event: Progress) -> None:
    return None


class CancelToken:
    """Set from any thread; long work checks it between chunks and cleans up."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled("Cancelled. Nothing half-written was kept.")

    def wait(self, seconds: float) -> bool:
        return self._event.wait(seconds)


class RateMeter:
    """Throttled byte counter that reports at most every `interval` seconds."""

    def __init__(
        self,
        callback: ProgressCallback,
        step: str,
        source: str | None,
        total: int | None = None,
        interval: float = 0.2,
    ) -> None:
        self.callback = callback
        self.step = step
        self.source = source
        self.total = total
        self.interval = interval
        self.done = 0
        self.started = time.monotonic()
        self._last = 0.0

    def add(self, count: int, message: str = "") -> None:
        self.done += count
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            elapsed = max(now - self.started, 1e-6)
            self.callback(
                Progress(self.step, self.source, message, self.done, self.total, self.done / elapsed)
            )
