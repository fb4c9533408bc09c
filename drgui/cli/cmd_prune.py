"""drgui prune: apply each destination's retention policy (restic's forget semantics), then free the
format-2 packs no remaining snapshot references."""

from __future__ import annotations

from drgui.cli.common import add_command, workspace
from drgui.core import fmt
from drgui.core.engine import destlock
from drgui.core.errors import EXIT_ENVIRONMENT, EXIT_FAILED, EXIT_OK
from drgui.core.ops.prune import DestPrune, prune


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


def _pack_lines(dest: DestPrune, dry_run: bool) -> list[str]:
    packs = dest.packs
    if packs.blocked:
        return [f"  packs: not swept: {packs.blocked}"]
    if not packs.present:
        return []
    verb = "would free" if dry_run else "freed"
    lines = [
        f"  packs: {packs.referenced} referenced ({fmt.size(packs.referenced_bytes)}), "
        f"{verb} {len(packs.remove)} ({fmt.size(packs.freed_bytes)})"
    ]
    if packs.young:
        lines.append(
            f"  packs: {len(packs.young)} unreferenced but younger than a day (maybe a backup under way): kept"
        )
    for pack_id, why in packs.skipped.items():
        lines.append(f"  pack {pack_id} not removed: {why}")
    return lines


def run(args, out) -> int:
    ws = workspace(args)
    result = prune(ws, args.dest, dry_run=args.dry_run, lock_wait=args.lock_wait)
    verb = "would remove" if args.dry_run else "removed"
    lines: list[str] = []
    for dest in result.destinations:
        lines.extend(f"{dest.name}: {warning}" for warning in dest.warnings)
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
        lines.extend(_pack_lines(dest, args.dry_run))
    out.result(result.to_json(), "\n".join(lines) or "No destinations.")
    if result.ok:
        return EXIT_OK
    return EXIT_ENVIRONMENT if result.locked else EXIT_FAILED
