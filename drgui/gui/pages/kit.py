"""Recovery kit: export it (PDF to print + JSON to import), print it, and import a kit into a new plan."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QUrl, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QFileDialog, QFormLayout, QHBoxLayout, QLineEdit, QWidget

from drgui.core.errors import DrguiError, UsageError
from drgui.core.plan.home import Home
from drgui.gui.controller import Controller
from drgui.gui.kit import KIT_EXPORT, KitExportWork, KitImportForm, pdf_path, print_kit
from drgui.gui.widgets import Card, MessageLine, action_button, muted, path_row, scrolling_page, title


def default_pdf(plan_name: str) -> Path:
    slug = "".join(c if c.isalnum() else "-" for c in plan_name.lower()).strip("-") or "plan"
    return Path.home() / f"{slug}-recovery-kit.pdf"


class KitPage(QWidget):
    def __init__(self, controller: Controller) -> None:
        super().__init__()
        self.controller = controller
        self.files = None  # KitFiles of the last export
        layout = scrolling_page(self)
        layout.addWidget(title("Recovery kit"))
        layout.addWidget(
            muted(
                "The kit is what a new computer needs to get everything back: the plan, where the backups "
                "are, and the key (wrapped with your recovery passphrase, which is not in the kit). Print "
                "it and keep it, with the .kit.json file, away from this computer."
            )
        )

        export = Card("Export")
        form = QFormLayout()
        self.export_path = QLineEdit(str(default_pdf(controller.ws.plan.name)))
        self.export_path.setObjectName("kitExportPath")
        form.addRow(
            "PDF file",
            path_row(
                self.export_path, "kitExportBrowse", "Choose where to write the kit", self.choose_export
            ),
        )
        export.body.addLayout(form)
        buttons = QHBoxLayout()
        self.export_button = action_button("Export the kit", "kitExportButton", self.export, buttons)
        self.print_button = action_button("Print…", "kitPrintButton", self.print_, buttons)
        self.print_button.setEnabled(False)
        self.open_button = action_button("Open the PDF", "kitOpenPdfButton", self.open_pdf, buttons)
        self.open_button.setEnabled(False)
        buttons.addStretch(1)
        export.body.addLayout(buttons)
        self.export_message = MessageLine(controller, "kitExportMessage")
        export.body.addWidget(self.export_message)
        layout.addWidget(export)

        restore = Card("Import on a new machine")
        restore.body.addWidget(
            muted(
                "On a fresh computer, the first-run wizard offers \u201cRestore from a recovery kit\u201d. "
                "Here a kit is imported into a new plan folder, e.g. to rehearse the recovery."
            )
        )
        self.import_home = QLineEdit()
        self.import_home.setObjectName("kitImportHome")
        self.import_home.setPlaceholderText("a new, empty folder for the imported plan")
        self.import_form = KitImportForm(
            controller.worker,
            self.home_for_import,
            extra_rows=lambda form: form.addRow("New plan folder", self.import_home),
        )
        restore.body.addWidget(self.import_form)
        layout.addWidget(restore)
        layout.addStretch(1)

    # --- export ----------------------------------------------------------------------------------
    @Slot()
    def choose_export(self) -> None:
        name, _ = QFileDialog.getSaveFileName(self, "Recovery kit", self.export_path.text(), "PDF (*.pdf)")
        if name:
            self.export_path.setText(name)

    @Slot()
    def export(self) -> None:
        if self.controller.worker.busy(KIT_EXPORT):
            return
        try:
            pdf = pdf_path(self.export_path.text())
        except DrguiError as error:
            self.export_message.say_error(error)
            return
        self.export_button.setEnabled(False)
        self.export_message.say(f"Writing {pdf.name}…")
        job = self.controller.worker.job(KIT_EXPORT, KitExportWork(self.controller.ws, pdf))
        job.finished.connect(self.on_exported)
        job.failed.connect(self.export_message.say_error)
        job.done.connect(self.on_export_done)
        self.controller.worker.start(job)

    @Slot(object)
    def on_exported(self, files) -> None:
        self.files = files
        self.print_button.setEnabled(True)
        self.open_button.setEnabled(True)
        self.export_message.say(
            f"✓ Written: {files.pdf} (print it) and {files.json} (to import). Keep both off this "
            "machine; the passphrase is not in them, keep it separately.",
            "done",
        )

    @Slot()
    def on_export_done(self) -> None:
        self.export_button.setEnabled(True)

    @Slot()
    def print_(self) -> bool:
        if self.files is None:
            return False
        return print_kit(self.files.kit, self.files.json.name, self)

    @Slot()
    def open_pdf(self) -> None:
        if self.files is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.files.pdf)))

    # --- import ----------------------------------------------------------------------------------
    def home_for_import(self) -> Home:
        text = self.import_home.text().strip()
        if not text:
            raise UsageError(
                "Choose a new folder for the imported plan.",
                hint="This computer's plan stays as it is; the kit's plan goes into its own folder.",
            )
        home = Home(Path(text).expanduser().absolute())
        if home.path == self.controller.ws.home.path or home.exists():
            raise UsageError(f"{home.path} already holds a plan.", hint="Choose a new, empty folder.")
        return home
