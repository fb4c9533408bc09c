"""A .env file: stored whole (encrypted); the manifest holds its key names, never a value."""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Generator, Iterator
from pathlib import Path

from drgui.core.engine.kinds import RESTORE_FILE, Kind, Setting
from drgui.core.engine.sources.base import CaptureContext, PartStream, Source
from drgui.core.errors import SourceError

_KEY_RE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=")


def _assignments(text: str) -> Iterator[tuple[str, list[str]]]:
    """(key, raw value lines) of each assignment of a dotenv file, in order; a quoted value may span lines."""
    key: str | None = None
    value_lines: list[str] = []
    in_multiline: str | None = None
    for line in text.splitlines():
        if in_multiline:
            value_lines.append(line)
            if line.rstrip().endswith(in_multiline):
                in_multiline = None
            continue
        match = _KEY_RE.match(line)
        if not match:
            continue
        if key is not None:
            yield key, value_lines
        key = match.group(1)
        value = line[match.end() :].strip()
        value_lines = [value]
        for quote in ('"', "'"):
            if value.startswith(quote) and (len(value) == 1 or not value.endswith(quote)):
                in_multiline = quote
    if key is not None:
        yield key, value_lines


def env_keys(text: str) -> list[str]:
    """Key names of a dotenv file, in order, without duplicates. Values are never returned."""
    return list(dict.fromkeys(key for key, _ in _assignments(text)))


def env_value_digests(text: str) -> dict[str, str]:
    """sha256 of each key's raw value (the last assignment wins), to tell changed keys without keeping values."""
    return {
        key: hashlib.sha256("\n".join(value_lines).encode("utf-8")).hexdigest()
        for key, value_lines in _assignments(text)
    }


def key_changes(old: list[str], new: list[str]) -> dict[str, list[str]]:
    return {"added": [k for k in new if k not in old], "removed": [k for k in old if k not in new]}


class EnvSource(Source):
    kind = "env"

    @property
    def path(self) -> Path:
        return Path(self.config.settings["path"]).expanduser()

    @property
    def required(self) -> list[str]:
        return list(self.config.settings.get("require", []))

    def missing_keys(self, keys: list[str] | None = None) -> list[str]:
        """The required key names the file lacks (`keys`: its key names, else read from the file now)."""
        if keys is None:
            keys = env_keys(self.read().decode("utf-8", errors="replace"))
        return [k for k in self.required if k not in keys]

    def describe(self) -> str:
        extra = f", requires {', '.join(self.required)}" if self.required else ""
        return f".env file {self.path}{extra}"

    def read(self) -> bytes:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            raise SourceError(
                f"Env source '{self.name}': {self.path} does not exist.",
                hint="Check the path of your .env file.",
            ) from None
        except OSError as error:
            raise SourceError(
                f"Env source '{self.name}': cannot read {self.path}: {error.strerror}."
            ) from None

    def preflight(self) -> None:
        self.read()

    def capture(self, ctx: CaptureContext) -> Generator[PartStream, None, None]:
        data = self.read()
        keys = env_keys(data.decode("utf-8", errors="replace"))
        missing = self.missing_keys(keys)
        if missing:
            ctx.warnings.append(f"{self.path} lacks required key(s): {', '.join(missing)}")
        ctx.manifest.update(
            {
                "path": str(self.path),
                "keys": keys,
                "required": self.required,
                "missing_required": missing,
                "sha256": hashlib.sha256(data).hexdigest(),
                "bytes": len(data),
            }
        )
        yield PartStream("env", io.BytesIO(data), compressed=False)


KIND = Kind(
    name="env",
    role="source",
    label=".env file",
    description="a .env file: its bytes, and its key names (never values) in the manifest",
    settings=(
        Setting("path", "the .env file", label=".env file", required=True, path=True, widget="file"),
        Setting(
            "require",
            "a key that must exist (repeatable)",
            label="Required keys (comma-separated)",
            repeatable=True,
            placeholder="DATABASE_URL, STRIPE_SECRET_KEY",
        ),
    ),
    opener=EnvSource,
    restore_as=RESTORE_FILE,
    order=2,
)
