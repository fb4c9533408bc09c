"""`restore --to-bucket` stages every object under `<prefix>/.drgui-restore-*/` and copies them to their
final keys only once the whole part checked (issue 11 item 7): a damaged or swapped part leaves the
target prefix exactly as it was, and no staging prefix is left behind."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from drgui.core.engine.snapshot import Index
from tests.engine_fixtures import Plan, ok
from tests.s3_fixtures import S3Bucket
from tests.test_hostile_11 import (
    AWKWARD_KEYS,
    add_s3_source,
    bucket_objects,
    flip_byte,
    one_json,
    restore_args,
)

pytestmark = pytest.mark.integration

BIG = {f"big/{n}.bin": os.urandom(150_000) for n in range(6)}  # incompressible: the flip lands mid-part


def all_keys(bucket: S3Bucket, name: str) -> list[str]:
    pages = bucket.client.get_paginator("list_objects_v2").paginate(Bucket=name)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def staging_keys(bucket: S3Bucket, name: str) -> list[str]:
    return [key for key in all_keys(bucket, name) if ".drgui-restore-" in key]


def backup_objects(plan: Plan, bucket: S3Bucket, objects: dict[str, bytes]) -> str:
    for key in bucket.list_keys("up/"):
        bucket.client.delete_object(Bucket=bucket.name, Key=key)
    for key, body in objects.items():
        bucket.client.put_object(Bucket=bucket.name, Key="up/" + key, Body=body)
    return one_json(ok(plan.cli("--json", "backup")))["snapshot"]


def swap_part(plan: Plan, donor: str, snapshot: str) -> None:
    """The donor snapshot's part in place of the snapshot's, its index entry too (the index then agrees:
    only the manifest's hashes can tell)."""
    part = "parts/uploads/objects.tar.zst.age"
    shutil.copyfile(plan.snapshots_root / donor / part, plan.snapshots_root / snapshot / part)
    donor_index = Index.from_bytes((plan.snapshots_root / donor / "index.json").read_bytes())
    index = Index.from_bytes((plan.snapshots_root / snapshot / "index.json").read_bytes())
    index.parts = [p for p in donor_index.parts if p["path"] == part]
    (plan.snapshots_root / snapshot / "index.json").write_bytes(index.to_bytes())


@pytest.mark.parametrize("damage", ["flipped", "swapped"])
@pytest.mark.parametrize("overwrite", [False, True])
def test_damaged_part_leaves_the_target_prefix_as_it_was(
    new_plan: Callable[..., Plan], s3_bucket: S3Bucket, damage: str, overwrite: bool
) -> None:
    plan = new_plan()
    add_s3_source(plan, s3_bucket, "up")
    other = backup_objects(plan, s3_bucket, {f"other/{n}.bin": os.urandom(150_000) for n in range(6)})
    snapshot = backup_objects(plan, s3_bucket, BIG)
    part = plan.snapshots_root / snapshot / "parts" / "uploads" / "objects.tar.zst.age"
    if damage == "flipped":
        flip_byte(part)
    else:
        swap_part(plan, other, snapshot)
    copy = s3_bucket.name + "-copy"
    s3_bucket.client.create_bucket(Bucket=copy)
    if overwrite:
        s3_bucket.client.put_object(Bucket=copy, Key="live/big/0.bin", Body=b"live, never backed up")
        s3_bucket.client.put_object(Bucket=copy, Key="live/keep.txt", Body=b"keep")
    before = bucket_objects(s3_bucket, copy, "")
    result = plan.cli(*restore_args(snapshot, copy, "live"), *(["--overwrite"] if overwrite else []))
    assert result.code == 1, str(result)
    assert "not restored" in one_json(result)["error"].lower(), str(result)
    assert bucket_objects(s3_bucket, copy, "") == before
    assert staging_keys(s3_bucket, copy) == []


def test_good_restore_round_trips_keys_and_leaves_no_staging(
    new_plan: Callable[..., Plan], s3_bucket: S3Bucket
) -> None:
    plan = new_plan()
    add_s3_source(plan, s3_bucket, "up")
    objects = {**AWKWARD_KEYS, **BIG}
    snapshot = backup_objects(plan, s3_bucket, objects)
    copy = s3_bucket.name + "-copy"
    s3_bucket.client.create_bucket(Bucket=copy)
    for prefix in ("", "restored"):
        body = one_json(ok(plan.cli(*restore_args(snapshot, copy, prefix))))
        assert body["ok"] and body["safety_snapshot"] is None, body
        assert staging_keys(s3_bucket, copy) == []
    assert bucket_objects(s3_bucket, copy, "restored/") == objects
    at_root = bucket_objects(s3_bucket, copy, "")
    assert {k: v for k, v in at_root.items() if not k.startswith("restored/")} == objects


def test_overwrite_takes_the_safety_snapshot_without_the_staged_objects(
    new_plan: Callable[..., Plan], s3_bucket: S3Bucket
) -> None:
    plan = new_plan()
    add_s3_source(plan, s3_bucket, "up")
    snapshot = backup_objects(plan, s3_bucket, {"a.txt": b"backed up", "b.txt": b"b"})
    copy = s3_bucket.name + "-copy"
    s3_bucket.client.create_bucket(Bucket=copy)
    s3_bucket.client.put_object(Bucket=copy, Key="live/a.txt", Body=b"live, never backed up")
    body = one_json(ok(plan.cli(*restore_args(snapshot, copy, "live"), "--overwrite")))
    assert bucket_objects(s3_bucket, copy, "live/") == {"a.txt": b"backed up", "b.txt": b"b"}
    assert staging_keys(s3_bucket, copy) == []
    back = plan.work / "back"
    source = "pre-restore-uploads"
    ok(plan.cli("--json", "restore", body["safety_snapshot"], "--source", source, "--to-dir", str(back)))
    assert {p.relative_to(back).as_posix(): p.read_bytes() for p in back.rglob("*") if p.is_file()} == {
        "a.txt": b"live, never backed up"
    }


def test_stale_staging_prefix_of_a_killed_restore_is_removed_by_the_next(
    new_plan: Callable[..., Plan], s3_bucket: S3Bucket
) -> None:
    plan = new_plan()
    add_s3_source(plan, s3_bucket, "up")
    snapshot = backup_objects(plan, s3_bucket, {"a.txt": b"a"})
    copy = s3_bucket.name + "-copy"
    s3_bucket.client.create_bucket(Bucket=copy)
    stale = "restored/.drgui-restore-20200101T000000Z-0123abcd/"
    s3_bucket.client.put_object(Bucket=copy, Key=stale + "a.txt", Body=b"half-restored")
    s3_bucket.client.create_multipart_upload(Bucket=copy, Key=stale + "big.bin")
    fresh = f"restored/.drgui-restore-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-89abcdef/"  # a restore under way
    s3_bucket.client.put_object(Bucket=copy, Key=fresh + "a.txt", Body=b"in progress")
    other = "elsewhere/.drgui-restore-20200101T000000Z-0123abcd/x"  # not this restore's target
    s3_bucket.client.put_object(Bucket=copy, Key=other, Body=b"not ours to judge")
    body = one_json(ok(plan.cli(*restore_args(snapshot, copy, "restored"))))  # stale staging is not content
    assert any(stale.rstrip("/") in w and "removed" in w for w in body["warnings"]), body
    assert sorted(all_keys(s3_bucket, copy)) == sorted(["restored/a.txt", fresh + "a.txt", other])
    assert s3_bucket.uploads(stale) == []
    assert bucket_objects(s3_bucket, copy, "restored/a.txt") == {"": b"a"}


def test_backup_of_a_restore_target_skips_staging_prefixes(
    new_plan: Callable[..., Plan], s3_bucket: S3Bucket
) -> None:
    plan = new_plan()
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key="up/a.txt", Body=b"a")
    s3_bucket.client.put_object(
        Bucket=s3_bucket.name, Key="up/.drgui-restore-20200101T000000Z-0123abcd/a.txt", Body=b"staged"
    )
    add_s3_source(plan, s3_bucket, "up")
    body = one_json(ok(plan.cli("--json", "backup")))
    assert any(".drgui-restore-" in w for w in body["sources"][0].get("warnings", [])), body
    target = plan.work / "restored"
    ok(plan.cli("--json", "restore", "latest", "--source", "uploads", "--to-dir", str(target)))
    assert [p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()] == ["a.txt"]
