"""The destination kinds (every module of this package that declares `KIND`) and opening a Destination."""

from __future__ import annotations

from drgui.core.engine.destinations.base import Destination
from drgui.core.engine.kinds import Kind, KindRegistry
from drgui.core.plan.config import DestConfig
from drgui.core.plan.secrets import SecretStore

DEST_KINDS = KindRegistry("destination", "drgui.core.engine.destinations")


def dest_kind(name: str) -> Kind:
    return DEST_KINDS.get(name)


def open_destination(
    config: DestConfig,
    store: SecretStore | None = None,
    plan_id: str | None = None,
    *,
    for_prune: bool = False,
) -> Destination:
    """The destination as one plan sees it: scoped to `<root>/<plan id>/` (the plan id defaults to the
    store's). A kind that is already per plan (a drive's `drgui/<plan id>/`) declares `scoped=False`."""
    kind = dest_kind(config.kind)
    scope = plan_id if plan_id is not None else (store.plan_id if store is not None else "")
    if for_prune and kind.prune_key:  # the prune key, where the kind has one (S3)
        dest = kind.opener(config, store, scope=scope if kind.scoped else "", for_prune=True)
    else:
        dest = kind.opener(config, store, scope=scope if kind.scoped else "")
    assert isinstance(dest, Destination)
    return dest
