"""drgui verify: quick (no key) or --deep (decrypt, hashes, pg_restore reads the dump)."""

from __future__ import annotations

from drgui.cli.common import add_command, workspace
from drgui.core.engine.restore import resolve_snapshot
from drgui.core.engine.verify import verify_snapshot


def register(sub, common) -> None:
    parser = add_command(sub, common, "verify", "check a snapshot", run)
    parser.add_argument("snapshot", nargs="?", default="latest", help="snapshot id or 'latest'")
    parser.add_argument("--dest", metavar="NAME")
    parser.add_argument(
        "--deep", action="store_true", help="decrypt everything and read the dump with pg_restore"
    )


def run(args, out) -> int:
    ws = workspace(args)
    dest = ws.destination(args.dest) if args.dest else ws.default_read_destination()
    snapshot_id = resolve_snapshot(dest, args.snapshot)
    identity = ws.identity() if args.deep else None
    run_id = ws.history.start_run("verify", target=dest.name, snapshot_id=snapshot_id)
    result = verify_snapshot(dest, snapshot_id, deep=args.deep, identity=identity, progress=out.progress)
    ws.history.finish_run(run_id, "ok" if result.ok else "failed", detail=result.to_json())
    if result.ok:
        human = (
            f"Snapshot {snapshot_id} on '{dest.name}' is intact ({'deep' if args.deep else 'quick'} check, "
            f"{len(result.checked)} checks)."
        )
    else:
        human = f"Snapshot {snapshot_id} on '{dest.name}' has problems:\n" + "\n".join(
            f"  {p}" for p in result.problems
        )
    out.result(result.to_json(), human)
    return 0 if result.ok else 1
