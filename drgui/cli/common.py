"""Small helpers shared by the command modules."""

from __future__ import annotations

import argparse

from drgui.core.home import Home
from drgui.core.workspace import Workspace


def add_command(
    sub, common: argparse.ArgumentParser, name: str, help_text: str, handler
) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
    parser.set_defaults(handler=handler)
    return parser


def workspace(args: argparse.Namespace) -> Workspace:
    return Workspace(Home.resolve(args.home))
