"""The layering holds: drgui/core (the engine) imports nothing above it (no Qt, no report, CLI or GUI), so
it runs headless (CLI, timers, servers) and stays testable; and no drgui module is part of an import cycle.

Every import counts: module level, inside functions and under TYPE_CHECKING, absolute and relative.
"""

from __future__ import annotations

import ast
import itertools
import subprocess
import sys
from pathlib import Path

import drgui

DRGUI = Path(drgui.__file__).parent
QT = ("PySide6", "PyQt5", "PyQt6", "shiboken6", "shiboken2", "qtpy")
ABOVE_CORE = ("drgui.gui", "drgui.report", "drgui.cli")
FORBIDDEN_IN_CORE = QT + ABOVE_CORE


def _module_names(root: Path) -> dict[str, Path]:
    """Dotted name -> file of every module of the package at `root` (its parent is the import root)."""
    return {
        ".".join(path.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__"): path
        for path in sorted(root.rglob("*.py"))
    }


def _imports(module: str, path: Path, known: dict[str, Path]) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file; `from X import Y` names X.Y when that is
    a module of the package (a submodule), else X."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                found.append(
                    (node.lineno, f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
                )
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


def _owner(name: str, known: dict[str, Path]) -> str | None:
    """The package module an imported name lives in (`drgui.core.x.y` -> `drgui.core.x` when y is not one)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(root: Path) -> dict[str, dict[str, int]]:
    """Module -> {module of the same package it imports: line of the first such import}."""
    known = _module_names(root)
    graph: dict[str, dict[str, int]] = {}
    for module, path in known.items():
        edges: dict[str, int] = {}
        for line, name in sorted(_imports(module, path, known)):
            target = _owner(name, known)
            if target is not None and target != module:
                edges.setdefault(target, line)
        graph[module] = edges
    return graph


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in graph.get(node, {}):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def _describe(cycle: list[str], graph: dict[str, dict[str, int]]) -> str:
    steps = [f"{a} (line {graph[a][b]}) -> {b}" for a, b in itertools.pairwise(cycle)]
    return "\n".join(steps)


def _forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN_IN_CORE)


def test_the_walker_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.sub import b\n")
    (package / "sub" / "b.py").write_text("import os\n\n\ndef f():\n    from .. import c\n")
    (package / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import x\n"
    )
    graph = import_graph(package)
    assert graph["pkg.a"] == {"pkg.sub.b": 1}
    assert graph["pkg.sub.b"] == {"pkg.c": 5}
    assert graph["pkg.c"] == {"pkg.a": 3}
    cycle = find_cycle(graph)
    assert cycle == ["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]
    assert _describe(cycle, graph).splitlines()[1] == "pkg.sub.b (line 5) -> pkg.c"
    (package / "c.py").write_text("import pkg\n")
    assert find_cycle(import_graph(package)) is None


def test_no_drgui_module_is_part_of_an_import_cycle() -> None:
    graph = import_graph(DRGUI)
    assert len(graph) > 80 and "drgui.core.ops.drill" in graph
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle (fix it at its cause, not with a lazy import):\n" + _describe(
        cycle, graph
    )


def test_core_imports_nothing_above_it() -> None:
    """No Qt, and none of drgui.gui, drgui.report, drgui.cli, even inside a function."""
    known = _module_names(DRGUI)
    core = {name: path for name, path in known.items() if name.startswith("drgui.core")}
    assert len(core) > 20
    offenders = [
        f"{path.relative_to(DRGUI.parent)}:{line}: {name}"
        for module, path in core.items()
        for line, name in _imports(module, path, known)
        if _forbidden(name)
    ]
    assert not offenders, "drgui/core must not import Qt, the report, the CLI or the GUI:\n" + "\n".join(
        offenders
    )


def test_importing_every_core_module_loads_no_qt() -> None:
    """Also catches Qt pulled in indirectly, through a third-party import."""
    names = [name for name in _module_names(DRGUI) if name.startswith("drgui.core")]
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ImportError as error:\n"
        "        if getattr(error, 'name', '') and error.name.split('.')[0] in ('PySide6', 'PyQt5', 'PyQt6', 'shiboken6'):\n"
        "            raise\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {QT!r} or m.startswith({ABOVE_CORE!r}))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", (
        f"modules above the engine loaded by drgui.core: {result.stdout.strip()}"
    )


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
