"""drgui prune: apply each destination's retention policy (restic's forget semantics)."""

from __future__ import annotations

from drgui.cli.common import add_command, workspace
from drgui.core.errors import EXIT_FAILED, EXIT_OK
from drgui.core.ops.prune import prune


def register(sub, common) -> None:
    parser = add_command(sub, common, "prune", "remove snapshots the retention policy no longer keeps", run)
    parser.add_argument("--dry-run", action="store_true", help="show the plan with reasons; remove nothing")
    parser.add_argument("--dest", action="append", metavar="NAME", help="only this destination (repeatable)")


def run(args, out) -> int:
    ws = workspace(args)
    result = prune(ws, args.dest, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    lines = []
    for dest in result.destinations:
        if dest.error:
            lines.append(f"{dest.name}: FAILED: {dest.error}")
            continue
        lines.append(f"{dest.name} ({dest.policy}): keep {len(dest.keep)}, {verb} {len(dest.remove)}")
        for snapshot_id in dest.keep:
            lines.append(f"  keep   {snapshot_id}  {'; '.join(dest.reasons.get(snapshot_id, []))}")
        for snapshot_id in dest.remove:
            lines.append(f"  {'remove' if args.dry_run else 'gone  '} {snapshot_id}")
        for snapshot_id, why in dest.skipped.items():
            lines.append(f"  skipped {snapshot_id}: {why}")
        for snapshot_id, why in dest.damaged.items():
            lines.append(f"  left   {snapshot_id}: not complete ({why}); check it with `drgui verify`")
        if dest.leftovers:
            lines.append(f"  leftovers of interrupted runs removed: {', '.join(dest.leftovers)}")
        if dest.aborted_uploads:
            lines.append(
                f"  stale uploads {'to abort' if args.dry_run else 'aborted'}: {len(dest.aborted_uploads)}"
            )
    out.result(result.to_json(), "\n".join(lines) or "No destinations.")
    return EXIT_OK if result.ok else EXIT_FAILED
