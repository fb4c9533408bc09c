"""drgui dest add|list|remove|test."""

from __future__ import annotations

import argparse

from drgui.cli.common import add_command, show_help, workspace
from drgui.core.engine.destinations.registry import open_destination
from drgui.core.errors import UsageError
from drgui.core.plan.setup import add_destination, remove_destination


def register(sub, common) -> None:
    parser: argparse.ArgumentParser = add_command(
        sub, common, "dest", "manage where snapshots go", lambda a, o: show_help(parser)
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    add = add_command(actions, common, "add", "add a destination", run_add)
    add.add_argument("name")
    add.add_argument("kind", choices=["local", "s3", "drive"])
    add.add_argument("--path", help="local: a directory; drive: the mount point")
    add.add_argument("--uuid", help="drive: the filesystem UUID")
    add.add_argument(
        "--allow-unencrypted", action="store_true", help="drive: accept a drive without encryption"
    )
    add.add_argument("--bucket")
    add.add_argument("--prefix", default="")
    add.add_argument("--endpoint-url")
    add.add_argument("--region")
    add.add_argument("--compat", action="store_true", help="s3: checksum behaviour for B2, R2, MinIO")
    add.add_argument("--access-key-id")
    add.add_argument("--secret-access-key-file")
    add.add_argument("--aws-profile")
    add.add_argument("--storage-class")
    add.add_argument("--sse", help="s3: server-side encryption (AES256 or aws:kms)")
    add.add_argument(
        "--object-lock-mode",
        choices=["governance", "compliance", "off"],
        help="s3: retention mode on a bucket with Object Lock (default governance when the bucket has it)",
    )
    add.add_argument(
        "--object-lock-margin-days",
        type=int,
        metavar="DAYS",
        help="s3: days of retention beyond what the retention policy keeps (default 7)",
    )
    add.add_argument(
        "--prune-access-key-id", help="s3: the key prune deletes with (the everyday one need not)"
    )
    add.add_argument("--prune-secret-access-key-file", metavar="FILE")
    add.add_argument("--no-test", action="store_true", help="save without testing")
    add_command(actions, common, "list", "list destinations", run_list)
    rm = add_command(actions, common, "remove", "remove a destination (its snapshots stay)", run_remove)
    rm.add_argument("name")
    test = add_command(actions, common, "test", "check write, read, list and delete", run_test)
    test.add_argument("name")


def run_add(args, out) -> int:
    ws = workspace(args)
    settings: dict = {}
    secrets: dict[str, str] = {}
    if args.kind == "local":
        if not args.path:
            raise UsageError("A local destination needs --path.")
        settings["path"] = args.path
    elif args.kind == "s3":
        from drgui.core.engine.s3common import s3_settings_from_args

        settings, secrets = s3_settings_from_args(args, for_source=False)
    elif args.kind == "drive":
        from drgui.core.engine.destinations.drive import drive_settings_from_args

        settings = drive_settings_from_args(args)
    config = add_destination(
        ws,
        args.name,
        args.kind,
        settings,
        secrets=secrets,
        test=not args.no_test,
        object_lock=getattr(args, "object_lock_mode", None) if args.kind == "s3" else None,
    )
    dest = open_destination(config, ws.store)
    description = dest.describe()
    data = {"ok": True, "name": args.name, "kind": args.kind, "description": description}
    human = [f"Destination '{args.name}' added: {description}."]
    if args.kind == "s3" and not args.no_test:
        data.update(_s3_keys(ws, dest, human))
    out.result(data, "\n".join(human))
    return 0


def _s3_keys(ws, dest, human: list[str]) -> dict:
    """What each key can do (tried on a test object) and the Object Lock in use; recorded for the status."""
    from drgui.core.ops.offsite import offsite_exposure, record_key_checks

    reports = dest.last_probe or dest.probe_keys()
    record_key_checks(ws, dest.name, reports)
    keys = [{k: r[k] for k in ("key", "list", "write", "read", "delete", "error")} for r in reports]
    for r in reports:
        human.append(f"  {r['key']} key: {'can delete' if r['delete'] else 'cannot delete'}")
    lock = {"mode": dest.lock_mode.lower(), "days": dest.lock_days} if dest.lock_mode else None
    human.append(
        f"  Object Lock: {lock['mode']}, every object kept {lock['days']} days"
        if lock
        else "  Object Lock: not used"
    )
    answer = next((a for a in offsite_exposure(ws) if a.name == dest.name), None)
    if answer is not None:
        human.append(f"  {answer.sentence}")
    return {
        "keys": keys,
        "object_lock": lock,
        "stolen_laptop_could_delete": answer.could_delete if answer else None,
    }


def run_list(args, out) -> int:
    ws = workspace(args)
    rows = []
    for config in ws.plan.destinations:
        dest = open_destination(config, ws.store)
        rows.append(
            {
                "name": config.name,
                "kind": config.kind,
                "description": dest.describe(),
                "retention": config.retention,
            }
        )
    out.result(
        rows,
        "\n".join(f"{r['name']:<16} {r['kind']:<6} {r['description']}" for r in rows)
        or "No destinations yet: `drgui dest add`.",
    )
    return 0


def run_remove(args, out) -> int:
    ws = workspace(args)
    remove_destination(ws, args.name)
    out.result(
        {"ok": True, "name": args.name}, f"Destination '{args.name}' removed. Its snapshots were not deleted."
    )
    return 0


def run_test(args, out) -> int:
    ws = workspace(args)
    dest = ws.destination(args.name)
    checked = dest.test()
    data = {"ok": True, "name": args.name, "checked": checked}
    human = [f"Destination '{args.name}': {', '.join(checked)} OK."]
    if dest.kind == "s3":
        data.update(_s3_keys(ws, dest, human))
    out.result(data, "\n".join(human))
    return 0
