"""drgui.core.platform.drives: parsers over recorded tool output, list_drives with a fake runner, checks."""

from __future__ import annotations

import plistlib
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from drgui.core.errors import EXIT_ENVIRONMENT, EXIT_USAGE, EnvironmentNotReady, UsageError
from drgui.core.platform import drives
from drgui.core.platform.drives import (
    Drive,
    check_encryption,
    drive_for_path,
    eject_commands,
    find_drive,
    list_drives,
    lsblk_command,
    parse_diskutil,
    parse_lsblk,
    parse_windows,
    require_drive,
)

DATA = Path(__file__).parent / "data" / "drives"

LUKS_UUID = "0a4e8f7c-6d1b-4c2e-9f3a-5b7d8e1c2a46"
INNER_UUID = "c2d14b6e-8f3a-4a71-b5e9-3f0c7d2a9e18"
EXFAT_UUID = "4A1B-7C2E"
APFS_UUID = "6F1E9A42-3B7C-4D85-A2E0-9C4B1F7D3E68"


class Usage(NamedTuple):
    total: int
    used: int
    free: int


def text(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def raw(name: str) -> bytes:
    return (DATA / name).read_bytes()


def lsblk(name: str) -> list[Drive]:
    return parse_lsblk(text(name))


def only(found: list[Drive]) -> Drive:
    assert len(found) == 1, found
    return found[0]


class FakeRunner:
    """Answers argv prefixes with recorded output; remembers every call and its options."""

    def __init__(self, answers: dict[tuple[str, ...], bytes | Callable[[], Any]]) -> None:
        self.answers = answers
        self.calls: list[tuple[list[str], dict[str, Any]]] = []

    def __call__(self, argv: list[str], **options: Any) -> subprocess.CompletedProcess[bytes]:
        self.calls.append((argv, options))
        for prefix, answer in self.answers.items():
            if tuple(argv[: len(prefix)]) == prefix:
                if callable(answer):
                    return answer()
                return subprocess.CompletedProcess(argv, 0, answer, b"")
        raise AssertionError(f"unexpected command {argv}")


def failed(stderr: bytes, returncode: int = 1) -> Callable[[], subprocess.CompletedProcess[bytes]]:
    return lambda: subprocess.CompletedProcess([], returncode, b"", stderr)


# ---------------------------------------------------------------- Linux


def test_luks_stick_is_reported_by_inner_filesystem_uuid() -> None:
    drive = only(lsblk("lsblk_luks_mounted.json"))
    assert drive.uuid == INNER_UUID
    assert drive.container_uuid == LUKS_UUID
    assert drive.encryption == "luks" and drive.encrypted and not drive.locked
    assert drive.label == "DRKEY"
    assert drive.mount_point == Path("/media/alice/DRKEY")
    assert drive.size == 30_734_811_136
    assert drive.removable  # the crypt device itself is neither RM nor HOTPLUG: inherited from sdb
    assert drive.device == "/dev/sdb1"
    assert drive.filesystem_device == f"/dev/mapper/luks-{LUKS_UUID}"
    assert drive.disk == "/dev/sdb"
    assert drive.free is None  # the parser does not stat; list_drives does


def test_same_stick_at_another_mount_point_is_found_by_the_same_uuid() -> None:
    first = only(lsblk("lsblk_luks_mounted.json"))
    second = only(lsblk("lsblk_luks_mounted_second_insert.json"))
    assert first.mount_point != second.mount_point
    assert first.device != second.device
    found = find_drive(first.uuid, [second])
    assert found is second
    assert found.mount_point == Path("/run/media/alice/DRKEY1")


def test_unencrypted_exfat_stick() -> None:
    drive = only(lsblk("lsblk_exfat.json"))
    assert (drive.uuid, drive.label, drive.encryption) == (EXFAT_UUID, "TRANSFER", "none")
    assert not drive.encrypted
    assert drive.removable
    assert drive.mount_point == Path("/media/alice/TRANSFER")
    assert drive.container_uuid is None
    assert drive.device == drive.filesystem_device == "/dev/sdc1"


def test_locked_luks_stick_is_recognisable_by_its_container_uuid() -> None:
    drive = only(lsblk("lsblk_luks_locked.json"))
    assert drive.uuid == drive.container_uuid == LUKS_UUID
    assert drive.mount_point is None and drive.filesystem_device is None
    assert drive.encryption == "luks" and drive.locked
    assert drive.removable
    # Registered by its inner UUID: found only when the container UUID recorded with it is given.
    assert find_drive(INNER_UUID, [drive]) is None
    assert find_drive(INNER_UUID, [drive], container_uuid=LUKS_UUID) is drive
    assert find_drive(LUKS_UUID, [drive]) is drive


def test_internal_disks_are_not_removable_and_the_root_disk_is_skipped() -> None:
    found = lsblk("lsblk_internal_nvme.json")
    by_device = {drive.device: drive for drive in found}
    assert set(by_device) == {"/dev/nvme1n1p1", "/dev/sdc1"}  # no nvme0n1 (holds /), swap, loop, zram
    assert not by_device["/dev/nvme1n1p1"].removable
    assert by_device["/dev/sdc1"].removable


def test_no_removable_drive() -> None:
    assert lsblk("lsblk_no_removable.json") == []


def test_legacy_lsblk_strings_and_single_mountpoint() -> None:
    drive = only(lsblk("lsblk_legacy_2.31_vfat.json"))  # sda holds /, sr0 is an optical drive
    assert (drive.uuid, drive.label, drive.encryption) == ("1C7E-3F09", "OLDSTICK", "none")
    assert drive.removable
    assert drive.size == 15_517_876_224
    assert drive.mount_point == Path("/media/alice/OLDSTICK")


def test_empty_lsblk_output() -> None:
    assert parse_lsblk("") == []
    assert parse_lsblk('{"blockdevices": []}') == []


def test_list_drives_linux_returns_removable_drives_only() -> None:
    runner = FakeRunner({("lsblk",): raw("lsblk_internal_nvme.json")})
    found = list_drives("linux", runner=runner)
    assert [drive.device for drive in found] == ["/dev/sdc1"]
    argv, options = runner.calls[0]
    assert argv == lsblk_command()
    assert options["timeout"] == drives.TOOL_TIMEOUT_SECONDS
    assert options["capture_output"] is True and not options.get("shell")


def test_list_drives_linux_falls_back_for_lsblk_without_mountpoints() -> None:
    runner = FakeRunner(
        {
            tuple(lsblk_command()): failed(b"lsblk: unknown column: MOUNTPOINTS\n"),
            tuple(lsblk_command(legacy=True)): raw("lsblk_legacy_2.31_vfat.json"),
        }
    )
    assert [drive.label for drive in list_drives("linux", runner=runner)] == ["OLDSTICK"]
    assert "MOUNTPOINT" in runner.calls[1][0][-1].split(",")


def test_list_drives_fills_free_space_of_mounted_drives(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []

    def disk_usage(path: Path) -> Any:
        seen.append(path)
        return Usage(total=1000, used=400, free=600)

    monkeypatch.setattr(drives.shutil, "disk_usage", disk_usage)
    mounted = only(list_drives("linux", runner=FakeRunner({("lsblk",): raw("lsblk_exfat.json")})))
    assert mounted.free == 600
    locked = only(list_drives("linux", runner=FakeRunner({("lsblk",): raw("lsblk_luks_locked.json")})))
    assert locked.free is None
    assert seen == [Path("/media/alice/TRANSFER")]


def test_list_drives_keeps_going_when_a_mount_point_cannot_be_read() -> None:
    # /media/alice/TRANSFER does not exist here: shutil.disk_usage raises, free stays unknown.
    drive = only(list_drives("linux", runner=FakeRunner({("lsblk",): raw("lsblk_exfat.json")})))
    assert drive.free is None


def test_missing_tool_names_it() -> None:
    def missing(argv: list[str], **options: Any) -> subprocess.CompletedProcess[bytes]:
        raise FileNotFoundError(argv[0])

    with pytest.raises(EnvironmentNotReady, match="lsblk was not found") as caught:
        list_drives("linux", runner=missing)
    assert caught.value.exit_code == EXIT_ENVIRONMENT
    assert "util-linux" in (caught.value.hint or "")
    with pytest.raises(EnvironmentNotReady, match="diskutil was not found"):
        list_drives("darwin", runner=missing)
    with pytest.raises(EnvironmentNotReady, match=r"powershell\.exe was not found"):
        list_drives("win32", runner=missing)


def test_hanging_tool_times_out() -> None:
    def hangs(argv: list[str], **options: Any) -> subprocess.CompletedProcess[bytes]:
        raise subprocess.TimeoutExpired(argv, options["timeout"])

    with pytest.raises(EnvironmentNotReady, match="did not answer"):
        list_drives("linux", runner=hangs)


def test_failing_tool_is_reported_with_its_last_line() -> None:
    runner = FakeRunner({("lsblk",): failed(b"lsblk: failed to access sysfs directory\n", 32)})
    with pytest.raises(EnvironmentNotReady, match=r"exit 32.*sysfs"):
        list_drives("linux", runner=runner)


def test_unsupported_platform() -> None:
    with pytest.raises(EnvironmentNotReady, match="not supported on freebsd"):
        list_drives("freebsd14", runner=FakeRunner({}))


@pytest.mark.skipif(shutil.which("lsblk") is None, reason="lsblk is not installed in this container")
def test_real_lsblk_output_parses() -> None:
    result = subprocess.run(lsblk_command(), capture_output=True, timeout=20, check=False)
    if result.returncode != 0 and b"unknown column" in result.stderr.lower():
        result = subprocess.run(lsblk_command(legacy=True), capture_output=True, timeout=20, check=False)
    assert result.returncode == 0, result.stderr
    parsed = parse_lsblk(result.stdout.decode())
    assert all(isinstance(drive, Drive) for drive in parsed)
    removable = list_drives("linux")  # may well be empty on a build machine
    assert all(drive.removable for drive in removable)


# ---------------------------------------------------------------- macOS

MAC_INFOS = ["diskutil_info_apfs_encrypted.plist", "diskutil_info_exfat.plist", "diskutil_info_hfs.plist"]


def mac_drives(apfs_list: bytes | None = None) -> dict[str, Drive]:
    found = parse_diskutil([raw(name) for name in MAC_INFOS], apfs_list)
    return {drive.label or "": drive for drive in found}


def test_diskutil_encrypted_apfs_volume() -> None:
    drive = mac_drives(raw("diskutil_apfs_list.plist"))["DRKEY"]
    assert drive.uuid == APFS_UUID
    assert drive.encryption == "apfs-encrypted" and drive.encrypted
    assert drive.mount_point == Path("/Volumes/DRKEY")
    assert drive.removable
    assert drive.device == "/dev/disk5s1"
    assert drive.disk == "disk4"  # the USB disk, not the synthesized container disk5
    assert drive.free == 412_583_936_000


def test_diskutil_unencrypted_exfat_and_hfs_volumes() -> None:
    found = mac_drives(raw("diskutil_apfs_list.plist"))
    assert (found["TRANSFER"].encryption, found["Backup"].encryption) == ("none", "none")
    assert found["TRANSFER"].removable and found["Backup"].removable
    assert found["TRANSFER"].disk == "disk6"
    assert found["Backup"].mount_point == Path("/Volumes/Backup")


def test_diskutil_without_apfs_list_reads_encryption_from_info() -> None:
    assert mac_drives(None)["DRKEY"].encryption == "apfs-encrypted"


def test_diskutil_locked_and_unknown_apfs_volumes() -> None:
    info = plistlib.loads(raw("diskutil_info_apfs_encrypted.plist"))
    locked = info | {"Locked": True, "MountPoint": ""}
    drive = only(parse_diskutil([plistlib.dumps(locked)], raw("diskutil_apfs_list.plist")))
    assert drive.locked and drive.mount_point is None and drive.free is None
    silent = {key: value for key, value in info.items() if key not in {"Encryption", "FileVault"}}
    assert only(parse_diskutil([plistlib.dumps(silent)], None)).encryption == "unknown"


def test_diskutil_skips_system_volumes_and_disk_images() -> None:
    info = plistlib.loads(raw("diskutil_info_apfs_encrypted.plist"))
    data_volume = info | {"VolumeUUID": "4C7A9E1B-2F3D-4B68-9A0C-5E1D7F3B2A86", "Internal": True}
    disk_image = info | {"BusProtocol": "Disk Image"}
    physical_store = info | {"Content": "Apple_APFS"}
    samples = [plistlib.dumps(p) for p in (data_volume, disk_image, physical_store)]
    assert parse_diskutil(samples, raw("diskutil_apfs_list.plist")) == []


def test_list_drives_macos_asks_diskutil_only_about_user_volumes() -> None:
    runner = FakeRunner(
        {
            ("diskutil", "list", "-plist"): raw("diskutil_list.plist"),
            ("diskutil", "apfs", "list", "-plist"): raw("diskutil_apfs_list.plist"),
            ("diskutil", "info", "-plist", "disk5s1"): raw("diskutil_info_apfs_encrypted.plist"),
            ("diskutil", "info", "-plist", "disk6s1"): raw("diskutil_info_exfat.plist"),
            ("diskutil", "info", "-plist", "disk7s2"): raw("diskutil_info_hfs.plist"),
        }
    )
    found = list_drives("darwin", runner=runner)
    assert sorted(drive.label or "" for drive in found) == ["Backup", "DRKEY", "TRANSFER"]
    asked = [argv[-1] for argv, _ in runner.calls if argv[1] == "info"]
    assert asked == ["disk5s1", "disk6s1", "disk7s2"]  # not EFI, APFS stores or the startup volumes


def test_list_drives_macos_skips_a_volume_unplugged_meanwhile() -> None:
    runner = FakeRunner(
        {
            ("diskutil", "list", "-plist"): raw("diskutil_list.plist"),
            ("diskutil", "apfs", "list", "-plist"): raw("diskutil_apfs_list.plist"),
            ("diskutil", "info", "-plist", "disk6s1"): raw("diskutil_info_exfat.plist"),
            ("diskutil", "info"): failed(b"Could not find disk: disk5s1\n"),
        }
    )
    assert [drive.label for drive in list_drives("darwin", runner=runner)] == ["TRANSFER"]


# ---------------------------------------------------------------- Windows


def test_windows_bitlocker_removable_drive_elevated() -> None:
    found = {drive.device: drive for drive in parse_windows(text("windows_bitlocker.json"))}
    assert set(found) == {"E:", "H:"}  # C: is the boot disk
    stick = found["E:"]
    assert stick.encryption == "bitlocker" and stick.removable
    assert stick.uuid == "9C02-E5B7"
    assert stick.container_uuid == "\\\\?\\Volume{5c9e7b14-3a2d-11ef-9b6e-806e6f6e6963}\\"
    assert str(stick.mount_point) == "E:\\"
    assert (stick.size, stick.free) == (30_734_811_136, 30_712_438_784)
    locked = found["H:"]
    assert locked.locked and locked.mount_point is None
    assert locked.uuid == locked.container_uuid  # no serial to read while locked
    assert find_drive("0000-0000", [locked], container_uuid=locked.container_uuid) is locked


def test_windows_unprotected_drives_as_ordinary_user() -> None:
    found = {drive.device: drive for drive in parse_windows(text("windows_unprotected.json"))}
    assert found["F:"].encryption == "none" and found["F:"].removable
    assert found["F:"].uuid == EXFAT_UUID  # the same serial blkid prints for that stick
    assert found["G:"].removable  # a USB hard disk, which Windows calls Fixed
    assert found["G:"].encryption == "none"
    assert not found["D:"].removable  # DVD drive


def test_windows_shell_property_decides_without_elevation() -> None:
    row = {"DriveLetter": "E", "DriveType": "Removable", "BusType": "USB", "VolumeSerialNumber": "9C02E5B7"}
    states = {
        1: "bitlocker",
        3: "bitlocker",
        6: "bitlocker",
        2: "none",
        4: "none",
        5: "none",
        None: "unknown",
    }
    for shell_value, expected in states.items():
        rows = f'[{{"BitLockerProtection": {"null" if shell_value is None else shell_value}, '
        rows += ", ".join(f'"{key}": "{value}"' for key, value in row.items()) + "}]"
        assert only(parse_windows(rows)).encryption == expected, shell_value


def test_windows_single_object_and_empty_output() -> None:
    single = '\ufeff{"DriveLetter": "F", "DriveType": "Removable", "BitLockerProtection": 2}'
    assert only(parse_windows(single)).device == "F:"
    assert parse_windows("") == []
    assert parse_windows("[\r\n\r\n]") == []


def test_list_drives_windows() -> None:
    runner = FakeRunner({("powershell.exe",): raw("windows_unprotected.json")})
    found = list_drives("win32", runner=runner)
    assert [drive.device for drive in found] == ["F:", "G:"]
    argv = runner.calls[0][0]
    assert argv[argv.index("-EncodedCommand") + 1]  # the script travels base64-encoded, never via a shell


# ---------------------------------------------------------------- checks and commands


def make_drive(
    mount: str | None, *, removable: bool = True, uuid: str = "u", encryption: str = "none"
) -> Drive:
    return Drive(
        uuid=uuid,
        label="STICK",
        mount_point=Path(mount) if mount else None,
        size=None,
        free=None,
        encryption=encryption,
        removable=removable,
        device="/dev/sdz1",
    )


@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        ("linux", ["cryptsetup luksFormat /dev/sdc1", "GNOME Disks", "LUKS"]),
        ("darwin", ["Disk Utility", "APFS (Encrypted)"]),
        ("win32", ["Turn on BitLocker", "BitLocker To Go"]),
    ],
)
def test_check_encryption_refuses_with_os_specific_howto(platform: str, expected: list[str]) -> None:
    drive = only(lsblk("lsblk_exfat.json"))
    with pytest.raises(UsageError) as caught:
        check_encryption(drive, allow_unencrypted=False, platform=platform)
    error = caught.value
    assert error.exit_code == EXIT_USAGE
    assert 'drive "TRANSFER" (/dev/sdc1) is not encrypted' in error.message
    for fragment in [*expected, "--allow-unencrypted"]:
        assert fragment in (error.hint or "")


def test_check_encryption_treats_unknown_as_unencrypted() -> None:
    with pytest.raises(UsageError, match="Could not tell whether"):
        check_encryption(make_drive("/m", encryption="unknown"), allow_unencrypted=False, platform="linux")


def test_check_encryption_passes_encrypted_or_allowed_drives() -> None:
    check_encryption(only(lsblk("lsblk_luks_mounted.json")), allow_unencrypted=False)
    check_encryption(only(lsblk("lsblk_luks_locked.json")), allow_unencrypted=False)
    check_encryption(only(lsblk("lsblk_exfat.json")), allow_unencrypted=True)


def test_drive_for_path() -> None:
    stick = only(lsblk("lsblk_luks_mounted.json"))
    internal = make_drive("/mnt/data", removable=False)
    assert drive_for_path(Path("/media/alice/DRKEY"), [stick, internal]) is stick
    assert drive_for_path(Path("/media/alice/DRKEY/drgui/backups"), [stick, internal]) is stick
    assert drive_for_path(Path("/media/alice/DRKEY2"), [stick]) is None  # a prefix is not a parent
    assert drive_for_path(Path("/mnt/data/x"), [stick, internal]) is None  # not removable
    assert drive_for_path(Path("/media/alice/DRKEY"), [only(lsblk("lsblk_luks_locked.json"))]) is None


def test_drive_for_path_prefers_the_innermost_mount() -> None:
    outer = make_drive("/media/alice", uuid="outer")
    inner = make_drive("/media/alice/STICK", uuid="inner")
    assert drive_for_path(Path("/media/alice/STICK/dir"), [outer, inner]) is inner


def test_find_drive_ignores_case_and_missing_drives() -> None:
    found = lsblk("lsblk_exfat.json")
    assert find_drive("4a1b-7c2e", found) is found[0]
    assert find_drive("nope", found) is None


def test_require_drive_says_what_to_do() -> None:
    locked = lsblk("lsblk_luks_locked.json")
    with pytest.raises(EnvironmentNotReady, match='Drive "DRKEY" is not plugged in'):
        require_drive(INNER_UUID, lsblk("lsblk_exfat.json"), name="DRKEY")
    with pytest.raises(EnvironmentNotReady, match="plugged in but locked") as caught:
        require_drive(INNER_UUID, locked, container_uuid=LUKS_UUID, name="DRKEY", platform="linux")
    assert "udisksctl unlock -b /dev/sdb1" in (caught.value.hint or "")
    mounted = require_drive(
        INNER_UUID, lsblk("lsblk_luks_mounted_second_insert.json"), container_uuid=LUKS_UUID
    )
    assert mounted.mount_point == Path("/run/media/alice/DRKEY1")


def test_eject_commands_linux() -> None:
    luks = only(lsblk("lsblk_luks_mounted.json"))
    assert eject_commands(luks, "linux") == [
        ["udisksctl", "unmount", "-b", f"/dev/mapper/luks-{LUKS_UUID}"],
        ["udisksctl", "lock", "-b", "/dev/sdb1"],
        ["udisksctl", "power-off", "-b", "/dev/sdb"],
    ]
    assert eject_commands(only(lsblk("lsblk_exfat.json")), "linux") == [
        ["udisksctl", "unmount", "-b", "/dev/sdc1"],
        ["udisksctl", "power-off", "-b", "/dev/sdc"],
    ]
    assert eject_commands(only(lsblk("lsblk_luks_locked.json")), "linux") == [
        ["udisksctl", "power-off", "-b", "/dev/sdb"]
    ]


def test_eject_commands_macos_and_windows() -> None:
    apfs = mac_drives(raw("diskutil_apfs_list.plist"))["DRKEY"]
    assert eject_commands(apfs, "darwin") == [["diskutil", "eject", "disk4"]]
    stick = only([d for d in parse_windows(text("windows_bitlocker.json")) if d.device == "E:"])
    assert eject_commands(stick, "win32") is None


def test_encrypted_property_covers_every_encryption() -> None:
    encrypted = {name for name in drives.ENCRYPTIONS if make_drive(None, encryption=name).encrypted}
    assert encrypted == {"luks", "apfs-encrypted", "filevault", "bitlocker"}
