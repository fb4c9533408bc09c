"""drgui snapshots: what each destination holds (exit 1 when one of them is damaged or not complete)."""

from __future__ import annotations

from drgui.cli.common import add_command, workspace
from drgui.cli.output import human_bytes
from drgui.core.engine.catalog import list_snapshots


def register(sub, common) -> None:
    parser = add_command(sub, common, "snapshots", "list snapshots", run)
    parser.add_argument("--dest", metavar="NAME", help="only this destination")


def run(args, out) -> int:
    ws = workspace(args)
    rows = list_snapshots(ws, args.dest)
    lines = []
    for row in rows:
        lines.append(
            f"{row['id']}  {human_bytes(row['bytes']):>9}  {','.join(row['sources']):<24} "
            f"{','.join(row['destinations'])}"
        )
        lines.extend(f"    NOT COMPLETE ({problem})" for problem in row["problems"])
    out.result(rows, "\n".join(lines) or "No snapshots yet: `drgui backup`.")
    return 0 if all(row["complete"] for row in rows) else 1
