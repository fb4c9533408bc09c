"""The plan: a TOML file with no secrets, loaded into dataclasses and saved atomically.

Kind-specific settings of sources and destinations live in a flat `settings` mapping that the
kind's module validates (`drgui.core.sources.registry`, `drgui.core.destinations.registry`).
"""

from __future__ import annotations

import re
import secrets as _random
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import tomli_w

from drgui.core.errors import UsageError
from drgui.core.fsutil import atomic_write_text
from drgui.core.home import Home
from drgui.core.schedule import PRESETS

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
SOURCE_KINDS = ("postgres", "folder", "env", "s3", "git")
DEST_KINDS = ("local", "s3", "drive")
_DURATION_RE = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str | int) -> int:
    """'4h' -> 14400 seconds. Accepts s, m, h, d, w."""
    if isinstance(text, int):
        return text
    match = _DURATION_RE.match(text)
    if not match:
        raise UsageError(
            f"'{text}' is not a duration.", hint="Write a number and a unit, e.g. 30m, 4h, 24h, 2d."
        )
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


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
        for source in self.sources:
            if source.name == name:
                return source
        known = ", ".join(s.name for s in self.sources) or "none yet"
        raise UsageError(
            f"There is no source named '{name}'.", hint=f"Known sources: {known}. See `drgui source list`."
        )

    def destination(self, name: str) -> DestConfig:
        for dest in self.destinations:
            if dest.name == name:
                return dest
        known = ", ".join(d.name for d in self.destinations) or "none yet"
        raise UsageError(
            f"There is no destination named '{name}'.",
            hint=f"Known destinations: {known}. See `drgui dest list`.",
        )

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


def _parse_rto(text: str) -> int:
    """Durations are saved as '1d 2h' squashed ('1d2h'); read both forms."""
    total = 0
    for number, unit in re.findall(r"(\d+)\s*([smhdw])", text):
        total += int(number) * _UNIT_SECONDS[unit]
    if not total and text.strip() not in ("0s", "0"):
        return parse_duration(text)
    return total


def plan_from_toml(data: dict[str, Any]) -> Plan:
    plan = data.get("plan") or {}
    try:
        result = Plan(
            plan_id=str(plan["id"]),
            name=str(plan["name"]),
            recipient=str(plan["recipient"]),
            rto_seconds=_parse_rto(str(plan.get("rto", "4h"))),
            rpo_seconds=_parse_rto(str(plan.get("rpo", "24h"))),
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
        raw = dict(raw)
        result.sources.append(SourceConfig(name=raw.pop("name"), kind=raw.pop("kind"), settings=raw))
    for raw in data.get("destinations", []):
        raw = dict(raw)
        retention = raw.pop("retention", {})
        result.destinations.append(
            DestConfig(name=raw.pop("name"), kind=raw.pop("kind"), settings=raw, retention=retention)
        )
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
    return plan_from_toml(data)


def save(home: Home, plan: Plan) -> None:
    """Atomic: a crash leaves the previous config.toml, never half a file."""
    home.ensure()
    text = "# drgui plan. No secrets in here: they live in the OS keyring.\n" + tomli_w.dumps(plan.to_toml())
    atomic_write_text(home.config_path, text)


def utc_now() -> datetime:
    return datetime.now(UTC)
