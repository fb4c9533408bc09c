"""drgui notify set-webhook|test|clear|alerts: the optional webhook and the current alerts."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from drgui.cli.common import add_command, show_help, workspace
from drgui.cli.output import read_secret
from drgui.core.errors import UsageError
from drgui.core.ops.alerts import compute_alerts
from drgui.core.ops.notify import clear_webhook, notify, post, set_webhook, webhook_url


def register(sub, common) -> None:
    parser: argparse.ArgumentParser = add_command(
        sub, common, "notify", "webhook on failures and alerts", lambda a, o: show_help(parser)
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    set_cmd = add_command(actions, common, "set-webhook", "store a Slack-compatible webhook URL", run_set)
    set_cmd.add_argument("--url-file", help="file holding the webhook URL (it is a secret; else prompt)")
    add_command(actions, common, "test", "send a test message to the webhook", run_test)
    add_command(actions, common, "clear", "forget the webhook", run_clear)
    alerts = add_command(actions, common, "alerts", "show the current alerts", run_alerts)
    alerts.add_argument("--send", action="store_true", help="also send them to the webhook")


def run_set(args, out) -> int:
    ws = workspace(args)
    set_webhook(ws, read_secret(args.url_file, "--url-file", "Webhook URL"))
    out.result({"ok": True}, "Webhook stored in the keyring. Send a test with `drgui notify test`.")
    return 0


def run_test(args, out) -> int:
    ws = workspace(args)
    url = webhook_url(ws)
    if not url:
        raise UsageError(
            "No webhook is set.", hint="Set one with `drgui notify set-webhook --url-file FILE`."
        )
    post(url, f"[drgui · {ws.plan.name}] Test notification: failures and alerts will arrive here.")
    out.result({"ok": True}, "Test notification delivered.")
    return 0


def run_clear(args, out) -> int:
    had = clear_webhook(workspace(args))
    out.result({"ok": True, "removed": had}, "Webhook removed." if had else "No webhook was set.")
    return 0


def run_alerts(args, out) -> int:
    ws = workspace(args)
    alerts = compute_alerts(ws, datetime.now(UTC))
    sent = bool(alerts) and args.send and notify(ws, "\n".join(a.message for a in alerts))
    out.result(
        {"ok": not alerts, "alerts": [a.to_json() for a in alerts], "sent": sent},
        "\n".join(a.message for a in alerts) or "No alerts.",
    )
    return 0 if not alerts else 1
