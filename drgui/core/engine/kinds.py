"""What a source or destination kind declares, once: the vocabulary of the kind registry.

Every kind is ONE module under `drgui/core/engine/sources/` or `drgui/core/engine/destinations/` that
defines, next to its Source or Destination class, a module-level `KIND = Kind(...)`: its name, a label
and a one-line description, its settings (`Setting`: name, type, help, required, secret, repeatable,
default, validation, how a secret is obtained), the class to open, and the few hooks a kind may need
(`build` for rules across settings, `to_values` to show stored settings in an edit form, `locate` for
the recovery kit, `restore_as` for restore). The registries (`sources/registry.py`,
`destinations/registry.py`) find those modules by walking their package, so a new kind touches no
other file; `register()` adds a kind from anywhere else (a plug-in, a test).

Everything that differs per kind is generated from the declaration: the CLI options of
`source|dest add|edit` (drgui.cli), the add and edit forms of the app (drgui.gui.dialogs), `setup`'s
validation (`Kind.build_settings`, the one code path of add and edit), the kit's description and
restore's dispatch. Core receives plain mappings (setting name -> value): it never sees argparse.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from drgui.core.errors import UsageError

Role = Literal["source", "destination"]
COMMANDS: Mapping[Role, str] = {"source": "source", "destination": "dest"}  # `drgui source|dest ...`
SECRET_STORE_KIND: Mapping[Role, str] = {"source": "source", "destination": "dest"}  # keyring entry kind

# How a restored source comes back; restore.py has one function per form (kinds choose one):
RESTORE_DATABASE = "database"  # into a new database: --to-dsn
RESTORE_TREE = "tree"  # a tree of files into a directory: --to-dir (a tar part, extract.py's rules)
RESTORE_FILE = "file"  # one file (the .env): --to-dir
RESTORE_REPOSITORY = "repository"  # a git bundle cloned: --to-dir

Widget = Literal["text", "dir", "file"]


@dataclass(frozen=True)
class Setting:
    """One setting of a kind. `name` is its key in config.toml (or the keyring field for a secret) and
    in the mappings core receives; the CLI option is `--name-with-dashes` (`--name-file` for a secret
    read from a file, so a secret never sits in argv or shell history)."""

    name: str
    help: str
    label: str = ""  # the app's form label (default: the name)
    type: type = str  # str, int, float or bool
    required: bool = False
    secret: bool = False  # kept in the keyring under `name`, never in config.toml
    secret_file: bool = False  # CLI: the value is read from --NAME-file FILE
    env: str | None = None  # CLI: read from this environment variable when not given (see `env_values`)
    prompt: str | None = None  # CLI: asked on a terminal when missing and `prompt_after` was given
    prompt_after: str | None = None
    repeatable: bool = False  # a list of text: an option given several times, comma-separated in the app
    default: Any = None
    path: bool = False  # a filesystem path: made absolute (~ expanded)
    widget: Widget = "text"
    placeholder: str = ""
    validate: Callable[[Any], Any] | None = None  # returns the clean value or raises UsageError
    stored: bool = True  # False: an input the kind's `build` turns into other settings (a DSN, a mount point)
    replaces: tuple[str, ...] = ()  # an edit that gives this setting drops these (--path instead of --uuid)

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-") + ("-file" if self.secret_file else "")

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ")


@dataclass(frozen=True)
class BuildContext:
    """What a kind's `build` may look at besides the values: who it is for and, when editing, the old state."""

    role: Role
    kind: str
    name: str
    plan_id: str
    existing: Mapping[str, Any] | None = None  # the stored settings when editing, None when adding
    existing_secrets: frozenset[str] = frozenset()  # secret fields the keyring holds when editing
    # secrets found in the environment (`Setting.env`, CLI only): used when nothing else gives them
    fallback: Mapping[str, str] = field(default_factory=dict)


Build = Callable[[dict[str, Any], dict[str, str], BuildContext], tuple[dict[str, Any], dict[str, str]]]


@dataclass(frozen=True)
class Kind:
    name: str
    role: Role
    label: str  # what the app's Kind list shows
    description: str  # one line: `--help`, the kit
    settings: tuple[Setting, ...]
    opener: Callable[..., Any]  # source: (config, store); destination: (config, store, scope)
    build: Build | None = None  # rules across settings, after each setting was checked on its own
    # what stored settings stand for beyond the declared ones kept as they are (a DSN from its parts)
    to_values: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None
    uses_secrets: Callable[[Mapping[str, Any]], tuple[str, ...]] | None = None  # default: all secret fields
    derived: tuple[str, ...] = ()  # stored keys `build` writes (dropped and rebuilt by an edit)
    locate: Callable[[Mapping[str, Any], str], tuple[str, str]] | None = None  # kit: (where, detail)
    restore_as: str = ""  # source kinds: one of the RESTORE_* forms
    restore_to_bucket: bool = False  # source kinds: can also restore into a bucket (--to-bucket)
    default_retention: Mapping[str, int] = field(default_factory=dict)  # destination kinds
    scoped: bool = True  # destination kinds: opened under `<root>/<plan id>/`
    creates_root: bool = False  # destination kinds: its directory is made when added
    prune_key: bool = False  # destination kinds: the opener takes for_prune=True (a key kept apart for prune)
    order: int = 50  # where the CLI's choices and the app's Kind list show it (most used first)

    def setting(self, name: str) -> Setting:
        for setting in self.settings:
            if setting.name == name:
                return setting
        raise KeyError(name)

    @property
    def secret_fields(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.settings if s.secret)

    @property
    def what(self) -> str:
        return f"{self.name} {self.role}"

    def secrets_used(self, settings: Mapping[str, Any]) -> tuple[str, ...]:
        """The secret fields stored settings rely on (a kit import marks them missing on the new machine)."""
        return self.uses_secrets(settings) if self.uses_secrets is not None else self.secret_fields

    def values_of(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        """The form values (setting name -> value) that stored settings stand for; no secrets."""
        values = {s.name: settings[s.name] for s in self.settings if not s.secret and s.name in settings}
        if self.to_values is not None:
            values.update(self.to_values(settings))
        return values

    def build_settings(
        self, values: Mapping[str, Any], secrets: Mapping[str, str], ctx: BuildContext
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """Values and secrets as given (CLI options, form fields) -> (settings for config.toml, secrets for
        the keyring): each setting checked on its own, then the kind's rules. Add and edit both come here."""
        known = {s.name for s in self.settings}
        unknown = sorted(set(values) - known) + sorted(set(secrets) - set(self.secret_fields))
        if unknown:
            raise UsageError(
                f"A {self.what} has no setting {', '.join(unknown)}.",
                hint=f"Its settings: {', '.join(sorted(known))}.",
            )
        settings: dict[str, Any] = {}
        clean_secrets = {k: v for k, v in secrets.items() if v}
        for setting in self.settings:
            if setting.secret:
                continue
            try:
                value = _clean(self, setting, values.get(setting.name))
                # an edit re-checks what it changes: a retention edit is not refused because the NAS the
                # unchanged path is on is unmounted right now (the connection test still says so)
                unchanged = ctx.existing is not None and ctx.existing.get(setting.name) == value
                if value is not None and setting.validate is not None and not unchanged:
                    value = setting.validate(value)
            except UsageError as error:  # say which source or destination the value was for
                error.message = f"{ctx.role.capitalize()} '{ctx.name}': {error.message}"
                raise
            if value is None and setting.default is not None:
                value = setting.default
            if value is None:
                if setting.required:
                    raise self.missing(setting)
                continue
            settings[setting.name] = value
        if self.build is not None:
            return self.build(settings, clean_secrets, ctx)
        return settings, {**{k: v for k, v in ctx.fallback.items() if v}, **clean_secrets}

    def missing(self, setting: Setting) -> UsageError:
        """The one refusal of a required setting left empty (CLI and app alike)."""
        example = f" {setting.placeholder}" if setting.placeholder else ""
        if setting.path:
            hint = f"Choose a path: Browse… in the app, {setting.option} PATH on the command line."
        else:
            hint = f"Fill in {setting.title} in the app, or pass {setting.option}{example or ' ...'}."
        return UsageError(f"A {self.what} needs {setting.title.lower()} ({setting.option}).", hint=hint)

    def check_required(self, values: Mapping[str, Any]) -> None:
        """Only the required-setting check of `build_settings`, touching nothing (the app runs it at once,
        before the full check runs on its worker)."""
        for setting in self.settings:
            empty = values.get(setting.name) in (None, "", []) and setting.default is None
            if setting.required and not setting.secret and empty:
                raise self.missing(setting)


def _clean(kind: Kind, setting: Setting, value: Any) -> Any:
    """One value as typed (text from a form, a typed value from the CLI) -> its clean value, None if empty."""
    if value is None or value == "" or value == []:
        return None
    where = f"{kind.what}: {setting.title}"
    if setting.repeatable:
        items = value.split(",") if isinstance(value, str) else list(value)
        value = [str(item).strip() for item in items if str(item).strip()]
        if not value:
            return None
    elif setting.type is bool:
        if isinstance(value, str):
            if value.strip().lower() not in ("true", "false", "yes", "no", "1", "0"):
                raise UsageError(f"{where} must be true or false, not {value!r}.")
            value = value.strip().lower() in ("true", "yes", "1")
        value = bool(value)
    elif setting.type in (int, float):
        try:
            value = setting.type(str(value).strip())
        except ValueError:
            raise UsageError(
                f"{where} must be {'a whole number' if setting.type is int else 'a number'}, not {value!r}.",
                hint=setting.help,
            ) from None
    else:
        value = str(value).strip()
        if not value:
            return None
        if setting.path:
            value = str(Path(value).expanduser().absolute())
    return value


def merge_for_edit(kind: Kind, existing: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """The values an edit builds from: what the stored settings stand for, with the given changes on top
    (None means "unchanged"; an empty text or list clears an optional setting)."""
    values = kind.values_of(existing)
    for key, value in changes.items():
        if value is None:
            continue
        values[key] = value
        if value not in ("", []) and key in {s.name for s in kind.settings}:
            for dropped in kind.setting(key).replaces:  # --path given to a drive known by --uuid
                if changes.get(dropped) in (None, ""):
                    values.pop(dropped, None)
    return values


def kept_on_edit(kind: Kind, existing: Mapping[str, Any]) -> dict[str, Any]:
    """Stored settings no declaration covers (hand-written tuning such as part_size_mb): an edit keeps them."""
    declared = {s.name for s in kind.settings} | set(kind.derived)
    return {k: v for k, v in existing.items() if k not in declared}


class KindRegistry:
    """The kinds of one role: every `KIND` declared by a module of `package`, found on first use, plus
    those given to `register()`. Looking a kind up never imports anything but those modules."""

    def __init__(self, role: Role, package: str, skip: tuple[str, ...] = ("base", "registry")) -> None:
        self.role, self.package, self.skip = role, package, skip
        self._kinds: dict[str, Kind] | None = None
        self._extra: dict[str, Kind] = {}

    def _discover(self) -> dict[str, Kind]:
        if self._kinds is None:
            import importlib
            import pkgutil

            found: dict[str, Kind] = {}
            package = importlib.import_module(self.package)
            for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
                if info.name in self.skip or info.name.startswith("_"):
                    continue
                declared = getattr(importlib.import_module(f"{self.package}.{info.name}"), "KIND", None)
                if isinstance(declared, Kind) and declared.role == self.role:
                    found[declared.name] = declared
            self._kinds = dict(sorted(found.items(), key=lambda item: (item[1].order, item[0])))
        return {**self._kinds, **self._extra}

    def register(self, kind: Kind) -> Kind:
        """Add a kind declared outside the package (a plug-in or a test); `unregister` takes it away."""
        if kind.role != self.role:
            raise ValueError(f"{kind.name} is a {kind.role} kind, not a {self.role} kind")
        self._extra[kind.name] = kind
        return kind

    def unregister(self, name: str) -> None:
        self._extra.pop(name, None)

    def names(self) -> tuple[str, ...]:
        return tuple(self._discover())

    def all(self) -> tuple[Kind, ...]:
        return tuple(self._discover().values())

    def get(self, name: str) -> Kind:
        kinds = self._discover()
        if name not in kinds:
            raise UsageError(
                f"Unknown {self.role} kind '{name}'.", hint=f"Use one of: {', '.join(kinds) or 'none'}."
            )
        return kinds[name]
