"""A removable drive: a LocalDestination rooted at `<mount>/drgui/<plan-id>/`, found by filesystem UUID.

The mount point is looked up when the destination is used, never stored: the same stick is
/media/alice/DRKEY today and /run/media/alice/DRKEY1 tomorrow. A plain directory (`path`
setting) is accepted only when registered with --allow-unencrypted: for tests, and for people who
keep an encrypted volume mounted where drgui cannot identify it (VeraCrypt, a network share).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from drgui.core.engine.destinations.base import Destination
from drgui.core.engine.destinations.local import LocalDestination
from drgui.core.engine.kinds import BuildContext, Kind, Setting
from drgui.core.errors import EnvironmentNotReady, UsageError
from drgui.core.plan.config import DestConfig
from drgui.core.plan.secrets import SecretStore
from drgui.core.platform.drives import (
    Drive,
    check_encryption,
    drive_for_path,
    eject_commands,
    list_drives,
    require_drive,
)
from drgui.core.platform.drives import (
    eject as run_eject,
)

DRIVE_DIR = "drgui"
"""Folder at the top of the drive; one sub-folder per plan, so one stick can serve several plans."""

DriveLister = Callable[[], list[Drive]]


class DriveDestination(LocalDestination):
    kind = "drive"

    def __init__(
        self, config: DestConfig, store: SecretStore | None = None, drives: DriveLister | None = None
    ) -> None:
        Destination.__init__(self, config, store)  # the root is resolved at use time, not here
        self._list_drives = drives or list_drives
        self._mount: Path | None = None

    # --- settings --------------------------------------------------------------------------------
    @property
    def settings(self) -> dict[str, Any]:
        return self.config.settings

    @property
    def uuid(self) -> str | None:
        return self.settings.get("uuid")

    @property
    def plain_path(self) -> Path | None:
        path = self.settings.get("path")
        return Path(path).expanduser() if path else None

    @property
    def plan_id(self) -> str:
        plan_id = self.settings.get("plan_id") or (self.store.plan_id if self.store else None)
        if not plan_id:
            raise UsageError(f"Drive destination '{self.name}' does not know its plan id.")
        return str(plan_id)

    # --- locating the drive ----------------------------------------------------------------------
    def current_drive(self) -> Drive:
        """The registered drive, plugged in and mounted (EnvironmentNotReady otherwise)."""
        if not self.uuid:
            raise UsageError(f"Destination '{self.name}' is a plain directory, not a drive found by UUID.")
        drive = require_drive(
            self.uuid, self._list_drives(), container_uuid=self.settings.get("container_uuid"), name=self.name
        )
        check_encryption(drive, bool(self.settings.get("allow_unencrypted")))
        return drive

    def mount_point(self) -> Path:
        """Where the drive (or the plain directory) is now; looked up again when it went away."""
        if self._mount is not None and self._mount.is_dir():
            return self._mount
        plain = self.plain_path
        if plain is not None:
            if not plain.is_dir():
                raise EnvironmentNotReady(
                    f"Drive '{self.name}': {plain} is not there (unplugged or not mounted).",
                    hint="Plug the drive in or mount the volume, then try again.",
                )
            self._mount = plain
        else:
            mount = self.current_drive().mount_point
            assert mount is not None  # require_drive refuses unmounted drives
            self._mount = mount
        return self._mount

    @property
    def root(self) -> Path:  # type: ignore[override]
        return self.mount_point() / DRIVE_DIR / self.plan_id

    @property
    def base_root(self) -> Path:  # type: ignore[override]
        """A drive's folder is already the plan's own (`drgui/<plan id>/`): no further scope, no legacy layout."""
        return self.root

    def available(self) -> bool:
        """False when unplugged, locked or unmounted: absent drives are normal, not errors."""
        try:
            self.mount_point()
        except EnvironmentNotReady:
            return False
        return True

    def eject_commands(self) -> list[list[str]] | None:
        """Commands after which the drive is safe to unplug; None when there is no such command."""
        if not self.uuid:
            return None
        try:
            return eject_commands(self.current_drive())
        except EnvironmentNotReady:
            return None

    def eject(self) -> None:
        """Unmount, lock and power off the drive (Linux), or eject it (macOS): then it is safe to unplug."""
        commands = self.eject_commands()
        if not commands:
            raise UsageError(
                f"drgui cannot eject drive '{self.name}' here"
                + ("" if self.uuid else " (it is registered as a plain directory)")
                + ".",
                hint='Eject it in the file manager (Windows: "Safely Remove Hardware").',
            )
        run_eject(commands)

    def describe(self) -> str:
        encryption = self.settings.get("encryption", "unknown")
        if not self.uuid:
            return (
                f"directory {self.plain_path} used as a drive (encryption not checked, allowed unencrypted)"
            )
        label = self.settings.get("label")
        what = (
            f'drive "{label}" (UUID {self.uuid}, {encryption})'
            if label
            else f"drive {self.uuid} ({encryption})"
        )
        try:
            return f"{what} at {self.mount_point()}"
        except (EnvironmentNotReady, UsageError):
            return f"{what}, not plugged in"


def drive_settings(drive: Drive, plan_id: str, allow_unencrypted: bool) -> dict[str, Any]:
    """What config.toml keeps about a drive: identifiers, never a mount path."""
    settings: dict[str, Any] = {
        "uuid": drive.uuid,
        "encryption": drive.encryption,
        "allow_unencrypted": allow_unencrypted,
        "plan_id": plan_id,
    }
    if drive.container_uuid:
        settings["container_uuid"] = drive.container_uuid
    if drive.label:
        settings["label"] = drive.label
    return settings


def build_drive(
    settings: dict[str, Any], secrets: dict[str, str], ctx: BuildContext, drives: DriveLister | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """`uuid` or `path` (a mount point) [+ allow_unencrypted] -> what config.toml keeps about the drive.

    Exit 2 for an unencrypted drive without allow_unencrypted (the message says how to encrypt it) or a
    plain directory without it; exit 3 for a uuid that is not plugged in. The CLI and the app both come here.
    """
    lister = drives or list_drives
    allow = bool(settings.get("allow_unencrypted", False))
    uuid, mount = settings.get("uuid"), settings.get("path")
    if bool(uuid) == bool(mount):
        raise UsageError(
            "A drive destination needs exactly one of a filesystem UUID (--uuid) or a mount point (--path).",
            hint="Plug the drive in and give its mount point, e.g. --path /media/you/DRKEY.",
        )
    if uuid:
        drive = require_drive(str(uuid), lister())
        check_encryption(drive, allow)
        return drive_settings(drive, ctx.plan_id, allow), secrets
    path = Path(str(mount))
    if not path.is_dir():
        missing = next((p for p in reversed(path.parents) if not p.exists()), None)
        raise UsageError(
            f"{path} is not a directory"
            + (f" ({missing} does not exist: is the drive mounted?)." if missing else "."),
            hint="Pass the mount point of the plugged-in drive.",
        )
    try:
        found = drive_for_path(path, lister())
    except EnvironmentNotReady:  # no drive tool here: the path can only be a plain directory
        found = None
    if found is not None:
        check_encryption(found, allow)
        return drive_settings(found, ctx.plan_id, allow), secrets
    # Not a drive the OS reports: nothing tells us it is encrypted, so the same rule as an unknown drive.
    check_encryption(
        Drive(
            uuid=str(path),
            label=None,
            mount_point=path,
            size=None,
            free=None,
            encryption="unknown",
            removable=True,
            device=None,
        ),
        allow,
    )
    return {
        "path": str(path),
        "allow_unencrypted": True,
        "encryption": "unknown",
        "plan_id": ctx.plan_id,
    }, secrets


def _open(config: DestConfig, store: SecretStore | None, scope: str = "") -> DriveDestination:
    return DriveDestination(config, store)  # already per plan: `drgui/<plan id>/` on the drive


def locate_drive(settings: Mapping[str, Any], plan_id: str) -> tuple[str, str]:
    label = settings.get("label") or "(no label)"
    return (
        f"removable drive {label}, filesystem UUID {settings.get('uuid', '?')}",
        f"last mounted at {settings['path']}" if settings.get("path") else "",
    )


KIND = Kind(
    name="drive",
    role="destination",
    label="Removable drive (USB stick, external disk)",
    description="a removable drive found by filesystem UUID, wherever it is mounted; encrypted unless allowed",
    settings=(
        Setting(
            "path",
            "the mount point of the plugged-in drive",
            label="Mount point",
            path=True,
            widget="dir",
            replaces=("uuid",),
        ),
        Setting(
            "uuid",
            "the drive's filesystem UUID (instead of --path)",
            label="or filesystem UUID",
            replaces=("path",),
        ),
        Setting(
            "allow_unencrypted",
            "accept a drive without encryption (BitLocker, FileVault, LUKS)",
            label="Accept an unencrypted drive",
            type=bool,
        ),
    ),
    opener=_open,
    build=build_drive,
    derived=("encryption", "plan_id", "label", "container_uuid"),
    locate=locate_drive,
    default_retention={"daily": 7},
    scoped=False,
    order=2,
)
