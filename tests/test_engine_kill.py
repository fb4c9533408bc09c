"""kill -9 of `drgui backup` at random moments never leaves a listed snapshot that does not verify,
and the next backup removes the leftovers."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable

import pytest

from drgui.core.ops.demo_data import populate_saas
from tests.engine_fixtures import Plan, assert_home_clean, cli_argv, cli_env, ok
from tests.pg_fixtures import PgDatabase

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RUNS = 5


def _backup_killed_after(plan: Plan, delay: float) -> bool:
    """Start a backup, SIGKILL it after `delay` seconds; True when it was killed (not finished before)."""
    process = subprocess.Popen(
        cli_argv(plan.home, "--json", "backup"),
        env=cli_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        process.wait(timeout=delay)
        killed = False
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        killed = True
    finally:
        process.wait()
        # Children (pg_dump) are orphans now: end them too, as the OS would on logout.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return killed


def test_kill_9_never_leaves_a_listed_broken_snapshot(
    new_plan: Callable[..., Plan], pg18_db: PgDatabase
) -> None:
    populate_saas(pg18_db.conninfo(), size_mb=40, seed=7)
    plan = new_plan()
    ok(plan.cli("--json", "source", "add", "db", "postgres", "--dsn", pg18_db.dsn_with_password))
    started = time.monotonic()
    first = ok(plan.cli("--json", "backup")).json()["snapshot"]
    full_run = time.monotonic() - started
    verified = {first}
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    killed = 0
    for _ in range(RUNS):
        killed += _backup_killed_after(plan, rng.uniform(0.05, full_run))
        listed = [row["id"] for row in ok(plan.cli("--json", "snapshots")).json()]
        for snapshot_id in listed:
            if snapshot_id not in verified:
                result = plan.cli("--json", "verify", snapshot_id, "--deep")
                assert result.code == 0, f"seed {seed}: {result}"
                verified.add(snapshot_id)
        on_disk = {p.name for p in plan.snapshot_dirs()}
        assert set(listed) == {name for name in on_disk if not name.endswith(".partial")}, f"seed {seed}"
    assert killed >= 1, f"seed {seed}: every backup finished before its kill (full run {full_run:.1f} s)"
    last = ok(plan.cli("--json", "backup")).json()
    assert last["ok"]
    assert not [p.name for p in plan.snapshot_dirs() if p.name.endswith(".partial")], f"seed {seed}"
    assert not (plan.home / "tmp").exists()
    ok(plan.cli("--json", "verify", last["snapshot"], "--deep"))
    history = ok(plan.cli("--json", "history", "--limit", "100")).json()
    assert not [run for run in history if run["status"] == "running"], history
    ok(plan.cli("--json", "history", "--verify"))
    assert_home_clean(plan.home)
