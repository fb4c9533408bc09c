"""drgui secrets list|seal|unit: secrets on a headless server (systemd credentials or --secrets-dir)."""

from __future__ import annotations

import argparse
import getpass
import re
from pathlib import Path

from drgui.cli.common import add_command, show_help, workspace
from drgui.cli.output import read_secret
from drgui.core.engine.fsutil import atomic_write_text
from drgui.core.errors import UsageError
from drgui.core.plan.secrets import backend_status
from drgui.core.plan.secretsdir import CREDSTORE_DIR, credential_name, seal, sealed
from drgui.core.platform.autostart import find_executable, render_server_units


def register(sub, common) -> None:
    parser: argparse.ArgumentParser = add_command(
        sub,
        common,
        "secrets",
        "secrets on a headless server: systemd credentials, --secrets-dir",
        lambda a, o: show_help(parser),
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    add_command(actions, common, "list", "the secret names this plan uses, and which are present", run_list)
    seal_cmd = add_command(
        actions, common, "seal", "encrypt one secret with systemd-creds for the unit", run_seal
    )
    seal_cmd.add_argument("name", help="the secret's name, as `drgui secrets list` shows it")
    seal_cmd.add_argument("--value-file", help="file holding the secret (else prompt)")
    unit = add_command(
        actions, common, "unit", "write systemd system units that load the sealed secrets", run_unit
    )
    unit.add_argument("--user", default=getpass.getuser(), help="the OS user drgui runs as (default: you)")
    unit.add_argument("--output-dir", help="write the unit files here (default: print them)")


def _names(args) -> list[str]:
    return sorted({credential_name(*entry) for entry in workspace(args).secret_entries()})


def run_list(args, out) -> int:
    ws = workspace(args)
    status = backend_status()
    rows = []
    for kind, name, field in ws.secret_entries():
        present = ws.store.get(kind, name, field) is not None
        rows.append({"name": credential_name(kind, name, field), "present": present})
    rows.sort(key=lambda row: str(row["name"]))
    sealed_names = {name for name, _ in sealed(ws.home.path)}
    for row in rows:
        row["sealed"] = row["name"] in sealed_names
    text = [f"Secrets are read from {status.name}."]
    text += [
        f"  {row['name']}: {'present' if row['present'] else 'missing'}{' (sealed)' if row['sealed'] else ''}"
        for row in rows
    ]
    out.result({"ok": status.usable, "backend": status.name, "secrets": rows}, "\n".join(text))
    return 0


def run_seal(args, out) -> int:
    names = _names(args)
    if args.name not in names or not re.fullmatch(r"[A-Za-z0-9._-]+", args.name):
        raise UsageError(
            f"'{args.name}' is not a secret of this plan.", hint="Use one of: " + ", ".join(names) + "."
        )
    value = read_secret(args.value_file, "--value-file", args.name)
    ws = workspace(args)
    path = seal(args.name, value, ws.home.path / CREDSTORE_DIR / args.name)
    out.result(
        {"ok": True, "name": args.name, "path": str(path)},
        f"Sealed {args.name} into {path}. `drgui secrets unit` adds it to the systemd unit.",
    )
    return 0


def run_unit(args, out) -> int:
    ws = workspace(args)
    texts = render_server_units(find_executable(), ws.home.path, args.user, sealed(ws.home.path))
    if args.output_dir:
        folder = Path(args.output_dir)
        if not folder.is_dir():
            raise UsageError(f"{folder} is not a directory.", hint="Create it, or give /etc/systemd/system.")
        written = []
        for name, text in texts.items():
            atomic_write_text(folder / name, text, mode=0o644)
            written.append(str(folder / name))
        human = (
            "Wrote "
            + ", ".join(written)
            + ". Then: systemctl daemon-reload && systemctl enable --now drgui-run-due.timer"
        )
        out.result({"ok": True, "units": written}, human)
    else:
        out.result({"ok": True, "units": texts}, "\n".join(f"# {n}\n{t}" for n, t in texts.items()))
    return 0
