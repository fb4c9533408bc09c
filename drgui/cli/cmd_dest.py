"""drgui dest add|edit|list|remove|test; the options of add and edit come from the kinds' declarations."""

from __future__ import annotations

import argparse

from drgui.cli.common import add_command, show_help, workspace
from drgui.cli.kind_options import (
    add_kind_parsers,
    add_no_test,
    add_union_options,
    refuse_foreign_options,
    save_added,
    save_edited,
)
from drgui.core.engine.destinations.registry import DEST_KINDS, dest_kind, open_destination
from drgui.core.plan.setup import RETENTION_RULES, remove_destination

NO_TEST = "save without testing"


def register(sub, common) -> None:
    parser: argparse.ArgumentParser = add_command(
        sub, common, "dest", "manage where snapshots go", lambda a, o: show_help(parser)
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    add = add_command(actions, common, "add", "add a destination: NAME KIND [options of the kind]", run_add)
    add_kind_parsers(add, common, DEST_KINDS.all(), NO_TEST)
    edit = add_command(
        actions,
        common,
        "edit",
        "change settings or retention of a destination (only the options given change)",
        run_edit,
    )
    edit.add_argument("name")
    add_union_options(edit, DEST_KINDS.all())
    for option, _field, value_type, help_text in RETENTION_RULES:
        edit.add_argument(
            f"--keep-{option}",
            dest=f"keep_{option}",
            type=value_type,
            metavar="DURATION" if value_type is str else "N",
            help=help_text + ("" if value_type is str else " (0 turns the rule off)"),
        )
    add_no_test(edit, NO_TEST)
    add_command(actions, common, "list", "list destinations", run_list)
    rm = add_command(actions, common, "remove", "remove a destination (its snapshots stay)", run_remove)
    rm.add_argument("name")
    test = add_command(actions, common, "test", "check write, read, list and delete", run_test)
    test.add_argument("name")


def run_add(args, out) -> int:
    ws = workspace(args)
    kind = dest_kind(args.kind)
    save_added(ws, "destination", args, kind)
    dest = open_destination(ws.plan.destination(args.name), ws.store)
    description = dest.describe()
    data = {"ok": True, "name": args.name, "kind": args.kind, "description": description}
    human = [f"Destination '{args.name}' added: {description}."]
    if hasattr(dest, "probe_keys") and not getattr(args, "no_test", False):  # S3: what each key can do
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


def run_edit(args, out) -> int:
    ws = workspace(args)
    kind = dest_kind(ws.plan.destination(args.name).kind)
    refuse_foreign_options(args, kind, DEST_KINDS.all(), f"Destination '{args.name}'")
    retention = {field: getattr(args, f"keep_{option}") for option, field, _type, _help in RETENTION_RULES}
    given = save_edited(
        ws, "destination", args, kind, retention={k: v for k, v in retention.items() if v is not None}
    )
    config = ws.plan.destination(args.name)
    description = open_destination(config, ws.store).describe()
    changed = sorted([*given, *(f"keep_{k}" for k, v in retention.items() if v is not None)])
    out.result(
        {
            "ok": True,
            "name": args.name,
            "kind": kind.name,
            "description": description,
            "retention": config.retention,
            "changed": changed,
        },
        f"Destination '{args.name}' changed ({', '.join(changed) or 'nothing'}): {description}; "
        f"keeps {', '.join(f'{k} {v}' for k, v in config.retention.items()) or 'the defaults'}.",
    )
    return 0


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
    if hasattr(dest, "probe_keys"):
        data.update(_s3_keys(ws, dest, human))
    out.result(data, "\n".join(human))
    return 0
