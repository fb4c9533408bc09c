"""drgui history: runs; --verify the keyed audit chain against the destinations' anchors; --rebuild
after a lost history; --csv for an auditor."""

from __future__ import annotations

from pathlib import Path

from drgui.cli.common import add_command, workspace
from drgui.core.errors import UsageError
from drgui.core.ops import audit


def register(sub, common) -> None:
    parser = add_command(
        sub, common, "history", "show runs; --verify the audit chain; --rebuild; --csv for an auditor", run
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="check the keyed audit chain and the anchors at the destinations",
    )
    parser.add_argument(
        "--rebuild", action="store_true", help="after a lost history: write back what the destinations prove"
    )
    parser.add_argument("--csv", metavar="FILE", help="export the audit log as CSV")
    parser.add_argument("--limit", type=_positive, default=30, help="how many runs (default 30)")


def _positive(text: str) -> int:
    """argparse type: a whole number of at least 1 (SQLite reads LIMIT -5 as no limit)."""
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def run(args, out) -> int:
    if sum(bool(x) for x in (args.verify, args.rebuild, args.csv)) > 1:
        raise UsageError("Give one of --verify, --rebuild and --csv.")
    ws = workspace(args)
    history = ws.history
    if args.verify:
        result = audit.verify(ws)
        out.result(result.to_json(), result.human())
        return 0 if result.ok else 1
    if args.rebuild:
        rebuilt = audit.rebuild(ws)
        out.result(rebuilt.to_json(), rebuilt.human())
        return 0
    if args.csv:
        count = history.export_csv(Path(args.csv))
        out.result(
            {"ok": True, "records": count, "file": args.csv}, f"{count} records written to {args.csv}."
        )
        return 0
    runs = history.runs(limit=args.limit)
    rows = [
        {
            "id": r.id,
            "kind": r.kind,
            "started": r.started,
            "finished": r.finished,
            "status": r.status,
            "snapshot": r.snapshot_id,
            "target": r.target,
        }
        for r in runs
    ]
    out.result(
        rows,
        "\n".join(
            f"{r['started']}  {r['kind']:<10} {r['status']:<10} {r['target'] or ''} {r['snapshot'] or ''}"
            for r in rows
        )
        or "No runs yet.",
    )
    return 0
