"""Issue 11 items 6, 8 and 11: one bad source never blocks the others, interrupted copies are retried,
a killed run is shown as interrupted, and bad input gives a clear error (never a traceback)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import tomli_w

from drgui.core.engine.destinations.local import LocalDestination
from drgui.core.engine.destinations.s3 import S3Destination
from drgui.core.plan.config import DestConfig
from drgui.core.plan.home import Home
from drgui.core.plan.workspace import Workspace
from tests.engine_fixtures import (
    CliResult,
    Plan,
    assert_home_clean,
    cli_argv,
    cli_env,
    make_git_repo,
    ok,
    run_cli,
    write_folder,
)
from tests.pg_fixtures import PG_PASSWORD, PgDatabase
from tests.s3_fixtures import S3Bucket

DEADLINE = 240.0


def no_traceback(result: CliResult) -> None:
    assert "Traceback" not in result.stderr, str(result)


def one_json(result: CliResult) -> dict:
    no_traceback(result)
    return result.json()


def small_database(database: PgDatabase) -> None:
    database.execute(
        "CREATE TABLE customers (id int PRIMARY KEY, name text);"
        "INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, 250) g;"
    )


def add_db(plan: Plan, database: PgDatabase) -> None:
    small_database(database)
    ok(plan.cli("--json", "source", "add", "db", "postgres", "--dsn", database.dsn_with_password))


def restored_rows(plan: Plan, database: PgDatabase, snapshot: str) -> int:
    cluster = database.cluster
    target_db = f"{database.dbname}_r"
    try:
        result = ok(
            plan.cli(
                "--json",
                "restore",
                snapshot,
                "--source",
                "db",
                "--to-dsn",
                cluster.url(target_db, password=PG_PASSWORD),
            )
        ).json()
        assert result["ok"], result
        return int(cluster.query("SELECT count(*) FROM customers", dbname=target_db)[0][0])
    finally:
        cluster.drop_database(target_db)


def source_row(status: dict, name: str) -> dict:
    return next(s for s in status["sources"] if s["name"] == name)


# --- item 8: one failing source never stops the others ---------------------------------------------


def test_vanished_folder_does_not_stop_the_database(
    new_plan: Callable[..., Plan], pg18_db: PgDatabase
) -> None:
    plan = new_plan()
    add_db(plan, pg18_db)
    folder = write_folder(plan.work / "uploads")
    ok(plan.cli("--json", "source", "add", "files", "folder", "--path", str(folder)))
    shutil.rmtree(folder)  # the folder vanished (unmounted volume, moved app)

    result = plan.cli("--json", "backup")
    assert result.code == 4, str(result)
    data = one_json(result)
    assert data["ok"] is False and data["partial"] is True
    by_name = {s["name"]: s for s in data["sources"]}
    assert by_name["db"]["ok"] is True and by_name["db"]["bytes"] > 0
    assert by_name["files"]["ok"] is False
    assert str(folder) in by_name["files"]["error"] and "files" in by_name["files"]["error"]
    assert all(d["ok"] for d in data["destinations"])

    snapshot = data["snapshot"]
    listed = ok(plan.cli("--json", "snapshots")).json()
    assert [row["id"] for row in listed] == [snapshot] and listed[0]["complete"]
    assert not list((plan.snapshots_root / snapshot / "parts").glob("files*"))
    assert ok(plan.cli("--json", "verify", snapshot, "--deep")).json()["ok"]
    assert restored_rows(plan, pg18_db, snapshot) == 250

    status_result = ok(plan.cli("--json", "status"))
    status = one_json(status_result)
    files = source_row(status, "files")
    assert files["last_error"] and str(folder) in files["last_error"]
    assert source_row(status, "db")["last_error"] is None
    assert source_row(status, "db")["rpo_state"] == "ok"
    assert files["rpo_state"] == "never"
    assert status["state"] == "partial"
    assert any("files" in reason and str(folder) in reason for reason in status["reasons"])
    human = ok(plan.cli("status")).stdout
    assert "NOT BACKED UP" in human and str(folder) in human

    history = ok(plan.cli("--json", "history")).json()
    backup_run = next(r for r in history if r["kind"] == "backup")
    assert backup_run["status"] == "partial"
    assert_home_clean(plan.home)


def test_git_repository_without_commits_does_not_stop_the_database(
    new_plan: Callable[..., Plan], pg18_db: PgDatabase
) -> None:
    plan = new_plan()
    add_db(plan, pg18_db)
    repo = plan.work / "fresh-repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True, capture_output=True)
    ws = Workspace(Home.resolve(plan.home))  # `source add` refuses it, so it is added by hand as if
    from drgui.core.plan.config import SourceConfig  # the commits were lost after it was added

    ws.plan.sources.append(SourceConfig("repo", "git", {"path": str(repo)}))
    ws.save()

    result = plan.cli("--json", "backup")
    assert result.code == 4, str(result)
    data = one_json(result)
    by_name = {s["name"]: s for s in data["sources"]}
    assert by_name["db"]["ok"] and not by_name["repo"]["ok"]
    assert "no commits" in by_name["repo"]["error"]
    assert restored_rows(plan, pg18_db, data["snapshot"]) == 250
    status = ok(plan.cli("--json", "status")).json()
    assert "no commits" in source_row(status, "repo")["last_error"]


def test_a_source_failing_mid_stream_leaves_no_part_behind(
    new_plan: Callable[..., Plan], tmp_path: Path
) -> None:
    """A git repository with a missing object: the part is opened, then `git bundle` fails."""
    plan = new_plan()
    folder = write_folder(plan.work / "uploads")
    ok(plan.cli("--json", "source", "add", "files", "folder", "--path", str(folder)))
    repo = make_git_repo(plan.work / "repo")
    ok(plan.cli("--json", "source", "add", "repo", "git", "--path", str(repo)))
    objects = [p for p in (repo / ".git" / "objects").glob("??/*") if p.is_file()]
    assert objects
    for path in objects:
        path.unlink()  # refs point at nothing now

    result = plan.cli("--json", "backup")
    assert result.code == 4, str(result)
    data = one_json(result)
    by_name = {s["name"]: s for s in data["sources"]}
    assert by_name["files"]["ok"] and not by_name["repo"]["ok"]
    assert "repo" in by_name["repo"]["error"]
    snapshot_dir = plan.snapshots_root / data["snapshot"]
    assert not (snapshot_dir / "parts" / "repo").exists()
    index = json.loads((snapshot_dir / "index.json").read_text())
    assert [s["name"] for s in index["sources"]] == ["files"]
    assert all(p["source"] == "files" for p in index["parts"])
    assert index["extra"]["failed_sources"] == [{"name": "repo", "kind": "git"}]
    assert ok(plan.cli("--json", "verify", data["snapshot"], "--deep")).json()["ok"]
    target = plan.work / "restored"
    ok(plan.cli("--json", "restore", data["snapshot"], "--source", "files", "--to-dir", str(target)))
    assert (target / "avatars" / "änne.png").read_bytes() == (folder / "avatars" / "änne.png").read_bytes()


def test_every_source_failing_writes_no_snapshot(new_plan: Callable[..., Plan]) -> None:
    plan = new_plan()
    for name in ("a", "b"):
        folder = write_folder(plan.work / name)
        ok(plan.cli("--json", "source", "add", name, "folder", "--path", str(folder)))
        shutil.rmtree(folder)
    result = plan.cli("--json", "backup")
    assert result.code == 1, str(result)
    data = one_json(result)
    assert data["ok"] is False and "No source could be backed up" in data["error"]
    assert "'a'" in data["error"] and "'b'" in data["error"]
    assert ok(plan.cli("--json", "snapshots")).json() == []
    assert not list((plan.snapshots_root).glob("*"))


# --- item 6: interrupted copies are retried; a killed run is interrupted, not running ---------------


def add_second_local(plan: Plan) -> Path:
    second = plan.work / "second"
    ok(plan.cli("--json", "dest", "add", "second", "local", "--path", str(second)))
    return second


def add_s3(plan: Plan, bucket: S3Bucket) -> None:
    ws = Workspace(Home.resolve(plan.home))
    ws.plan.destinations.append(DestConfig("s3", "s3", bucket.settings("acme")))
    ws.save()


def big_file(folder: Path, megabytes: int) -> None:
    with open(folder / "big.bin", "wb") as handle:
        for _ in range(megabytes):
            handle.write(os.urandom(1024 * 1024))


def kill_during_copy(plan: Plan, copying: Callable[[], bool]) -> str:
    """Start `drgui backup`, SIGKILL it as soon as `copying()` says the copy to the second destination
    has started; return the id of the snapshot that is complete on the primary destination."""
    primary = LocalDestination.at(plan.dest_dir / plan.plan_id, "local")
    before = primary.snapshot_ids()
    process = subprocess.Popen(
        cli_argv(plan.home, "--json", "backup"),
        env=cli_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + DEADLINE
    try:
        while not copying():
            assert process.poll() is None, f"backup ended before the copy was seen: {process.stderr.read()!r}"
            assert time.monotonic() < deadline, "the copy never started"
            time.sleep(0.005)  # polling interval, not a wait for a result
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        assert process.stderr is not None
        process.stderr.close()
    new = [sid for sid in primary.snapshot_ids() if sid not in before]
    assert len(new) == 1, "the snapshot should be complete on the primary destination before the copy"
    return new[0]


def partial_dir_exists(second: Path) -> Callable[[], bool]:
    def check() -> bool:
        snapshots = second / "snapshots"
        return snapshots.is_dir() and any(p.name.endswith(".partial") for p in snapshots.iterdir())

    return check


def assert_interrupted_not_running(plan: Plan, snapshot: str, dest: str) -> None:
    status = ok(plan.cli("--json", "status")).json()
    assert status["state"] != "running", status
    assert status["last_backup"]["status"] == "interrupted", status["last_backup"]
    assert any(q["snapshot"] == snapshot and q["destination"] == dest for q in status["queue"]), status
    runs = ok(plan.cli("--json", "history")).json()
    assert "running" not in {r["status"] for r in runs}, runs
    assert {r["status"] for r in runs if r["kind"] == "upload" and r["snapshot"] == snapshot} == {
        "interrupted"
    }


@pytest.fixture
def plan_with_copy(new_plan: Callable[..., Plan]) -> Iterator[Plan]:
    plan = new_plan()
    folder = write_folder(plan.work / "uploads")
    ok(plan.cli("--json", "source", "add", "files", "folder", "--path", str(folder)))
    yield plan


@pytest.mark.parametrize("retry_with", ["backup", "run-due"])
def test_kill_9_during_copy_to_a_second_local_destination_is_retried(
    plan_with_copy: Plan, retry_with: str
) -> None:
    plan = plan_with_copy
    second = add_second_local(plan)
    ok(plan.cli("--json", "backup"))  # a first, good run: run-due has no backup due after it
    big_file(plan.work / "uploads", 400)
    snapshot = kill_during_copy(plan, partial_dir_exists(second / plan.plan_id))
    assert snapshot not in LocalDestination.at(second / plan.plan_id, "second").snapshot_ids()
    assert_interrupted_not_running(plan, snapshot, "second")

    result = plan.cli("--json", retry_with)
    assert result.code == 0, str(result)
    data = one_json(result)
    if retry_with == "backup":
        assert f"{snapshot}->second" in data["uploaded_from_queue"]
    else:
        assert data["backup"]["due"] is False, data
        assert data["queue"] == {"copied": [f"{snapshot}->second"], "waiting": 0}
    assert snapshot in LocalDestination.at(second / plan.plan_id, "second").snapshot_ids()
    assert not (second / plan.plan_id / "snapshots" / f"{snapshot}.partial").exists()
    assert ok(plan.cli("--json", "verify", snapshot, "--dest", "second", "--deep")).json()["ok"]
    assert ok(plan.cli("--json", "status")).json()["queue"] == []


@pytest.mark.parametrize("retry_with", ["backup", "run-due"])
def test_kill_9_during_upload_to_s3_is_retried(
    plan_with_copy: Plan, s3_bucket: S3Bucket, retry_with: str
) -> None:
    plan = plan_with_copy
    add_s3(plan, s3_bucket)
    ok(plan.cli("--json", "backup"))
    big_file(plan.work / "uploads", 60)

    def uploading() -> bool:
        return bool(s3_bucket.uploads(f"acme/{plan.plan_id}/snapshots/"))

    snapshot = kill_during_copy(plan, uploading)
    ws = Workspace(Home.resolve(plan.home))
    s3 = ws.destination("s3")
    assert isinstance(s3, S3Destination)
    assert snapshot not in s3.snapshot_ids()
    assert_interrupted_not_running(plan, snapshot, "s3")

    result = plan.cli("--json", retry_with)
    assert result.code == 0, str(result)
    data = one_json(result)
    if retry_with == "run-due":
        assert data["backup"]["due"] is False and data["queue"]["waiting"] == 0, data
    assert snapshot in s3.snapshot_ids()
    # The killed upload was aborted, not left to bill.
    assert s3_bucket.uploads(f"acme/{plan.plan_id}/snapshots/") == []
    assert ok(plan.cli("--json", "verify", snapshot, "--dest", "s3", "--deep")).json()["ok"]


# --- item 11: no tracebacks -----------------------------------------------------------------------


def _edit_config(plan: Plan, change: Callable[[dict], None]) -> None:
    path = plan.home / "config.toml"
    data = tomllib.loads(path.read_text())
    change(data)
    path.write_text(tomli_w.dumps(data))


def test_destination_path_of_the_wrong_type(new_plan: Callable[..., Plan]) -> None:
    plan = new_plan()

    def set_path(data: dict) -> None:
        data["destinations"][0]["path"] = 42

    _edit_config(plan, set_path)
    for args in (("backup",), ("snapshots",), ("status",), ("dest", "list")):
        result = plan.cli("--json", *args)
        assert result.code == 2, str(result)
        data = one_json(result)
        assert data["ok"] is False
        for needle in ("config.toml", "path = 42", "destination 'local'", "must be text"):
            assert needle in result.stderr and needle in data["error"], str(result)
        assert 'path = "' in data["hint"]


def test_home_that_is_a_file(tmp_path: Path) -> None:
    home = tmp_path / "not-a-dir"
    home.write_text("x")
    passphrase = tmp_path / "pass.txt"
    passphrase.write_text("orbit velvet cactus harbor lantern seventeen\n")
    for args in (("init", "--name", "A", "--passphrase-file", str(passphrase)), ("status",), ("backup",)):
        result = run_cli(home, "--json", *args)
        assert result.code == 2, str(result)
        data = one_json(result)
        assert str(home) in data["error"] and "not a directory" in data["error"]
    result = run_cli(home / "sub", "--json", "status")
    assert result.code == 2 and "is a file" in one_json(result)["error"], str(result)
    assert home.read_text() == "x"


def test_history_into_a_closed_pipe(new_plan: Callable[..., Plan]) -> None:
    plan = new_plan()
    ws = Workspace(Home.resolve(plan.home))
    for _ in range(1500):
        run_id = ws.history.start_run("verify", target="local")
        ws.history.finish_run(run_id, "ok")
    command = " ".join(cli_argv(plan.home, "history", "--limit", "1500"))
    shell = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"{command} | head -1"],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=120,
        check=False,
    )
    assert len(shell.stdout.splitlines()) == 1, shell
    assert "Traceback" not in shell.stderr and "Exception ignored" not in shell.stderr, shell.stderr
    assert "BrokenPipe" not in shell.stderr, shell.stderr


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_damaged_history_never_stops_a_backup(new_plan: Callable[..., Plan], damage: str) -> None:
    plan = new_plan()
    folder = write_folder(plan.work / "uploads")
    ok(plan.cli("--json", "source", "add", "files", "folder", "--path", str(folder)))
    ok(plan.cli("--json", "backup"))
    ws = Workspace(Home.resolve(plan.home))
    for _ in range(300):
        run_id = ws.history.start_run("verify", target="local")
        ws.history.finish_run(run_id, "ok", detail={"note": "x" * 200})
    path = plan.home / "history.sqlite"
    for suffix in ("-wal", "-shm"):
        assert not Path(f"{path}{suffix}").exists() or Path(f"{path}{suffix}").stat().st_size >= 0
    original = path.read_bytes()
    path.write_bytes(original[: len(original) // 2] if damage == "truncated" else b"not sqlite " * 500)
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)

    history = plan.cli("--json", "history")
    assert history.code == 0, str(history)
    one_json(history)
    aside = sorted(plan.home.glob("history.sqlite.damaged-*"))
    assert [p.name for p in aside if not p.name.endswith(("-wal", "-shm"))], list(plan.home.iterdir())
    status = ok(plan.cli("--json", "status")).json()
    assert any("history file was damaged" in n for n in status["notices"]), status
    assert any("history file was damaged" in r for r in status["reasons"])

    backup = plan.cli("--json", "backup")
    assert backup.code == 0, str(backup)
    data = one_json(backup)
    assert data["ok"] and any("history file was damaged" in w for w in data["warnings"])
    again = ok(plan.cli("--json", "backup")).json()
    assert again["warnings"] == []  # told once
    assert ok(plan.cli("--json", "status")).json()["notices"] == []
    assert len(ok(plan.cli("--json", "snapshots")).json()) == 3


def test_unexpected_error_gives_one_json_document_and_no_traceback(tmp_path: Path) -> None:
    """An internal error (here: a command module whose handler raises) is one line, exit 1."""
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "sitecustomize.py").write_text(
        "import drgui.cli.cmd_status as s\n"
        "def boom(args, out):\n"
        "    raise ZeroDivisionError('division by zero in a test')\n"
        "s.run = boom\n"
    )
    env = {"PYTHONPATH": os.pathsep.join([str(plugin), *sys.path])}
    result = run_cli(tmp_path / "home", "--json", "status", env=env)
    assert result.code == 1, str(result)
    data = one_json(result)
    assert data == {
        "ok": False,
        "error": "unexpected ZeroDivisionError: division by zero in a test",
        "hint": None,
        "kind": "InternalError",
    }
    assert "DRGUI_DEBUG" in result.stderr
    debug = run_cli(tmp_path / "home", "--json", "status", env={**env, "DRGUI_DEBUG": "1"})
    assert "Traceback" in debug.stderr and debug.json()["kind"] == "InternalError"


def test_a_source_missing_from_a_partial_backup_is_stale_not_zero_bytes(tmp_path: Path) -> None:
    from drgui.core.ops.alerts import compute_alerts
    from drgui.core.plan.config import Plan as PlanConfig
    from drgui.core.plan.config import SourceConfig

    now = datetime.now(UTC)
    plan = PlanConfig("p1", "Acme", "age1x", created=(now - timedelta(days=30)).isoformat())
    plan.sources = [SourceConfig("db", "postgres"), SourceConfig("files", "folder")]
    ws = Workspace(Home(tmp_path / "home"), plan)
    first = ws.history.start_run("backup")
    ws.history.finish_run(
        first, "ok", detail={"sources": [{"name": "db", "bytes": 900}, {"name": "files", "bytes": 500}]}
    )
    second = ws.history.start_run("backup")
    failed = {"name": "files", "bytes": 0, "ok": False, "error": "gone"}
    ws.history.finish_run(
        second, "partial", detail={"sources": [{"name": "db", "bytes": 1000, "ok": True}, failed]}
    )
    assert [a.kind for a in compute_alerts(ws, now)] == []  # files did not "shrink by 100 %"
    assert [a.source for a in compute_alerts(ws, now + timedelta(days=4))] == ["db", "files"]


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_discard_removes_a_whole_or_half_written_part(kind: str, tmp_path: Path, request) -> None:
    from drgui.core.engine.snapshot import Index, new_snapshot_id

    if kind == "s3":
        bucket: S3Bucket = request.getfixturevalue("s3_bucket")
        dest = S3Destination(DestConfig("s3", "s3", bucket.settings(prefix="acme")))
    else:
        dest = LocalDestination.at(tmp_path / "dest", "local")
    snapshot_id = new_snapshot_id(datetime.now(UTC))
    writer = dest.begin(snapshot_id)
    with writer.open_part("parts/db/db.dump.zst.age") as out:
        out.write(b"kept")
    with writer.open_part("parts/files/files.tar.zst.age") as out:
        out.write(b"x" * (6 * 1024 * 1024))  # a whole part that is then discarded
    writer.discard("parts/files/files.tar.zst.age")
    with pytest.raises(RuntimeError), writer.open_part("parts/repo/repo.bundle.age") as out:
        out.write(b"half")
        raise RuntimeError("the source failed mid-stream")
    writer.discard("parts/repo/repo.bundle.age")
    writer.discard("parts/never/opened.age")  # nothing to remove: no error
    index = Index(snapshot_id, "t", "p", [{"name": "db", "kind": "postgres"}], [], {"path": "manifest.age"})
    writer.commit(index)
    keys = sorted(info.key for info in dest.list_objects(f"snapshots/{snapshot_id}/"))
    assert keys == [
        f"snapshots/{snapshot_id}/index.json",
        f"snapshots/{snapshot_id}/parts/db/db.dump.zst.age",
    ]
    if kind == "s3":
        assert bucket.uploads() == []
