"""The plan: a TOML file with no secrets, loaded into dataclasses and saved atomically.

Kind-specific settings of sources and destinations live in a flat `settings` mapping that the
kind's module validates (`drgui.core.engine.sources.registry`, `drgui.core.engine.destinations.registry`).
"""

from __future__ import annotations

import re
import secrets as _random
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import tomli_w

from drgui.core.engine.fsutil import atomic_write_text
from drgui.core.errors import UsageError
from drgui.core.plan.home import Home
from drgui.core.timing.schedule import PRESETS

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
SOURCE_KINDS = ("postgres", "folder", "env", "s3", "git")
DEST_KINDS = ("local", "s3", "drive")
_INTERVAL_RE = re.compile(r"^\s*(?:\d+\s*[smhdw]\s*)+$")
_INTERVAL_PART_RE = re.compile(r"(\d+)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Units of the other grammar (retention spans: y = years, m = months) and spelled-out words a reader might try.
_NOT_INTERVAL_RE = re.compile(
    r"\d\s*(y|mo|months?|years?|min|mins|minutes?|hours?|days?|weeks?|sec|seconds?)(?![a-z])"
)
_INTERVAL_HINT = "Write numbers with units s, m (minutes), h, d, w, e.g. 30m, 4h, 1d 12h, 2w."


def parse_interval(text: str | int) -> int:
    """A time interval (RTO, RPO) in seconds: '4h' -> 14400, '1d 2h' (or '1d2h', as saved) -> 93600.

    Units s, m (minutes), h, d, w: fixed lengths of time. A retention span ('1y2m', m = months) is a
    different grammar (`drgui.core.timing.retention.parse_retention_span`) and is refused here by name."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    if not isinstance(text, str):
        raise UsageError(f"{text!r} is not a time interval.", hint=_INTERVAL_HINT)
    if text.strip() == "0":
        return 0
    if not _INTERVAL_RE.match(text):
        other = _NOT_INTERVAL_RE.search(text)
        if other and other.group(1) in ("y", "mo", "month", "months", "year", "years"):
            raise UsageError(
                f"'{text}' is not a time interval: '{other.group(1)}' is a calendar unit of retention spans "
                "(y = years, m = months there), which have no fixed length.",
                hint=_INTERVAL_HINT + " Here m means minutes.",
            )
        if other:
            raise UsageError(
                f"'{text}' is not a time interval: write '{other.group(1)}' as one letter.",
                hint=_INTERVAL_HINT,
            )
        raise UsageError(f"'{text}' is not a time interval.", hint=_INTERVAL_HINT)
    return sum(int(number) * _UNIT_SECONDS[unit] for number, unit in _INTERVAL_PART_RE.findall(text))


def format_duration(seconds: float) -> str:
    """14400 -> '4h'; 5400 -> '1h 30m'; 42 -> '42s'."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return " ".join(parts[:2])


def check_name(name: str, what: str) -> str:
    if not NAME_RE.match(name):
        raise UsageError(
            f"'{name}' is not a valid {what} name.",
            hint="Use 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit.",
        )
    return name


@dataclass
class SourceConfig:
    name: str
    kind: str
    settings: dict[str, Any] = field(default_factory=dict)

    def to_toml(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, **self.settings}


@dataclass
class DestConfig:
    name: str
    kind: str
    settings: dict[str, Any] = field(default_factory=dict)
    retention: dict[str, Any] = field(default_factory=dict)

    def to_toml(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "kind": self.kind, **self.settings}
        if self.retention:
            data["retention"] = dict(self.retention)
        return data


DEFAULT_SCHEDULE = dict(PRESETS)


@dataclass
class Plan:
    plan_id: str
    name: str
    recipient: str
    rto_seconds: int = 4 * 3600
    rpo_seconds: int = 24 * 3600
    created: str = ""
    sources: list[SourceConfig] = field(default_factory=list)
    destinations: list[DestConfig] = field(default_factory=list)
    schedule: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_SCHEDULE))
    drill: dict[str, Any] = field(default_factory=dict)
    reminders: dict[str, Any] = field(default_factory=dict)
    contacts: list[dict[str, str]] = field(default_factory=list)

    @staticmethod
    def new_id() -> str:
        return _random.token_hex(4)

    def source(self, name: str) -> SourceConfig:
        return _named(self.sources, name, "source", "source")

    def destination(self, name: str) -> DestConfig:
        return _named(self.destinations, name, "destination", "dest")

    def to_toml(self) -> dict[str, Any]:
        return {
            "format": 1,
            "plan": {
                "id": self.plan_id,
                "name": self.name,
                "recipient": self.recipient,
                "rto": format_duration(self.rto_seconds).replace(" ", ""),
                "rpo": format_duration(self.rpo_seconds).replace(" ", ""),
                "created": self.created,
            },
            "schedule": dict(self.schedule),
            "drill": dict(self.drill),
            "reminders": dict(self.reminders),
            "contacts": list(self.contacts),
            "sources": [s.to_toml() for s in self.sources],
            "destinations": [d.to_toml() for d in self.destinations],
        }


_TEXT = (str,)
_WHOLE = (int,)
_NUMBER = (int, float)
_FLAG = (bool,)
# The type of every setting a kind reads from config.toml (one table for sources and destinations),
# (postgres connection keys are passed to libpq as text whatever their type),
# so a hand-edited `path = 42` is refused at load with the key and the fix, not deep inside a backup.
SETTING_TYPES: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(
        (
            "path",
            "bucket",
            "prefix",
            "endpoint_url",
            "region",
            "credentials",
            "profile",
            "storage_class",
            "sse",
            "sse_kms_key_id",
            "addressing_style",
            "retry_mode",
            "object_lock_mode",
            "object_lock",
            "uuid",
            "container_uuid",
            "label",
            "encryption",
            "plan_id",
        ),
        _TEXT,
    ),
    **dict.fromkeys(
        ("part_size_mb", "concurrency", "max_attempts", "object_lock_days", "object_lock_margin_days"), _WHOLE
    ),
    **dict.fromkeys(("connect_timeout", "read_timeout"), _NUMBER),
    **dict.fromkeys(("compat", "has_password", "allow_unencrypted"), _FLAG),
}
_LIST_OF_TEXT = ("exclude", "require", "secrets_missing")
_COMMANDS = {"source": "source", "destination": "dest"}
_TYPE_WORDS = {str: "text", int: "a whole number", float: "a number", bool: "true or false"}


def _type_word(value: Any) -> str:
    return {bool: "true/false", int: "a number", float: "a number", str: "text", list: "a list"}.get(
        type(value), "a table" if isinstance(value, dict) else type(value).__name__
    )


def _check_settings(section: str, entry_name: str, settings: dict[str, Any], where: str) -> None:
    for key, value in settings.items():
        expected = SETTING_TYPES.get(key)
        bad = False
        if expected is not None:
            # bool is an int in Python; a flag must be a real bool and a number must not be one
            bad = not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected)
            wanted = " or ".join(dict.fromkeys(_TYPE_WORDS[t] for t in expected))
        elif key in _LIST_OF_TEXT:
            bad = not (isinstance(value, list) and all(isinstance(v, str) for v in value))
            wanted = 'a list of text, e.g. ["a", "b"]'
        if bad:
            example = ' (in quotes, e.g. path = "/srv/backups")' if expected == _TEXT else ""
            raise UsageError(
                f"{where}: {section} '{entry_name}' has {key} = {value!r} ({_type_word(value)}); "
                f"{key} must be {wanted}.",
                hint=f"Edit {key} of that {section} in {where} to be {wanted}{example}, "
                f"or remove it and add it again with `drgui {_COMMANDS[section]} add`.",
            )


def _entry(section: str, raw: Any, where: str) -> tuple[str, str, dict[str, Any]]:
    """(name, kind, the other settings) of one [[sources]] or [[destinations]] table, type-checked."""
    if not isinstance(raw, dict):
        raise UsageError(f"{where}: an entry of [[{section}s]] is not a table.", hint=f"Fix {where} by hand.")
    raw = dict(raw)
    name, kind = raw.pop("name", None), raw.pop("kind", None)
    if not isinstance(name, str) or not isinstance(kind, str):
        raise UsageError(
            f"{where}: a {section} has name = {name!r}, kind = {kind!r}; both must be text.",
            hint=f'Write name = "..." and kind = "..." for every {section} in {where}.',
        )
    return name, kind, raw


def _interval_setting(plan: dict[str, Any], key: str, default: str, where: str) -> int:
    """[plan] rto / rpo: saved as format_duration squashed ('1d2h'); read with the one interval grammar."""
    text = str(plan.get(key, default))
    try:
        return parse_interval(text)
    except UsageError as error:
        raise UsageError(f"{where}: [plan] {key}: {error.message}", hint=error.hint) from None


def plan_from_toml(data: dict[str, Any], where: str = "config.toml") -> Plan:
    plan = data.get("plan") or {}
    for table, expected in (("plan", dict), ("schedule", dict), ("drill", dict), ("reminders", dict)):
        if not isinstance(data.get(table, {}), expected):
            raise UsageError(f"{where}: [{table}] is not a table.", hint=f"Fix [{table}] in {where} by hand.")
    for table in ("sources", "destinations", "contacts"):
        if not isinstance(data.get(table, []), list):
            raise UsageError(
                f"{where}: {table} is not a list of tables.", hint=f"Write [[{table}]] tables in {where}."
            )
    try:
        result = Plan(
            plan_id=str(plan["id"]),
            name=str(plan["name"]),
            recipient=str(plan["recipient"]),
            rto_seconds=_interval_setting(plan, "rto", "4h", where),
            rpo_seconds=_interval_setting(plan, "rpo", "24h", where),
            created=str(plan.get("created", "")),
        )
    except KeyError as missing:
        raise UsageError(
            f"config.toml has no [plan] {missing.args[0]}.", hint="Run `drgui init` in a new home."
        ) from None
    result.schedule = {**DEFAULT_SCHEDULE, **data.get("schedule", {})}
    result.drill = dict(data.get("drill", {}))
    result.reminders = dict(data.get("reminders", {}))
    result.contacts = list(data.get("contacts", []))
    for raw in data.get("sources", []):
        name, kind, settings = _entry("source", raw, where)
        _check_settings("source", name, settings, where)
        result.sources.append(SourceConfig(name=name, kind=kind, settings=settings))
    for raw in data.get("destinations", []):
        name, kind, settings = _entry("destination", raw, where)
        retention = settings.pop("retention", {})
        if not isinstance(retention, dict):
            raise UsageError(
                f"{where}: destination '{name}' has retention = {retention!r}; it must be a table.",
                hint=f"Write [destinations.retention] keys (e.g. daily = 7) in {where}, or remove it.",
            )
        _check_settings("destination", name, settings, where)
        result.destinations.append(DestConfig(name=name, kind=kind, settings=settings, retention=retention))
    return result


def load(home: Home) -> Plan:
    if not home.config_path.exists():
        raise UsageError(
            f"No drgui plan in {home.path}.",
            hint="Run `drgui init --name NAME` first, or pass the right --home.",
        )
    try:
        data = tomllib.loads(home.config_path.read_text("utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise UsageError(
            f"{home.config_path} is not valid TOML: {error}.", hint="Fix the file by hand."
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(
            f"Cannot read {home.config_path}: {getattr(error, 'strerror', None) or error}.",
            hint="Check the file and its permissions.",
        ) from None
    try:
        return plan_from_toml(data, str(home.config_path))
    except (TypeError, ValueError, AttributeError) as error:  # a value of the wrong type somewhere else
        raise UsageError(
            f"{home.config_path} holds a value drgui cannot read ({error}).", hint="Fix the file by hand."
        ) from None


def save(home: Home, plan: Plan) -> None:
    """Atomic: a crash leaves the previous config.toml, never half a file."""
    home.ensure()
    text = "# drgui plan. No secrets in here: they live in the OS keyring.\n" + tomli_w.dumps(plan.to_toml())
    atomic_write_text(home.config_path, text)


def utc_now() -> datetime:
    return datetime.now(UTC)


def _named[E: (SourceConfig, DestConfig)](entries: list[E], name: str, what: str, command: str) -> E:
    """The entry called `name`, else a UsageError listing the known ones (`drgui COMMAND list`)."""
    for entry in entries:
        if entry.name == name:
            return entry
    known = ", ".join(e.name for e in entries) or "none yet"
    raise UsageError(
        f"There is no {what} named '{name}'.", hint=f"Known {what}s: {known}. See `drgui {command} list`."
    )
