"""Checklists: the runbooks, and a run in which drgui evaluates the automatic checks (as `drgui checklist
run` does), each manual item is ticked (who and when is recorded) and Finish signs the run off into the
history. Past runs of the checklist are listed under it. Texts are in the app's words (app_words)."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from drgui.core.errors import DrguiError
from drgui.core.ops import autochecks, checklists
from drgui.core.ops.drill import checklist_variables
from drgui.core.ops.history import Run
from drgui.gui import humanize
from drgui.gui.app_words import app_words
from drgui.gui.controller import Controller
from drgui.gui.widgets import MessageLine, muted, title

PASSED = QColor("#1a7f37")
FAILED = QColor("#cf222e")


def run_counts(run: Run) -> tuple[int, int]:
    """(done, total) of a recorded checklist run (the CLI's detail {"run": ...} or the run dict itself)."""
    record = run.detail.get("run", run.detail)
    states = record.get("states", []) if isinstance(record, dict) else []
    return sum(1 for s in states if isinstance(s, dict) and s.get("done")), len(states)


def signed_by(run: Run) -> str:
    record = run.detail.get("run", run.detail)
    return (
        str(record.get("signed_off_by") or run.detail.get("signed_off_by") or "")
        if isinstance(record, dict)
        else ""
    )


class ChecklistsPage(QWidget):
    def __init__(self, controller: Controller) -> None:
        super().__init__()
        self.controller = controller
        self.run: checklists.ChecklistRun | None = None
        self.checklist: checklists.Checklist | None = None
        self.history_id: int | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 20)
        layout.setSpacing(12)
        layout.addWidget(title("Checklists"))
        body = QHBoxLayout()
        self.list = QListWidget()
        self.list.setObjectName("checklistList")
        self.list.setAccessibleName("Checklists")
        self.list.setMaximumWidth(200)
        self.list.setWordWrap(True)  # long titles wrap: the list never scrolls sideways at 800x600
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
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
        right.addWidget(self.items, 3)
        row = QHBoxLayout()
        self.start_button = QPushButton("Start a run")
        self.start_button.setObjectName("startChecklistRun")
        self.start_button.clicked.connect(self.start_run)
        row.addWidget(self.start_button)
        self.finish_button = QPushButton("Finish")
        self.finish_button.setObjectName("checklistFinishButton")
        self.finish_button.setToolTip("Sign the run off: it is recorded in the history as it stands.")
        self.finish_button.setEnabled(False)
        self.finish_button.clicked.connect(self.finish)
        row.addWidget(self.finish_button)
        self.progress = muted("")
        self.progress.setObjectName("checklistCounter")
        row.addWidget(self.progress, 1)
        right.addLayout(row)
        self.message = MessageLine(controller, "checklistMessage")
        right.addWidget(self.message)
        right.addWidget(muted("Past runs"))
        self.past = QListWidget()
        self.past.setObjectName("checklistPastRuns")
        self.past.setAccessibleName("Past runs")
        self.past.setMaximumHeight(110)
        right.addWidget(self.past, 1)
        body.addLayout(right, 1)
        layout.addLayout(body, 1)
        self.templates: list[checklists.Checklist] = []
        try:
            self.templates = sorted(checklists.load_all(self.extra_dirs()).values(), key=lambda c: c.title)
        except DrguiError as error:
            self.summary.setText(error.message)
        for checklist in self.templates:
            QListWidgetItem(checklist.title, self.list)
        if self.templates:
            weekly = next((i for i, c in enumerate(self.templates) if c.id == "weekly-review"), 0)
            self.list.setCurrentRow(weekly)

    def extra_dirs(self):
        return [self.controller.ws.home.path / "checklists"]  # a plan's own checklists, as the CLI reads

    def select(self, checklist_id: str) -> None:
        for row, checklist in enumerate(self.templates):
            if checklist.id == checklist_id:
                self.list.setCurrentRow(row)

    @Slot(int)
    def show_checklist(self, row: int) -> None:
        if row < 0:
            return
        template = self.templates[row]
        self.run = None
        self.history_id = None
        self.finish_button.setEnabled(False)
        self.start_button.setEnabled(True)
        self.heading.setText(template.title)
        self.progress.setText("")
        self.message.clear()
        try:
            # expanded with the plan's values: one item per .env key, never a raw "Rotate {key}"
            self.checklist = checklists.load(
                template.id, checklist_variables(self.controller.ws), self.extra_dirs()
            )
        except DrguiError as error:
            self.checklist = None
            self.summary.setText(f"{error.message} {error.hint or ''}")
            self.items.clear()
            return
        self.summary.setText(f"{app_words(template.summary)}  When: {template.when}")
        self.fill(self.checklist, None)
        self.show_past_runs()

    def fill(self, checklist: checklists.Checklist, run: checklists.ChecklistRun | None) -> None:
        self.items.blockSignals(True)
        self.items.clear()
        for item in checklist.items:
            prefix = f"[{item.section}] " if item.section else ""
            text = prefix + app_words(item.text)
            state = run.states[item.id] if run is not None else None
            if item.kind == "auto":
                if state is None or state.at is None:
                    text += "  (checked automatically when you start a run)"
                else:
                    text = ("✓ " if state.done else "✗ ") + text + f"\n    {state.detail or ''}"
            widget_item = QListWidgetItem(text, self.items)
            widget_item.setData(Qt.ItemDataRole.UserRole, item.id)
            if item.kind == "auto" and state is not None and state.at is not None:
                widget_item.setForeground(QBrush(PASSED if state.done else FAILED))
            tip = [app_words(t) for t in (item.help, item.done_when and f"Done when: {item.done_when}") if t]
            if tip:
                widget_item.setToolTip("\n\n".join(tip))
            if run is None or item.kind == "auto" or self.run is None:  # only a run's manual items tick
                widget_item.setFlags(widget_item.flags() & ~Qt.ItemFlag.ItemIsUserCheckable)
            else:
                widget_item.setFlags(widget_item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                widget_item.setCheckState(
                    Qt.CheckState.Checked if state is not None and state.done else Qt.CheckState.Unchecked
                )
        self.items.blockSignals(False)

    @Slot()
    def start_run(self) -> None:
        if self.checklist is None:
            return
        now = datetime.now(UTC)
        try:
            self.run = checklists.ChecklistRun(checklist=self.checklist, started=now)
            # the automatic checks read the history, as `drgui checklist run` evaluates them
            self.run.apply_auto(autochecks.evaluate(self.controller.ws, self.checklist.checks, now), now)
        except DrguiError as error:
            self.run = None
            self.message.say_error(error)
            return
        self.history_id = self.controller.ws.history.start_run("checklist", target=self.checklist.id)
        self.fill(self.checklist, self.run)
        self.start_button.setEnabled(False)
        self.finish_button.setEnabled(True)
        self.update_progress()

    @Slot(QListWidgetItem)
    def on_item_changed(self, widget_item: QListWidgetItem) -> None:
        if self.run is None:
            return
        item_id = widget_item.data(Qt.ItemDataRole.UserRole)
        if self.run.checklist.item(item_id).kind == "auto":
            return
        done = widget_item.checkState() == Qt.CheckState.Checked
        self.run.tick(item_id, getpass.getuser(), datetime.now(UTC), done=done)
        self.update_progress()

    def failed_checks(self) -> list[str]:
        if self.run is None:
            return []
        return [s.item_id for s in self.run.states.values() if s.auto and s.at is not None and not s.done]

    def update_progress(self) -> None:
        if self.run is None:
            return
        done, total = self.run.progress
        failed = len(self.failed_checks())
        text = f"{done} of {total} done"
        if failed:
            text += f" ({humanize.plural(failed, 'automatic check')} failed)"
        self.progress.setText(text)

    @Slot()
    def finish(self) -> None:
        """Sign the run off: recorded as the CLI records it ("ok" when every item is done, else "partial")."""
        if self.run is None or self.history_id is None or self.checklist is None:
            return
        done, total = self.run.progress
        by = getpass.getuser()
        record = self.run.to_dict()
        record["signed_off_by"] = by
        self.controller.ws.history.finish_run(
            self.history_id,
            "ok" if self.run.complete else "partial",
            detail={"checklist": self.checklist.id, "run": record},
        )
        self.fill(self.checklist, None)
        self.run = None
        self.history_id = None
        self.finish_button.setEnabled(False)
        self.start_button.setEnabled(True)
        self.progress.setText("")
        self.message.say(f"Signed off by {by}: {done} of {total} done. Recorded in the history.", "done")
        self.show_past_runs()
        self.controller.refresh()

    def show_past_runs(self) -> None:
        self.past.clear()
        if self.checklist is None:
            return
        runs = [
            r
            for r in self.controller.ws.history.runs("checklist", limit=200)
            if r.target == self.checklist.id and r.status != "running"
        ]
        for run in runs[:20]:
            done, total = run_counts(run)
            when = humanize.when(humanize.parse_iso(run.finished or run.started))
            by = signed_by(run)
            text = f"{when} · {done} of {total} done" + (f" · signed off by {by}" if by else "")
            QListWidgetItem(("✓ " if run.status == "ok" else "◐ ") + text, self.past)
        if not runs:
            QListWidgetItem("No run of this checklist yet.", self.past)
