"""The options of `source|dest add|edit`, generated from the kinds' declarations (drgui.core.engine.kinds),
and the one translation of parsed options into the plain mappings core takes (core never sees argparse)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from typing import Any

from drgui.core.engine.kinds import Kind, Role, Setting
from drgui.core.plan import setup
from drgui.core.plan.secrets import read_secret_file, remember
from drgui.core.plan.workspace import Workspace


def _dest(setting: Setting) -> str:
    return setting.option[2:].replace("-", "_")


def _add_option(parser: argparse.ArgumentParser, setting: Setting, help_text: str) -> None:
    if setting.secret_file:
        parser.add_argument(setting.option, dest=_dest(setting), metavar="FILE", help=help_text)
    elif setting.type is bool:
        parser.add_argument(
            setting.option,
            dest=_dest(setting),
            action=argparse.BooleanOptionalAction,
            default=None,
            help=help_text,
        )
    elif setting.repeatable:
        parser.add_argument(
            setting.option, dest=_dest(setting), action="append", metavar=setting.name.upper(), help=help_text
        )
    else:
        parser.add_argument(setting.option, dest=_dest(setting), metavar=setting.name.upper(), help=help_text)


def add_kind_options(parser: argparse.ArgumentParser, kind: Kind, *, required_marks: bool = True) -> None:
    """One option per setting of `kind` (`--name`, `--name-file` for a secret read from a file)."""
    for setting in kind.settings:
        mark = " (required)" if setting.required and required_marks else ""
        _add_option(parser, setting, setting.help + mark)


def add_union_options(parser: argparse.ArgumentParser, kinds: Iterable[Kind]) -> None:
    """The options of every kind at once (for `edit`, where the kind comes from the plan): one option per
    name, its help saying which kinds take it."""
    by_option: dict[str, tuple[Setting, list[str]]] = {}
    for kind in kinds:
        for setting in kind.settings:
            entry = by_option.setdefault(setting.option, (setting, []))
            entry[1].append(f"{kind.name}: {setting.help}")
    for setting, helps in by_option.values():
        merged = "; ".join(dict.fromkeys(helps))
        _add_option(parser, setting, merged.replace("%", "%%"))


def add_no_test(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--no-test", action="store_true", default=argparse.SUPPRESS, help=help_text)


def add_kind_parsers(
    add: argparse.ArgumentParser, common: argparse.ArgumentParser, kinds: Iterable[Kind], no_test_help: str
) -> None:
    """`add NAME KIND [options of the kind]`: the name, --no-test, and one subcommand a kind."""
    add.add_argument("name")
    add_no_test(add, no_test_help)
    parsers = add.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind in kinds:
        one = parsers.add_parser(
            kind.name,
            parents=[common],
            help=kind.description,
            description=f"{kind.label}: {kind.description}.",
        )
        add_kind_options(one, kind)
        add_no_test(one, no_test_help)


def _interactive() -> bool:
    return sys.stdin.isatty() and os.environ.get("DRGUI_NO_PROMPT") != "1"


def kind_values(
    args: argparse.Namespace, kind: Kind
) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """(values, secrets, fallback secrets from the environment) of `kind` from parsed options; options not
    given are left out, so `edit` changes only what was given."""
    values: dict[str, Any] = {}
    secrets: dict[str, str] = {}
    for setting in kind.settings:
        given = getattr(args, _dest(setting), None)
        if given is None:
            continue
        if setting.secret_file:
            secrets[setting.name] = read_secret_file(str(given), setting.title)
        elif setting.secret:
            secrets[setting.name] = str(given)
        else:
            values[setting.name] = given
    fallback = {
        s.name: os.environ[s.env] for s in kind.settings if s.secret and s.env and os.environ.get(s.env)
    }
    for setting in kind.settings:
        asked = setting.prompt_after is not None and setting.prompt_after in secrets
        missing = setting.name not in secrets and setting.name not in fallback
        if setting.prompt and asked and missing and _interactive():
            import getpass

            secrets[setting.name] = getpass.getpass(setting.prompt)
    for value in (*secrets.values(), *fallback.values()):
        remember(value)
    return values, secrets, fallback


def save_added(ws: Workspace, role: Role, args: argparse.Namespace, kind: Kind) -> None:
    """`add NAME KIND`: the kind's values from the options, added (and tested unless --no-test)."""
    values, secrets, fallback = kind_values(args, kind)
    setup.add(
        ws,
        role,
        args.name,
        kind.name,
        values,
        secrets=secrets,
        fallback=fallback,
        test=not getattr(args, "no_test", False),
    )


def save_edited(ws: Workspace, role: Role, args: argparse.Namespace, kind: Kind, **extra: Any) -> list[str]:
    """`edit NAME`: the options given, changed (and tested unless --no-test); `extra` goes to
    `setup.edit` as it is. Returns the names of the settings and secrets given."""
    values, secrets, fallback = kind_values(args, kind)
    setup.edit(
        ws,
        role,
        args.name,
        values,
        secrets=secrets,
        fallback=fallback,
        test=not getattr(args, "no_test", False),
        **extra,
    )
    return [*values, *secrets]


def refuse_foreign_options(args: argparse.Namespace, kind: Kind, kinds: Iterable[Kind], what: str) -> None:
    """`edit` takes every kind's options; one the entry's kind does not have is bad usage, not ignored."""
    from drgui.core.errors import UsageError

    own = {s.option for s in kind.settings}
    foreign = sorted(
        {
            s.option
            for other in kinds
            for s in other.settings
            if s.option not in own and getattr(args, _dest(s), None) is not None
        }
    )
    if foreign:
        raise UsageError(
            f"{what} is a {kind.name} {kind.role}: it has no {', '.join(foreign)}.",
            hint=f"Its options: {', '.join(s.option for s in kind.settings) or 'none'}.",
        )
