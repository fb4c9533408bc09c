"""drgui source add|edit|list|remove|test; the options of add and edit come from the kinds' declarations."""

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
from drgui.core.engine.sources.registry import SOURCE_KINDS, open_source, source_kind
from drgui.core.plan.setup import remove_source

NO_TEST = "save without testing the connection"


def register(sub, common) -> None:
    parser: argparse.ArgumentParser = add_command(
        sub, common, "source", "manage what is backed up", lambda a, o: show_help(parser)
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    add = add_command(actions, common, "add", "add a source: NAME KIND [options of the kind]", run_add)
    add_kind_parsers(add, common, SOURCE_KINDS.all(), NO_TEST)
    edit = add_command(
        actions, common, "edit", "change settings of a source (only the options given change)", run_edit
    )
    edit.add_argument("name")
    add_union_options(edit, SOURCE_KINDS.all())
    add_no_test(edit, NO_TEST)
    add_command(actions, common, "list", "list sources", run_list)
    rm = add_command(actions, common, "remove", "remove a source (and its keyring entries)", run_remove)
    rm.add_argument("name")
    test = add_command(actions, common, "test", "check that a source is reachable", run_test)
    test.add_argument("name")


def run_add(args, out) -> int:
    ws = workspace(args)
    kind = source_kind(args.kind)
    save_added(ws, "source", args, kind)
    description = open_source(ws.plan.source(args.name), ws.store).describe()
    out.result(
        {"ok": True, "name": args.name, "kind": args.kind, "description": description},
        f"Source '{args.name}' added: {description}.",
    )
    return 0


def run_edit(args, out) -> int:
    ws = workspace(args)
    kind = source_kind(ws.plan.source(args.name).kind)
    refuse_foreign_options(args, kind, SOURCE_KINDS.all(), f"Source '{args.name}'")
    changed = sorted(save_edited(ws, "source", args, kind))
    description = open_source(ws.plan.source(args.name), ws.store).describe()
    out.result(
        {"ok": True, "name": args.name, "kind": kind.name, "description": description, "changed": changed},
        f"Source '{args.name}' changed ({', '.join(changed) or 'nothing'}): {description}.",
    )
    return 0


def run_list(args, out) -> int:
    ws = workspace(args)
    rows = [
        {"name": s.name, "kind": s.kind, "description": open_source(s, ws.store).describe()}
        for s in ws.plan.sources
    ]
    out.result(
        rows,
        "\n".join(f"{r['name']:<16} {r['kind']:<9} {r['description']}" for r in rows)
        or "No sources yet: `drgui source add`.",
    )
    return 0


def run_remove(args, out) -> int:
    ws = workspace(args)
    remove_source(ws, args.name)
    out.result(
        {"ok": True, "name": args.name}, f"Source '{args.name}' removed. Its snapshots stay where they are."
    )
    return 0


def run_test(args, out) -> int:
    ws = workspace(args)
    message = open_source(ws.plan.source(args.name), ws.store).test()
    out.result({"ok": True, "name": args.name, "detail": message}, message)
    return 0
