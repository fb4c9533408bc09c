"""drgui gui: open the desktop app (optionally on a page, or just take a screenshot of it)."""

from __future__ import annotations

import importlib
from pathlib import Path

from drgui.cli.common import add_command
from drgui.core.errors import EnvironmentNotReady, UsageError
from drgui.core.plan.home import Home
from drgui.gui.page_names import PAGES


def register(sub, common) -> None:
    parser = add_command(sub, common, "gui", "open the desktop app", run)
    parser.add_argument("--page", choices=PAGES, help="page to open")
    parser.add_argument("--screenshot", metavar="PNG", help="save a PNG of the window once loaded, then exit")
    parser.add_argument("--size", metavar="WxH", help="window size for --screenshot, e.g. 800x600")
    parser.add_argument("--tray", action="store_true", default=True, help="show the tray icon (default)")
    parser.add_argument("--no-tray", dest="tray", action="store_false", help="no tray icon")
    parser.add_argument(
        "--install-autostart", action="store_true", help="start the tray app at login, then exit"
    )


def run(args, out) -> int:
    if args.install_autostart:
        try:
            autostart = importlib.import_module("drgui.core.platform.autostart")
        except ModuleNotFoundError:
            raise EnvironmentNotReady(
                "Autostart is not available in this build.",
                hint="Add drgui-gui to your desktop's startup apps.",
            ) from None
        home = Home.resolve(args.home) if args.home else None
        paths = autostart.install_autostart(home=home.path if home else None)
        written = ", ".join(str(p) for p in paths)
        commands = [" ".join(c) for c in autostart.activation_commands(paths)]
        human = f"drgui will start at login. Written: {written}"
        if commands:
            human += "\nTo activate the scheduled runs now: " + " && ".join(commands)
        out.result({"ok": True, "autostart": [str(p) for p in paths], "activate": commands}, human)
        return 0
    try:
        from drgui.gui.app import run_app
    except ImportError as error:
        raise EnvironmentNotReady(
            f"The desktop app cannot start: {error}.",
            hint="Install PySide6 (pip install PySide6-Essentials) and the Qt xcb libraries.",
        ) from None
    if args.screenshot and not args.screenshot.lower().endswith(".png"):
        raise UsageError("--screenshot needs a .png path.")
    size = parse_size(args.size) if args.size else None
    home = Home.resolve(args.home)
    screenshot = Path(args.screenshot).absolute() if args.screenshot else None
    return run_app(home, page=args.page, screenshot=screenshot, tray=args.tray, size=size)


def parse_size(text: str) -> tuple[int, int]:
    """'800x600' -> (800, 600)."""
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or int(width) < 1 or int(height) < 1:
        raise UsageError(
            f"'{text}' is not a window size.", hint="Write WIDTHxHEIGHT in pixels, e.g. 800x600."
        )
    return int(width), int(height)
