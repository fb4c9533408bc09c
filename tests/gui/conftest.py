"""GUI tests: offscreen Qt, a plan home per test (real keyring via tools/with-keyring)."""

from __future__ import annotations

import gc
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest

from drgui.core.plan.home import Home
from drgui.core.plan.setup import add_destination, add_source, init_plan
from drgui.core.plan.workspace import Workspace
from tests.engine_fixtures import PASSPHRASE, write_env_file, write_folder


@pytest.fixture(scope="session")
def template_home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    """One initialised plan (the scrypt-wrapped identity is slow to make); tests get copies of it."""
    return init_plan(Home(tmp_path_factory.mktemp("template") / "home"), "Acme", PASSPHRASE).home


@pytest.fixture
def plan_ws(tmp_path: Path, template_home: Home) -> Workspace:
    """A plan with a local destination and no source yet (a copy of the session's plan: same keys)."""
    home = Home(tmp_path / "home")
    shutil.copytree(template_home.path, home.path)
    ws = Workspace(home)
    add_destination(ws, "local", "local", {"path": str(tmp_path / "dest")})
    return ws


@pytest.fixture
def files_ws(plan_ws: Workspace, tmp_path: Path) -> Workspace:
    """A plan with a folder and an env source (no database: fast)."""
    add_source(plan_ws, "files", "folder", {"path": str(write_folder(tmp_path / "uploads"))})
    add_source(plan_ws, "env", "env", {"path": str(write_env_file(tmp_path / "app.env"))})
    return plan_ws


@pytest.fixture
def gui_app(qtbot, files_ws: Workspace) -> Iterator:
    from drgui.gui.app import App

    app = App(files_ws, tray=False)
    qtbot.addWidget(app.window)
    yield app


@pytest.fixture
def started(qtbot, gui_app):
    """The app, started on the dashboard once its first status is read."""
    with qtbot.waitSignal(gui_app.controller.status_changed, timeout=30_000):
        gui_app.start("dashboard")
    return gui_app


@pytest.fixture(autouse=True)
def shut_down_apps(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every App a test makes is shut down at its end: no timer of it fires in a later test. Its Qt
    objects are then collected here, on the GUI thread, and not by a garbage collection that happens
    to run on a worker thread of a later test (which crashes Qt)."""
    from drgui.gui.app import App

    made: list[App] = []
    original = App.__init__

    def recording_init(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(App, "__init__", recording_init)
    yield
    for app in made:
        app.shutdown()
    made.clear()
    gc.collect()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """GUI tests are marked `gui` (a conftest's `pytestmark` marks nothing) and fail on Qt warnings,
    except the offscreen platform's "does not support raise()" notes."""
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).parent == here:
            item.add_marker(pytest.mark.gui)
            item.add_marker(pytest.mark.qt_log_level_fail("WARNING"))
            item.add_marker(pytest.mark.qt_log_ignore(r"This plugin does not support"))
