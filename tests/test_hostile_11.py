"""Issue 11, tried as a hostile user would after the fixes: the cases that still broke."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from drgui.core.engine.sources.base import CaptureContext, PartStream
from drgui.core.engine.sources.folder import FolderSource
from drgui.core.ops.backup import ensure_identity_file, write_snapshot
from drgui.core.plan.config import DestConfig, SourceConfig
from drgui.core.plan.home import Home
from drgui.core.plan.workspace import Workspace
from drgui.core.progress import CancelToken, ignore_progress
from tests.engine_fixtures import CliResult, Plan, ok, run_cli, write_folder
from tests.s3_fixtures import S3Bucket

pytestmark = pytest.mark.integration


def one_json(result: CliResult) -> dict:
    assert "Traceback" not in result.stderr, str(result)
    return result.json()


def add_s3_source(plan: Plan, bucket: S3Bucket, prefix: str, name: str = "uploads") -> None:
    ws = Workspace(Home.resolve(plan.home))
    ws.plan.sources.append(SourceConfig(name, "s3", bucket.settings(prefix)))
    ws.save()


def restore_args(snapshot: str, bucket: str, prefix: str) -> list[str]:
    """`restore SNAPSHOT --source uploads --to-bucket BUCKET --to-prefix PREFIX` under --json."""
    return [
        "--json",
        "restore",
        snapshot,
        "--source",
        "uploads",
        "--to-bucket",
        bucket,
        "--to-prefix",
        prefix,
    ]


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
    for prefix in ("", "restored"):  # the bucket root while it is empty, then a prefix
        one_json(ok(plan.cli(*restore_args(snapshot, s3_bucket.name + "-copy", prefix))))
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


# --- a source's own I/O error is that source's failure, not the destination's ----------------------------
class _DirectoryStreamSource(FolderSource):
    """A source whose stream is a real file descriptor that fails on read (a directory: EISDIR)."""

    def capture(self, ctx: CaptureContext) -> Iterator[PartStream]:
        stream = os.fdopen(os.open(self.root, os.O_RDONLY), "rb", buffering=0)
        try:
            yield PartStream("files.tar.zst", stream, compressed=True)
        finally:
            stream.close()


def test_source_read_error_inside_the_part_is_the_sources_failure(new_plan: Callable[..., Plan]) -> None:
    plan = new_plan()
    good = write_folder(plan.work / "good")
    (plan.work / "bad").mkdir()
    ws = Workspace(Home.resolve(plan.home))
    bad = _DirectoryStreamSource(SourceConfig("bad", "folder", {"path": str(plan.work / "bad")}), None)
    fine = FolderSource(SourceConfig("good", "folder", {"path": str(good)}), None)
    primary = ws.destination("local")
    ensure_identity_file(ws, primary)
    snapshot_id, results = write_snapshot(ws, [bad, fine], primary, ignore_progress, CancelToken())
    by_name = {r.name: r for r in results}
    assert not by_name["bad"].ok and "Destination" not in (by_name["bad"].error or "")
    assert by_name["good"].ok
    assert (plan.snapshots_root / snapshot_id / "index.json").is_file()


@pytest.fixture
def short_read_file(tmp_path: Path) -> Iterator[Path]:
    """A regular file that says 4096 bytes and gives fewer (a sysfs file bind-mounted in): the read fails
    half-way, deterministically, even as root."""
    donor = Path("/sys/kernel/profiling")
    if os.geteuid() != 0 or not donor.is_file():
        pytest.skip("needs root and sysfs to bind-mount a short-reading file")
    target = tmp_path / "short-folder" / "shrinking.log"
    target.parent.mkdir()
    target.touch()
    subprocess.run(["mount", "--bind", str(donor), str(target)], check=True)
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)


def test_file_failing_mid_read_fails_only_its_folder(
    new_plan: Callable[..., Plan], short_read_file: Path
) -> None:
    plan = new_plan()
    good = write_folder(plan.work / "good")
    ok(plan.cli("--json", "source", "add", "bad", "folder", "--path", str(short_read_file.parent)))
    ok(plan.cli("--json", "source", "add", "good", "folder", "--path", str(good)))
    backup = plan.cli("--json", "backup")
    assert backup.code == 4, str(backup)
    body = one_json(backup)
    assert [s["name"] for s in body["sources"] if not s["ok"]] == ["bad"]
    target = plan.work / "restored"
    ok(plan.cli("--json", "restore", body["snapshot"], "--source", "good", "--to-dir", str(target)))
    assert (target / "avatars" / "änne.png").read_bytes() == (good / "avatars" / "änne.png").read_bytes()


# --- restore --overwrite of a .env keeps the one it replaces ---------------------------------------------
def backed_up_env(new_plan: Callable[..., Plan]) -> tuple[Plan, Path, Path, str]:
    """A plan whose env source `env` (app/.env, OLD_KEY) is in a snapshot: (plan, live dir, .env, id)."""
    plan = new_plan()
    live = plan.work / "app"
    live.mkdir()
    env = live / ".env"
    env.write_text("OLD_KEY=backed-up\n")
    ok(plan.cli("--json", "source", "add", "env", "env", "--path", str(env)))
    return plan, live, env, one_json(ok(plan.cli("--json", "backup")))["snapshot"]


def test_env_overwrite_takes_a_safety_snapshot_that_restores(new_plan: Callable[..., Plan]) -> None:
    plan, live, env, snapshot = backed_up_env(new_plan)
    env.write_text("NEW_KEY=never-backed-up\n")
    restored = one_json(
        ok(plan.cli("--json", "restore", snapshot, "--source", "env", "--to-dir", str(live), "--overwrite"))
    )
    assert env.read_text() == "OLD_KEY=backed-up\n"
    safety = restored["safety_snapshot"]
    assert safety
    back = plan.work / "back"
    ok(plan.cli("--json", "restore", safety, "--source", "pre-restore-env", "--to-dir", str(back)))
    assert (back / ".env").read_text() == "NEW_KEY=never-backed-up\n"
    latest = one_json(ok(plan.cli("--json", "snapshots")))
    assert safety in json.dumps(latest)


# --- restore --overwrite of a .env that is a symbolic link -----------------------------------------------
def test_env_overwrite_of_a_link_replaces_the_link_and_says_so(new_plan: Callable[..., Plan]) -> None:
    plan, live, env, snapshot = backed_up_env(new_plan)
    shared = plan.work / "shared.env"
    shared.write_text("NEW_KEY=never-backed-up\n")
    env.unlink()
    env.symlink_to(shared)
    args = ["--json", "restore", snapshot, "--source", "env", "--to-dir", str(live)]
    restored = one_json(ok(plan.cli(*args, "--overwrite")))
    assert not env.is_symlink() and env.read_text() == "OLD_KEY=backed-up\n"
    assert shared.read_text() == "NEW_KEY=never-backed-up\n"  # the file it pointed to is untouched
    assert any("symbolic link" in w and str(shared) in w for w in restored["warnings"]), restored
    assert restored["safety_snapshot"]
    env.unlink()
    env.symlink_to(plan.work / "gone.env")  # a dangling link is still something there: refused
    refused = plan.cli(*args)
    assert refused.code == 2 and "exists" in one_json(refused)["error"], str(refused)
    assert env.is_symlink()


# --- usage errors under --json ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ["--json", "no-such-command"],
        ["--json", "restore", "latest"],  # --source missing
        ["--json", "source", "add", "x", "ftp"],  # bad choice
        ["--json", "backup", "--no-such-option"],
        ["--json"],  # no command
        ["snapshots", "--json", "--bogus"],
        ["--json", "history", "--limit", "-5"],  # SQLite took it as "no limit"
        ["--json", "history", "--limit", "0"],
    ],
)
def test_usage_errors_under_json_are_one_document(tmp_path: Path, args: list[str]) -> None:
    result = run_cli(tmp_path / "home", *args)
    assert result.code == 2, str(result)
    body = one_json(result)
    assert body["ok"] is False and body["kind"] == "UsageError" and body["error"], body


# --- a full disk under the restore's staging directory ----------------------------------------------------
@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_full_disk_during_restore_leaves_the_target_untouched(
    new_plan: Callable[..., Plan], small_tmpfs: Path
) -> None:
    plan = new_plan()
    source = plan.work / "src"
    source.mkdir()
    (source / "big.bin").write_bytes(os.urandom(8_000_000))
    (source / "live.txt").write_text("from the snapshot\n")
    ok(plan.cli("--json", "source", "add", "files", "folder", "--path", str(source)))
    snapshot = one_json(ok(plan.cli("--json", "backup")))["snapshot"]
    target = small_tmpfs / "target"
    target.mkdir()
    (target / "live.txt").write_text("live, newer\n")
    before = sorted(os.listdir(small_tmpfs)), sorted(os.listdir(target))
    for args in (["--to-dir", str(target), "--overwrite"], ["--to-dir", str(small_tmpfs / "new")]):
        result = plan.cli("--json", "restore", snapshot, "--source", "files", *args)
        assert result.code == 1, str(result)
        body = one_json(result)
        assert "target is unchanged" in body["error"] and "space" in body["error"]
        assert "free" in (body["hint"] or "").lower(), body
        assert (sorted(os.listdir(small_tmpfs)), sorted(os.listdir(target))) == before
        assert (target / "live.txt").read_text() == "live, newer\n"


# --- a locked keyring -------------------------------------------------------------------------------------
LOCK_AND_BACK_UP = """
import json, subprocess, sys
import secretstorage
home, passphrase_file = sys.argv[1], sys.argv[2]
def drgui(*args):
    return subprocess.run([sys.executable, "-m", "drgui", "--home", home, "--json", *args],
                          capture_output=True, text=True)
assert drgui("init", "--name", "Locked", "--passphrase-file", passphrase_file).returncode == 0
assert drgui("dest", "add", "local", "local", "--path", home + "-dest").returncode == 0
import os
os.makedirs(home + "-src")
assert drgui("source", "add", "files", "folder", "--path", home + "-src").returncode == 0
open(home + "-src/a.txt", "w").write("a")
assert drgui("backup").returncode == 0
connection = secretstorage.dbus_init()
secretstorage.get_default_collection(connection).lock()
results = {}
commands = (
    ["backup"], ["snapshots"], ["verify", "latest", "--deep"],
    ["restore", "latest", "--source", "files", "--to-dir", home + "-out"],
)
for command in commands:
    run = drgui(*command)
    results[command[0]] = [run.returncode, run.stdout, "Traceback" in run.stderr]
print(json.dumps(results))
"""


def test_locked_keyring_is_exit_3_not_a_traceback(tmp_path: Path) -> None:
    passphrase = tmp_path / "pp.txt"
    passphrase.write_text("orbit velvet cactus harbor lantern seventeen\n")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DRGUI_IN_KEYRING_SESSION", "DBUS_SESSION_BUS_ADDRESS")
    }
    env["DRGUI_NO_PROMPT"] = "1"
    env["TMPDIR"] = str(tmp_path)
    runtime = tmp_path / "runtime"  # its own keyring daemon in every way: locking it locks no one else's
    runtime.mkdir(mode=0o700)
    env |= {"XDG_RUNTIME_DIR": str(runtime), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    tool = Path(__file__).resolve().parent.parent / "tools" / "with-keyring"
    run = subprocess.run(
        [str(tool), sys.executable, "-c", LOCK_AND_BACK_UP, str(tmp_path / "home"), str(passphrase)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    results = json.loads(run.stdout.strip().splitlines()[-1])
    for command, (code, stdout, traceback) in results.items():
        assert not traceback, command
        body = json.loads(stdout)  # one document, whatever the command
        if command in ("backup", "verify", "restore"):
            assert code == 3 and body["kind"] == "KeyringLocked", (command, code, body)


# --- two plans, one bucket, prefixes that are prefixes of each other ---------------------------------------
@pytest.mark.parametrize(("prefix_a", "prefix_b"), [("acme", "acme-2/"), ("", "acme"), ("acme/", "acme/b")])
def test_two_plans_on_one_bucket_with_overlapping_prefixes(
    tmp_path: Path, s3_bucket: S3Bucket, prefix_a: str, prefix_b: str
) -> None:
    from tests.test_plan_scope import PlanHome, check_isolation, two_plans
    from tests.test_plan_scope import ok as scoped_ok

    prefixes = iter((prefix_a, prefix_b))

    def add(plan: PlanHome) -> None:
        args = ["--bucket", s3_bucket.name, "--prefix", next(prefixes), "--endpoint-url", s3_bucket.endpoint]
        scoped_ok(plan.cli("dest", "add", "bucket", "s3", *args, "--region", "us-east-1"))
        ws = plan.ws
        ws.plan.destination("bucket").settings["part_size_mb"] = 5
        ws.save()

    plan_a, plan_b, ids = two_plans(tmp_path, add)
    check_isolation(plan_a, plan_b, ids, "bucket")


# --- a damaged identity.age at a destination -------------------------------------------------------------
def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_damaged_identity_at_second_destination_is_rewritten_never_spread(
    new_plan: Callable[..., Plan],
) -> None:
    plan = new_plan()
    ok(plan.cli("--json", "source", "add", "files", "folder", "--path", str(write_folder(plan.work / "f"))))
    second = plan.work / "second"
    ok(plan.cli("--json", "dest", "add", "second", "local", "--path", str(second)))
    ok(plan.cli("--json", "backup"))
    home_copy = (plan.home / "identity.age").read_bytes()
    damaged = second / plan.plan_id / "identity.age"
    flip_byte(damaged)
    bad = damaged.read_bytes()
    backup = one_json(ok(plan.cli("--json", "backup")))
    assert any("identity.age at destination 'second' was damaged" in w for w in backup["warnings"]), backup
    assert damaged.read_bytes() == home_copy
    assert [p.read_bytes() for p in damaged.parent.glob("identity.age.damaged-*")] == [bad]
    assert (plan.dest_dir / plan.plan_id / "identity.age").read_bytes() == home_copy
    # With no destination agreeing with the home, nothing is written: only said.
    flip_byte(plan.home / "identity.age")
    backup = one_json(ok(plan.cli("--json", "backup")))
    assert sum("differs from this plan's copy" in w for w in backup["warnings"]) == 2, backup
    assert damaged.read_bytes() == home_copy
    assert (plan.dest_dir / plan.plan_id / "identity.age").read_bytes() == home_copy


# --- a folder source that holds the destination -----------------------------------------------------------
def test_folder_holding_its_destination_does_not_back_up_its_backups(tmp_path: Path) -> None:
    from tests.engine_fixtures import PASSPHRASE

    app = tmp_path / "srv" / "app"
    write_folder(app)
    (tmp_path / "pp.txt").write_text(PASSPHRASE + "\n")
    home = app / ".drgui"  # the home inside the folder too
    plan = Plan(home, app / "backups", tmp_path / "pp.txt", tmp_path)
    ok(plan.cli("--json", "init", "--name", "Nested", "--passphrase-file", str(plan.passphrase_file)))
    ok(plan.cli("--json", "dest", "add", "local", "local", "--path", str(plan.dest_dir)))
    ok(plan.cli("--json", "source", "add", "app", "folder", "--path", str(app)))
    sizes = []
    for _ in range(3):
        body = one_json(ok(plan.cli("--json", "backup")))
        sizes.append(body["sources"][0]["bytes"])
        assert any("backups: skipped" in w for w in body["sources"][0].get("warnings", [])), body
    assert sizes[2] < sizes[0] * 1.2, sizes  # not growing with its own snapshots
    target = tmp_path / "restored"
    ok(plan.cli("--json", "restore", "latest", "--source", "app", "--to-dir", str(target)))
    assert sorted(p.name for p in target.iterdir()) == ["avatars", "empty.txt", "invoices"]


def test_s3_source_in_the_destination_bucket_skips_the_backups(
    new_plan: Callable[..., Plan], s3_bucket: S3Bucket
) -> None:
    plan = new_plan()
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key="uploads/a.txt", Body=b"a")
    ws = Workspace(Home.resolve(plan.home))
    ws.plan.destinations.append(DestConfig("s3", "s3", s3_bucket.settings("drgui")))
    ws.save()
    add_s3_source(plan, s3_bucket, "")  # the whole bucket, the destination's prefix included
    sizes = []
    for _ in range(3):
        body = one_json(ok(plan.cli("--json", "backup")))
        sizes.append(body["sources"][0]["bytes"])
        assert any("drgui/: skipped" in w for w in body["sources"][0].get("warnings", [])) or len(sizes) == 1
    assert sizes[0] == sizes[1] == sizes[2], sizes
    target = plan.work / "restored"
    ok(plan.cli("--json", "restore", "latest", "--source", "uploads", "--to-dir", str(target)))
    assert [p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()] == ["uploads/a.txt"]


def test_restore_to_a_non_empty_bucket_prefix_refuses_or_keeps_a_safety_snapshot(
    new_plan: Callable[..., Plan], s3_bucket: S3Bucket
) -> None:
    plan = new_plan()
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key="up/a.txt", Body=b"backed up")
    add_s3_source(plan, s3_bucket, "up")
    snapshot = one_json(ok(plan.cli("--json", "backup")))["snapshot"]
    copy = s3_bucket.name + "-copy"
    s3_bucket.client.create_bucket(Bucket=copy)
    s3_bucket.client.put_object(Bucket=copy, Key="live/a.txt", Body=b"live, never backed up")
    args = ["--json", "restore", snapshot, "--source", "uploads", "--to-bucket", copy, "--to-prefix", "live"]
    refused = plan.cli(*args)
    assert refused.code == 2 and "not empty" in one_json(refused)["error"], str(refused)
    assert bucket_objects(s3_bucket, copy, "live/") == {"a.txt": b"live, never backed up"}
    restored = one_json(ok(plan.cli(*args, "--overwrite")))
    assert bucket_objects(s3_bucket, copy, "live/") == {"a.txt": b"backed up"}
    back = plan.work / "back"
    safety = restored["safety_snapshot"]
    ok(plan.cli("--json", "restore", safety, "--source", "pre-restore-uploads", "--to-dir", str(back)))
    assert (back / "a.txt").read_bytes() == b"live, never backed up"
