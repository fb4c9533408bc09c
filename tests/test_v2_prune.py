"""prune on format-2 snapshots: packs are removed only when no remaining index.json lists them.

Snapshots here are written by hand, exactly as the format says (docs/snapshot-format.md: index.json with
`"format": 2` and `packs`, pack objects at `packs/<2 hex>/<id>.age`), so every corner is reachable:
damaged indexes, a crashed backup's leftover packs, two plans in one bucket, a prune killed mid-way.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from drgui.core.engine import destlock
from drgui.core.engine.destinations.base import Destination
from drgui.core.engine.destinations.registry import open_destination
from drgui.core.ops.prune import prune
from drgui.core.plan.config import DestConfig, Plan
from drgui.core.plan.home import Home
from drgui.core.plan.workspace import Workspace
from tests.engine_fixtures import cli_argv, cli_env, run_cli

PLAN = "abcd1234"
OTHER_PLAN = "feed0042"
NOW = datetime.now(UTC).replace(microsecond=0)
LATER = NOW + timedelta(hours=25)  # when every pack written by this test run is older than a day


def canonical(body: dict[str, Any], pretty: bool = False) -> bytes:
    if pretty:
        return json.dumps(body, sort_keys=True, indent=1, ensure_ascii=True).encode()
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def index_bytes(body: dict[str, Any]) -> bytes:
    """index.json as docs/snapshot-format.md defines it: canonical JSON with its own sha256."""
    return (
        canonical({**body, "index_sha256": hashlib.sha256(canonical(body)).hexdigest()}, pretty=True) + b"\n"
    )


def pack_key(pack_id: str) -> str:
    return f"packs/{pack_id[:2]}/{pack_id}.age"


def put_pack(dest: Destination, size: int = 256) -> tuple[str, dict[str, Any]]:
    """A pack object (random bytes stand for the ciphertext) and its index.json entry."""
    pack_id = secrets.token_hex(16)
    data = os.urandom(size)
    dest.put_bytes(pack_key(pack_id), data)
    return pack_id, {"id": pack_id, "size": size, "sha256": hashlib.sha256(data).hexdigest()}


def v2_snapshot(dest: Destination, when: datetime, packs: list[dict[str, Any]], plan_id: str = PLAN) -> str:
    """A complete v2 snapshot: manifest and the file list part first, index.json last."""
    snapshot_id = f"{when:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"
    prefix = f"snapshots/{snapshot_id}"
    manifest, file_list = os.urandom(40), os.urandom(80)
    dest.put_bytes(f"{prefix}/manifest.age", manifest)
    dest.put_bytes(f"{prefix}/parts/files/files.jsonl.zst.age", file_list)
    body = {
        "format": 2,
        "id": snapshot_id,
        "time": when.isoformat(),
        "end_time": (when + timedelta(seconds=5)).isoformat(),
        "plan": plan_id,
        "drgui_version": "test",
        "sources": [{"name": "files", "kind": "folder"}],
        "parts": [
            {
                "path": "parts/files/files.jsonl.zst.age",
                "source": "files",
                "size": len(file_list),
                "sha256": hashlib.sha256(file_list).hexdigest(),
            }
        ],
        "manifest": {
            "path": "manifest.age",
            "size": len(manifest),
            "sha256": hashlib.sha256(manifest).hexdigest(),
        },
        "packs": packs,
    }
    dest.put_bytes(f"{prefix}/index.json", index_bytes(body))
    return snapshot_id


def present_packs(dest: Destination) -> set[str]:
    return {info.key.rsplit("/", 1)[1].removesuffix(".age") for info in dest.list_objects("packs/")}


def listed_packs(dest: Destination) -> dict[str, set[str]]:
    """Snapshot folder -> the packs its index.json lists (every index.json there, read raw)."""
    found = {}
    for info in dest.list_objects("snapshots/"):
        parts = info.key.split("/")
        if len(parts) == 3 and parts[2] == "index.json":
            found[parts[1]] = {p["id"] for p in json.loads(dest.get_bytes(info.key)).get("packs", [])}
    return found


def workspace(tmp_path: Path, config: DestConfig) -> Workspace:
    ws = Workspace(
        Home(tmp_path / "home"), Plan(plan_id=PLAN, name="Acme", recipient="age1test", destinations=[config])
    )
    ws.save()
    return ws


@pytest.fixture(params=["local", "s3"])
def dest_config(request: pytest.FixtureRequest, tmp_path: Path) -> DestConfig:
    if request.param == "local":
        (tmp_path / "dest").mkdir()
        return DestConfig("backups", "local", {"path": str(tmp_path / "dest")}, {"last": 1})
    bucket = request.getfixturevalue("s3_bucket")
    return DestConfig("backups", "s3", bucket.settings(prefix="shared"), {"last": 1})


@dataclass
class Days:
    ids: list[str]  # oldest first
    packs: list[list[str]]  # pack ids of each day's snapshot
    sizes: dict[str, int]


def four_days(dest: Destination, plan_id: str = PLAN) -> Days:
    """Day n shares one pack with day n+1 (an unchanged file), like daily incremental backups."""
    sizes: dict[str, int] = {}
    entries = []
    for n in range(5):
        pack_id, entry = put_pack(dest, size=1000 + n)
        sizes[pack_id] = entry["size"]
        entries.append(entry)
    ids, packs = [], []
    for day in range(4):
        chosen = entries[day : day + 2]
        ids.append(v2_snapshot(dest, NOW - timedelta(days=3 - day), chosen, plan_id))
        packs.append([e["id"] for e in chosen])
    return Days(ids, packs, sizes)


def four_days_in(tmp_path: Path, config: DestConfig) -> tuple[Workspace, Destination, Days]:
    """A plan with the destination `config` (named backups), holding `four_days`."""
    ws = workspace(tmp_path, config)
    dest = ws.destination("backups")
    return ws, dest, four_days(dest)


def test_prune_to_one_snapshot_frees_exactly_what_older_ones_needed(
    tmp_path: Path, dest_config: DestConfig
) -> None:
    ws, dest, days = four_days_in(tmp_path, dest_config)
    kept = set(days.packs[3])
    freed = present_packs(dest) - kept

    dry = prune(ws, dry_run=True, now=NOW).to_json()
    assert dry["keep"] == days.ids[3:] and dry["remove"] == days.ids[:3]
    packs = dry["destinations"][0]["packs"]
    assert set(packs["remove"]) == freed and packs["removed_count"] == 3
    assert packs["bytes_freed"] == sum(days.sizes[p] for p in freed) == dry["pack_bytes_freed"]
    assert packs["referenced"] == 2 and packs["referenced_bytes"] == sum(days.sizes[p] for p in kept)
    assert len(present_packs(dest)) == 5 and len(dest.snapshot_ids()) == 4, "a dry run removes nothing"

    done = prune(ws, now=NOW).to_json()
    assert dest.snapshot_ids() == days.ids[3:]
    assert present_packs(dest) == kept
    assert set(done["destinations"][0]["packs"]["remove"]) == freed and done["packs_removed"] == 3
    assert list(dest.list_objects("locks/")) == [], "prune let go of the destination lock"
    run = ws.history.last_run("prune")
    assert run is not None and run.detail["packs_removed"] == {"backups": 3}


def test_unreferenced_packs_wait_a_day_and_kept_snapshots_protect_theirs(
    tmp_path: Path, dest_config: DestConfig
) -> None:
    ws, dest, days = four_days_in(tmp_path, dest_config)
    ws.history.pin(days.ids[0], "drill report")
    leftover, _ = put_pack(dest)  # a crashed backup's pack: no index names it
    result = prune(ws, now=NOW).destinations[0]
    assert result.keep == [days.ids[0], days.ids[3]], "the pinned one stays"
    assert result.packs.young == [leftover] and leftover in present_packs(dest)
    assert present_packs(dest) == set(days.packs[0]) | set(days.packs[3]) | {leftover}
    later = prune(ws, now=LATER).destinations[0]
    assert later.packs.remove == [leftover]
    assert present_packs(dest) == set(days.packs[0]) | set(days.packs[3])


def test_a_damaged_index_still_protects_its_packs(tmp_path: Path) -> None:
    (tmp_path / "dest").mkdir()
    ws, dest, days = four_days_in(
        tmp_path, DestConfig("backups", "local", {"path": str(tmp_path / "dest")}, {"last": 1})
    )
    key = f"snapshots/{days.ids[1]}/index.json"
    dest.put_bytes(key, dest.get_bytes(key).replace(b'"drgui_version": "test"', b'"drgui_version": "tesT"'))
    result = prune(ws, now=LATER).destinations[0]
    assert days.ids[1] in result.damaged and days.ids[1] not in result.remove
    assert present_packs(dest) == set(days.packs[1]) | set(days.packs[3])
    # An index.json that is not even JSON: which packs it needs is unknown, so none is removed.
    dest.put_bytes(key, b"\x00garbage")
    orphan, _ = put_pack(dest)
    blocked = prune(ws, now=LATER + timedelta(days=1)).destinations[0]
    assert (
        blocked.packs.blocked
        and key in blocked.packs.blocked
        and "no pack was removed" in blocked.packs.blocked
    )
    assert orphan in present_packs(dest)


def test_two_plans_sharing_a_destination_never_touch_each_others_packs(
    tmp_path: Path, dest_config: DestConfig
) -> None:
    ws = workspace(tmp_path, dest_config)
    ours = ws.destination("backups")
    theirs = open_destination(dest_config, None, plan_id=OTHER_PLAN)
    their_days = four_days(theirs, OTHER_PLAN)
    their_leftover, _ = put_pack(theirs)
    our_days = four_days(ours)
    with destlock.shared(theirs):  # their backup running does not stop our prune
        prune(ws, now=LATER)
    assert present_packs(ours) == set(our_days.packs[3])
    assert present_packs(theirs) == {p for day in their_days.packs for p in day} | {their_leftover}
    assert len(theirs.snapshot_ids()) == 4


def test_a_backup_lock_blocks_prune_and_a_stale_one_is_broken(
    tmp_path: Path, dest_config: DestConfig
) -> None:
    ws, dest, days = four_days_in(tmp_path, dest_config)
    with destlock.shared(dest, "backup"):
        result = prune(ws, now=NOW, lock_wait=0)
    assert result.locked and not result.ok
    error = result.destinations[0].error
    assert error and "shared lock (backup)" in error and f"pid {os.getpid()}" in error
    assert len(dest.snapshot_ids()) == 4 and len(present_packs(dest)) == 5, "nothing was touched"
    # A backup that died on this host without letting go: its lock is broken, with a message.
    body = {"host": os.uname().nodename, "pid": dead_pid(), "mode": "shared", "purpose": "backup"}
    body |= {"started": NOW.isoformat(), "refreshed": NOW.isoformat()}
    dest.put_bytes(f"locks/{secrets.token_hex(16)}.json", json.dumps(body).encode())
    done = prune(ws, now=NOW, lock_wait=0).destinations[0]
    assert done.error is None and len(done.warnings) == 1
    assert f"pid {body['pid']}" in done.warnings[0] and "no longer runs on this host" in done.warnings[0]
    assert dest.snapshot_ids() == days.ids[3:]


def dead_pid() -> int:
    child = subprocess.run(
        ["python3", "-c", "import os; print(os.getpid())"], capture_output=True, check=True
    )
    return int(child.stdout)


def test_prune_cli_exits_3_while_a_backup_holds_the_lock(new_plan: Any) -> None:
    plan = new_plan()
    dest = open_destination(
        DestConfig("local", "local", {"path": str(plan.dest_dir)}), None, plan_id=plan.plan_id
    )
    with destlock.shared(dest, "backup"):
        blocked = run_cli(plan.home, "--json", "prune", "--lock-wait", "0")
    assert blocked.code == 3, str(blocked)
    data = blocked.json()
    assert "shared lock (backup)" in data["destinations"][0]["error"] and "Traceback" not in blocked.stderr
    dry = run_cli(plan.home, "--json", "prune", "--dry-run")
    assert dry.code == 0 and dry.json()["pack_bytes_freed"] == 0


def test_kill_9_during_prune_never_loses_a_pack_a_listed_snapshot_needs(new_plan: Any) -> None:
    plan = new_plan()
    dest = open_destination(
        DestConfig("local", "local", {"path": str(plan.dest_dir)}), None, plan_id=plan.plan_id
    )
    entries = [put_pack(dest, size=64)[1] for _ in range(60)]
    for day in range(30):  # the default local policy keeps 7 daily snapshots: 23 go
        v2_snapshot(
            dest, NOW - timedelta(days=30 - day, hours=1), entries[2 * day : 2 * day + 4], plan.plan_id
        )
    for info in list(dest.list_objects("")):  # everything is as old as its snapshot says
        path = dest.local_path(info.key)
        assert path is not None
        os.utime(path, ((NOW - timedelta(days=31)).timestamp(),) * 2)
    rng = random.Random(12)
    kills = 0
    for seed in range(6):
        before = listed_packs(dest)
        process = subprocess.Popen(
            cli_argv(plan.home, "--json", "prune"),
            env=cli_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while (
            process.poll() is None
            and listed_packs_changed(dest, before) is False
            and time.monotonic() < deadline
        ):
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.02 * seed))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait(timeout=60)
        present = present_packs(dest)
        for folder, needed in listed_packs(dest).items():
            assert needed <= present, f"seed {seed}: {folder} lists a pack that is gone"
        for snapshot_id in dest.snapshot_ids():
            assert snapshot_id in before
        if len(dest.snapshot_ids()) == 7:
            break
    assert kills >= 1, "no prune was killed mid-way"
    final = run_cli(plan.home, "--json", "prune")
    assert final.code == 0, str(final)
    assert len(dest.snapshot_ids()) == 7
    listed = listed_packs(dest)
    assert present_packs(dest) == set().union(*listed.values()), "the later prune cleaned up every pack"
    assert dest.incomplete_ids() == [], "and every half-removed snapshot"
    assert list(dest.list_objects("locks/")) == []


def listed_packs_changed(dest: Destination, before: dict[str, set[str]]) -> bool:
    try:
        return len(listed_packs(dest)) != len(before)
    except (FileNotFoundError, json.JSONDecodeError):
        return True


# --- real format-2 backups ---------------------------------------------------------------------------


def set_retention(plan: Any, policy: dict[str, int]) -> None:
    ws = Workspace(Home(plan.home))
    ws.plan.destination("local").retention = policy
    ws.save()


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_real_backups_pruned_to_one_free_what_only_older_ones_needed(new_plan: Any, tmp_path: Path) -> None:
    env = {"DRGUI_SNAPSHOT_FORMAT": "2"}
    plan = new_plan()
    data = tmp_path / "data"
    data.mkdir()
    for number in range(20):
        (data / f"f{number:02d}.bin").write_bytes(os.urandom(20_000))
    assert run_cli(plan.home, "--json", "source", "add", "files", "folder", "--path", str(data)).code == 0
    dest = open_destination(
        DestConfig("local", "local", {"path": str(plan.dest_dir)}), None, plan_id=plan.plan_id
    )

    def backup() -> str:
        result = run_cli(plan.home, "--json", "backup", env=env)
        assert result.code == 0, str(result)
        return str(result.json()["snapshot"])

    backup()
    (data / "temp.bin").write_bytes(os.urandom(300_000))  # day 2 only: its pack is needed by day 2 alone
    day2 = backup()
    (data / "temp.bin").unlink()
    (data / "f00.bin").write_bytes(os.urandom(20_000))
    (data / "f01.bin").rename(data / "renamed.bin")
    day3 = backup()
    expected = tree(data)
    listed = listed_packs(dest)
    only_older = present_packs(dest) - listed[day3]
    assert only_older and only_older <= listed[day2]
    size_before = sum(info.size for info in dest.list_objects(""))

    set_retention(plan, {"last": 1})
    dry = run_cli(plan.home, "--json", "prune", "--dry-run", env=env).json()
    assert set(dry["destinations"][0]["packs"]["remove"]) == only_older
    done = run_cli(plan.home, "--json", "prune", env=env)
    assert done.code == 0, str(done)
    assert done.json()["remove"] and dest.snapshot_ids() == [day3]
    assert present_packs(dest) == listed[day3], "every pack only older snapshots needed is gone"
    freed = size_before - sum(info.size for info in dest.list_objects(""))
    assert freed >= done.json()["pack_bytes_freed"] >= 300_000
    assert run_cli(plan.home, "--json", "verify", day3, "--deep").json()["ok"]
    restored = tmp_path / "restored"
    result = run_cli(plan.home, "--json", "restore", day3, "--source", "files", "--to-dir", str(restored))
    assert result.code == 0, str(result)
    assert tree(restored) == expected, "the kept snapshot restores exactly"


def test_a_live_prune_lock_blocks_a_backup_with_exit_3(new_plan: Any, tmp_path: Path) -> None:
    env = {"DRGUI_SNAPSHOT_FORMAT": "2"}
    plan = new_plan()
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("a")
    assert run_cli(plan.home, "--json", "source", "add", "files", "folder", "--path", str(data)).code == 0
    dest = open_destination(
        DestConfig("local", "local", {"path": str(plan.dest_dir)}), None, plan_id=plan.plan_id
    )
    with destlock.exclusive(dest, "prune", wait=0):
        blocked = run_cli(plan.home, "--json", "backup", env=env)
    assert blocked.code == 3, str(blocked)
    assert "exclusive lock (prune)" in blocked.stdout + blocked.stderr and "Traceback" not in blocked.stderr
    assert dest.snapshot_ids() == [] and present_packs(dest) == set(), "nothing was written"
    assert run_cli(plan.home, "--json", "backup", env=env).code == 0


def test_a_prune_that_lost_its_lock_deletes_nothing(tmp_path: Path) -> None:
    """A prune stalled past the stale limit: a backup broke its lock and may now reference its packs."""
    from drgui.core.ops.prune import _prune_destination

    config = DestConfig("backups", "local", {"path": str(tmp_path / "dest")}, {"last": 1})
    (tmp_path / "dest").mkdir()
    _ws, dest, days = four_days_in(tmp_path, config)
    with destlock.exclusive(dest, "prune", wait=0, warn=lambda _message: None) as lock:
        dest.delete(lock.key)  # a backup took it for stale
        lock.refresh()
        with pytest.raises(destlock.DestinationLocked, match="Lost the lock"):
            _prune_destination(dest, config, {}, NOW, lock)
    assert dest.snapshot_ids() == days.ids and len(present_packs(dest)) == 5
