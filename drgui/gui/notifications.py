"""Reminders as desktop notifications with action buttons (org.freedesktop.Notifications over D-Bus).

The D-Bus traffic runs on one background thread (jeepney, blocking, with short timeouts, in
`dbus_notify`, imported only there: the app imports on systems without D-Bus) so the GUI
thread never waits on the bus. Results come back as signals, delivered to the GUI thread's slots:
`action_invoked(kind, key)` when the user presses a button, `failed(reminder)` when there is no
notification server (the caller then falls back to the tray balloon or the banner).
"""

from __future__ import annotations

import logging
import queue
import threading

from PySide6.QtCore import QObject, Signal

from drgui.gui.notification_requests import CloseAllRequest, ShowRequest, StopRequest
from drgui.gui.reminders import Reminder

log = logging.getLogger(__name__)


class DesktopNotifier(QObject):
    """Shows reminders as desktop notifications; one notification per reminder kind, replaced when due again."""

    shown = Signal(object, int)  # Reminder, notification id
    failed = Signal(object)  # Reminder that could not be shown: no notification server
    action_invoked = Signal(str, str)  # reminder kind, action key
    closed = Signal(str)  # reminder kind whose notification the user or server closed

    def __init__(self, app_name: str = "drgui", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.app_name = app_name
        self.sent: list[dict] = []  # what was sent (kind, id, actions): for the debug state and tests
        self.requests: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def notify(self, reminder: Reminder) -> None:
        """Show `reminder` (asynchronously); `shown` or `failed` follows."""
        self._ensure_thread()
        self.requests.put(ShowRequest(reminder))

    def close_all(self) -> None:
        """Withdraw every notification this app shows (after a snooze or once acted upon)."""
        if self._thread is not None:
            self.requests.put(CloseAllRequest())

    def stop(self, timeout: float = 2.0) -> None:
        """End the D-Bus thread (bounded wait); the notifications already shown stay."""
        if self._thread is None:
            return
        self.requests.put(StopRequest())
        self._thread.join(timeout)
        self._thread = None

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self.requests = queue.SimpleQueue()
            self._thread = threading.Thread(target=self._run, name="drgui-notifications", daemon=True)
            self._thread.start()

    # --- background thread: no Qt object is touched here, only signals are emitted ---

    def _run(self) -> None:
        try:
            from drgui.gui import dbus_notify  # jeepney: Linux and the BSDs only
        except ImportError as error:
            log.info("no D-Bus library (%s): reminders use the tray or the banner", error)
            self.fail_all_requests()
            return
        dbus_notify.serve(self)

    def fail_all_requests(self) -> None:
        while True:
            request = self.requests.get()
            if isinstance(request, StopRequest):
                return
            if isinstance(request, ShowRequest):
                self.failed.emit(request.reminder)
