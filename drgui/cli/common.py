"""Small helpers shared by the command modules."""

from __future__ import annotations

import argparse

from drgui.core.errors import EXIT_USAGE, UsageError
from drgui.core.plan.home import Home
from drgui.core.plan.workspace import Workspace


def add_command(
    sub, common: argparse.ArgumentParser, name: str, help_text: str, handler
) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
    parser.set_defaults(handler=handler)
    return parser


def show_help(parser: argparse.ArgumentParser) -> int:
    """A command group run without its action: its help, and the bad-usage exit code."""
    parser.print_help()
    return EXIT_USAGE


def workspace(args: argparse.Namespace) -> Workspace:
    return Workspace(Home.resolve(args.home))


def check_home(explicit: str | None) -> None:
    """The plan home (--home, $DRGUI_HOME or the default) must be a directory or not exist yet."""
    home = Home.resolve(explicit).path
    for path in (home, *home.parents):
        if path.exists() and not path.is_dir():
            raise UsageError(
                f"The plan home {home} is not a directory"
                + (f": {path} is a file." if path != home else " (it is a file)."),
                hint="Pass --home with a directory (a new one for `drgui init`), or set DRGUI_HOME to one.",
            )
        if path.exists():
            return
