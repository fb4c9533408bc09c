"""prune: each destination's retention policy, with pinned, incomplete and object-locked snapshots kept."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drgui.cli.main import main
from drgui.core.engine.destinations.base import Destination, copy_snapshot
from drgui.core.engine.destinations.s3 import S3Destination
from drgui.core.engine.snapshot import Index
from drgui.core.ops.prune import prune
from drgui.core.plan.config import DestConfig, Plan
from drgui.core.plan.home import Home
from drgui.core.plan.workspace import Workspace
from tests.s3_fixtures import S3Bucket, s3_client

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def snapshot_at(dest: Destination, when: datetime, *, complete: bool = True) -> str:
    snapshot_id = f"{when:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"
    writer = dest.begin(snapshot_id)
    data = os.urandom(64)
    with writer.open_part("parts/files/files.tar.zst.age") as out:
        out.write(data)
    with writer.open_part("manifest.age") as out:
        out.write(b"manifest")
    if complete:
        writer.commit(
            Index(
                snapshot_id=snapshot_id,
                time=when.isoformat(),
                plan_id="abcd1234",
                sources=[{"name": "files", "kind": "folder"}],
                parts=[
                    {
                        "path": "parts/files/files.tar.zst.age",
                        "source": "files",
                        "size": 64,
                        "sha256": hashlib.sha256(data).hexdigest(),
                    }
                ],
                manifest={
                    "path": "manifest.age",
                    "size": 8,
                    "sha256": hashlib.sha256(b"manifest").hexdigest(),
                },
            )
        )
    return snapshot_id


def workspace(tmp_path: Path, *dests: DestConfig) -> Workspace:
    plan = Plan(plan_id="abcd1234", name="Acme", recipient="age1test", destinations=list(dests))
    ws = Workspace(Home(tmp_path / "home"), plan)
    ws.save()
    return ws


def fill(dest: Destination, now: datetime) -> dict[str, str]:
    """Six days of daily snapshots, a second one on the newest day, a stale and a fresh incomplete one."""
    ids = {f"day{n}": snapshot_at(dest, now - timedelta(days=n, hours=2)) for n in range(6)}
    ids["day0-late"] = snapshot_at(dest, now - timedelta(hours=1))
    ids["stale-partial"] = snapshot_at(dest, now - timedelta(days=3), complete=False)
    ids["fresh-partial"] = snapshot_at(dest, now - timedelta(minutes=10), complete=False)
    return ids


@pytest.fixture(params=["local", "s3"])
def dest_config(request: pytest.FixtureRequest, tmp_path: Path) -> DestConfig:
    if request.param == "local":
        return DestConfig("backups", "local", {"path": str(tmp_path / "dest")}, {"daily": 3})
    bucket = request.getfixturevalue("s3_bucket")
    return DestConfig("backups", "s3", bucket.settings(prefix="acme"), {"daily": 3})


def test_prune_keeps_policy_pinned_and_incomplete(tmp_path: Path, dest_config: DestConfig) -> None:
    ws = workspace(tmp_path, dest_config)
    dest = ws.destination("backups")
    ids = fill(dest, NOW)
    ws.history.pin(ids["day5"], "drill report 2026-03")

    dry = prune(ws, dry_run=True, now=NOW).to_json()
    assert dry["keep"] == sorted([ids["day0-late"], ids["day1"], ids["day2"], ids["day5"]])
    assert dry["remove"] == sorted([ids["day0"], ids["day3"], ids["day4"]])
    assert dry["reasons"][ids["day1"]] == ["daily snapshot"]
    assert dry["reasons"][ids["day5"]] == ["pinned (drill report 2026-03)"]
    assert "incomplete" in dry["reasons"][ids["fresh-partial"]][0]
    assert len(dest.snapshot_ids()) == 7, "a dry run removes nothing"

    done = prune(ws, now=NOW)
    assert sorted(dest.snapshot_ids()) == dry["keep"]
    assert dest.incomplete_ids() == [ids["fresh-partial"]], "only leftovers older than a day go"
    assert done.destinations[0].leftovers == [ids["stale-partial"]]
    run = ws.history.last_run("prune")
    assert run is not None and run.status == "ok"
    assert sorted(run.detail["removed"]["backups"]) == dry["remove"]


def test_default_policy_by_kind(tmp_path: Path) -> None:
    ws = workspace(tmp_path, DestConfig("disk", "local", {"path": str(tmp_path / "d")}))
    dest = ws.destination("disk")
    for day in range(10):
        snapshot_at(dest, NOW - timedelta(days=day))
    result = prune(ws, dry_run=True, now=NOW)
    assert len(result.destinations[0].keep) == 7 and len(result.destinations[0].remove) == 3
    assert result.destinations[0].policy == "keep 7 daily snapshots"


def test_stale_multipart_uploads_are_aborted(tmp_path: Path, s3_bucket: S3Bucket) -> None:
    ws = workspace(tmp_path, DestConfig("s3", "s3", s3_bucket.settings(prefix="acme")))
    key = "acme/abcd1234/snapshots/20260101T000000Z-0badf00d/parts/db/db.dump.zst.age"  # the plan's scope
    s3_bucket.client.create_multipart_upload(Bucket=s3_bucket.name, Key=key)
    s3_bucket.client.create_multipart_upload(Bucket=s3_bucket.name, Key="elsewhere/not-ours")
    # moto reports every upload as initiated in 2010, so "a fresh upload is left alone" is checked on
    # the threshold alone: nothing initiated after `now - 24 h` is aborted.
    real_now = datetime(2010, 11, 10, 21, tzinfo=UTC)
    assert prune(ws, now=real_now).destinations[0].aborted_uploads == [], "a fresh upload may be running"
    later = prune(ws, dry_run=True, now=real_now + timedelta(days=2)).destinations[0]
    assert (
        later.aborted_uploads == [key.removeprefix("acme/abcd1234/")] and len(s3_bucket.uploads("acme/")) == 1
    )
    prune(ws, now=real_now + timedelta(days=2))
    assert s3_bucket.uploads("acme/") == []
    assert len(s3_bucket.uploads("elsewhere/")) == 1


def test_object_locked_snapshots_are_never_removed(tmp_path: Path, moto_endpoint: str, aws_env: None) -> None:
    client = s3_client(moto_endpoint)
    name = f"drgui-prune-locked-{os.getpid()}"
    client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    bucket = S3Bucket(moto_endpoint, name, client)
    locked_config = DestConfig("s3", "s3", bucket.settings(object_lock_days=30), {"last": 1})
    ws = workspace(tmp_path, locked_config)
    dest = ws.destination("s3")
    assert isinstance(dest, S3Destination)
    real_now = datetime.now(UTC)
    old = snapshot_at(dest, real_now - timedelta(days=2))
    new = snapshot_at(dest, real_now - timedelta(days=1))
    result = prune(ws, now=real_now).to_json()
    assert result["keep"] == [old, new] and result["remove"] == []
    assert result["reasons"][old][0].startswith("object-locked")
    assert dest.snapshot_ids() == [old, new]


def test_prune_cli_json(tmp_path: Path, s3_bucket: S3Bucket) -> None:
    ws = workspace(
        tmp_path,
        DestConfig("local", "local", {"path": str(tmp_path / "dest")}, {"last": 1}),
        DestConfig("s3", "s3", s3_bucket.settings(prefix="acme"), {"last": 2}),
    )
    local, remote = ws.destination("local"), ws.destination("s3")
    now = datetime.now(UTC)
    ids = [snapshot_at(local, now - timedelta(hours=h)) for h in (3, 2, 1)]
    for snapshot_id in ids:
        copy_snapshot(local, remote, snapshot_id)  # whole snapshots: one with files missing is never pruned
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["--home", str(ws.home.path), "--json", "prune", "--dry-run", "--dest", "s3"])
    assert code == 0, stderr.getvalue()
    data = json.loads(stdout.getvalue())
    assert data["keep"] == ids[1:] and data["remove"] == ids[:1] and data["dry_run"]
    assert data["reasons"][ids[2]] == ["last snapshot"]
    assert [d["name"] for d in data["destinations"]] == ["s3"]
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        assert main(["--home", str(ws.home.path), "--json", "prune"]) == 0
    assert local.snapshot_ids() == ids[2:] and remote.snapshot_ids() == ids[1:]
