"""drgui drill: restore a snapshot into a scratch PostgreSQL and temp folders, check it, save a report."""

from __future__ import annotations

from drgui.cli.common import add_command, workspace
from drgui.core.ops.drill import run_drill
from drgui.core.plan.config import format_duration
from drgui.report.drill_report import write_report


def register(sub, common) -> None:
    parser = add_command(sub, common, "drill", "restore test: restore into scratch places and check", run)
    parser.add_argument("snapshot", nargs="?", default="latest", help="snapshot id or 'latest'")
    parser.add_argument(
        "--scratch",
        default="embedded",
        metavar="embedded|DSN",
        help="where databases are restored: a throw-away embedded PostgreSQL (default) or an EMPTY database",
    )
    parser.add_argument(
        "--dest", metavar="NAME", help="read from this destination (default: S3 when configured)"
    )


def run(args, out) -> int:
    ws = workspace(args)
    result = run_drill(
        ws,
        args.snapshot,
        scratch=args.scratch,
        dest_name=args.dest,
        progress=out.progress,
        report=write_report,
    )
    lines = [
        f"Restore drill of {result.snapshot_id} from {result.destination}: {'PASS' if result.ok else 'FAIL'}",
        f"  RTO {format_duration(result.rto_seconds or 0)} (target {format_duration(result.rto_target)}), "
        f"RPO {format_duration(result.rpo_seconds or 0)} (target {format_duration(result.rpo_target)})",
        f"  {len(result.checks) - len(result.failed_checks)} of {len(result.checks)} checks passed",
    ]
    lines += [f"  FAILED {c['name']}: {c['detail']}" for c in result.failed_checks]
    lines.append(f"  Report: {result.report_pdf}")
    out.result(result.to_json(), "\n".join(lines))
    return 0 if result.ok else 1
