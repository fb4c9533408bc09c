"""Destinations page, with "Sync .env to drive" and "Eject drive" (the engine on the worker) and, for drives,
their encryption, whether they are plugged in and when the .env was last copied to them."""

from __future__ import annotations

from PySide6.QtCore import Slot
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QHBoxLayout, QLabel, QMessageBox, QPushButton, QVBoxLayout, QWidget

from drgui.core.errors import DrguiError
from drgui.core.ops.envsync import drive_destination
from drgui.core.ops.history import Run
from drgui.core.ops.prune import PruneResult, prune
from drgui.core.plan.workspace import Workspace
from drgui.core.progress import CancelToken, ProgressCallback
from drgui.gui import humanize
from drgui.gui.controller import Controller
from drgui.gui.drive_watch import SYNC_JOB, SyncEnvWork, sync_summary
from drgui.gui.pages.listing import DONE, ERROR, PlanItemsPage

__all__ = ["DestinationsPage", "PruneWork", "SyncEnvWork"]

PRUNE_PLAN_JOB, PRUNE_JOB = "Prune plan", "Prune"

ENCRYPTION_WORDS = {
    "luks": "encrypted (LUKS)",
    "apfs-encrypted": "encrypted (APFS)",
    "filevault": "encrypted (FileVault)",
    "bitlocker": "encrypted (BitLocker)",
    "none": "NOT encrypted",
    "unknown": "encryption unknown",
}


class DriveSyncRunsWork:
    """Runs on the worker: the latest `drive_sync` run per drive destination (None: never synced)."""

    def __init__(self, ws: Workspace, names: list[str]) -> None:
        self.ws, self.names = ws, names

    def __call__(self, progress: ProgressCallback, cancel: CancelToken) -> dict[str, Run | None]:
        runs = self.ws.history.runs("drive_sync", limit=200)
        return {name: next((r for r in runs if r.target == name), None) for name in self.names}


EJECT_JOB = "Eject drive"


class EjectWork:
    """Runs on the worker: eject the plugged-in drive (the first registered one that is plugged in)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def __call__(self, progress: ProgressCallback, cancel: CancelToken) -> str:
        dest = drive_destination(self.ws)
        dest.eject()
        return dest.name


class PruneWork:
    """Runs on the worker: `drgui prune` (with `dry_run`, only the plan, with each snapshot's reasons)."""

    def __init__(self, ws: Workspace, dry_run: bool) -> None:
        self.ws, self.dry_run = ws, dry_run

    def __call__(self, progress: ProgressCallback, cancel: CancelToken) -> PruneResult:
        return prune(self.ws, dry_run=self.dry_run)


class DestinationsPage(PlanItemsPage):
    SOURCE = False

    def __init__(self, controller: Controller) -> None:
        super().__init__(controller)
        self.drive_info = QLabel()
        self.drive_info.setObjectName("driveSyncInfo")
        self.drive_info.setWordWrap(True)
        self.drive_info.hide()
        self.drive_buttons = QWidget()
        row = QHBoxLayout(self.drive_buttons)
        row.setContentsMargins(0, 0, 0, 0)
        self.sync_button = QPushButton("Sync .env to drive")
        self.sync_button.setObjectName("syncEnvButton")
        self.sync_button.clicked.connect(self.sync_env)
        self.eject_button = QPushButton("Eject drive")
        self.eject_button.setObjectName("ejectDriveButton")
        self.eject_button.setToolTip("Unmount, lock and power off the drive: then it is safe to unplug.")
        self.eject_button.clicked.connect(self.eject_drive)
        row.addWidget(self.sync_button)
        row.addWidget(self.eject_button)
        row.addStretch(1)
        self.drive_buttons.hide()
        self.prune_button = QPushButton("Prune…")
        self.prune_button.setObjectName("pruneButton")
        self.prune_button.setToolTip(
            "Remove the snapshots each destination's retention no longer keeps: the plan, with its reasons, "
            "is shown first."
        )
        self.prune_button.clicked.connect(self.plan_prune)
        self.prune_confirm: QMessageBox | None = None
        layout = self.layout()
        assert isinstance(layout, QVBoxLayout)  # PlanItemsPage's
        layout.insertWidget(layout.indexOf(self.table) + 1, self.drive_info)
        layout.insertWidget(layout.indexOf(self.drive_info) + 1, self.drive_buttons)
        layout.insertWidget(layout.indexOf(self.drive_buttons) + 1, self.prune_button)
        self._available: dict[str, bool] = {}
        self._drive_runs_busy = False

    @Slot(object)
    def show_status(self, status) -> None:
        super().show_status(status)
        self._available = {d.name: d.available for d in status.destinations if d.kind == "drive"}
        self.drive_buttons.setVisible(bool(self._available))
        plugged = [name for name, available in self._available.items() if available]
        by_uuid = {d.name for d in self.ws.plan.destinations if d.kind == "drive" and d.settings.get("uuid")}
        self.sync_button.setEnabled(bool(plugged))
        # drgui ejects the first plugged-in drive; a plain directory is not a device it can eject
        self.eject_button.setEnabled(bool(plugged) and plugged[0] in by_uuid)
        if not self._available:
            self.drive_info.hide()
            return
        if self._drive_runs_busy:
            return
        self._drive_runs_busy = True
        job = self.controller.worker.job(
            "Drive sync times", DriveSyncRunsWork(self.ws, list(self._available))
        )
        job.finished.connect(self.show_drive_info)
        job.done.connect(self._on_drive_runs_done)
        self.controller.worker.start(job)

    @Slot()
    def _on_drive_runs_done(self) -> None:
        self._drive_runs_busy = False

    @Slot(object)
    def show_drive_info(self, runs: dict[str, Run | None]) -> None:
        """One line per drive: encryption, plugged in or not, last .env sync."""
        lines = []
        for dest in self.ws.plan.destinations:
            if dest.kind != "drive" or dest.name not in runs:
                continue
            if dest.settings.get("uuid"):
                encryption = ENCRYPTION_WORDS.get(
                    dest.settings.get("encryption", "unknown"), "encryption unknown"
                )
            else:
                encryption = "plain directory, encryption not checked"
            plugged = "plugged in" if self._available.get(dest.name) else "not plugged in"
            lines.append(
                f"<b>{dest.name}</b>: {encryption} · {plugged} · {self._last_sync_text(runs[dest.name])}"
            )
        self.drive_info.setText("<br>".join(lines))
        self.drive_info.setVisible(bool(lines))

    @staticmethod
    def _last_sync_text(run: Run | None) -> str:
        if run is None:
            return ".env never synced"
        moment = humanize.parse_iso(run.finished or run.started)
        if run.status == "ok":
            return f".env last synced {humanize.ago(moment)}"
        return f"last .env sync {run.status} {humanize.ago(moment)}"

    @Slot()
    def sync_env(self) -> None:
        """Copy every env source to the registered drive; says what changed (key names only) and when to unplug."""
        self._start(
            SYNC_JOB, SyncEnvWork(self.ws), "Copying the .env to the drive…", self.on_synced, self.say_error
        )

    @Slot(object)
    def on_synced(self, result) -> None:
        self.say(f"✓ {sync_summary(result)}", DONE)
        self.controller.refresh()

    @Slot()
    def eject_drive(self) -> None:
        """Unmount, lock and power off the plugged-in drive, on the worker."""
        self.eject_button.setEnabled(False)
        self._start(
            EJECT_JOB, EjectWork(self.ws), "Ejecting the drive…", self.on_ejected, self.on_eject_failed
        )

    @Slot(object)
    def on_ejected(self, name: str) -> None:
        self.say(f"✓ Drive '{name}' ejected: you can unplug it now.", DONE)
        self.controller.refresh()

    @Slot(object)
    def on_eject_failed(self, error: DrguiError) -> None:
        self.eject_button.setEnabled(True)
        self.say_error(error)

    @Slot()
    def plan_prune(self) -> None:
        """First the dry run (on the worker), then the plan with its reasons, then the prune if confirmed."""
        self.prune_button.setEnabled(False)
        self._start(
            PRUNE_PLAN_JOB,
            PruneWork(self.ws, dry_run=True),
            "Working out what the retention policies keep…",
            self.confirm_prune,
            self.on_prune_failed,
        )

    @Slot(object)
    def confirm_prune(self, plan: PruneResult) -> None:
        removals = sum(len(d.remove) for d in plan.destinations) + sum(
            len(d.packs.remove) for d in plan.destinations
        )
        if not plan.ok or not removals:
            self.prune_button.setEnabled(True)
            self.say(
                "\n".join(plan.describe()) if not plan.ok else "✓ Nothing to prune: every snapshot is kept.",
                DONE if plan.ok else ERROR,
            )
            return
        self.message.clear()
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Prune",
            "Remove what the retention policies no longer keep?",
            parent=self,
        )
        box.setObjectName("pruneConfirm")
        box.setInformativeText("\n".join(plan.describe()))
        box.setFont(QFont("monospace"))
        prune_button = box.addButton("Prune", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.finished.connect(lambda _result: self._on_prune_answer(box.clickedButton() is prune_button))
        self.prune_confirm = box
        box.open()

    def _on_prune_answer(self, confirmed: bool) -> None:
        self.prune_confirm = None
        if not confirmed:
            self.prune_button.setEnabled(True)
            self.say("Prune cancelled: nothing was removed.")
            return
        self._start(
            PRUNE_JOB, PruneWork(self.ws, dry_run=False), "Pruning…", self.on_pruned, self.on_prune_failed
        )

    @Slot(object)
    def on_pruned(self, result: PruneResult) -> None:
        self.prune_button.setEnabled(True)
        removed = sum(len(d.remove) for d in result.destinations)
        freed = sum(d.packs.freed_bytes for d in result.destinations)
        if result.ok:
            self.say(f"✓ Pruned: {removed} snapshot(s) removed, {humanize.size(freed)} of packs freed.", DONE)
        else:
            self.say("\n".join(result.describe()), ERROR)
        self.controller.refresh()

    @Slot(object)
    def on_prune_failed(self, error: DrguiError) -> None:
        self.prune_button.setEnabled(True)
        self.say_error(error)

    def _start(self, name: str, work, busy: str, finished, failed) -> None:
        self.say(busy)
        job = self.controller.worker.job(name, work)
        job.finished.connect(finished)
        job.failed.connect(failed)
        self.controller.worker.start(job)
