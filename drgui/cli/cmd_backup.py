"""drgui backup: one snapshot of the selected sources to the selected destinations."""

from __future__ import annotations

from drgui.cli.common import add_command, workspace
from drgui.cli.output import human_bytes, scan_summary
from drgui.core.errors import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL
from drgui.core.ops.backup import run_backup


def register(sub, common) -> None:
    parser = add_command(sub, common, "backup", "back up now", run)
    parser.add_argument("--source", action="append", metavar="NAME", help="only this source (repeatable)")
    parser.add_argument("--dest", action="append", metavar="NAME", help="only this destination (repeatable)")
    parser.add_argument(
        "--force-read",
        action="store_true",
        help="read and hash every file of folder and S3 sources, also those unchanged since the last backup",
    )


def run(args, out) -> int:
    ws = workspace(args)
    result = run_backup(ws, args.source, args.dest, progress=out.progress, force_read=args.force_read)
    lines = [f"Snapshot {result.snapshot_id} in {result.seconds:.1f} s"]
    for source in result.sources:
        if not source.ok:
            lines.append(f"  source {source.name} ({source.kind}): NOT BACKED UP: {source.error}")
            continue
        extra = f", {source.tables} tables" if source.tables is not None else ""
        lines.append(f"  source {source.name} ({source.kind}): {human_bytes(source.bytes)}{extra}")
        if source.scan is not None:
            lines.append(f"    {scan_summary(source.scan)}")
        lines.extend(f"    warning: {w}" for w in source.warnings)
    for dest in result.destinations:
        state = (
            "ok"
            if dest.ok
            else f"FAILED: {dest.error}" + (" (queued for the next run)" if dest.queued else "")
        )
        lines.append(f"  destination {dest.name}: {state}")
    lines.extend(f"  warning: {w}" for w in result.warnings)
    out.result(result.to_json(), "\n".join(lines))
    if result.ok:
        return EXIT_OK
    return EXIT_PARTIAL if result.partial else EXIT_FAILED
