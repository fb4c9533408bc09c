"""Dashboard: readiness score and why, per-source RPO state, destinations, what is next, Back up now."""

from __future__ import annotations

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from drgui.core.errors import DrguiError
from drgui.core.ops.status import Status
from drgui.core.progress import Progress
from drgui.gui import humanize
from drgui.gui.controller import Controller
from drgui.gui.widgets import (
    STATE_COLORS,
    STATE_WORDS,
    Card,
    MessageLine,
    clear_layout,
    dot,
    heading_row,
    muted,
    scrolling_page,
    show_progress,
    title,
)

ACTIVITY_WORDS = {
    "backup": "Backup",
    "upload": "Upload",
    "verify": "Verify",
    "restore": "Restore",
    "drill": "Restore test",
    "prune": "Prune",
    "drive_sync": ".env to drive",
    "checklist": "Checklist",
}


def score_color(score: int) -> str:
    return (
        STATE_COLORS["ok"]
        if score >= 80
        else STATE_COLORS["warning"]
        if score >= 50
        else STATE_COLORS["failed"]
    )


class SourceProgress(QWidget):
    """One row of the running backup: name, bar, bytes and rate."""

    def __init__(self, name: str) -> None:
        super().__init__()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.name = QLabel(name)
        self.name.setMinimumWidth(110)
        self.bar = QProgressBar()
        self.bar.setRange(0, 0)
        self.bar.setTextVisible(False)
        self.bar.setMaximumHeight(10)
        self.detail = muted("waiting")
        self.detail.setObjectName("sourceProgressDetail")
        self.detail.setMinimumWidth(190)
        self.detail.setWordWrap(True)
        layout.addWidget(self.name)
        layout.addWidget(self.bar, 1)
        layout.addWidget(self.detail)

    def update_from(self, event: Progress) -> None:
        if event.message == "done":
            self.bar.setRange(0, 1)
            self.bar.setValue(1)
            self.detail.setText(f"done, {humanize.size(event.bytes_done)}")
            return
        if event.bytes_done or event.bytes_total:
            show_progress(self.bar, self.detail, event)  # percent and time left, or bytes and rate
        else:
            self.detail.setText("starting")


class DashboardPage(QWidget):
    def __init__(self, controller: Controller) -> None:
        super().__init__()
        self.controller = controller
        self.rows: dict[str, SourceProgress] = {}
        layout = scrolling_page(self)

        self.heading = title("Dashboard")
        self.backup_button = heading_row(
            layout, self.heading, "Back up now", "backupNowButton", controller.start_backup
        )

        self.progress_card = Card("Backup in progress")
        self.progress_card.setObjectName("card")
        self.progress_status = QLabel("Starting…")
        self.progress_card.body.addWidget(self.progress_status)
        self.progress_rows = QVBoxLayout()
        self.progress_card.body.addLayout(self.progress_rows)
        cancel_row = QHBoxLayout()
        cancel_row.addWidget(muted("Cancel stops safely: nothing half-written is kept."), 1)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancelBackupButton")
        self.cancel_button.clicked.connect(self.cancel)
        cancel_row.addWidget(self.cancel_button)
        self.progress_card.body.addLayout(cancel_row)
        self.progress_card.hide()
        layout.addWidget(self.progress_card)

        self.result_label = MessageLine(controller, "backupResult")
        layout.addWidget(self.result_label)

        top = QHBoxLayout()
        top.setSpacing(14)
        self.score_card = Card("Readiness")
        self.score = QLabel("…")
        self.score.setObjectName("readinessScore")
        self.score.setAlignment(Qt.AlignmentFlag.AlignLeft)
        self.score_card.body.addWidget(self.score)
        self.score_summary = QLabel()
        self.score_summary.setStyleSheet("font-size: 15px; font-weight: 600;")
        self.score_card.body.addWidget(self.score_summary)
        self.reasons = QLabel()
        self.reasons.setObjectName("readinessReasons")
        self.reasons.setWordWrap(True)
        self.score_card.body.addWidget(self.reasons)
        self.score_card.body.addStretch(1)
        top.addWidget(self.score_card, 1)

        self.next_card = Card("Schedule")
        self.next_grid = QGridLayout()
        self.next_grid.setHorizontalSpacing(16)
        self.next_card.body.addLayout(self.next_grid)
        self.next_card.body.addStretch(1)
        top.addWidget(self.next_card, 1)
        layout.addLayout(top)

        self.sources_card = Card("Sources")
        self.sources_grid = QGridLayout()
        self.sources_grid.setHorizontalSpacing(14)
        self.sources_card.body.addLayout(self.sources_grid)
        layout.addWidget(self.sources_card)

        self.dests_card = Card("Destinations")
        self.dests_grid = QGridLayout()
        self.dests_grid.setHorizontalSpacing(14)
        self.dests_card.body.addLayout(self.dests_grid)
        layout.addWidget(self.dests_card)

        self.activity_card = Card("Recent activity")
        self.activity_grid = QGridLayout()
        self.activity_grid.setHorizontalSpacing(14)
        self.activity_card.body.addLayout(self.activity_grid)
        layout.addWidget(self.activity_card)
        layout.addStretch(1)

        controller.status_changed.connect(self.show_status)
        controller.recent_changed.connect(self.show_recent)
        controller.backup_started.connect(self.on_started)
        controller.backup_progress.connect(self.on_progress)
        controller.backup_finished.connect(self.on_finished)
        controller.backup_failed.connect(self.on_failed)
        controller.backup_cancelled.connect(self.on_cancelled)
        controller.backup_done.connect(self.on_done)

    # --- status ------------------------------------------------------------------------------
    @Slot(object)
    def show_status(self, status: Status) -> None:
        self.heading.setText(status.plan_name)
        color = score_color(status.readiness)
        self.score.setText(f"{status.readiness}<span style='font-size:22px; color:#57606a'> / 100</span>")
        self.score.setStyleSheet(f"font-size: 56px; font-weight: 700; color: {color};")
        if status.readiness >= 80:
            summary = "Ready to recover"
        elif status.readiness >= 50:
            summary = "Recoverable, with gaps"
        else:
            summary = "At risk: act now"
        self.score_summary.setText(summary)
        self.score_summary.setStyleSheet(f"font-size: 15px; font-weight: 600; color: {color};")
        if status.reasons:
            self.reasons.setText("<br>".join(f"• {r}" for r in status.reasons))
        else:
            self.reasons.setText("Everything is backed up within its RPO and the last restore test passed.")
        self._fill_next(status)
        self._fill_sources(status)
        self._fill_dests(status)

    def _fill_next(self, status: Status) -> None:
        clear_layout(self.next_grid)
        plan = self.controller.ws.plan
        rows = [
            ("Next backup", humanize.when(status.next.get("backup"))),
            (
                "Weekly review",
                humanize.next_run(plan.schedule, "weekly_review", status.next.get("weekly_review")),
            ),
            ("Restore test", humanize.next_run(plan.schedule, "drill", status.next.get("drill"))),
        ]
        drill = status.last_drill
        if drill:
            rto = drill.get("rto_seconds")
            verdict = "passed" if drill.get("ok") else "FAILED"
            measured = (
                f", RTO {humanize.duration(rto)} (target {humanize.duration(status.rto_seconds)})"
                if rto
                else ""
            )
            rows.append(("Last restore test", f"{verdict} {humanize.ago(drill.get('time'))}{measured}"))
        else:
            rows.append(("Last restore test", "never"))
        sync = status.drive_sync
        if sync:
            rows.append((".env on drive", f"synced {humanize.ago(sync.get('time'))}"))
        elif any(d.kind == "drive" for d in status.destinations):
            rows.append((".env on drive", "never synced: plug the drive in"))
        else:
            rows.append((".env on drive", "no drive registered"))
        rows.append(
            (
                "Targets",
                f"RPO {humanize.duration(status.rpo_seconds)} · RTO {humanize.duration(status.rto_seconds)}",
            )
        )
        if status.queue:
            rows.append(("Waiting to upload", f"{len(status.queue)} snapshot copy(ies)"))
        # Could a stolen laptop delete the offsite copy? Said plainly, yes or no (docs/offsite.md).
        rows += [("Offsite copy", answer["sentence"]) for answer in status.offsite]
        for row, (label, value) in enumerate(rows):
            self.next_grid.addWidget(muted(label), row, 0)
            value_label = QLabel(value)
            value_label.setWordWrap(True)
            self.next_grid.addWidget(value_label, row, 1)
        self.next_grid.setColumnStretch(1, 1)

    def _fill_sources(self, status: Status) -> None:
        clear_layout(self.sources_grid)
        if not status.sources:
            self.sources_grid.addWidget(muted("No source yet. Add one on the Sources page."), 0, 0)
            return
        for row, source in enumerate(status.sources):
            self.sources_grid.addWidget(dot(source.rpo_state), row, 0)
            name = QLabel(f"<b>{source.name}</b>")
            self.sources_grid.addWidget(name, row, 1)
            self.sources_grid.addWidget(muted(source.description), row, 2)
            self.sources_grid.addWidget(QLabel(f"last backup {humanize.ago(source.last_success)}"), row, 3)
            state = QLabel(STATE_WORDS.get(source.rpo_state, source.rpo_state))
            state.setStyleSheet(f"color: {STATE_COLORS.get(source.rpo_state, '#57606a')}; font-weight: 600;")
            if source.last_error:  # the last backup saved the others but not this one
                state.setText("Not in the last backup")
                state.setStyleSheet(f"color: {STATE_COLORS['warning']}; font-weight: 600;")
                state.setToolTip(source.last_error)
                state.setObjectName(f"sourceError_{source.name}")
            elif source.name in self.controller.env_missing:  # backed up, but not what a restore needs
                keys = ", ".join(self.controller.env_missing[source.name])
                state.setText(f"Missing key(s): {keys}")
                state.setStyleSheet(f"color: {STATE_COLORS['warning']}; font-weight: 600;")
                state.setToolTip(f"The .env file lacks required key(s) {keys}: add them, then back up again.")
                state.setObjectName(f"sourceWarning_{source.name}")
            self.sources_grid.addWidget(state, row, 4)
        self.sources_grid.setColumnStretch(2, 1)

    def _fill_dests(self, status: Status) -> None:
        clear_layout(self.dests_grid)
        if not status.destinations:
            self.dests_grid.addWidget(muted("No destination yet. Add one on the Destinations page."), 0, 0)
            return
        for row, dest in enumerate(status.destinations):
            state = "ok" if dest.available and not dest.queued else ("warning" if dest.available else "never")
            self.dests_grid.addWidget(dot(state), row, 0)
            self.dests_grid.addWidget(QLabel(f"<b>{dest.name}</b>"), row, 1)
            self.dests_grid.addWidget(muted(dest.description), row, 2)
            self.dests_grid.addWidget(QLabel(f"last copy {humanize.ago(dest.last_success)}"), row, 3)
            parts = []
            parts.append(
                f"{dest.snapshots} snapshot{'' if dest.snapshots == 1 else 's'}"
                if dest.snapshots >= 0
                else "remote"
            )
            if dest.queued:
                parts.append(f"{dest.queued} waiting")
            if not dest.available:
                parts.append("not connected")
            self.dests_grid.addWidget(QLabel(" · ".join(parts)), row, 4)
        self.dests_grid.setColumnStretch(2, 1)

    @Slot(object)
    def show_recent(self, runs) -> None:
        clear_layout(self.activity_grid)
        if not runs:
            self.activity_grid.addWidget(muted("Nothing yet."), 0, 0)
            return
        for row, run in enumerate(runs[:6]):
            state = {"ok": "ok", "partial": "warning", "running": "running"}.get(run.status, "failed")
            if run.status == "cancelled":
                state = "never"
            self.activity_grid.addWidget(dot(state), row, 0)
            what = ACTIVITY_WORDS.get(run.kind, run.kind.replace("_", " ").capitalize())
            target = (
                f" → {run.target}" if run.target and run.kind in ("upload", "verify", "drive_sync") else ""
            )
            self.activity_grid.addWidget(QLabel(f"{what}{target}"), row, 1)
            self.activity_grid.addWidget(muted(run.snapshot_id or ""), row, 2)
            self.activity_grid.addWidget(QLabel(run.status), row, 3)
            self.activity_grid.addWidget(
                QLabel(humanize.ago(humanize.parse_iso(run.finished or run.started))), row, 4
            )
        self.activity_grid.setColumnStretch(2, 1)

    # --- backup ------------------------------------------------------------------------------
    @Slot()
    def cancel(self) -> None:
        self.cancel_button.setEnabled(False)
        self.progress_status.setText("Cancelling: removing what was half-written…")
        self.controller.cancel_backup()

    @Slot()
    def on_started(self) -> None:
        self.backup_button.setEnabled(False)
        self.backup_button.setText("Backing up…")
        self.cancel_button.setEnabled(True)
        self.result_label.hide()
        clear_layout(self.progress_rows)
        self.rows = {}
        self.progress_status.setText("Starting…")
        self.progress_card.show()

    @Slot(object)
    def on_progress(self, event: Progress) -> None:
        if event.source is None:
            self.progress_status.setText(event.message or "Working…")
            return
        key = f"{event.step}:{event.source}"
        row = self.rows.get(key)
        if row is None:
            label = event.source if event.step == "backup" else f"→ {event.source}"
            row = self.rows[key] = SourceProgress(label)
            self.progress_rows.addWidget(row)
        if event.message and event.message != "done" and not event.bytes_done:
            self.progress_status.setText(event.message)
        row.update_from(event)

    def _result(self, color: str, text: str) -> None:
        self.result_label.say(text)
        self.result_label.setStyleSheet(f"color: {color}; font-weight: 600;")

    @Slot(object)
    def on_finished(self, result) -> None:
        total = sum(s.bytes for s in result.sources)
        if result.failed_sources:
            missing = "; ".join(f"{s.name}: {s.error}" for s in result.failed_sources)
            self._result(
                STATE_COLORS["warning"],
                f"Partial backup: snapshot {result.snapshot_id} holds the other sources, but not {missing}",
            )
        elif result.ok and any(s.warnings for s in result.sources):  # e.g. a .env lacks a required key
            warned = "; ".join(w for s in result.sources for w in s.warnings)
            self._result(
                STATE_COLORS["warning"],
                f"Backed up with a warning: snapshot {result.snapshot_id}, but {warned}.",
            )
        elif result.ok:
            self._result(
                STATE_COLORS["ok"],
                f"Backed up: snapshot {result.snapshot_id}, {humanize.size(total)} in {humanize.duration(result.seconds)}.",
            )
        else:
            failed = ", ".join(f"{d.name} ({d.error})" for d in result.destinations if not d.ok)
            self._result(
                STATE_COLORS["warning"],
                f"Snapshot {result.snapshot_id} saved, but not everywhere: {failed}. It is queued and will be copied on the next run.",
            )
        if result.warnings:  # about the run itself, e.g. the history file was damaged and replaced
            self.result_label.setText("\n".join([self.result_label.text(), *result.warnings]))

    @Slot(object)
    def on_failed(self, error: DrguiError) -> None:
        self._result(
            STATE_COLORS["failed"],
            f"Backup did not run: {error.message}" + (f" {error.hint}" if error.hint else ""),
        )

    @Slot()
    def on_cancelled(self) -> None:
        self._result("#57606a", "Backup cancelled. Nothing half-written was kept.")

    @Slot()
    def on_done(self) -> None:
        self.progress_card.hide()
        self.backup_button.setEnabled(True)
        self.backup_button.setText("Back up now")
