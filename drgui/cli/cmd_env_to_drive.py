"""drgui env-to-drive: copy every .env, age-encrypted, to the registered drive; or restore a copy from it."""

from __future__ import annotations

from pathlib import Path

from drgui.cli.common import add_command, workspace
from drgui.core.envsync import CURRENT, VERSIONS, restore_env_from_drive, sync_env_to_drive
from drgui.core.errors import UsageError
from drgui.core.setup import read_secret_file


def register(sub, common) -> None:
    parser = add_command(
        sub, common, "env-to-drive", "copy the .env files, encrypted, to the registered drive", run
    )
    parser.add_argument("--drive", metavar="NAME", help="the drive destination (default: the plugged-in one)")
    parser.add_argument(
        "--restore", choices=VERSIONS, metavar="current|previous", help="restore a copy instead of syncing"
    )
    parser.add_argument("--to-dir", help="with --restore: where to write the .env")
    parser.add_argument("--source", metavar="NAME", help="with --restore: only this env source")
    parser.add_argument(
        "--passphrase-file", help="with --restore: open the drive's identity.age instead of using the keyring"
    )
    parser.add_argument("--overwrite", action="store_true", help="with --restore: replace an existing file")


def run(args, out) -> int:
    if args.restore:
        return run_restore(args, out)
    if args.to_dir or args.source or args.passphrase_file or args.overwrite:
        raise UsageError("--to-dir, --source, --passphrase-file and --overwrite go with --restore.")
    result = sync_env_to_drive(workspace(args), args.drive, progress=out.progress)
    lines = [f"Drive '{result.drive}': {result.root}"]
    for copy in result.copies:
        state = {"first": "first copy written", "written": "new version written", "unchanged": "unchanged"}
        lines.append(f"  {copy.source}: {state.get(copy.status, copy.status)} ({copy.keys} keys)")
        for label, names in (("added", copy.added), ("removed", copy.removed), ("changed", copy.changed)):
            if names and copy.status != "first":
                lines.append(f"    {label}: {', '.join(names)}")
        if copy.repaired:
            lines.append(f"    repaired an interrupted sync: {'; '.join(copy.repaired)}")
    lines.append("Read back and verified. " + result.unplug_advice())
    out.result(result.to_json(), "\n".join(lines))
    return 0


def run_restore(args, out) -> int:
    if not args.to_dir:
        raise UsageError("--restore needs --to-dir DIR.")
    passphrase = read_secret_file(args.passphrase_file, "passphrase") if args.passphrase_file else None
    restored = restore_env_from_drive(
        workspace(args),
        args.drive,
        Path(args.to_dir).absolute(),
        args.restore or CURRENT,
        source_name=args.source,
        passphrase=passphrase,
        overwrite=args.overwrite,
    )
    out.result(
        {"ok": True, "restored": [r.to_json() for r in restored]},
        "\n".join(f"Restored the {r.version} copy of '{r.source}' into {r.target}." for r in restored),
    )
    return 0
