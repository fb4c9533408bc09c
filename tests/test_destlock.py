"""The destination lock (engine/destlock.py): shared for backups, exclusive for prune, stale ones broken."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drgui.core.engine import destlock
from drgui.core.engine.destinations.base import Destination
from drgui.core.engine.destinations.local import LocalDestination
from drgui.core.engine.destinations.registry import open_destination
from drgui.core.engine.destlock import DestinationLocked, read_locks
from drgui.core.errors import EXIT_ENVIRONMENT
from drgui.core.plan.config import DestConfig

PLAN = "abcd1234"
OTHER_PLAN = "feed0042"


@pytest.fixture(params=["local", "s3"])
def dest_config(request: pytest.FixtureRequest, tmp_path: Path) -> DestConfig:
    if request.param == "local":
        (tmp_path / "dest").mkdir()
        return DestConfig("backups", "local", {"path": str(tmp_path / "dest")})
    bucket = request.getfixturevalue("s3_bucket")
    return DestConfig("backups", "s3", bucket.settings(prefix="acme"))


def open_dest(config: DestConfig, plan_id: str = PLAN) -> Destination:
    return open_destination(config, None, plan_id=plan_id)


def dead_pid() -> int:
    """The pid of a process that has exited (and was reaped)."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    return int(child.stdout)


def plant_lock(dest: Destination, *, mode: str, host: str, pid: int, refreshed: datetime) -> str:
    key = f"{destlock.LOCKS_DIR}/{'0' * 31}{mode[0]}.json"
    body = {
        "host": host,
        "pid": pid,
        "mode": mode,
        "purpose": "prune" if mode == "exclusive" else "backup",
        "started": (refreshed - timedelta(minutes=5)).isoformat(),
        "refreshed": refreshed.isoformat(),
    }
    dest.put_bytes(key, json.dumps(body).encode())
    return key


def test_shared_locks_coexist_and_exclude_exclusive(dest_config: DestConfig) -> None:
    dest = open_dest(dest_config)
    with destlock.shared(dest) as first, destlock.shared(dest) as second:
        assert first.key != second.key
        assert {r.key for r in read_locks(dest)} == {first.key, second.key}
        record = next(r for r in read_locks(dest) if r.key == first.key)
        assert (record.host, record.pid, record.mode) == (socket.gethostname(), os.getpid(), "shared")
        with pytest.raises(DestinationLocked) as blocked:
            destlock.exclusive(dest, wait=0).__enter__()
        assert blocked.value.exit_code == EXIT_ENVIRONMENT
        assert (
            f"pid {os.getpid()}" in blocked.value.message and "shared lock (backup)" in blocked.value.message
        )
        assert len(read_locks(dest)) == 2, "the refused exclusive lock left nothing behind"
    assert read_locks(dest) == [], "released locks are removed"
    with destlock.exclusive(dest, wait=0) as held:
        assert [r.mode for r in read_locks(dest)] == ["exclusive"]
        with pytest.raises(DestinationLocked, match=r"Cannot back up to destination 'backups'.*exclusive"):
            destlock.shared(dest).__enter__()
        with pytest.raises(DestinationLocked):
            destlock.exclusive(dest, wait=0).__enter__()
        held.check()
    assert read_locks(dest) == []


def test_exclusive_waits_a_bounded_time(tmp_path: Path) -> None:
    dest = LocalDestination.at(tmp_path / "dest")
    (tmp_path / "dest").mkdir()
    with destlock.shared(dest):
        started = time.monotonic()
        with pytest.raises(DestinationLocked):
            destlock.exclusive(dest, wait=1.0).__enter__()
        assert 1.0 <= time.monotonic() - started < 30
    # A waiter gets the lock once the holder lets go.
    holder = destlock.DestLock(dest, "shared", "backup").acquire()
    got: list[str] = []
    waiter = threading.Thread(
        target=lambda: got.append(destlock.DestLock(dest, "exclusive", "prune", wait=60).acquire().key)
    )
    waiter.start()
    holder.release()
    waiter.join(timeout=90)
    assert got and [r.key for r in read_locks(dest)] == got


def test_stale_lock_is_broken_with_a_message(tmp_path: Path) -> None:
    (tmp_path / "dest").mkdir()
    dest = open_dest(DestConfig("backups", "local", {"path": str(tmp_path / "dest")}))
    old = datetime.now(UTC) - timedelta(hours=2)
    key = plant_lock(dest, mode="exclusive", host="kit-laptop", pid=4242, refreshed=old)
    path = dest.local_path(key)
    assert path is not None
    os.utime(path, (old.timestamp(), old.timestamp()))
    warnings: list[str] = []
    with destlock.shared(dest, warn=warnings.append) as lock:
        assert lock.broken == warnings and len(warnings) == 1
        assert "stale exclusive lock (prune) held by host kit-laptop, pid 4242" in warnings[0]
        assert "not refreshed for 2h" in warnings[0]
    assert read_locks(dest) == [], "the stale lock is gone"


def test_fresh_lock_of_another_host_is_live_even_with_an_old_clock(dest_config: DestConfig) -> None:
    """Its own time says two hours, the destination wrote it just now: the younger clock wins."""
    dest = open_dest(dest_config)
    plant_lock(
        dest, mode="exclusive", host="kit-laptop", pid=4242, refreshed=datetime.now(UTC) - timedelta(hours=2)
    )
    with pytest.raises(DestinationLocked, match="host kit-laptop, pid 4242"):
        destlock.shared(dest).__enter__()


def test_lock_of_a_dead_process_on_this_host_is_stale(dest_config: DestConfig) -> None:
    dest = open_dest(dest_config)
    pid = dead_pid()
    plant_lock(dest, mode="exclusive", host=socket.gethostname(), pid=pid, refreshed=datetime.now(UTC))
    warnings: list[str] = []
    with destlock.exclusive(dest, wait=0, warn=warnings.append):
        pass
    assert len(warnings) == 1 and f"process {pid} no longer runs on this host" in warnings[0]


def test_refresh_rewrites_and_notices_a_broken_lock(tmp_path: Path) -> None:
    (tmp_path / "dest").mkdir()
    dest = LocalDestination.at(tmp_path / "dest")
    warnings: list[str] = []
    with destlock.shared(dest, warn=warnings.append) as lock:
        before = read_locks(dest)[0].refreshed
        assert before is not None
        lock.refresh()
        after = read_locks(dest)[0].refreshed
        assert after is not None and after >= before
        dest.delete(lock.key)  # another machine took it for stale
        lock.refresh()
        assert lock.lost and warnings and "removed by another process" in warnings[0]
        with pytest.raises(DestinationLocked, match="Lost the lock"):
            lock.check()
        assert read_locks(dest) == [], "a lost lock is not written again"


def test_two_plans_sharing_a_destination_do_not_see_each_others_locks(dest_config: DestConfig) -> None:
    ours, theirs = open_dest(dest_config, PLAN), open_dest(dest_config, OTHER_PLAN)
    with destlock.exclusive(ours, wait=0) as ours_lock, destlock.exclusive(theirs, wait=0) as theirs_lock:
        assert [r.key for r in read_locks(ours)] == [ours_lock.key]
        assert [r.key for r in read_locks(theirs)] == [theirs_lock.key]
    assert read_locks(ours) == [] and read_locks(theirs) == []


def test_locks_in_an_object_lock_bucket_get_no_retention_and_are_released(
    moto_endpoint: str, aws_env: None
) -> None:
    from tests.s3_fixtures import S3Bucket, s3_client

    client = s3_client(moto_endpoint)
    name = f"drgui-destlock-locked-{os.getpid()}"
    client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    bucket = S3Bucket(moto_endpoint, name, client)
    dest = open_dest(DestConfig("s3", "s3", bucket.settings(object_lock_days=30)))
    warnings: list[str] = []
    with destlock.exclusive(dest, wait=0, warn=warnings.append) as lock:
        head = client.head_object(Bucket=name, Key=f"{PLAN}/{lock.key}")
        assert "ObjectLockRetainUntilDate" not in head, "a lock object is never retained"
        dest.put_bytes("snapshots/x/index.json", b"{}")
        assert "ObjectLockRetainUntilDate" in client.head_object(
            Bucket=name, Key=f"{PLAN}/snapshots/x/index.json"
        )
    assert warnings == [] and read_locks(dest) == [], "released without a warning"
    with destlock.shared(dest, wait=0, warn=warnings.append):
        pass
    assert warnings == []
