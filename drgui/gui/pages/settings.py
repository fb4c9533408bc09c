"""Settings: targets (RPO/RTO), schedule with presets, retention per destination, keyring status."""

from __future__ import annotations

from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
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
from drgui.core.errors import DrguiError
from drgui.core.plan.config import format_duration, parse_interval
from drgui.core.plan.secrets import backend_status
from drgui.core.plan.workspace import Workspace
from drgui.core.timing import schedule
from drgui.gui import humanize
from drgui.gui.controller import Controller
from drgui.gui.drive_watch import DRIVE_SYNC_SETTING, drive_sync_mode
from drgui.gui.widgets import Card, MessageLine, muted, scrolling_page, title

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
        self.save_button = QPushButton("Save settings")
        self.save_button.setObjectName("saveSettingsButton")
        self.save_button.clicked.connect(self.save)
        save_row.addWidget(self.save_button)
        self.message = MessageLine(controller, "settingsMessage")
        save_row.addWidget(self.message, 1)
        save_row.addStretch(0)
        layout.addLayout(save_row)

        self.retention = Card("Retention (per destination)")
        self.retention_label = QLabel()
        self.retention_label.setWordWrap(True)
        self.retention.body.addWidget(self.retention_label)
        layout.addWidget(self.retention)

        keyring_card = Card("Keyring")
        self.keyring_label = QLabel()
        self.keyring_label.setObjectName("keyringStatus")
        self.keyring_label.setWordWrap(True)
        keyring_card.body.addWidget(self.keyring_label)
        layout.addWidget(keyring_card)
        # The everyday and the prune key of each S3 destination, and its Object Lock (docs/offsite.md).
        offsite_card = Card("Offsite keys (S3)")
        self.offsite_label = QLabel()
        self.offsite_label.setObjectName("offsiteKeys")
        self.offsite_label.setWordWrap(True)
        offsite_card.body.addWidget(self.offsite_label)
        layout.addWidget(offsite_card)
        layout.addStretch(1)
        self.load()

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
