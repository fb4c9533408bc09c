"""Reminders as desktop notifications with action buttons (org.freedesktop.Notifications over D-Bus).

The D-Bus traffic runs on one background thread (jeepney, blocking, with short timeouts) so the GUI
thread never waits on the bus. Results come back as signals, delivered to the GUI thread's slots:
`action_invoked(kind, key)` when the user presses a button, `failed(reminder)` when there is no
notification server (the caller then falls back to the tray balloon or the banner).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from dataclasses import dataclass

from jeepney import DBusAddress, MatchRule, MessageType, new_method_call
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import DBusConnection, open_dbus_connection
from jeepney.low_level import HeaderFields, Message
from PySide6.QtCore import QObject, Signal

from drgui.gui.reminders import DRILL, Reminder

log = logging.getLogger(__name__)

NOTIFICATIONS = DBusAddress(
    "/org/freedesktop/Notifications", "org.freedesktop.Notifications", "org.freedesktop.Notifications"
)
CALL_TIMEOUT = 5.0  # seconds; the server may be started on demand (D-Bus activation)
POLL = 0.2  # seconds between checks of the request queue while listening for signals

# Action keys, shared with the tray's handler. "default" is a click on the notification itself.
DEFAULT = "default"
OPEN_CHECKLIST = "open-checklist"
START_DRILL = "start-drill"
SNOOZE_HOUR = "snooze-hour"
SNOOZE_TOMORROW = "snooze-tomorrow"


def reminder_actions(reminder: Reminder) -> list[tuple[str, str]]:
    """The buttons of a reminder's notification as (key, label), the same as the banner's."""
    main = (
        (START_DRILL, "Start restore test") if reminder.kind == DRILL else (OPEN_CHECKLIST, "Open checklist")
    )
    return [(DEFAULT, main[1]), main, (SNOOZE_HOUR, "Snooze 1 h"), (SNOOZE_TOMORROW, "Tomorrow")]


@dataclass
class _Show:
    reminder: Reminder


@dataclass
class _CloseAll:
    pass


class _Stop:
    pass


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
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def notify(self, reminder: Reminder) -> None:
        """Show `reminder` (asynchronously); `shown` or `failed` follows."""
        self._ensure_thread()
        self._requests.put(_Show(reminder))

    def close_all(self) -> None:
        """Withdraw every notification this app shows (after a snooze or once acted upon)."""
        if self._thread is not None:
            self._requests.put(_CloseAll())

    def stop(self, timeout: float = 2.0) -> None:
        """End the D-Bus thread (bounded wait); the notifications already shown stay."""
        if self._thread is None:
            return
        self._requests.put(_Stop())
        self._thread.join(timeout)
        self._thread = None

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._requests = queue.SimpleQueue()
            self._thread = threading.Thread(target=self._run, name="drgui-notifications", daemon=True)
            self._thread.start()

    # --- background thread: no Qt object is touched here, only signals are emitted ---

    def _run(self) -> None:
        try:
            connection = open_dbus_connection(bus="SESSION")
        except (OSError, KeyError, ValueError) as error:  # no session bus at all
            log.info("no D-Bus session bus: %s", error)
            self._fail_all_requests()
            return
        with connection:
            try:
                self._serve(connection)
            except (OSError, TimeoutError, ConnectionError) as error:
                log.warning("notification connection lost: %s", error)

    def _fail_all_requests(self) -> None:
        while True:
            request = self._requests.get()
            if isinstance(request, _Stop):
                return
            if isinstance(request, _Show):
                self.failed.emit(request.reminder)

    def _serve(self, connection: DBusConnection) -> None:
        signals = MatchRule(type="signal", interface=NOTIFICATIONS.interface, path=NOTIFICATIONS.object_path)
        connection.send_and_get_reply(message_bus.AddMatch(signals), timeout=CALL_TIMEOUT)
        ids: dict[int, str] = {}  # notification id -> reminder kind
        with connection.filter(signals, queue=deque(), bufsize=64) as incoming:
            while True:
                try:
                    request = self._requests.get_nowait()
                except queue.Empty:
                    request = None
                if isinstance(request, _Stop):
                    return
                if isinstance(request, _Show):
                    self._show(connection, request.reminder, ids)
                elif isinstance(request, _CloseAll):
                    for notification_id in list(ids):
                        call = new_method_call(NOTIFICATIONS, "CloseNotification", "u", (notification_id,))
                        connection.send_and_get_reply(call, timeout=CALL_TIMEOUT)
                    ids.clear()
                while incoming:
                    self._dispatch(incoming.popleft(), ids)
                if request is None:
                    try:
                        self._dispatch(connection.recv_until_filtered(incoming, timeout=POLL), ids)
                    except TimeoutError:
                        pass

    def _show(self, connection: DBusConnection, reminder: Reminder, ids: dict[int, str]) -> None:
        replaces = next((i for i, kind in ids.items() if kind == reminder.kind), 0)
        actions = [part for pair in reminder_actions(reminder) for part in pair]
        hints = {"desktop-entry": ("s", "drgui"), "urgency": ("y", 1), "category": ("s", "reminder")}
        body = (self.app_name, replaces, "drgui", reminder.title, reminder.text, actions, hints, 0)
        call = new_method_call(NOTIFICATIONS, "Notify", "susssasa{sv}i", body)
        try:
            reply = connection.send_and_get_reply(call, timeout=CALL_TIMEOUT)
        except TimeoutError:
            reply = None
        if reply is None or reply.header.message_type == MessageType.error:
            log.info("no notification server: %s", reply.body if reply is not None else "timeout")
            self.failed.emit(reminder)
            return
        notification_id = int(reply.body[0])
        ids.pop(replaces, None)
        ids[notification_id] = reminder.kind
        self.sent.append({"kind": reminder.kind, "id": notification_id, "actions": actions})
        self.shown.emit(reminder, notification_id)

    def _dispatch(self, message: Message, ids: dict[int, str]) -> None:
        member = message.header.fields.get(HeaderFields.member)
        if member == "ActionInvoked":
            notification_id, key = message.body
            if notification_id in ids:
                self.action_invoked.emit(ids[notification_id], key)
        elif member == "NotificationClosed":
            notification_id = message.body[0]
            if notification_id in ids:
                self.closed.emit(ids.pop(notification_id))
