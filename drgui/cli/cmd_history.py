"""drgui history: runs and the tamper-evident audit log."""

from __future__ import annotations

from pathlib import Path

from drgui.cli.common import add_command, workspace


def register(sub, common) -> None:
    parser = add_command(
        sub, common, "history", "show runs; --verify the audit chain; --csv for an auditor", run
    )
    parser.add_argument("--verify", action="store_true", help="check the hash chain of the audit log")
    parser.add_argument("--csv", metavar="FILE", help="export the audit log as CSV")
    parser.add_argument("--limit", type=_positive, default=30, help="how many runs (default 30)")


def _positive(text: str) -> int:
    """argparse type: a whole number of at least 1 (SQLite reads LIMIT -5 as no limit)."""
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def run(args, out) -> int:
    ws = workspace(args)
    history = ws.history
    if args.verify:
        problems = history.verify_chain()
        count = len(history.events())
        data = {
            "ok": not problems,
            "records": count,
            "problems": [{"seq": p.seq, "problem": p.problem} for p in problems],
        }
        human = (
            f"Audit log intact: {count} records."
            if not problems
            else f"Audit log TAMPERED: first bad record is #{problems[0].seq}: {problems[0].problem}."
        )
        out.result(data, human)
        return 0 if not problems else 1
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
