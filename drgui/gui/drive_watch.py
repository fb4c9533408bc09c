"""Notice when a registered drive is plugged in, and sync the .env to it automatically or after asking.

`DriveWatcher` polls the OS drive list every few seconds on the worker (never on the GUI thread) and
emits `inserted(name)` on the absent→present edge and `removed(name)` on the way back. A drive that
stays plugged in (or was already plugged in when the app started) whose copy of the .env is out of
date gets `stale(name)`, once per change of the .env. An absent drive is the normal case, so nothing
is ever shown for it: a failing listing is logged once at debug level, and a missing tool (no lsblk)
switches the watcher off with a status text.

`DriveSyncOnInsert` acts on `inserted` and `stale` per the plan's `reminders.drive_sync` setting:
"auto" syncs through the worker and reports which keys changed (names, never values) and when it is
safe to unplug; "ask" shows a non-modal question with a "Sync now" button; "off" does nothing.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal, Slot
from PySide6.QtWidgets import QMessageBox, QWidget

from drgui.core.errors import DrguiError, EnvironmentNotReady, OperationFailed
from drgui.core.ops.envsync import SyncResult, stale_fingerprint, sync_env_to_drive
from drgui.core.plan.config import Plan
from drgui.core.plan.workspace import Workspace
from drgui.core.platform.drives import Drive, find_drive, list_drives
from drgui.core.progress import CancelToken, ProgressCallback
from drgui.gui.worker import Job, Worker

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_MS = 5_000
CHECK_JOB = "Check drives"
SYNC_JOB = "Sync .env to drive"

DRIVE_SYNC_SETTING = "drive_sync"
DRIVE_SYNC_MODES = ("auto", "ask", "off")
DEFAULT_DRIVE_SYNC = "ask"


def drive_sync_mode(plan: Plan) -> str:
    """The plan's `reminders.drive_sync`: "auto", "ask" (the default, also for unknown values) or "off"."""
    mode = plan.reminders.get(DRIVE_SYNC_SETTING, DEFAULT_DRIVE_SYNC)
    return mode if mode in DRIVE_SYNC_MODES else DEFAULT_DRIVE_SYNC


def syncs_env(plan: Plan) -> bool:
    """Whether a plugged-in drive gets the .env (automatically or after asking): not "off", and an env source."""
    return drive_sync_mode(plan) != "off" and any(s.kind == "env" for s in plan.sources)


@dataclass(frozen=True)
class DriveSpec:
    """What identifies one registered drive destination: its UUIDs, or a plain directory."""

    name: str
    uuid: str | None
    container_uuid: str | None
    path: Path | None


def drive_specs(ws: Workspace) -> list[DriveSpec]:
    """The plan's drive destinations, read on the GUI thread (the worker gets plain values)."""
    specs = []
    for dest in ws.plan.destinations:
        if dest.kind != "drive":
            continue
        path = dest.settings.get("path")
        specs.append(
            DriveSpec(
                dest.name,
                dest.settings.get("uuid"),
                dest.settings.get("container_uuid"),
                Path(path).expanduser() if path else None,
            )
        )
    return specs


@dataclass(frozen=True)
class Presence:
    """One poll's answer: the registered drives plugged in, and those whose .env copy is out of date
    (name -> a fingerprint of the .env contents, so the app acts once per change)."""

    names: frozenset[str]
    stale: dict[str, str] = field(default_factory=dict)


class PresenceWork:
    """Runs on the worker: which registered drives are plugged in and mounted, and which are stale."""

    def __init__(
        self,
        specs: list[DriveSpec],
        lister: Callable[[], list[Drive]] = list_drives,
        fingerprint: Callable[[str], str | None] | None = None,
    ) -> None:
        self.specs = specs
        self.lister = lister
        self.fingerprint = fingerprint

    def __call__(self, progress: ProgressCallback, cancel: CancelToken) -> Presence:
        names = self._present()
        stale: dict[str, str] = {}
        if self.fingerprint is not None:
            for name in sorted(names):
                try:
                    found = self.fingerprint(name)
                except (DrguiError, OSError) as error:  # the sync, if any, reports it
                    log.debug("could not compare the .env with drive %s: %s", name, error)
                    found = None
                if found is not None:
                    stale[name] = found
        return Presence(names, stale)

    def _present(self) -> frozenset[str]:
        present: set[str] = set()
        drives: list[Drive] | None = None
        for spec in self.specs:
            if spec.path is not None:
                if spec.path.is_dir():
                    present.add(spec.name)
                continue
            if not spec.uuid:
                continue
            if drives is None:
                drives = self._list()
            drive = find_drive(spec.uuid, drives, spec.container_uuid)
            if drive is not None and drive.mount_point is not None and drive.mount_point.is_dir():
                present.add(spec.name)
        return frozenset(present)

    def _list(self) -> list[Drive]:
        try:
            return self.lister()
        except (OSError, ValueError) as error:  # an unreadable recording or tool output: try again later
            raise OperationFailed(f"Could not list the drives: {error}") from None


class DriveWatcher(QObject):
    """Polls the drive list on the worker; signals insertions and removals of registered drives."""

    inserted = Signal(str)
    removed = Signal(str)
    stale = Signal(str)  # plugged in, its .env copy out of date: once per change of the .env
    status_changed = Signal(str)

    def __init__(
        self,
        ws: Workspace,
        worker: Worker,
        *,
        interval_ms: int = DEFAULT_INTERVAL_MS,
        lister: Callable[[], list[Drive]] = list_drives,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.ws = ws
        self.worker = worker
        self.lister = lister
        self.present: frozenset[str] | None = None  # None until the first answer: that one is the baseline
        self._acted: dict[str, str] = {}  # drive -> the stale fingerprint already signalled
        self.status_text = ""
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.poll)
        self._job: Job | None = None
        self._failure_logged = False

    @property
    def running(self) -> bool:
        return self.timer.isActive()

    def start(self) -> None:
        """Start polling. Drives already plugged in now are the baseline, not insertions; those whose
        .env copy is out of date get `stale` (so a drive left plugged in over a restart is synced)."""
        self.timer.start()
        self._set_status("Watching for the registered drive.")
        self.poll()

    def stop(self) -> None:
        self.timer.stop()

    @Slot()
    def poll(self) -> None:
        if self._job is not None or not self.running:
            return
        specs = drive_specs(self.ws)
        if not specs:
            self.present = frozenset() if self.present is not None else None
            return
        fingerprint = functools.partial(stale_fingerprint, self.ws) if syncs_env(self.ws.plan) else None
        job = self.worker.job(CHECK_JOB, PresenceWork(specs, self.lister, fingerprint))
        job.finished.connect(self._on_presence)
        job.failed.connect(self._on_failed)
        job.done.connect(self._on_done)
        self._job = job
        self.worker.start(job)

    @Slot(object)
    def _on_presence(self, answer: Presence) -> None:
        self._failure_logged = False
        previous, self.present = self.present, answer.names
        if not self.running:
            return
        inserted = answer.names - previous if previous is not None else frozenset()
        for name in sorted(inserted):
            self.inserted.emit(name)  # the insertion is the action for the .env as it is now
        for name in sorted(answer.names):
            fingerprint = answer.stale.get(name)
            if fingerprint is None:
                self._acted.pop(name, None)  # up to date: a later change is new again
            elif name in inserted:
                self._acted[name] = fingerprint
            elif self._acted.get(name) != fingerprint:
                self._acted[name] = fingerprint
                self.stale.emit(name)
        for name in sorted(previous - answer.names) if previous is not None else ():
            self._acted.pop(name, None)
            self.removed.emit(name)

    @Slot(object)
    def _on_failed(self, error: DrguiError) -> None:
        if isinstance(error, EnvironmentNotReady):
            log.debug("drive watcher off: %s", error.message)
            self.stop()
            self._set_status(f"Drive detection is off: {error.message}")
            return
        if not self._failure_logged:  # the next polls keep trying, silently
            log.debug("listing the drives failed: %s", error.message)
            self._failure_logged = True

    @Slot()
    def _on_done(self) -> None:
        self._job = None

    def _set_status(self, text: str) -> None:
        self.status_text = text
        self.status_changed.emit(text)


class SyncEnvWork:
    """Runs on the worker: copy every env source to the drive (the named one, else the first plugged in)."""

    def __init__(self, ws: Workspace, drive_name: str | None = None) -> None:
        self.ws = ws
        self.drive_name = drive_name

    def __call__(self, progress: ProgressCallback, cancel: CancelToken) -> SyncResult:
        return sync_env_to_drive(self.ws, self.drive_name, progress=progress)


def sync_summary(result: SyncResult) -> str:
    """What a sync did, key names only, and when the drive is safe to unplug."""
    parts = []
    for copy in result.copies:
        changes = [
            f"{label} {', '.join(keys)}"
            for label, keys in (("added", copy.added), ("removed", copy.removed), ("changed", copy.changed))
            if keys
        ]
        parts.append(f"{copy.source}: {'; '.join(changes) if changes else 'no key changed'}")
    detail = (" " + ". ".join(parts) + ".") if parts else ""
    return f".env copied to '{result.drive}'.{detail} {result.unplug_advice()}"


class DriveSyncQuestion(QMessageBox):
    """Non-modal "drive plugged in: sync now?"; `sync_button` starts the sync."""

    def __init__(self, drive_name: str, parent: QWidget | None = None, text: str | None = None) -> None:
        super().__init__(parent)
        self.drive_name = drive_name
        self.setObjectName("driveSyncQuestion")
        self.setWindowTitle("Drive plugged in")
        self.setIcon(QMessageBox.Icon.Question)
        self.setText(text or f"Drive '{drive_name}' is plugged in. Copy the .env files to it now?")
        self.setInformativeText("Only key names are shown afterwards, never values.")
        self.sync_button = self.addButton("Sync now", QMessageBox.ButtonRole.AcceptRole)
        self.sync_button.setObjectName("driveSyncNow")
        self.later_button = self.addButton("Not now", QMessageBox.ButtonRole.RejectRole)
        self.later_button.setObjectName("driveSyncLater")
        self.setModal(False)


class DriveSyncOnInsert(QObject):
    """Acts on the watcher's insertions per `reminders.drive_sync`; reports through `message`."""

    message = Signal(str, str, str)  # level (info | error), title, text
    synced = Signal(object)  # SyncResult

    def __init__(
        self,
        ws: Workspace,
        worker: Worker,
        watcher: DriveWatcher,
        *,
        window: QWidget | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.ws = ws
        self.worker = worker
        self.window = window
        self.questions: dict[str, DriveSyncQuestion] = {}
        self.last_message = ""
        watcher.inserted.connect(self.on_inserted)
        watcher.stale.connect(self.on_stale)
        watcher.removed.connect(self.on_removed)

    @Slot(str)
    def on_inserted(self, name: str) -> None:
        self._act(name, f"Drive '{name}' is plugged in. Copy the .env files to it now?")

    @Slot(str)
    def on_stale(self, name: str) -> None:
        self._act(name, f"Drive '{name}' is plugged in and its copy of the .env is out of date. Copy it now?")

    def _act(self, name: str, question: str) -> None:
        if not syncs_env(self.ws.plan):
            return
        if drive_sync_mode(self.ws.plan) == "auto":
            self.sync(name)
        else:
            self.ask(name, question)

    @Slot(str)
    def on_removed(self, name: str) -> None:
        question = self.questions.pop(name, None)
        if question is not None:
            question.close()
            question.deleteLater()

    def ask(self, name: str, text: str | None = None) -> DriveSyncQuestion:
        question = self.questions.get(name)
        if question is None:
            question = DriveSyncQuestion(name, self.window, text)
            question.buttonClicked.connect(self._on_answer)
            self.questions[name] = question
        question.show()
        return question

    @Slot(object)
    def _on_answer(self, button) -> None:
        question = self.sender()
        if not isinstance(question, DriveSyncQuestion):
            return
        self.questions.pop(question.drive_name, None)
        question.deleteLater()
        if button is question.sync_button:
            self.sync(question.drive_name)

    def sync(self, name: str) -> Job | None:
        """Sync through the worker, unless a sync already runs in this app."""
        if self.worker.busy(SYNC_JOB):
            return None
        job = self.worker.job(SYNC_JOB, SyncEnvWork(self.ws, name))
        job.finished.connect(self._on_synced)
        job.failed.connect(self._on_failed)
        self.worker.start(job)
        return job

    @Slot(object)
    def _on_synced(self, result: SyncResult) -> None:
        self._tell("info", "Drive synced", sync_summary(result))
        self.synced.emit(result)

    @Slot(object)
    def _on_failed(self, error: DrguiError) -> None:
        self._tell("error", "Drive sync failed", error.message + (f" {error.hint}" if error.hint else ""))

    def _tell(self, level: str, title: str, text: str) -> None:
        self.last_message = text
        self.message.emit(level, title, text)
