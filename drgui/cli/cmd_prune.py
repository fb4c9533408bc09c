"""drgui prune: apply each destination's retention policy (restic's forget semantics), then free the
format-2 packs no remaining snapshot references."""

from __future__ import annotations

from drgui.cli.common import add_command, workspace
from drgui.core.engine import destlock
from drgui.core.errors import EXIT_ENVIRONMENT, EXIT_FAILED, EXIT_OK
from drgui.core.ops.prune import prune


def register(sub, common) -> None:
    parser = add_command(sub, common, "prune", "remove snapshots the retention policy no longer keeps", run)
    parser.add_argument("--dry-run", action="store_true", help="show the plan with reasons; remove nothing")
    parser.add_argument("--dest", action="append", metavar="NAME", help="only this destination (repeatable)")
    parser.add_argument(
        "--lock-wait",
        type=float,
        default=destlock.EXCLUSIVE_WAIT,
        metavar="SECONDS",
        help=f"wait this long for backups at a destination to finish (default {destlock.EXCLUSIVE_WAIT:g})",
    )


def run(args, out) -> int:
    ws = workspace(args)
    result = prune(ws, args.dest, dry_run=args.dry_run, lock_wait=args.lock_wait)
    out.result(result.to_json(), "\n".join(result.describe()) or "No destinations.")
    if result.ok:
        return EXIT_OK
    return EXIT_ENVIRONMENT if result.locked else EXIT_FAILED
