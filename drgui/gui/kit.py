"""The recovery kit in the app: export (PDF + JSON, print), and import on a fresh machine.

The work is report/kit.py's `write_kit` and `read_kit_file` + `import_kit`, run on the worker. The import
form is one widget used by the Kit page (import into another, new plan folder) and by the first-run
wizard ("Restore from a recovery kit": into the home the wizard was opened for).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal, Slot
from PySide6.QtPrintSupport import QPrintDialog, QPrinter
from PySide6.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from drgui.core.errors import DrguiError, UsageError
from drgui.core.plan.home import Home
from drgui.core.plan.secrets import remember
from drgui.core.plan.workspace import Workspace
from drgui.core.progress import CancelToken, ProgressCallback
from drgui.gui.widgets import MessageLine, path_row
from drgui.gui.worker import Worker

KIT_EXPORT = "Recovery kit export"
KIT_IMPORT = "Recovery kit import"


class KitExportWork:
    """write_kit on the worker: FILE.pdf (to print) and FILE.kit.json (to import)."""

    def __init__(self, ws: Workspace, pdf: Path) -> None:
        self.ws = ws
        self.pdf = pdf

    def __call__(self, progress: ProgressCallback, cancel: CancelToken):
        from drgui.report.kit import write_kit

        return write_kit(self.ws, self.pdf)


class KitImportWork:
    """read_kit_file + import_kit on the worker: the plan rebuilt in a new home."""

    def __init__(
        self,
        home: Home,
        kit_file: Path,
        passphrase: str,
        access_key_id: str | None,
        secret_access_key: str | None,
    ) -> None:
        self.home = home
        self.kit_file = kit_file
        self.passphrase = passphrase
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key

    def __call__(self, progress: ProgressCallback, cancel: CancelToken):
        from drgui.report.kit import import_kit, read_kit_file

        kit = read_kit_file(self.kit_file)
        return import_kit(
            self.home,
            kit,
            self.passphrase,
            access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key,
        )


def pdf_path(text: str) -> Path:
    """The export field's text as an absolute FILE.pdf (".pdf" added when missing, as the CLI does)."""
    text = text.strip()
    if not text:
        raise UsageError("Say where to write the kit.", hint="Choose a file, e.g. ~/recovery-kit.pdf.")
    path = Path(text).expanduser().absolute()
    if path.suffix.lower() != ".pdf":
        path = path.with_name(path.name + ".pdf")
    if not path.parent.is_dir():
        raise UsageError(
            f"The folder {path.parent} does not exist.", hint="Choose a file in an existing folder."
        )
    return path


def print_kit(
    kit: dict[str, Any], kit_name: str, parent: QWidget | None = None, *, printer: QPrinter | None = None
) -> bool:
    """The system's print dialog, then the kit (the same layout as the PDF) to the chosen printer.
    With `printer` given (already set up), no dialog is shown."""
    from drgui.report.kit import kit_document

    if printer is None:
        printer = QPrinter(QPrinter.PrinterMode.HighResolution)
        dialog = QPrintDialog(printer, parent)
        dialog.setObjectName("kitPrintDialog")
        if dialog.exec() != QPrintDialog.DialogCode.Accepted:
            return False
    kit_document(kit, kit_name).print_(printer)
    return True


class KitImportForm(QWidget):
    """Kit file, recovery passphrase, optional S3 keys; Import runs on the worker. Nothing typed stays in
    the form after a run: the secrets are cleared whether it worked or not."""

    imported = Signal(object)  # ImportResult

    def __init__(
        self,
        worker: Worker,
        home_for: Callable[[], Home],
        parent: QWidget | None = None,
        *,
        extra_rows: Callable[[QFormLayout], None] | None = None,
    ) -> None:
        super().__init__(parent)
        self.worker = worker
        self.home_for = home_for
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        form = QFormLayout()
        self.kit_file = QLineEdit()
        self.kit_file.setObjectName("kitImportFile")
        self.kit_file.setPlaceholderText("FILE.kit.json")
        form.addRow(
            "Kit file", path_row(self.kit_file, "kitImportBrowse", "Choose the kit file", self.choose_file)
        )
        if extra_rows is not None:
            extra_rows(form)
        self.passphrase = QLineEdit()
        self.passphrase.setObjectName("kitImportPassphrase")
        self.passphrase.setEchoMode(QLineEdit.EchoMode.Password)
        form.addRow("Recovery passphrase", self.passphrase)
        self.access_key_id = QLineEdit()
        self.access_key_id.setObjectName("kitImportAccessKeyId")
        self.access_key_id.setPlaceholderText("only when the kit names an S3 destination")
        form.addRow("S3 access key id", self.access_key_id)
        self.secret_access_key = QLineEdit()
        self.secret_access_key.setObjectName("kitImportSecretKey")
        self.secret_access_key.setEchoMode(QLineEdit.EchoMode.Password)
        form.addRow("S3 secret access key", self.secret_access_key)
        layout.addLayout(form)
        row = QHBoxLayout()
        self.import_button = QPushButton("Import the kit")
        self.import_button.setObjectName("kitImportButton")
        self.import_button.clicked.connect(self.start)
        row.addWidget(self.import_button)
        row.addStretch(1)
        layout.addLayout(row)
        self.message = MessageLine(None, "kitImportMessage")
        layout.addWidget(self.message)
        self.running = False

    @Slot()
    def choose_file(self) -> None:
        name, _ = QFileDialog.getOpenFileName(
            self, "Recovery kit", str(Path.home()), "Recovery kit (*.kit.json *.json *.txt);;All files (*)"
        )
        if name:
            self.kit_file.setText(name)

    def clear_secrets(self) -> None:
        self.passphrase.clear()
        self.secret_access_key.clear()

    @Slot()
    def start(self) -> None:
        if self.running:
            return
        try:
            work = self.work()
        except DrguiError as error:
            self.message.say_error(error)
            return
        self.clear_secrets()
        self.running = True
        self.import_button.setEnabled(False)
        self.message.say("Importing the kit: unwrapping the key with the passphrase…")
        job = self.worker.job(KIT_IMPORT, work)
        job.finished.connect(self.on_imported)
        job.failed.connect(self.on_failed)
        job.done.connect(self.on_done)
        self.worker.start(job)

    def work(self) -> KitImportWork:
        kit_text = self.kit_file.text().strip()
        if not kit_text:
            raise UsageError("Choose the kit file first.", hint="It is FILE.kit.json, written with the PDF.")
        kit_file = Path(kit_text).expanduser()
        if not kit_file.is_file():
            raise UsageError(
                f"There is no file {kit_file}.", hint="Choose the .kit.json written with the PDF."
            )
        passphrase = self.passphrase.text()
        if not passphrase:
            raise UsageError(
                "Type the recovery passphrase.", hint="It is the one chosen when the plan was made."
            )
        key_id = self.access_key_id.text().strip() or None
        secret = self.secret_access_key.text() or None
        remember(passphrase)
        remember(secret)
        return KitImportWork(self.home_for(), kit_file, passphrase, key_id, secret)

    @Slot(object)
    def on_imported(self, result) -> None:
        lines = [f"✓ Plan '{result.plan_name}' imported into {result.home}; its key is in this keyring."]
        if result.destinations:
            lines.append(f"Destinations: {', '.join(result.destinations)}.")
        if result.sources_needing_secrets:
            lines.append(
                "Before backing up from here, give these sources their passwords again (Sources page): "
                + ", ".join(result.sources_needing_secrets)
                + "."
            )
        self.message.say("<br>".join(lines), "done")
        self.imported.emit(result)

    @Slot(object)
    def on_failed(self, error: DrguiError) -> None:
        self.message.say_error(error)

    @Slot()
    def on_done(self) -> None:
        self.running = False
        self.import_button.setEnabled(True)
