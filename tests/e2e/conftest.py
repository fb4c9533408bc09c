"""End-to-end desktop: a real X server (Xvfb), system tray (trayer) and notification server (dunst) on
the test's private D-Bus session bus (tools/with-keyring), and the real app started as `python -m drgui
gui`. Every process is stopped at teardown with bounded waits."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from jeepney import DBusAddress, new_method_call
from jeepney.io.blocking import open_dbus_connection

from tests.engine_fixtures import make_plan, ok, write_folder
from tests.support import need

SCREEN = (1440, 900)
STARTUP = 20.0  # seconds: the most any process may take to come up
DUNSTRC = """\
[global]
    font = DejaVu Sans 10
    width = 420
    height = 300
    origin = top-right
    offset = 12x40
    frame_width = 2
    frame_color = "#3b6ea5"
    show_indicators = yes
    dmenu = {dmenu}
    browser = /bin/true
[urgency_low]
    background = "#ffffff"
    foreground = "#202020"
    timeout = 0
[urgency_normal]
    background = "#ffffff"
    foreground = "#202020"
    timeout = 0
[urgency_critical]
    background = "#fff0f0"
    foreground = "#202020"
    timeout = 0
"""
# dunst's context menu pipes every action of the displayed notifications into "dmenu" and invokes the
# line it prints back. This stand-in records the menu and picks the line named by $DRGUI_E2E_PICK.
FAKE_DMENU = """#!/bin/sh
tee "{menu}" | grep -m1 -F "$(cat "{pick}")"
"""


def wait_for(condition: Callable[[], Any], what: str, timeout: float = STARTUP) -> Any:
    """Poll `condition` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        select.select([], [], [], 0.05)  # a short pause without time.sleep


@dataclass
class Processes:
    """Child processes stopped in reverse order: SIGTERM, a bounded wait, then SIGKILL."""

    logs: Path
    children: list[tuple[subprocess.Popen, Any]] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str], **kwargs: Any) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("wb")
        process = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, **kwargs
        )
        self.children.append((process, log))
        return process

    def stop(self, process: subprocess.Popen) -> int | None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        return process.returncode

    def stop_all(self) -> None:
        for process, log in reversed(self.children):
            self.stop(process)
            log.close()
        self.children.clear()

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def session_bus_owner(name: str) -> bool:
    with open_dbus_connection(bus="SESSION") as connection:
        call = new_method_call(
            DBusAddress("/org/freedesktop/DBus", "org.freedesktop.DBus", "org.freedesktop.DBus"),
            "NameHasOwner",
            "s",
            (name,),
        )
        return bool(connection.send_and_get_reply(call, timeout=5).body[0])


def start_xvfb(processes: Processes) -> str:
    """Xvfb on a display number it picks itself (-displayfd): no clash with other X servers."""
    read_end, write_end = os.pipe()
    try:
        argv = ["Xvfb", "-displayfd", str(write_end), "-screen", "0", f"{SCREEN[0]}x{SCREEN[1]}x24"]
        processes.start("xvfb", [*argv, "-nolisten", "tcp"], dict(os.environ), pass_fds=(write_end,))
        os.close(write_end)
        write_end = -1
        number = b""
        deadline = time.monotonic() + STARTUP
        while not number.endswith(b"\n"):
            ready, _, _ = select.select([read_end], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(read_end, 16) if ready else b""
            if not chunk:
                pytest.fail(f"Xvfb did not start:\n{processes.log('xvfb')}")
            number += chunk
        return f":{int(number)}"
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)


def dunst_count(env: dict[str, str], which: str = "displayed") -> int:
    result = subprocess.run(
        ["dunstctl", "count", which], env=env, capture_output=True, text=True, timeout=10, check=True
    )
    return int(result.stdout.strip())


@dataclass
class Desktop:
    display: str
    env: dict[str, str]  # DISPLAY, the session bus, and no offscreen platform
    processes: Processes
    work: Path
    dmenu_menu: Path
    dmenu_pick: Path

    def dunstctl(self, *args: str) -> str:
        result = subprocess.run(
            ["dunstctl", *args], env=self.env, capture_output=True, text=True, timeout=10, check=True
        )
        return result.stdout

    def displayed(self) -> int:
        return dunst_count(self.env, "displayed")


@pytest.fixture(scope="module")
def desktop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desktop]:
    for tool in ("Xvfb", "trayer", "dunst", "dunstctl", "xdotool"):
        need(shutil.which(tool) is not None, tool)
    need(
        bool(os.environ.get("DBUS_SESSION_BUS_ADDRESS")), "a D-Bus session bus (run under tools/with-keyring)"
    )
    need(
        not session_bus_owner("org.freedesktop.Notifications"), "a session bus without a notification server"
    )
    work = tmp_path_factory.mktemp("desktop")
    processes = Processes(work)
    try:
        display = start_xvfb(processes)
        env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY")}
        env |= {"DISPLAY": display, "QT_QPA_PLATFORM": "xcb", "TZ": "UTC"}
        menu, pick = work / "dmenu-menu.txt", work / "dmenu-pick.txt"
        dmenu = work / "fake-dmenu"
        dmenu.write_text(FAKE_DMENU.format(menu=menu, pick=pick))
        dmenu.chmod(0o755)
        dunstrc = work / "dunstrc"
        dunstrc.write_text(DUNSTRC.format(dmenu=dmenu))
        processes.start("dunst", ["dunst", "-config", str(dunstrc)], env)
        wait_for(lambda: session_bus_owner("org.freedesktop.Notifications"), "dunst on the session bus")
        processes.start(
            "trayer",
            ["trayer", "--edge", "top", "--align", "right", "--widthtype", "request", "--height", "32"],
            env,
        )
        wait_for(lambda: xdotool_search(env, "trayer"), "the trayer panel")
        yield Desktop(display, env, processes, work, menu, pick)
    finally:
        processes.stop_all()


def xdotool_search(env: dict[str, str], class_name: str) -> bool:
    result = subprocess.run(
        ["xdotool", "search", "--classname", class_name],
        env=env,
        capture_output=True,
        timeout=10,
        check=False,
    )
    return result.returncode == 0 and bool(result.stdout.strip())


def next_review_sunday(today: datetime) -> datetime:
    """19:01 UTC on the next Sunday that is not the first of its month (only the weekly review is due)."""
    day = today + timedelta(days=1)
    while day.weekday() != 6 or day.day <= 7:
        day += timedelta(days=1)
    return day.replace(hour=19, minute=1, second=0, microsecond=0)


@dataclass
class RunningApp:
    process: subprocess.Popen
    state_file: Path
    desktop: Desktop

    def state(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.state_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def wait_state(self, predicate: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            if self.process.poll() is not None:
                pytest.fail(
                    f"the app exited ({self.process.returncode}):\n{self.desktop.processes.log('app')}"
                )
            state = self.state()
            return state if state is not None and predicate(state) else None

        return wait_for(check, what)


@pytest.fixture(scope="module")
def running_app(desktop: Desktop) -> Iterator[RunningApp]:
    """The real app, on a plan made with the CLI (init, folder source, local destination, one backup),
    started at a simulated Sunday 19:01 so the weekly review is due at once."""
    plan = make_plan(desktop.work / "plan")
    folder = write_folder(desktop.work / "uploads")
    ok(plan.cli("--json", "source", "add", "files", "folder", "--path", str(folder)))
    ok(plan.cli("--json", "backup"))
    state_file = desktop.work / "app-state.json"
    env = desktop.env | {
        "DRGUI_DEBUG_STATE_FILE": str(state_file),
        "DRGUI_FAKE_NOW": next_review_sunday(datetime.now(UTC)).isoformat(),
        "DRGUI_NO_PROMPT": "1",
    }
    argv = [sys.executable, "-m", "drgui", "--home", str(plan.home), "gui"]
    process = desktop.processes.start("app", argv, env)
    app = RunningApp(process, state_file, desktop)
    try:
        app.wait_state(lambda s: s["window_visible"], "the app's window")
        yield app
    finally:
        code = desktop.processes.stop(process)
        assert code == 0, f"the app did not quit cleanly on SIGTERM:\n{desktop.processes.log('app')}"
