"""Checklists: the runbooks, and a run view where each manual item is ticked (who and when is recorded)."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from pathlib import Path

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from drgui.core.engine.sources.envfile import env_keys
from drgui.core.errors import DrguiError
from drgui.core.ops import checklists
from drgui.gui.controller import Controller
from drgui.gui.widgets import muted, title


class ChecklistsPage(QWidget):
    def __init__(self, controller: Controller) -> None:
        super().__init__()
        self.controller = controller
        self.run: checklists.ChecklistRun | None = None
        self.history_id: int | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 20)
        layout.setSpacing(12)
        layout.addWidget(title("Checklists"))
        body = QHBoxLayout()
        self.list = QListWidget()
        self.list.setObjectName("checklistList")
        self.list.setMaximumWidth(280)
        self.list.setSpacing(2)
        self.list.currentRowChanged.connect(self.show_checklist)
        body.addWidget(self.list)
        right = QVBoxLayout()
        self.heading = QLabel()
        self.heading.setStyleSheet("font-size: 16px; font-weight: 600;")
        self.heading.setWordWrap(True)
        right.addWidget(self.heading)
        self.summary = muted("")
        right.addWidget(self.summary)
        self.items = QListWidget()
        self.items.setObjectName("checklistItems")
        self.items.setWordWrap(True)
        self.items.setSpacing(3)
        self.items.setAlternatingRowColors(True)
        self.items.itemChanged.connect(self.on_item_changed)
        right.addWidget(self.items, 1)
        row = QHBoxLayout()
        self.start_button = QPushButton("Start a run")
        self.start_button.setObjectName("startChecklistRun")
        self.start_button.clicked.connect(self.start_run)
        row.addWidget(self.start_button)
        self.progress = muted("")
        row.addWidget(self.progress, 1)
        right.addLayout(row)
        body.addLayout(right, 1)
        layout.addLayout(body, 1)
        self.templates: list[checklists.Checklist] = []
        try:
            self.templates = sorted(checklists.load_all().values(), key=lambda c: c.title)
        except DrguiError as error:
            self.summary.setText(error.message)
        for checklist in self.templates:
            QListWidgetItem(checklist.title, self.list)
        if self.templates:
            self.list.setCurrentRow(0)

    @Slot(int)
    def show_checklist(self, row: int) -> None:
        if row < 0:
            return
        checklist = self.templates[row]
        self.run = None
        self.heading.setText(checklist.title)
        self.summary.setText(f"{checklist.summary}  When: {checklist.when}")
        self.fill(checklist, None)
        self.progress.setText("")

    def fill(self, checklist: checklists.Checklist, run: checklists.ChecklistRun | None) -> None:
        self.items.blockSignals(True)
        self.items.clear()
        for item in checklist.items:
            prefix = f"[{item.section}] " if item.section else ""
            auto = "  (checked automatically)" if item.kind == "auto" else ""
            widget_item = QListWidgetItem(f"{prefix}{item.text}{auto}", self.items)
            widget_item.setData(Qt.ItemDataRole.UserRole, item.id)
            if item.help:
                widget_item.setToolTip(item.help)
            if run is not None and item.kind != "auto":
                widget_item.setFlags(widget_item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                state = run.states[item.id]
                widget_item.setCheckState(Qt.CheckState.Checked if state.done else Qt.CheckState.Unchecked)
        self.items.blockSignals(False)

    @Slot()
    def start_run(self) -> None:
        row = self.list.currentRow()
        if row < 0:
            return
        template = self.templates[row]
        try:
            checklist = checklists.load(template.id, self.variables(template))
            self.run = checklists.ChecklistRun(checklist=checklist, started=datetime.now(UTC))
        except DrguiError as error:
            self.progress.setText(f"{error.message} {error.hint or ''}")
            return
        self.history_id = self.controller.ws.history.start_run("checklist", target=template.id)
        self.fill(checklist, self.run)
        self.update_progress()

    def variables(self, template: checklists.Checklist) -> dict[str, list[str]]:
        """Values for the template's variables: the .env key names (never values) of the plan's env sources."""
        values: dict[str, list[str]] = {}
        for name in template.variables:
            values[name] = []
            if name == "env_keys":
                for source in self.controller.ws.plan.sources:
                    if source.kind == "env":
                        try:
                            text = Path(source.settings["path"]).read_text("utf-8", errors="replace")
                        except OSError:
                            continue
                        values[name].extend(k for k in env_keys(text) if k not in values[name])
        return values

    @Slot(QListWidgetItem)
    def on_item_changed(self, widget_item: QListWidgetItem) -> None:
        if self.run is None:
            return
        item_id = widget_item.data(Qt.ItemDataRole.UserRole)
        done = widget_item.checkState() == Qt.CheckState.Checked
        self.run.tick(item_id, getpass.getuser(), datetime.now(UTC), done=done)
        self.update_progress()

    def update_progress(self) -> None:
        if self.run is None:
            return
        done, total = self.run.progress
        self.progress.setText(f"{done} of {total} done")
        if self.run.complete and self.history_id is not None:
            self.controller.ws.history.finish_run(self.history_id, "ok", detail=self.run.to_dict())
            self.history_id = None
            self.progress.setText(f"All {total} done. Recorded in the history.")
            self.controller.refresh()
