"""The guided restore test: the same engine steps as `drgui drill`, one wizard page at a time.

Intro → choose snapshot → run (each step with progress, Cancel cleans up) → results → manual
checklist → sign-off → report. The drill runs as a `Job` on the GUI's one worker helper
(drgui/gui/worker.py); the report is written on the GUI thread once the results are in.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from PySide6.QtCore import Qt, QUrl, Slot
from PySide6.QtGui import QBrush, QColor, QDesktopServices, QFont
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from drgui.core.engine import catalog
from drgui.core.errors import DrguiError
from drgui.core.ops.drill import DRILL_STEPS, Answer, DrillResult, run_drill, save_report, sign_off
from drgui.core.plan.config import format_duration
from drgui.core.plan.workspace import Workspace
from drgui.core.progress import Progress
from drgui.gui import humanize
from drgui.gui.worker import Job, Worker
from drgui.report.drill_report import write_report

GREEN, RED = QColor("#1b7f3b"), QColor("#b3261e")
STEP_TITLES = dict(DRILL_STEPS)
STEP_ORDER = [name for name, _title in DRILL_STEPS]


class StepTracker:
    """Which drill step the wizard shows as running, which as done, and the overall percentage.

    The engine announces its steps, and the restore functions it calls report their own progress under
    "restore" (also while files are restored); the scratch server is started in the background before
    the verification. So: a step already started that comes again is work inside the current step (its
    figures are shown, the list does not go back), a step not started yet becomes the current one; a
    step is ticked only once a step after it in the list is current (never a later step while an earlier
    one runs), and the percentage only goes up."""

    def __init__(self) -> None:
        self.current: str | None = None
        self.started: list[str] = []
        self.percent = 0.0

    def feed(self, event: Progress) -> bool:
        """Take one event; True when the current step changed."""
        changed = False
        if event.step in STEP_TITLES and (
            event.step not in self.started
            or (self.current is not None and STEP_ORDER.index(event.step) > STEP_ORDER.index(self.current))
        ):
            if event.step not in self.started:
                self.started.append(event.step)
            changed = event.step != self.current
            self.current = event.step
        if self.current is not None:
            within = min(1.0, event.bytes_done / event.bytes_total) if event.bytes_total else 0.0
            # inner progress (a dump, a folder) moves the bar within the current step's share
            overall = 100 * (STEP_ORDER.index(self.current) + within) / len(STEP_ORDER)
            self.percent = max(self.percent, overall)
        return changed

    def symbol(self, step: str, finished: bool = False) -> str:
        if finished:
            return "✔" if step in self.started or step in ("report", "checklist") else "–"
        if step == self.current:
            return "▶"
        if step in self.started:
            below = self.current is not None and STEP_ORDER.index(step) < STEP_ORDER.index(self.current)
            return "✔" if below else "▶"  # started ahead of the current one (the scratch server): running
        return "○"


class IntroPage(QWizardPage):
    def __init__(self, ws: Workspace) -> None:
        super().__init__()
        self.setObjectName("drillIntroPage")
        self.setTitle("Restore test")
        self.setSubTitle("Prove that your latest backup can be restored, and measure how long it takes.")
        last = ws.history.last_run("drill")
        if last is None:
            history = "This is your first restore test."
        else:
            rto = last.detail.get("rto_seconds")
            took = f", it took {format_duration(rto)}" if rto else ""
            history = f"The last one ran {last.started[:16].replace('T', ' ')} UTC ({last.status}{took})."
        text = QLabel(
            "<p>drgui will:</p><ol>"
            "<li>download the snapshot (from S3 when you have it, as a new machine would) and check every hash;</li>"
            "<li>start a throw-away PostgreSQL and restore your databases into it;</li>"
            "<li>compare every table's row count and the schema with the snapshot, run your smoke queries;</li>"
            "<li>restore files to a temp folder and compare their hashes, check the .env key names;</li>"
            "<li>measure RTO and RPO against your targets, then remove everything it created.</li></ol>"
            "<p>Your live database and files are never touched.</p>"
            f"<p><b>{history}</b></p>"
        )
        text.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(text)


class SnapshotPage(QWizardPage):
    def __init__(self, ws: Workspace) -> None:
        super().__init__()
        self.ws = ws
        self.setObjectName("drillSnapshotPage")
        self.setTitle("Choose the snapshot")
        self.setSubTitle(
            "The latest is what you would restore after a disaster; test that one unless you have a reason."
        )
        self.destination = QComboBox()
        self.destination.setObjectName("drillDestination")
        self.snapshots = QListWidget()
        self.snapshots.setObjectName("drillSnapshots")
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Read from destination:"))
        layout.addWidget(self.destination)
        layout.addWidget(QLabel("Snapshot:"))
        layout.addWidget(self.snapshots)
        self.destination.currentIndexChanged.connect(self._fill)

    def initializePage(self) -> None:
        self.destination.blockSignals(True)
        self.destination.clear()
        try:
            default = self.ws.default_read_destination().name
        except DrguiError:
            default = None
        for dest in self.ws.plan.destinations:
            self.destination.addItem(f"{dest.name} ({dest.kind})", dest.name)
        if default is not None:
            self.destination.setCurrentIndex(max(0, self.destination.findData(default)))
        self.destination.blockSignals(False)
        self._fill()

    @Slot()
    def _fill(self) -> None:
        self.snapshots.clear()
        name = self.destination.currentData()
        try:
            rows = [r for r in catalog.list_snapshots(self.ws, name) if r["complete"]] if name else []
        except DrguiError:
            rows = []
        for number, row in enumerate(reversed(rows)):
            label = f"{row['id']}  —  {', '.join(row['sources'])}" + ("  (latest)" if number == 0 else "")
            item = QListWidgetItem(label)
            item.setData(Qt.ItemDataRole.UserRole, row["id"])
            self.snapshots.addItem(item)
        if self.snapshots.count():
            self.snapshots.setCurrentRow(0)
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return self.snapshots.currentItem() is not None

    def choice(self) -> tuple[str, str]:
        return self.destination.currentData(), self.snapshots.currentItem().data(Qt.ItemDataRole.UserRole)


class RunPage(QWizardPage):
    """Runs the drill on the worker; each step gets a line with its state, the current one its figures."""

    def __init__(self, wizard: RestoreWizard) -> None:
        super().__init__()
        self.owner = wizard
        self.setObjectName("drillRunPage")
        self.setTitle("Running the restore test")
        self.setSubTitle("You can cancel at any time: the scratch database and temp files are removed.")
        self.steps = QListWidget()
        self.steps.setObjectName("drillSteps")
        self.bar = QProgressBar()
        self.bar.setObjectName("drillProgress")
        self.figure = QLabel()
        self.figure.setObjectName("drillFigure")
        self.figure.setWordWrap(True)
        # Once the drill has run there is no going back to rerun it by accident: results come next.
        self.setCommitPage(True)
        self.setButtonText(QWizard.WizardButton.CommitButton, "Next >")
        self.cancel_button = QPushButton("Cancel restore test")
        self.cancel_button.setObjectName("drillCancelButton")
        self.cancel_button.clicked.connect(self.cancel)
        layout = QVBoxLayout(self)
        layout.addWidget(self.steps)
        layout.addWidget(self.bar)
        layout.addWidget(self.figure)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)
        self.job: Job | None = None
        self.state = "idle"  # idle, running, finished, failed, cancelled
        self.tracker = StepTracker()

    @property
    def current(self) -> str | None:
        return self.tracker.current

    def reset_steps(self) -> None:
        self.tracker = StepTracker()
        self.steps.clear()
        for name, title in DRILL_STEPS:
            item = QListWidgetItem(f"○  {title}")
            item.setData(Qt.ItemDataRole.UserRole, name)
            self.steps.addItem(item)
        self.bar.setRange(0, 100)
        self.bar.setValue(0)
        self.bar.setFormat("%p%")

    def initializePage(self) -> None:
        self.reset_steps()
        self.figure.setText("Starting…")
        self.state = "running"
        self.cancel_button.setEnabled(True)
        # no Back while the drill runs: the previous page counts as committed until it ends
        self.owner.snapshot_page.setCommitPage(True)
        dest_name, snapshot_id = self.owner.snapshot_page.choice()
        ws = self.owner.ws

        def work(progress, cancel) -> DrillResult:
            return run_drill(ws, snapshot_id, dest_name=dest_name, progress=progress, cancel=cancel)

        self.job = self.owner.worker.job("drill", work)
        self.job.progress.connect(self.on_progress)
        self.job.finished.connect(self.on_finished)
        self.job.failed.connect(self.on_failed)
        self.job.cancelled.connect(self.on_cancelled)
        self.owner.worker.start(self.job)
        self.completeChanged.emit()

    def _row(self, step: str) -> QListWidgetItem | None:
        for index in range(self.steps.count()):
            item = self.steps.item(index)
            if item.data(Qt.ItemDataRole.UserRole) == step:
                return item
        return None

    def _mark(self, step: str, symbol: str) -> None:
        item = self._row(step)
        if item is not None:
            item.setText(f"{symbol}  {STEP_TITLES[step]}")

    def _mark_all(self, finished: bool = False) -> None:
        for name in STEP_ORDER:
            self._mark(name, self.tracker.symbol(name, finished))

    @Slot(object)
    def on_progress(self, event: Progress) -> None:
        if self.tracker.feed(event):
            self._mark_all()
        self.bar.setValue(int(self.tracker.percent))
        text = event.message
        if event.bytes_done:
            rate = f" at {humanize.size(int(event.rate))}/s" if event.rate else ""
            text = f"{event.source or event.step}: {humanize.size(event.bytes_done)}{rate}"
        if text:
            self.figure.setText(text)

    @Slot(object)
    def on_finished(self, result: DrillResult) -> None:
        self.state = "finished"
        self._mark_all(finished=True)
        self.owner.drill_result = result
        try:
            save_report(self.owner.ws, result, write_report)
        except DrguiError as error:
            self.figure.setText(f"The report could not be saved: {error.message}")
        self._done(f"Finished: {'PASS' if result.ok else 'FAIL'}. Press Next for the results.")

    @Slot(object)
    def on_failed(self, error: DrguiError) -> None:
        self.state = "failed"
        if self.current:
            self._mark(self.current, "✖")
        self._done(f"The restore test stopped: {error}")

    @Slot()
    def on_cancelled(self) -> None:
        self.state = "cancelled"
        if self.current:
            self._mark(self.current, "✖")
        self._done("Cancelled. The scratch database and temp files were removed.")

    def _done(self, text: str) -> None:
        self.job = None
        if self.state == "finished":
            self.bar.setValue(100)
        self.owner.snapshot_page.setCommitPage(False)  # Back again: choose another snapshot
        self.figure.setText(text)
        self.cancel_button.setEnabled(False)
        self.completeChanged.emit()
        self.owner.job_done()

    @Slot()
    def cancel(self) -> None:
        if self.job is not None:
            self.figure.setText("Cancelling: stopping the scratch PostgreSQL and removing temp files…")
            self.cancel_button.setEnabled(False)
            self.job.cancel()

    def isComplete(self) -> bool:
        return self.state == "finished"


class ResultsPage(QWizardPage):
    def __init__(self, wizard: RestoreWizard) -> None:
        super().__init__()
        self.owner = wizard
        self.setObjectName("drillResultsPage")
        self.setTitle("Results")
        self.verdict = QLabel()
        self.verdict.setObjectName("drillVerdict")
        font = QFont()
        font.setPointSize(14)
        font.setBold(True)
        self.verdict.setFont(font)
        self.verdict.setWordWrap(True)
        self.targets = QLabel()
        self.targets.setObjectName("drillTargets")
        self.table = QTableWidget(0, 3)
        self.table.setObjectName("drillChecks")
        self.table.setHorizontalHeaderLabels(["Result", "Check", "Figure"])
        self.table.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        layout = QVBoxLayout(self)
        layout.addWidget(self.verdict)
        layout.addWidget(self.targets)
        layout.addWidget(self.table)

    def initializePage(self) -> None:
        result = self.owner.drill_result
        assert result is not None
        failed = result.failed_checks
        color = GREEN if result.ok else RED
        self.verdict.setText(
            "PASS — the snapshot restored completely."
            if result.ok
            else f"FAIL — {len(failed)} check(s) failed."
        )
        self.verdict.setStyleSheet(f"color: white; background: {color.name()}; padding: 8px;")
        self.targets.setText(
            f"RTO {format_duration(result.rto_seconds or 0)} (target {format_duration(result.rto_target)}) · "
            f"RPO {format_duration(result.rpo_seconds or 0)} (target {format_duration(result.rpo_target)}) · "
            f"snapshot {result.snapshot_id} from {result.destination}"
        )
        self.table.setRowCount(len(result.checks))
        for row, check in enumerate(result.checks):
            mark = QTableWidgetItem("PASS" if check["ok"] else "FAIL")
            mark.setForeground(QBrush(GREEN if check["ok"] else RED))
            self.table.setItem(row, 0, mark)
            self.table.setItem(row, 1, QTableWidgetItem(check["name"]))
            self.table.setItem(row, 2, QTableWidgetItem(check["detail"]))
        self.table.resizeColumnToContents(0)
        self.table.resizeColumnToContents(1)


class ChecklistPage(QWizardPage):
    def __init__(self, wizard: RestoreWizard) -> None:
        super().__init__()
        self.owner = wizard
        self.setObjectName("drillChecklistPage")
        self.setTitle("Checklist")
        self.setSubTitle("Tick what you have done. Automatic items were checked by drgui from the history.")
        self.box = QWidget()
        self.items_layout = QVBoxLayout(self.box)
        layout = QVBoxLayout(self)
        layout.addWidget(self.box)
        layout.addStretch(1)
        self.boxes: dict[str, QCheckBox] = {}

    def initializePage(self) -> None:
        while self.items_layout.count():
            taken = self.items_layout.takeAt(0)
            widget = taken.widget() if taken is not None else None
            if widget is not None:
                widget.deleteLater()
        self.boxes = {}
        result = self.owner.drill_result
        run = result.checklist_run() if result else None
        if run is None:
            self.items_layout.addWidget(QLabel("No checklist."))
            return
        self.setTitle(run.checklist.title)
        for item in run.checklist.items:
            state = run.states[item.id]
            text = item.text
            if item.kind == "auto":
                text += f"  — automatic: {state.detail or 'not run'}"
            box = QCheckBox(_wrap(text))
            box.setObjectName(f"checklist-{item.id}")
            # The item asking to run the drill is done: this wizard just ran it.
            box.setChecked(state.done or item.id == "run-drill")
            box.setEnabled(item.kind == "manual")
            if item.help:
                box.setToolTip(item.help.strip())
            self.items_layout.addWidget(box)
            if item.kind == "manual":
                self.boxes[item.id] = box

    def ticked(self) -> list[str]:
        return [item_id for item_id, box in self.boxes.items() if box.isChecked()]


def _wrap(text: str, width: int = 100) -> str:
    """QCheckBox does not wrap its label; break long items so the wizard keeps its width."""
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text


class SignOffPage(QWizardPage):
    def __init__(self, wizard: RestoreWizard) -> None:
        super().__init__()
        self.owner = wizard
        self.setObjectName("drillSignOffPage")
        self.setTitle("Sign off")
        self.setSubTitle("Your name goes into the report and the history with the items you ticked.")
        self.name = QLineEdit()
        self.name.setObjectName("drillSignedBy")
        self.notes = QPlainTextEdit()
        self.notes.setObjectName("drillNotes")
        self.notes.setPlaceholderText("Anything slow, confusing or wrong? Follow-ups go here.")
        self.error = QLabel()
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Name:"))
        layout.addWidget(self.name)
        layout.addWidget(QLabel("Notes:"))
        layout.addWidget(self.notes)
        layout.addWidget(self.error)
        self.name.textChanged.connect(self.completeChanged)

    def isComplete(self) -> bool:
        return bool(self.name.text().strip())

    def validatePage(self) -> bool:
        result = self.owner.drill_result
        if result is None:
            return False
        by = self.name.text().strip()
        now = datetime.now(UTC)
        answers = {item_id: Answer(by=by, at=now) for item_id in self.owner.checklist_page.ticked()}
        try:
            sign_off(
                self.owner.ws,
                result,
                answers,
                by=by,
                report=write_report,
                notes=self.notes.toPlainText(),
                now=now,
            )
        except DrguiError as error:
            self.error.setText(str(error))
            return False
        return True


class ReportPage(QWizardPage):
    def __init__(self, wizard: RestoreWizard) -> None:
        super().__init__()
        self.owner = wizard
        self.setObjectName("drillReportPage")
        self.setTitle("Report saved")
        self.paths = QLabel()
        self.paths.setObjectName("drillReportPaths")
        self.paths.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.paths.setWordWrap(True)
        self.open_pdf = QPushButton("Open PDF")
        self.open_pdf.setObjectName("drillOpenPdf")
        self.open_html = QPushButton("Open HTML")
        self.open_html.setObjectName("drillOpenHtml")
        self.open_pdf.clicked.connect(self._open_pdf)
        self.open_html.clicked.connect(self._open_html)
        layout = QVBoxLayout(self)
        layout.addWidget(self.paths)
        row = QHBoxLayout()
        row.addWidget(self.open_pdf)
        row.addWidget(self.open_html)
        row.addStretch(1)
        layout.addLayout(row)
        layout.addStretch(1)

    def initializePage(self) -> None:
        result = self.owner.drill_result
        assert result is not None
        verdict = "PASS" if result.ok else "FAIL"
        self.paths.setText(
            f"<p>Restore test <b>{verdict}</b>, signed off by {result.signed_by}.</p>"
            f"<p>PDF: {result.report_pdf}<br>HTML: {result.report_html}</p>"
            "<p>The snapshot stays pinned (never pruned) while this is your latest drill report.</p>"
        )

    @Slot()
    def _open_pdf(self) -> None:
        self._open(self.owner.drill_result.report_pdf if self.owner.drill_result else None)

    @Slot()
    def _open_html(self) -> None:
        self._open(self.owner.drill_result.report_html if self.owner.drill_result else None)

    def _open(self, path: str | None) -> None:
        if path:
            QDesktopServices.openUrl(QUrl.fromLocalFile(path))


class RestoreWizard(QWizard):
    """The guided drill. Open it with `RestoreWizard(ws, parent).show()`."""

    def __init__(self, ws: Workspace, parent: QWidget | None = None, worker: Worker | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("restoreWizard")
        self.setWindowTitle("Restore test")
        self.setWizardStyle(QWizard.WizardStyle.ClassicStyle)
        self.setOption(QWizard.WizardOption.NoBackButtonOnLastPage, True)
        self.setOption(QWizard.WizardOption.NoCancelButtonOnLastPage, True)
        self.resize(760, 560)
        self.ws = ws
        self.worker = worker or Worker(self)
        self.drill_result: DrillResult | None = None
        self._closing = False
        self.intro_page = IntroPage(ws)
        self.snapshot_page = SnapshotPage(ws)
        self.run_page = RunPage(self)
        self.results_page = ResultsPage(self)
        self.checklist_page = ChecklistPage(self)
        self.sign_off_page = SignOffPage(self)
        self.report_page = ReportPage(self)
        for page in (
            self.intro_page,
            self.snapshot_page,
            self.run_page,
            self.results_page,
            self.checklist_page,
            self.sign_off_page,
            self.report_page,
        ):
            self.addPage(page)

    @property
    def running(self) -> bool:
        return self.run_page.job is not None

    def reject(self) -> None:
        """Cancel: a running drill is stopped and cleaned up first; the wizard closes when it is."""
        if self.running:
            self._closing = True
            self.run_page.cancel()
            return
        super().reject()

    def job_done(self) -> None:
        if self._closing:
            self._closing = False
            super().reject()

    def page_names(self) -> list[str]:
        return [self.page(i).objectName() for i in self.pageIds()]

    def summary(self) -> dict[str, Any]:
        return self.drill_result.to_json() if self.drill_result else {}
