"""The org.freedesktop.Notifications client behind `DesktopNotifier`, on its background thread (jeepney).

Imported only by that thread, so the app imports where jeepney or D-Bus is absent (macOS, Windows).
No Qt object is touched here: results go back as the notifier's signals.
"""

from __future__ import annotations

import logging
import queue
from collections import deque

from jeepney import DBusAddress, MatchRule, MessageType, new_method_call
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import DBusConnection, open_dbus_connection
from jeepney.low_level import HeaderFields, Message

from drgui.gui.notification_requests import (
    CloseAllRequest,
    NotifierEnd,
    ShowRequest,
    StopRequest,
    reminder_actions,
)
from drgui.gui.reminders import Reminder

log = logging.getLogger(__name__)

NOTIFICATIONS = DBusAddress(
    "/org/freedesktop/Notifications", "org.freedesktop.Notifications", "org.freedesktop.Notifications"
)
CALL_TIMEOUT = 5.0  # seconds; the server may be started on demand (D-Bus activation)
POLL = 0.2  # seconds between checks of the request queue while listening for signals


def serve(notifier: NotifierEnd) -> None:
    """Connect to the session bus and serve the notifier's requests until it asks to stop."""
    try:
        connection = open_dbus_connection(bus="SESSION")
    except (OSError, KeyError, ValueError) as error:  # no session bus at all
        log.info("no D-Bus session bus: %s", error)
        notifier.fail_all_requests()
        return
    with connection:
        try:
            _Session(notifier, connection).serve()
        except (OSError, TimeoutError, ConnectionError) as error:
            log.warning("notification connection lost: %s", error)


class _Session:
    def __init__(self, notifier: NotifierEnd, connection: DBusConnection) -> None:
        self.notifier = notifier
        self.connection = connection
        self.ids: dict[int, str] = {}  # notification id -> reminder kind

    def serve(self) -> None:
        connection = self.connection
        signals = MatchRule(type="signal", interface=NOTIFICATIONS.interface, path=NOTIFICATIONS.object_path)
        connection.send_and_get_reply(message_bus.AddMatch(signals), timeout=CALL_TIMEOUT)
        with connection.filter(signals, queue=deque(), bufsize=64) as incoming:
            while True:
                try:
                    request = self.notifier.requests.get_nowait()
                except queue.Empty:
                    request = None
                if isinstance(request, StopRequest):
                    return
                if isinstance(request, ShowRequest):
                    self._show(request.reminder)
                elif isinstance(request, CloseAllRequest):
                    for notification_id in list(self.ids):
                        call = new_method_call(NOTIFICATIONS, "CloseNotification", "u", (notification_id,))
                        connection.send_and_get_reply(call, timeout=CALL_TIMEOUT)
                    self.ids.clear()
                while incoming:
                    self._dispatch(incoming.popleft())
                if request is None:
                    try:
                        self._dispatch(connection.recv_until_filtered(incoming, timeout=POLL))
                    except TimeoutError:
                        pass

    def _show(self, reminder: Reminder) -> None:
        ids = self.ids
        replaces = next((i for i, kind in ids.items() if kind == reminder.kind), 0)
        actions = [part for pair in reminder_actions(reminder) for part in pair]
        hints = {"desktop-entry": ("s", "drgui"), "urgency": ("y", 1), "category": ("s", "reminder")}
        body = (self.notifier.app_name, replaces, "drgui", reminder.title, reminder.text, actions, hints, 0)
        call = new_method_call(NOTIFICATIONS, "Notify", "susssasa{sv}i", body)
        try:
            reply = self.connection.send_and_get_reply(call, timeout=CALL_TIMEOUT)
        except TimeoutError:
            reply = None
        if reply is None or reply.header.message_type == MessageType.error:
            log.info("no notification server: %s", reply.body if reply is not None else "timeout")
            self.notifier.failed.emit(reminder)
            return
        notification_id = int(reply.body[0])
        ids.pop(replaces, None)
        ids[notification_id] = reminder.kind
        self.notifier.sent.append({"kind": reminder.kind, "id": notification_id, "actions": actions})
        self.notifier.shown.emit(reminder, notification_id)

    def _dispatch(self, message: Message) -> None:
        member = message.header.fields.get(HeaderFields.member)
        if member == "ActionInvoked":
            notification_id, key = message.body
            if notification_id in self.ids:
                self.notifier.action_invoked.emit(self.ids[notification_id], key)
        elif member == "NotificationClosed":
            notification_id = message.body[0]
            if notification_id in self.ids:
                self.notifier.closed.emit(self.ids.pop(notification_id))
