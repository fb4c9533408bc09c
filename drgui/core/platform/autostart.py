"""Start drgui with the session: the tray app at login, and `drgui run-due` every 15 minutes.

The launcher, autostart entry, systemd user units, launchd agents and Task Scheduler XML are
rendered here from the templates below; packaging/ holds the same files rendered for
/usr/bin/drgui, and tests/test_autostart.py checks the two agree. To change a file, edit the
template here and run `python -m drgui.core.platform.autostart packaging`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from string import Template
from xml.sax.saxutils import escape as xml_escape

import platformdirs

from drgui.core.engine.fsutil import atomic_write_bytes
from drgui.core.errors import EnvironmentNotReady, UsageError
from drgui.core.plan.home import Home

PLACEHOLDER_EXECUTABLE = "/usr/bin/drgui"
TRAY_ARGS = ("gui", "--tray")
RUN_DUE_ARGS = ("run-due",)
TIMER_UNIT = "drgui-run-due.timer"
WINDOWS_TASK_NAME = "drgui-run-due"
LAUNCHD_LABELS = ("org.drgui.run-due", "org.drgui.tray")

# --- templates (the one source of truth for packaging/) --------------------------------------

_APP_DESKTOP = Template("""\
[Desktop Entry]
Type=Application
Name=drgui
GenericName=Disaster recovery
Comment=Back up your product's data, verify it and test restores
Exec=$exec_app
Icon=drgui
Terminal=false
Categories=Utility;Archiving;
Keywords=backup;restore;disaster recovery;postgres;
StartupNotify=true
""")

_AUTOSTART_DESKTOP = Template("""\
[Desktop Entry]
Type=Application
Name=drgui tray
Comment=Backup state and reminders in the system tray
Exec=$exec_tray
Icon=drgui
Terminal=false
NoDisplay=true
X-GNOME-Autostart-enabled=true
""")

_SYSTEMD_SERVICE = Template("""\
[Unit]
Description=drgui: run the backups and reminders that are due

[Service]
Type=oneshot
ExecStart=$exec_run_due
Nice=10
IOSchedulingClass=best-effort
IOSchedulingPriority=7
""")

_SYSTEMD_TIMER = Template("""\
[Unit]
Description=drgui: look every 15 minutes for due backups and reminders

[Timer]
OnCalendar=*:0/15
Persistent=true
AccuracySec=1min

[Install]
WantedBy=timers.target
""")

_LAUNCHD_RUN_DUE = Template("""\
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>org.drgui.run-due</string>
	<key>ProgramArguments</key>
	<array>
$plist_run_due	</array>
	<key>StartInterval</key>
	<integer>900</integer>
	<key>RunAtLoad</key>
	<true/>
	<key>ProcessType</key>
	<string>Background</string>
</dict>
</plist>
""")

_LAUNCHD_TRAY = Template("""\
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>org.drgui.tray</string>
	<key>ProgramArguments</key>
	<array>
$plist_tray	</array>
	<key>RunAtLoad</key>
	<true/>
	<key>ProcessType</key>
	<string>Interactive</string>
</dict>
</plist>
""")

# Written as UTF-16 with a byte-order mark, the encoding Task Scheduler itself exports.
_WINDOWS_TASK = Template("""\
<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <RegistrationInfo>
    <Description>drgui: run the backups and reminders that are due, every 15 minutes.</Description>
  </RegistrationInfo>
  <Triggers>
    <TimeTrigger>
      <Repetition>
        <Interval>PT15M</Interval>
        <StopAtDurationEnd>false</StopAtDurationEnd>
      </Repetition>
      <StartBoundary>2026-01-01T00:00:00</StartBoundary>
      <Enabled>true</Enabled>
    </TimeTrigger>
  </Triggers>
  <Principals>
    <Principal id="Author">
      <LogonType>InteractiveToken</LogonType>
      <RunLevel>LeastPrivilege</RunLevel>
    </Principal>
  </Principals>
  <Settings>
    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>
    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>
    <AllowHardTerminate>true</AllowHardTerminate>
    <StartWhenAvailable>true</StartWhenAvailable>
    <RunOnlyIfNetworkAvailable>false</RunOnlyIfNetworkAvailable>
    <AllowStartOnDemand>true</AllowStartOnDemand>
    <Enabled>true</Enabled>
    <Hidden>false</Hidden>
    <RunOnlyIfIdle>false</RunOnlyIfIdle>
    <WakeToRun>false</WakeToRun>
    <ExecutionTimeLimit>PT12H</ExecutionTimeLimit>
    <Priority>7</Priority>
  </Settings>
  <Actions Context="Author">
    <Exec>
      <Command>$task_command</Command>
      <Arguments>$task_arguments</Arguments>
    </Exec>
  </Actions>
</Task>
""")

PACKAGING_FILES = (
    "drgui.desktop",
    "drgui-autostart.desktop",
    "systemd/drgui-run-due.service",
    "systemd/drgui-run-due.timer",
    "launchd/org.drgui.run-due.plist",
    "launchd/org.drgui.tray.plist",
    "windows/drgui-run-due.xml",
)
"""Paths under packaging/ that `render_templates` produces."""


# --- quoting for each format ---------------------------------------------------------------

_DESKTOP_RESERVED = re.compile(r"""[\s"'\\><~|&;$*?#()`]""")


def _desktop_exec(argv: Sequence[str]) -> str:
    """Desktop Entry Exec value: quote reserved characters, then apply the string escapes."""
    words = []
    for arg in argv:
        word = arg.replace("%", "%%")
        if _DESKTOP_RESERVED.search(word):
            word = '"' + re.sub(r'(["`$\\])', r"\\\1", word) + '"'
        words.append(word.replace("\\", "\\\\"))
    return " ".join(words)


def _systemd_exec(argv: Sequence[str]) -> str:
    words = []
    for arg in argv:
        word = arg.replace("%", "%%").replace("$", "$$")
        if re.search(r"""[\s"'\\;]""", word):
            word = '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
        words.append(word)
    return " ".join(words)


def _plist_strings(argv: Sequence[str]) -> str:
    return "".join(f"\t\t<string>{xml_escape(arg)}</string>\n" for arg in argv)


def _check_text(value: str) -> str:
    if any(ord(char) < 32 for char in value):
        raise UsageError(
            f"Cannot write an autostart entry for {value!r}: it contains control characters.",
            hint="Install drgui and the plan home in paths without newlines or tabs.",
        )
    return value


# --- rendering and installing --------------------------------------------------------------


def render_templates(executable: str = PLACEHOLDER_EXECUTABLE, home: Path | None = None) -> dict[str, str]:
    """Every packaging file's text, keyed by its path under packaging/."""
    extra = ["--home", _check_text(str(Path(home).absolute()))] if home is not None else []
    _check_text(executable)
    app = [executable, "gui", *extra]
    tray = [executable, *TRAY_ARGS, *extra]
    run_due = [executable, *RUN_DUE_ARGS, *extra]
    texts = {
        "drgui.desktop": _APP_DESKTOP.substitute(exec_app=_desktop_exec(app)),
        "drgui-autostart.desktop": _AUTOSTART_DESKTOP.substitute(exec_tray=_desktop_exec(tray)),
        "systemd/drgui-run-due.service": _SYSTEMD_SERVICE.substitute(exec_run_due=_systemd_exec(run_due)),
        "systemd/drgui-run-due.timer": _SYSTEMD_TIMER.substitute(),
        "launchd/org.drgui.run-due.plist": _LAUNCHD_RUN_DUE.substitute(plist_run_due=_plist_strings(run_due)),
        "launchd/org.drgui.tray.plist": _LAUNCHD_TRAY.substitute(plist_tray=_plist_strings(tray)),
        "windows/drgui-run-due.xml": _WINDOWS_TASK.substitute(
            task_command=xml_escape(executable),
            task_arguments=xml_escape(subprocess.list2cmdline(run_due[1:])),
        ),
    }
    return texts


_SERVER_SERVICE = Template("""\
[Unit]
Description=drgui: run the backups and restore tests that are due (headless server, user $user)
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
User=$user
ExecStart=$exec_run_due
$credentials
Nice=10
IOSchedulingClass=best-effort
IOSchedulingPriority=7
NoNewPrivileges=true
PrivateTmp=true
""")


def render_server_units(
    executable: str, home: Path, user: str, credentials: Sequence[tuple[str, Path]]
) -> dict[str, str]:
    """System units for a headless server (`/etc/systemd/system/`): `run-due` every 15 minutes as `user`
    (the database cluster's OS user), with every sealed secret loaded by systemd
    (`LoadCredentialEncrypted=`) into `$CREDENTIALS_DIRECTORY`, where drgui reads it: no keyring."""
    if not re.fullmatch(r"[a-z_][a-z0-9_.-]*[$]?", user):
        raise UsageError(
            f"'{user}' is not a user name systemd accepts.", hint="Give the OS user, e.g. postgres."
        )
    run_due = [_check_text(executable), *RUN_DUE_ARGS, "--home", _check_text(str(Path(home).absolute()))]
    lines = [
        f"LoadCredentialEncrypted={name}:{_check_text(str(path.absolute()))}" for name, path in credentials
    ]
    return {
        "drgui-run-due.service": _SERVER_SERVICE.substitute(
            user=user, exec_run_due=_systemd_exec(run_due), credentials="\n".join(lines)
        ),
        TIMER_UNIT: _SYSTEMD_TIMER.substitute(),
    }


def encode_packaging_file(name: str, text: str) -> bytes:
    """The bytes a packaging file is stored as: UTF-16 for Task Scheduler XML, UTF-8 otherwise."""
    return text.encode("utf-16" if name.startswith("windows/") else "utf-8")


def find_executable() -> str:
    """Absolute path of the `drgui` command of this installation."""
    if getattr(sys, "frozen", False):  # a PyInstaller build is the command itself
        return str(Path(sys.executable).absolute())
    name = "drgui.exe" if os.name == "nt" else "drgui"
    here = Path(sys.executable).parent
    for candidate in (here / name, here / "Scripts" / name):
        if candidate.is_file():
            return str(candidate.absolute())
    found = shutil.which("drgui")
    if found:
        return str(Path(found).absolute())
    raise EnvironmentNotReady(
        "Cannot find the drgui command to start at login.",
        hint="Install drgui with pip or pipx so that `drgui` is on PATH, then try again.",
    )


def _family(platform: str | None) -> str:
    platform = platform or sys.platform
    if platform == "darwin":
        return "macos"
    if platform in ("win32", "cygwin"):
        return "windows"
    return "linux"


def _config_home() -> Path:
    configured = os.environ.get("XDG_CONFIG_HOME", "")
    return Path(configured) if os.path.isabs(configured) else Path.home() / ".config"


def install_autostart(
    platform: str | None = None, home: Path | None = None, *, executable: str | None = None
) -> list[Path]:
    """Write the login and timer entries for `platform` (default: this one); return their paths.

    Linux: the tray entry in $XDG_CONFIG_HOME/autostart and the run-due timer in
    $XDG_CONFIG_HOME/systemd/user. macOS: launch agents in ~/Library/LaunchAgents. Windows: the
    Task Scheduler XML in drgui's data directory. Nothing is started: `activation_commands` says
    what to run next (systemctl, launchctl or schtasks). `home` adds `--home` unless it is the
    default home.
    """
    executable = executable or find_executable()
    if (
        home is not None and Path(home).expanduser().absolute() == Home.default_path()
    ):  # the OS starts these without $DRGUI_HOME
        home = None
    texts = render_templates(executable, Path(home).expanduser() if home is not None else None)
    targets = _targets(platform)
    for name, path in targets.items():
        atomic_write_bytes(path, encode_packaging_file(name, texts[name]), mode=0o644)
    return list(targets.values())


def _targets(platform: str | None = None) -> dict[str, Path]:
    """Packaging file name -> where `install_autostart` writes it on `platform`."""
    family = _family(platform)
    if family == "linux":
        config = _config_home()
        return {
            "drgui-autostart.desktop": config / "autostart" / "drgui-autostart.desktop",
            "systemd/drgui-run-due.service": config / "systemd" / "user" / "drgui-run-due.service",
            "systemd/drgui-run-due.timer": config / "systemd" / "user" / "drgui-run-due.timer",
        }
    if family == "macos":
        agents = Path.home() / "Library" / "LaunchAgents"
        return {f"launchd/{label}.plist": agents / f"{label}.plist" for label in LAUNCHD_LABELS}
    data = Path(platformdirs.user_data_dir("drgui", appauthor=False))
    return {"windows/drgui-run-due.xml": data / "drgui-run-due.xml"}


def autostart_installed(platform: str | None = None) -> bool:
    """Whether the login entries `install_autostart` writes are in place (all of them)."""
    return all(path.is_file() for path in _targets(platform).values())


def remove_autostart(platform: str | None = None) -> list[Path]:
    """Remove the login entries `install_autostart` wrote; returns the files removed. (An activated timer
    stays loaded until the next login or `systemctl --user disable drgui-run-due.timer`.)"""
    removed = []
    for path in _targets(platform).values():
        if path.is_file():
            path.unlink()
            removed.append(path)
    return removed


def activation_commands(written: Sequence[Path], platform: str | None = None) -> list[list[str]]:
    """The commands that make the OS pick up what `install_autostart` wrote."""
    family = _family(platform)
    if family == "linux":
        return [
            ["systemctl", "--user", "daemon-reload"],
            ["systemctl", "--user", "enable", "--now", TIMER_UNIT],
        ]
    if family == "macos":
        domain = f"gui/{os.getuid()}" if hasattr(os, "getuid") else "gui/$UID"
        return [["launchctl", "bootstrap", domain, str(path)] for path in written]
    return [["schtasks", "/Create", "/XML", str(path), "/TN", WINDOWS_TASK_NAME, "/F"] for path in written]


def write_packaging(root: Path) -> list[Path]:
    """Regenerate packaging/ from the templates (for /usr/bin/drgui)."""
    written = []
    for name, text in render_templates().items():
        path = Path(root) / name
        atomic_write_bytes(path, encode_packaging_file(name, text), mode=0o644)
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m drgui.core.platform.autostart PACKAGING_DIR", file=sys.stderr)
        return 2
    for path in write_packaging(Path(args[0])):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
