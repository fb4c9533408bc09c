"""Build a Destination from its config: the one place that maps kinds to classes."""

from __future__ import annotations

from drgui.core.config import DestConfig
from drgui.core.destinations.base import Destination
from drgui.core.errors import UsageError
from drgui.core.secrets import SecretStore


def open_destination(config: DestConfig, store: SecretStore | None = None) -> Destination:
    if config.kind == "local":
        from drgui.core.destinations.local import LocalDestination

        return LocalDestination(config, store)
    if config.kind == "s3":
        from drgui.core.destinations.s3 import S3Destination  # type: ignore[import-not-found]

        return S3Destination(config, store)
    if config.kind == "drive":
        from drgui.core.destinations.drive import DriveDestination  # type: ignore[import-not-found]

        return DriveDestination(config, store)
    raise UsageError(f"Unknown destination kind '{config.kind}'.", hint="Use local, s3 or drive.")
