"""drgui snapshots: what each destination holds."""

from __future__ import annotations

from drgui.cli.common import add_command, workspace
from drgui.cli.output import human_bytes
from drgui.core.catalog import list_snapshots


def register(sub, common) -> None:
    parser = add_command(sub, common, "snapshots", "list snapshots", run)
    parser.add_argument("--dest", metavar="NAME", help="only this destination")


def run(args, out) -> int:
    ws = workspace(args)
    rows = list_snapshots(ws, args.dest)
    lines = [
        f"{r['id']}  {human_bytes(r['bytes']):>9}  {','.join(r['sources']):<24} {','.join(r['destinations'])}"
        for r in rows
    ]
    out.result(rows, "\n".join(lines) or "No snapshots yet: `drgui backup`.")
    return 0
