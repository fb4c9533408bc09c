"""`drgui`: the command line on the same engine as the app. Exit codes: shared/design.md section 6."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

import drgui
from drgui.cli.output import Output
from drgui.core.errors import EXIT_USAGE, DrguiError
from drgui.core.scratch import sweep_at_start
from drgui.core.secrets import redact

COMMAND_MODULES = (
    "init",
    "source",
    "dest",
    "backup",
    "snapshots",
    "verify",
    "restore",
    "status",
    "history",
    "prune",
    "drill",
    "demo",
    "gui",
    "run_due",
    "env_to_drive",
    "kit",
    "checklist",
    "notify",
)


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"drgui: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--home", default=argparse.SUPPRESS, help="plan directory (default: $DRGUI_HOME or per-user)"
    )
    common.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="one JSON document on stdout; human text on stderr",
    )
    return common


def _wanted_commands(argv: Sequence[str] | None) -> tuple[str, ...]:
    """Only the module of the command being run is imported (start-up time counts for `backup`
    against bare pg_dump); --help, --version and unknown words get every command."""
    words = list(sys.argv[1:] if argv is None else argv)
    for index, word in enumerate(words):
        if word.startswith("-") or (index and words[index - 1] == "--home"):
            continue
        name = word.replace("-", "_")
        return (name,) if name in COMMAND_MODULES else COMMAND_MODULES
    return COMMAND_MODULES


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    common = common_options()
    parser = Parser(
        prog="drgui",
        description="Disaster recovery for a solo SaaS: back up, verify, restore, drill.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"drgui {drgui.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in _wanted_commands(argv):
        try:
            module = importlib.import_module(f"drgui.cli.cmd_{name}")
        except ModuleNotFoundError as error:
            if error.name == f"drgui.cli.cmd_{name}":
                continue
            raise
        module.register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    args.home = getattr(args, "home", None)
    args.json = getattr(args, "json", False)
    out = Output(args.json)
    sweep_at_start(args.home)  # decrypted dumps and pgpass files a killed drgui left behind
    try:
        return int(args.handler(args, out) or 0)
    except DrguiError as error:
        out.result({"ok": False, **error.to_json()})
        print(redact(f"drgui: {error}"), file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("drgui: interrupted; nothing half-written was kept.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
