"""First-run wizard: name and targets, recovery passphrase, first source, first destination, first backup.

Every step that touches the keyring, a database or a disk runs on the worker; the wizard waits for it
before moving on, so the window never freezes.
"""

from __future__ import annotations

from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from drgui.core.engine.crypto import passphrase_problem
from drgui.core.errors import DrguiError, UsageError
from drgui.core.ops.backup import run_backup
from drgui.core.plan.config import DEST_KINDS, SOURCE_KINDS, parse_interval
from drgui.core.plan.home import Home
from drgui.core.plan.setup import init_plan
from drgui.core.plan.workspace import Workspace
from drgui.core.progress import CancelToken, ProgressCallback
from drgui.gui import humanize
from drgui.gui.dialogs import DEST_FIELDS, KIND_LABELS, SOURCE_FIELDS, AddWork, FieldForm, split_form
from drgui.gui.icons import icon
from drgui.gui.kit import KitImportForm
from drgui.gui.widgets import action_button, error_html
from drgui.gui.worker import Worker


class InitWork:
    def __init__(self, home: Home, name: str, passphrase: str, rto: str, rpo: str) -> None:
        self.home, self.name, self.passphrase, self.rto, self.rpo = home, name, passphrase, rto, rpo

    def __call__(self, progress: ProgressCallback, cancel: CancelToken) -> Workspace:
        return init_plan(self.home, self.name, self.passphrase, rto=self.rto, rpo=self.rpo)


class FirstBackupWork:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def __call__(self, progress: ProgressCallback, cancel: CancelToken):
        return run_backup(self.ws, progress=progress, cancel=cancel)


class AsyncPage(QWizardPage):
    """A page whose Next runs a job first; Next is taken only when the job succeeded."""

    def __init__(self, wizard: FirstRunWizard) -> None:
        super().__init__()
        self.owner = wizard
        self.done_ok = False
        self.running = False
        self.advance = True  # Next started the job: go on when it succeeds
        self.layout_ = QVBoxLayout(self)
        self.error = QLabel()
        self.error.setObjectName("wizardError")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #cf222e;")
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setMaximumHeight(8)
        self.busy.setTextVisible(False)
        self.busy.hide()

    def finish_layout(self) -> None:
        self.layout_.addStretch(1)
        self.layout_.addWidget(self.error)
        self.layout_.addWidget(self.busy)

    def run(self, name: str, work) -> None:
        self.error.setText("")
        self.busy.show()
        self.running = True
        job = self.owner.worker.job(name, work)
        job.finished.connect(self.on_finished)
        job.failed.connect(self.on_failed)
        self.owner.worker.start(job)

    @Slot(object)
    def on_finished(self, result) -> None:
        self.busy.hide()
        self.running = False
        self.done_ok = True
        self.accept_result(result)
        if self.advance:
            self.owner.next()

    @Slot(object)
    def on_failed(self, error: DrguiError) -> None:
        self.busy.hide()
        self.running = False
        self.error.setText(error_html(error))

    def accept_result(self, result) -> None:
        return None

    def validatePage(self) -> bool:
        if self.done_ok or self.running:
            return self.done_ok
        try:
            self.start()
        except DrguiError as error:
            self.error.setText(error_html(error))
        return False

    def start(self) -> None:
        raise NotImplementedError


class PlanPage(AsyncPage):
    def __init__(self, wizard: FirstRunWizard) -> None:
        super().__init__(wizard)
        self.setTitle("Your recovery plan")
        self.setSubTitle("Name the product, and say how much data and time you can afford to lose.")
        kit_row = QHBoxLayout()
        kit_row.addWidget(QLabel("A new computer for a plan you already have?"))
        self.kit_button = action_button(
            "Restore from a recovery kit…", "wizardKitButton", wizard.restore_from_kit, kit_row
        )
        kit_row.addStretch(1)
        self.layout_.addLayout(kit_row)
        form = QFormLayout()
        self.name = QLineEdit("My SaaS")
        self.name.setObjectName("planName")
        self.rpo = QLineEdit("24h")
        self.rpo.setObjectName("planRpo")
        self.rto = QLineEdit("4h")
        self.rto.setObjectName("planRto")
        form.addRow("Product name", self.name)
        form.addRow("RPO: most data you could lose", self.rpo)
        form.addRow("RTO: longest you could be down", self.rto)
        self.passphrase = QLineEdit()
        self.passphrase.setObjectName("passphrase")
        self.passphrase.setEchoMode(QLineEdit.EchoMode.Password)
        self.confirm = QLineEdit()
        self.confirm.setObjectName("passphraseConfirm")
        self.confirm.setEchoMode(QLineEdit.EchoMode.Password)
        form.addRow("Recovery passphrase", self.passphrase)
        form.addRow("Type it again", self.confirm)
        self.layout_.addLayout(form)
        self.strength = QLabel()
        self.strength.setObjectName("passphraseStrength")
        self.strength.setWordWrap(True)
        self.layout_.addWidget(self.strength)
        explain = QLabel(
            "The passphrase protects every backup and cannot be reset: without it, and without this "
            "computer's keyring, nobody (you included) can decrypt them. Use 5 or more random words and "
            "write them down somewhere safe, away from this computer."
        )
        explain.setWordWrap(True)
        self.layout_.addWidget(explain)
        self.passphrase.textChanged.connect(self.update_strength)
        self.confirm.textChanged.connect(self.update_strength)
        self.update_strength()
        self.finish_layout()

    @Slot()
    @Slot(str)
    def update_strength(self, _text: str = "") -> None:
        """Strength of the passphrase, and whether the second entry matches it so far, as you type."""
        text = self.passphrase.text()
        confirm = self.confirm.text()
        if not text:
            self.strength.setStyleSheet("color: #57606a;")
            self.strength.setText("Strength: type a passphrase.")
            return
        problem = passphrase_problem(text)
        if problem:
            self.strength.setStyleSheet("color: #cf222e;")
            self.strength.setText(f"Too weak: {problem}")
        elif confirm and confirm != text:
            self.strength.setStyleSheet("color: #cf222e;")
            self.strength.setText(
                "Strong enough, but the second entry differs"
                + (" so far." if text.startswith(confirm) else ": type the same passphrase twice.")
            )
        elif confirm != text:
            self.strength.setStyleSheet("color: #9a6700;")
            self.strength.setText("Strong enough. Now type it again below.")
        else:
            self.strength.setStyleSheet("color: #2da44e; font-weight: 600;")
            self.strength.setText("Strong enough, and both entries match. Write it down now.")

    def start(self) -> None:
        parse_interval(self.rpo.text().strip())
        parse_interval(self.rto.text().strip())
        if self.passphrase.text() != self.confirm.text():
            raise UsageError("The two passphrases differ.", hint="Type the same passphrase twice.")
        problem = passphrase_problem(self.passphrase.text())
        if problem:
            raise UsageError(f"The recovery passphrase is too weak: {problem}")
        self.run(
            "Create plan",
            InitWork(
                self.owner.home,
                self.name.text().strip(),
                self.passphrase.text(),
                self.rto.text().strip(),
                self.rpo.text().strip(),
            ),
        )

    def accept_result(self, ws: Workspace) -> None:
        self.owner.ws = ws
        self.passphrase.clear()
        self.confirm.clear()


S3_ADVICE = (
    "Recommended for S3: a bucket created with Object Lock and a key that cannot delete, so that whoever "
    "steals this laptop cannot delete your offsite backups (drgui sets the retention; see docs/offsite.md)."
)


class AddPage(AsyncPage):
    def __init__(self, wizard: FirstRunWizard, source: bool) -> None:
        super().__init__(wizard)
        self.source = source
        self.added: list[str] = []
        self.setTitle("What to back up" if source else "Where to keep the backups")
        self.setSubTitle(
            "Add each thing your product cannot live without: the database, the uploads folder, the .env "
            "and the git repository. Add one, then the next; Next when they are all there."
            if source
            else "A folder, a NAS, a drive or S3. Add a second, off-site one later on the Destinations page."
        )
        form = QFormLayout()
        self.name = QLineEdit("db" if source else "local")
        self.name.setObjectName("firstSourceName" if source else "firstDestName")
        self.kind = QComboBox()
        kinds = SOURCE_KINDS if source else DEST_KINDS
        fields = SOURCE_FIELDS if source else DEST_FIELDS
        self.forms = QStackedWidget()
        self.form_by_kind: dict[str, FieldForm] = {}
        for kind in kinds:
            self.kind.addItem(KIND_LABELS.get(kind, kind), kind)
            self.form_by_kind[kind] = FieldForm(fields[kind])
            self.forms.addWidget(self.form_by_kind[kind])
        self.kind.currentIndexChanged.connect(self.forms.setCurrentIndex)
        form.addRow("Name", self.name)
        form.addRow("Kind", self.kind)
        self.layout_.addLayout(form)
        self.layout_.addWidget(self.forms)
        if not source:  # S3: one sentence on why Object Lock and a key that cannot delete (docs/offsite.md)
            self.s3_advice = QLabel(S3_ADVICE)
            self.s3_advice.setObjectName("s3ObjectLockAdvice")
            self.s3_advice.setWordWrap(True)
            self.layout_.addWidget(self.s3_advice)
            self.kind.currentIndexChanged.connect(self.show_s3_advice)
            self.show_s3_advice()
        test = QPushButton("Test connection and add")
        test.setObjectName("wizardTestButton")
        test.clicked.connect(self.validate_now)
        self.layout_.addWidget(test)
        self.added_label = QLabel()
        self.added_label.setObjectName("wizardAddedSources" if source else "wizardAddedDests")
        self.added_label.setWordWrap(True)
        self.layout_.addWidget(self.added_label)
        self.finish_layout()

    @Slot()
    def validate_now(self) -> None:
        """The button adds what the form says and stays on the page, ready for the next one."""
        if self.running:
            return
        try:
            self.advance = False
            self.start()
        except DrguiError as error:
            self.error.setText(error_html(error))

    def form_filled(self) -> bool:
        return any(v.strip() for v in self.form_by_kind[self.kind.currentData()].values().values())

    def validatePage(self) -> bool:
        if self.running:
            return False
        if self.added and not self.form_filled():
            return True  # the sources are added; an empty form adds nothing more
        self.done_ok = False
        self.advance = True
        return super().validatePage()

    def accept_result(self, result) -> None:
        kind = self.kind.currentData()
        self.added.append(f"{self.name.text().strip()} ({KIND_LABELS.get(kind, kind)})")
        self.added_label.setStyleSheet("color: #1a7f37;")
        self.added_label.setText(
            "✓ Added: " + ", ".join(self.added) + ("." if self.advance else ". Add another, or Next.")
        )
        self.name.clear()
        for edit in self.form_by_kind[kind].edits.values():
            edit.clear()  # nothing typed (a password) stays in the form

    @Slot()
    def show_s3_advice(self) -> None:
        self.s3_advice.setVisible(self.kind.currentData() == "s3")

    def start(self) -> None:
        kind = self.kind.currentData()
        settings, secrets = split_form(kind, self.form_by_kind[kind].values(), source=self.source)
        assert self.owner.ws is not None
        self.run(
            "Add", AddWork(self.owner.ws, self.source, self.name.text().strip(), kind, settings, secrets)
        )


class BackupPage(QWizardPage):
    def __init__(self, wizard: FirstRunWizard) -> None:
        super().__init__()
        self.owner = wizard
        self.setTitle("First backup")
        self.setSubTitle("Make the first snapshot now; after that drgui backs up on schedule.")
        layout = QVBoxLayout(self)
        self.button = action_button("Back up now", "wizardBackupButton", self.start, layout)
        self.status = QLabel("You can also skip this and click Finish.")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        layout.addStretch(1)

    @Slot()
    def start(self) -> None:
        assert self.owner.ws is not None
        self.button.setEnabled(False)
        self.status.setText("Backing up…")
        job = self.owner.worker.job("Backup", FirstBackupWork(self.owner.ws))
        job.progress.connect(self.on_progress)
        job.finished.connect(self.on_finished)
        job.failed.connect(self.on_failed)
        self.owner.worker.start(job)

    @Slot(object)
    def on_progress(self, event) -> None:
        if event.source:
            self.status.setText(f"Backing up {event.source}: {humanize.size(event.bytes_done)}")

    @Slot(object)
    def on_finished(self, result) -> None:
        self.status.setStyleSheet("color: #2da44e; font-weight: 600;")
        self.status.setText(f"✓ First snapshot {result.snapshot_id} saved. Click Finish.")

    @Slot(object)
    def on_failed(self, error: DrguiError) -> None:
        self.button.setEnabled(True)
        self.status.setStyleSheet("color: #cf222e;")
        self.status.setText(error_html(error))


class FirstRunWizard(QWizard):
    def __init__(self, home: Home, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.home = home
        self.ws: Workspace | None = None
        self.worker = Worker(self)
        self.setObjectName("firstRunWizard")
        self.setWindowTitle("Set up drgui")
        self.setWindowIcon(icon("app"))
        self.setWizardStyle(QWizard.WizardStyle.ModernStyle)
        self.setMinimumSize(640, 520)
        self.plan_page = PlanPage(self)
        self.source_page = AddPage(self, source=True)
        self.dest_page = AddPage(self, source=False)
        self.backup_page = BackupPage(self)
        for page in (self.plan_page, self.source_page, self.dest_page, self.backup_page):
            self.addPage(page)

    @Slot()
    def restore_from_kit(self) -> QDialog:
        """ "Restore from a recovery kit": the kit's plan is imported into this home, then the app opens on it."""
        dialog = QDialog(self)
        dialog.setObjectName("kitImportDialog")
        dialog.setWindowTitle("Restore from a recovery kit")
        layout = QVBoxLayout(dialog)
        intro = QLabel(
            "Choose the .kit.json written with the printed kit and type the recovery passphrase. The plan, "
            "its destinations and its key come back; then restore from the Snapshots page."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        form = KitImportForm(self.worker, lambda: self.home, dialog)
        layout.addWidget(form)
        form.imported.connect(self.on_kit_imported)
        form.imported.connect(dialog.accept)
        self.kit_dialog = dialog
        self.kit_form = form
        dialog.open()
        return dialog

    @Slot(object)
    def on_kit_imported(self, _result) -> None:
        self.ws = Workspace(self.home)
        self.plan_page.done_ok = True  # the plan exists now: QWizard validates the current page on accept
        self.accept()
