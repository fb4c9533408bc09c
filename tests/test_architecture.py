"""drgui/core imports no Qt: the engine runs headless (CLI, timers, servers) and stays testable."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import drgui.core

CORE = Path(drgui.core.__file__).parent
FORBIDDEN = ("PySide6", "PyQt5", "PyQt6", "shiboken6", "shiboken2", "qtpy", "drgui.gui")


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text("utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
            "import_module",
            "__import__",
        ):
            found += [
                (node.lineno, a.value)
                for a in node.args
                if isinstance(a, ast.Constant) and isinstance(a.value, str)
            ]
    return found


def _forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def test_core_sources_import_no_qt() -> None:
    modules = sorted(CORE.rglob("*.py"))
    assert len(modules) > 20
    offenders = [
        f"{path.relative_to(CORE.parent)}:{line}: {name}"
        for path in modules
        for line, name in _imports(path)
        if _forbidden(name)
    ]
    assert not offenders, "drgui/core must not import Qt:\n" + "\n".join(offenders)


def test_importing_every_core_module_loads_no_qt() -> None:
    """Also catches Qt pulled in indirectly, through a third-party import."""
    names = [
        ".".join(("drgui", *path.relative_to(CORE.parent).with_suffix("").parts)).removesuffix(".__init__")
        for path in sorted(CORE.rglob("*.py"))
    ]
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ImportError as error:\n"
        "        if getattr(error, 'name', '') and error.name.split('.')[0] in ('PySide6', 'PyQt5', 'PyQt6', 'shiboken6'):\n"
        "            raise\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r} or m.startswith('drgui.gui'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"Qt modules loaded by drgui.core: {result.stdout.strip()}"


def test_the_app_imports_and_notifies_without_jeepney() -> None:
    """jeepney (D-Bus) exists on Linux only: the GUI imports without it and reminders fall back."""
    code = (
        "import os, sys\n"
        "os.environ['QT_QPA_PLATFORM'] = 'offscreen'\n"
        "sys.modules['jeepney'] = None\n"
        "import drgui.gui.app\n"
        "from PySide6.QtCore import QCoreApplication\n"
        "from drgui.gui.notifications import DesktopNotifier\n"
        "from drgui.gui.reminders import Reminder, WEEKLY\n"
        "app = QCoreApplication([])\n"
        "notifier = DesktopNotifier()\n"
        "failed = []\n"
        "notifier.failed.connect(failed.append)\n"
        "from datetime import UTC, datetime\n"
        "notifier.notify(Reminder(WEEKLY, datetime.now(UTC), 'title', ['line']))\n"
        "import time\n"
        "deadline = time.monotonic() + 20\n"
        "while not failed and time.monotonic() < deadline:\n"
        "    app.processEvents()\n"
        "    time.sleep(0.01)\n"
        "notifier.stop()\n"
        "assert failed, 'no fallback without jeepney'\n"
        "assert 'jeepney' not in {m.split('.')[0] for m, v in sys.modules.items() if v is not None}\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
