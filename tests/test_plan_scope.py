"""Plans sharing a destination see only their own data; listing says complete only when it is;
"latest" is the newest start time (issue 11 items 1, 11, 12, 14, 15)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from drgui.cli.main import main
from drgui.core.engine.catalog import list_snapshots
from drgui.core.engine.crypto import unwrap_identity
from drgui.core.engine.destinations.base import Destination
from drgui.core.engine.restore import resolve_snapshot
from drgui.core.engine.snapshot import Index
from drgui.core.ops.prune import prune
from drgui.core.plan.config import DestConfig, Plan
from drgui.core.plan.home import Home
from drgui.core.plan.workspace import Workspace
from tests.engine_fixtures import PASSPHRASE, CliResult, assert_no_secret, write_folder
from tests.s3_fixtures import S3Bucket
from tests.support import environment

pytestmark = pytest.mark.integration

PASSPHRASE_B = "meadow copper violin thunder pocket ninety"


def run(home: Path, *args: str) -> CliResult:
    """`drgui --home HOME --json ARGS` in this process; checks that no secret leaks and no traceback shows."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with (
        environment({"DRGUI_NO_PROMPT": "1"}),
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
    ):
        code = main(["--home", str(home), "--json", *args])
    result = CliResult(list(args), code, stdout.getvalue(), stderr.getvalue())
    assert_no_secret(result.stdout, f"stdout of {args}")
    assert "Traceback" not in result.stderr, str(result)
    result.json()  # exactly one JSON document
    return result


def ok(result: CliResult) -> Any:
    assert result.code == 0, str(result)
    return result.json()


class PlanHome:
    """One plan (its own home, passphrase and folder) backing up to a shared destination."""

    def __init__(self, work: Path, name: str, passphrase: str) -> None:
        work.mkdir(parents=True)
        self.home = work / "home"
        self.passphrase = passphrase
        (work / "pass.txt").write_text(passphrase + "\n")
        ok(run(self.home, "init", "--name", name, "--passphrase-file", str(work / "pass.txt")))
        self.folder = write_folder(work / "files")
        (self.folder / "owner.txt").write_text(name)
        ok(run(self.home, "source", "add", "files", "folder", "--path", str(self.folder)))
        self.work = work

    @property
    def ws(self) -> Workspace:
        return Workspace(Home(self.home))

    @property
    def plan_id(self) -> str:
        return self.ws.plan.plan_id

    def cli(self, *args: str) -> CliResult:
        return run(self.home, *args)

    def backup(self) -> str:
        return ok(self.cli("backup"))["snapshot"]

    def listed(self) -> list[str]:
        return [row["id"] for row in ok(self.cli("snapshots"))]

    def keep_last(self, dest: str, count: int) -> None:
        ws = self.ws
        ws.plan.destination(dest).retention = {"last": count}
        ws.save()


def two_plans(tmp_path: Path, add_dest: Any) -> tuple[PlanHome, PlanHome, dict[str, list[str]]]:
    plan_a = PlanHome(tmp_path / "a", "Product A", PASSPHRASE)
    plan_b = PlanHome(tmp_path / "b", "Product B", PASSPHRASE_B)
    assert plan_a.plan_id != plan_b.plan_id
    add_dest(plan_a)
    add_dest(plan_b)
    ids = {"a": [plan_a.backup(), plan_a.backup()], "b": [plan_b.backup(), plan_b.backup()]}
    return plan_a, plan_b, ids


def check_isolation(plan_a: PlanHome, plan_b: PlanHome, ids: dict[str, list[str]], dest: str) -> None:
    assert plan_a.listed() == ids["a"] and plan_b.listed() == ids["b"]
    # B cannot verify, restore or see A's snapshot, even by its id.
    assert plan_b.cli("verify", ids["a"][0], "--dest", dest).code == 2
    refused = plan_b.cli("restore", ids["a"][0], "--source", "files", "--to-dir", str(plan_b.work / "x"))
    assert refused.code == 2 and not (plan_b.work / "x").exists()
    for plan, own in ((plan_a, ids["a"]), (plan_b, ids["b"])):
        assert ok(plan.cli("verify", "latest", "--deep", "--dest", dest))["snapshot"] == own[-1]
        target = plan.work / "restored"
        restored = ok(
            plan.cli("restore", "latest", "--source", "files", "--to-dir", str(target), "--dest", dest)
        )
        assert restored["snapshot"] == own[-1]
        assert (target / "owner.txt").read_text() == (plan.folder / "owner.txt").read_text()
    # B keeps its last one; every one of A's stays.
    plan_b.keep_last(dest, 1)
    pruned = ok(plan_b.cli("prune", "--dest", dest))
    assert pruned["remove"] == ids["b"][:1]
    assert plan_b.listed() == ids["b"][1:]
    assert plan_a.listed() == ids["a"]
    assert ok(plan_a.cli("verify", ids["a"][0], "--dest", dest))["ok"]


def test_two_plans_on_one_local_directory(tmp_path: Path) -> None:
    shared = tmp_path / "shared"

    def add(plan: PlanHome) -> None:
        ok(plan.cli("dest", "add", "disk", "local", "--path", str(shared)))

    plan_a, plan_b, ids = two_plans(tmp_path, add)
    for plan in (plan_a, plan_b):
        scope = shared / plan.plan_id
        own = ids["a" if plan is plan_a else "b"]
        assert sorted(p.name for p in (scope / "snapshots").iterdir()) == sorted(own)
        # Each plan's passphrase unwraps its own identity.age, the key of its own plan.
        pair = unwrap_identity((scope / "identity.age").read_bytes(), plan.passphrase)
        assert pair.recipient == plan.ws.plan.recipient
    assert not (shared / "identity.age").exists() and not (shared / "snapshots").exists()
    check_isolation(plan_a, plan_b, ids, "disk")


def test_two_plans_on_one_s3_prefix(tmp_path: Path, s3_bucket: S3Bucket) -> None:
    def add(plan: PlanHome) -> None:
        settings = s3_bucket.settings(prefix="team")
        args = ["--bucket", s3_bucket.name, "--prefix", "team", "--endpoint-url", settings["endpoint_url"]]
        ok(plan.cli("dest", "add", "bucket", "s3", *args, "--region", "us-east-1"))
        ws = plan.ws
        ws.plan.destination("bucket").settings["part_size_mb"] = 5
        ws.save()

    plan_a, plan_b, ids = two_plans(tmp_path, add)
    keys = s3_bucket.list_keys("team/")
    for plan, own in ((plan_a, ids["a"]), (plan_b, ids["b"])):
        assert {k.split("/")[3] for k in keys if k.startswith(f"team/{plan.plan_id}/snapshots/")} == set(own)
        wrapped = s3_bucket.client.get_object(Bucket=s3_bucket.name, Key=f"team/{plan.plan_id}/identity.age")
        assert unwrap_identity(wrapped["Body"].read(), plan.passphrase).recipient == plan.ws.plan.recipient
    assert not [k for k in keys if k.startswith(("team/snapshots/", "team/identity.age"))]
    check_isolation(plan_a, plan_b, ids, "bucket")


def test_legacy_layout_is_read_by_its_plan_only(tmp_path: Path) -> None:
    shared = tmp_path / "shared"

    def add(plan: PlanHome) -> None:
        ok(plan.cli("dest", "add", "disk", "local", "--path", str(shared)))

    plan_a, plan_b, ids = two_plans(tmp_path, add)
    # What drgui wrote before plans were scoped: A's older snapshot and key at the root.
    (shared / "snapshots").mkdir()
    legacy_id = ids["a"][0]
    shutil.move(shared / plan_a.plan_id / "snapshots" / legacy_id, shared / "snapshots" / legacy_id)
    shutil.copy(shared / plan_a.plan_id / "identity.age", shared / "identity.age")
    assert plan_a.listed() == ids["a"] and plan_b.listed() == ids["b"]
    assert ok(plan_a.cli("verify", legacy_id, "--deep"))["ok"]
    target = plan_a.work / "from-legacy"
    ok(plan_a.cli("restore", legacy_id, "--source", "files", "--to-dir", str(target)))
    assert (target / "owner.txt").read_text() == "Product A"
    assert plan_b.cli("verify", legacy_id).code == 2
    # B's prune never touches it; A's own prune may (keep the last one: the legacy one goes).
    plan_b.keep_last("disk", 1)
    ok(plan_b.cli("prune"))
    assert (shared / "snapshots" / legacy_id / "index.json").exists()
    plan_a.keep_last("disk", 1)
    assert ok(plan_a.cli("prune"))["remove"] == [legacy_id]
    assert not (shared / "snapshots" / legacy_id).exists() and plan_a.listed() == ids["a"][1:]
    # A new backup of A never writes the root again.
    before = (shared / "identity.age").read_bytes()
    plan_a.backup()
    assert (shared / "identity.age").read_bytes() == before and list((shared / "snapshots").iterdir()) == []


# --- listing says complete only when it is ----------------------------------------------------------


@pytest.fixture
def damaged(tmp_path: Path) -> tuple[PlanHome, list[str], Path]:
    plan = PlanHome(tmp_path / "a", "Acme", PASSPHRASE)
    ok(plan.cli("dest", "add", "disk", "local", "--path", str(tmp_path / "dest")))
    ids = [plan.backup(), plan.backup(), plan.backup()]
    return plan, ids, tmp_path / "dest" / plan.plan_id / "snapshots"


def rows_by_id(plan: PlanHome) -> tuple[int, dict[str, dict[str, Any]]]:
    result = plan.cli("snapshots")
    return result.code, {row["id"]: row for row in result.json()}


def test_flipped_byte_in_index_is_listed_as_damaged(damaged: tuple[PlanHome, list[str], Path]) -> None:
    plan, ids, root = damaged
    index = root / ids[1] / "index.json"
    data = bytearray(index.read_bytes())
    data[len(data) // 2] ^= 0x01
    index.write_bytes(bytes(data))
    code, rows = rows_by_id(plan)
    assert code == 1 and sorted(rows) == sorted(ids)  # its start time is unreadable: the id's second
    assert rows[ids[1]]["complete"] is False and "corrupt" in rows[ids[1]]["problems"][0]
    assert rows[ids[0]]["complete"] and rows[ids[2]]["complete"]
    # Never chosen as latest, never pruned: reported.
    index = root / ids[2] / "index.json"
    index.write_bytes(index.read_bytes().replace(b'"id"', b'"iD"'))
    assert ok(plan.cli("verify"))["snapshot"] == ids[0]
    plan.keep_last("disk", 1)
    pruned = ok(plan.cli("prune"))
    assert pruned["remove"] == [] and set(pruned["destinations"][0]["damaged"]) == {ids[1], ids[2]}
    assert all((root / i).is_dir() for i in ids)


def test_folder_copied_under_new_id_is_not_complete(damaged: tuple[PlanHome, list[str], Path]) -> None:
    plan, ids, root = damaged
    copy_id = "20991231T235959Z-0badf00d"
    shutil.copytree(root / ids[0], root / copy_id)
    code, rows = rows_by_id(plan)
    assert code == 1 and rows[copy_id]["complete"] is False
    assert f"is for snapshot {ids[0]}" in rows[copy_id]["problems"][0]
    assert [row for row in rows.values() if row["complete"]] == [rows[i] for i in ids]
    assert ok(plan.cli("verify"))["snapshot"] == ids[2], "a copy dated 2099 is never latest"
    for args in (
        ["verify", copy_id],
        ["verify", copy_id, "--deep"],
        ["restore", copy_id, "--source", "files", "--to-dir", str(plan.work / "x")],
    ):
        result = plan.cli(*args)
        assert result.code == 1, str(result)
        assert "renamed or copied" in result.stdout
    assert not (plan.work / "x").exists() or not any((plan.work / "x").iterdir())


def test_missing_or_short_files_are_not_complete(damaged: tuple[PlanHome, list[str], Path]) -> None:
    plan, ids, root = damaged
    (root / ids[0] / "manifest.age").unlink()
    part = next((root / ids[1] / "parts").rglob("*.age"))
    part.write_bytes(part.read_bytes()[:-1])
    code, rows = rows_by_id(plan)
    assert code == 1
    assert rows[ids[0]]["complete"] is False and "manifest.age is missing" in rows[ids[0]]["problems"][0]
    assert rows[ids[1]]["complete"] is False and "bytes, the index says" in rows[ids[1]]["problems"][0]
    assert rows[ids[2]]["complete"]
    result = plan.cli("restore", ids[0], "--source", "files", "--to-dir", str(plan.work / "x"))
    assert result.code == 1, str(result)


def test_restore_latest_with_source_uses_newest_that_has_it(tmp_path: Path) -> None:
    plan = PlanHome(tmp_path / "a", "Acme", PASSPHRASE)
    ok(plan.cli("dest", "add", "disk", "local", "--path", str(tmp_path / "dest")))
    env_file = tmp_path / "app.env"
    env_file.write_text("APP_MODE=production\n")
    ok(plan.cli("source", "add", "dotenv", "env", "--path", str(env_file)))
    with_env = plan.backup()
    files_only = ok(plan.cli("backup", "--source", "files"))["snapshot"]
    restored = ok(plan.cli("restore", "latest", "--source", "dotenv", "--to-dir", str(tmp_path / "envback")))
    assert restored["snapshot"] == with_env != files_only
    assert (tmp_path / "envback" / "app.env").read_text() == "APP_MODE=production\n"
    assert (
        ok(plan.cli("restore", "latest", "--source", "files", "--to-dir", str(tmp_path / "f")))["snapshot"]
        == files_only
    )


# --- "latest" is the newest start time --------------------------------------------------------------


def fake_snapshot(dest: Destination, snapshot_id: str, time: datetime, plan_id: str) -> None:
    writer = dest.begin(snapshot_id)
    data = b"part"
    with writer.open_part("parts/files/files.tar.zst.age") as out:
        out.write(data)
    with writer.open_part("manifest.age") as out:
        out.write(b"manifest")
    part = {"path": "parts/files/files.tar.zst.age", "source": "files", "size": 4}
    writer.commit(
        Index(
            snapshot_id=snapshot_id,
            time=time.isoformat(),
            plan_id=plan_id,
            sources=[{"name": "files", "kind": "folder"}],
            parts=[{**part, "sha256": hashlib.sha256(data).hexdigest()}],
            manifest={"path": "manifest.age", "size": 8, "sha256": hashlib.sha256(b"manifest").hexdigest()},
        )
    )


def test_same_second_snapshots_order_by_start_time(tmp_path: Path) -> None:
    plan = Plan(plan_id="abcd1234", name="Acme", recipient="age1test")
    plan.destinations.append(DestConfig("disk", "local", {"path": str(tmp_path / "dest")}, {"last": 1}))
    ws = Workspace(Home(tmp_path / "home"), plan)
    ws.save()
    dest = ws.destination("disk")
    second = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    later = f"{second:%Y%m%dT%H%M%SZ}-00000000"  # sorts first by id
    earlier = f"{second:%Y%m%dT%H%M%SZ}-ffffffff"
    fake_snapshot(dest, earlier, second.replace(microsecond=100_000), plan.plan_id)
    fake_snapshot(dest, later, second.replace(microsecond=900_000), plan.plan_id)
    assert dest.snapshot_ids() == [earlier, later]
    assert resolve_snapshot(dest, "latest") == later
    assert [row["id"] for row in list_snapshots(ws)] == [earlier, later]
    assert list_snapshots(ws)[1]["time"] == second.replace(microsecond=900_000).isoformat()
    result = prune(ws, dry_run=True)
    assert result.destinations[0].keep == [later] and result.destinations[0].remove == [earlier]
    listing = json.loads(json.dumps(list_snapshots(ws)))
    assert all(row["complete"] for row in listing)


@pytest.fixture(params=["local", "s3"])
def shared_config(request: pytest.FixtureRequest, tmp_path: Path) -> DestConfig:
    if request.param == "local":
        return DestConfig("shared", "local", {"path": str(tmp_path / "shared")})
    bucket: S3Bucket = request.getfixturevalue("s3_bucket")
    return DestConfig("shared", "s3", bucket.settings(prefix="team"))


def test_legacy_snapshots_are_routed_copied_and_deleted_by_their_plan(
    shared_config: DestConfig, tmp_path: Path
) -> None:
    from drgui.core.engine.destinations.base import copy_snapshot
    from drgui.core.engine.destinations.local import LocalDestination
    from drgui.core.engine.destinations.registry import open_destination

    whole = open_destination(shared_config, plan_id="")  # what an older drgui saw: the root
    now = datetime.now(UTC)
    ours, theirs, unreadable = (f"{now:%Y%m%dT%H%M%SZ}-{n}" for n in ("0000000a", "0000000b", "0000000c"))
    fake_snapshot(whole, ours, now, "aaaa0001")
    fake_snapshot(whole, theirs, now, "bbbb0002")
    fake_snapshot(whole, unreadable, now, "aaaa0001")
    whole.put_bytes(f"snapshots/{unreadable}/index.json", b"{not json")
    plan_a = open_destination(shared_config, plan_id="aaaa0001")
    plan_b = open_destination(shared_config, plan_id="bbbb0002")
    assert plan_a.snapshot_ids() == [ours] and plan_b.snapshot_ids() == [theirs]
    damaged = {i.snapshot_id: i for i in plan_b.snapshots() if not i.complete}
    assert list(damaged) == [unreadable] and "cannot be read" in str(damaged[unreadable].problem)
    # Replication reads the legacy snapshot and writes it in the plan's scope elsewhere.
    other = LocalDestination(
        DestConfig("other", "local", {"path": str(tmp_path / "other")}), scope="aaaa0001"
    )
    copy_snapshot(plan_a, other, ours)
    assert (tmp_path / "other" / "aaaa0001" / "snapshots" / ours / "manifest.age").exists()
    assert other.snapshot_ids() == [ours]
    # A's delete removes its legacy snapshot, and nothing of B's or the unreadable one.
    assert plan_b.read_index(theirs).plan_id == "bbbb0002"
    with pytest.raises(Exception, match="does not exist"):
        plan_b.read_index(ours)
    plan_a.delete_snapshot(ours)
    assert plan_a.snapshot_ids() == [] and plan_b.snapshot_ids() == [theirs]
    assert whole.stat(f"snapshots/{unreadable}/index.json") is not None
    assert not [info for info in whole.list_objects("snapshots/") if ours in info.key]
