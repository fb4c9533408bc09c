"""GUI tests: offscreen Qt, a plan home per test (real keyring via tools/with-keyring)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest

from drgui.core.home import Home
from drgui.core.setup import add_destination, add_source, init_plan
from drgui.core.workspace import Workspace
from tests.engine_fixtures import PASSPHRASE, write_env_file, write_folder

pytestmark = pytest.mark.gui


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
    app.controller.worker.cancel_all()
    app.controller.worker.wait(60_000)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """GUI tests fail on Qt warnings, except the offscreen platform's "does not support raise()" notes."""
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).parent == here:
            item.add_marker(pytest.mark.qt_log_level_fail("WARNING"))
            item.add_marker(pytest.mark.qt_log_ignore(r"This plugin does not support"))
