"""Creating a plan and adding or removing its sources and destinations (shared by the CLI and the GUI)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drgui.core.engine.crypto import generate_keypair, passphrase_problem, wrap_identity
from drgui.core.engine.destinations.registry import DEST_KINDS, dest_kind, open_destination
from drgui.core.engine.fsutil import atomic_write_bytes
from drgui.core.engine.kinds import SECRET_STORE_KIND, BuildContext, Kind, Role, kept_on_edit, merge_for_edit
from drgui.core.engine.snapshot import IDENTITY_FILE
from drgui.core.engine.sources.registry import SOURCE_KINDS, open_source, source_kind
from drgui.core.errors import DrguiError, UsageError
from drgui.core.plan import config as config_module
from drgui.core.plan.config import (
    DestConfig,
    Plan,
    SourceConfig,
    check_name,
    parse_interval,
)
from drgui.core.plan.home import Home
from drgui.core.plan.secrets import SecretStore, require_keyring
from drgui.core.plan.workspace import IDENTITY_KEY, Workspace
from drgui.core.timing.retention import Policy


def init_plan(home: Home, name: str, passphrase: str, *, rto: str = "4h", rpo: str = "24h") -> Workspace:
    if home.exists():
        raise UsageError(
            f"{home.path} already holds a plan.", hint="Use another --home, or remove that directory."
        )
    problem = passphrase_problem(passphrase)
    if problem:
        raise UsageError(
            f"The recovery passphrase is too weak: {problem}",
            hint="Pick 5 or more random words (a password manager can generate them) and write them down.",
        )
    require_keyring()
    pair = generate_keypair()
    plan = Plan(
        plan_id=Plan.new_id(),
        name=name,
        recipient=pair.recipient,
        rto_seconds=parse_interval(rto),
        rpo_seconds=parse_interval(rpo),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    home.ensure()
    SecretStore(plan.plan_id, home.create_home_id()).set(*IDENTITY_KEY, pair.identity)
    atomic_write_bytes(home.path / IDENTITY_FILE, wrap_identity(pair, passphrase), 0o600)
    config_module.save(home, plan)
    ws = Workspace(home, plan)
    ws.history.append_event("plan.init", {"plan": plan.plan_id, "name": name, "rto": rto, "rpo": rpo})
    return ws


def _check_new_name(names: list[str], name: str, what: str) -> None:
    check_name(name, what)
    if name in names:
        raise UsageError(
            f"There is already a {what} named '{name}'.", hint="Pick another name or remove it first."
        )


def kind_of(role: Role, kind: str) -> Kind:
    return (source_kind if role == "source" else dest_kind)(kind)


def kinds_of(role: Role) -> tuple[Kind, ...]:
    return (SOURCE_KINDS if role == "source" else DEST_KINDS).all()


def _store_kind(role: Role) -> str:
    return SECRET_STORE_KIND[role]


def add(
    ws: Workspace,
    role: Role,
    name: str,
    kind: str,
    values: Mapping[str, Any],
    *,
    secrets: Mapping[str, str] | None = None,
    fallback: Mapping[str, str] | None = None,
    test: bool = True,
) -> SourceConfig | DestConfig:
    """Add a source or destination from the values of its kind's settings (CLI options, form fields),
    checked by the kind's declaration (`Kind.build_settings`: the same path as `edit`)."""
    spec = kind_of(role, kind)
    _check_new_name([e.name for e in _entries(ws, role)], name, role)
    ctx = BuildContext(role, kind, name, ws.plan.plan_id, fallback=dict(fallback or {}))
    settings, clean_secrets = spec.build_settings(values, dict(secrets or {}), ctx)
    if role == "source":
        return add_source(ws, name, kind, settings, secrets=clean_secrets, test=test)
    return add_destination(ws, name, kind, settings, secrets=clean_secrets, test=test)


def _entries(ws: Workspace, role: Role) -> list[SourceConfig] | list[DestConfig]:
    return ws.plan.sources if role == "source" else ws.plan.destinations


def add_source(
    ws: Workspace,
    name: str,
    kind: str,
    settings: dict[str, Any],
    *,
    secrets: dict[str, str] | None = None,
    test: bool = True,
) -> SourceConfig:
    """Store secrets in the keyring, test (unless told not to), then save; nothing is kept on failure.
    `settings` are in their stored form (as `add` builds them; the demo and tests pass them directly)."""
    spec = source_kind(kind)
    settings, secrets = _new_entry(ws, "source", name, settings, secrets)
    if "has_password" in spec.derived:
        settings.setdefault("has_password", "password" in secrets)
    source_config = SourceConfig(name, kind, settings)
    _store_and_check(
        ws,
        "source",
        name,
        secrets,
        lambda: open_source(source_config, ws.store).preflight() if test else None,
    )
    _save_added(ws, "source", source_config)
    return source_config


def _store_and_check(
    ws: Workspace, role: Role, name: str, secrets: Mapping[str, str], check: Callable[[], object]
) -> None:
    """Put the secrets in the keyring and run `check`; on failure the keyring is as it was before."""
    store_kind = _store_kind(role)
    before = {field: ws.store.get(store_kind, name, field) for field in secrets}
    for field_name, value in secrets.items():
        ws.store.set(store_kind, name, field_name, value)
    try:
        check()
    except BaseException as error:
        for field_name, old in before.items():
            if old is None:
                ws.store.delete(store_kind, name, field_name)
            else:
                ws.store.set(store_kind, name, field_name, old)
        if isinstance(error, DrguiError):
            error.exit_code = 2 if error.exit_code == 1 else error.exit_code
        raise


def _new_entry(
    ws: Workspace, role: Role, name: str, settings: dict[str, Any], secrets: dict[str, str] | None
) -> tuple[dict[str, Any], dict[str, str]]:
    """What both adds check and normalise: a name not yet taken, `path` made absolute, empty secrets
    dropped."""
    _check_new_name([e.name for e in _entries(ws, role)], name, role)
    settings = dict(settings)
    if "path" in settings:
        settings["path"] = str(Path(settings["path"]).expanduser().absolute())
    return settings, {k: v for k, v in (secrets or {}).items() if v}


def _save_added(ws: Workspace, role: Role, config: SourceConfig | DestConfig) -> None:
    entries: list[Any] = _entries(ws, role)
    entries.append(config)
    ws.save()
    ws.history.append_event(f"settings.{_store_kind(role)}_add", {"name": config.name, "kind": config.kind})


def _remove(ws: Workspace, role: Role, name: str) -> None:
    """Forget a source or destination and every keyring entry any kind of its role could have left."""
    entry = ws.plan.source(name) if role == "source" else ws.plan.destination(name)
    store_kind = _store_kind(role)
    for field_name in _all_secret_fields(role):
        ws.store.delete(store_kind, name, field_name)
    entries: list[Any] = _entries(ws, role)
    entries.remove(entry)
    ws.save()
    ws.history.append_event(f"settings.{store_kind}_remove", {"name": name})


def remove_source(ws: Workspace, name: str) -> None:
    _remove(ws, "source", name)


def _all_secret_fields(role: Role) -> tuple[str, ...]:
    """Every secret field any kind of the role declares (a removed entry leaves none behind)."""
    return tuple(dict.fromkeys(f for spec in kinds_of(role) for f in spec.secret_fields))


def add_destination(
    ws: Workspace,
    name: str,
    kind: str,
    settings: dict[str, Any],
    *,
    secrets: dict[str, str] | None = None,
    test: bool = True,
    object_lock: str | None = None,
) -> DestConfig:
    """As `add_source`; the destination's directory is made (kinds that say so), tested, and given the
    plan's wrapped identity."""
    spec = dest_kind(kind)
    settings, secrets = _new_entry(ws, "destination", name, settings, secrets)
    dest_config = DestConfig(name, kind, settings, dict(spec.default_retention))
    _store_and_check(ws, "destination", name, secrets, lambda: _prepare(ws, spec, dest_config, test))
    _save_added(ws, "destination", dest_config)
    return dest_config


def _prepare(ws: Workspace, spec: Kind, config: DestConfig, test: bool, *, moved: bool = True) -> None:
    """Make the destination's directory (kinds that have one; only when it is new or moved: an edit of
    retention never recreates the folder of an unmounted NAS), test it, give it the wrapped identity."""
    dest = open_destination(config, ws.store)
    if spec.creates_root and moved:
        dest.ensure_root()
    lock_mode = config.settings.pop("object_lock_mode", None)  # an input: the mode set is `object_lock`
    detect_lock = getattr(dest, "detect_object_lock", None)  # S3: retention when the bucket has it
    if detect_lock is not None and (test or lock_mode):
        detect_lock(lock_mode)
    if test:
        dest.test()
    if moved and ws.wrapped_identity_path.exists():
        dest.put_bytes(IDENTITY_FILE, ws.wrapped_identity_path.read_bytes())


def remove_destination(ws: Workspace, name: str) -> None:
    _remove(ws, "destination", name)


# --- edit ------------------------------------------------------------------------------------------

# `dest edit --keep-*`: the retention rules a person sets by hand (restic's --keep-* options), as
# (option suffix, Policy field, type, help). Checked by retention.Policy, as config.toml's retention table is.
RETENTION_RULES: tuple[tuple[str, str, type, str], ...] = (
    ("last", "last", int, "keep the N newest snapshots"),
    ("hourly", "hourly", int, "keep the newest snapshot of each of the last N hours"),
    ("daily", "daily", int, "keep the newest snapshot of each of the last N days"),
    ("weekly", "weekly", int, "keep the newest snapshot of each of the last N weeks"),
    ("monthly", "monthly", int, "keep the newest snapshot of each of the last N months"),
    ("yearly", "yearly", int, "keep the newest snapshot of each of the last N years"),
    ("within", "within", str, "keep every snapshot newer than this (restic's grammar: 30d, 1y2m, 2w)"),
)


def edit(
    ws: Workspace,
    role: Role,
    name: str,
    changes: Mapping[str, Any],
    *,
    secrets: Mapping[str, str] | None = None,
    fallback: Mapping[str, str] | None = None,
    retention: Mapping[str, Any] | None = None,
    test: bool = True,
) -> SourceConfig | DestConfig:
    """Change some settings of a source or destination (None or a missing key: unchanged), new secrets
    into the keyring (after a rotation) and, for a destination, retention rules. The result is checked
    exactly as `add` checks (the kind's `build_settings`) and tested; on any failure config.toml and the
    keyring stay as they were."""
    old = ws.plan.source(name) if role == "source" else ws.plan.destination(name)
    spec = kind_of(role, old.kind)
    store_kind = _store_kind(role)
    given_secrets = {k: v for k, v in (secrets or {}).items() if v}
    ctx = BuildContext(
        role,
        old.kind,
        name,
        ws.plan.plan_id,
        existing=dict(old.settings),
        existing_secrets=frozenset(f for f in spec.secret_fields if ws.store.get(store_kind, name, f)),
        fallback=dict(fallback or {}),
    )
    values = merge_for_edit(spec, old.settings, changes)
    built, new_secrets = spec.build_settings(values, given_secrets, ctx)
    settings = {**kept_on_edit(spec, old.settings), **built}
    missing = [f for f in settings.get("secrets_missing", []) if f not in new_secrets]
    settings.pop("secrets_missing", None)
    if missing:
        settings["secrets_missing"] = missing
    if isinstance(old, DestConfig):
        rules = dict(old.retention)
        rules.update({k: v for k, v in (retention or {}).items() if v is not None})
        try:  # the check of config.toml's retention table; 0 or "" turns a rule off
            rules = Policy.from_dict(rules).to_dict()
        except UsageError as error:
            error.message = f"Destination '{name}': {error.message}"
            raise
        if retention and not rules:
            raise UsageError(
                f"Destination '{name}' would keep no retention rule at all (prune would use the defaults).",
                hint="Keep at least one rule, e.g. --keep-daily 7.",
            )
        dest_config = DestConfig(name, old.kind, settings, rules)
        moved = settings != old.settings
        _store_and_check(
            ws, role, name, new_secrets, lambda: _prepare(ws, spec, dest_config, test, moved=moved)
        )
        ws.plan.destinations[ws.plan.destinations.index(old)] = dest_config
        new_config: SourceConfig | DestConfig = dest_config
    else:
        source_config = SourceConfig(name, old.kind, settings)
        _store_and_check(
            ws,
            role,
            name,
            new_secrets,
            lambda: open_source(source_config, ws.store).preflight() if test else None,
        )
        ws.plan.sources[ws.plan.sources.index(old)] = source_config
        new_config = source_config
    ws.save()
    changed = sorted(k for k in {*old.settings, *settings} if old.settings.get(k) != settings.get(k))
    detail: dict[str, Any] = {
        "name": name,
        "kind": old.kind,
        "settings": changed,
        "secrets": sorted(new_secrets),
    }
    if isinstance(new_config, DestConfig):
        detail["retention"] = new_config.retention
    ws.history.append_event(f"settings.{store_kind}_edit", detail)
    return new_config
