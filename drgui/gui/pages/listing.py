"""Sources and Destinations pages: a table of what the plan has, Add, Edit (or double-click), Test connection,
Remove. The Add and Edit forms are generated from the kinds' declarations (drgui.gui.dialogs)."""

from __future__ import annotations

from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from drgui.core.errors import DrguiError
from drgui.core.plan import setup
from drgui.core.plan.workspace import Workspace
from drgui.core.progress import CancelToken, ProgressCallback
from drgui.gui import humanize
from drgui.gui.controller import Controller
from drgui.gui.dialogs import AddDialog, EditDialog, kind_label
from drgui.gui.widgets import MessageLine, muted, title

BUSY, DONE, ERROR = "busy", "done", "error"  # MessageLine levels


class TestWork:
    def __init__(self, ws: Workspace, source: bool, name: str) -> None:
        self.ws, self.source, self.name = ws, source, name

    def __call__(self, progress: ProgressCallback, cancel: CancelToken) -> str:
        if self.source:
            return self.ws.sources([self.name])[0].test()
        checked = self.ws.destination(self.name).test()
        return f"Destination '{self.name}' works: {', '.join(checked)} checked."


class PlanItemsPage(QWidget):
    """Shared by Sources (source=True) and Destinations (source=False)."""

    SOURCE = True

    def __init__(self, controller: Controller) -> None:
        super().__init__()
        self.controller = controller
        what = "Sources" if self.SOURCE else "Destinations"
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 20)
        layout.setSpacing(12)
        layout.addWidget(title(what))
        layout.addWidget(
            muted(
                "What drgui backs up. Passwords and keys live in the system keyring, never in config.toml."
                if self.SOURCE
                else "Where snapshots go. Keep at least one copy off-site (S3) and one you can hold (a drive)."
            )
        )
        self.table = QTableWidget(0, 4)
        self.table.setObjectName("sourcesTable" if self.SOURCE else "destinationsTable")
        self.table.setHorizontalHeaderLabels(["Name", "Kind", "Where", "Last success"])
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.setAlternatingRowColors(True)
        layout.addWidget(self.table, 1)
        buttons = QHBoxLayout()
        self.add_button = QPushButton("Add…")
        self.add_button.setObjectName("addSourceButton" if self.SOURCE else "addDestinationButton")
        self.add_button.clicked.connect(self.add)
        self.edit_button = QPushButton("Edit…")
        self.edit_button.setObjectName("sourceEditButton" if self.SOURCE else "destinationEditButton")
        self.edit_button.clicked.connect(self.edit_selected)
        self.table.cellDoubleClicked.connect(self.edit_row)
        self.test_button = QPushButton("Test connection")
        self.test_button.setObjectName("testConnectionButton")
        self.test_button.clicked.connect(self.test_selected)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self.remove_selected)
        for button in (self.add_button, self.edit_button, self.test_button, self.remove_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        self.message = MessageLine(controller, "testResult")
        layout.addWidget(self.message)
        self.dialog: AddDialog | EditDialog | None = None
        controller.status_changed.connect(self.show_status)

    @property
    def ws(self) -> Workspace:
        return self.controller.ws

    @Slot(object)
    def show_status(self, status) -> None:
        rows = status.sources if self.SOURCE else status.destinations
        self.table.setRowCount(len(rows))
        for row, item in enumerate(rows):
            self.table.setItem(row, 0, QTableWidgetItem(item.name))
            self.table.setItem(row, 1, QTableWidgetItem(kind_label(self.SOURCE, item.kind)))
            self.table.setItem(row, 2, QTableWidgetItem(item.description))
            last = humanize.ago(item.last_success)
            if not self.SOURCE and not item.available:
                last += " (not connected)"
            self.table.setItem(row, 3, QTableWidgetItem(last))
        self.table.resizeColumnToContents(0)
        self.table.resizeColumnToContents(1)
        self.table.resizeColumnToContents(3)
        if rows and not self.table.selectedItems():
            self.table.selectRow(0)

    def selected_name(self) -> str | None:
        items = self.table.selectedItems()
        first = self.table.item(items[0].row(), 0) if items else None
        return first.text() if first is not None else None

    @Slot()
    def add(self) -> AddDialog:
        self.dialog = AddDialog(self.ws, self.controller.worker, source=self.SOURCE, parent=self)
        self.dialog.accepted.connect(self.controller.refresh)
        self.dialog.open()
        return self.dialog

    @Slot()
    def edit_selected(self) -> EditDialog | None:
        name = self.selected_name()
        if not name:
            self.say("Select a row first.")
            return None
        return self.edit(name)

    @Slot(int, int)
    def edit_row(self, row: int, _column: int) -> None:
        item = self.table.item(row, 0)
        if item is not None:
            self.edit(item.text())

    def edit(self, name: str) -> EditDialog | None:
        """The generated form of the entry's kind, prefilled; saving runs setup.edit on the worker."""
        try:
            self.dialog = EditDialog(
                self.ws, self.controller.worker, source=self.SOURCE, name=name, parent=self
            )
        except DrguiError as error:  # removed meanwhile, or a kind this drgui does not know
            self.say_error(error)
            return None
        self.dialog.accepted.connect(self.controller.refresh)
        self.dialog.open()
        return self.dialog

    @Slot()
    def test_selected(self) -> None:
        name = self.selected_name()
        if not name:
            self.say("Select a row first.")
            return
        self.say(f"Testing '{name}'…")
        self.test_button.setEnabled(False)
        job = self.controller.worker.job("Test connection", TestWork(self.ws, self.SOURCE, name))
        job.finished.connect(self.on_tested)
        job.failed.connect(self.on_test_failed)
        self.controller.worker.start(job)

    @Slot(object)
    def on_tested(self, text: str) -> None:
        self.test_button.setEnabled(True)
        self.say(f"✓ {text}", DONE)

    @Slot(object)
    def on_test_failed(self, error: DrguiError) -> None:
        self.test_button.setEnabled(True)
        self.say_error(error)

    def say(self, text: str, level: str = BUSY) -> None:
        """The line under the buttons (a MessageLine: it goes when the state it describes moves on)."""
        self.message.say(text, level)

    def say_error(self, error: DrguiError) -> None:
        self.message.say_error(error)

    @Slot()
    def remove_selected(self) -> None:
        name = self.selected_name()
        if not name:
            return
        box = QMessageBox(self)
        box.setWindowTitle("Remove")
        box.setText(
            f"Remove '{name}' from the plan? Existing snapshots stay where they are; its keyring entries are deleted."
        )
        box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel)
        box.setProperty("target", name)
        box.accepted.connect(self._confirm_remove)
        self._remove_box = box
        box.open()

    @Slot()
    def _confirm_remove(self) -> None:
        name = self._remove_box.property("target")
        try:
            (setup.remove_source if self.SOURCE else setup.remove_destination)(self.ws, name)
        except DrguiError as error:
            self.on_test_failed(error)
            return
        self.controller.refresh()
