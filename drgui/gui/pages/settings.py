"""Settings: targets (RPO/RTO), schedule with presets, retention per destination, keyring status."""

from __future__ import annotations

from urllib.parse import urlsplit

from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from drgui.core import fmt
from drgui.core.errors import DrguiError, EnvironmentNotReady, UsageError
from drgui.core.ops import notify
from drgui.core.plan.config import format_duration, parse_interval
from drgui.core.plan.secrets import backend_status, remember
from drgui.core.plan.workspace import Workspace
from drgui.core.progress import CancelToken, ProgressCallback
from drgui.core.timing import schedule
from drgui.gui import humanize
from drgui.gui.controller import Controller
from drgui.gui.drive_watch import DRIVE_SYNC_SETTING, drive_sync_mode
from drgui.gui.widgets import Card, MessageLine, action_button, label_card, muted, scrolling_page, title

SCHEDULE_RULES = {
    "backup": [
        schedule.PRESETS["backup"],
        "FREQ=HOURLY;INTERVAL=6;BYMINUTE=0;BYSECOND=0",
        "FREQ=HOURLY;BYMINUTE=0;BYSECOND=0",
    ],
    "weekly_review": [
        schedule.PRESETS["weekly_review"],
        "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0;BYSECOND=0",
        "FREQ=WEEKLY;BYDAY=FR;BYHOUR=17;BYMINUTE=0;BYSECOND=0",
    ],
    "drill": [
        schedule.PRESETS["drill"],
        "FREQ=MONTHLY;BYDAY=1MO;BYHOUR=10;BYMINUTE=0;BYSECOND=0",
    ],
}


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


# The labels are the rules in words, as the dashboard and the tray describe them (one describer)
SCHEDULE_CHOICES = {
    key: [(_sentence(fmt.describe_rule(rule)), rule) for rule in rules]
    for key, rules in SCHEDULE_RULES.items()
}
SCHEDULE_LABELS = {"backup": "Backups", "weekly_review": "Weekly review", "drill": "Restore test"}
CUSTOM = "Custom rule (RFC 5545)…"
DRIVE_SYNC_CHOICES = [
    ("Ask me first", "ask"),
    ("Sync automatically", "auto"),
    ("Do nothing", "off"),
]


WEBHOOK_JOB = "Webhook"
TEST_TEXT = "Test from drgui: notifications reach this channel."


class WebhookWork:
    """On the worker (keyring and network): store a new URL (`url`), or send a test to the stored one."""

    def __init__(self, ws: Workspace, url: str | None = None, clear: bool = False) -> None:
        self.ws = ws
        self.url = url
        self.clear = clear

    def __call__(self, progress: ProgressCallback, cancel: CancelToken) -> str:
        if self.clear:
            notify.clear_webhook(self.ws)
            return "cleared"
        if self.url is not None:
            notify.set_webhook(self.ws, self.url)
            return "set"
        url = notify.webhook_url(self.ws)
        if not url:
            raise UsageError("No webhook is set yet.", hint="Paste the incoming-webhook URL, then Save.")
        notify.post(url, f"[drgui · {self.ws.plan.name}] {TEST_TEXT}")
        return "tested"


def autostart_module():
    """core/platform/autostart, or None in a build without it."""
    try:
        from drgui.core.platform import autostart
    except ImportError:
        return None
    return autostart


def retention_text(policy: dict) -> str:
    if not policy:
        return "keep everything"
    return ", ".join(f"{count} {rule}" for rule, count in policy.items())


def offsite_text(ws: Workspace) -> str:
    """Per S3 destination: the everyday key, the prune key (here or not), Object Lock, and the answer."""
    from drgui.core.engine.destinations.s3 import S3Destination
    from drgui.core.ops.offsite import offsite_exposure

    answers = {a.name: a for a in offsite_exposure(ws)}
    lines = []
    for config in ws.plan.destinations:
        if config.kind != "s3":
            continue
        dest = S3Destination(config, ws.store)
        try:
            prune = (
                "stored on this machine"
                if dest.prune_key_stored()
                else "not on this machine (given to prune)"
            )
        except DrguiError:
            prune = "unknown (keyring not usable)"
        lock = f"{dest.lock_mode.lower()}, {dest.lock_days} days" if dest.lock_mode else "not used"
        answer = answers.get(config.name)
        lines.append(
            f"<b>{config.name}</b>: everyday key {config.settings.get('credentials', 'keyring')}; "
            f"prune key {prune}; Object Lock {lock}.<br>{answer.sentence if answer else ''}"
        )
    return "<br>".join(lines) or "No S3 destination."


def edited_duration(text: str, current: int) -> int:
    """The field shows format_duration ('1h 30m'); unchanged text keeps the value, new text is parsed."""
    text = text.strip()
    return current if text == format_duration(current) else parse_interval(text)


class SettingsPage(QWidget):
    def __init__(self, controller: Controller) -> None:
        super().__init__()
        self.controller = controller
        layout = scrolling_page(self)
        layout.addWidget(title("Settings"))

        targets = Card("Recovery targets")
        form = QFormLayout()
        self.rpo = QLineEdit()
        self.rpo.setObjectName("rpoEdit")
        self.rto = QLineEdit()
        self.rto.setObjectName("rtoEdit")
        form.addRow("RPO (most data you can afford to lose)", self.rpo)
        form.addRow("RTO (longest you can be down)", self.rto)
        targets.body.addLayout(form)
        layout.addWidget(targets)

        sched = Card("Schedule")
        sched_form = QFormLayout()
        self.combos: dict[str, QComboBox] = {}
        self.rules: dict[str, QLineEdit] = {}
        for key in ("backup", "weekly_review", "drill"):
            combo = QComboBox()
            combo.setObjectName(f"schedule_{key}")
            for label, rule in SCHEDULE_CHOICES[key]:
                combo.addItem(label, rule)
            combo.addItem(CUSTOM, "")
            rule_edit = QLineEdit()
            rule_edit.setObjectName(f"rule_{key}")
            combo.currentIndexChanged.connect(self.on_preset)
            row = QVBoxLayout()
            row.addWidget(combo)
            row.addWidget(rule_edit)
            self.combos[key] = combo
            self.rules[key] = rule_edit
            sched_form.addRow(SCHEDULE_LABELS[key], row)
        sched.body.addLayout(sched_form)
        sched.body.addWidget(
            muted(
                "A run missed while the computer slept or was off happens once, a few minutes after it wakes."
            )
        )
        layout.addWidget(sched)

        drive = Card("Drive")
        drive_form = QFormLayout()
        self.drive_sync = QComboBox()
        self.drive_sync.setObjectName("driveSyncCombo")
        for label, mode in DRIVE_SYNC_CHOICES:
            self.drive_sync.addItem(label, mode)
        drive_form.addRow("When the registered drive is plugged in", self.drive_sync)
        drive.body.addLayout(drive_form)
        drive.body.addWidget(
            muted("Copies the .env files to it (age-encrypted); shows key names, never values.")
        )
        layout.addWidget(drive)

        save_row = QHBoxLayout()
        self.save_button = action_button("Save settings", "saveSettingsButton", self.save, save_row)
        self.message = MessageLine(controller, "settingsMessage")
        save_row.addWidget(self.message, 1)
        save_row.addStretch(0)
        layout.addLayout(save_row)

        self.build_notifications(layout)

        self.retention, self.retention_label = label_card("Retention (per destination)")
        layout.addWidget(self.retention)

        keyring_card, self.keyring_label = label_card("Keyring", "keyringStatus")
        layout.addWidget(keyring_card)
        # The everyday and the prune key of each S3 destination, and its Object Lock (docs/offsite.md).
        offsite_card, self.offsite_label = label_card("Offsite keys (S3)", "offsiteKeys")
        layout.addWidget(offsite_card)
        layout.addStretch(1)
        self.load()

    def build_notifications(self, layout: QVBoxLayout) -> None:
        card = Card("Notifications")
        self.webhook_running = False
        form = QFormLayout()
        self.webhook_state = QLabel()
        self.webhook_state.setObjectName("webhookState")
        self.webhook_state.setWordWrap(True)
        form.addRow("Webhook", self.webhook_state)
        self.webhook_edit = QLineEdit()
        self.webhook_edit.setObjectName("webhookEdit")
        self.webhook_edit.setEchoMode(QLineEdit.EchoMode.Password)  # the URL is a secret
        self.webhook_edit.setPlaceholderText("https://hooks.slack.com/… (kept in the keyring)")
        form.addRow("New webhook URL", self.webhook_edit)
        card.body.addLayout(form)
        buttons = QHBoxLayout()
        self.webhook_save = action_button("Save webhook", "webhookSaveButton", self.save_webhook, buttons)
        self.webhook_test = action_button("Send a test", "webhookTestButton", self.test_webhook, buttons)
        self.webhook_clear = action_button("Remove", "webhookClearButton", self.clear_webhook, buttons)
        buttons.addStretch(1)
        card.body.addLayout(buttons)
        reminder_row = QHBoxLayout()
        self.preview_button = QPushButton("Preview reminder")
        self.preview_button.setObjectName("previewReminderButton")
        self.preview_button.setToolTip(
            "Show the Sunday weekly-review notification now, as it would read today."
        )
        self.preview_button.clicked.connect(self.controller.reminder_preview_requested)
        reminder_row.addWidget(self.preview_button)
        reminder_row.addStretch(1)
        card.body.addLayout(reminder_row)
        self.autostart_check = QCheckBox("Start drgui at login (tray icon, scheduled backups and reminders)")
        self.autostart_check.setObjectName("autostartCheck")
        self.autostart_check.toggled.connect(self.set_autostart)
        card.body.addWidget(self.autostart_check)
        self.notify_message = MessageLine(self.controller, "notifyMessage")
        card.body.addWidget(self.notify_message)
        layout.addWidget(card)

    def load_notifications(self) -> None:
        try:
            url = notify.webhook_url(self.controller.ws)
        except EnvironmentNotReady as error:
            url = None
            self.webhook_state.setText(error.message)
        else:
            self.webhook_state.setText(
                f"Set: posts to {urlsplit(url).hostname}."
                if url
                else "Not set: failures are shown here only."
            )
        self.webhook_test.setEnabled(bool(url))
        self.webhook_clear.setEnabled(bool(url))
        autostart = autostart_module()
        self.autostart_check.blockSignals(True)
        self.autostart_check.setEnabled(autostart is not None)
        self.autostart_check.setChecked(bool(autostart and autostart.autostart_installed()))
        self.autostart_check.blockSignals(False)

    def run_webhook(self, work: WebhookWork, busy: str) -> None:
        if self.webhook_running:  # one at a time; free again as soon as its outcome is shown
            return
        self.webhook_running = True
        self.notify_message.say(busy)
        job = self.controller.worker.job(WEBHOOK_JOB, work)
        job.finished.connect(self.on_webhook_done)
        job.failed.connect(self.on_webhook_failed)
        self.controller.worker.start(job)

    @Slot()
    def save_webhook(self) -> None:
        url = self.webhook_edit.text().strip()
        self.webhook_edit.clear()  # nothing typed stays in the form
        try:
            url = notify.check_url(url)
        except DrguiError as error:
            self.notify_message.say_error(error)
            return
        remember(url)
        self.run_webhook(WebhookWork(self.controller.ws, url), "Storing the webhook in the keyring…")

    @Slot()
    def test_webhook(self) -> None:
        self.run_webhook(WebhookWork(self.controller.ws), "Sending a test notification…")

    @Slot()
    def clear_webhook(self) -> None:
        self.run_webhook(WebhookWork(self.controller.ws, clear=True), "Removing the webhook…")

    @Slot(object)
    def on_webhook_done(self, outcome: str) -> None:
        self.webhook_running = False
        self.load_notifications()
        self.notify_message.say(
            {
                "set": "✓ Webhook saved in the keyring. Send a test to check it.",
                "tested": "✓ Test sent: check the channel.",
                "cleared": "Webhook removed.",
            }[outcome],
            "done",
        )

    @Slot(object)
    def on_webhook_failed(self, error: DrguiError) -> None:
        self.webhook_running = False
        self.load_notifications()
        self.notify_message.say_error(error)

    @Slot(bool)
    def set_autostart(self, on: bool) -> None:
        autostart = autostart_module()
        if autostart is None:
            return
        try:
            if on:
                home = self.controller.ws.home.path
                written = autostart.install_autostart(home=home)
                self.notify_message.say(
                    f"✓ drgui will start at login ({humanize.plural(len(written), 'file')} written).", "done"
                )
            else:
                autostart.remove_autostart()
                self.notify_message.say("drgui will no longer start at login.", "done")
        except (DrguiError, OSError) as error:
            if isinstance(error, DrguiError):
                self.notify_message.say_error(error)
            else:
                self.notify_message.say(f"Could not change the login entries: {error.strerror}.", "error")
        self.load_notifications()

    def load(self) -> None:
        plan = self.controller.ws.plan
        self.rpo.setText(format_duration(plan.rpo_seconds))
        self.rto.setText(format_duration(plan.rto_seconds))
        for key, combo in self.combos.items():
            rule = plan.schedule.get(key, schedule.PRESETS[key])
            index = combo.findData(rule)
            combo.setCurrentIndex(index if index >= 0 else combo.count() - 1)
            self.rules[key].setText(rule)
            self.rules[key].setVisible(index < 0)
        self.drive_sync.setCurrentIndex(self.drive_sync.findData(drive_sync_mode(plan)))
        self.retention_label.setText(
            "<br>".join(
                f"<b>{d.name}</b> ({d.kind}): {retention_text(d.retention)}" for d in plan.destinations
            )
            or "No destination yet."
        )
        self.offsite_label.setText(offsite_text(self.controller.ws))
        self.load_notifications()
        status = backend_status()
        if status.usable and not status.locked:
            self.keyring_label.setText(f"✓ Secrets are stored in {status.name}.")
        else:
            self.keyring_label.setStyleSheet("color: #cf222e;")
            self.keyring_label.setText(status.problem or "The keyring is not usable.")

    @Slot()
    def on_preset(self) -> None:
        for key, combo in self.combos.items():
            custom = combo.currentData() == ""
            self.rules[key].setVisible(custom)
            if not custom:
                self.rules[key].setText(combo.currentData())

    @Slot()
    def save(self) -> bool:
        ws = self.controller.ws
        try:
            rpo = edited_duration(self.rpo.text(), ws.plan.rpo_seconds)
            rto = edited_duration(self.rto.text(), ws.plan.rto_seconds)
            rules = {key: schedule.validate_rule(edit.text().strip()) for key, edit in self.rules.items()}
        except DrguiError as error:
            self.message.say_error(error)
            return False
        ws.plan.rpo_seconds = rpo
        ws.plan.rto_seconds = rto
        ws.plan.schedule.update(rules)
        ws.plan.reminders[DRIVE_SYNC_SETTING] = self.drive_sync.currentData()
        ws.save()
        ws.history.append_event("settings.schedule", {"schedule": rules})
        self.message.say(
            f"Saved. RPO {humanize.duration(ws.plan.rpo_seconds)}, RTO {humanize.duration(ws.plan.rto_seconds)}.",
            "done",
        )
        self.controller.refresh()
        return True
