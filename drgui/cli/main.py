"""`drgui`: the command line on the same engine as the app. Exit codes: shared/design.md section 6."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Sequence

import drgui
from drgui.cli.common import check_home
from drgui.cli.output import Output
from drgui.core.engine.scratch import sweep_at_start
from drgui.core.errors import EXIT_FAILED, EXIT_USAGE, DrguiError
from drgui.core.plan.secrets import redact
from drgui.core.plan.secretsdir import SECRETS_DIR_ENV

DEBUG_ENV = "DRGUI_DEBUG"

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
    "secrets",
)


class UsageExit(SystemExit):
    """argparse refused the command line (unknown command, missing option, bad choice)."""

    def __init__(self, message: str) -> None:
        super().__init__(EXIT_USAGE)
        self.message = message


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise UsageExit(message)


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
    common.add_argument(
        "--secrets-dir",
        default=argparse.SUPPRESS,
        metavar="DIR",
        help="read and store secrets in this private directory (0700, files 0600) instead of a keyring: "
        "for a headless server (default: $DRGUI_SECRETS_DIR)",
    )
    return common


def _wanted_commands(argv: Sequence[str] | None) -> tuple[str, ...]:
    """Only the module of the command being run is imported (start-up time counts for `backup`
    against bare pg_dump); --help, --version and unknown words get every command."""
    words = list(sys.argv[1:] if argv is None else argv)
    for index, word in enumerate(words):
        if word.startswith("-") or (index and words[index - 1] in ("--home", "--secrets-dir")):
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
    words = list(sys.argv[1:] if argv is None else argv)
    wants_json = "--json" in words[: words.index("--")] if "--" in words else "--json" in words
    try:
        args = parser.parse_args(argv)
    except UsageExit as refused:
        usage: dict[str, object] = {
            "error": refused.message,
            "hint": "See `drgui --help`.",
            "kind": "UsageError",
        }
        return _report(Output(wants_json), usage, f"drgui: error: {refused.message}", EXIT_USAGE)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        usage = {
            "error": "No command given.",
            "hint": "See `drgui --help`.",
            "kind": "UsageError",
        }
        return _report(Output(wants_json), usage, "drgui: error: no command given", EXIT_USAGE)
    args.home = getattr(args, "home", None)
    args.json = getattr(args, "json", False)
    if getattr(args, "secrets_dir", None):  # the one channel to core and to child drgui processes
        os.environ[SECRETS_DIR_ENV] = os.path.abspath(os.path.expanduser(args.secrets_dir))
    out = Output(args.json)
    sweep_at_start(args.home)  # decrypted dumps and pgpass files a killed drgui left behind
    try:
        check_home(args.home)
        code = int(args.handler(args, out) or 0)
        sys.stdout.flush()
        return code
    except DrguiError as error:
        return _report(out, error.to_json(), redact(f"drgui: {error}"), error.exit_code)
    except KeyboardInterrupt:
        print("drgui: interrupted; nothing half-written was kept.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _stdout_closed()
    except Exception as error:  # the last line of defence: one short message, never a traceback
        if os.environ.get(DEBUG_ENV):
            traceback.print_exc()
        message = f"unexpected {type(error).__name__}: {redact(str(error))[:300]}"
        text = f"drgui: {message}\n  Fix: please report this; set {DEBUG_ENV}=1 to see the details."
        return _report(out, {"error": message, "hint": None, "kind": "InternalError"}, text, EXIT_FAILED)


def _report(out: Output, data: dict[str, object], text: str, code: int) -> int:
    """The error as the one JSON document (unless one was printed already) and as text on stderr."""
    try:
        if not out.printed:
            out.result({"ok": False, **data})
        print(text, file=sys.stderr)
        sys.stdout.flush()
    except BrokenPipeError:
        return _stdout_closed()
    return code


def _stdout_closed() -> int:
    """The reader went away (`drgui history | head`): quietly, as Python's documentation recommends, point
    stdout at devnull so the flush at exit does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
