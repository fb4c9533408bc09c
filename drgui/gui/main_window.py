"""The main window: a sidebar of pages, a banner for problems and reminders, an About box."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal, Slot
from PySide6.QtGui import QAction, QCloseEvent, QDesktopServices, QKeySequence
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

import drgui
from drgui.core.errors import DrguiError
from drgui.gui.controller import Controller
from drgui.gui.icons import icon
from drgui.gui.logfile import log_dir
from drgui.gui.page_names import PAGES
from drgui.gui.widgets import STYLE, Banner

# At 800×600 every page fits: "Back up now" on screen, no sideways scrolling (checked by the tests).
MIN_WIDTH, MIN_HEIGHT = 800, 600
SIDEBAR_WIDTH = 180
PAGE_TITLES = {
    "dashboard": "Dashboard",
    "sources": "Sources",
    "destinations": "Destinations",
    "snapshots": "Snapshots",
    "drills": "Restore tests",
    "checklists": "Checklists",
    "history": "History",
    "kit": "Recovery kit",
    "settings": "Settings",
}


def build_page(name: str, controller: Controller) -> QWidget:
    from drgui.gui.pages import checklists, dashboard, destinations, drills, settings, snapshots, sources
    from drgui.gui.pages.history import HistoryPage
    from drgui.gui.pages.kit import KitPage

    factories = {
        "dashboard": dashboard.DashboardPage,
        "sources": sources.SourcesPage,
        "destinations": destinations.DestinationsPage,
        "snapshots": snapshots.SnapshotsPage,
        "drills": drills.DrillsPage,
        "checklists": checklists.ChecklistsPage,
        "history": HistoryPage,
        "kit": KitPage,
        "settings": settings.SettingsPage,
    }
    return factories[name](controller)


class MainWindow(QMainWindow):
    quit_requested = Signal()

    def __init__(self, controller: Controller, *, hide_on_close: bool = False) -> None:
        super().__init__()
        self.controller = controller
        self.hide_on_close = hide_on_close
        self.setWindowTitle("drgui")
        self.setWindowIcon(icon("app"))
        self.setObjectName("mainWindow")
        self.setStyleSheet(STYLE)
        self.setMinimumSize(MIN_WIDTH, MIN_HEIGHT)
        self.resize(1180, 800)

        central = QWidget()
        root = QHBoxLayout(central)
        root.setContentsMargins(0, 0, 0, 0)
        root.setSpacing(0)
        sidebar_frame = QFrame()
        sidebar_frame.setObjectName("sidebarFrame")
        sidebar_frame.setFixedWidth(SIDEBAR_WIDTH)
        side = QVBoxLayout(sidebar_frame)
        side.setContentsMargins(0, 16, 0, 12)
        self.sidebar = QListWidget()
        self.sidebar.setObjectName("sidebar")
        self.sidebar.setAccessibleName("Pages")
        self.sidebar.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        side.addWidget(self.sidebar)
        root.addWidget(sidebar_frame)

        right = QVBoxLayout()
        right.setContentsMargins(0, 0, 0, 0)
        right.setSpacing(0)
        self.banner = Banner()
        banner_wrap = QVBoxLayout()
        banner_wrap.setContentsMargins(16, 10, 16, 0)
        banner_wrap.addWidget(self.banner)
        right.addLayout(banner_wrap)
        self.stack = QStackedWidget()
        right.addWidget(self.stack, 1)
        root.addLayout(right, 1)
        self.setCentralWidget(central)

        self.pages: dict[str, QWidget] = {}
        for name in PAGES:
            page = build_page(name, controller)
            page.setObjectName(f"{name}Page")
            self.pages[name] = page
            self.stack.addWidget(page)
            QListWidgetItem(PAGE_TITLES[name], self.sidebar)
        self.sidebar.currentRowChanged.connect(self.stack.setCurrentIndex)
        self.banner.setAccessibleName("Message")
        self.sidebar.setCurrentRow(0)
        self._build_menu()
        # The status could not be read: the banner says so until a status is read again. A failed backup
        # is said once, on the dashboard beside "Back up now" (not in the banner too).
        controller.problem.connect(self.show_problem)
        controller.status_changed.connect(self._on_status)

    def _build_menu(self) -> None:
        app_menu = self.menuBar().addMenu("&drgui")
        backup = QAction("Back up now", self)
        backup.setShortcut(QKeySequence("Ctrl+B"))
        backup.triggered.connect(self.backup_now)
        app_menu.addAction(backup)
        app_menu.addSeparator()
        quit_action = QAction("Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.quit_requested)
        app_menu.addAction(quit_action)
        help_menu = self.menuBar().addMenu("&Help")
        kit_export = QAction("Export the recovery kit…", self)
        kit_export.setObjectName("kitExportAction")
        kit_export.triggered.connect(self.show_kit_export)
        help_menu.addAction(kit_export)
        kit_import = QAction("Restore from a recovery kit…", self)
        kit_import.setObjectName("kitImportAction")
        kit_import.triggered.connect(self.show_kit_import)
        help_menu.addAction(kit_import)
        help_menu.addSeparator()
        open_log = QAction("Open log folder", self)
        open_log.setObjectName("openLogFolderAction")
        open_log.triggered.connect(self.open_log_folder)
        help_menu.addAction(open_log)
        self.open_log_action = open_log
        about = QAction("About drgui", self)
        about.triggered.connect(self.show_about)
        help_menu.addAction(about)

    @Slot()
    def backup_now(self) -> None:
        """Ctrl+B: the dashboard shows the progress and the outcome, so show it."""
        self.show_page("dashboard")
        self.controller.start_backup()

    def show_page(self, name: str) -> None:
        self.sidebar.setCurrentRow(PAGES.index(name))

    @property
    def current_page(self) -> str:
        return PAGES[self.stack.currentIndex()]

    @Slot(object)
    def show_problem(self, error: DrguiError) -> None:
        self.banner.show_message("error", error.message, error.hint, topic="status")

    @Slot(object)
    def _on_status(self, _status) -> None:
        self.banner.clear_topic("status")

    @Slot()
    def show_kit_export(self) -> None:
        self.show_page("kit")
        self._focus(self.pages["kit"].findChild(QPushButton, "kitExportButton"))

    @Slot()
    def show_kit_import(self) -> None:
        self.show_page("kit")
        self._focus(self.pages["kit"].findChild(QLineEdit, "kitImportFile"))

    @staticmethod
    def _focus(widget: QWidget | None) -> None:
        if widget is not None:
            widget.setFocus()

    @Slot()
    def open_log_folder(self) -> Path:
        """Help → Open log folder: the file manager on the app's log directory (made if missing)."""
        folder = log_dir()
        folder.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))
        return folder

    @Slot()
    def show_about(self) -> None:
        box = QMessageBox(self)
        box.setObjectName("aboutBox")
        box.setWindowTitle("About drgui")
        box.setIconPixmap(icon("app").pixmap(64, 64))
        box.setTextFormat(Qt.TextFormat.RichText)
        box.setText(
            f"<h3>drgui {drgui.__version__}</h3>"
            "<p>Disaster recovery for a solo SaaS: encrypted, self-verifying backups of PostgreSQL, "
            "files, .env, S3 and git, with monthly restore tests.</p><p>MIT licence.</p>"
        )
        box.open()

    @Slot()
    def bring_to_front(self) -> None:
        self.show()
        self.setWindowState(self.windowState() & ~Qt.WindowState.WindowMinimized)
        self.raise_()
        self.activateWindow()

    def closeEvent(self, event: QCloseEvent) -> None:
        # Only the user's close (window manager, spontaneous) hides to the tray: Qt 6's
        # QApplication.quit() closes every visible window first and gives up if one refuses.
        if self.hide_on_close and event.spontaneous():
            event.ignore()
            self.hide()
        else:
            event.accept()
            self.quit_requested.emit()
