"""S3 end to end through the real CLI, boto3 over HTTP to moto's server (optionally via a fault proxy)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from drgui.cli.main import main
from drgui.core.engine.destinations.s3 import S3Destination
from drgui.core.errors import DestinationError
from drgui.core.plan.config import DestConfig
from drgui.core.plan.home import Home
from drgui.core.plan.workspace import Workspace
from tests.engine_fixtures import (
    PASSPHRASE,
    CliResult,
    Plan,
    assert_no_secret,
    ok,
    write_env_file,
    write_folder,
)
from tests.faultproxy import FaultProxy
from tests.pg_fixtures import PgDatabase
from tests.s3_fixtures import S3Bucket
from tests.support import environment

pytestmark = pytest.mark.integration

S3_KEY_ID = "AKIAE2EDRGUIKEY98765"
S3_SECRET = "e2e/Secret+Key0987654321zyxwvEXAMPLEk3y"
S3_SECRETS = (S3_KEY_ID, S3_SECRET)
FAULT_MB = int(os.environ.get("DRGUI_TEST_S3_MB", "40"))


def no_s3_key(text: str | bytes, where: str) -> None:
    data = text.encode() if isinstance(text, str) else text
    for value in S3_SECRETS:
        assert value.encode() not in data, f"an S3 key leaked into {where}"


def run_in_process(home: Path, *args: str, env: dict[str, str] | None = None) -> CliResult:
    """`drgui --home HOME ARGS` in this process (the subprocess start costs ~1.5 s a call)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    values = {"DRGUI_NO_PROMPT": "1", "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", **(env or {})}
    with environment(values), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["--home", str(home), *args])
    result = CliResult(list(args), code, stdout.getvalue(), stderr.getvalue())
    for text, where in ((result.stdout, "stdout"), (result.stderr, "stderr")):
        assert_no_secret(text, f"{where} of {args}")
        no_s3_key(text, f"{where} of {args}")
    return result


def cli(plan: Plan, *args: str, env: dict[str, str] | None = None) -> CliResult:
    return run_in_process(plan.home, "--json", *args, env=env)


def plan_in(tmp_path: Path) -> Plan:
    """init + a local destination, in process, in a new folder of `tmp_path`."""
    work = tmp_path / f"plan{len(list(tmp_path.iterdir()))}"
    work.mkdir()
    (work / "passphrase.txt").write_text(PASSPHRASE + "\n")
    plan = Plan(work / "home", work / "dest", work / "passphrase.txt", work)
    ok(cli(plan, "init", "--name", "Acme", "--passphrase-file", str(plan.passphrase_file)))
    ok(cli(plan, "dest", "add", "local", "local", "--path", str(plan.dest_dir)))
    return plan


@pytest.fixture
def new_plan(tmp_path: Path) -> Callable[[], Plan]:
    """init + a local destination, in process."""
    return lambda: plan_in(tmp_path)


def home_has_no_s3_key(home: Path) -> None:
    for path in home.rglob("*"):
        if path.is_file():
            no_s3_key(path.read_bytes(), str(path))


def add_s3_dest(plan: Plan, endpoint: str, bucket: str, name: str = "s3", **settings: Any) -> None:
    key_file = plan.work / "s3-secret.txt"
    key_file.write_text(S3_SECRET + "\n")
    args = ["dest", "add", name, "s3", "--bucket", bucket, "--prefix", "acme", "--endpoint-url", endpoint]
    ok(
        cli(
            plan,
            *args,
            "--region",
            "us-east-1",
            "--access-key-id",
            S3_KEY_ID,
            "--secret-access-key-file",
            str(key_file),
        )
    )
    set_dest(plan, name, part_size_mb=5, **settings)


def set_dest(plan: Plan, name: str, **settings: Any) -> None:
    ws = Workspace(Home.resolve(plan.home))
    ws.plan.destination(name).settings.update(settings)
    ws.save()


def add_sources(plan: Plan, folder_mb: int = 0) -> Path:
    folder = write_folder(plan.work / "files")
    if folder_mb:
        with open(folder / "big.bin", "wb") as handle:
            for _ in range(folder_mb):
                handle.write(os.urandom(1024 * 1024))
    ok(cli(plan, "source", "add", "files", "folder", "--path", str(folder)))
    ok(cli(plan, "source", "add", "dotenv", "env", "--path", str(write_env_file(plan.work / ".env"))))
    return folder


def tree_hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


def s3_dest(plan: Plan, name: str = "s3") -> S3Destination:
    ws = Workspace(Home.resolve(plan.home))
    dest = ws.destination(name)
    assert isinstance(dest, S3Destination)
    return dest


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_restore_from_s3_after_local_copy_is_lost(new_plan: Callable[..., Plan], s3_bucket: S3Bucket) -> None:
    plan = new_plan()
    folder = add_sources(plan)
    add_s3_dest(plan, s3_bucket.endpoint, s3_bucket.name)
    backup = cli(plan, "backup")
    assert backup.code == 0, str(backup)
    snapshot_id = backup.json()["snapshot"]
    assert {d["name"]: d["ok"] for d in backup.json()["destinations"]} == {"local": True, "s3": True}
    scope = f"acme/{plan.plan_id}"  # the plan's own folder in the bucket
    assert f"{scope}/snapshots/{snapshot_id}/index.json" in s3_bucket.list_keys()
    assert f"{scope}/identity.age" in s3_bucket.list_keys()

    shutil.rmtree(plan.dest_dir)
    listed = ok(cli(plan, "snapshots", "--dest", "s3")).json()
    assert [row["id"] for row in listed] == [snapshot_id]
    verified = ok(cli(plan, "verify", "latest", "--deep", "--dest", "s3")).json()
    assert verified["ok"] and verified["problems"] == []
    target = plan.work / "restored"
    ok(cli(plan, "restore", snapshot_id, "--source", "files", "--to-dir", str(target), "--dest", "s3"))
    assert tree_hashes(target) == tree_hashes(folder)
    ok(
        cli(
            plan,
            "restore",
            "latest",
            "--source",
            "dotenv",
            "--to-dir",
            str(plan.work / "envback"),
            "--dest",
            "s3",
        )
    )
    assert (plan.work / "envback" / ".env").read_bytes() == (plan.work / ".env").read_bytes()
    assert s3_bucket.uploads() == []
    home_has_no_s3_key(plan.home)


def test_backup_survives_connection_resets(new_plan: Callable[..., Plan], s3_bucket: S3Bucket) -> None:
    plan = new_plan()
    add_sources(plan, folder_mb=FAULT_MB)
    host, port = s3_bucket.endpoint.removeprefix("http://").split(":")
    with FaultProxy(
        (host, int(port)), reset_fraction=0.2, slowdown_fraction=0.05, seed=7, lifetime=240
    ) as proxy:
        add_s3_dest(plan, proxy.endpoint, s3_bucket.name)
        backup = cli(plan, "backup")
        assert backup.code == 0, str(backup)
        verified = cli(plan, "verify", "latest", "--deep", "--dest", "s3")
        assert verified.code == 0, str(verified)
        assert verified.json()["ok"]
    assert proxy.stats.resets > 0, proxy.stats
    assert s3_bucket.uploads("acme/") == []
    dest = s3_dest(plan)
    dest.config.settings["endpoint_url"] = s3_bucket.endpoint
    assert dest.snapshot_ids() == [backup.json()["snapshot"]] and dest.incomplete_ids() == []


def test_s3_down_queues_then_uploads_once(new_plan: Callable[..., Plan], s3_bucket: S3Bucket) -> None:
    plan = new_plan()
    add_sources(plan)
    add_s3_dest(plan, s3_bucket.endpoint, s3_bucket.name)
    set_dest(plan, "s3", endpoint_url=f"http://127.0.0.1:{closed_port()}", max_attempts=2, connect_timeout=2)

    first = cli(plan, "backup")
    assert first.code == 4, str(first)
    data = first.json()
    assert data["partial"] and not data["ok"]
    s3_result = next(d for d in data["destinations"] if d["name"] == "s3")
    assert s3_result["queued"] and "cannot reach" in s3_result["error"]
    first_id = data["snapshot"]
    ok(cli(plan, "verify", first_id, "--deep", "--dest", "local"))
    queue = Workspace(Home.resolve(plan.home)).history.queue()
    assert [(q["snapshot"], q["destination"]) for q in queue] == [(first_id, "s3")]
    scope = f"acme/{plan.plan_id}"
    assert s3_bucket.list_keys(f"{scope}/snapshots/") == []

    set_dest(plan, "s3", endpoint_url=s3_bucket.endpoint)
    second = cli(plan, "backup")
    assert second.code == 0, str(second)
    assert second.json()["uploaded_from_queue"] == [f"{first_id}->s3"]
    assert Workspace(Home.resolve(plan.home)).history.queue() == []
    dest = s3_dest(plan)
    # both may start within one second: snapshot_ids() orders by start time, not by the id's text
    assert sorted(dest.snapshot_ids()) == sorted([first_id, second.json()["snapshot"]])
    assert dest.incomplete_ids() == [] and s3_bucket.uploads() == []
    keys = s3_bucket.list_keys(f"{scope}/snapshots/")
    assert len(keys) == len(set(keys))
    for snapshot_id in dest.snapshot_ids():
        index = dest.read_index(snapshot_id)
        expected = {f"{scope}/snapshots/{snapshot_id}/{p['path']}" for p in [*index.parts, index.manifest]}
        assert {k for k in keys if snapshot_id in k} == expected | {
            f"{scope}/snapshots/{snapshot_id}/index.json"
        }
    ok(cli(plan, "verify", first_id, "--dest", "s3"))
    home_has_no_s3_key(plan.home)


def test_dest_add_without_credentials_is_usage_error(
    new_plan: Callable[..., Plan], s3_bucket: S3Bucket
) -> None:
    plan = new_plan()
    result = cli(
        plan, "dest", "add", "s3", "s3", "--bucket", s3_bucket.name, "--endpoint-url", s3_bucket.endpoint
    )
    assert result.code == 2, str(result)
    assert "--secret-access-key-file" in result.stderr and "--aws-profile" in result.stderr


def test_dest_add_from_environment_stores_keys_in_keyring(
    new_plan: Callable[..., Plan], s3_bucket: S3Bucket
) -> None:
    plan = new_plan()
    args = [
        "--json",
        "dest",
        "add",
        "s3",
        "s3",
        "--bucket",
        s3_bucket.name,
        "--endpoint-url",
        s3_bucket.endpoint,
    ]
    result = run_in_process(
        plan.home, *args, env={"AWS_ACCESS_KEY_ID": S3_KEY_ID, "AWS_SECRET_ACCESS_KEY": S3_SECRET}
    )
    assert result.code == 0, str(result)
    no_s3_key(result.stdout + result.stderr, "dest add output")
    home_has_no_s3_key(plan.home)
    config = Workspace(Home.resolve(plan.home)).plan.destination("s3")
    assert config.settings["credentials"] == "keyring"
    assert ok(cli(plan, "dest", "test", "s3")).json()["checked"][:4] == ["list", "write", "read", "delete"]


def test_s3_source_backup_and_restores(new_plan: Callable[..., Plan], s3_bucket: S3Bucket) -> None:
    plan = new_plan()
    objects = {"uploads/a.txt": b"alpha", "uploads/img/b.png": os.urandom(200_000), "uploads/empty": b""}
    for key, body in objects.items():
        s3_bucket.client.put_object(Bucket=s3_bucket.name, Key=key, Body=body)
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key="other/skip.txt", Body=b"not ours")
    key_file = plan.work / "s3-secret.txt"
    key_file.write_text(S3_SECRET)
    source_args = ["source", "add", "uploads", "s3", "--bucket", s3_bucket.name, "--prefix", "uploads"]
    ok(
        cli(
            plan,
            *source_args,
            "--endpoint-url",
            s3_bucket.endpoint,
            "--access-key-id",
            S3_KEY_ID,
            "--secret-access-key-file",
            str(key_file),
        )
    )
    backup = ok(cli(plan, "backup")).json()
    assert backup["sources"][0]["kind"] == "s3"

    target = plan.work / "uploads-restored"
    restored = ok(cli(plan, "restore", "latest", "--source", "uploads", "--to-dir", str(target))).json()
    assert restored["checks"][0]["ok"]
    assert {
        k: v.read_bytes()
        for k, v in ((p.relative_to(target).as_posix(), p) for p in target.rglob("*") if p.is_file())
    } == {k.removeprefix("uploads/"): v for k, v in objects.items()}

    def restore_to_bucket(bucket: str, prefix: str):
        return cli(
            plan, "restore", "latest", "--source", "uploads", "--to-bucket", bucket, "--to-prefix", prefix
        )

    refused = restore_to_bucket(s3_bucket.name, "uploads")
    assert refused.code == 2 and "live bucket" in refused.stderr
    s3_bucket.client.create_bucket(Bucket=s3_bucket.name + "-copy")
    into = ok(restore_to_bucket(s3_bucket.name + "-copy", "restored")).json()
    assert into["ok"] and into["target"] == f"s3://{s3_bucket.name}-copy/restored"
    for key, body in objects.items():
        got = s3_bucket.client.get_object(
            Bucket=s3_bucket.name + "-copy", Key="restored/" + key.removeprefix("uploads/")
        )
        assert got["Body"].read() == body
    home_has_no_s3_key(plan.home)


# --- the destination directly ------------------------------------------------------------------------
def test_compat_switch_sets_checksum_modes(s3_bucket: S3Bucket) -> None:
    dest = S3Destination(DestConfig("s3", "s3", s3_bucket.settings(compat=True)))
    assert dest.client.meta.config.request_checksum_calculation == "when_required"
    assert dest.client.meta.config.response_checksum_validation == "when_required"
    retries = dest.client.meta.config.retries
    assert retries["mode"] == "standard" and retries["total_max_attempts"] == 8
    dest.put_bytes("x", b"compat works")
    assert dest.get_bytes("x") == b"compat works"


def test_sse_and_storage_class_are_sent(s3_bucket: S3Bucket) -> None:
    dest = S3Destination(
        DestConfig("s3", "s3", s3_bucket.settings(sse="AES256", storage_class="STANDARD_IA"))
    )
    dest.put_bytes("small", b"1")
    with dest.open_write("big") as out:
        out.write(os.urandom(6 * 1024 * 1024))
    for key in ("small", "big"):
        head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=key)
        assert head["ServerSideEncryption"] == "AES256" and head["StorageClass"] == "STANDARD_IA"


def test_object_lock_is_detected_and_respected(moto_endpoint: str, aws_env: None) -> None:
    from tests.s3_fixtures import s3_client

    client = s3_client(moto_endpoint)
    name = f"drgui-locked-{os.getpid()}"
    client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    bucket = S3Bucket(moto_endpoint, name, client)
    dest = S3Destination(DestConfig("s3", "s3", bucket.settings(object_lock_days=1)))
    assert dest.object_lock_enabled
    dest.put_bytes("locked.bin", b"keep me")
    head = client.head_object(Bucket=name, Key="locked.bin")
    assert head["ObjectLockMode"] == "GOVERNANCE"
    with pytest.raises(DestinationError, match="object-locked"):
        dest.delete("locked.bin")
    assert dest.get_bytes("locked.bin") == b"keep me"
    assert "object lock: enabled" in S3Destination(DestConfig("s3", "s3", bucket.settings())).test()


def test_failed_multipart_is_aborted(s3_bucket: S3Bucket) -> None:
    dest = S3Destination(DestConfig("s3", "s3", s3_bucket.settings()))
    with pytest.raises(ValueError), dest.open_write("snap/part.age") as out:
        out.write(os.urandom(12 * 1024 * 1024))
        assert len(s3_bucket.uploads()) == 1
        raise ValueError("pipeline failed")
    assert s3_bucket.uploads() == [] and s3_bucket.list_keys() == []


def test_unreachable_endpoint_error_names_bucket_and_fix(aws_env: None) -> None:
    settings = {
        "bucket": "acme-backups",
        "endpoint_url": f"http://127.0.0.1:{closed_port()}",
        "credentials": "environment",
        "max_attempts": 1,
    }
    dest = S3Destination(DestConfig("offsite", "s3", settings))
    with pytest.raises(DestinationError) as raised:
        dest.snapshot_ids()
    text = str(raised.value)
    assert "'offsite'" in text and "acme-backups" in text and "Fix:" in text


def test_missing_bucket_error_names_bucket_and_fix(s3_bucket: S3Bucket) -> None:
    missing = S3Destination(
        DestConfig("gone", "s3", s3_bucket.settings(prefix="x", bucket="drgui-no-such-bucket"))
    )
    with pytest.raises(DestinationError, match=r"'gone'.*drgui-no-such-bucket.*does not exist") as raised:
        missing.put_bytes("x", b"1")
    assert "Fix:" in str(raised.value)


def test_postgres_restore_from_s3_only(
    new_plan: Callable[..., Plan], s3_bucket: S3Bucket, pg18_db: PgDatabase
) -> None:
    pg18_db.execute(
        "CREATE TABLE invoices (id int PRIMARY KEY, total numeric); INSERT INTO invoices SELECT g, g * 1.5 FROM generate_series(1, 500) g;"
    )
    plan = new_plan()
    ok(cli(plan, "source", "add", "db", "postgres", "--dsn", pg18_db.dsn_with_password))
    add_s3_dest(plan, s3_bucket.endpoint, s3_bucket.name)
    backup = ok(cli(plan, "backup")).json()
    assert backup["sources"][0]["tables"] >= 1
    shutil.rmtree(plan.dest_dir)
    ok(cli(plan, "verify", "latest", "--deep", "--dest", "s3"))
    target = pg18_db.cluster.url(pg18_db.dbname + "_from_s3", password=pg18_db.password)
    restored = ok(cli(plan, "restore", "latest", "--source", "db", "--to-dsn", target, "--dest", "s3")).json()
    assert restored["ok"] and any(c["name"] == "rows public.invoices" and c["ok"] for c in restored["checks"])
    with pg18_db.cluster.connect(pg18_db.dbname + "_from_s3") as conn:
        assert conn.execute("SELECT count(*) FROM invoices").fetchone()[0] == 500
    pg18_db.cluster.drop_database(pg18_db.dbname + "_from_s3")
    home_has_no_s3_key(plan.home)


@pytest.mark.parametrize(
    ("faults", "counter"),
    [({"slowdown_fraction": 0.5}, "slowdowns"), ({"stall_fraction": 0.3, "stall_seconds": 3}, "stalls")],
)
def test_throttling_and_stalls_are_retried(
    s3_bucket: S3Bucket, faults: dict[str, float], counter: str
) -> None:
    host, port = s3_bucket.endpoint.removeprefix("http://").split(":")
    with FaultProxy((host, int(port)), seed=3, lifetime=120, **faults) as proxy:
        settings = s3_bucket.settings(endpoint_url=proxy.endpoint, read_timeout=1, connect_timeout=1)
        for number in range(6):  # a new client each time: new connections, so the proxy decides again
            dest = S3Destination(DestConfig("flaky", "s3", settings))
            dest.put_bytes(f"k{number}", b"payload %d" % number)
            assert dest.get_bytes(f"k{number}") == b"payload %d" % number
    assert getattr(proxy.stats, counter) > 0, proxy.stats
