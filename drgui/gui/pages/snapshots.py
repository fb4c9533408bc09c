"""Snapshots: browse per destination, verify (quick or deep) and restore, with progress on the worker."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from drgui.core.engine.catalog import list_snapshots
from drgui.core.engine.restore import restore
from drgui.core.engine.sources.postgres import CONNINFO_KEYS, split_dsn
from drgui.core.engine.verify import verify_snapshot
from drgui.core.errors import DrguiError, EnvironmentNotReady
from drgui.core.plan.config import SourceConfig
from drgui.core.plan.secrets import remember
from drgui.core.plan.workspace import Workspace
from drgui.core.progress import CancelToken, Progress, ProgressCallback
from drgui.gui import humanize
from drgui.gui.controller import Controller
from drgui.gui.humanize import plural
from drgui.gui.widgets import MessageLine, advance_bar, muted, progress_text, reset_bar, show_progress, title
from drgui.gui.worker import Job

GUARD_TEXT = (
    "<b>Your live data is safe.</b> A database is always restored into a <i>new</i> database: drgui "
    "refuses any target that is one of your configured source databases (recognised by the server's "
    "identity, so localhost, 127.0.0.1 and a socket are the same server) and any non-empty database. "
    "Files go into a new or empty folder, never over the live folder."
)


class ListWork:
    def __init__(self, ws: Workspace, dest: str | None) -> None:
        self.ws, self.dest = ws, dest

    def __call__(self, progress: ProgressCallback, cancel: CancelToken):
        return list_snapshots(self.ws, self.dest)


class VerifyWork:
    def __init__(self, ws: Workspace, dest: str, snapshot_id: str, deep: bool) -> None:
        self.ws, self.dest, self.snapshot_id, self.deep = ws, dest, snapshot_id, deep

    def __call__(self, progress: ProgressCallback, cancel: CancelToken):
        identity = self.ws.identity() if self.deep else None
        destination = self.ws.destination(self.dest)
        run_id = self.ws.history.start_run("verify", target=self.dest, snapshot_id=self.snapshot_id)
        try:
            result = verify_snapshot(
                destination,
                self.snapshot_id,
                deep=self.deep,
                identity=identity,
                progress=progress,
                cancel=cancel,
            )
        except DrguiError as error:
            self.ws.history.finish_run(run_id, "failed", detail={"error": error.message})
            raise
        self.ws.history.finish_run(run_id, "ok" if result.ok else "failed", detail=result.to_json())
        return result


SERVER_KEYS = ("host", "hostaddr", "port", "user")


def server_of(params: dict[str, str]) -> tuple[str, ...]:
    """What names a server login in conninfo settings (the database name aside)."""
    return tuple(params.get(key, "") for key in SERVER_KEYS)


def new_database_dsn(source: SourceConfig, today: datetime | None = None) -> str:
    """The source's server with a new database name (never its password): postgresql://USER@HOST:PORT/DB_restore_YYYYMMDD."""
    params = {k: str(v) for k, v in source.settings.items() if k in CONNINFO_KEYS}
    dbname = f"{params.get('dbname', 'db')}_restore_{(today or datetime.now()).strftime('%Y%m%d')}"
    host = params.get("host", "")
    if not host or host.startswith("/") or "," in host or set(params) - {"host", "port", "user", "dbname"}:
        from psycopg.conninfo import make_conninfo

        return make_conninfo(**{**params, "dbname": dbname})
    user = f"{quote(params['user'], safe='')}@" if params.get("user") else ""
    port = f":{params['port']}" if params.get("port") else ""
    host_part = f"[{host}]" if ":" in host else host
    return f"postgresql://{user}{host_part}{port}/{quote(dbname, safe='')}"


class RestoreWork:
    def __init__(
        self,
        ws: Workspace,
        snapshot_id: str,
        source: str,
        dest: str,
        target: str,
        is_db: bool,
        password: str | None = None,
    ) -> None:
        self.ws, self.snapshot_id, self.source, self.dest = ws, snapshot_id, source, dest
        self.target, self.is_db = target, is_db
        self.password = password  # the target server's password, given apart from the DSN

    def __call__(self, progress: ProgressCallback, cancel: CancelToken):
        return restore(
            self.ws,
            self.snapshot_id,
            self.source,
            to_dsn=self.target if self.is_db else None,
            to_dir=None if self.is_db else Path(self.target).expanduser().absolute(),
            dest_name=self.dest,
            progress=progress,
            cancel=cancel,
            to_password=self.password if self.is_db else None,
        )


class RestoreDialog(QDialog):
    def __init__(self, page: SnapshotsPage, snapshot: dict, dest: str) -> None:
        super().__init__(page)
        self.page, self.snapshot, self.dest = page, snapshot, dest
        self.setObjectName("restoreDialog")
        self.setWindowTitle(f"Restore from {snapshot['id']}")
        self.setMinimumWidth(600)
        layout = QVBoxLayout(self)
        guard = QLabel(GUARD_TEXT)
        guard.setWordWrap(True)
        guard.setObjectName("productionGuard")
        guard.setStyleSheet(
            "background: #ddf4ff; border: 1px solid #54aeff; border-radius: 6px; padding: 8px;"
        )
        layout.addWidget(guard)
        form = QFormLayout()
        self.source_combo = QComboBox()
        self.source_combo.setObjectName("restoreSource")
        kinds = {s.name: s.kind for s in page.ws.plan.sources}
        for name in snapshot["sources"]:
            self.source_combo.addItem(f"{name} ({kinds.get(name, '?')})", name)
        self.kinds = kinds
        form.addRow("Source", self.source_combo)
        target_row = QHBoxLayout()
        self.target = QLineEdit()
        self.target.setObjectName("restoreTarget")
        target_row.addWidget(self.target, 1)
        self.browse = QPushButton("Browse…")
        self.browse.clicked.connect(self.choose_dir)
        target_row.addWidget(self.browse)
        form.addRow("Restore into", target_row)
        self.password = QLineEdit()
        self.password.setObjectName("restorePassword")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setPlaceholderText("the target server's password (never put it in the address)")
        self.password_label = QLabel("Server password")
        form.addRow(self.password_label, self.password)
        layout.addLayout(form)
        self.prefilled: str | None = None  # the source's own password, while the target is its server
        self.source_combo.currentIndexChanged.connect(self.on_source_changed)
        self.target.textEdited.connect(self.on_target_edited)
        self.bar = QProgressBar()
        self.bar.setObjectName("restoreProgress")
        self.bar.setRange(0, 0)
        self.bar.hide()
        layout.addWidget(self.bar)
        self.progress_label = muted("")
        self.progress_label.setObjectName("restoreProgressText")
        layout.addWidget(self.progress_label)
        self.status = QLabel()
        self.status.setObjectName("restoreStatus")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.on_source_changed()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.start_button = self.buttons.addButton("Restore", QDialogButtonBox.ButtonRole.ActionRole)
        self.start_button.setObjectName("startRestoreButton")
        self.start_button.clicked.connect(self.start)
        self.buttons.rejected.connect(self.close_or_cancel)
        layout.addWidget(self.buttons)
        self.job: Job | None = None

    def is_db(self) -> bool:
        return self.kinds.get(self.source_combo.currentData()) == "postgres"

    def source_config(self) -> SourceConfig | None:
        name = self.source_combo.currentData()
        return next((s for s in self.page.ws.plan.sources if s.name == name), None)

    @Slot()
    def on_source_changed(self) -> None:
        """A new source: nothing typed for the previous one stays (target, password, message)."""
        self.target.clear()
        self.password.clear()
        self.prefilled = None
        self.status.clear()
        self.update_target_hint()
        source = self.source_config()
        if self.is_db() and source is not None:
            self.target.setText(new_database_dsn(source))
            self.prefill_password(source)

    def prefill_password(self, source: SourceConfig) -> None:
        """The target is the source's own server: its password comes from the keyring, unseen."""
        if not source.settings.get("has_password"):
            return
        try:
            password = self.page.ws.store.get("source", source.name, "password")
        except EnvironmentNotReady:
            return
        if password:
            remember(password)
            self.prefilled = password
            self.password.setText(password)
            self.password.setToolTip("From the keyring: the target is the source's server.")

    @Slot(str)
    def on_target_edited(self, text: str) -> None:
        """Another server typed: the source's password is not offered for it."""
        source = self.source_config()
        if not self.is_db() or source is None:
            return
        try:
            params, _ = split_dsn(text)
        except DrguiError:
            return
        same = server_of(params) == server_of({k: str(v) for k, v in source.settings.items()})
        if not same and self.prefilled is not None and self.password.text() == self.prefilled:
            self.password.clear()
            self.prefilled = None
            self.password.setToolTip("")
        elif same and not self.password.text():
            self.prefill_password(source)

    @Slot()
    def update_target_hint(self) -> None:
        db = self.is_db()
        self.password.setVisible(db)
        self.password_label.setVisible(db)
        if db:
            self.target.setPlaceholderText("postgresql://USER@HOST:5432/NEW_DATABASE (a NEW database)")
            self.browse.hide()
        else:
            self.target.setPlaceholderText("a new or empty folder, e.g. ~/restore-test")
            self.browse.show()

    @Slot()
    def choose_dir(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Restore into")
        if chosen:
            self.target.setText(chosen)

    @Slot()
    def start(self) -> None:
        if not self.target.text().strip():
            self.status.setText("Say where to restore to.")
            return
        work = RestoreWork(
            self.page.ws,
            self.snapshot["id"],
            self.source_combo.currentData(),
            self.dest,
            self.target.text().strip(),
            self.is_db(),
            self.password.text() or None,
        )
        job = self.page.controller.worker.job("Restore", work)
        job.progress.connect(self.on_progress)
        job.finished.connect(self.on_finished)
        job.failed.connect(self.on_failed)
        job.cancelled.connect(self.on_cancelled)
        job.done.connect(self.on_done)
        self.job = job
        self.start_button.setEnabled(False)
        self.source_combo.setEnabled(False)
        reset_bar(self.bar)
        self.bar.show()
        self.progress_label.setText("")
        self.started = time.monotonic()
        self.status.setStyleSheet("")
        self.status.setText("Restoring…")
        self.page.controller.worker.start(job)

    @Slot(object)
    def on_progress(self, event: Progress) -> None:
        if event.message:
            self.status.setText(event.message)
        show_progress(self.bar, self.progress_label, event)

    @Slot(object)
    def on_finished(self, result) -> None:
        bad = [c for c in result.checks if not c["ok"]]
        if bad:
            self.status.setStyleSheet("color: #cf222e;")
            self.status.setText(
                "Restored, but checks failed:<br>" + "<br>".join(f"{c['name']}: {c['detail']}" for c in bad)
            )
        else:
            self.status.setStyleSheet("color: #2da44e; font-weight: 600;")
            self.status.setText(
                f"Restored into {result.target}: {plural(len(result.checks), 'check')} passed."
            )

    @Slot(object)
    def on_failed(self, error: DrguiError) -> None:
        self.status.setStyleSheet("color: #cf222e;")
        self.status.setText(
            f"<b>{error.message}</b>" + (f"<br>What to do: {error.hint}" if error.hint else "")
        )

    @Slot()
    def on_cancelled(self) -> None:
        self.status.setText("Restore cancelled; what was half-restored has been removed.")

    @Slot()
    def on_done(self) -> None:
        self.job = None
        self.bar.hide()
        self.progress_label.setText("")
        self.start_button.setEnabled(True)
        self.source_combo.setEnabled(True)

    @Slot()
    def close_or_cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.status.setText("Cancelling…")
        else:
            self.reject()


class SnapshotsPage(QWidget):
    def __init__(self, controller: Controller) -> None:
        super().__init__()
        self.controller = controller
        self.snapshots: list[dict] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 20)
        layout.setSpacing(12)
        layout.addWidget(title("Snapshots"))
        top = QHBoxLayout()
        top.addWidget(QLabel("Destination"))
        self.dest_combo = QComboBox()
        self.dest_combo.setObjectName("snapshotDestination")
        self.dest_combo.currentIndexChanged.connect(self.reload)
        top.addWidget(self.dest_combo)
        top.addStretch(1)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.reload)
        top.addWidget(self.refresh_button)
        layout.addLayout(top)
        self.table = QTableWidget(0, 5)
        self.table.setObjectName("snapshotsTable")
        self.table.setHorizontalHeaderLabels(["Time", "Age", "Size", "Sources", "Complete"])
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        layout.addWidget(self.table, 1)
        actions = QHBoxLayout()
        self.verify_quick = QPushButton("Verify (quick)")
        self.verify_quick.setObjectName("verifyQuickButton")
        self.verify_quick.setToolTip("Checks sizes and hashes of the encrypted files; no key needed.")
        self.verify_quick.clicked.connect(self.verify_quick_selected)
        self.verify_deep = QPushButton("Verify (deep)")
        self.verify_deep.setObjectName("verifyDeepButton")
        self.verify_deep.setToolTip("Decrypts everything, checks every hash and reads the database dump.")
        self.verify_deep.clicked.connect(self.verify_deep_selected)
        self.restore_button = QPushButton("Restore…")
        self.restore_button.setObjectName("restoreButton")
        self.restore_button.clicked.connect(self.restore_selected)
        self.verify_bar = QProgressBar()
        self.verify_bar.setRange(0, 0)
        self.verify_bar.setMaximumWidth(160)
        self.verify_bar.hide()
        for widget in (self.verify_quick, self.verify_deep, self.restore_button, self.verify_bar):
            actions.addWidget(widget)
        actions.addStretch(1)
        layout.addLayout(actions)
        self.summary = muted("")
        self.summary.setObjectName("snapshotsSummary")
        layout.addWidget(self.summary)
        self.message = MessageLine(controller, "verifyResult")
        layout.addWidget(self.message)
        self.dialog: RestoreDialog | None = None
        self.fill_destinations()
        controller.backup_done.connect(self.reload)

    @property
    def ws(self) -> Workspace:
        return self.controller.ws

    def fill_destinations(self) -> None:
        self.dest_combo.blockSignals(True)
        self.dest_combo.clear()
        for dest in self.ws.plan.destinations:
            self.dest_combo.addItem(dest.name, dest.name)
        self.dest_combo.blockSignals(False)
        self.reload()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self.dest_combo.count() != len(self.ws.plan.destinations):
            self.fill_destinations()

    @Slot()
    def reload(self) -> None:
        dest = self.dest_combo.currentData()
        if not dest:
            self.summary.setText("No destination yet: add one on the Destinations page.")
            return
        job = self.controller.worker.job("List snapshots", ListWork(self.ws, dest))
        job.finished.connect(self.show_snapshots)
        job.failed.connect(self.on_failed)
        self.controller.worker.start(job)

    @Slot(object)
    def show_snapshots(self, rows: list[dict]) -> None:
        self.snapshots = list(reversed(rows))  # newest first
        self.table.setRowCount(len(self.snapshots))
        for row, snap in enumerate(self.snapshots):
            moment = humanize.parse_iso(snap["time"])
            local = moment.astimezone() if moment else None
            cells = [
                local.strftime("%a %d %b %Y %H:%M") if local else snap["id"],
                humanize.ago(moment),
                humanize.size(snap["bytes"]),
                ", ".join(snap["sources"]),
                "✓ complete" if snap["complete"] else "incomplete",
            ]
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(snap["id"])
                if column == 4:
                    item.setForeground(Qt.GlobalColor.darkGreen if snap["complete"] else Qt.GlobalColor.red)
                self.table.setItem(row, column, item)
        for column in (0, 1, 2, 4):
            self.table.resizeColumnToContents(column)
        if self.snapshots:
            self.table.selectRow(0)
            count = len(self.snapshots)
            self.summary.setText(
                f"{count} snapshot{'' if count == 1 else 's'} on '{self.dest_combo.currentData()}'."
            )
        else:
            self.summary.setText("No snapshot here yet. Click Back up now on the Dashboard.")

    def selected(self) -> dict | None:
        items = self.table.selectedItems()
        return self.snapshots[items[0].row()] if items else None

    @Slot()
    def verify_quick_selected(self) -> Job | None:
        return self.verify(False)

    @Slot()
    def verify_deep_selected(self) -> Job | None:
        return self.verify(True)

    def verify(self, deep: bool) -> Job | None:
        snap = self.selected()
        if snap is None:
            self.message.say("Select a snapshot first.")
            return None
        work = VerifyWork(self.ws, self.dest_combo.currentData(), snap["id"], deep)
        job = self.controller.worker.job("Verify", work)
        job.progress.connect(self.on_verify_progress)
        job.finished.connect(self.on_verified)
        job.failed.connect(self.on_failed)
        job.done.connect(self.on_verify_done)
        reset_bar(self.verify_bar)
        self.verify_bar.show()
        self.verify_quick.setEnabled(False)
        self.verify_deep.setEnabled(False)
        self.message.say(f"{'Deep' if deep else 'Quick'} check of {snap['id']}…")
        self.controller.worker.start(job)
        return job

    @Slot(object)
    def on_verify_progress(self, event: Progress) -> None:
        if event.bytes_done:
            # the snapshot's size is known: percent and time left on the bar and the line
            self.message.say(f"Checking: {progress_text(event)}…")
            advance_bar(self.verify_bar, event)

    @Slot(object)
    def on_verified(self, result) -> None:
        if result.ok:
            self.message.say(
                f"✓ Snapshot {result.snapshot_id} is intact ({'deep' if result.deep else 'quick'} check, "
                f"{len(result.checked)} checks).",
                "done",
            )
        else:
            self.message.say("Problems found:<br>" + "<br>".join(result.problems), "error")

    @Slot(object)
    def on_failed(self, error: DrguiError) -> None:
        self.message.say_error(error)

    @Slot()
    def on_verify_done(self) -> None:
        self.verify_bar.hide()
        self.verify_quick.setEnabled(True)
        self.verify_deep.setEnabled(True)

    @Slot()
    def restore_selected(self) -> RestoreDialog | None:
        snap = self.selected()
        if snap is None:
            self.message.say("Select a snapshot first.")
            return None
        self.dialog = RestoreDialog(self, snap, self.dest_combo.currentData())
        self.dialog.open()
        return self.dialog
