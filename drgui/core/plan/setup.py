"""Creating a plan and adding or removing its sources and destinations (shared by the CLI and the GUI)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drgui.core.engine.crypto import generate_keypair, passphrase_problem, wrap_identity
from drgui.core.engine.destinations.registry import open_destination
from drgui.core.engine.fsutil import atomic_write_bytes
from drgui.core.engine.snapshot import IDENTITY_FILE
from drgui.core.engine.sources.registry import open_source
from drgui.core.errors import DrguiError, UsageError
from drgui.core.plan import config as config_module
from drgui.core.plan.config import (
    DEST_KINDS,
    SOURCE_KINDS,
    DestConfig,
    Plan,
    SourceConfig,
    check_name,
    parse_interval,
)
from drgui.core.plan.home import Home
from drgui.core.plan.secrets import DEST_SECRET_FIELDS, SOURCE_SECRET_FIELDS, SecretStore, require_keyring
from drgui.core.plan.workspace import IDENTITY_KEY, Workspace

DEFAULT_RETENTION = {"local": {"daily": 7}, "drive": {"daily": 7}, "s3": {"daily": 30, "monthly": 12}}


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


def add_source(
    ws: Workspace,
    name: str,
    kind: str,
    settings: dict[str, Any],
    *,
    secrets: dict[str, str] | None = None,
    test: bool = True,
) -> SourceConfig:
    """Validate, store secrets in the keyring, test (unless told not to), then save. Nothing is kept on failure."""
    if kind not in SOURCE_KINDS:
        raise UsageError(f"Unknown source kind '{kind}'.", hint=f"Use one of: {', '.join(SOURCE_KINDS)}.")
    _check_new_name([s.name for s in ws.plan.sources], name, "source")
    for key in ("path",):
        if key in settings:
            settings[key] = str(Path(settings[key]).expanduser().absolute())
    secrets = {k: v for k, v in (secrets or {}).items() if v}
    if kind == "postgres":
        settings["has_password"] = "password" in secrets
    source_config = SourceConfig(name, kind, settings)
    for field_name, value in secrets.items():
        ws.store.set("source", name, field_name, value)
    try:
        if test:
            open_source(source_config, ws.store).preflight()
    except DrguiError as error:
        for field_name in secrets:
            ws.store.delete("source", name, field_name)
        error.exit_code = 2 if error.exit_code == 1 else error.exit_code
        raise
    ws.plan.sources.append(source_config)
    ws.save()
    ws.history.append_event("settings.source_add", {"name": name, "kind": kind})
    return source_config


def remove_source(ws: Workspace, name: str) -> None:
    source = ws.plan.source(name)
    for field_name in SOURCE_SECRET_FIELDS:
        ws.store.delete("source", name, field_name)
    ws.plan.sources.remove(source)
    ws.save()
    ws.history.append_event("settings.source_remove", {"name": name})


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
    if kind not in DEST_KINDS:
        raise UsageError(f"Unknown destination kind '{kind}'.", hint=f"Use one of: {', '.join(DEST_KINDS)}.")
    _check_new_name([d.name for d in ws.plan.destinations], name, "destination")
    if "path" in settings:
        settings["path"] = str(Path(settings["path"]).expanduser().absolute())
    secrets = {k: v for k, v in (secrets or {}).items() if v}
    dest_config = DestConfig(name, kind, settings, dict(DEFAULT_RETENTION.get(kind, {})))
    for field_name, value in secrets.items():
        ws.store.set("dest", name, field_name, value)
    try:
        dest = open_destination(dest_config, ws.store)
        if kind == "local":
            dest.ensure_root()  # type: ignore[attr-defined]
        detect_lock = getattr(dest, "detect_object_lock", None)  # S3: retention when the bucket has it
        if detect_lock is not None and (test or object_lock):
            detect_lock(object_lock)
        if test:
            dest.test()
        if ws.wrapped_identity_path.exists():
            dest.put_bytes(IDENTITY_FILE, ws.wrapped_identity_path.read_bytes())
    except DrguiError as error:
        for field_name in secrets:
            ws.store.delete("dest", name, field_name)
        error.exit_code = 2 if error.exit_code == 1 else error.exit_code
        raise
    ws.plan.destinations.append(dest_config)
    ws.save()
    ws.history.append_event("settings.dest_add", {"name": name, "kind": kind})
    return dest_config


def remove_destination(ws: Workspace, name: str) -> None:
    dest = ws.plan.destination(name)
    for field_name in DEST_SECRET_FIELDS:
        ws.store.delete("dest", name, field_name)
    ws.plan.destinations.remove(dest)
    ws.save()
    ws.history.append_event("settings.dest_remove", {"name": name})
