"""drgui env-to-drive: .env copies on a drive (current/previous), key diffs, crash safety, restore."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from drgui.core.engine.crypto import decrypt_bytes, unwrap_identity
from drgui.core.ops.envsync import repair
from drgui.core.plan.home import Home
from drgui.core.plan.workspace import Workspace
from tests.engine_fixtures import ENV_SECRETS, PASSPHRASE, Plan, cli_env, ok, write_env_file

AGE = Path("/usr/bin/age")


@pytest.fixture
def drive_plan(new_plan, tmp_path: Path) -> tuple[Plan, Path, Path]:
    """A plan with an env source and a plain directory registered as a drive; (plan, env file, stick)."""
    plan = new_plan()
    env_file = write_env_file(tmp_path / "app.env")
    ok(plan.cli("--json", "source", "add", "env", "env", "--path", str(env_file)))
    stick = tmp_path / "stick"
    stick.mkdir()
    ok(plan.cli("--json", "dest", "add", "key", "drive", "--path", str(stick), "--allow-unencrypted"))
    return plan, env_file, stick


def env_dir(plan: Plan, stick: Path) -> Path:
    plan_id = Workspace(Home.resolve(plan.home)).plan.plan_id
    return stick / "drgui" / plan_id / "env" / "env"


def identity(plan: Plan) -> str:
    return Workspace(Home.resolve(plan.home)).identity()


def age_decrypt(key_file: Path, path: Path) -> bytes:
    return subprocess.run(
        [str(AGE), "-d", "-i", str(key_file), str(path)], capture_output=True, check=True, timeout=60
    ).stdout


def test_two_syncs_keep_current_and_previous_decryptable_by_stock_age(drive_plan, tmp_path: Path) -> None:
    plan, env_file, stick = drive_plan
    first = env_file.read_bytes()
    result = ok(plan.cli("--json", "env-to-drive")).json()
    assert result["sources"][0]["status"] == "first"
    changed = first.replace(ENV_SECRETS["STRIPE_SECRET_KEY"].encode(), b"sk_live_rotated") + b"NEW_KEY=x\n"
    changed = changed.replace(b"SESSION_SECRET=", b"#SESSION_SECRET=")
    env_file.write_bytes(changed)
    run = ok(plan.cli("env-to-drive"))  # human text: names the keys, never a value (run_cli checks values)
    assert "STRIPE_SECRET_KEY" in run.stdout and "NEW_KEY" in run.stdout and "SESSION_SECRET" in run.stdout
    assert "sk_live_rotated" not in run.stdout
    assert "Safe to unplug" in run.stdout or "safe to unplug" in run.stdout

    # The drive alone plus the passphrase: unwrap its identity.age, then the stock age CLI.
    root = env_dir(plan, stick).parents[1]
    key_file = tmp_path / "key.txt"
    key_file.write_text(unwrap_identity((root / "identity.age").read_bytes(), PASSPHRASE).key_file_text())
    assert age_decrypt(key_file, env_dir(plan, stick) / "current" / "env.age") == changed
    assert age_decrypt(key_file, env_dir(plan, stick) / "previous" / "env.age") == first
    meta = (env_dir(plan, stick) / "current" / "meta.json").read_bytes()
    assert b"NEW_KEY" in meta and b"sk_live_rotated" not in meta


def test_diff_json_names_added_removed_changed(drive_plan) -> None:
    plan, env_file, _stick = drive_plan
    ok(plan.cli("--json", "env-to-drive"))
    text = env_file.read_text().replace(ENV_SECRETS["DATABASE_URL"], "postgresql://other")
    env_file.write_text(text.replace("SESSION_SECRET=", "SESSION_SECRET_V2=") + "EXTRA=1\n")
    entry = ok(plan.cli("--json", "env-to-drive")).json()["sources"][0]
    assert entry["status"] == "written"
    assert entry["changed"] == ["DATABASE_URL"]
    assert entry["added"] == ["SESSION_SECRET_V2", "EXTRA"]
    assert entry["removed"] == ["SESSION_SECRET"]
    history = ok(plan.cli("--json", "history")).stdout
    assert "drive_sync" in history


def test_unchanged_env_does_not_rotate_previous(drive_plan) -> None:
    plan, env_file, stick = drive_plan
    first = env_file.read_bytes()
    ok(plan.cli("--json", "env-to-drive"))
    env_file.write_bytes(first + b"SECOND=2\n")
    ok(plan.cli("--json", "env-to-drive"))
    again = ok(plan.cli("--json", "env-to-drive")).json()["sources"][0]
    assert again["status"] == "unchanged" and again["changed"] == again["added"] == []
    key = identity(plan)
    assert decrypt_bytes((env_dir(plan, stick) / "previous" / "env.age").read_bytes(), key) == first


def test_stale_fingerprint_is_none_when_up_to_date_and_changes_with_the_env(drive_plan) -> None:
    from drgui.core.ops.envsync import stale_fingerprint
    from drgui.core.plan.home import Home
    from drgui.core.plan.workspace import Workspace

    plan, env_file, stick = drive_plan
    ws = Workspace(Home(plan.home))
    never_synced = stale_fingerprint(ws, "key")
    assert never_synced is not None
    ok(plan.cli("--json", "env-to-drive"))
    assert stale_fingerprint(ws, "key") is None
    env_file.write_bytes(env_file.read_bytes() + b"SECOND=2\n")
    changed = stale_fingerprint(ws, "key")
    assert changed is not None and changed != never_synced
    assert stale_fingerprint(ws, "key") == changed  # the same content: the same fingerprint
    stick.rename(stick.with_name("unplugged"))
    assert stale_fingerprint(ws, "key") is None  # absent: nothing to act on


def test_restore_current_and_previous(drive_plan, tmp_path: Path) -> None:
    plan, env_file, _stick = drive_plan
    first = env_file.read_bytes()
    ok(plan.cli("--json", "env-to-drive"))
    env_file.write_bytes(first + b"SECOND=2\n")
    ok(plan.cli("--json", "env-to-drive"))
    ok(plan.cli("--json", "env-to-drive", "--restore", "previous", "--to-dir", str(tmp_path / "prev")))
    assert (tmp_path / "prev" / "app.env").read_bytes() == first
    passphrase_args = ("--passphrase-file", str(plan.passphrase_file))
    ok(
        plan.cli(
            "--json",
            "env-to-drive",
            "--restore",
            "current",
            "--to-dir",
            str(tmp_path / "cur"),
            *passphrase_args,
        )
    )
    assert (tmp_path / "cur" / "app.env").read_bytes() == env_file.read_bytes()
    refused = plan.cli("--json", "env-to-drive", "--restore", "current", "--to-dir", str(tmp_path / "cur"))
    assert refused.code == 2, str(refused)


def test_drive_is_also_a_snapshot_destination(drive_plan, tmp_path: Path) -> None:
    plan, env_file, stick = drive_plan
    ok(plan.cli("--json", "backup"))
    assert list((env_dir(plan, stick).parents[1] / "snapshots").iterdir())
    restored = ok(
        plan.cli(
            "--json", "restore", "latest", "--source", "env", "--to-dir", str(tmp_path / "r"), "--dest", "key"
        )
    )
    assert restored.json()["ok"]
    assert (tmp_path / "r" / "app.env").read_bytes() == env_file.read_bytes()


def test_absent_drive_exits_3(drive_plan) -> None:
    plan, _env_file, stick = drive_plan
    stick.rename(stick.with_name("unplugged"))
    result = plan.cli("--json", "env-to-drive")
    assert result.code == 3, str(result)
    assert "not there" in result.stderr


DRIVER = r"""
import os, signal, sys
from drgui.core.ops import envsync
from drgui.core.engine import fsutil
from drgui.core.plan.home import Home
from drgui.core.plan.workspace import Workspace

crash_at = int(sys.argv[2])
calls = 0
real = fsutil.fsync_dir

def counting_fsync_dir(path):
    global calls
    real(path)
    calls += 1
    if calls == crash_at:
        os.kill(os.getpid(), signal.SIGKILL)

fsutil.fsync_dir = counting_fsync_dir
envsync.fsync_dir = counting_fsync_dir
print("ready", flush=True)
envsync.sync_env_to_drive(Workspace(Home.resolve(sys.argv[1])))
"""


def _run_driver(home: Path, crash_at: int, timeout: float | None = None) -> int:
    process = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(home), str(crash_at)],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    process.stdout.readline()  # imports done: the kill lands in the sync itself
    if timeout is not None:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    code = process.wait(timeout=120)
    process.stdout.close()
    assert process.stderr is not None
    stderr = process.stderr.read()
    process.stderr.close()
    assert code in (0, -signal.SIGKILL), stderr
    return code


def test_kill_9_never_leaves_current_missing_or_unreadable(drive_plan) -> None:
    plan, env_file, stick = drive_plan
    versions = [env_file.read_bytes(), env_file.read_bytes() + b"ROTATED=1\n"]
    ok(plan.cli("--json", "env-to-drive"))
    key = identity(plan)
    current = env_dir(plan, stick) / "current" / "env.age"

    def check() -> None:
        assert decrypt_bytes(current.read_bytes(), key) in versions

    # Every step boundary: kill right after the n-th durable step, until a run gets through.
    for round_number in range(2):
        for crash_at in range(1, 60):
            env_file.write_bytes(versions[(crash_at + round_number) % 2])
            code = _run_driver(plan.home, crash_at)
            check()
            if code == 0:
                break
        else:
            pytest.fail("the sync never finished within 60 steps")
    # Random moments.
    rng = random.Random(1234)
    for attempt in range(8):
        env_file.write_bytes(versions[attempt % 2])
        _run_driver(plan.home, 0, timeout=rng.uniform(0, 0.08))
        check()
    # A normal run afterwards repairs and rotates as usual.
    env_file.write_bytes(versions[0])
    ok(plan.cli("--json", "env-to-drive"))
    env_file.write_bytes(versions[1])
    ok(plan.cli("--json", "env-to-drive"))
    assert decrypt_bytes(current.read_bytes(), key) == versions[1]
    assert decrypt_bytes((current.parent.parent / "previous" / "env.age").read_bytes(), key) == versions[0]
    leftovers = {p.name for p in env_dir(plan, stick).iterdir()}
    assert leftovers == {"current", "previous"}, leftovers
    assert repair(env_dir(plan, stick)) == []
