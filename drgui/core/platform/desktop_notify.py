"""A desktop notification from a headless run (`drgui run-due` under the OS timer), best effort.

Linux: the freedesktop Notifications service on the session bus (jeepney, no Qt). Elsewhere, or with no
session bus or no notification server, nothing is shown and `send` says so; the caller has other
channels (history, webhook, the tray's reminder when the app runs).
"""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger(__name__)
CALL_TIMEOUT = 5.0


def send(summary: str, body: str) -> bool:
    """Show one notification; True when a notification server accepted it."""
    if not sys.platform.startswith("linux") or not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        return False
    try:
        from jeepney import DBusAddress, MessageType, new_method_call
        from jeepney.io.blocking import open_dbus_connection
        from jeepney.low_level import MessageFlag
    except ImportError:
        return False
    address = DBusAddress(
        "/org/freedesktop/Notifications", "org.freedesktop.Notifications", "org.freedesktop.Notifications"
    )
    hints = {"desktop-entry": ("s", "drgui"), "category": ("s", "drill")}
    call = new_method_call(
        address, "Notify", "susssasa{sv}i", ("drgui", 0, "drgui", summary, body, [], hints, -1)
    )
    # Only a server that already runs (the desktop's): a headless run must not start one on its own.
    call.header.flags |= MessageFlag.no_auto_start
    try:
        with open_dbus_connection(bus="SESSION") as connection:
            reply = connection.send_and_get_reply(call, timeout=CALL_TIMEOUT)
    except (OSError, ValueError, KeyError) as error:  # no bus, refused, timed out
        log.info("no desktop notification: %s", type(error).__name__)
        return False
    return bool(reply.header.message_type == MessageType.method_return)
