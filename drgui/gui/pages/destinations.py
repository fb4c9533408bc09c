"""Destinations page, with "Sync .env to drive" (the engine's envsync on the worker)."""

from __future__ import annotations

from PySide6.QtCore import Slot

from drgui.core.envsync import sync_env_to_drive
from drgui.core.errors import DrguiError
from drgui.core.progress import CancelToken, ProgressCallback
from drgui.core.workspace import Workspace
from drgui.gui.pages.listing import PlanItemsPage


class SyncEnvWork:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def __call__(self, progress: ProgressCallback, cancel: CancelToken):
        return sync_env_to_drive(self.ws, progress=progress)


class DestinationsPage(PlanItemsPage):
    SOURCE = False

    @Slot()
    def sync_env(self) -> None:
        """Copy every env source to the registered drive; says what changed (key names only) and when to unplug."""
        self.message.setStyleSheet("color: #57606a;")
        self.message.setText("Copying the .env to the drive…")
        job = self.controller.worker.job("Sync .env to drive", SyncEnvWork(self.ws))
        job.finished.connect(self.on_synced)
        job.failed.connect(self.on_sync_failed)
        self.controller.worker.start(job)

    @Slot(object)
    def on_synced(self, result) -> None:
        self.message.setStyleSheet("color: #2da44e; font-weight: 600;")
        changes = []
        for copy in result.copies:
            if copy.added:
                changes.append(f"{copy.source}: added {', '.join(copy.added)}")
            if copy.removed:
                changes.append(f"{copy.source}: removed {', '.join(copy.removed)}")
        detail = (" " + "; ".join(changes) + ".") if changes else ""
        self.message.setText(f"✓ .env copied to '{result.drive}'.{detail} {result.unplug_advice()}")
        self.controller.refresh()

    @Slot(object)
    def on_sync_failed(self, error: DrguiError) -> None:
        self.on_test_failed(error)
