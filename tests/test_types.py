"""drgui type-checks: mypy with the project's configuration ([tool.mypy] in pyproject.toml) finds nothing."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import need

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def test_mypy_finds_no_errors() -> None:
    need(importlib.util.find_spec("mypy") is not None, "mypy (pip install -e '.[test]')")
    # The project's .mypy_cache, as `make lint` and .ci/run use it (which runs mypy before the tests): a
    # full check takes about 15 s on an idle machine, a check after it a second or two.
    result = subprocess.run(
        [sys.executable, "-m", "mypy"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("Success: no issues found"), result.stdout
