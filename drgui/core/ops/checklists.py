"""Runbooks as interactive checklists: TOML templates, their expansion, and the record of a run.

The built-in templates ship as package data in ``drgui/resources/checklists/``; a plan can
override one by putting a file with the same id in one of ``extra_dirs``. The schema, the
automatic checks and the variables are described in docs/checklists.md.

Automatic checks are only *named* here (``AUTO_CHECKS``); the code that evaluates them lives
elsewhere and hands its results to ``ChecklistRun.apply_auto`` as ``{name: (ok, detail)}``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from drgui.core.errors import UsageError
from drgui.core.timing.clock import format_iso, parse_iso_or_none

AUTO_CHECKS: Mapping[str, str] = MappingProxyType(
    {
        "backup_within_rpo": "Every source has a successful backup younger than the plan's RPO.",
        "drill_within_35_days": "A restore drill passed within the last 35 days.",
        "drive_synced_within_7_days": "The .env copy on the registered drive was synced in the last 7 days.",
        "s3_queue_empty": "No snapshot is waiting in the local queue for an upload to S3.",
        "no_failed_backups_7_days": "No backup run failed within the last 7 days.",
        "verify_latest_ok": "The latest snapshot passed verification on every destination.",
    }
)
"""Automatic checks by name, with a one-line description of what passing means."""

VARIABLE_KINDS: Mapping[str, str] = MappingProxyType(
    {
        "env_key": "a key name from a .env file (never its value)",
        "name": "a short single-line name",
    }
)
"""What the values of a declared variable may be; each kind has a validator below."""

ItemKind = Literal["manual", "auto"]
AUTO_BY = "drgui"
"""What `ItemState.by` says for an item ticked by an automatic check."""

_RUN_FORMAT = 1
_CHECKLIST_ID = re.compile(r"[a-z0-9][a-z0-9-]*")
_ITEM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TEMPLATE_NAME = re.compile(r"[a-z][a-z0-9_]*")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,127}")
_NAME = re.compile(r"[^\x00-\x1f\x7f{}]{1,120}")
# Prefixes of well-known credential formats: a "key name" starting like this is a value pasted by mistake.
_SECRET_PREFIXES = (
    "sk_live_", "sk_test_", "rk_live_", "rk_test_", "pk_live_", "pk_test_", "whsec_", "AKIA", "ASIA",
    "ghp_", "gho_", "ghu_", "ghs_", "github_pat_", "glpat-", "xoxb-", "xoxp-", "xapp-", "SG.", "AIza",
    "sk-", "AGE-SECRET-KEY-",
)  # fmt: skip
_TOP_KEYS = frozenset({"id", "title", "when", "summary", "items", "templates", "variables"})
_ITEM_KEYS = frozenset({"id", "text", "kind", "check", "help", "done_when", "section", "for_each"})
_VARIABLE_KEYS = frozenset({"each", "description", "kind"})


@dataclass(frozen=True)
class Variable:
    """A list the caller supplies at run time (e.g. ``env_keys``); ``each`` names one element in items."""

    name: str
    each: str
    description: str
    kind: str = "name"


@dataclass(frozen=True)
class Item:
    """One step. ``for_each`` is set only in templates; expanded checklists have none."""

    id: str
    text: str
    kind: ItemKind
    check: str | None = None
    help: str | None = None
    done_when: str | None = None
    section: str | None = None
    for_each: str | None = None


@dataclass(frozen=True)
class Checklist:
    id: str
    title: str
    when: str
    summary: str
    items: tuple[Item, ...]
    templates: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    variables: Mapping[str, Variable] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    origin: str | None = field(default=None, compare=False)
    """The file it was loaded from (for messages and "overridden by your plan" in the UI)."""

    @property
    def expanded(self) -> bool:
        return not any(item.for_each for item in self.items)

    @property
    def checks(self) -> tuple[str, ...]:
        """The automatic checks this checklist needs, in item order, without repeats."""
        return tuple(dict.fromkeys(item.check for item in self.items if item.check))

    def item(self, item_id: str) -> Item:
        for item in self.items:
            if item.id == item_id:
                return item
        raise UsageError(
            f"Checklist '{self.id}' has no item '{item_id}'.",
            hint=f"Its items are: {', '.join(item.id for item in self.items)}",
        )


# --- loading and validation ---------------------------------------------------------------------


def builtin_dir() -> Traversable:
    """The built-in templates, as package data (works from a checkout, a wheel or a frozen app)."""
    return resources.files("drgui").joinpath("resources", "checklists")


def load_all(extra_dirs: Sequence[Path] = ()) -> dict[str, Checklist]:
    """Every checklist template by id: the built-ins, then each of ``extra_dirs`` replacing by id.

    Templates are returned unexpanded (items with ``for_each`` are still there); use ``load``
    to get a checklist that can be run. A directory in ``extra_dirs`` that does not exist is skipped.
    """
    found: dict[str, Checklist] = {}
    for entry in _toml_files(builtin_dir()):
        checklist = _load_file(entry)
        found[checklist.id] = checklist
    for directory in extra_dirs:
        directory = Path(directory)
        if not directory.exists():
            continue
        if not directory.is_dir():
            raise UsageError(f"Checklist directory {directory} is not a directory.")
        for entry in _toml_files(directory):
            checklist = _load_file(entry)
            found[checklist.id] = checklist
    return dict(sorted(found.items()))


def load(
    name: str,
    variables: Mapping[str, Sequence[str]] = MappingProxyType({}),
    extra_dirs: Sequence[Path] = (),
) -> Checklist:
    """The checklist ``name`` with every ``for_each`` item expanded from ``variables``."""
    templates = load_all(extra_dirs)
    if name not in templates:
        raise UsageError(
            f"Unknown checklist '{name}'.", hint=f"Known checklists: {', '.join(sorted(templates))}"
        )
    return expand(templates[name], variables)


def expand(template: Checklist, variables: Mapping[str, Sequence[str]]) -> Checklist:
    """Replace each ``for_each`` item by one item per value of its variable.

    Every variable a ``for_each`` item uses must be given (an empty list is fine). Values are
    validated by the variable's kind: an ``env_key`` that looks like a credential is refused
    without echoing it, so a value pasted by mistake never reaches a checklist or the history.
    """
    values = {name: _variable_values(template, var, variables) for name, var in template.variables.items()}
    items: list[Item] = []
    for item in template.items:
        if item.for_each is None:
            items.append(item)
            continue
        placeholder = "{" + template.variables[item.for_each].each + "}"
        items.extend(_fill_item(item, placeholder, value) for value in values[item.for_each])
    _require_unique(
        (item.id for item in items), template.origin or template.id, "items[].id (after expansion)"
    )
    return Checklist(
        id=template.id,
        title=template.title,
        when=template.when,
        summary=template.summary,
        items=tuple(items),
        templates=template.templates,
        origin=template.origin,
    )


def _fill_item(item: Item, placeholder: str, value: str) -> Item:
    def fill(text: str | None) -> str | None:
        return None if text is None else text.replace(placeholder, value)

    return Item(
        id=item.id.replace(placeholder, value),
        text=item.text.replace(placeholder, value),
        kind=item.kind,
        check=item.check,
        help=fill(item.help),
        done_when=fill(item.done_when),
        section=item.section,
    )


def template_placeholders(text: str) -> tuple[str, ...]:
    """The ``{name}`` placeholders of a message template, in order of first appearance."""
    return tuple(dict.fromkeys(_PLACEHOLDER.findall(text)))


def fill_template(text: str, values: Mapping[str, str]) -> str:
    """Fill the given placeholders of a message template; the others stay visible as ``{name}``."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def _toml_files(directory: Traversable | Path) -> list[Traversable | Path]:
    entries = [entry for entry in directory.iterdir() if entry.name.endswith(".toml") and entry.is_file()]
    return sorted(entries, key=lambda entry: entry.name)


def _load_file(entry: Traversable | Path) -> Checklist:
    origin = str(entry)
    try:
        data = tomllib.loads(entry.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"Checklist template {origin} is not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"Cannot read checklist template {origin}: {exc}") from None
    checklist = _parse(data, origin, strict=True)
    stem = entry.name.removesuffix(".toml")
    if checklist.id != stem:
        raise _invalid(
            origin, "id", f"is '{checklist.id}' but the file is named '{entry.name}'; they must match"
        )
    return checklist


def _invalid(origin: str, where: str, problem: str) -> UsageError:
    return UsageError(
        f"Invalid checklist template {origin}: field '{where}' {problem}.",
        hint="See docs/checklists.md for the template format.",
    )


def _text(data: Mapping[str, Any], key: str, origin: str, where: str, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise _invalid(origin, where, "is missing")
        return None
    if not isinstance(value, str) or not value.strip():
        raise _invalid(origin, where, "must be a non-empty string")
    return unwrap(value)


def unwrap(text: str) -> str:
    """Undo the line wrapping of a TOML multi-line string.

    Lines of a paragraph are joined with spaces; blank lines separate paragraphs and a line
    starting with "- " starts a new line, so lists survive. The UI wraps the text to its width.
    """
    paragraphs = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines: list[str] = []
        for line in block.splitlines():
            line = line.strip()
            if lines and not line.startswith("- "):
                lines[-1] = f"{lines[-1]} {line}"
            else:
                lines.append(line)
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)


def _no_unknown_keys(data: Mapping[str, Any], allowed: frozenset[str], origin: str, where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        prefix = f"{where}." if where else ""
        raise _invalid(
            origin, prefix + unknown[0], f"is not a known field (known: {', '.join(sorted(allowed))})"
        )


def _require_unique(ids: Iterable[str], origin: str, where: str) -> None:
    seen: set[str] = set()
    for item_id in ids:
        if item_id in seen:
            raise _invalid(origin, where, f"repeats the id '{item_id}'; ids must be unique")
        seen.add(item_id)


def _parse(data: Mapping[str, Any], origin: str, strict: bool) -> Checklist:
    """Build a checklist from template data.

    ``strict`` (templates) also requires known checks, ``done_when`` on manual items and well-placed
    placeholders; history records are parsed leniently so that old runs stay readable.
    """
    _no_unknown_keys(data, _TOP_KEYS, origin, "")
    checklist_id = _text(data, "id", origin, "id") or ""
    if not _CHECKLIST_ID.fullmatch(checklist_id):
        raise _invalid(origin, "id", "must be lower-case letters, digits and dashes, e.g. 'weekly-review'")
    variables = _parse_variables(data.get("variables", {}), origin)
    raw_items = data.get("items")
    if not isinstance(raw_items, list) or not raw_items:
        raise _invalid(origin, "items", "must be a non-empty list of [[items]] tables")
    items = tuple(
        _parse_item(raw, f"items[{n}]", origin, variables, strict) for n, raw in enumerate(raw_items)
    )
    _require_unique((item.id for item in items), origin, "items[].id")
    used = {item.for_each for item in items}
    for name in variables:
        if strict and name not in used:
            raise _invalid(
                origin, f"variables.{name}", "is declared but no item has for_each = this variable"
            )
    return Checklist(
        id=checklist_id,
        title=_text(data, "title", origin, "title") or "",
        when=_text(data, "when", origin, "when") or "",
        summary=_text(data, "summary", origin, "summary") or "",
        items=items,
        templates=MappingProxyType(_parse_templates(data.get("templates", {}), origin)),
        variables=MappingProxyType(variables),
        origin=origin,
    )


def _parse_variables(raw: Any, origin: str) -> dict[str, Variable]:
    if not isinstance(raw, Mapping):
        raise _invalid(origin, "variables", "must be a table of [variables.NAME] tables")
    variables: dict[str, Variable] = {}
    for name, spec in raw.items():
        where = f"variables.{name}"
        if not _IDENTIFIER.fullmatch(name):
            raise _invalid(origin, where, "must be named with letters, digits and underscores")
        if not isinstance(spec, Mapping):
            raise _invalid(origin, where, "must be a table with 'each' and 'description'")
        _no_unknown_keys(spec, _VARIABLE_KEYS, origin, where)
        each = _text(spec, "each", origin, f"{where}.each") or ""
        if not _IDENTIFIER.fullmatch(each):
            raise _invalid(origin, f"{where}.each", "must be a placeholder name such as 'key'")
        kind = _text(spec, "kind", origin, f"{where}.kind", required=False) or "name"
        if kind not in VARIABLE_KINDS:
            raise _invalid(origin, f"{where}.kind", f"must be one of: {', '.join(VARIABLE_KINDS)}")
        description = _text(spec, "description", origin, f"{where}.description") or ""
        variables[name] = Variable(name=name, each=each, description=description, kind=kind)
    return variables


def _parse_item(raw: Any, where: str, origin: str, variables: Mapping[str, Variable], strict: bool) -> Item:
    if not isinstance(raw, Mapping):
        raise _invalid(origin, where, "must be a table")
    _no_unknown_keys(raw, _ITEM_KEYS, origin, where)
    item_id = _text(raw, "id", origin, f"{where}.id") or ""
    text = _text(raw, "text", origin, f"{where}.text") or ""
    check = _text(raw, "check", origin, f"{where}.check", required=False)
    kind = _text(raw, "kind", origin, f"{where}.kind", required=False) or ("auto" if check else "manual")
    if kind not in ("manual", "auto"):
        raise _invalid(origin, f"{where}.kind", 'must be "manual" or "auto"')
    item_kind: ItemKind = "auto" if kind == "auto" else "manual"
    help_text = _text(raw, "help", origin, f"{where}.help", required=False)
    done_when = _text(raw, "done_when", origin, f"{where}.done_when", required=False)
    section = _text(raw, "section", origin, f"{where}.section", required=False)
    for_each = _text(raw, "for_each", origin, f"{where}.for_each", required=False)

    if kind == "auto":
        if check is None:
            raise _invalid(
                origin, f"{where}.check", "is missing: an automatic item names the check that ticks it"
            )
        if strict and check not in AUTO_CHECKS:
            raise _invalid(
                origin,
                f"{where}.check",
                f"names an unknown check '{check}' (known: {', '.join(AUTO_CHECKS)})",
            )
        if for_each is not None:
            raise _invalid(origin, f"{where}.for_each", "is only allowed on manual items")
    elif check is not None:
        raise _invalid(origin, f"{where}.check", 'is only allowed on automatic items (kind = "auto")')
    elif strict and done_when is None:
        raise _invalid(origin, f"{where}.done_when", "is missing: a manual step says how to know it is done")

    allowed: set[str] = set()
    if for_each is not None:
        if for_each not in variables:
            declared = ", ".join(variables) or "none"
            raise _invalid(
                origin,
                f"{where}.for_each",
                f"names '{for_each}', which is not declared under [variables] (declared: {declared})",
            )
        allowed = {variables[for_each].each}
        if "{" + variables[for_each].each + "}" not in item_id:
            raise _invalid(
                origin,
                f"{where}.id",
                f"must contain {{{variables[for_each].each}}} so that expanded ids are unique",
            )
    if strict:
        for key, value in (("id", item_id), ("text", text), ("help", help_text), ("done_when", done_when)):
            for name in _PLACEHOLDER.findall(value or ""):
                if name not in allowed:
                    raise _invalid(
                        origin,
                        f"{where}.{key}",
                        f"uses the placeholder {{{name}}}, which only a for_each item over a variable "
                        f'with each = "{name}" can fill',
                    )
    if not _ITEM_ID.fullmatch(_PLACEHOLDER.sub("x", item_id)):
        raise _invalid(
            origin,
            f"{where}.id",
            "must be letters, digits, '-', '_' and '.', starting with a letter or digit",
        )
    return Item(
        id=item_id,
        text=text,
        kind=item_kind,
        check=check,
        help=help_text,
        done_when=done_when,
        section=section,
        for_each=for_each,
    )


def _parse_templates(raw: Any, origin: str) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        raise _invalid(origin, "templates", 'must be a table of NAME = """text""" entries')
    templates: dict[str, str] = {}
    for name, text in raw.items():
        if not _TEMPLATE_NAME.fullmatch(name):
            raise _invalid(
                origin, f"templates.{name}", "must be named with lower-case letters, digits and underscores"
            )
        if not isinstance(text, str) or not text.strip():
            raise _invalid(origin, f"templates.{name}", "must be a non-empty string")
        templates[name] = text
    return templates


def _variable_values(template: Checklist, var: Variable, given: Mapping[str, Sequence[str]]) -> list[str]:
    if var.name not in given:
        raise UsageError(
            f"Checklist '{template.id}' needs the variable '{var.name}': {var.description}.",
            hint=f"Pass {var.name} (an empty list if there is nothing to list).",
        )
    raw = given[var.name]
    if isinstance(raw, str | bytes) or not isinstance(raw, Sequence):
        raise TypeError(f"variable {var.name!r} must be a sequence of strings, not {type(raw).__name__}")
    values: list[str] = []
    for position, value in enumerate(raw, start=1):
        if not isinstance(value, str):
            raise TypeError(f"variable {var.name!r}: value #{position} is {type(value).__name__}, not str")
        value = value.strip()
        _validate_value(template.id, var, position, value)
        if value not in values:
            values.append(value)
    return values


def _validate_value(checklist_id: str, var: Variable, position: int, value: str) -> None:
    # Messages name the position, never the value: it may be a secret passed by mistake.
    if var.kind == "env_key":
        if looks_like_secret_value(value):
            raise UsageError(
                f"Checklist '{checklist_id}': value #{position} of '{var.name}' looks like a secret, "
                "not a key name.",
                hint="Pass the names of the .env keys only (the part before '='), never their values.",
            )
        if not _ENV_KEY.fullmatch(value):
            raise UsageError(
                f"Checklist '{checklist_id}': value #{position} of '{var.name}' is not a .env key name.",
                hint="Key names are letters, digits and '_' (like STRIPE_SECRET_KEY); pass names only.",
            )
    elif not _NAME.fullmatch(value):
        raise UsageError(
            f"Checklist '{checklist_id}': value #{position} of '{var.name}' must be one line of at most "
            "120 characters without braces."
        )


def looks_like_secret_value(text: str) -> bool:
    """True for strings that look like a credential, not a key name (known prefixes, '=', long tokens)."""
    if "=" in text or text.startswith(_SECRET_PREFIXES) or text.startswith("-----BEGIN"):
        return True
    # Long key names have separators (STRIPE_WEBHOOK_SIGNING_SECRET); long tokens usually have none.
    return len(text) >= 24 and not any(sep in text for sep in "_.-")


# --- runs ---------------------------------------------------------------------------------------


@dataclass
class ItemState:
    item_id: str
    done: bool = False
    by: str | None = None
    at: datetime | None = None
    note: str | None = None
    auto: bool = False
    detail: str | None = None


@dataclass
class ChecklistRun:
    """One walk through a checklist: who ticked what and when, and what the automatic checks found.

    ``finished`` is the moment the last item became done; it goes back to None if an item is unticked.
    Datetimes must be timezone-aware so that the exported record is unambiguous.
    """

    checklist: Checklist
    started: datetime
    states: dict[str, ItemState] = field(default_factory=dict)
    finished: datetime | None = None

    def __post_init__(self) -> None:
        if not self.checklist.expanded:
            raise UsageError(
                f"Checklist '{self.checklist.id}' still has for_each items.",
                hint="Get it with checklists.load(name, variables) so they are expanded first.",
            )
        _require_aware(self.started, "started")
        ids = [item.id for item in self.checklist.items]
        unknown = sorted(set(self.states) - set(ids))
        if unknown:
            raise UsageError(f"Checklist '{self.checklist.id}' has no item '{unknown[0]}'.")
        for item in self.checklist.items:
            self.states.setdefault(item.id, ItemState(item_id=item.id, auto=item.kind == "auto"))
        self.states = {item_id: self.states[item_id] for item_id in ids}

    def tick(self, item_id: str, by: str, at: datetime, note: str | None = None, done: bool = True) -> None:
        """Mark a manual item done (or not done again, with ``done=False``), recording who and when."""
        item = self.checklist.item(item_id)
        if item.kind == "auto":
            raise UsageError(
                f"'{item_id}' is checked automatically ({item.check}) and cannot be ticked by hand.",
                hint="Fix what the check reports, then run the checks again.",
            )
        if not by.strip():
            raise UsageError("Say who ticked the item (by must not be empty).")
        _require_aware(at, "at")
        self.states[item_id] = ItemState(
            item_id=item_id, done=done, by=by.strip(), at=at, note=(note or "").strip() or None
        )
        self._update_finished(at)

    def apply_auto(self, results: Mapping[str, tuple[bool, str]], at: datetime) -> None:
        """Tick or untick the automatic items from check results; items without a result stay as they are."""
        unknown = sorted(set(results) - set(AUTO_CHECKS))
        if unknown:
            raise UsageError(
                f"Unknown automatic check '{unknown[0]}'.", hint=f"Known checks: {', '.join(AUTO_CHECKS)}"
            )
        _require_aware(at, "at")
        for item in self.checklist.items:
            if item.kind == "auto" and item.check is not None and item.check in results:
                ok, detail = results[item.check]
                self.states[item.id] = ItemState(
                    item_id=item.id, done=bool(ok), by=AUTO_BY, at=at, auto=True, detail=detail
                )
        self._update_finished(at)

    @property
    def progress(self) -> tuple[int, int]:
        """(items done, items in total)."""
        return sum(state.done for state in self.states.values()), len(self.states)

    @property
    def complete(self) -> bool:
        done, total = self.progress
        return done == total

    def _update_finished(self, at: datetime) -> None:
        if not self.complete:
            self.finished = None
        elif self.finished is None:
            self.finished = at

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe record that carries its own checklist, so it stays readable if templates change."""
        return {
            "format": _RUN_FORMAT,
            "checklist": _checklist_to_dict(self.checklist),
            "started": format_iso(self.started),
            "finished": format_iso(self.finished) if self.finished else None,
            "states": [
                {
                    "item_id": state.item_id,
                    "done": state.done,
                    "by": state.by,
                    "at": format_iso(state.at) if state.at else None,
                    "note": state.note,
                    "auto": state.auto,
                    "detail": state.detail,
                }
                for state in self.states.values()
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChecklistRun:
        origin = "checklist run record"
        try:
            if data.get("format") != _RUN_FORMAT:
                raise UsageError(
                    f"Unsupported {origin} format {data.get('format')!r}; expected {_RUN_FORMAT}."
                )
            checklist = _parse(data["checklist"], origin, strict=False)
            states = {
                raw["item_id"]: ItemState(
                    item_id=raw["item_id"],
                    done=bool(raw["done"]),
                    by=raw.get("by"),
                    at=parse_iso_or_none(raw.get("at")),
                    note=raw.get("note"),
                    auto=bool(raw.get("auto", False)),
                    detail=raw.get("detail"),
                )
                for raw in data["states"]
            }
            return cls(
                checklist=checklist,
                started=parse_iso_or_none(data["started"]) or _missing("started"),
                states=states,
                finished=parse_iso_or_none(data.get("finished")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"Damaged {origin}: {exc!r}.") from None

    def to_markdown(self) -> str:
        """An exportable record: what was done, by whom and when, with notes and automatic-check details."""
        checklist = self.checklist
        done, total = self.progress
        lines = [
            f"# {checklist.title}",
            "",
            f"- Checklist: `{checklist.id}` ({checklist.when})",
            f"- Started: {_show_time(self.started)}",
            f"- Finished: {_show_time(self.finished) if self.finished else 'not finished'}",
            f"- Progress: {done} of {total} done",
            "",
            checklist.summary,
            "",
        ]
        section: str | None = None
        for item in checklist.items:
            if item.section and item.section != section:
                lines += ["", f"## {item.section}", ""] if lines[-1] else [f"## {item.section}", ""]
            section = item.section or section
            state = self.states[item.id]
            lines.append(f"- [{'x' if state.done else ' '}] {item.text}")
            lines += [f"  {line}" for line in _describe_state(item, state)]
        return "\n".join(lines) + "\n"


def run_checklist(
    name: str,
    auto_results: Mapping[str, tuple[bool, str]],
    variables: Mapping[str, Sequence[str]] = MappingProxyType({}),
    *,
    now: datetime,
    extra_dirs: Sequence[Path] = (),
) -> ChecklistRun:
    """Start a run of checklist ``name`` at ``now`` with the automatic checks already applied."""
    run = ChecklistRun(checklist=load(name, variables, extra_dirs), started=now)
    run.apply_auto(auto_results, now)
    return run


def _describe_state(item: Item, state: ItemState) -> list[str]:
    if item.kind == "auto":
        if state.at is None:
            return [f"Automatic check `{item.check}`: not run."]
        verdict = "passed" if state.done else "FAILED"
        detail = f": {_one_line(state.detail)}" if state.detail else ""
        return [f"Automatic check `{item.check}` {verdict} at {_show_time(state.at)}{detail}"]
    if state.at is None:
        return []
    action = "Ticked" if state.done else "Unticked"
    lines = [f"{action} by {state.by} at {_show_time(state.at)}."]
    if state.note:
        note_lines = state.note.splitlines()
        lines.append(f"Note: {note_lines[0]}")
        lines += [f"  {line}" for line in note_lines[1:]]
    return lines


def _checklist_to_dict(checklist: Checklist) -> dict[str, Any]:
    items = []
    for item in checklist.items:
        raw: dict[str, Any] = {"id": item.id, "text": item.text, "kind": item.kind}
        for key in ("check", "help", "done_when", "section", "for_each"):
            if getattr(item, key) is not None:
                raw[key] = getattr(item, key)
        items.append(raw)
    data: dict[str, Any] = {
        "id": checklist.id,
        "title": checklist.title,
        "when": checklist.when,
        "summary": checklist.summary,
        "items": items,
        "templates": dict(checklist.templates),
    }
    if checklist.variables:
        data["variables"] = {
            var.name: {"each": var.each, "description": var.description, "kind": var.kind}
            for var in checklist.variables.values()
        }
    return data


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")


def _missing(name: str) -> datetime:
    raise KeyError(name)


def _show_time(moment: datetime) -> str:
    return moment.isoformat(sep=" ", timespec="seconds")


def _one_line(text: str) -> str:
    return " ".join(text.split())
