"""Snapshot format 2 for folders: only what changed is stored, every snapshot restores its own day."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine_fixtures import Plan, cli_argv, cli_env, make_plan, ok, run_cli

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def format_2(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("DRGUI_SNAPSHOT_FORMAT", "2")
    yield


def fill(root: Path, count: int, size: int, prefix: str = "f") -> None:
    root.mkdir(parents=True, exist_ok=True)
    for number in range(count):
        (root / f"{prefix}{number:04d}.bin").write_bytes(os.urandom(size))


def tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def folder_plan(tmp_path: Path, data: Path) -> Plan:
    plan = make_plan(tmp_path / "plan")
    ok(plan.cli("--json", "source", "add", "files", "folder", "--path", str(data)))
    return plan


def backup(plan: Plan, *args: str) -> dict:
    result = ok(plan.cli("--json", "backup", *args)).json()
    assert result["ok"], result
    return result


def restore(plan: Plan, snapshot_id: str, target: Path) -> None:
    ok(plan.cli("--json", "restore", snapshot_id, "--source", "files", "--to-dir", str(target)))


def assert_same_tree(expected: Path, actual: Path) -> None:
    def listing(root: Path) -> dict[str, tuple[str, bytes | str]]:
        found = {}
        for path in sorted(root.rglob("*")):
            relative = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[relative] = ("link", os.readlink(path))
            elif path.is_dir():
                found[relative] = ("dir", "")
            else:
                found[relative] = ("file", path.read_bytes())
        return found

    assert listing(expected) == listing(actual)


def test_day_2_of_an_unchanged_folder_adds_under_one_percent_and_reads_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    fill(data, 200, 50_000)
    (data / "sub").mkdir()
    (data / "sub" / "same-a").write_bytes(b"same content")
    (data / "sub" / "same-b").write_bytes(b"same content")
    (data / "link").symlink_to("f0000.bin")
    plan = folder_plan(tmp_path, data)
    day1 = backup(plan)
    scan1 = day1["sources"][0]["scan"]
    assert scan1["files_scanned"] == 202 and scan1["files_new"] == 201  # same-a/same-b stored once
    after_day1 = tree_size(plan.dest_dir)
    day2 = backup(plan)
    scan2 = day2["sources"][0]["scan"]
    assert scan2 == {**scan2, "files_unchanged": 202, "files_new": 0, "bytes_new": 0}
    added = tree_size(plan.dest_dir) - after_day1
    assert added < 0.01 * tree_size(data), f"day 2 added {added} bytes"
    packs = list((plan.dest_dir / plan.plan_id / "packs").rglob("*.age"))
    index = json.loads((plan.snapshots_root / day2["snapshot"] / "index.json").read_text())
    assert index["format"] == 2 and {p["id"] for p in index["packs"]} == {p.stem for p in packs}

    # Same size, same mtime, same inode: not read again (so this in-place edit is not seen)...
    edited = data / "f0001.bin"
    stat = edited.stat()
    with open(edited, "r+b") as handle:
        handle.write(b"X" * 10)
    os.utime(edited, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    day3 = backup(plan)
    assert day3["sources"][0]["scan"]["files_new"] == 0
    # ...while --force-read reads and hashes every file and stores only the one changed content.
    day4 = backup(plan, "--force-read")
    scan4 = day4["sources"][0]["scan"]
    assert scan4["files_unchanged"] == 0 and scan4["files_new"] == 1 and scan4["bytes_new"] == 50_000
    restore(plan, day4["snapshot"], tmp_path / "out")
    assert_same_tree(data, tmp_path / "out")


def test_three_days_each_restore_exactly_their_own_day(tmp_path: Path) -> None:
    data = tmp_path / "data"
    fill(data / "docs", 100, 20_000)
    (data / "empty").mkdir()
    (data / "docs" / "link").symlink_to("../elsewhere")
    plan = folder_plan(tmp_path, data)
    days: list[tuple[str, Path]] = []

    def snapshot_day(label: str) -> dict:
        result = backup(plan)
        copy = tmp_path / f"state-{label}"
        shutil.copytree(data, copy, symlinks=True)
        days.append((result["snapshot"], copy))
        return result

    snapshot_day("1")
    fill(data / "docs", 1, 20_000, prefix="new")  # 1% new
    (data / "docs" / "f0002.bin").write_bytes(os.urandom(20_000))  # edited
    (data / "docs" / "f0003.bin").unlink()  # deleted
    (data / "docs" / "f0004.bin").rename(data / "docs" / "renamed.bin")  # renamed
    day2 = snapshot_day("2")
    scan = day2["sources"][0]["scan"]
    assert scan["files_new"] == 2 and scan["bytes_new"] == 40_000  # the renamed file is not stored again
    (data / "docs" / "f0005.bin").unlink()
    (data / "docs" / "f0006.bin").write_bytes(b"day three")
    snapshot_day("3")
    for snapshot_id, state in days:
        target = tmp_path / f"restored-{snapshot_id}"
        restore(plan, snapshot_id, target)
        assert_same_tree(state, target)
    first, second = (
        (tmp_path / f"restored-{days[0][0]}" / "docs"),
        (tmp_path / f"restored-{days[1][0]}" / "docs"),
    )
    assert (first / "f0003.bin").exists() and not (second / "f0003.bin").exists()
    assert (first / "f0004.bin").exists() and not (first / "renamed.bin").exists()
    assert (second / "renamed.bin").exists() and not (second / "f0004.bin").exists()
    for snapshot_id, _state in days:
        assert ok(plan.cli("--json", "verify", snapshot_id, "--deep")).json()["ok"]


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_flipped_byte_in_any_pack_fails_verify_naming_the_pack(tmp_path: Path) -> None:
    data = tmp_path / "data"
    fill(data, 3, 30_000)
    plan = folder_plan(tmp_path, data)
    backup(plan)
    fill(data, 2, 30_000, prefix="later")
    snapshot_id = backup(plan)["snapshot"]  # references the pack of day 1 and a new one
    index = json.loads((plan.snapshots_root / snapshot_id / "index.json").read_text())
    assert len(index["packs"]) == 2
    scope = plan.dest_dir / plan.plan_id
    for pack in index["packs"]:
        key = f"packs/{pack['id'][:2]}/{pack['id']}.age"
        original = (scope / key).read_bytes()
        flip_byte(scope / key, len(original) // 2)
        for deep in ([], ["--deep"]):
            result = plan.cli("--json", "verify", snapshot_id, *deep)
            assert result.code == 1, str(result)
            assert any(key in problem for problem in result.json()["problems"]), result.json()
        restored = plan.cli(
            "--json", "restore", snapshot_id, "--source", "files", "--to-dir", str(tmp_path / "x")
        )
        assert restored.code == 1 and not (tmp_path / "x").exists()
        (scope / key).write_bytes(original)
    assert ok(plan.cli("--json", "verify", snapshot_id, "--deep")).json()["ok"]


def test_format_1_snapshots_keep_restoring_and_the_next_backup_is_format_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    fill(data, 5, 10_000)
    plan = folder_plan(tmp_path, data)
    monkeypatch.setenv("DRGUI_SNAPSHOT_FORMAT", "1")
    v1 = backup(plan)["snapshot"]
    v1_state = tmp_path / "v1-state"
    shutil.copytree(data, v1_state)
    monkeypatch.setenv("DRGUI_SNAPSHOT_FORMAT", "2")
    (data / "f0000.bin").unlink()
    v2 = backup(plan)
    assert v2["sources"][0]["scan"]["files_unchanged"] == 0  # a format-1 parent has no file list to reuse
    assert json.loads((plan.snapshots_root / v1 / "index.json").read_text())["format"] == 1
    listed = ok(plan.cli("--json", "snapshots")).json()
    assert [s["id"] for s in listed if s["complete"]] == [v1, v2["snapshot"]]
    for snapshot_id in (v1, v2["snapshot"]):
        assert ok(plan.cli("--json", "verify", snapshot_id, "--deep")).json()["ok"]
    restore(plan, v1, tmp_path / "out-v1")
    assert_same_tree(v1_state, tmp_path / "out-v1")
    restore(plan, v2["snapshot"], tmp_path / "out-v2")
    assert_same_tree(data, tmp_path / "out-v2")


def test_kill_9_during_an_incremental_backup_never_lists_a_snapshot_deep_verify_rejects(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    fill(data / "a", 40, 300_000)
    plan = folder_plan(tmp_path, data)
    backup(plan)
    scope = plan.dest_dir / plan.plan_id
    # Each round adds new content, then kills the backup when the named thing first appears.
    triggers = ["start", "partial", "pack-temp", "pack", "partial-index"]
    for round_number, trigger in enumerate(triggers):
        fill(data / f"day{round_number}", 20, 300_000)
        before = set(scope.rglob("*"))
        process = subprocess.Popen(
            cli_argv(plan.home, "--json", "backup"),
            env=cli_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while process.poll() is None and trigger != "start":
                new = set(scope.rglob("*")) - before
                names = [p.name for p in new]
                hit = {
                    "partial": any(n.endswith(".partial") for n in names),
                    "pack-temp": any(n.endswith(".tmp") and n.startswith(".") for n in names),
                    "pack": any(
                        n.endswith(".age") and p.parent.parent.name == "packs" for p in new for n in [p.name]
                    ),
                    "partial-index": any(p.name.startswith(".index.json") for p in new),
                }[trigger]
                if hit:
                    break
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(0.02)
        finally:
            process.kill()
            process.wait()
        listed = ok(plan.cli("--json", "snapshots")).json()
        for snapshot in listed:
            if snapshot["complete"]:
                verified = plan.cli("--json", "verify", snapshot["id"], "--deep")
                assert verified.code == 0, f"after a kill at {trigger}: {verified}"
    final = backup(plan)
    restore(plan, final["snapshot"], tmp_path / "out")
    assert_same_tree(data, tmp_path / "out")


def test_drill_and_a_kit_import_work_on_format_2(tmp_path: Path) -> None:
    data = tmp_path / "data"
    fill(data / "docs", 10, 5_000)
    (data / "docs" / "link").symlink_to("f0001.bin")
    plan = folder_plan(tmp_path, data)
    backup(plan)
    (data / "docs" / "f0000.bin").unlink()
    fill(data / "more", 2, 5_000)
    snapshot_id = backup(plan)["snapshot"]
    drill = plan.cli("--json", "drill", "latest")
    assert drill.code == 0, str(drill)
    checks = {c["name"]: c for c in drill.json()["checks"]}
    assert checks["files files"]["ok"] and "11 files" in checks["files files"]["detail"], checks

    export = ok(plan.cli("--json", "kit", "export", str(tmp_path / "kit.pdf"))).json()
    fresh = tmp_path / "fresh-home"
    imported = run_cli(
        fresh, "--json", "kit", "import", export["kit"], "--passphrase-file", str(plan.passphrase_file)
    )
    ok(imported)
    target = tmp_path / "on-a-new-machine"
    ok(run_cli(fresh, "--json", "restore", "latest", "--source", "files", "--to-dir", str(target)))
    assert_same_tree(data, target)
    assert ok(run_cli(fresh, "--json", "verify", snapshot_id, "--deep")).json()["ok"]


def test_the_local_cache_is_never_trusted_over_the_destination(tmp_path: Path) -> None:
    import sqlite3

    data = tmp_path / "data"
    fill(data, 4, 10_000)
    plan = folder_plan(tmp_path, data)
    backup(plan)
    caches = list((plan.home / "cache" / "file-lists").rglob("*.sqlite"))
    assert len(caches) == 1
    assert backup(plan)["sources"][0]["scan"]["files_unchanged"] == 4  # through the cache
    bogus = "0" * 32  # a pack no index at the destination lists (say, pruned since)
    db = sqlite3.connect(caches[0])
    db.execute("UPDATE parent SET entry = json_set(entry, '$.pack', ?)", (bogus,))
    db.execute("UPDATE content SET pack = ?", (bogus,))
    db.commit()
    db.close()
    scan = backup(plan)["sources"][0]["scan"]
    assert scan["files_unchanged"] == 0 and scan["files_new"] == 4
    latest = ok(plan.cli("--json", "verify", "latest", "--deep")).json()
    assert latest["ok"] and not any(bogus in line for line in latest["checked"])
    human = ok(plan.cli("backup")).stdout  # the CLI's summary says what the scan found
    assert "4 files scanned (40.0 KB), 4 unchanged (40.0 KB), 0 new (0 B)" in human, human


def test_a_snapshot_whose_pack_is_missing_is_not_listed_complete(tmp_path: Path) -> None:
    data = tmp_path / "data"
    fill(data, 2, 10_000)
    plan = folder_plan(tmp_path, data)
    snapshot_id = backup(plan)["snapshot"]
    pack = next((plan.dest_dir / plan.plan_id / "packs").rglob("*.age"))
    pack.rename(pack.with_name("moved-away"))
    listed = plan.cli("--json", "snapshots")
    assert listed.code == 1
    (entry,) = listed.json()
    assert entry["id"] == snapshot_id and not entry["complete"], entry
    refused = plan.cli("--json", "restore", "latest", "--source", "files", "--to-dir", str(tmp_path / "out"))
    assert refused.code == 1 and not (tmp_path / "out").exists()
    pack.with_name("moved-away").rename(pack)
    assert ok(plan.cli("--json", "snapshots")).json()[0]["complete"]


def test_the_next_backup_removes_a_killed_runs_pack_temp_files_over_an_hour_old(tmp_path: Path) -> None:
    data = tmp_path / "data"
    fill(data, 1, 1_000)
    plan = folder_plan(tmp_path, data)
    backup(plan)
    packs = plan.dest_dir / plan.plan_id / "packs" / "ab"
    packs.mkdir(parents=True, exist_ok=True)
    old, young = packs / f".{'ab' * 16}.age.x1.tmp", packs / f".{'ab' * 15}cd.age.x2.tmp"
    for path in (old, young):
        path.write_bytes(b"half a pack")
    os.utime(old, (0, 0))
    backup(plan)
    assert not old.exists() and young.exists()
