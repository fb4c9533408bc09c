"""autostart.py: login and timer entries per platform; packaging/ is what the templates render."""

from __future__ import annotations

import plistlib
import xml.etree.ElementTree as ET
from pathlib import Path

import platformdirs
import pytest

from drgui.core.errors import UsageError
from drgui.core.platform import autostart
from drgui.core.platform.autostart import (
    PACKAGING_FILES,
    PLACEHOLDER_EXECUTABLE,
    activation_commands,
    encode_packaging_file,
    install_autostart,
    render_templates,
)

PACKAGING = Path(__file__).resolve().parents[1] / "packaging"
EXE = "/opt/drgui/bin/drgui"
TASK_NS = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}


@pytest.fixture
def user_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private $HOME, $XDG_CONFIG_HOME and $XDG_DATA_HOME (platformdirs reads the last)."""
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("DRGUI_HOME", raising=False)
    return tmp_path


@pytest.mark.parametrize("name", PACKAGING_FILES)
def test_packaging_files_are_what_autostart_renders(name: str) -> None:
    rendered = encode_packaging_file(name, render_templates(PLACEHOLDER_EXECUTABLE)[name])
    stored = (PACKAGING / name).read_bytes() if (PACKAGING / name).exists() else None
    assert stored == rendered, (
        f"packaging/{name} differs from its template in drgui/core/platform/autostart.py, the one source of truth: "
        "edit the template there, then run `python -m drgui.core.platform.autostart packaging`."
    )


def test_rendered_files_parse() -> None:
    texts = render_templates(EXE, Path("/srv/plan home"))
    run_due = plistlib.loads(texts["launchd/org.drgui.run-due.plist"].encode())
    assert run_due["ProgramArguments"] == [EXE, "run-due", "--home", "/srv/plan home"]
    assert run_due["StartInterval"] == 900 and run_due["RunAtLoad"] is True
    tray = plistlib.loads(texts["launchd/org.drgui.tray.plist"].encode())
    assert tray["ProgramArguments"] == [EXE, "gui", "--tray", "--home", "/srv/plan home"]
    task = ET.fromstring(
        encode_packaging_file("windows/drgui-run-due.xml", texts["windows/drgui-run-due.xml"])
    )
    assert task.findtext("t:Triggers/t:TimeTrigger/t:Repetition/t:Interval", namespaces=TASK_NS) == "PT15M"
    assert task.findtext("t:Principals/t:Principal/t:LogonType", namespaces=TASK_NS) == "InteractiveToken"
    assert task.findtext("t:Settings/t:StartWhenAvailable", namespaces=TASK_NS) == "true"
    assert task.findtext("t:Actions/t:Exec/t:Command", namespaces=TASK_NS) == EXE
    assert (
        task.findtext("t:Actions/t:Exec/t:Arguments", namespaces=TASK_NS) == 'run-due --home "/srv/plan home"'
    )
    timer = texts["systemd/drgui-run-due.timer"]
    assert "OnCalendar=*:0/15\n" in timer and "Persistent=true\n" in timer


def test_linux_writes_autostart_and_user_timer_under_xdg_config_home(user_dirs: Path) -> None:
    plan_home = user_dirs / "plans" / "acme"
    written = install_autostart("linux", plan_home, executable=EXE)
    config = user_dirs / "config"
    assert written == [
        config / "autostart" / "drgui-autostart.desktop",
        config / "systemd" / "user" / "drgui-run-due.service",
        config / "systemd" / "user" / "drgui-run-due.timer",
    ]
    desktop, service, timer = (path.read_text() for path in written)
    assert f"Exec={EXE} gui --tray --home {plan_home}\n" in desktop
    assert f"ExecStart={EXE} run-due --home {plan_home}\n" in service
    assert timer == render_templates(EXE)["systemd/drgui-run-due.timer"]
    assert activation_commands(written, "linux") == [
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "enable", "--now", "drgui-run-due.timer"],
    ]
    # Writing again replaces the files in place and leaves no temporary files behind.
    install_autostart("linux", None, executable=EXE)
    assert f"ExecStart={EXE} run-due\n" in written[1].read_text()
    assert sorted(p.name for p in written[1].parent.iterdir()) == [
        "drgui-run-due.service",
        "drgui-run-due.timer",
    ]


def test_linux_without_xdg_config_home_uses_dot_config(
    user_dirs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XDG_CONFIG_HOME")
    written = install_autostart("linux", executable=EXE)
    assert written[0] == user_dirs / "user" / ".config" / "autostart" / "drgui-autostart.desktop"


def test_default_home_is_not_passed(user_dirs: Path) -> None:
    default = Path(platformdirs.user_data_dir("drgui", appauthor=False))
    written = install_autostart("linux", default, executable=EXE)
    assert "--home" not in written[1].read_text()


def test_the_current_drgui_command_is_found_and_used(user_dirs: Path) -> None:
    written = install_autostart("linux")
    executable = Path(autostart.find_executable())
    assert executable.is_absolute() and executable.is_file()
    assert f"ExecStart={executable} run-due\n" in written[1].read_text()


def test_macos_writes_launch_agents(user_dirs: Path) -> None:
    written = install_autostart("darwin", user_dirs / "plan", executable=EXE)
    agents = user_dirs / "user" / "Library" / "LaunchAgents"
    assert written == [agents / "org.drgui.run-due.plist", agents / "org.drgui.tray.plist"]
    run_due = plistlib.loads(written[0].read_bytes())
    assert run_due["Label"] == "org.drgui.run-due"
    assert run_due["ProgramArguments"] == [EXE, "run-due", "--home", str(user_dirs / "plan")]
    assert activation_commands(written, "darwin")[0][:2] == ["launchctl", "bootstrap"]


def test_windows_writes_task_xml_and_says_how_to_register_it(user_dirs: Path) -> None:
    exe = r"C:\Program Files\drgui\drgui.exe"
    written = install_autostart("win32", None, executable=exe)
    assert written == [user_dirs / "data" / "drgui" / "drgui-run-due.xml"]
    data = written[0].read_bytes()
    assert data.startswith((b"\xff\xfe", b"\xfe\xff"))  # UTF-16 with a byte-order mark
    task = ET.fromstring(data)
    assert task.findtext("t:Actions/t:Exec/t:Command", namespaces=TASK_NS) == exe
    assert task.findtext("t:Actions/t:Exec/t:Arguments", namespaces=TASK_NS) == "run-due"
    assert activation_commands(written, "win32") == [
        ["schtasks", "/Create", "/XML", str(written[0]), "/TN", "drgui-run-due", "/F"]
    ]


def test_awkward_paths_are_quoted_for_each_format() -> None:
    exe = "/opt/my apps/100%/$HOME/drgui"
    texts = render_templates(exe, Path('/srv/a "quoted" \\ home'))
    assert (
        'Exec="/opt/my apps/100%%/\\\\$HOME/drgui" gui --tray --home "/srv/a \\\\"quoted\\\\" \\\\\\\\ home"'
        in (texts["drgui-autostart.desktop"])
    )
    assert (
        'ExecStart="/opt/my apps/100%%/$$HOME/drgui" run-due --home "/srv/a \\"quoted\\" \\\\ home"'
        in (texts["systemd/drgui-run-due.service"])
    )
    plist = plistlib.loads(texts["launchd/org.drgui.run-due.plist"].encode())
    assert plist["ProgramArguments"] == [exe, "run-due", "--home", '/srv/a "quoted" \\ home']
    task = ET.fromstring(texts["windows/drgui-run-due.xml"].replace("UTF-16", "UTF-8").encode())
    assert task.findtext("t:Actions/t:Exec/t:Command", namespaces=TASK_NS) == exe


def test_control_characters_are_refused() -> None:
    with pytest.raises(UsageError, match="control characters"):
        render_templates("/opt/drgui\n/bin/drgui")


def test_main_regenerates_packaging(tmp_path: Path) -> None:
    assert autostart.main([str(tmp_path)]) == 0
    for name in PACKAGING_FILES:
        assert (tmp_path / name).read_bytes() == (PACKAGING / name).read_bytes()
    assert autostart.main([]) == 2
