"""The one way the GUI runs long work: a `Job` runs in a QThreadPool; results come back as signals.

A job is a plain callable `work(progress, cancel) -> result` built on the GUI thread (read settings,
validate, open the workspace there). It runs on a pool thread; the engine calls `progress(event)` from
that thread, and the job turns each event into a queued signal. Qt objects are never touched from the
worker thread; receivers are `@Slot` methods of QObjects living on the GUI thread.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

from drgui.core.errors import Cancelled, DrguiError, OperationFailed
from drgui.core.progress import CancelToken, Progress

log = logging.getLogger(__name__)

Work = Callable[[Callable[[Progress], None], CancelToken], Any]


class Job(QObject):
    """One long operation. Signals: progress(Progress), finished(result), failed(DrguiError), cancelled()."""

    progress = Signal(object)
    finished = Signal(object)
    failed = Signal(object)
    cancelled = Signal()
    done = Signal()  # after any of finished/failed/cancelled

    def __init__(self, name: str, work: Work, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.work = work
        self.token = CancelToken()
        self.running = False

    def cancel(self) -> None:
        """Ask the engine to stop at its next check; it removes whatever is half-written."""
        self.token.cancel()

    @property
    def cancel_requested(self) -> bool:
        return self.token.cancelled

    def report(self, event: Progress) -> None:
        """Called by the engine on the worker thread: a queued signal carries the event to the GUI."""
        self.progress.emit(event)

    def execute(self) -> None:
        """Runs on the pool thread."""
        try:
            result = self.work(self.report, self.token)
        except Cancelled:
            self.cancelled.emit()
        except DrguiError as error:
            self.failed.emit(error)
        except Exception as error:  # an engine bug must reach the user, not vanish with the thread
            log.error("%s failed unexpectedly:\n%s", self.name, traceback.format_exc())
            self.failed.emit(
                OperationFailed(
                    f"{self.name} stopped on an unexpected error: {type(error).__name__}: {error}",
                    hint="This is a bug in drgui; the details are in the log. Try again, or use the CLI.",
                )
            )
        else:
            if self.token.cancelled and result is None:
                self.cancelled.emit()
            else:
                self.finished.emit(result)
        self.done.emit()


class _Runnable(QRunnable):
    def __init__(self, job: Job) -> None:
        super().__init__()
        self.job = job
        self.setAutoDelete(False)

    def run(self) -> None:
        self.job.execute()


class Worker(QObject):
    """Owns the thread pool and keeps every running job alive until its `done` signal arrives."""

    jobs_changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(4)
        self._active: dict[Job, _Runnable] = {}

    def start(self, job: Job) -> Job:
        runnable = _Runnable(job)
        self._active[job] = runnable
        job.running = True
        job.done.connect(self._on_done)
        self.pool.start(runnable)
        self.jobs_changed.emit()
        return job

    def job(self, name: str, work: Work) -> Job:
        """A job not started yet: connect its signals, then `start(job)` (so no early result is lost)."""
        return Job(name, work, self)

    @property
    def active(self) -> list[Job]:
        return list(self._active)

    def busy(self, name: str) -> bool:
        return any(job.name == name for job in self._active)

    @Slot()
    def _on_done(self) -> None:
        job = self.sender()
        if isinstance(job, Job) and job in self._active:
            job.running = False
            del self._active[job]
            job.deleteLater()
            self.jobs_changed.emit()

    def cancel_all(self) -> None:
        for job in self._active:
            job.cancel()

    def wait(self, msecs: int = 30_000) -> bool:
        """Cancel nothing; wait for running jobs (used on quit after cancel_all)."""
        return self.pool.waitForDone(msecs)
