"""drgui restore: a source from a snapshot into a NEW database or directory."""

from __future__ import annotations

from pathlib import Path

from drgui.cli.common import add_command, workspace
from drgui.core.engine.restore import restore
from drgui.core.errors import UsageError
from drgui.core.plan.secrets import read_secret_file, remember


def register(sub, common) -> None:
    parser = add_command(sub, common, "restore", "restore a source from a snapshot", run)
    parser.add_argument("snapshot", help="snapshot id or 'latest'")
    parser.add_argument("--source", required=True, metavar="NAME")
    parser.add_argument("--to-dsn", help="postgres: target database (a new one; created when missing)")
    parser.add_argument(
        "--password-file",
        metavar="FILE",
        help="postgres: file with the target server's password (keeps it out of --to-dsn)",
    )
    parser.add_argument("--to-dir", help="folder, env, git: a new or empty directory")
    parser.add_argument("--to-bucket", help="s3: restore the objects into this bucket")
    parser.add_argument("--to-prefix", default="", help="s3: key prefix in --to-bucket")
    parser.add_argument("--dest", metavar="NAME", help="read from this destination")
    parser.add_argument(
        "--clean", action="store_true", help="postgres: drop objects in a non-empty target first"
    )
    parser.add_argument("--no-owner", action="store_true", help="postgres: skip ownership and privileges")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="folder/env: allow a non-empty target (a folder is snapshotted first)",
    )


def run(args, out) -> int:
    to_password = None
    if args.password_file:
        if not args.to_dsn:
            raise UsageError(
                "--password-file is the password of the --to-dsn server.",
                hint="Use it with a database restore: --to-dsn postgresql://USER@HOST/NEWDB --password-file F.",
            )
        to_password = read_secret_file(args.password_file, "password")
        remember(to_password)
    ws = workspace(args)
    result = restore(
        ws,
        args.snapshot,
        args.source,
        to_dsn=args.to_dsn,
        to_dir=Path(args.to_dir).absolute() if args.to_dir else None,
        dest_name=args.dest,
        clean=args.clean,
        overwrite=args.overwrite,
        no_owner=args.no_owner,
        to_bucket=args.to_bucket,
        to_prefix=args.to_prefix,
        progress=out.progress,
        to_password=to_password,
    )
    bad = [c for c in result.checks if not c["ok"]]
    human = f"Restored '{result.source}' from {result.snapshot_id} into {result.target}: " + (
        f"{len(result.checks)} check{'' if len(result.checks) == 1 else 's'} passed."
        if not bad
        else "PROBLEMS:\n" + "\n".join(f"  {c['name']}: {c['detail']}" for c in bad)
    )
    if result.safety_snapshot:
        human += (
            f"\nSafety snapshot of what was replaced: {result.safety_snapshot} (get it back with "
            f"`drgui restore {result.safety_snapshot} --source pre-restore-{result.source} --to-dir DIR`)."
        )
    out.result(result.to_json(), human)
    return 0 if result.ok else 1
