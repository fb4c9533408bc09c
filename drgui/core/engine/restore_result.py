"""What a restore reports. Below `restore.py` so a source kind's own restore (an S3 bucket's) builds one
without importing the restore operation that dispatches to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypedDict


class Check(TypedDict):
    """One thing a restore verified: what, whether it held, what was seen (the `checks` of `--json`)."""

    name: str
    ok: bool
    detail: str


@dataclass
class RestoreResult:
    snapshot_id: str
    source: str
    target: str
    checks: list[Check] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    safety_snapshot: str | None = None  # taken before an --overwrite replaced anything (design section 7)

    @property
    def ok(self) -> bool:
        return all(c["ok"] for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "snapshot": self.snapshot_id,
            "source": self.source,
            "target": self.target,
            "checks": self.checks,
            "warnings": self.warnings,
            "safety_snapshot": self.safety_snapshot,
        }
