"""Helpers for integration tests: skip when a real component is missing, fail instead in CI."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest

REQUIRE_ENV = "DRGUI_REQUIRE_INTEGRATION"
REQUIRE = os.environ.get(REQUIRE_ENV) == "1"


def need(condition: bool, what: str) -> None:
    """Skip the test when a real component is missing — or fail, in CI (DRGUI_REQUIRE_INTEGRATION=1)."""
    if condition:
        return
    if REQUIRE or os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{what} is missing and {REQUIRE_ENV}=1 requires it", pytrace=False)
    pytest.skip(f"needs {what}")


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block (in this process), then put back what was there."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
