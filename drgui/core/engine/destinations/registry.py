"""Build a Destination from its config: the one place that maps kinds to classes."""

from __future__ import annotations

from drgui.core.engine.destinations.base import Destination
from drgui.core.errors import UsageError
from drgui.core.plan.config import DestConfig
from drgui.core.plan.secrets import SecretStore


def open_destination(
    config: DestConfig,
    store: SecretStore | None = None,
    plan_id: str | None = None,
    *,
    for_prune: bool = False,
) -> Destination:
    """The destination as one plan sees it: scoped to `<root>/<plan id>/` (the plan id defaults to the
    store's). A drive's folder is already per plan (`drgui/<plan id>/`), so it gets no further scope."""
    scope = plan_id if plan_id is not None else (store.plan_id if store is not None else "")
    if config.kind == "local":
        from drgui.core.engine.destinations.local import LocalDestination

        return LocalDestination(config, store, scope=scope)
    if config.kind == "s3":
        from drgui.core.engine.destinations.s3 import S3Destination

        return S3Destination(config, store, scope=scope, for_prune=for_prune)  # prune: the prune key
    if config.kind == "drive":
        from drgui.core.engine.destinations.drive import DriveDestination

        return DriveDestination(config, store)
    raise UsageError(f"Unknown destination kind '{config.kind}'.", hint="Use local, s3 or drive.")
