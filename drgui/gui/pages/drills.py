"""Restore tests: the drill history and "Start restore test" (the restore wizard, when installed)."""

from __future__ import annotations

import importlib
from pathlib import Path

from PySide6.QtCore import QUrl, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
    QWizard,
)

from drgui.core import fmt
from drgui.core.plan.workspace import Workspace
from drgui.core.progress import CancelToken, ProgressCallback
from drgui.core.timing import schedule
from drgui.gui import humanize
from drgui.gui.controller import Controller
from drgui.gui.widgets import MessageLine, heading_row, muted, title


def checks_text(detail: dict) -> str:
    total = detail.get("checks")
    failed = detail.get("failed") or []
    if not isinstance(total, int):
        return ""
    return f"{total - len(failed)} of {total} passed"


class DrillHistoryWork:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def __call__(self, progress: ProgressCallback, cancel: CancelToken):
        return self.ws.history.runs("drill", limit=200)


class DrillsPage(QWidget):
    def __init__(self, controller: Controller) -> None:
        super().__init__()
        self.controller = controller
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 20)
        layout.setSpacing(12)
        self.start_button = heading_row(
            layout,
            title("Restore tests"),
            "Start restore test",
            "startRestoreTestButton",
            self.start_restore_test,
        )
        self.about = muted()
        self.about.setObjectName("drillSchedule")
        layout.addWidget(self.about)
        self.table = QTableWidget(0, 6)
        self.table.setObjectName("drillsTable")
        self.table.setHorizontalHeaderLabels(
            ["When", "Result", "Snapshot", "Measured RTO", "Checks", "Report"]
        )
        self.table.setToolTip("Double-click a row to open its report.")
        self.table.cellDoubleClicked.connect(self.open_report)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        # the short columns fit their text; the snapshot id takes what is left (elided, whole in its
        # tooltip): at 800x600 the table fits the window instead of scrolling sideways
        header = self.table.horizontalHeader()
        for column in (0, 1, 3, 4, 5):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        layout.addWidget(self.table, 1)
        self.empty_hint = muted("No restore test yet. A backup is only proven by a restore: start one.")
        self.empty_hint.setObjectName("drillEmptyHint")
        self.empty_hint.hide()
        layout.addWidget(self.empty_hint)
        self.message = MessageLine(controller, "drillMessage")
        layout.addWidget(self.message)
        self.wizard: QWizard | None = None
        self.reports: list[Path | None] = []
        controller.status_changed.connect(self.reload)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.reload()  # re-entering the page shows the history as it is now

    def show_schedule(self) -> None:
        """The schedule in the words Settings and the dashboard use ("first Sunday of the month, 19:00")."""
        rule = self.controller.ws.plan.schedule.get("drill", schedule.PRESETS["drill"])
        self.about.setText(
            f"Scheduled: {fmt.describe_rule(rule)}. A restore test restores the latest snapshot into a "
            "scratch database, compares every table and file with what was backed up, and measures how "
            "long recovery takes (RTO)."
        )

    @Slot()
    def reload(self, _status=None) -> None:
        self.show_schedule()
        job = self.controller.worker.job("Drill history", DrillHistoryWork(self.controller.ws))
        job.finished.connect(self.show_runs)
        self.controller.worker.start(job)

    def report_path(self, run) -> Path | None:
        name = run.detail.get("drill")
        report = run.detail.get("report")
        candidates = [Path(report)] if isinstance(report, str) and report else []
        if name:
            folder = self.controller.ws.home.reports_dir / str(name)
            candidates += [folder / "report.html", folder / "report.pdf"]
        return next((p for p in candidates if p.exists()), None)

    @Slot(int, int)
    def open_report(self, row: int, _column: int) -> None:
        path = self.reports[row] if row < len(self.reports) else None
        if path is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))

    @Slot(object)
    def show_runs(self, runs) -> None:
        self.reports = [self.report_path(run) for run in runs]
        self.table.setRowCount(len(runs))
        for row, run in enumerate(runs):
            report = self.reports[row]
            rto = run.detail.get("rto_seconds")
            target = self.controller.ws.plan.rto_seconds
            cells = [
                humanize.ago(humanize.parse_iso(run.finished or run.started)),
                {"ok": "✓ passed", "failed": "✗ failed"}.get(run.status, run.status),
                run.snapshot_id or "",
                f"{humanize.duration(rto)} (target {humanize.duration(target)})" if rto else "",
                checks_text(run.detail),
                # the file's name (double-click opens it); the whole path is the tooltip: the table
                # fits the window instead of scrolling sideways for a long path
                report.name if report else "",
            ]
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column == 2 and text:
                    item.setToolTip(text)
                if column == 5 and report:
                    item.setToolTip(str(report))
                self.table.setItem(row, column, item)
        # derived from the runs shown, set or cleared on every reload (not a message that could go stale)
        self.empty_hint.setVisible(not runs)

    @Slot()
    def start_restore_test(self) -> None:
        try:
            module = importlib.import_module("drgui.gui.restore_wizard")
        except ModuleNotFoundError:
            self.message.say(
                "The guided restore test is not installed in this build. Run `drgui drill` in a terminal: "
                "it does the same checks and saves the report here."
            )
            return
        wizard: QWizard = module.RestoreWizard(self.controller.ws, self)
        self.wizard = wizard
        wizard.finished.connect(self.controller.refresh)
        wizard.open()
