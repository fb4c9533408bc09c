"""drgui source add|list|remove|test."""

from __future__ import annotations

import argparse
import os

from drgui.cli.common import add_command, show_help, workspace
from drgui.core.engine.sources.registry import open_source
from drgui.core.errors import UsageError
from drgui.core.plan.secrets import read_secret_file
from drgui.core.plan.setup import add_source, remove_source


def register(sub, common) -> None:
    parser: argparse.ArgumentParser = add_command(
        sub, common, "source", "manage what is backed up", lambda a, o: show_help(parser)
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    add = add_command(actions, common, "add", "add a source", run_add)
    add.add_argument("name")
    add.add_argument("kind", choices=["postgres", "folder", "env", "s3", "git"])
    add.add_argument(
        "--dsn", help="postgres: postgresql://USER[:PASSWORD]@HOST:PORT/DB; the password goes to the keyring"
    )
    add.add_argument("--password-file", help="postgres: file with the database password")
    add.add_argument("--path", help="folder, env, git: the path")
    add.add_argument(
        "--exclude", action="append", default=[], metavar="GLOB", help="folder: skip matching paths"
    )
    add.add_argument(
        "--require", action="append", default=[], metavar="KEY", help="env: a key that must exist"
    )
    add.add_argument("--bucket")
    add.add_argument("--prefix", default="")
    add.add_argument("--endpoint-url")
    add.add_argument("--region")
    add.add_argument("--access-key-id")
    add.add_argument("--secret-access-key-file")
    add.add_argument("--aws-profile")
    add.add_argument("--no-test", action="store_true", help="save without testing the connection")
    lst = add_command(actions, common, "list", "list sources", run_list)
    del lst
    rm = add_command(actions, common, "remove", "remove a source (and its keyring entries)", run_remove)
    rm.add_argument("name")
    test = add_command(actions, common, "test", "check that a source is reachable", run_test)
    test.add_argument("name")


def run_add(args, out) -> int:
    ws = workspace(args)
    settings: dict = {}
    secrets: dict[str, str] = {}
    if args.kind == "postgres":
        if not args.dsn:
            raise UsageError(
                "A postgres source needs --dsn.", hint="e.g. --dsn postgresql://app@db.example.com/app"
            )
        from drgui.core.engine.sources.postgres import split_dsn

        settings, password = split_dsn(args.dsn)
        if args.password_file:
            password = read_secret_file(args.password_file, "password")
        if password is None and os.environ.get("PGPASSWORD"):
            password = os.environ["PGPASSWORD"]
        if password:
            secrets["password"] = password
    elif args.kind in ("folder", "env", "git"):
        if not args.path:
            raise UsageError(f"A {args.kind} source needs --path.")
        settings["path"] = args.path
        if args.kind == "folder" and args.exclude:
            settings["exclude"] = args.exclude
        if args.kind == "env" and args.require:
            settings["require"] = args.require
    elif args.kind == "s3":
        from drgui.core.engine.s3common import s3_settings_from_args

        settings, secrets = s3_settings_from_args(args, for_source=True)
    config = add_source(ws, args.name, args.kind, settings, secrets=secrets, test=not args.no_test)
    description = open_source(config, ws.store).describe()
    out.result(
        {"ok": True, "name": args.name, "kind": args.kind, "description": description},
        f"Source '{args.name}' added: {description}.",
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
