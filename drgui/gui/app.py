"""Start the app: `drgui gui`, `drgui demo`, and the `drgui-gui` entry point."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Slot
from PySide6.QtWidgets import QApplication, QSystemTrayIcon

import drgui
from drgui.core.plan.home import Home
from drgui.core.plan.workspace import Workspace
from drgui.gui.controller import Controller
from drgui.gui.drive_watch import DriveSyncOnInsert, DriveWatcher, drive_specs
from drgui.gui.gc_guard import GuiThreadCollector
from drgui.gui.icons import icon
from drgui.gui.logfile import setup_logging
from drgui.gui.main_window import PAGES, MainWindow
from drgui.gui.reminders import ReminderService
from drgui.gui.tray import Actions, ReminderBanner, Tray

log = logging.getLogger(__name__)


class App(QObject):
    """Everything one running app holds: controller, window, reminders, tray or banner fallback."""

    def __init__(
        self, ws: Workspace, *, tray: bool = True, demo=None, reminders: ReminderService | None = None
    ) -> None:
        super().__init__()
        self.ws = ws
        self.demo = demo  # keeps the demo's embedded PostgreSQL referenced while the app runs
        self.controller = Controller(ws, parent=self)
        self.window = MainWindow(self.controller, hide_on_close=False)
        self.reminders = reminders or ReminderService(ws, status=self._cached_status, parent=self)
        self.actions = Actions(self.controller, self.window, self.reminders)
        self.controller.reminder_preview_requested.connect(self.reminders.preview_weekly)
        self.tray: Tray | None = None
        self.banner: ReminderBanner | None = None
        if tray and Tray.available():
            self.tray = Tray(self.actions, self.reminders, self.controller)
            self.tray.show()
            self.window.hide_on_close = True
        else:
            self.banner = ReminderBanner(self.actions, self.reminders)
        self.actions.quit_requested.connect(self.quit)
        self.window.quit_requested.connect(self.quit)
        self.drive_watcher: DriveWatcher | None = None
        self.drive_sync: DriveSyncOnInsert | None = None

    def _cached_status(self):
        return self.controller.status

    def start(self, page: str | None = None) -> None:
        if page:
            self.window.show_page(page)
        self.window.show()
        self.controller.refresh()
        self.controller.refresh_timer.start()
        self.reminders.start()
        self.start_drive_watcher()
        self.controller.status_changed.connect(self._on_status_for_drives)

    def start_drive_watcher(self) -> DriveWatcher | None:
        """Watch for the registered drive, once the plan has one (it may be added while the app runs)."""
        if self.drive_watcher is not None or not drive_specs(self.ws):
            return self.drive_watcher
        self.drive_watcher = DriveWatcher(self.ws, self.controller.worker, parent=self)
        self.drive_sync = DriveSyncOnInsert(
            self.ws, self.controller.worker, self.drive_watcher, window=self.window, parent=self
        )
        self.drive_watcher.inserted.connect(self.controller.refresh)
        self.drive_watcher.removed.connect(self.controller.refresh)
        # what the banner said about the last sync is moot once the drive is plugged in again or removed
        self.drive_watcher.inserted.connect(self._clear_drive_banner)
        self.drive_watcher.removed.connect(self._clear_drive_banner)
        self.drive_sync.synced.connect(self.controller.refresh)
        self.drive_sync.message.connect(self.show_drive_message)
        self.drive_watcher.start()
        return self.drive_watcher

    @Slot(object)
    def _on_status_for_drives(self, _status) -> None:
        self.start_drive_watcher()

    @Slot(str)
    def _clear_drive_banner(self, _drive: str) -> None:
        self.window.banner.clear_topic("drive")

    @Slot(str, str, str)
    def show_drive_message(self, level: str, title: str, text: str) -> None:
        """A drive sync's outcome: a tray notification, else the main window's banner. Never modal."""
        if self.tray is not None and self.tray.icon.isVisible():
            icon = (
                QSystemTrayIcon.MessageIcon.Warning
                if level == "error"
                else QSystemTrayIcon.MessageIcon.Information
            )
            self.tray.icon.showMessage(title, text, icon, 20_000)
        else:
            self.window.banner.show_message(level, title, text, topic="drive")

    def shutdown(self) -> None:
        """Stop every timer and watcher, cancel running work (it cleans up after itself) and wait."""
        if self.drive_watcher is not None:
            self.drive_watcher.stop()
        self.reminders.timer.stop()
        self.controller.close()
        self.controller.worker.wait(60_000)
        if self.tray is not None:
            self.tray.icon.hide()

    @Slot()
    def quit(self) -> None:
        """Shut down, then leave the event loop."""
        self.shutdown()
        QApplication.quit()


class Screenshotter(QObject):
    """Screenshot mode: wait until the status is shown and the worker is idle, grab the window, quit."""

    def __init__(self, app: App, path: Path, size: tuple[int, int] | None = None) -> None:
        super().__init__(app)
        self.app = app
        self.path = path
        if size is not None:
            app.window.resize(*size)  # never below the window's minimum size: nothing is cut off
        self.ticks = 0
        self.timer = QTimer(self)
        self.timer.setInterval(100)
        self.timer.timeout.connect(self.poll)

    def start(self) -> None:
        self.timer.start()

    @Slot()
    def poll(self) -> None:
        self.ticks += 1
        ready = self.app.controller.status is not None and not self.app.controller.worker.active
        if not ready and self.ticks < 300:
            return
        self.timer.stop()
        QApplication.processEvents()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.app.window.grab().save(str(self.path)):
            log.error("could not write %s", self.path)
        self.app.quit()


def ensure_application() -> QApplication:
    app = QApplication.instance()
    if not isinstance(app, QApplication):
        app = QApplication(sys.argv[:1])
    app.setApplicationName("drgui")
    app.setApplicationDisplayName("drgui")
    app.setDesktopFileName("drgui")
    app.setWindowIcon(icon("app"))
    app.setQuitOnLastWindowClosed(False)
    return app


def run_app(
    home: Home,
    *,
    demo=None,
    page: str | None = None,
    screenshot: Path | None = None,
    tray: bool = True,
    size: tuple[int, int] | None = None,
) -> int:
    """Open the app on `home` (the first-run wizard when it holds no plan yet); returns the exit code."""
    if page and page not in PAGES:
        raise ValueError(f"unknown page {page!r}; pages: {', '.join(PAGES)}")
    try:
        log.info("drgui %s starting on %s (log: %s)", drgui.__version__, home.path, setup_logging())
    except OSError as error:  # no writable log folder: the app still runs
        print(f"drgui: no log file ({error})", file=sys.stderr)
    qt_app = ensure_application()
    if not home.exists():
        from drgui.gui.first_run import FirstRunWizard

        wizard = FirstRunWizard(home)
        if screenshot:
            if size is not None:
                wizard.resize(*size)
            wizard.show()
            QTimer.singleShot(500, wizard.close)
            qt_app.processEvents()
            wizard.grab().save(str(screenshot))
            return 0
        if wizard.exec() != FirstRunWizard.DialogCode.Accepted or not home.exists():
            return 1
    ws = demo.workspace if demo is not None else Workspace(home)
    app = App(ws, tray=tray and screenshot is None, demo=demo)
    app.start(page)
    if screenshot:
        shooter = Screenshotter(app, screenshot, size)
        shooter.start()
    quit_on_signals(qt_app)
    collector = GuiThreadCollector(parent=qt_app)
    collector.start()
    try:
        return qt_app.exec()
    finally:
        collector.stop()


def quit_on_signals(qt_app: QApplication) -> QTimer:
    """SIGTERM, SIGHUP (logout) and SIGINT end the event loop normally, so the caller's clean-up runs
    (the demo's embedded PostgreSQL is stopped, a running backup is cancelled by its owner)."""
    for number in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGHUP", None)):
        if number is not None:
            signal.signal(number, lambda *_: qt_app.quit())
    # Python runs signal handlers only between bytecodes: a light timer gives it the chance.
    ticker = QTimer(qt_app)
    ticker.setInterval(250)
    ticker.timeout.connect(lambda: None)
    ticker.start()
    return ticker


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="drgui-gui", description="drgui desktop app")
    parser.add_argument("--home", help="plan directory (default: $DRGUI_HOME or per-user)")
    parser.add_argument("--page", choices=PAGES)
    parser.add_argument("--screenshot", type=Path)
    parser.add_argument("--size", help="window size for --screenshot, WxH")
    parser.add_argument("--no-tray", action="store_true")
    args = parser.parse_args(argv)
    size = None
    if args.size:
        width, _, height = args.size.lower().partition("x")
        if not (width.isdigit() and height.isdigit()):
            parser.error(f"--size {args.size}: write WIDTHxHEIGHT in pixels, e.g. 800x600")
        size = (int(width), int(height))
    return run_app(
        Home.resolve(args.home), page=args.page, screenshot=args.screenshot, tray=not args.no_tray, size=size
    )
