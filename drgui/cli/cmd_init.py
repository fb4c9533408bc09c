"""drgui init: a new plan with its age identity (private half in the keyring)."""

from __future__ import annotations

from drgui.cli.common import add_command
from drgui.cli.output import read_secret
from drgui.core.plan.home import Home
from drgui.core.plan.setup import init_plan


def register(sub, common) -> None:
    parser = add_command(
        sub, common, "init", "create a plan: key pair, keyring entry, recovery passphrase", run
    )
    parser.add_argument("--name", required=True, help="product name, e.g. Acme")
    parser.add_argument("--rto", default="4h", help="recovery time objective (default 4h)")
    parser.add_argument("--rpo", default="24h", help="recovery point objective (default 24h)")
    parser.add_argument("--passphrase-file", help="file holding the recovery passphrase (else prompt)")


def run(args, out) -> int:
    passphrase = read_secret(args.passphrase_file, "--passphrase-file", "Recovery passphrase", confirm=True)
    ws = init_plan(Home.resolve(args.home), args.name, passphrase, rto=args.rto, rpo=args.rpo)
    out.result(
        {
            "ok": True,
            "plan": ws.plan.plan_id,
            "name": ws.plan.name,
            "home": str(ws.home.path),
            "recipient": ws.plan.recipient,
        },
        f"Plan '{ws.plan.name}' created in {ws.home.path}.\n"
        "The private key is in your keyring; a copy protected by your passphrase goes to every destination.\n"
        "Write the passphrase down and keep it offline: without it a new machine cannot restore.\n"
        "Next: `drgui source add ...` and `drgui dest add ...`.",
    )
    return 0
