"""One suite every destination passes (restic's backend tests). A new kind = one more fixture param."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drgui.core.engine.destinations.base import Destination, copy_snapshot
from drgui.core.engine.destinations.local import LocalDestination
from drgui.core.engine.snapshot import INDEX_FILE, Index, new_snapshot_id, snapshot_prefix
from drgui.core.plan.config import DestConfig


def _local(request: pytest.FixtureRequest, tmp_path: Path) -> Destination:
    return LocalDestination(DestConfig("local", "local", {"path": str(tmp_path / "dest")}))


def _s3(request: pytest.FixtureRequest, tmp_path: Path) -> Destination:
    from drgui.core.engine.destinations.s3 import S3Destination

    bucket = request.getfixturevalue("s3_bucket")
    return S3Destination(DestConfig("s3", "s3", bucket.settings(prefix="team/acme")))


def _drive(request: pytest.FixtureRequest, tmp_path: Path) -> Destination:
    """The LUKS stick of tests/data/drives, found by UUID, mounted at a directory under tmp_path."""
    from drgui.core.engine.destinations.drive import DriveDestination

    mount = tmp_path.resolve() / "media" / "DRKEY"
    mount.mkdir(parents=True)
    recorded = Path(__file__).parent / "data" / "drives" / "lsblk_luks_mounted.json"
    listing = tmp_path / "lsblk.json"
    listing.write_text(recorded.read_text().replace('"/media/alice/DRKEY"', f'"{mount}"'))
    request.getfixturevalue("monkeypatch").setenv("DRGUI_DRIVES_JSON", str(listing))
    settings = {"uuid": "c2d14b6e-8f3a-4a71-b5e9-3f0c7d2a9e18", "encryption": "luks", "plan_id": "p1"}
    return DriveDestination(DestConfig("drive", "drive", settings))


FACTORIES: dict[str, Callable[[pytest.FixtureRequest, Path], Destination]] = {
    "local": _local,
    "s3": _s3,
    "drive": _drive,
}


@pytest.fixture(params=sorted(FACTORIES))
def dest(request: pytest.FixtureRequest, tmp_path: Path) -> Destination:
    return FACTORIES[request.param](request, tmp_path)


@pytest.fixture
def other_dest(dest: Destination, tmp_path: Path) -> Destination:
    return LocalDestination(DestConfig("other", "local", {"path": str(tmp_path / "other")}))


def _index(snapshot_id: str, files: dict[str, bytes]) -> Index:
    parts = [
        {"path": path, "source": "files", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        for path, data in files.items()
        if path != "manifest.age"
    ]
    manifest = files["manifest.age"]
    return Index(
        snapshot_id=snapshot_id,
        time="2026-01-01T00:00:00+00:00",
        plan_id="abcd1234",
        sources=[{"name": "files", "kind": "folder"}],
        parts=parts,
        manifest={
            "path": "manifest.age",
            "size": len(manifest),
            "sha256": hashlib.sha256(manifest).hexdigest(),
        },
    )


def write_snapshot(dest: Destination, files: dict[str, bytes] | None = None) -> tuple[str, dict[str, bytes]]:
    snapshot_id = new_snapshot_id(datetime.now(UTC))
    files = files or {"parts/files/files.tar.zst.age": os.urandom(70_000), "manifest.age": b"m" * 300}
    writer = dest.begin(snapshot_id)
    for path, data in files.items():
        with writer.open_part(path) as out:
            out.write(data)
    writer.commit(_index(snapshot_id, files))
    return snapshot_id, files


def test_put_get_streaming_multipart(dest: Destination) -> None:
    data = os.urandom(11 * 1024 * 1024 + 17)  # > 2 parts of 5 MiB on S3
    with dest.open_write("blobs/big.bin") as out:
        for offset in range(0, len(data), 1_000_003):
            out.write(data[offset : offset + 1_000_003])
    digest = hashlib.sha256()
    with dest.open_read("blobs/big.bin") as reader:
        while chunk := reader.read(1 << 20):
            digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert dest.stat("blobs/big.bin").size == len(data)


def test_small_put_get_list_stat_delete_exists(dest: Destination) -> None:
    dest.put_bytes("a/one.txt", b"one")
    dest.put_bytes("a/two.txt", b"")
    dest.put_bytes("b/three.txt", b"three")
    assert dest.get_bytes("a/one.txt") == b"one"
    assert dest.get_bytes("a/two.txt") == b""
    assert sorted(i.key for i in dest.list_objects("a/")) == ["a/one.txt", "a/two.txt"]
    assert {i.key for i in dest.list_objects()} >= {"a/one.txt", "a/two.txt", "b/three.txt"}
    info = dest.stat("b/three.txt")
    assert info is not None and info.size == 5 and info.mtime is not None
    assert dest.stat("nope") is None and not dest.exists("nope") and dest.exists("a/one.txt")
    dest.delete("a/one.txt")
    dest.delete("a/one.txt")  # deleting twice is fine
    assert not dest.exists("a/one.txt")
    with pytest.raises(FileNotFoundError):
        dest.get_bytes("a/one.txt")


def test_overwrite_is_whole(dest: Destination) -> None:
    dest.put_bytes("k", b"old content")
    dest.put_bytes("k", b"new")
    assert dest.get_bytes("k") == b"new"


def test_failed_write_leaves_nothing(dest: Destination) -> None:
    with pytest.raises(RuntimeError), dest.open_write("half.bin") as out:
        out.write(os.urandom(6 * 1024 * 1024))
        raise RuntimeError("source died")
    assert not dest.exists("half.bin")
    if hasattr(dest, "multipart_uploads"):
        assert dest.multipart_uploads() == []


def test_atomic_completion(dest: Destination) -> None:
    snapshot_id = new_snapshot_id(datetime.now(UTC))
    writer = dest.begin(snapshot_id)
    with writer.open_part("parts/files/files.tar.zst.age") as out:
        out.write(b"x" * 1000)
    assert snapshot_id not in dest.snapshot_ids()
    assert snapshot_id in dest.incomplete_ids()
    writer.abort()
    assert snapshot_id not in dest.incomplete_ids() and snapshot_id not in dest.snapshot_ids()
    done, _files = write_snapshot(dest)
    assert dest.snapshot_ids() == [done] and dest.incomplete_ids() == []
    assert dest.read_index(done).snapshot_id == done


def test_leftovers_cleanup(dest: Destination) -> None:
    kept, _ = write_snapshot(dest)
    snapshot_id = new_snapshot_id(datetime.now(UTC))
    writer = dest.begin(snapshot_id)
    with writer.open_part("parts/x/x.age") as out:
        out.write(b"partial")
    assert dest.incomplete_ids() == [snapshot_id]
    dest.remove_incomplete(snapshot_id)
    dest.remove_incomplete(kept)  # a complete snapshot is never touched by leftover cleanup
    assert dest.incomplete_ids() == [] and dest.snapshot_ids() == [kept]


def test_delete_snapshot(dest: Destination) -> None:
    first, _ = write_snapshot(dest)
    second, _ = write_snapshot(dest)
    dest.delete_snapshot(first)
    assert dest.snapshot_ids() == [second]
    assert not list(dest.list_objects(snapshot_prefix(first) + "/"))


def test_copy_snapshot_both_ways(dest: Destination, other_dest: Destination) -> None:
    snapshot_id, files = write_snapshot(dest)
    copy_snapshot(dest, other_dest, snapshot_id)
    assert other_dest.snapshot_ids() == [snapshot_id]
    for path, data in files.items():
        assert other_dest.get_bytes(f"{snapshot_prefix(snapshot_id)}/{path}") == data
    other_dest.delete_snapshot(snapshot_id)
    back, _ = write_snapshot(other_dest)
    copy_snapshot(other_dest, dest, back)
    assert back in dest.snapshot_ids()


def test_copy_refuses_corrupt_source(dest: Destination, other_dest: Destination) -> None:
    snapshot_id, _files = write_snapshot(other_dest)
    other_dest.put_bytes(f"{snapshot_prefix(snapshot_id)}/manifest.age", b"M" * 300)
    with pytest.raises(Exception, match="corrupt"):
        copy_snapshot(other_dest, dest, snapshot_id)
    assert snapshot_id not in dest.snapshot_ids() and snapshot_id not in dest.incomplete_ids()


def test_index_is_last_and_required(dest: Destination) -> None:
    snapshot_id, _ = write_snapshot(dest)
    dest.delete(f"{snapshot_prefix(snapshot_id)}/{INDEX_FILE}")
    assert snapshot_id not in dest.snapshot_ids()
    assert snapshot_id in dest.incomplete_ids()


def test_destination_test(dest: Destination) -> None:
    checked = dest.test()
    assert {"write", "read", "list", "delete"} <= set(checked)
    assert not dest.exists(".drgui-test")
