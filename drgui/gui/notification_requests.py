"""What the app's notifier and its D-Bus thread (`dbus_notify`) share: the action keys and buttons of a
reminder's notification, the requests the notifier queues for the thread, and the notifier as that thread
sees it (`NotifierEnd`). `notifications` loads `dbus_notify` on that thread; `dbus_notify` needs nothing of
`notifications` but what is here, so the two form no import cycle."""

from __future__ import annotations

import queue
from dataclasses import dataclass
from typing import Any, Protocol

from PySide6.QtCore import SignalInstance

from drgui.gui.reminders import DRILL, Reminder

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
class ShowRequest:
    reminder: Reminder


@dataclass
class CloseAllRequest:
    pass


class StopRequest:
    pass


class NotifierEnd(Protocol):
    """The notifier (`notifications.DesktopNotifier`) as its background thread uses it: the request queue,
    what was sent, and the signals that carry results back to the GUI thread."""

    @property
    def app_name(self) -> str: ...
    @property
    def sent(self) -> list[dict[str, Any]]: ...
    @property
    def requests(self) -> queue.SimpleQueue[Any]: ...
    @property
    def shown(self) -> SignalInstance: ...
    @property
    def failed(self) -> SignalInstance: ...
    @property
    def action_invoked(self) -> SignalInstance: ...
    @property
    def closed(self) -> SignalInstance: ...
    def fail_all_requests(self) -> None: ...
