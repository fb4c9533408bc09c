"""Format 2 and S3: an unchanged bucket is not downloaded again; copies send only the packs a target lacks."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests

from tests.engine_fixtures import Plan, ok
from tests.s3_fixtures import S3Bucket
from tests.test_s3 import add_s3_dest, cli, plan_in

pytestmark = pytest.mark.integration

# moto's request recorder (server side: what the S3 endpoint really received) writes here.
RECORDING = Path(os.environ.setdefault("MOTO_RECORDER_FILEPATH", f"/tmp/drgui-moto-recording-{os.getpid()}"))


@pytest.fixture(autouse=True)
def format_2(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("DRGUI_SNAPSHOT_FORMAT", "2")
    yield


@pytest.fixture
def new_plan(tmp_path: Path) -> Callable[[], Plan]:
    """init + a local destination, in process (as tests/test_s3.py)."""
    return lambda: plan_in(tmp_path)


class Recorder:
    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    def __enter__(self) -> Recorder:
        requests.post(f"{self.endpoint}/moto-api/recorder/reset-recording", timeout=30)
        requests.post(f"{self.endpoint}/moto-api/recorder/start-recording", timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        requests.post(f"{self.endpoint}/moto-api/recorder/stop-recording", timeout=30)

    def object_gets(self, bucket: str, prefix: str) -> list[str]:
        """Paths of GetObject requests (not listings) below bucket/prefix."""
        text = requests.get(f"{self.endpoint}/moto-api/recorder/download-recording", timeout=30).text
        gets = []
        for line in text.splitlines():
            if not line.strip():
                continue
            entry = json.loads(line)
            url = urlparse(entry["url"])
            if (
                entry["method"] == "GET"
                and url.path.startswith(f"/{bucket}/{prefix}")
                and "list-type" not in url.query
            ):
                gets.append(url.path)
        return gets


def add_bucket_source(plan: Plan, bucket: S3Bucket, prefix: str = "uploads") -> None:
    key_file = plan.work / "source-secret.txt"
    key_file.write_text("unused/but+required0123456789EXAMPLE\n")
    ok(
        cli(
            plan,
            "source",
            "add",
            "uploads",
            "s3",
            "--bucket",
            bucket.name,
            "--prefix",
            prefix,
            "--endpoint-url",
            bucket.endpoint,
            "--access-key-id",
            "AKIASOURCEKEY0000001",
            "--secret-access-key-file",
            str(key_file),
        )
    )


def folder_to_s3(plan: Plan, bucket: S3Bucket, *, files: int, size: int) -> Path:
    """The folder source `files` (that many random files of `size` bytes) and the bucket as destination `s3`."""
    data = plan.work / "data"
    data.mkdir()
    for n in range(files):
        (data / f"f{n}").write_bytes(os.urandom(size))
    ok(cli(plan, "source", "add", "files", "folder", "--path", str(data)))
    add_s3_dest(plan, bucket.endpoint, bucket.name)
    return data


@pytest.fixture
def emptied(s3_bucket: S3Bucket) -> Iterator[S3Bucket]:
    """The bucket, emptied in bulk afterwards (the fixture's clean-up goes one object at a time)."""
    yield s3_bucket
    empty_bucket(s3_bucket)


def test_a_second_backup_of_an_unchanged_bucket_issues_no_get_object(
    new_plan: Callable[[], Plan], emptied: S3Bucket
) -> None:
    s3_bucket = emptied
    plan = new_plan()
    objects = {f"uploads/u{n:04d}/{n}.txt": os.urandom(200) + str(n).encode() for n in range(1000)}
    objects["uploads/dup-a"] = objects["uploads/dup-b"] = b"same bytes"
    for key, body in objects.items():
        s3_bucket.client.put_object(Bucket=s3_bucket.name, Key=key, Body=body)
    add_bucket_source(plan, s3_bucket)
    with Recorder(s3_bucket.endpoint) as recorder:
        first = ok(cli(plan, "backup")).json()
    assert len(recorder.object_gets(s3_bucket.name, "uploads/")) == len(objects)
    assert first["sources"][0]["scan"]["files_new"] == len(objects) - 1
    with Recorder(s3_bucket.endpoint) as recorder:
        second = ok(cli(plan, "backup")).json()
    assert recorder.object_gets(s3_bucket.name, "uploads/") == []
    assert second["sources"][0]["scan"]["files_unchanged"] == len(objects)

    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key="uploads/u0001/1.txt", Body=b"edited")
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key="uploads/new.txt", Body=b"new")
    s3_bucket.client.delete_object(Bucket=s3_bucket.name, Key="uploads/u0002/2.txt")
    with Recorder(s3_bucket.endpoint) as recorder:
        third = ok(cli(plan, "backup")).json()
    assert sorted(recorder.object_gets(s3_bucket.name, "uploads/")) == sorted(
        f"/{s3_bucket.name}/uploads/{key}" for key in ("new.txt", "u0001/1.txt")
    )
    objects.update({"uploads/u0001/1.txt": b"edited", "uploads/new.txt": b"new"})
    del objects["uploads/u0002/2.txt"]
    assert ok(cli(plan, "verify", third["snapshot"], "--deep")).json()["ok"]
    target = plan.work / "restored"
    ok(cli(plan, "restore", third["snapshot"], "--source", "uploads", "--to-dir", str(target)))
    restored = {
        f"uploads/{p.relative_to(target).as_posix()}": p.read_bytes()
        for p in target.rglob("*")
        if p.is_file()
    }
    assert restored == objects


def empty_bucket(bucket: S3Bucket, name: str | None = None) -> None:
    """Delete every object, a thousand per request (the fixture's own clean-up is one by one)."""
    name = name or bucket.name
    while keys := [
        {"Key": item["Key"]} for item in bucket.client.list_objects_v2(Bucket=name).get("Contents", [])
    ]:
        bucket.client.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})


def test_a_format_2_bucket_snapshot_restores_into_a_bucket(
    new_plan: Callable[[], Plan], s3_bucket: S3Bucket
) -> None:
    plan = new_plan()
    objects = {
        "uploads/a.txt": b"alpha",
        "uploads/dup": b"alpha",
        "uploads/x//odd": b"odd key",
        "uploads/d/": b"",
    }
    for key, body in objects.items():
        s3_bucket.client.put_object(Bucket=s3_bucket.name, Key=key, Body=body)
    add_bucket_source(plan, s3_bucket)
    snapshot_id = ok(cli(plan, "backup")).json()["snapshot"]
    copy = s3_bucket.name + "-copy"
    s3_bucket.client.create_bucket(Bucket=copy)
    try:
        restored = ok(
            cli(
                plan,
                "restore",
                snapshot_id,
                "--source",
                "uploads",
                "--to-bucket",
                copy,
                "--to-prefix",
                "back",
            )
        ).json()
        assert restored["ok"]
        found = {
            item["Key"]: s3_bucket.client.get_object(Bucket=copy, Key=item["Key"])["Body"].read()
            for item in s3_bucket.client.list_objects_v2(Bucket=copy).get("Contents", [])
        }
        assert found == {"back/" + key.removeprefix("uploads/"): body for key, body in objects.items()}
    finally:
        empty_bucket(s3_bucket, copy)
        s3_bucket.client.delete_bucket(Bucket=copy)


def pack_keys(bucket: S3Bucket) -> set[str]:
    return {key for key in bucket.list_keys("acme/") if "/packs/" in key}


def test_replication_copies_only_the_packs_the_target_lacks(
    new_plan: Callable[[], Plan], s3_bucket: S3Bucket
) -> None:
    plan = new_plan()
    data = folder_to_s3(plan, s3_bucket, files=20, size=50_000)
    ok(cli(plan, "backup"))
    day1 = pack_keys(s3_bucket)
    assert len(day1) == 1
    with Recorder(s3_bucket.endpoint) as recorder:
        day2 = ok(cli(plan, "backup")).json()
    assert pack_keys(s3_bucket) == day1
    text = requests.get(f"{s3_bucket.endpoint}/moto-api/recorder/download-recording", timeout=30).text
    puts = [
        json.loads(line)["url"]
        for line in text.splitlines()
        if line.strip() and json.loads(line)["method"] == "PUT"
    ]
    assert not any("/packs/" in url for url in puts), puts
    assert recorder.object_gets(s3_bucket.name, "acme/") or True  # reading the remote indexes is fine
    (data / "new").write_bytes(os.urandom(10_000))
    ok(cli(plan, "backup"))
    assert len(pack_keys(s3_bucket) - day1) == 1
    assert ok(cli(plan, "verify", "latest", "--dest", "s3", "--deep")).json()["ok"]
    target = plan.work / "from-s3"
    ok(cli(plan, "restore", day2["snapshot"], "--source", "files", "--dest", "s3", "--to-dir", str(target)))
    assert {p.name: p.read_bytes() for p in target.iterdir()} == {
        p.name: p.read_bytes() for p in data.iterdir() if p.name != "new"
    }


def test_the_offline_queue_uploads_packs_then_drops_them(
    new_plan: Callable[[], Plan], s3_bucket: S3Bucket
) -> None:
    """An S3-only plan: the snapshot is written to the home's queue, then uploaded; when S3 is down it
    stays queued (packs included) and goes up on the next run; the queue keeps nothing afterwards."""
    plan = new_plan()
    ok(cli(plan, "dest", "remove", "local"))
    data = folder_to_s3(plan, s3_bucket, files=5, size=20_000)
    queue = plan.home / "queue"
    ok(cli(plan, "backup"))
    assert not list(queue.rglob("*.age"))
    day1 = pack_keys(s3_bucket)
    config = plan.home / "config.toml"
    good = config.read_text()
    config.write_text(good.replace(s3_bucket.endpoint, "http://127.0.0.1:9"))
    (data / "later").write_bytes(os.urandom(5_000))
    queued = cli(plan, "backup")
    assert queued.code != 0 and queued.json()["destinations"][0].get("queued"), str(queued)
    assert list(queue.rglob("*.age"))
    config.write_text(good)
    with Recorder(s3_bucket.endpoint):
        flushed = ok(cli(plan, "backup")).json()
    assert queued.json()["snapshot"] in " ".join(flushed["uploaded_from_queue"])
    assert not list(queue.rglob("*.age")), list(queue.rglob("*"))
    assert pack_keys(s3_bucket) > day1
    for snapshot in ok(cli(plan, "snapshots", "--dest", "s3")).json():
        assert ok(cli(plan, "verify", snapshot["id"], "--dest", "s3", "--deep")).json()["ok"]


def test_a_queued_snapshot_that_references_remote_packs_is_uploaded_later(
    new_plan: Callable[[], Plan], s3_bucket: S3Bucket
) -> None:
    """Written to the queue with S3 as its reference (unchanged files point at packs only S3 holds),
    then not copied (say the upload broke): it is still the queue's, and the next run uploads it."""
    from drgui.core.ops.backup import write_snapshot
    from drgui.core.plan.home import Home
    from drgui.core.plan.workspace import Workspace
    from drgui.core.progress import CancelToken, ignore_progress

    plan = new_plan()
    ok(cli(plan, "dest", "remove", "local"))
    data = folder_to_s3(plan, s3_bucket, files=3, size=20_000)
    ok(cli(plan, "backup"))
    (data / "new").write_bytes(os.urandom(1_000))
    ws = Workspace(Home.resolve(plan.home))
    remote = ws.destination("s3")
    snapshot_id, _results = write_snapshot(
        ws, ws.sources(), ws.queue_destination(), ignore_progress, CancelToken(), reference=remote
    )
    ws.history.enqueue(snapshot_id, "s3", "the upload broke")
    queued = ws.queue_destination().read_index(snapshot_id)
    assert len(queued.packs) == 2  # day 1's pack (only at S3) and the new one (only in the queue)
    flushed = ok(cli(plan, "backup")).json()
    assert f"{snapshot_id}->s3" in flushed["uploaded_from_queue"]
    assert not list((plan.home / "queue").rglob("*.age"))
    assert ok(cli(plan, "verify", snapshot_id, "--dest", "s3", "--deep")).json()["ok"]
