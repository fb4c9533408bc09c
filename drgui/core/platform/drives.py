"""Removable drives: which are plugged in, where they are mounted, whether the OS encrypts them.

A drive destination is registered by filesystem UUID, never by mount path: the same stick is
mounted at /media/alice/DRKEY today and /media/alice/DRKEY1 tomorrow. The OS tools are asked
(Linux `lsblk`, macOS `diskutil`, Windows PowerShell's Storage and BitLocker cmdlets); the
parsers are pure functions over their recorded output, so every platform is tested everywhere.

On Linux a LUKS stick shows as a `crypto_LUKS` partition whose `crypt` child carries the
filesystem. Its `uuid` is that inner filesystem's UUID and `container_uuid` the LUKS header's,
so a stick that is still locked (no child yet) is recognised and the user told to unlock it.
"""

from __future__ import annotations

import base64
import json
import os
import plistlib
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from drgui.core.errors import EnvironmentNotReady, OperationFailed, UsageError

ENCRYPTIONS = ("luks", "apfs-encrypted", "filevault", "bitlocker", "none", "unknown")
_ENCRYPTED = frozenset({"luks", "apfs-encrypted", "filevault", "bitlocker"})

TOOL_TIMEOUT_SECONDS = 20

Runner = Callable[..., subprocess.CompletedProcess[bytes]]


@dataclass(frozen=True)
class Drive:
    """One filesystem on a drive (or one locked encrypted container), as the OS reports it."""

    uuid: str
    label: str | None
    mount_point: Path | None
    size: int | None
    free: int | None
    encryption: str
    removable: bool
    device: str | None
    container_uuid: str | None = None
    """LUKS header UUID (Linux) or volume GUID path (Windows): still readable while locked."""
    filesystem_device: str | None = None
    """Block device holding the mounted filesystem when it differs from `device` (LUKS mapping)."""
    disk: str | None = None
    """Whole disk to power off or eject: /dev/sdb, disk4."""

    @property
    def encrypted(self) -> bool:
        return self.encryption in _ENCRYPTED

    @property
    def locked(self) -> bool:
        """Encrypted and not unlocked, so nothing can be read or written yet."""
        return self.encrypted and self.mount_point is None

    @property
    def display_name(self) -> str:
        """How messages name the drive: `drive "DRKEY" (/dev/sdb1)`."""
        name = f'drive "{self.label}"' if self.label else f"drive {self.uuid}"
        return f"{name} ({self.device})" if self.device else name


# ---------------------------------------------------------------- Linux: lsblk

LSBLK_COLUMNS = ("NAME", "TYPE", "FSTYPE", "UUID", "LABEL", "SIZE", "RM", "HOTPLUG", "TRAN", "MOUNTPOINTS")
"""Asked with --paths so NAME is a device path (PATH only exists since util-linux 2.33)."""
LSBLK_LEGACY_COLUMNS = tuple("MOUNTPOINT" if c == "MOUNTPOINTS" else c for c in LSBLK_COLUMNS)
"""For util-linux < 2.37, which has no MOUNTPOINTS column."""

# Containers whose filesystem lives in a child device once unlocked; blkid's names.
_CRYPTO_FSTYPES = {"crypto_LUKS": "luks", "BitLocker": "bitlocker"}
# Signatures that are not a mountable filesystem of their own.
_NOT_A_FILESYSTEM = frozenset(
    {"swap", "LVM2_member", "linux_raid_member", "zfs_member", "ddf_raid_member", "isw_raid_member"}
)
_SKIPPED_TYPES = frozenset({"loop", "rom"})
_SKIPPED_NAME_PREFIXES = ("zram", "ram")


def lsblk_command(*, legacy: bool = False) -> list[str]:
    columns = LSBLK_LEGACY_COLUMNS if legacy else LSBLK_COLUMNS
    return ["lsblk", "--json", "--bytes", "--paths", "--output", ",".join(columns)]


def parse_lsblk(json_text: str) -> list[Drive]:
    """Filesystems (and locked LUKS containers) from `lsblk --json`, internal ones included.

    Skips loop, zram and optical devices, swap, and every disk that holds the root filesystem.
    Accepts both lsblk dialects: util-linux >= 2.33 (booleans, numbers, MOUNTPOINTS array
    since 2.37) and older ("1"/"0" and numeric strings, MOUNTPOINT only).
    """
    document = json.loads(json_text) if json_text.strip() else {}
    drives: list[Drive] = []
    for disk in document.get("blockdevices") or []:
        if _lsblk_skipped(disk) or _lsblk_holds_root(disk):
            continue
        drives.extend(_lsblk_walk(disk, disk_path=_lsblk_path(disk), removable=False, crypto=None))
    return drives


def _lsblk_skipped(disk: Mapping[str, Any]) -> bool:
    name = Path(str(disk.get("name") or "")).name
    return disk.get("type") in _SKIPPED_TYPES or name.startswith(_SKIPPED_NAME_PREFIXES)


def _lsblk_holds_root(node: Mapping[str, Any]) -> bool:
    return "/" in _lsblk_mount_points(node) or any(
        _lsblk_holds_root(child) for child in node.get("children") or []
    )


def _lsblk_walk(
    node: Mapping[str, Any], *, disk_path: str | None, removable: bool, crypto: Mapping[str, Any] | None
) -> Iterator[Drive]:
    removable = removable or _lsblk_removable(node)
    fstype = node.get("fstype")
    children = node.get("children") or []
    if fstype in _CRYPTO_FSTYPES:
        if not children and node.get("uuid"):  # locked: only the container is visible
            yield _lsblk_drive(node, node, disk_path=disk_path, removable=removable, crypto=node)
        for child in children:
            yield from _lsblk_walk(child, disk_path=disk_path, removable=removable, crypto=node)
        return
    if fstype and fstype not in _NOT_A_FILESYSTEM and node.get("uuid"):
        yield _lsblk_drive(node, crypto or node, disk_path=disk_path, removable=removable, crypto=crypto)
    for child in children:
        yield from _lsblk_walk(child, disk_path=disk_path, removable=removable, crypto=crypto)


def _lsblk_drive(
    filesystem: Mapping[str, Any],
    partition: Mapping[str, Any],
    *,
    disk_path: str | None,
    removable: bool,
    crypto: Mapping[str, Any] | None,
) -> Drive:
    mounts = [m for m in _lsblk_mount_points(filesystem) if m.startswith("/")]
    locked = filesystem is crypto
    return Drive(
        uuid=str(filesystem["uuid"]),
        label=filesystem.get("label") or None,
        mount_point=Path(mounts[0]) if mounts else None,
        size=_as_int(filesystem.get("size")),
        free=None,
        encryption=_CRYPTO_FSTYPES[crypto["fstype"]] if crypto else "none",
        removable=removable,
        device=_lsblk_path(partition),
        container_uuid=str(crypto["uuid"]) if crypto and crypto.get("uuid") else None,
        filesystem_device=None if locked else _lsblk_path(filesystem),
        disk=disk_path,
    )


def _lsblk_mount_points(node: Mapping[str, Any]) -> list[str]:
    if "mountpoints" in node:
        return [m for m in node.get("mountpoints") or [] if m]
    mount = node.get("mountpoint")
    return [mount] if mount else []


def _lsblk_removable(node: Mapping[str, Any]) -> bool:
    transport = str(node.get("tran") or "").lower()
    return _as_bool(node.get("rm")) or _as_bool(node.get("hotplug")) or transport == "usb"


def _lsblk_path(node: Mapping[str, Any]) -> str | None:
    path = node.get("path") or node.get("name")
    if not path:
        return None
    if str(path).startswith("/"):
        return str(path)
    folder = "/dev/mapper/" if node.get("type") in {"crypt", "dm", "lvm"} else "/dev/"
    return folder + str(path)


# ---------------------------------------------------------------- macOS: diskutil

# Partition contents that never carry a user volume.
_DISKUTIL_NOT_A_VOLUME = frozenset(
    {
        "EFI",
        "Apple_APFS",
        "Apple_APFS_ISC",
        "Apple_APFS_Recovery",
        "Apple_Boot",
        "Apple_CoreStorage",
        "Apple_partition_map",
        "Apple_Free",
        "Microsoft Reserved",
    }
)


def parse_diskutil(info_plists: list[bytes], apfs_list_plist: bytes | None) -> list[Drive]:
    """Volumes from `diskutil info -plist ID` outputs, with APFS encryption from `diskutil apfs list -plist`.

    Skips APFS volumes with a role (System, Data, Preboot, VM...: the startup disk's), the
    root, disk images and partitions without a filesystem.
    """
    apfs_volumes = _apfs_volumes_by_uuid(apfs_list_plist)
    drives = []
    for raw in info_plists:
        drive = _diskutil_drive(plistlib.loads(raw), apfs_volumes)
        if drive is not None:
            drives.append(drive)
    return drives


def _apfs_volumes_by_uuid(apfs_list_plist: bytes | None) -> dict[str, Mapping[str, Any]]:
    if not apfs_list_plist:
        return {}
    listing = plistlib.loads(apfs_list_plist)
    return {
        str(volume["APFSVolumeUUID"]).upper(): volume
        for container in listing.get("Containers") or []
        for volume in container.get("Volumes") or []
        if volume.get("APFSVolumeUUID")
    }


def _diskutil_drive(info: Mapping[str, Any], apfs_volumes: Mapping[str, Mapping[str, Any]]) -> Drive | None:
    fs_type = str(info.get("FilesystemType") or "")
    uuid = info.get("VolumeUUID") or info.get("DiskUUID")
    mount = str(info.get("MountPoint") or "") or None
    if not fs_type or not uuid or info.get("Content") in _DISKUTIL_NOT_A_VOLUME:
        return None
    if info.get("BusProtocol") == "Disk Image" or mount == "/" or (mount or "").startswith("/System/"):
        return None
    volume = apfs_volumes.get(str(uuid).upper(), {})
    if volume.get("Roles"):
        return None
    encryption = _diskutil_encryption(fs_type, info, volume)
    locked = info.get("Locked") is True or volume.get("Locked") is True
    free_key = "APFSContainerFree" if fs_type == "apfs" else "FreeSpace"
    return Drive(
        uuid=str(uuid),
        label=info.get("VolumeName") or None,
        mount_point=None if locked or not mount else Path(mount),
        size=_as_int(info.get("TotalSize") or info.get("Size")),
        free=_as_int(info.get(free_key)) if mount and not locked else None,
        encryption=encryption,
        removable=_diskutil_removable(info),
        device=info.get("DeviceNode") or _dev(info.get("DeviceIdentifier")),
        disk=_diskutil_whole_disk(info),
    )


def _diskutil_encryption(fs_type: str, info: Mapping[str, Any], volume: Mapping[str, Any]) -> str:
    flags = [source.get(key) for source in (volume, info) for key in ("FileVault", "Encryption")]
    if fs_type == "apfs":
        if any(flag is True for flag in flags):
            return "apfs-encrypted"
        return "none" if any(flag is False for flag in flags) else "unknown"
    # A CoreStorage-encrypted HFS+ volume (FileVault 2 technology, before APFS).
    return "filevault" if any(flag is True for flag in flags) else "none"


def _diskutil_removable(info: Mapping[str, Any]) -> bool:
    flags = ("RemovableMediaOrExternalDevice", "RemovableMedia", "Removable", "Ejectable")
    return (
        any(info.get(flag) is True for flag in flags)
        or info.get("Internal") is False
        or info.get("BusProtocol") == "USB"
    )


def _diskutil_whole_disk(info: Mapping[str, Any]) -> str | None:
    """The physical disk: for APFS the disk of its physical store, not the synthesized container."""
    stores = info.get("APFSPhysicalStores") or []
    store = stores[0].get("APFSPhysicalStore") if stores else None
    match = re.match(r"disk\d+", str(store or info.get("ParentWholeDisk") or ""))
    return match.group(0) if match else None


def _diskutil_volume_identifiers(listing: Mapping[str, Any], apfs_list_plist: bytes | None) -> list[str]:
    """Volumes worth a `diskutil info` call, from `diskutil list -plist`."""
    apfs_with_roles = {
        str(volume.get("DeviceIdentifier"))
        for volume in _apfs_volumes_by_uuid(apfs_list_plist).values()
        if volume.get("Roles")
    }
    identifiers = []
    for disk in listing.get("AllDisksAndPartitions") or []:
        if disk.get("MountPoint") or (disk.get("VolumeName") and not disk.get("Partitions")):
            identifiers.append(disk["DeviceIdentifier"])
        for partition in disk.get("Partitions") or []:
            if partition.get("Content") not in _DISKUTIL_NOT_A_VOLUME:
                identifiers.append(partition["DeviceIdentifier"])
        for volume in disk.get("APFSVolumes") or []:
            if volume.get("DeviceIdentifier") not in apfs_with_roles:
                identifiers.append(volume["DeviceIdentifier"])
    return identifiers


# ---------------------------------------------------------------- Windows: PowerShell

WINDOWS_SCRIPT = r"""
[Console]::OutputEncoding = [Text.Encoding]::UTF8
$ErrorActionPreference = 'SilentlyContinue'
$bitlocker = @{}
try { foreach ($b in Get-BitLockerVolume -ErrorAction Stop) { $bitlocker[$b.MountPoint] = $b } } catch { }
$shell = New-Object -ComObject Shell.Application
$rows = @(foreach ($v in Get-Volume) {
  if (-not $v.DriveLetter) { continue }
  $letter = "$($v.DriveLetter):"
  $part = Get-Partition -DriveLetter $v.DriveLetter
  $disk = if ($part) { Get-Disk -Number $part.DiskNumber }
  $logical = Get-CimInstance Win32_LogicalDisk -Filter "DeviceID='$letter'"
  $b = $bitlocker[$letter]
  $padlock = $shell.NameSpace("$letter\").Self.ExtendedProperty('System.Volume.BitLockerProtection')
  [pscustomobject]@{
    DriveLetter = "$($v.DriveLetter)"
    FileSystemLabel = $v.FileSystemLabel
    FileSystem = $v.FileSystem
    DriveType = "$($v.DriveType)"
    Size = $v.Size
    SizeRemaining = $v.SizeRemaining
    UniqueId = $v.UniqueId
    VolumeSerialNumber = $logical.VolumeSerialNumber
    DiskNumber = $part.DiskNumber
    BusType = "$($disk.BusType)"
    IsBoot = [bool]$disk.IsBoot
    IsSystem = [bool]$disk.IsSystem
    BitLockerProtection = $padlock
    ProtectionStatus = if ($b) { "$($b.ProtectionStatus)" } else { $null }
    VolumeStatus = if ($b) { "$($b.VolumeStatus)" } else { $null }
    LockStatus = if ($b) { "$($b.LockStatus)" } else { $null }
  }
})
ConvertTo-Json -InputObject $rows -Depth 2
"""
"""One row per lettered volume: Get-Volume joined with its partition, disk and BitLocker state.

Get-BitLockerVolume answers only to an elevated shell, so the Shell property that Explorer
uses for its padlock (System.Volume.BitLockerProtection, readable by any user) is sent too.
"""

# System.Volume.BitLockerProtection: 1 on, 2 off, 3 encrypting, 4 decrypting, 5 suspended, 6 locked.
_SHELL_BITLOCKER_ON = frozenset({1, 3, 6})
_SHELL_BITLOCKER_OFF = frozenset({0, 2, 4, 5})
_SHELL_BITLOCKER_LOCKED = 6
# MSFT_Disk.BusType values for buses a drive is unplugged from: 1394, USB, SD, MMC.
_REMOVABLE_BUSES = frozenset({"1394", "USB", "SD", "MMC", "4", "7", "12", "13"})


def windows_command() -> list[str]:
    encoded = base64.b64encode(WINDOWS_SCRIPT.encode("utf-16-le")).decode("ascii")
    return ["powershell.exe", "-NoLogo", "-NoProfile", "-NonInteractive", "-EncodedCommand", encoded]


def parse_windows(json_text: str) -> list[Drive]:
    """Volumes from the JSON that `windows_command()` prints; boot and system disks are skipped."""
    text = json_text.strip().lstrip("\ufeff")
    rows = json.loads(text) if text else []
    if isinstance(rows, dict):  # one row piped to ConvertTo-Json comes out without its array
        rows = [rows]
    drives = []
    for row in rows:
        if (
            not isinstance(row, dict)
            or row.get("IsBoot") is True
            or row.get("IsSystem") is True
            or not row.get("DriveLetter")
        ):
            continue
        drives.append(_windows_drive(row))
    return drives


def _windows_drive(row: Mapping[str, Any]) -> Drive:
    letter = f"{row['DriveLetter']}:"
    serial = str(row.get("VolumeSerialNumber") or "")
    if re.fullmatch(r"[0-9A-Fa-f]{8}", serial):
        serial = f"{serial[:4]}-{serial[4:]}".upper()  # as blkid prints a FAT/exFAT serial
    unique_id = row.get("UniqueId") or None
    locked = _windows_locked(row)
    drive_type = str(row.get("DriveType") or "")
    return Drive(
        uuid=serial or unique_id or letter,
        label=row.get("FileSystemLabel") or None,
        mount_point=None if locked else Path(letter + "\\"),
        size=_as_int(row.get("Size")) or None,
        free=None if locked else _as_int(row.get("SizeRemaining")),
        encryption=_windows_encryption(row),
        removable=drive_type in {"Removable", "2"} or str(row.get("BusType") or "") in _REMOVABLE_BUSES,
        device=letter,
        container_uuid=unique_id,
    )


def _windows_locked(row: Mapping[str, Any]) -> bool:
    return (
        str(row.get("LockStatus")) in {"Locked", "1"}
        or _as_int(row.get("BitLockerProtection")) == _SHELL_BITLOCKER_LOCKED
    )


def _windows_encryption(row: Mapping[str, Any]) -> str:
    if any(row.get(key) is not None for key in ("ProtectionStatus", "LockStatus")):
        # Elevated answer. Suspended protection (key stored in the clear) counts as off.
        if _windows_locked(row) or str(row.get("ProtectionStatus")) in {"On", "1"}:
            return "bitlocker"
        return "none"
    shell_state = _as_int(row.get("BitLockerProtection"))
    if shell_state in _SHELL_BITLOCKER_ON:
        return "bitlocker"
    return "none" if shell_state in _SHELL_BITLOCKER_OFF else "unknown"


# ---------------------------------------------------------------- running the tools


RECORDED_DRIVES_ENV = "DRGUI_DRIVES_JSON"
"""Path of a recorded `lsblk --json` output to use instead of asking the OS (tests and demos)."""


def list_drives(platform: str | None = None, runner: Runner = subprocess.run) -> list[Drive]:
    """Removable drives plugged in now, with free space read from each mounted filesystem."""
    recorded = os.environ.get(RECORDED_DRIVES_ENV)
    if recorded:
        drives = parse_lsblk(Path(recorded).read_text(encoding="utf-8"))
        return [_with_free_space(drive) for drive in drives if drive.removable]
    family = _os_family(platform)
    if family == "linux":
        drives = _list_linux(runner)
    elif family == "darwin":
        drives = _list_macos(runner)
    else:
        drives = _list_windows(runner)
    return [_with_free_space(drive) for drive in drives if drive.removable]


def _list_linux(runner: Runner) -> list[Drive]:
    result = _run(runner, lsblk_command(), hint="Install util-linux (it provides lsblk).")
    if result.returncode != 0 and b"unknown column" in result.stderr.lower():
        result = _run(runner, lsblk_command(legacy=True), hint="Install util-linux (it provides lsblk).")
    _check(result, "lsblk")
    return parse_lsblk(result.stdout.decode("utf-8", errors="replace"))


def _list_macos(runner: Runner) -> list[Drive]:
    hint = "diskutil ships with macOS in /usr/sbin; make sure /usr/sbin is on PATH."
    listing = _run(runner, ["diskutil", "list", "-plist"], hint=hint)
    _check(listing, "diskutil list")
    apfs = _run(runner, ["diskutil", "apfs", "list", "-plist"], hint=hint)
    apfs_plist = apfs.stdout if apfs.returncode == 0 else None  # no APFS support: macOS < 10.13
    infos = []
    for identifier in _diskutil_volume_identifiers(plistlib.loads(listing.stdout), apfs_plist):
        info = _run(runner, ["diskutil", "info", "-plist", identifier], hint=hint)
        if info.returncode == 0:  # otherwise unplugged between the two calls
            infos.append(info.stdout)
    return parse_diskutil(infos, apfs_plist)


def _list_windows(runner: Runner) -> list[Drive]:
    hint = "Windows PowerShell (powershell.exe) is part of Windows; make sure System32 is on PATH."
    result = _run(runner, windows_command(), hint=hint)
    _check(result, "PowerShell (Get-Volume)")
    return parse_windows(result.stdout.decode("utf-8", errors="replace"))


def _run(runner: Runner, argv: list[str], *, hint: str) -> subprocess.CompletedProcess[bytes]:
    options: dict[str, Any] = {"capture_output": True, "timeout": TOOL_TIMEOUT_SECONDS, "check": False}
    if sys.platform == "win32":
        options["creationflags"] = subprocess.CREATE_NO_WINDOW
    try:
        return runner(argv, **options)
    except FileNotFoundError as error:
        raise EnvironmentNotReady(f"{argv[0]} was not found, so drives cannot be listed.", hint) from error
    except subprocess.TimeoutExpired as error:
        raise EnvironmentNotReady(
            f"{argv[0]} did not answer within {TOOL_TIMEOUT_SECONDS} s while listing drives.",
            "A drive may be hanging: unplug drives that are not in use and try again.",
        ) from error


def _check(result: subprocess.CompletedProcess[bytes], tool: str) -> None:
    if result.returncode != 0:
        detail = result.stderr.decode("utf-8", errors="replace").strip().splitlines()
        raise EnvironmentNotReady(
            f"{tool} failed (exit {result.returncode}) while listing drives"
            + (f": {detail[-1]}" if detail else "."),
        )


def _with_free_space(drive: Drive) -> Drive:
    if drive.mount_point is None:
        return drive
    try:
        return replace(drive, free=shutil.disk_usage(drive.mount_point).free)
    except OSError:  # unmounted meanwhile, or not readable by this user
        return drive


def _os_family(platform: str | None) -> str:
    name = (platform or sys.platform).lower()
    if name.startswith("linux"):
        return "linux"
    if name == "darwin":
        return "darwin"
    if name in {"win32", "cygwin", "windows"}:
        return "windows"
    raise EnvironmentNotReady(
        f"Removable drives are not supported on {name}.", "Use a local or S3 destination instead."
    )


# ---------------------------------------------------------------- finding and checking


def find_drive(uuid: str, drives: list[Drive], container_uuid: str | None = None) -> Drive | None:
    """The drive with this filesystem UUID, else the one whose container UUID matches.

    A locked LUKS stick shows only its container UUID, so pass the `container_uuid` recorded
    when the drive was registered to recognise it (a bare `uuid` is tried against both).
    """
    wanted = {uuid.strip().lower()}
    for drive in drives:
        if drive.uuid.lower() in wanted:
            return drive
    if container_uuid:
        wanted.add(container_uuid.strip().lower())
    for drive in drives:
        if drive.container_uuid and drive.container_uuid.lower() in wanted:
            return drive
    return None


def drive_for_path(path: Path, drives: list[Drive] | None = None) -> Drive | None:
    """The removable drive whose mount point contains `path` (the innermost mount wins)."""
    if drives is None:
        drives = list_drives()
    target = Path(path).expanduser().resolve()
    candidates = [
        drive
        for drive in drives
        if drive.removable
        and drive.mount_point is not None
        and (target == drive.mount_point or drive.mount_point in target.parents)
    ]
    return max(
        candidates, key=lambda drive: len(drive.mount_point.parts) if drive.mount_point else 0, default=None
    )


def check_encryption(drive: Drive, allow_unencrypted: bool, platform: str | None = None) -> None:
    """Refuse an unencrypted drive (or one whose state is unknown) unless the user allowed it."""
    if drive.encrypted or allow_unencrypted:
        return
    if drive.encryption == "unknown":
        message = (
            f"Could not tell whether {drive.display_name} is encrypted, so it is treated as unencrypted."
        )
    else:
        message = f"{drive.display_name} is not encrypted by the operating system."
    hint = (
        f"{_encrypt_howto(drive, platform)} Or, to use it unencrypted, add it with --allow-unencrypted "
        "(the .env copy is age-encrypted either way)."
    )
    raise UsageError(message, hint)


def _encrypt_howto(drive: Drive, platform: str | None) -> str:
    family = (platform or sys.platform).lower()
    if family.startswith("linux"):
        partition = drive.device or "/dev/sdX1"
        return (
            "Encrypt it with LUKS (this erases it): in GNOME Disks select the partition, choose "
            '"Format Partition…" and tick "Password protect volume (LUKS)"; or in a terminal run '
            f"`sudo cryptsetup luksFormat {partition}`, then `sudo cryptsetup open {partition} drkey` "
            "and `sudo mkfs.ext4 /dev/mapper/drkey`."
        )
    if family == "darwin":
        return (
            'Encrypt it in Disk Utility: select the drive, click Erase and choose "APFS (Encrypted)" '
            "(this erases it). An APFS drive can also be encrypted in place: Control-click it in "
            'Finder and choose "Encrypt".'
        )
    if family in {"win32", "cygwin", "windows"}:
        return (
            'Encrypt it with BitLocker To Go: in File Explorer right-click the drive and choose "Turn on '
            'BitLocker" (Control Panel > BitLocker Drive Encryption; needs Windows Pro, Enterprise or '
            'Education). If BitLocker is suspended on it, choose "Resume protection".'
        )
    return "Encrypt it with the operating system's full-volume encryption."


def require_drive(
    uuid: str,
    drives: list[Drive],
    *,
    container_uuid: str | None = None,
    name: str | None = None,
    platform: str | None = None,
) -> Drive:
    """The registered drive, plugged in and mounted; otherwise say what the user has to do."""
    drive = find_drive(uuid, drives, container_uuid)
    what = f'Drive "{name}"' if name else f"The drive with UUID {uuid}"
    if drive is None:
        raise EnvironmentNotReady(f"{what} is not plugged in.", "Plug it in and try again.")
    if drive.mount_point is None:
        state = "locked" if drive.encrypted else "not mounted"
        raise EnvironmentNotReady(f"{what} is plugged in but {state}.", _unlock_howto(drive, platform))
    return drive


def _unlock_howto(drive: Drive, platform: str | None) -> str:
    family = (platform or sys.platform).lower()
    device = drive.device or "the drive"
    if family.startswith("linux"):
        if drive.encrypted:
            return (
                "Open it in the file manager and enter its passphrase, or run "
                f"`udisksctl unlock -b {device}` and then `udisksctl mount -b` on the device it prints."
            )
        return f"Open it in the file manager, or run `udisksctl mount -b {device}`."
    if family == "darwin":
        identifier = device.removeprefix("/dev/")
        if drive.encrypted:
            return f"Enter its password when macOS asks, or run `diskutil apfs unlockVolume {identifier}`."
        return f"Run `diskutil mount {identifier}`."
    if drive.encrypted:
        return f"Open {device} in File Explorer and enter its BitLocker password."
    return "Give it a drive letter in Disk Management."


def eject_commands(drive: Drive, platform: str | None = None) -> list[list[str]] | None:
    """Commands, run in order without a shell, after which the drive is safe to unplug.

    Linux: unmount the filesystem, lock the LUKS container, power the disk off (udisksctl,
    no root needed). macOS: eject the whole disk. Windows: None, since no built-in command
    does it; the user clicks "Safely Remove Hardware".
    """
    family = _os_family(platform)
    if family == "linux":
        commands = []
        if drive.mount_point is not None and (drive.filesystem_device or drive.device):
            commands.append(["udisksctl", "unmount", "-b", drive.filesystem_device or drive.device or ""])
        if drive.encryption == "luks" and drive.device and drive.filesystem_device:
            commands.append(["udisksctl", "lock", "-b", drive.device])
        if drive.disk:
            commands.append(["udisksctl", "power-off", "-b", drive.disk])
        return commands or None
    if family == "darwin":
        target = drive.disk or (str(drive.mount_point) if drive.mount_point else drive.device)
        return [["diskutil", "eject", target]] if target else None
    return None


EJECT_TIMEOUT_SECONDS = 60
EJECT_HINT = (
    "Close every window, terminal or program using the drive, then try again, "
    "or eject it in the file manager."
)


def eject(commands: list[list[str]], runner: Runner = subprocess.run) -> None:
    """Run `eject_commands(...)` in order; the first failure stops, naming the command and the fix."""
    for argv in commands:
        shown = " ".join(argv)
        try:
            result = runner(argv, capture_output=True, timeout=EJECT_TIMEOUT_SECONDS, check=False)
        except FileNotFoundError as error:
            raise EnvironmentNotReady(
                f"{argv[0]} was not found, so drgui cannot eject the drive.",
                "Install udisks2 (it provides udisksctl), or eject the drive in the file manager."
                if argv[0] == "udisksctl"
                else "Eject the drive in the file manager.",
            ) from error
        except subprocess.TimeoutExpired as error:
            raise OperationFailed(
                f"`{shown}` did not finish within {EJECT_TIMEOUT_SECONDS} s.", EJECT_HINT
            ) from error
        if result.returncode != 0:
            detail = result.stderr.decode("utf-8", errors="replace").strip().splitlines()
            raise OperationFailed(
                f"Ejecting the drive failed at `{shown}` (exit {result.returncode})"
                + (f": {detail[-1]}" if detail else "."),
                EJECT_HINT,
            )


# ---------------------------------------------------------------- helpers


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes"}
    return value is True or value == 1


def _dev(identifier: Any) -> str | None:
    return f"/dev/{identifier}" if identifier else None
