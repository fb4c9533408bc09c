"""History: every run and event of the plan's audit log, filtered by kind and date; Verify (the keyed
chain against the destinations' anchors, on the worker, the result in words) and Export CSV."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from PySide6.QtCore import QDate, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDateEdit,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from drgui.core.errors import DrguiError
from drgui.core.ops import audit
from drgui.core.plan.workspace import Workspace
from drgui.core.progress import CancelToken, ProgressCallback
from drgui.gui import humanize
from drgui.gui.controller import Controller
from drgui.gui.widgets import MessageLine, heading_row, muted, title

EVENT = "event"
KINDS = [
    ("All", ""),
    ("Backups", "backup"),
    ("Uploads", "upload"),
    ("Verifies", "verify"),
    ("Restores", "restore"),
    ("Restore tests", "drill"),
    ("Drive syncs", "drive_sync"),
    ("Checklists", "checklist"),
    ("Prunes", "prune"),
    ("Events", EVENT),
]
STATUS_WORDS = {"ok": "✓ ok", "failed": "✗ failed", "partial": "◐ partial", "running": "… running"}


@dataclass(frozen=True)
class Row:
    """One line of the page: a run, or an event of the log that is not a run's record."""

    time: str
    kind: str  # a run's kind, or EVENT
    what: str
    status: str
    target: str
    snapshot: str

    @property
    def day(self) -> date | None:
        moment = humanize.parse_iso(self.time)
        return moment.astimezone(UTC).date() if moment else None


def history_rows(ws: Workspace) -> list[Row]:
    """Runs and events, newest first (read on the worker)."""
    rows = [
        Row(r.started, r.kind, r.kind.replace("_", " "), r.status, r.target or "", r.snapshot_id or "")
        for r in ws.history.runs(limit=5000)
    ]
    for event in ws.history.events():
        data: dict[str, Any] = event["data"]
        if "row" in data:  # a run's record: the run itself is listed
            continue
        rows.append(Row(event["time"], EVENT, str(event["kind"]), "", _event_target(data), ""))
    return sorted(rows, key=lambda row: row.time, reverse=True)


def _event_target(data: dict[str, Any]) -> str:
    for key in ("name", "drive", "drill", "host", "reason"):
        if data.get(key):
            return str(data[key])
    return ""


class HistoryWork:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def __call__(self, progress: ProgressCallback, cancel: CancelToken) -> list[Row]:
        return history_rows(self.ws)


class VerifyWork:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def __call__(self, progress: ProgressCallback, cancel: CancelToken) -> audit.VerifyResult:
        return audit.verify(self.ws)


class ExportWork:
    def __init__(self, ws: Workspace, path: Path) -> None:
        self.ws = ws
        self.path = path

    def __call__(self, progress: ProgressCallback, cancel: CancelToken) -> tuple[Path, int]:
        return self.path, self.ws.history.export_csv(self.path)


def _date_filter(object_name: str, accessible_name: str, slot) -> QDateEdit:
    """A date field of the filter row (yyyy-MM-dd, with a calendar) that calls `slot` when changed."""
    edit = QDateEdit()
    edit.setObjectName(object_name)
    edit.setAccessibleName(accessible_name)
    edit.setCalendarPopup(True)
    edit.setDisplayFormat("yyyy-MM-dd")
    edit.dateChanged.connect(slot)
    return edit


class HistoryPage(QWidget):
    def __init__(self, controller: Controller) -> None:
        super().__init__()
        self.controller = controller
        self.rows: list[Row] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 20)
        layout.setSpacing(12)
        self.verify_button = heading_row(
            layout, title("History"), "Verify audit log", "verifyHistoryButton", self.verify
        )
        layout.addWidget(
            muted(
                "Every backup, upload, restore test, drive sync and checklist, in one log that is keyed with "
                "the plan's private key and anchored in every snapshot. Verify compares it with the destinations."
            )
        )
        filters = QHBoxLayout()
        filters.addWidget(QLabel("Show"))
        self.kind = QComboBox()
        self.kind.setObjectName("historyKind")
        self.kind.setAccessibleName("Kind of record")
        for label, value in KINDS:
            self.kind.addItem(label, value)
        self.kind.currentIndexChanged.connect(self.apply_filters)
        filters.addWidget(self.kind)
        filters.addWidget(QLabel("from"))
        self.since = _date_filter("historySince", "From date", self.apply_filters)
        filters.addWidget(self.since)
        filters.addWidget(QLabel("to"))
        self.until = _date_filter("historyUntil", "To date", self.apply_filters)
        filters.addWidget(self.until)
        filters.addStretch(1)
        self.export_button = QPushButton("Export CSV…")
        self.export_button.setObjectName("exportHistoryButton")
        self.export_button.clicked.connect(self.choose_export)
        filters.addWidget(self.export_button)
        layout.addLayout(filters)
        self.verdict = QLabel()
        self.verdict.setObjectName("historyVerdict")
        self.verdict.setWordWrap(True)
        self.verdict.hide()
        layout.addWidget(self.verdict)
        self.table = QTableWidget(0, 5)
        self.table.setObjectName("historyTable")
        self.table.setHorizontalHeaderLabels(["When", "What", "Result", "Target", "Snapshot"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        for column in (0, 1, 2, 3):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)
        layout.addWidget(self.table, 1)
        self.empty_hint = muted("Nothing in the history for these filters.")
        self.empty_hint.setObjectName("historyEmptyHint")
        self.empty_hint.hide()
        layout.addWidget(self.empty_hint)
        self.message = MessageLine(controller, "historyMessage")
        layout.addWidget(self.message)
        self._dates_set = False
        controller.status_changed.connect(self.reload)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.reload()

    @Slot()
    def reload(self, _status=None) -> None:
        job = self.controller.worker.job("History", HistoryWork(self.controller.ws))
        job.finished.connect(self.show_rows)
        job.failed.connect(self.message.say_error)
        self.controller.worker.start(job)

    @Slot(object)
    def show_rows(self, rows: list[Row]) -> None:
        self.rows = rows
        if not self._dates_set:  # the whole history at first; the user narrows it
            days = [r.day for r in rows if r.day] or [datetime.now(UTC).date()]
            self._set_dates(min(days), max(max(days), datetime.now(UTC).date()))
            self._dates_set = True
        self.apply_filters()

    def _set_dates(self, first: date, last: date) -> None:
        for edit, day in ((self.since, first), (self.until, last)):
            edit.blockSignals(True)
            edit.setDate(QDate(day.year, day.month, day.day))
            edit.blockSignals(False)

    def visible_rows(self) -> list[Row]:
        kind = self.kind.currentData()
        since = _day(self.since)
        until = _day(self.until)
        return [
            r
            for r in self.rows
            if (not kind or r.kind == kind) and (r.day is None or since <= r.day <= until)
        ]

    @Slot()
    def apply_filters(self, *_args) -> None:
        rows = self.visible_rows()
        self.table.setRowCount(len(rows))
        for index, row in enumerate(rows):
            when = humanize.parse_iso(row.time)
            cells = [
                when.astimezone().strftime("%Y-%m-%d %H:%M") if when else row.time,
                row.what,
                STATUS_WORDS.get(row.status, row.status),
                row.target,
                row.snapshot,
            ]
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column == 0:
                    item.setToolTip(row.time)
                if column == 4 and text:
                    item.setToolTip(text)
                self.table.setItem(index, column, item)
        self.empty_hint.setVisible(not rows)

    def set_filter(self, kind: str, since: date | None = None, until: date | None = None) -> None:
        """Select a kind (a run kind or "event") and a date range, as the user would."""
        self.kind.setCurrentIndex(max(0, self.kind.findData(kind)))
        if since or until:
            self._set_dates(since or _day(self.since), until or _day(self.until))
            self._dates_set = True
            self.apply_filters()

    # --- verify --------------------------------------------------------------------------------
    @Slot()
    def verify(self) -> None:
        if self.controller.worker.busy("Verify audit log"):
            return
        self.verify_button.setEnabled(False)
        self.message.say("Checking the audit log against the destinations…")
        job = self.controller.worker.job("Verify audit log", VerifyWork(self.controller.ws))
        job.finished.connect(self.show_verdict)
        job.failed.connect(self.verify_failed)
        job.done.connect(self.verify_done)
        self.controller.worker.start(job)

    @Slot(object)
    def show_verdict(self, result: audit.VerifyResult) -> None:
        self.message.clear()
        lines = [result.summary()]
        if not result.ok:
            lines += [f"• {p}" for p in result.problems]
        lines += [f"Note: {n}" for n in result.notes]
        self.verdict.setText("\n".join(lines))
        color = "#1e7e34" if result.ok else "#b00020"
        self.verdict.setStyleSheet(f"color: {color}; font-weight: bold;")
        self.verdict.setVisible(True)
        self.controller.refresh()  # a failed check is now an alert on the dashboard and in the tray

    @Slot(object)
    def verify_failed(self, error: DrguiError) -> None:
        self.verdict.hide()
        self.message.say_error(error)

    @Slot()
    def verify_done(self) -> None:
        self.verify_button.setEnabled(True)

    # --- export --------------------------------------------------------------------------------
    @Slot()
    def choose_export(self) -> None:
        default = str(Path.home() / f"drgui-audit-{datetime.now(UTC):%Y%m%d}.csv")
        chosen, _ = QFileDialog.getSaveFileName(self, "Export the audit log", default, "CSV files (*.csv)")
        if chosen:
            self.export_to(Path(chosen))

    def export_to(self, path: Path) -> None:
        job = self.controller.worker.job("Export audit log", ExportWork(self.controller.ws, path))
        job.finished.connect(self.exported)
        job.failed.connect(self.message.say_error)
        self.controller.worker.start(job)

    @Slot(object)
    def exported(self, result: tuple[Path, int]) -> None:
        path, count = result
        self.message.say(f"{count} records written to {path}.", "done")


def _day(edit: QDateEdit) -> date:
    chosen = edit.date()
    return date(chosen.year(), chosen.month(), chosen.day())
