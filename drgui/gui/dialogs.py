"""Add-source and add-destination dialogs: the same validation as the CLI (drgui.core.plan.setup).

Secrets typed into password fields go straight to the keyring through `setup.add_*`; config.toml never
sees them. Adding tests the connection on the worker, so the window stays responsive.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from drgui.core.errors import DrguiError, UsageError
from drgui.core.plan import setup
from drgui.core.plan.config import DEST_KINDS, SOURCE_KINDS
from drgui.core.plan.workspace import Workspace
from drgui.core.progress import CancelToken, ProgressCallback
from drgui.gui.widgets import MessageLine
from drgui.gui.worker import Worker

KIND_LABELS = {
    "postgres": "PostgreSQL database",
    "folder": "Folder (uploads, media)",
    "env": ".env file",
    "s3": "S3 bucket",
    "git": "Git repository",
    "local": "Folder on this computer or a NAS",
    "drive": "Removable drive (USB stick, external disk)",
}

# An S3 bucket/prefix takes the same fields as a source and as a destination.
S3_FIELDS: list[tuple[str, str, str]] = [
    ("bucket", "Bucket", "text"),
    ("prefix", "Prefix", "text"),
    ("endpoint_url", "Endpoint URL", "text"),
    ("region", "Region", "text"),
    ("access_key_id", "Access key ID", "password"),
    ("secret_access_key", "Secret access key", "password"),
]
SOURCE_FIELDS: dict[str, list[tuple[str, str, str]]] = {
    # kind: [(key, label, mode)] mode: text | password | dir | file | list
    "postgres": [("dsn", "Connection (DSN)", "text"), ("password", "Password", "password")],
    "folder": [("path", "Folder", "dir"), ("exclude", "Exclude (globs, comma-separated)", "list")],
    "env": [("path", ".env file", "file"), ("require", "Required keys (comma-separated)", "list")],
    "s3": S3_FIELDS,
    "git": [("path", "Repository", "dir")],
}
DEST_FIELDS: dict[str, list[tuple[str, str, str]]] = {
    "local": [("path", "Folder", "dir")],
    "s3": S3_FIELDS,
    "drive": [("path", "Mount point", "dir"), ("uuid", "or filesystem UUID", "text")],
}
PLACEHOLDERS = {
    "dsn": "postgresql://app@db.example.com:5432/app",
    "endpoint_url": "https://s3.eu-central-1.amazonaws.com (empty for AWS)",
    "require": "DATABASE_URL, STRIPE_SECRET_KEY",
}
SECRET_KEYS = ("password", "access_key_id", "secret_access_key")


def split_form(kind: str, values: dict[str, str], *, source: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """Form values -> (settings, secrets), as the CLI builds them."""
    settings: dict[str, Any] = {}
    secrets: dict[str, str] = {}
    fields = (SOURCE_FIELDS if source else DEST_FIELDS)[kind]
    for key, _label, mode in fields:
        value = values.get(key, "").strip() if mode != "password" else values.get(key, "")
        if not value:
            continue
        if key in SECRET_KEYS:
            secrets[key] = value
        elif mode == "list":
            settings[key] = [v.strip() for v in value.split(",") if v.strip()]
        else:
            settings[key] = value
    if source and kind == "postgres":
        from drgui.core.engine.sources.postgres import split_dsn

        if "dsn" not in settings:
            raise UsageError(
                "A PostgreSQL source needs a connection (DSN).", hint=f"e.g. {PLACEHOLDERS['dsn']}"
            )
        parsed, password = split_dsn(settings.pop("dsn"))
        settings.update(parsed)
        if password and "password" not in secrets:
            secrets["password"] = password
    if kind in ("folder", "env", "git", "local") and "path" not in settings:
        raise UsageError("Choose a path.", hint="Click Browse… or type the full path.")
    if kind == "s3" and "bucket" not in settings:
        raise UsageError("An S3 location needs a bucket name.")
    return settings, secrets


class AddWork:
    """The worker side of "Add": validate, store secrets, test, save (setup.add_source/add_destination)."""

    def __init__(
        self, ws: Workspace, source: bool, name: str, kind: str, settings: dict, secrets: dict
    ) -> None:
        self.ws, self.source, self.name, self.kind = ws, source, name, kind
        self.settings, self.secrets = settings, secrets

    def __call__(self, progress: ProgressCallback, cancel: CancelToken):
        add = setup.add_source if self.source else setup.add_destination
        return add(self.ws, self.name, self.kind, self.settings, secrets=self.secrets)


class FieldForm(QWidget):
    def __init__(self, fields: list[tuple[str, str, str]]) -> None:
        super().__init__()
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        self.edits: dict[str, QLineEdit] = {}
        for key, label, mode in fields:
            edit = QLineEdit()
            edit.setObjectName(f"field_{key}")
            edit.setPlaceholderText(PLACEHOLDERS.get(key, ""))
            if mode == "password":
                edit.setEchoMode(QLineEdit.EchoMode.Password)
                edit.setPlaceholderText("stored in the system keyring, never in config.toml")
            self.edits[key] = edit
            if mode in ("dir", "file"):
                row = QHBoxLayout()
                row.addWidget(edit, 1)
                browse = QPushButton("Browse…")
                browse.clicked.connect(partial(self.browse, key, mode))
                row.addWidget(browse)
                form.addRow(label, row)
            else:
                form.addRow(label, edit)

    @Slot()
    def browse(self, key: str, mode: str) -> None:
        if mode == "dir":
            chosen = QFileDialog.getExistingDirectory(self, "Choose a folder")
        else:
            chosen, _ = QFileDialog.getOpenFileName(self, "Choose a file", "", "All files (*)")
        if chosen:
            self.edits[key].setText(chosen)

    def values(self) -> dict[str, str]:
        return {key: edit.text() for key, edit in self.edits.items()}


class AddDialog(QDialog):
    """Name, kind, kind-specific fields; "Test and add" runs on the worker and shows errors inline."""

    def __init__(self, ws: Workspace, worker: Worker, *, source: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws, self.worker, self.source = ws, worker, source
        what = "source" if source else "destination"
        self.setWindowTitle(f"Add a {what}")
        self.setObjectName("addSourceDialog" if source else "addDestinationDialog")
        self.setMinimumWidth(560)
        layout = QVBoxLayout(self)
        intro = QLabel(
            "What should be backed up?"
            if source
            else "Where should snapshots go? Use at least two places, one off-site."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        top = QFormLayout()
        self.name_edit = QLineEdit()
        self.name_edit.setObjectName("nameEdit")
        self.name_edit.setPlaceholderText("db, uploads, offsite…")
        top.addRow("Name", self.name_edit)
        self.kind_combo = QComboBox()
        self.kind_combo.setObjectName("kindCombo")
        kinds = SOURCE_KINDS if source else DEST_KINDS
        fields = SOURCE_FIELDS if source else DEST_FIELDS
        self.forms = QStackedWidget()
        self.form_by_kind: dict[str, FieldForm] = {}
        for kind in kinds:
            self.kind_combo.addItem(KIND_LABELS.get(kind, kind), kind)
            form = FieldForm(fields[kind])
            self.form_by_kind[kind] = form
            self.forms.addWidget(form)
        self.kind_combo.currentIndexChanged.connect(self.forms.setCurrentIndex)
        top.addRow("Kind", self.kind_combo)
        layout.addLayout(top)
        layout.addWidget(self.forms)
        self.error = MessageLine(object_name="dialogError")
        # an error is about the form as it was submitted: another Kind is another form
        self.error.clear_on(self.kind_combo.currentIndexChanged)
        layout.addWidget(self.error)
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setMaximumHeight(8)
        self.busy.setTextVisible(False)
        self.busy.hide()
        layout.addWidget(self.busy)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.add_button = self.buttons.addButton("Test and add", QDialogButtonBox.ButtonRole.AcceptRole)
        self.add_button.setObjectName("testAndAddButton")
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.added = None

    def set_kind(self, kind: str) -> None:
        self.kind_combo.setCurrentIndex(self.kind_combo.findData(kind))

    def form(self) -> FieldForm:
        return self.form_by_kind[self.kind_combo.currentData()]

    @Slot()
    def submit(self) -> None:
        kind = self.kind_combo.currentData()
        try:
            settings, secrets = split_form(kind, self.form().values(), source=self.source)
        except DrguiError as error:
            self.show_error(error)
            return
        self.error.clear()
        self.busy.show()
        self.add_button.setEnabled(False)
        work = AddWork(self.ws, self.source, self.name_edit.text().strip(), kind, settings, secrets)
        job = self.worker.job("Add", work)
        job.finished.connect(self.on_added)
        job.failed.connect(self.on_failed)
        self.worker.start(job)

    @Slot(object)
    def on_added(self, config) -> None:
        self.added = config
        self.busy.hide()
        self.accept()

    @Slot(object)
    def on_failed(self, error: DrguiError) -> None:
        self.busy.hide()
        self.add_button.setEnabled(True)
        self.show_error(error)

    def show_error(self, error: DrguiError) -> None:
        self.error.say_error(error)
