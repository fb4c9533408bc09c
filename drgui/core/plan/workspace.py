"""One plan opened for work: its home, config, keyring entries and history, and helpers to open its parts."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from drgui.core.engine.destinations.base import Destination
from drgui.core.engine.destinations.local import LocalDestination
from drgui.core.engine.destinations.registry import open_destination
from drgui.core.engine.snapshot import IDENTITY_FILE
from drgui.core.engine.sources.base import Source
from drgui.core.engine.sources.registry import open_source
from drgui.core.errors import DrguiError, EnvironmentNotReady
from drgui.core.ops.history import Head, History
from drgui.core.plan import config as config_module
from drgui.core.plan.config import Plan
from drgui.core.plan.home import Home
from drgui.core.plan.secrets import DEST_SECRET_FIELDS, SOURCE_SECRET_FIELDS, SecretStore

IDENTITY_KEY = ("plan", "identity", "age")
WEBHOOK_KEY = ("plan", "webhook", "url")
LOCAL_KINDS = ("local", "drive")


class Workspace:
    def __init__(self, home: Home, plan: Plan | None = None) -> None:
        self.home = home
        self._plan = plan

    @property
    def plan(self) -> Plan:
        if self._plan is None:
            self._plan = config_module.load(self.home)
        return self._plan

    def reload(self) -> Plan:
        self._plan = None
        return self.plan

    def save(self) -> None:
        config_module.save(self.home, self.plan)

    @cached_property
    def store(self) -> SecretStore:
        """This home's keyring entries. A home made before home ids gets one now, with its entries copied
        from the legacy names; a home made since (init, kit import) never reads legacy names."""
        plan_id = self.plan.plan_id
        home_id = self.home.read_home_id()
        if home_id is not None:
            return SecretStore(plan_id, home_id)
        candidate = self.home.new_home_id()
        SecretStore(plan_id, candidate).adopt_legacy(self.secret_entries())
        home_id = self.home.create_home_id(candidate)
        store = SecretStore(plan_id, home_id)
        if home_id != candidate:  # another process opened this legacy home at the same moment
            store.adopt_legacy(self.secret_entries())
        return store

    def secret_entries(self) -> list[tuple[str, str, str]]:
        """(kind, name, field) of every keyring entry this plan may have."""
        entries = [IDENTITY_KEY, WEBHOOK_KEY]
        entries += [("source", s.name, f) for s in self.plan.sources for f in SOURCE_SECRET_FIELDS]
        entries += [("dest", d.name, f) for d in self.plan.destinations for f in DEST_SECRET_FIELDS]
        return entries

    @cached_property
    def history(self) -> History:
        """The history, its chain keyed with the plan's identity; a new log links to the newest anchor."""
        return History(self.home.history_path, identity=self._audit_identity, find_anchor=self._newest_anchor)

    def _audit_identity(self) -> str | None:
        """The identity for the audit chain's key, or None when it cannot be read now (records wait)."""
        try:
            return self.identity()
        except DrguiError:
            return None

    def _newest_anchor(self) -> tuple[Head, str] | None:
        from drgui.core.ops.anchors import newest_anchor

        try:
            return newest_anchor(self.destinations())
        except DrguiError:  # a destination that cannot be opened never stops a write to the history
            return None

    @property
    def wrapped_identity_path(self) -> Path:
        return self.home.path / IDENTITY_FILE

    def identity(self) -> str:
        """The plan's private age identity, from the keyring."""
        value = self.store.get(*IDENTITY_KEY)
        if not value:
            raise EnvironmentNotReady(
                "The plan's private key is not in this machine's keyring.",
                hint="Import it with `drgui kit import` (recovery kit + passphrase), or run `drgui init` for a new plan.",
            )
        return value

    def sources(self, names: list[str] | None = None) -> list[Source]:
        configs = [self.plan.source(n) for n in names] if names else list(self.plan.sources)
        return [open_source(c, self.store) for c in configs]

    def destinations(self, names: list[str] | None = None) -> list[Destination]:
        configs = [self.plan.destination(n) for n in names] if names else list(self.plan.destinations)
        return [open_destination(c, self.store) for c in configs]

    def destination(self, name: str, *, for_prune: bool = False) -> Destination:
        """`for_prune`: opened with the S3 prune key when one is given (only prune deletes)."""
        return open_destination(self.plan.destination(name), self.store, for_prune=for_prune)

    def queue_destination(self) -> LocalDestination:
        return LocalDestination.at(self.home.queue_dir, "queue")

    def default_read_destination(self) -> Destination:
        """Where a restore or drill reads from by default: the one a fresh machine would use (S3 first)."""
        dests = self.destinations()
        if not dests:
            from drgui.core.errors import UsageError

            raise UsageError("The plan has no destination.", hint="Add one with `drgui dest add`.")
        for dest in dests:
            if dest.kind == "s3":
                return dest
        for dest in dests:
            if dest.available() and dest.snapshot_ids():
                return dest
        return dests[0]
