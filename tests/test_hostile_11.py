"""Issue 11, tried as a hostile user would after the fixes: the cases that still broke."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from drgui.core.config import SourceConfig
from drgui.core.home import Home
from drgui.core.workspace import Workspace
from tests.engine_fixtures import CliResult, Plan, ok
from tests.s3_fixtures import S3Bucket

pytestmark = pytest.mark.integration


def one_json(result: CliResult) -> dict:
    assert "Traceback" not in result.stderr, str(result)
    return result.json()


def add_s3_source(plan: Plan, bucket: S3Bucket, prefix: str, name: str = "uploads") -> None:
    ws = Workspace(Home.resolve(plan.home))
    ws.plan.sources.append(SourceConfig(name, "s3", bucket.settings(prefix)))
    ws.save()


def bucket_objects(bucket: S3Bucket, name: str, prefix: str) -> dict[str, bytes]:
    pages = bucket.client.get_paginator("list_objects_v2").paginate(Bucket=name, Prefix=prefix)
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    return {key[len(prefix) :]: bucket.client.get_object(Bucket=name, Key=key)["Body"].read() for key in keys}


# --- S3 keys that are not plain paths -------------------------------------------------------------------
AWKWARD_KEYS = {
    "a": b"an object that is also a folder",
    "a/b": b"inside a",
    "x//double": b"double slash",
    "/leading": b"leading slash after the prefix",
    "dot/./seg": b"dot segment",
    "up/../seg": b"dot-dot segment",
    "folder/": b"",
    "plain/ok.txt": b"plain",
    ".drgui-s3-keys/00000000": b"looks like an encoded name",
}


def test_awkward_s3_keys_round_trip(new_plan: Callable[..., Plan], s3_bucket: S3Bucket) -> None:
    plan = new_plan()
    for key, body in AWKWARD_KEYS.items():
        s3_bucket.client.put_object(Bucket=s3_bucket.name, Key="up/" + key, Body=body)
    stored = bucket_objects(s3_bucket, s3_bucket.name, "up/")
    assert stored == AWKWARD_KEYS  # the server kept every key as written
    add_s3_source(plan, s3_bucket, "up")
    snapshot = one_json(ok(plan.cli("--json", "backup")))["snapshot"]
    deep = one_json(plan.cli("--json", "verify", snapshot, "--deep"))
    assert deep["ok"], deep

    s3_bucket.client.create_bucket(Bucket=s3_bucket.name + "-copy")
    for prefix in ("restored", ""):
        one_json(
            ok(
                plan.cli(
                    "--json",
                    "restore",
                    snapshot,
                    "--source",
                    "uploads",
                    "--to-bucket",
                    s3_bucket.name + "-copy",
                    "--to-prefix",
                    prefix,
                )
            )
        )
    copy = bucket_objects(s3_bucket, s3_bucket.name + "-copy", "restored/")
    assert copy == AWKWARD_KEYS
    at_root = bucket_objects(s3_bucket, s3_bucket.name + "-copy", "")
    assert {k: v for k, v in at_root.items() if not k.startswith("restored/")} == AWKWARD_KEYS

    target = plan.work / "as-folder"
    restored = one_json(
        ok(plan.cli("--json", "restore", snapshot, "--source", "uploads", "--to-dir", str(target)))
    )
    assert restored["ok"]
    assert (target / "plain" / "ok.txt").read_bytes() == b"plain"
    assert (target / "a" / "b").read_bytes() == b"inside a"
    bodies = sorted(p.read_bytes() for p in target.rglob("*") if p.is_file())
    assert bodies == sorted(AWKWARD_KEYS.values())
