"""Append-only offsite (issue 18, items 2 and 3): Object Lock retention covering the policy, a write-only
everyday key, a prune key used only by prune, `dest test` saying what each key can do, and the status
saying whether a stolen laptop could delete the offsite backups.

The keys are real IAM users of a moto server that enforces their policies. Enforcing is global to a
moto process, so this server runs in a process of its own (the session's ThreadedMotoServer stays
open for everyone else): started with auth off, users and buckets created, then `/moto-api/reset-auth 0`.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from drgui.core.engine.destinations.s3 import policy_cover_days
from drgui.core.plan.home import Home
from drgui.core.plan.workspace import Workspace
from drgui.core.timing.retention import Policy
from tests.engine_fixtures import Plan, ok, write_env_file, write_folder

pytestmark = [pytest.mark.integration]

ROOT_KEY = ("AKIADRGUIROOT0000001", "drgui-root-secret-not-checked-before-auth")
EVERYDAY_ACTIONS = [
    "s3:ListBucket",
    "s3:ListBucketVersions",
    "s3:ListBucketMultipartUploads",
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:PutObject",
    "s3:PutObjectRetention",
    "s3:GetObjectRetention",
    "s3:GetBucketObjectLockConfiguration",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
]
_buckets = itertools.count()


@dataclass
class IamS3:
    endpoint: str
    keys: dict[str, tuple[str, str]]  # user -> (key id, secret): admin, everyday, prune

    def client(self, user: str) -> Any:
        import boto3

        key_id, secret = self.keys[user]
        return boto3.session.Session(
            aws_access_key_id=key_id, aws_secret_access_key=secret, region_name="us-east-1"
        ).client("s3", endpoint_url=self.endpoint)

    def new_bucket(self, *, lock: bool = True) -> str:
        name = f"drgui-lock-{os.getpid()}-{next(_buckets)}"
        self.client("admin").create_bucket(Bucket=name, ObjectLockEnabledForBucket=lock)
        return name


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(url: str, deadline: float) -> None:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def _user(iam: Any, name: str, actions: list[str]) -> tuple[str, str]:
    iam.create_user(UserName=name)
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
    iam.put_user_policy(UserName=name, PolicyName=f"{name}-s3", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


@pytest.fixture(scope="module")
def iam_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IamS3]:
    import boto3

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "INITIAL_NO_AUTH"))}
    log = (tmp_path_factory.mktemp("moto-iam") / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{endpoint}/moto-api/data.json", time.monotonic() + 60)
        iam = boto3.session.Session(
            aws_access_key_id=ROOT_KEY[0], aws_secret_access_key=ROOT_KEY[1], region_name="us-east-1"
        ).client("iam", endpoint_url=endpoint)
        keys = {
            "admin": _user(iam, "admin", ["s3:*"]),
            "everyday": _user(iam, "everyday", EVERYDAY_ACTIONS),
            "prune": _user(iam, "prune", [*EVERYDAY_ACTIONS, "s3:DeleteObject", "s3:DeleteObjectVersion"]),
        }
        request = urllib.request.Request(
            f"{endpoint}/moto-api/reset-auth",
            data=b"0",
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request, timeout=10):
            pass
        yield IamS3(endpoint, keys)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def _secret_file(plan: Plan, user: str, secret: str) -> Path:
    path = plan.work / f"{user}.secret"
    path.write_text(secret + "\n")
    path.chmod(0o600)
    return path


AWS_ENV = {"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}


def add_s3(plan: Plan, s3: IamS3, name: str, bucket: str, user: str, *extra: str) -> dict[str, Any]:
    key_id, secret = s3.keys[user]
    result = plan.cli(
        "--json",
        "dest",
        "add",
        name,
        "s3",
        "--bucket",
        bucket,
        "--prefix",
        name,
        "--endpoint-url",
        s3.endpoint,
        "--region",
        "us-east-1",
        "--access-key-id",
        key_id,
        "--secret-access-key-file",
        str(_secret_file(plan, user, secret)),
        *extra,
        env=AWS_ENV,
    )
    return dict(ok(result).json())


def files_sources(plan: Plan) -> None:
    folder = write_folder(plan.work / "uploads")
    ok(plan.cli("--json", "source", "add", "files", "folder", "--path", str(folder)))
    ok(
        plan.cli(
            "--json", "source", "add", "env", "env", "--path", str(write_env_file(plan.work / "app.env"))
        )
    )


def versions(s3: IamS3, bucket: str, prefix: str = "") -> list[dict[str, Any]]:
    response = s3.client("admin").list_object_versions(Bucket=bucket, Prefix=prefix)
    return list(response.get("Versions", [])) + list(response.get("DeleteMarkers", []))


def test_cover_days_of_policies() -> None:
    assert policy_cover_days(Policy(daily=30, monthly=12)) == 372
    assert policy_cover_days(Policy(daily=7)) == 7
    assert policy_cover_days(Policy(last=3)) == 3
    assert policy_cover_days(Policy(within="2m")) == 62
    assert policy_cover_days(Policy(weekly=-1)) == 366
    assert policy_cover_days(Policy()) == 366


def test_object_lock_write_only_key_and_prune_key(new_plan, iam_s3: IamS3) -> None:
    plan: Plan = new_plan()
    bucket = iam_s3.new_bucket()
    added = add_s3(plan, iam_s3, "offsite", bucket, "everyday")
    # Detected on `dest add`; the default S3 policy (30 daily, 12 monthly) plus the 7-day margin.
    assert added["object_lock"] == {"mode": "governance", "days": 372 + 7}
    assert [(k["key"], k["delete"]) for k in added["keys"]] == [("everyday", False)]
    assert added["stolen_laptop_could_delete"] is False

    ws = Workspace(Home(plan.home))
    ws.plan.destination("offsite").retention = {"last": 1}  # keeps 1 day at most: locked 1 + 7 days
    ws.save()
    files_sources(plan)
    start = datetime.now(UTC)
    first = ok(plan.cli("--json", "backup", env=AWS_ENV)).json()["snapshot"]
    second = ok(plan.cli("--json", "backup", env=AWS_ENV)).json()["snapshot"]

    admin = iam_s3.client("admin")
    snapshot_objects = [v for v in versions(iam_s3, bucket) if "/snapshots/" in v["Key"]]
    assert {first, second} <= {v["Key"].split("/snapshots/")[1].split("/")[0] for v in snapshot_objects}
    for version in versions(iam_s3, bucket):
        if ".drgui-test" in version["Key"]:
            continue  # dest test's own object, written without retention so it can be deleted
        head = admin.head_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])
        assert head["ObjectLockMode"] == "GOVERNANCE", version["Key"]
        assert head["ObjectLockRetainUntilDate"] >= start + timedelta(days=8) - timedelta(minutes=5), version[
            "Key"
        ]

    # The everyday key (the one on the laptop) cannot delete, with or without a version id.
    from botocore.exceptions import ClientError

    everyday = iam_s3.client("everyday")
    target = snapshot_objects[0]
    for extra in ({}, {"VersionId": target["VersionId"]}):
        with pytest.raises(ClientError) as denied:
            everyday.delete_object(Bucket=bucket, Key=target["Key"], **extra)
        assert denied.value.response["Error"]["Code"] == "AccessDenied"

    # While retention holds, prune removes nothing there: locked snapshots are kept, and said so.
    prune_env = {
        **AWS_ENV,
        "DRGUI_PRUNE_ACCESS_KEY_ID": iam_s3.keys["prune"][0],
        "DRGUI_PRUNE_SECRET_ACCESS_KEY": iam_s3.keys["prune"][1],
    }
    held = ok(plan.cli("--json", "prune", "--dest", "offsite", env=prune_env)).json()
    assert held["remove"] == [] and any("object-locked" in r for r in held["reasons"][first])

    # Once retention has passed (moved into the past by the bucket owner), prune with the prune key removes
    # exactly what the policy drops: every version of the older snapshot, nothing of the newer.
    for version in versions(iam_s3, bucket):
        admin.put_object_retention(
            Bucket=bucket,
            Key=version["Key"],
            VersionId=version["VersionId"],
            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": datetime(2020, 1, 1, tzinfo=UTC)},
            BypassGovernanceRetention=True,
        )
    planned = ok(plan.cli("--json", "prune", "--dest", "offsite", "--dry-run", env=prune_env)).json()
    assert planned["remove"] == [first]
    # The everyday key alone cannot carry it out: the removal is refused and reported, nothing goes.
    refused = ok(plan.cli("--json", "prune", "--dest", "offsite", env=AWS_ENV)).json()
    assert refused["remove"] == [] and first in refused["destinations"][0]["skipped"]
    assert [
        v for v in versions(iam_s3, bucket, f"offsite/{ws.plan.plan_id}/snapshots/{first}/") if "Size" in v
    ]
    done = ok(plan.cli("--json", "prune", "--dest", "offsite", env=prune_env)).json()
    assert done["remove"] == [first]
    assert versions(iam_s3, bucket, f"offsite/{ws.plan.plan_id}/snapshots/{first}/") == []
    assert versions(iam_s3, bucket, f"offsite/{ws.plan.plan_id}/snapshots/{second}/")
    listed = ok(plan.cli("--json", "snapshots", "--dest", "offsite", env=AWS_ENV)).json()
    assert [s["id"] for s in listed] == [second]


def test_dest_test_and_status_say_which_key_can_delete(new_plan, iam_s3: IamS3) -> None:
    plan: Plan = new_plan()
    bucket = iam_s3.new_bucket()
    add_s3(plan, iam_s3, "wo", bucket, "everyday")
    add_s3(plan, iam_s3, "full", bucket, "prune")
    add_s3(
        plan,
        iam_s3,
        "stored",
        bucket,
        "everyday",
        "--prune-access-key-id",
        iam_s3.keys["prune"][0],
        "--prune-secret-access-key-file",
        str(_secret_file(plan, "prune", iam_s3.keys["prune"][1])),
        "--object-lock-mode",
        "compliance",
        "--object-lock-margin-days",
        "2",
    )
    wo = ok(plan.cli("--json", "dest", "test", "wo", env=AWS_ENV))
    assert [(k["key"], k["delete"]) for k in wo.json()["keys"]] == [("everyday", False)]
    assert "everyday key: cannot delete" in wo.json()["checked"]
    full = ok(plan.cli("--json", "dest", "test", "full", env=AWS_ENV))
    assert [(k["key"], k["delete"]) for k in full.json()["keys"]] == [("everyday", True)]
    assert "everyday key: can delete" in full.json()["checked"]
    stored = ok(plan.cli("--json", "dest", "test", "stored", env=AWS_ENV)).json()
    assert [(k["key"], k["delete"]) for k in stored["keys"]] == [("everyday", False), ("prune", True)]
    assert stored["object_lock"] == {"mode": "compliance", "days": 372 + 2}

    status = ok(plan.cli("--json", "status", env=AWS_ENV)).json()
    answers = {a["name"]: a for a in status["offsite"]}
    assert answers["wo"]["stolen_laptop_could_delete"] is False
    assert answers["full"]["stolen_laptop_could_delete"] is True
    assert answers["stored"]["stolen_laptop_could_delete"] is False  # compliance: no key can
    assert "A stolen laptop could delete your offsite backups at 'full'" in " ".join(status["reasons"])
    said = ok(plan.cli("status", env=AWS_ENV))
    human = said.stdout + said.stderr
    assert "A stolen laptop could not delete your offsite backups at 'wo'" in human
    assert "A stolen laptop could delete your offsite backups at 'full'" in human
    # The app's Settings shows both keys, the Object Lock and the same answer.
    pytest.importorskip("PySide6")
    from drgui.gui.pages.settings import offsite_text

    settings_text = offsite_text(Workspace(Home(plan.home)))
    assert "<b>stored</b>: everyday key keyring; prune key stored on this machine" in settings_text
    assert "Object Lock compliance, 374 days" in settings_text
    assert "prune key not on this machine" in settings_text
    assert "A stolen laptop could delete your offsite backups at 'full'" in settings_text


def test_mode_on_a_bucket_without_object_lock_is_refused(new_plan, iam_s3: IamS3) -> None:
    plan: Plan = new_plan()
    bucket = iam_s3.new_bucket(lock=False)
    key_id, secret = iam_s3.keys["everyday"]
    result = plan.cli(
        "--json", "dest", "add", "plain", "s3", "--bucket", bucket, "--endpoint-url", iam_s3.endpoint,
        "--access-key-id", key_id, "--secret-access-key-file", str(_secret_file(plan, "everyday", secret)),
        "--object-lock-mode", "compliance", env=AWS_ENV,
    )  # fmt: skip
    assert result.code == 2, str(result)
    assert "has no Object Lock" in result.stderr and "docs/offsite.md" in result.stderr
    added = add_s3(plan, iam_s3, "plain", bucket, "everyday")
    assert added["object_lock"] is None and added["stolen_laptop_could_delete"] is False
