"""Optional webhook notifications (Slack-compatible `{"text": ...}`) on failures and alerts.

The URL is a secret (anyone holding it can post to the channel): it lives in the keyring, is marked for
redaction, and no message or log line ever contains it. Notifications are best effort: a webhook that
fails is logged (without the URL) and never turns a backup's result into another one.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from datetime import UTC, datetime
from urllib.parse import urlsplit

from drgui.core.errors import EnvironmentNotReady, OperationFailed, UsageError
from drgui.core.plan.secrets import remember
from drgui.core.plan.workspace import WEBHOOK_KEY, Workspace

TIMEOUT_SECONDS = 10.0
log = logging.getLogger(__name__)


def check_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise UsageError(
            "The webhook URL must start with https:// (or http:// for a local relay).",
            hint="Copy the whole incoming-webhook URL from Slack, Mattermost, Discord (/slack) or similar.",
        )
    return url


def webhook_url(ws: Workspace) -> str | None:
    return ws.store.get(*WEBHOOK_KEY)


def set_webhook(ws: Workspace, url: str) -> None:
    url = check_url(url)
    remember(url)
    ws.store.set(*WEBHOOK_KEY, url)
    ws.history.append_event("settings.webhook_set", {"host": urlsplit(url).hostname})


def clear_webhook(ws: Workspace) -> bool:
    had = webhook_url(ws) is not None
    ws.store.delete(*WEBHOOK_KEY)
    ws.history.append_event("settings.webhook_clear", {})
    return had


def post(url: str, text: str, *, timeout: float = TIMEOUT_SECONDS) -> None:
    """POST `{"text": text}`; raises OperationFailed naming only the host, never the URL."""
    remember(url)
    host = urlsplit(url).hostname or "the webhook"
    request = urllib.request.Request(
        url,
        data=json.dumps({"text": text}).encode("utf-8"),
        headers={"Content-Type": "application/json", "User-Agent": "drgui"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(1024)
    except urllib.error.HTTPError as error:
        raise OperationFailed(
            f"The webhook at {host} answered HTTP {error.code}.",
            hint="Check that the webhook still exists; set it again with `drgui notify set-webhook`.",
        ) from None
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise OperationFailed(
            f"The webhook at {host} could not be reached ({type(reason).__name__}).",
            hint="Check the network; the notification was not sent.",
        ) from None


def notify(ws: Workspace, text: str) -> bool:
    """Send `text` when a webhook is set; True when it was delivered. Never raises for a delivery problem."""
    try:
        url = webhook_url(ws)
    except EnvironmentNotReady:
        return False
    if not url:
        return False
    try:
        post(url, f"[drgui · {ws.plan.name}] {text}")
    except OperationFailed as error:
        log.warning("notification not sent: %s", error.message)
        return False
    return True


def backup_finished(ws: Workspace, status: str, message: str | None = None) -> None:
    """Called at the end of every backup run: a failure or partial result, and any alert, is sent."""
    from drgui.core.ops.alerts import compute_alerts

    lines = []
    if status in ("failed", "partial"):
        lines.append(f"Backup {status}: {message or 'see `drgui history`'}")
    lines.extend(alert.message for alert in compute_alerts(ws, datetime.now(UTC)))
    if lines:
        notify(ws, "\n".join(lines))
