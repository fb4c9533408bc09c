"""The real app on a real desktop (Xvfb + trayer + dunst): tray icon, reminder notification with
buttons that act on the app, and a screenshot of the whole screen.

Set DRGUI_E2E_SCREENSHOT=PATH to keep the screenshot (docs/screenshots/desktop-tray.png is made so)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import SCREEN, Desktop, RunningApp, wait_for

pytestmark = [pytest.mark.gui, pytest.mark.integration]

GRAB_SCREEN = """
import json, sys
from PySide6.QtGui import QGuiApplication
app = QGuiApplication(sys.argv[:1])
image = app.primaryScreen().grabWindow(0).toImage()
colours = {image.pixel(x, y) for x in range(0, image.width(), 16) for y in range(0, image.height(), 16)}
print(json.dumps({"saved": image.save(sys.argv[1]), "size": [image.width(), image.height()],
                  "colours": len(colours)}))
"""


def test_tray_icon_is_shown_in_the_system_tray(running_app: RunningApp) -> None:
    state = running_app.wait_state(lambda s: s["tray_visible"], "the tray icon")
    assert state["tray_available"] is True
    x, y, width, height = state["tray_geometry"]
    assert width > 0 and height > 0
    assert 0 <= x < SCREEN[0] and 0 <= y < SCREEN[1]


def test_due_weekly_review_is_a_desktop_notification_with_buttons(running_app: RunningApp) -> None:
    desktop = running_app.desktop
    wait_for(lambda: desktop.displayed() >= 1, "the reminder in dunst")
    state = running_app.wait_state(lambda s: s["notifications"], "the notification record")
    [sent] = state["notifications"]
    assert sent["kind"] == "weekly_review"
    labels = sent["actions"][1::2]
    assert labels == ["Open checklist", "Open checklist", "Snooze 1 h", "Tomorrow"]
    assert state["pending"] == ["weekly_review"]


def test_screenshot_of_the_whole_screen(running_app: RunningApp, tmp_path: Path) -> None:
    desktop = running_app.desktop
    wait_for(lambda: desktop.displayed() >= 1, "the reminder in dunst")
    png = tmp_path / "desktop.png"
    result = subprocess.run(
        [sys.executable, "-c", GRAB_SCREEN, str(png)],
        env=desktop.env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    grabbed = json.loads(result.stdout)
    assert grabbed["saved"] and grabbed["size"] == list(SCREEN)
    assert grabbed["colours"] > 8  # window, tray and notification: not a blank screen
    assert png.stat().st_size > 10_000
    if keep := os.environ.get("DRGUI_E2E_SCREENSHOT"):
        shutil.copyfile(png, keep)


def test_notification_buttons_act_on_the_app(running_app: RunningApp, desktop: Desktop) -> None:
    """dunst's context menu lists the buttons; picking "Snooze 1 h" there goes over D-Bus to the app,
    which snoozes the reminder and withdraws the notification."""
    wait_for(lambda: desktop.displayed() >= 1, "the reminder in dunst")
    desktop.dmenu_pick.write_text("Snooze 1 h")
    desktop.dunstctl("context")
    menu = wait_for(lambda: desktop.dmenu_menu.exists() and desktop.dmenu_menu.read_text(), "dunst's menu")
    for label in ("Open checklist", "Snooze 1 h", "Tomorrow"):
        assert label in menu
    state = running_app.wait_state(lambda s: s["snoozed_until"] is not None, "the snooze")
    assert state["pending"] == []
    wait_for(lambda: desktop.displayed() == 0, "the notification to be withdrawn")
