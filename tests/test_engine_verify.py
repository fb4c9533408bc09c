"""verify and verify --deep find every flipped byte, and name the file that holds it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.engine_fixtures import BackedUp, copy_snapshot_dest, ok

pytestmark = pytest.mark.integration


def test_intact_snapshot_verifies(pg18_backup: BackedUp) -> None:
    plan = pg18_backup.plan
    quick = ok(plan.cli("--json", "verify")).json()
    assert quick["ok"] and quick["snapshot"] == pg18_backup.snapshot_id and quick["problems"] == []
    deep = ok(plan.cli("--json", "verify", pg18_backup.snapshot_id, "--deep")).json()
    assert deep["ok"], deep
    assert any("pg_restore read it" in c for c in deep["checked"])
    listed = ok(plan.cli("--json", "snapshots")).json()
    assert [row["id"] for row in listed] == [pg18_backup.snapshot_id]
    assert listed[0]["complete"] and listed[0]["destinations"] == ["local"]
    assert sorted(listed[0]["sources"]) == ["db", "env", "files", "repo"]


def _targets(pg18_backup: BackedUp) -> list[str]:
    snapshot = pg18_backup.plan.snapshots_root / pg18_backup.snapshot_id
    index = json.loads((snapshot / "index.json").read_text())
    return [part["path"] for part in index["parts"]] + ["manifest.age", "index.json"]


def _flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    position = len(data) // 2
    data[position] ^= 0x01
    path.write_bytes(bytes(data))


def test_every_flipped_byte_is_found(pg18_backup: BackedUp, tmp_path: Path) -> None:
    targets = _targets(pg18_backup)
    assert len(targets) == 7, targets  # db.dump, globals, files, env, repo, manifest, index
    for number, target in enumerate(targets):
        copy = copy_snapshot_dest(pg18_backup, tmp_path / f"copy{number}")
        _flip_one_byte(copy.snapshots_root / pg18_backup.snapshot_id / target)
        for mode in ([], ["--deep"]):
            result = copy.cli("--json", "verify", pg18_backup.snapshot_id, *mode)
            assert result.code == 1, f"{target} {mode}: {result}"
            report = result.json()
            assert not report["ok"]
            assert report["problems"], report
            assert any(problem.startswith(target) for problem in report["problems"]), (target, report)
