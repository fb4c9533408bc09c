"""The tray icon (state ok/due/running/failed) and its menu; reminders as desktop notifications with
action buttons (falling back to the tray balloon when there is no notification server) or, without a
system tray, as a banner in the main window that is raised at the due time."""

from __future__ import annotations

from datetime import datetime

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QApplication, QMenu, QSystemTrayIcon

from drgui.core.ops.audit import AUDIT_ALERT
from drgui.core.ops.status import Status
from drgui.gui import humanize
from drgui.gui.controller import Controller
from drgui.gui.icons import tray_icon
from drgui.gui.main_window import MainWindow
from drgui.gui.notification_requests import DEFAULT, OPEN_CHECKLIST, SNOOZE_HOUR, SNOOZE_TOMORROW, START_DRILL
from drgui.gui.notifications import DesktopNotifier
from drgui.gui.reminders import DRILL, Reminder, ReminderService

STATE_TIPS = {
    "ok": "drgui: all backups within their RPO",
    "due": "drgui: something is due",
    "running": "drgui: backing up…",
    "failed": "drgui: the last backup failed",
    "partial": "drgui: the last backup was partial",
}


def status_line(status: Status | None, running: bool = False, now: datetime | None = None) -> str:
    """The tray menu's first line: "Last backup 5 minutes ago · all sources within RPO"."""
    if running:
        return "Backing up now…"
    if status is None:
        return "Reading the status…"
    last = status.last_backup
    if last is None:
        first = "No backup yet"
    elif last.get("status") in ("failed", "interrupted"):
        first = f"Last backup failed {humanize.ago(last.get('time'), now)}"
    else:
        first = f"Last backup {humanize.ago(last.get('time'), now)}"
    late = [s.name for s in status.sources if s.rpo_state in ("overdue", "never")]
    if not status.sources:
        second = "no source yet"
    elif late:
        second = f"{humanize.plural(len(late), 'source')} outside the RPO: {', '.join(late)}"
    else:
        second = "all sources within RPO"
    return f"{first} · {second}"


class Actions(QObject):
    """The app-wide actions, shared by the tray menu and the reminders banner."""

    quit_requested = Signal()

    def __init__(self, controller: Controller, window: MainWindow, reminders: ReminderService) -> None:
        super().__init__(window)
        self.controller = controller
        self.window = window
        self.reminders = reminders
        self.backup = self._action("Back up now", "actionBackupNow", controller.start_backup)
        self.open = self._action("Open drgui", "actionOpen", window.bring_to_front)
        self.sync_env = self._action("Sync .env to drive", "actionSyncEnv", self.sync_env_to_drive)
        self.restore_test = self._action("Start restore test", "actionRestoreTest", self.start_restore_test)
        self.snooze_hour = self._action("For 1 hour", "actionSnoozeHour", reminders.snooze_hour)
        self.snooze_tomorrow = self._action(
            "Until tomorrow", "actionSnoozeTomorrow", reminders.snooze_until_tomorrow
        )
        self.quit = self._action("Quit", "actionQuit", self.quit_requested)
        controller.backup_started.connect(self._on_backup_running)
        controller.backup_done.connect(self._on_backup_idle)

    def _action(self, text: str, name: str, slot) -> QAction:
        action = QAction(text, self)
        action.setObjectName(name)
        action.triggered.connect(slot)
        return action

    @Slot()
    def _on_backup_running(self) -> None:
        self.backup.setEnabled(False)
        self.backup.setText("Backing up…")

    @Slot()
    def _on_backup_idle(self) -> None:
        self.backup.setEnabled(True)
        self.backup.setText("Back up now")

    @Slot()
    def sync_env_to_drive(self) -> None:
        self.window.bring_to_front()
        self.window.show_page("destinations")
        page = self.window.pages["destinations"]
        if hasattr(page, "sync_env"):
            page.sync_env()

    @Slot()
    def open_checklist(self) -> None:
        """The reminder's "Open checklist": the weekly review, whatever checklist was shown before."""
        self.window.bring_to_front()
        self.window.show_page("checklists")
        page = self.window.pages["checklists"]
        if hasattr(page, "select"):
            page.select("weekly-review")

    @Slot()
    def start_restore_test(self) -> None:
        self.window.bring_to_front()
        page = self.window.pages["drills"]
        self.window.show_page("drills")
        if hasattr(page, "start_restore_test"):
            page.start_restore_test()


class Tray(QObject):
    """The system-tray icon; `available` is False on desktops without a tray (then use the banner)."""

    def __init__(self, actions: Actions, reminders: ReminderService, controller: Controller) -> None:
        super().__init__(actions)
        self.setObjectName("tray")
        self.actions = actions
        self.reminders = reminders
        self.icon = QSystemTrayIcon(self)
        self.icon.setObjectName("trayIcon")
        self.menu = QMenu()
        self.menu.setObjectName("trayMenu")
        # the first line says how things stand; it follows every status and backup start (never stale)
        self.status_action = QAction(status_line(controller.status), self)
        self.status_action.setObjectName("trayStatusLine")
        self.status_action.setEnabled(False)
        self.menu.addAction(self.status_action)
        self.menu.addSeparator()
        self.menu.addAction(actions.backup)
        self.menu.addAction(actions.open)
        self.menu.addSeparator()
        self.menu.addAction(actions.sync_env)
        self.menu.addAction(actions.restore_test)
        snooze = self.menu.addMenu("Snooze reminders")
        snooze.setObjectName("traySnoozeMenu")
        snooze.addAction(actions.snooze_hour)
        snooze.addAction(actions.snooze_tomorrow)
        self.menu.addSeparator()
        self.menu.addAction(actions.quit)
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._on_activated)
        self.icon.messageClicked.connect(self._on_message_clicked)
        self.last_reminder: Reminder | None = None
        self.state = ""
        self.set_state("due")
        controller.state_changed.connect(self.set_state)
        self.controller = controller
        controller.status_changed.connect(self._on_status)  # e.g. a failed audit log check, same state
        controller.status_changed.connect(self.update_status_line)
        controller.backup_started.connect(self.update_status_line)
        self.notifier = DesktopNotifier(parent=self)
        self.notifier.failed.connect(self.show_balloon)
        self.notifier.action_invoked.connect(self.on_notification_action)
        reminders.reminder_due.connect(self.show_reminder)
        reminders.snoozed.connect(self._on_snoozed)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.notifier.stop)

    @staticmethod
    def available() -> bool:
        return QSystemTrayIcon.isSystemTrayAvailable()

    def show(self) -> None:
        self.icon.show()

    @Slot(str)
    def set_state(self, state: str) -> None:
        self.state = state
        self.icon.setIcon(tray_icon(state))
        tip = STATE_TIPS.get(state, "drgui")
        status = self.actions.controller.status
        if state == "partial" and status is not None:
            missing = [f"{s.name} ({s.last_error})" for s in status.sources if s.last_error]
            tip += ": not backed up: " + "; ".join(missing)
        if status is not None:  # a failed audit log check (ops/alerts.py) is said here too
            tip += "".join(f"\n{r}" for r in status.reasons if r.startswith(AUDIT_ALERT))
        self.icon.setToolTip(tip)

    @Slot(object)
    def _on_status(self, _status) -> None:
        self.set_state(self.state)

    @Slot(object)
    def show_reminder(self, reminder: Reminder) -> None:
        """A desktop notification with buttons; `show_balloon` follows if there is no server."""
        self.last_reminder = reminder
        self.notifier.notify(reminder)

    @Slot()
    @Slot(object)
    def update_status_line(self, _status=None) -> None:
        self.status_action.setText(status_line(self.controller.status, self.controller.backup_running))

    @Slot(object)
    def show_balloon(self, reminder: Reminder) -> None:
        self.last_reminder = reminder
        if self.icon.isVisible():
            self.icon.showMessage(reminder.title, reminder.text, tray_icon("due"), 30_000)

    @Slot(str, str)
    def on_notification_action(self, kind: str, key: str) -> None:
        """A button of a reminder's notification: the same slots as the tray menu and the banner."""
        if key == SNOOZE_HOUR:
            self.reminders.snooze_hour()
        elif key == SNOOZE_TOMORROW:
            self.reminders.snooze_until_tomorrow()
        elif key == START_DRILL or (key == DEFAULT and kind == DRILL):
            self.actions.start_restore_test()
        elif key in (OPEN_CHECKLIST, DEFAULT):
            self.actions.open_checklist()

    @Slot(object)
    def _on_snoozed(self, _until) -> None:
        self.notifier.close_all()

    @Slot(QSystemTrayIcon.ActivationReason)
    def _on_activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (QSystemTrayIcon.ActivationReason.Trigger, QSystemTrayIcon.ActivationReason.DoubleClick):
            self.actions.window.bring_to_front()

    @Slot()
    def _on_message_clicked(self) -> None:
        if self.last_reminder and self.last_reminder.kind == DRILL:
            self.actions.start_restore_test()
        else:
            self.actions.open_checklist()


class ReminderBanner(QObject):
    """Without a tray: show each reminder in the main window's banner and raise the window."""

    def __init__(self, actions: Actions, reminders: ReminderService) -> None:
        super().__init__(actions)
        self.actions = actions
        self.reminders = reminders
        self.current: Reminder | None = None
        reminders.reminder_due.connect(self.show_reminder)
        reminders.snoozed.connect(self._on_snoozed)

    @Slot(object)
    def show_reminder(self, reminder: Reminder) -> None:
        self.current = reminder
        window = self.actions.window
        banner = window.banner
        lines = "<br>".join(f"• {line}" for line in reminder.lines)
        banner.show_message("warning", reminder.title, lines)
        if reminder.kind == DRILL:
            start = banner.add_button("Start restore test", "reminderStartDrill")
            start.clicked.connect(self.actions.start_restore_test)
        else:
            review = banner.add_button("Open checklist", "reminderOpenChecklist")
            review.clicked.connect(self.open_checklist)
        hour = banner.add_button("Snooze 1 h", "reminderSnoozeHour")
        hour.clicked.connect(self.reminders.snooze_hour)
        tomorrow = banner.add_button("Tomorrow", "reminderSnoozeTomorrow")
        tomorrow.clicked.connect(self.reminders.snooze_until_tomorrow)
        window.bring_to_front()

    @Slot()
    def open_checklist(self) -> None:
        self.actions.window.show_page("checklists")

    @Slot(object)
    def _on_snoozed(self, _until) -> None:
        if self.current is not None:
            self.actions.window.banner.hide()
            self.current = None
