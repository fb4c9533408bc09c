"""drgui env-to-drive: copy every .env, age-encrypted, to the registered drive; or restore a copy from it."""

from __future__ import annotations

from pathlib import Path

from drgui.cli.common import add_command, workspace
from drgui.core.errors import EXIT_PARTIAL, DrguiError, UsageError
from drgui.core.ops.envsync import (
    CURRENT,
    VERSIONS,
    drive_destination,
    restore_env_from_drive,
    sync_env_to_drive,
)
from drgui.core.plan.secrets import read_secret_file


def register(sub, common) -> None:
    parser = add_command(
        sub, common, "env-to-drive", "copy the .env files, encrypted, to the registered drive", run
    )
    parser.add_argument("--drive", metavar="NAME", help="the drive destination (default: the plugged-in one)")
    parser.add_argument(
        "--eject", action="store_true", help="after the sync, unmount, lock and power off the drive"
    )
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
    ws = workspace(args)
    dest = drive_destination(ws, args.drive)
    if args.eject and not dest.eject_commands():
        dest.eject()  # says why it cannot, before anything is written
    result = sync_env_to_drive(ws, dest.name, progress=out.progress)
    lines = [f"Drive '{result.drive}': {result.root}"]
    for copy in result.copies:
        state = {"first": "first copy written", "written": "new version written", "unchanged": "unchanged"}
        lines.append(f"  {copy.source}: {state.get(copy.status, copy.status)} ({copy.keys} keys)")
        for label, names in (("added", copy.added), ("removed", copy.removed), ("changed", copy.changed)):
            if names and copy.status != "first":
                lines.append(f"    {label}: {', '.join(names)}")
        if copy.repaired:
            lines.append(f"    repaired an interrupted sync: {'; '.join(copy.repaired)}")
    document, code = result.to_json(), 0
    if not args.eject:
        lines.append("Read back and verified. " + result.unplug_advice())
    else:
        out.info(f"Ejecting drive '{result.drive}'…")
        try:
            dest.eject()
        except DrguiError as error:  # the copy is safe on the drive; only the eject is left to do
            document.update(ejected=False, eject_error=error.message, eject_hint=error.hint)
            lines.append(
                f"Read back and verified, but not ejected: {error.message} {error.hint or ''}".rstrip()
            )
            code = EXIT_PARTIAL
        else:
            document["ejected"] = True
            lines.append("Read back and verified. Ejected: you can unplug it now.")
    out.result(document, "\n".join(lines))
    return code


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
