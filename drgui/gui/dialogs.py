"""Add and Edit dialogs for sources and destinations, generated from the kinds' declarations.

Each kind's form is built from its `Setting`s (drgui.core.engine.kinds); what is typed goes to
`setup.add` / `setup.edit` on the worker, the same code path as `drgui source|dest add|edit`, so the
app has no copy of the rules (a drive gets the encryption check; a folder under a missing parent the
same message). Secrets typed into password fields go straight to the keyring; an edit form never reads
one back: it shows "unchanged" and replaces a secret only when a new one is typed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import partial
from typing import Any

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from drgui.core.engine.kinds import Kind, Role
from drgui.core.errors import DrguiError
from drgui.core.plan import setup
from drgui.core.plan.config import DestConfig, SourceConfig
from drgui.core.plan.workspace import Workspace
from drgui.core.progress import CancelToken, ProgressCallback
from drgui.gui.widgets import MessageLine
from drgui.gui.worker import Worker

SECRET_NEW = "stored in the system keyring, never in config.toml"
SECRET_UNCHANGED = "unchanged (type a new one to replace it)"


def role_of(source: bool) -> Role:
    return "source" if source else "destination"


class _Fresh[V](Mapping[str, V]):
    """A mapping computed afresh by `_all` on every use (from the kinds' registry, which may grow)."""

    def _all(self) -> dict[str, V]:
        raise NotImplementedError

    def __getitem__(self, name: str) -> V:
        return self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


class _Kinds(_Fresh[Kind]):
    """The kinds of one role by name, read from the registry each time (a kind registered later shows)."""

    def __init__(self, role: Role) -> None:
        self.role: Role = role

    def _all(self) -> dict[str, Kind]:
        return {kind.name: kind for kind in setup.kinds_of(self.role)}


SOURCE_FIELDS: Mapping[str, Kind] = _Kinds("source")
DEST_FIELDS: Mapping[str, Kind] = _Kinds("destination")


class _Labels(_Fresh[str]):
    """kind name -> the label the app shows (a source kind's when a source and a destination share a name)."""

    ROLES: tuple[Role, ...] = ("destination", "source")

    def _all(self) -> dict[str, str]:
        return {k.name: k.label for role in self.ROLES for k in setup.kinds_of(role)}


KIND_LABELS: Mapping[str, str] = _Labels()


def kind_label(source: bool, name: str) -> str:
    try:
        return setup.kind_of(role_of(source), name).label
    except DrguiError:
        return name


def split_form(
    kind: str, values: Mapping[str, Any], *, source: bool
) -> tuple[dict[str, Any], dict[str, str]]:
    """Form values -> (values of the kind's settings, secrets) for `setup.add` / `setup.edit`; the checks
    are the kind's (`Kind.build_settings`, on the worker), not the form's."""
    spec = (SOURCE_FIELDS if source else DEST_FIELDS)[kind]
    settings: dict[str, Any] = {}
    secrets: dict[str, str] = {}
    for setting in spec.settings:
        value = values.get(setting.name)
        if setting.secret:
            if value:
                secrets[setting.name] = str(value)
        elif value is not None:
            settings[setting.name] = value
    return settings, secrets


class AddWork:
    """The worker side of "Add": check, store secrets, test, save (setup.add: the CLI's code path)."""

    def __init__(
        self,
        ws: Workspace,
        source: bool,
        name: str,
        kind: str,
        values: dict[str, Any],
        secrets: dict[str, str],
    ) -> None:
        self.ws, self.source, self.name, self.kind = ws, source, name, kind
        self.values, self.secrets = values, secrets

    def __call__(self, progress: ProgressCallback, cancel: CancelToken) -> SourceConfig | DestConfig:
        return setup.add(
            self.ws, role_of(self.source), self.name, self.kind, self.values, secrets=self.secrets
        )


class EditWork:
    """The worker side of "Save": setup.edit, the path of `drgui source|dest edit`."""

    def __init__(
        self,
        ws: Workspace,
        source: bool,
        name: str,
        values: dict[str, Any],
        secrets: dict[str, str],
        retention: dict[str, Any] | None,
    ) -> None:
        self.ws, self.source, self.name = ws, source, name
        self.values, self.secrets, self.retention = values, secrets, retention

    def __call__(self, progress: ProgressCallback, cancel: CancelToken) -> SourceConfig | DestConfig:
        return setup.edit(
            self.ws,
            role_of(self.source),
            self.name,
            self.values,
            secrets=self.secrets,
            retention=self.retention,
        )


class FieldForm(QWidget):
    """One kind's settings as form rows: text, path (with Browse…), password (secrets) or a checkbox."""

    def __init__(self, kind: Kind, *, editing: bool = False) -> None:
        super().__init__()
        self.kind = kind
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        self.edits: dict[str, QLineEdit] = {}
        self.checks: dict[str, QCheckBox] = {}
        for setting in kind.settings:
            if setting.type is bool:
                check = QCheckBox(setting.title)
                check.setObjectName(f"field_{setting.name}")
                check.setToolTip(setting.help)
                self.checks[setting.name] = check
                form.addRow("", check)
                continue
            edit = QLineEdit()
            edit.setObjectName(f"field_{setting.name}")
            edit.setToolTip(setting.help)
            edit.setPlaceholderText(setting.placeholder or ("" if setting.required else "optional"))
            if setting.secret:
                edit.setEchoMode(QLineEdit.EchoMode.Password)
                edit.setPlaceholderText(SECRET_UNCHANGED if editing else SECRET_NEW)
            self.edits[setting.name] = edit
            if setting.widget in ("dir", "file"):
                row = QHBoxLayout()
                row.addWidget(edit, 1)
                browse = QPushButton("Browse…")
                browse.setAccessibleName(f"Browse for {setting.title}")
                browse.clicked.connect(partial(self.browse, setting.name, setting.widget))
                row.addWidget(browse)
                form.addRow(setting.title, row)
            else:
                form.addRow(setting.title, edit)

    @Slot()
    def browse(self, key: str, mode: str) -> None:
        if mode == "dir":
            chosen = QFileDialog.getExistingDirectory(self, "Choose a folder")
        else:
            chosen, _ = QFileDialog.getOpenFileName(self, "Choose a file", "", "All files (*)")
        if chosen:
            self.edits[key].setText(chosen)

    def set_values(self, values: Mapping[str, Any]) -> None:
        """Prefill from stored settings (never secrets: their fields stay empty, "unchanged")."""
        for name, edit in self.edits.items():
            value = values.get(name)
            if value is None or self.kind.setting(name).secret:
                continue
            edit.setText(", ".join(map(str, value)) if isinstance(value, list) else str(value))
        for name, check in self.checks.items():
            check.setChecked(bool(values.get(name)))

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {key: edit.text() for key, edit in self.edits.items()}
        out.update({key: check.isChecked() for key, check in self.checks.items()})
        return out


class RetentionForm(QGroupBox):
    """A destination's retention rules (`setup.RETENTION_RULES`, the options of `dest edit --keep-*`)."""

    def __init__(self, retention: Mapping[str, Any]) -> None:
        super().__init__("Keep (retention)")
        self.setObjectName("retentionForm")
        form = QFormLayout(self)
        self.counts: dict[str, QSpinBox] = {}
        self.texts: dict[str, QLineEdit] = {}
        for option, field_name, value_type, help_text in setup.RETENTION_RULES:
            if value_type is int:
                spin = QSpinBox()
                spin.setRange(-1, 100_000)
                spin.setSpecialValueText("all")  # -1: keep one per period without limit (restic's unlimited)
                spin.setValue(int(retention.get(field_name, 0) or 0))
                spin.setObjectName(f"keep_{option}")
                spin.setToolTip(help_text + "; 0 turns the rule off")
                self.counts[field_name] = spin
                form.addRow(f"Keep {option}", spin)
            else:
                edit = QLineEdit(str(retention.get(field_name, "") or ""))
                edit.setObjectName(f"keep_{option}")
                edit.setPlaceholderText("e.g. 30d, 1y2m (empty: off)")
                edit.setToolTip(help_text)
                self.texts[field_name] = edit
                form.addRow(f"Keep {option}", edit)

    def rules(self) -> dict[str, Any]:
        rules: dict[str, Any] = {name: spin.value() for name, spin in self.counts.items()}
        rules.update({name: edit.text().strip() for name, edit in self.texts.items()})
        return rules


class _KindDialog(QDialog):
    """What Add and Edit share: the form, the inline error, the busy bar and running the work."""

    def __init__(self, ws: Workspace, worker: Worker, source: bool, parent: QWidget | None) -> None:
        super().__init__(parent)
        self.ws, self.worker, self.source = ws, worker, source
        self.setMinimumWidth(560)
        self.layout_ = QVBoxLayout(self)
        self.error = MessageLine(object_name="dialogError")
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setMaximumHeight(8)
        self.busy.setTextVisible(False)
        self.busy.hide()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)
        self.added: SourceConfig | DestConfig | None = None

    def finish_layout(self) -> None:
        self.layout_.addWidget(self.error)
        self.layout_.addWidget(self.busy)
        self.layout_.addWidget(self.buttons)

    def run(self, name: str, work: AddWork | EditWork, button: QPushButton) -> None:
        self.error.clear()
        self.busy.show()
        button.setEnabled(False)
        self._button = button
        job = self.worker.job(name, work)
        job.finished.connect(self.on_done)
        job.failed.connect(self.on_failed)
        self.worker.start(job)

    @Slot()
    def submit(self) -> None:
        raise NotImplementedError

    @Slot(object)
    def on_done(self, config: SourceConfig | DestConfig) -> None:
        self.added = config
        self.busy.hide()
        self.accept()

    @Slot(object)
    def on_failed(self, error: DrguiError) -> None:
        self.busy.hide()
        self._button.setEnabled(True)
        self.show_error(error)

    def show_error(self, error: DrguiError) -> None:
        self.error.say_error(error)


class AddDialog(_KindDialog):
    """Name, kind, the kind's generated fields; "Test and add" runs on the worker and shows errors inline."""

    def __init__(self, ws: Workspace, worker: Worker, *, source: bool, parent: QWidget | None = None) -> None:
        super().__init__(ws, worker, source, parent)
        what = "source" if source else "destination"
        self.setWindowTitle(f"Add a {what}")
        self.setObjectName("addSourceDialog" if source else "addDestinationDialog")
        intro = QLabel(
            "What should be backed up?"
            if source
            else "Where should snapshots go? Use at least two places, one off-site."
        )
        intro.setWordWrap(True)
        self.layout_.addWidget(intro)
        top = QFormLayout()
        self.name_edit = QLineEdit()
        self.name_edit.setObjectName("nameEdit")
        self.name_edit.setPlaceholderText("db, uploads, offsite…")
        top.addRow("Name", self.name_edit)
        self.kind_combo = QComboBox()
        self.kind_combo.setObjectName("kindCombo")
        self.forms = QStackedWidget()
        self.form_by_kind: dict[str, FieldForm] = {}
        for kind in setup.kinds_of(role_of(source)):
            self.kind_combo.addItem(kind.label, kind.name)
            self.kind_combo.setItemData(
                self.kind_combo.count() - 1, kind.description, Qt.ItemDataRole.ToolTipRole
            )
            form = FieldForm(kind)
            self.form_by_kind[kind.name] = form
            self.forms.addWidget(form)
        self.kind_combo.currentIndexChanged.connect(self.forms.setCurrentIndex)
        top.addRow("Kind", self.kind_combo)
        self.layout_.addLayout(top)
        self.layout_.addWidget(self.forms)
        # an error is about the form as it was submitted: another Kind is another form
        self.error.clear_on(self.kind_combo.currentIndexChanged)
        self.add_button = self.buttons.addButton("Test and add", QDialogButtonBox.ButtonRole.AcceptRole)
        self.add_button.setObjectName("testAndAddButton")
        self.finish_layout()

    def set_kind(self, kind: str) -> None:
        self.kind_combo.setCurrentIndex(self.kind_combo.findData(kind))

    def form(self) -> FieldForm:
        return self.form_by_kind[self.kind_combo.currentData()]

    @Slot()
    def submit(self) -> None:
        kind = self.kind_combo.currentData()
        values, secrets = split_form(kind, self.form().values(), source=self.source)
        try:
            self.form().kind.check_required(values)
        except DrguiError as error:
            self.show_error(error)
            return
        work = AddWork(self.ws, self.source, self.name_edit.text().strip(), kind, values, secrets)
        self.run("Add", work, self.add_button)


class EditDialog(_KindDialog):
    """The same generated form, prefilled from the plan (secrets never read back), plus retention for a
    destination; "Test and save" runs setup.edit on the worker."""

    def __init__(
        self, ws: Workspace, worker: Worker, *, source: bool, name: str, parent: QWidget | None = None
    ) -> None:
        super().__init__(ws, worker, source, parent)
        config: SourceConfig | DestConfig = ws.plan.source(name) if source else ws.plan.destination(name)
        self.name = name
        self.kind = setup.kind_of(role_of(source), config.kind)
        self.setWindowTitle(f"Edit {'source' if source else 'destination'} '{name}'")
        self.setObjectName("editSourceDialog" if source else "editDestinationDialog")
        top = QFormLayout()
        top.addRow("Name", QLabel(name))
        top.addRow("Kind", QLabel(self.kind.label))
        self.layout_.addLayout(top)
        self.fields = FieldForm(self.kind, editing=True)
        self.fields.set_values(self.kind.values_of(config.settings))
        self.initial = self.fields.values()  # what the form showed: only what differs is changed
        self.layout_.addWidget(self.fields)
        self.retention: RetentionForm | None = None
        if isinstance(config, DestConfig):
            self.retention = RetentionForm(config.retention)
            self.layout_.addWidget(self.retention)
        self.save_button = self.buttons.addButton("Test and save", QDialogButtonBox.ButtonRole.AcceptRole)
        self.save_button.setObjectName("testAndSaveButton")
        self.finish_layout()

    @Slot()
    def submit(self) -> None:
        shown = self.fields.values()
        values, secrets = split_form(self.kind.name, shown, source=self.source)
        try:
            self.kind.check_required(values)
        except DrguiError as error:
            self.show_error(error)
            return
        values = {k: v for k, v in values.items() if v != self.initial.get(k)}
        retention = self.retention.rules() if self.retention is not None else None
        self.run(
            "Save", EditWork(self.ws, self.source, self.name, values, secrets, retention), self.save_button
        )
