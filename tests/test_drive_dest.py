"""Drive destinations: registered by UUID on recorded lsblk output, found again at another mount path."""

from __future__ import annotations

from pathlib import Path

import pytest

from drgui.core.engine.destinations.drive import DriveDestination
from drgui.core.plan.config import DestConfig
from tests.engine_fixtures import Plan, fake_udisksctl, ok, write_env_file

DATA = Path(__file__).parent / "data" / "drives"
INNER_UUID = "c2d14b6e-8f3a-4a71-b5e9-3f0c7d2a9e18"
EXFAT_UUID = "4A1B-7C2E"


def recorded(tmp_path: Path, name: str, mounts: dict[str, Path]) -> Path:
    """A copy of a recorded lsblk output whose mount points are real directories under tmp_path."""
    text = (DATA / name).read_text()
    for recorded_mount, real in mounts.items():
        real.mkdir(parents=True, exist_ok=True)
        assert recorded_mount in text
        text = text.replace(f'"{recorded_mount}"', f'"{real}"')
    path = tmp_path / f"recorded-{name}"
    path.write_text(text)
    return path


def test_same_drive_found_by_uuid_at_another_mount_path(new_plan, tmp_path: Path) -> None:
    plan: Plan = new_plan()
    tmp = tmp_path.resolve()
    first_mount, second_mount = tmp / "media" / "DRKEY", tmp / "run-media" / "DRKEY1"
    first = recorded(tmp, "lsblk_luks_mounted.json", {"/media/alice/DRKEY": first_mount})
    second = recorded(tmp, "lsblk_luks_mounted_second_insert.json", {"/run/media/alice/DRKEY1": second_mount})

    env_file = write_env_file(tmp / "app.env")
    ok(plan.cli("--json", "source", "add", "env", "env", "--path", str(env_file)))
    added = ok(
        plan.cli(
            "--json",
            "dest",
            "add",
            "key",
            "drive",
            "--uuid",
            INNER_UUID,
            env={"DRGUI_DRIVES_JSON": str(first)},
        )
    )
    assert "DRKEY" in added.json()["description"]
    ok(plan.cli("--json", "backup", env={"DRGUI_DRIVES_JSON": str(first)}))
    assert (plan.home / "config.toml").read_text().count(str(first_mount)) == 0  # no mount path stored

    # Next insert: another device name and mount point; the same files (simulated by a move).
    second_mount.rmdir()
    first_mount.rename(second_mount)
    listing = ok(
        plan.cli("--json", "snapshots", "--dest", "key", env={"DRGUI_DRIVES_JSON": str(second)})
    ).json()
    assert len(listing) == 1
    # Registering by --path on the new mount point recognises the same drive by UUID.
    again = ok(
        plan.cli(
            "--json",
            "dest",
            "add",
            "key2",
            "drive",
            "--path",
            str(second_mount),
            env={"DRGUI_DRIVES_JSON": str(second)},
        )
    )
    assert INNER_UUID in again.json()["description"]
    assert "key2" in (plan.home / "config.toml").read_text()
    assert (plan.home / "config.toml").read_text().count(INNER_UUID) == 2

    # Unplugged: the plan still lists it, without errors; syncing exits 3.
    empty = recorded(tmp, "lsblk_no_removable.json", {})
    status = ok(plan.cli("--json", "dest", "list", env={"DRGUI_DRIVES_JSON": str(empty)}))
    assert "not plugged in" in status.stdout
    absent = plan.cli("--json", "env-to-drive", "--drive", "key", env={"DRGUI_DRIVES_JSON": str(empty)})
    assert absent.code == 3, str(absent)


def test_unencrypted_drive_refused_with_how_to_encrypt(new_plan, tmp_path: Path) -> None:
    plan: Plan = new_plan()
    tmp = tmp_path.resolve()
    exfat = recorded(tmp, "lsblk_exfat.json", {"/media/alice/TRANSFER": tmp / "TRANSFER"})
    env = {"DRGUI_DRIVES_JSON": str(exfat)}
    refused = plan.cli("--json", "dest", "add", "key", "drive", "--uuid", EXFAT_UUID, env=env)
    assert refused.code == 2, str(refused)
    assert "not encrypted" in refused.stderr and "cryptsetup luksFormat /dev/sdc1" in refused.stderr
    assert "--allow-unencrypted" in refused.stderr
    ok(
        plan.cli(
            "--json", "dest", "add", "key", "drive", "--uuid", EXFAT_UUID, "--allow-unencrypted", env=env
        )
    )


def test_plain_directory_needs_the_flag(new_plan, tmp_path: Path) -> None:
    plan: Plan = new_plan()
    folder = tmp_path / "plain"
    folder.mkdir()
    env = {"DRGUI_DRIVES_JSON": str(DATA / "lsblk_no_removable.json")}
    refused = plan.cli("--json", "dest", "add", "key", "drive", "--path", str(folder), env=env)
    assert refused.code == 2, str(refused)
    assert "Encrypt it" in refused.stderr


def test_uuid_not_plugged_in_exits_3(new_plan) -> None:
    plan: Plan = new_plan()
    env = {"DRGUI_DRIVES_JSON": str(DATA / "lsblk_no_removable.json")}
    absent = plan.cli("--json", "dest", "add", "key", "drive", "--uuid", INNER_UUID, env=env)
    assert absent.code == 3, str(absent)
    assert "not plugged in" in absent.stderr


def test_available_is_false_when_absent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRGUI_DRIVES_JSON", str(DATA / "lsblk_no_removable.json"))
    by_uuid = DriveDestination(DestConfig("key", "drive", {"uuid": INNER_UUID, "plan_id": "p1"}))
    assert not by_uuid.available()
    assert "not plugged in" in by_uuid.describe()
    plain = DriveDestination(DestConfig("k", "drive", {"path": str(tmp_path / "gone"), "plan_id": "p1"}))
    assert not plain.available()
    (tmp_path / "gone").mkdir()
    assert plain.available()
    assert plain.root == tmp_path / "gone" / "drgui" / "p1"


def luks_drive_plan(new_plan, tmp: Path, fail: str = "") -> tuple[Plan, dict[str, str], Path]:
    """A plan with an env source and the recorded LUKS stick registered by UUID; a fake udisksctl."""
    plan: Plan = new_plan()
    mount = tmp / "media" / "DRKEY"
    listing = recorded(tmp, "lsblk_luks_mounted.json", {"/media/alice/DRKEY": mount})
    ok(plan.cli("--json", "source", "add", "env", "env", "--path", str(write_env_file(tmp / "app.env"))))
    env = {"DRGUI_DRIVES_JSON": str(listing)}
    ok(plan.cli("--json", "dest", "add", "key", "drive", "--uuid", INNER_UUID, env=env))
    env["PATH"], log = fake_udisksctl(tmp, fail)
    return plan, env, log


def test_env_to_drive_eject_unmounts_locks_and_powers_off(new_plan, tmp_path: Path) -> None:
    plan, env, log = luks_drive_plan(new_plan, tmp_path.resolve())
    result = ok(plan.cli("--json", "env-to-drive", "--eject", env=env)).json()
    assert result["ejected"] is True and result["sources"][0]["status"] == "first"
    assert log.read_text().splitlines() == [
        "unmount -b /dev/mapper/luks-0a4e8f7c-6d1b-4c2e-9f3a-5b7d8e1c2a46",
        "lock -b /dev/sdb1",
        "power-off -b /dev/sdb",
    ]


def test_eject_failure_keeps_the_sync_and_says_what_to_do(new_plan, tmp_path: Path) -> None:
    plan, env, log = luks_drive_plan(new_plan, tmp_path.resolve(), fail="lock")
    result = plan.cli("--json", "env-to-drive", "--eject", env=env)
    assert result.code == 4, str(result)
    document = result.json()
    assert document["ejected"] is False and document["sources"][0]["status"] == "first"
    assert "`udisksctl lock -b /dev/sdb1`" in document["eject_error"]
    assert "Device is busy" in document["eject_error"]
    assert "file manager" in document["eject_hint"]
    assert log.read_text().splitlines()[-1].startswith("lock")  # stopped there: no power-off


def test_eject_of_a_plain_directory_is_refused_before_writing(new_plan, tmp_path: Path) -> None:
    plan: Plan = new_plan()
    stick = tmp_path / "stick"
    stick.mkdir()
    ok(plan.cli("--json", "source", "add", "env", "env", "--path", str(write_env_file(tmp_path / "a.env"))))
    ok(plan.cli("--json", "dest", "add", "key", "drive", "--path", str(stick), "--allow-unencrypted"))
    result = plan.cli("--json", "env-to-drive", "--eject")
    assert result.code == 2, str(result)
    assert "plain directory" in result.stderr + result.stdout
    assert not any(stick.rglob("env.age"))


def test_snapshot_that_does_not_fit_on_the_drive_is_not_written_and_comes_later(
    new_plan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from drgui.core.ops.backup import run_backup
    from drgui.core.plan.home import Home
    from drgui.core.plan.workspace import Workspace
    from tests.engine_fixtures import write_folder

    plan: Plan = new_plan()
    stick = tmp_path / "stick"
    stick.mkdir()
    ok(plan.cli("--json", "source", "add", "files", "folder", "--path", str(write_folder(tmp_path / "up"))))
    ok(plan.cli("--json", "dest", "add", "key", "drive", "--path", str(stick), "--allow-unencrypted"))
    ws = Workspace(Home(plan.home))
    monkeypatch.setattr(DriveDestination, "free_space", lambda self: 10_000_000)  # 10 MB: below the margin

    first = run_backup(ws)
    [drive] = [d for d in first.destinations if d.name == "key"]
    assert not drive.ok and drive.queued
    assert "needs" in drive.error and "MB free" in drive.error and "not copied" in drive.error
    assert ws.destination("key").snapshot_ids() == []
    assert not [
        p for p in stick.rglob("*") if p.is_file() and p.name != "identity.age"
    ]  # nothing half-written

    monkeypatch.undo()  # space freed: the next backup copies the queued snapshot too
    ws = Workspace(Home(plan.home))
    second = run_backup(ws)
    assert all(d.ok for d in second.destinations)
    assert sorted(ws.destination("key").snapshot_ids()) == sorted([first.snapshot_id, second.snapshot_id])
