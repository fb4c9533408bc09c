"""The app's state on the GUI thread: the plan's workspace, the worker, the status, the running backup.

The main window, the tray and the reminders all talk to one controller, so "Back up now" behaves the
same wherever it is clicked, and a second backup cannot start while one runs.
"""

from __future__ import annotations

import stat
from dataclasses import replace

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from drgui.core.engine.sources.envfile import EnvSource
from drgui.core.engine.sources.folder import FolderSource, walk
from drgui.core.engine.sources.postgres import PostgresSource
from drgui.core.engine.sources.registry import open_source
from drgui.core.errors import DrguiError
from drgui.core.ops.backup import run_backup
from drgui.core.ops.history import Run
from drgui.core.ops.status import Status, compute_status
from drgui.core.plan.workspace import Workspace
from drgui.core.progress import CancelToken, Progress, ProgressCallback
from drgui.gui.worker import Job, Worker

BACKUP = "Backup"
STATUS = "Status"


def estimated_sizes(ws: Workspace, cancel: CancelToken) -> dict[str, int]:
    """What each source will read, where it can be known cheaply: a folder from a quick scan of its files'
    sizes, a database from pg_database_size (an upper bound: indexes are not dumped). Others are left out."""
    sizes: dict[str, int] = {}
    for config in ws.plan.sources:
        cancel.check()
        source = open_source(config, ws.store)
        try:
            if isinstance(source, FolderSource):
                sizes[config.name] = sum(
                    info.st_size
                    for _, _, info in walk(source.root, source.excludes)
                    if stat.S_ISREG(info.st_mode)
                )
            elif isinstance(source, PostgresSource):
                with source.connect() as conn:
                    row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
                sizes[config.name] = int(row[0]) if row else 0
        except DrguiError:
            continue  # the backup itself says what is wrong with the source
    return {name: size for name, size in sizes.items() if size > 0}


def with_totals(progress: ProgressCallback, totals: dict[str, int]) -> ProgressCallback:
    """Progress events of a source read as a share of its estimated size (never past 99% before "done")."""

    def report(event: Progress) -> None:
        total = totals.get(event.source or "")
        if event.step == "backup" and total and event.bytes_total is None and event.message != "done":
            event = replace(event, bytes_total=max(total, event.bytes_done * 100 // 99 + 1))
        progress(event)

    return report


class BackupWork:
    """What the worker thread runs for "Back up now" (a plain callable: no Qt inside)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def __call__(self, progress: ProgressCallback, cancel: CancelToken):
        progress(Progress("backup", None, "Measuring the sources…"))
        totals = estimated_sizes(self.ws, cancel)
        return run_backup(self.ws, progress=with_totals(progress, totals), cancel=cancel)


def env_missing_keys(ws: Workspace) -> dict[str, list[str]]:
    """Per .env source, the required key names its live file lacks now (names only, never values)."""
    missing: dict[str, list[str]] = {}
    for config in ws.plan.sources:
        if config.kind != "env" or not config.settings.get("require"):
            continue
        source = open_source(config)
        if isinstance(source, EnvSource):
            try:
                lacking = source.missing_keys()
            except DrguiError:
                continue  # an unreadable file is the backup's error to report, not a key problem
            if lacking:
                missing[config.name] = lacking
    return missing


class StatusWork:
    """The status, the latest runs and the .env files' missing keys, read on the worker."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def __call__(
        self, progress: ProgressCallback, cancel: CancelToken
    ) -> tuple[Status, list[Run], dict[str, list[str]]]:
        return compute_status(self.ws), self.ws.history.runs(limit=8), env_missing_keys(self.ws)


class Controller(QObject):
    status_changed = Signal(object)  # Status
    recent_changed = Signal(object)  # list[Run], newest first
    state_changed = Signal(str)  # ok | due | running | failed
    backup_started = Signal()
    backup_progress = Signal(object)  # Progress
    backup_finished = Signal(object)  # BackupResult
    backup_failed = Signal(object)  # DrguiError
    backup_cancelled = Signal()
    backup_done = Signal()
    problem = Signal(object)  # DrguiError from any job, for the window's banner
    reminder_preview_requested = Signal()  # Settings → "Preview reminder": the app's reminders show it

    def __init__(self, ws: Workspace, worker: Worker | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.ws = ws
        self.worker = worker or Worker(self)
        self.status: Status | None = None
        self.recent: list[Run] = []
        self.env_missing: dict[str, list[str]] = {}  # env source -> required keys its file lacks
        self.backup_job: Job | None = None
        self._status_job: Job | None = None
        self._refresh_again = False
        self.closed = False
        self.refresh_timer = QTimer(self)
        self.refresh_timer.setInterval(60_000)
        self.refresh_timer.timeout.connect(self.refresh)

    @Slot()
    def close(self) -> None:
        """The app is shutting down: no more refreshes, and results still queued from the worker
        are dropped instead of being shown on widgets that may be deleted by then."""
        self.closed = True
        self.refresh_timer.stop()
        self.worker.cancel_all()

    # --- status ------------------------------------------------------------------------------
    @Slot()
    def refresh(self) -> None:
        """Recompute the status on the worker (it reads the history and lists local destinations)."""
        if self.closed:
            return
        if self._status_job is not None:
            self._refresh_again = True
            return
        job = self.worker.job(STATUS, StatusWork(self.ws))
        job.finished.connect(self._on_status)
        job.failed.connect(self._on_status_failed)
        job.done.connect(self._on_status_done)
        self._status_job = job
        self.worker.start(job)

    @Slot(object)
    def _on_status(self, result: tuple[Status, list[Run], dict[str, list[str]]]) -> None:
        if self.closed:
            return
        status, self.recent, self.env_missing = result
        self.status = status
        self.recent_changed.emit(self.recent)
        self.status_changed.emit(status)
        self.state_changed.emit(self.state)

    @Slot(object)
    def _on_status_failed(self, error: DrguiError) -> None:
        self.problem.emit(error)

    @Slot()
    def _on_status_done(self) -> None:
        self._status_job = None
        if self._refresh_again:
            self._refresh_again = False
            self.refresh()

    @property
    def state(self) -> str:
        if self.backup_running:
            return "running"
        return self.status.state if self.status else "due"

    # --- backup ------------------------------------------------------------------------------
    @property
    def backup_running(self) -> bool:
        return self.backup_job is not None

    @Slot()
    def start_backup(self) -> Job | None:
        """Start "Back up now" unless one already runs in this app (the home lock covers other processes)."""
        if self.backup_job is not None:
            return None
        job = self.worker.job(BACKUP, BackupWork(self.ws))
        job.progress.connect(self.backup_progress)
        job.finished.connect(self._on_backup_finished)
        job.failed.connect(self._on_backup_failed)
        job.cancelled.connect(self._on_backup_cancelled)
        job.done.connect(self._on_backup_done)
        self.backup_job = job
        self.worker.start(job)
        self.backup_started.emit()
        self.state_changed.emit("running")
        return job

    @Slot()
    def cancel_backup(self) -> None:
        if self.backup_job is not None:
            self.backup_job.cancel()

    @Slot(object)
    def _on_backup_finished(self, result) -> None:
        self.backup_finished.emit(result)

    @Slot(object)
    def _on_backup_failed(self, error: DrguiError) -> None:
        self.backup_failed.emit(error)

    @Slot()
    def _on_backup_cancelled(self) -> None:
        self.backup_cancelled.emit()

    @Slot()
    def _on_backup_done(self) -> None:
        self.backup_job = None
        self.backup_done.emit()
        self.refresh()
