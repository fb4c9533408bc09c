"""Could a stolen laptop delete the offsite backups? Said plainly per S3 destination (docs/offsite.md).

`dest test` (and `dest add`) try each key on a test object of its own and `record_key_checks` keeps what
they found in the history (`dest.keys`: which key can delete, never a key). `offsite_exposure` reads that
record and the config (no network): the dashboard and `drgui status` say the answer and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drgui.core.errors import DrguiError
from drgui.core.plan.workspace import Workspace

KEYS_EVENT = "dest.keys"


def record_key_checks(ws: Workspace, name: str, reports: list[dict[str, Any]]) -> None:
    """Keep what each key of destination `name` could do (booleans only) for the status."""
    keys = {
        str(r["key"]): {step: bool(r.get(step)) for step in ("list", "write", "read", "delete")}
        for r in reports
    }
    ws.history.append_event(KEYS_EVENT, {"name": name, "keys": keys})


@dataclass(frozen=True)
class Exposure:
    name: str
    could_delete: bool | None  # None: not tested yet
    why: str

    @property
    def sentence(self) -> str:
        if self.could_delete is None:
            return f"Not known whether a stolen laptop could delete your offsite backups at '{self.name}': {self.why}"
        verb = "could" if self.could_delete else "could not"
        return f"A stolen laptop {verb} delete your offsite backups at '{self.name}': {self.why}."

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "stolen_laptop_could_delete": self.could_delete, "why": self.why}


def _last_keys(ws: Workspace) -> dict[str, dict[str, Any]]:
    """The newest key record per destination, dropped when the destination was added again after it."""
    found: dict[str, dict[str, Any]] = {}
    for event in ws.history.events():
        name = event["data"].get("name")
        if event["kind"] == KEYS_EVENT:
            found[str(name)] = dict(event["data"].get("keys", {}))
        elif event["kind"] in ("settings.dest_add", "settings.dest_remove"):
            found.pop(str(name), None)
    return found


def offsite_exposure(ws: Workspace) -> list[Exposure]:
    """One answer per S3 destination of the plan."""
    from drgui.core.engine.destinations.s3 import S3Destination

    records = _last_keys(ws)
    answers: list[Exposure] = []
    for config in ws.plan.destinations:
        if config.kind != "s3":
            continue
        dest = S3Destination(config, ws.store)
        keys = records.get(config.name)
        mode, days = dest.lock_mode, dest.lock_days
        lock = f"Object Lock ({mode.lower()}) keeps every object {days} days" if mode else ""
        try:
            prune_here = dest.prune_key_stored()
        except DrguiError:
            prune_here = False
        if keys is None or "everyday" not in keys:
            answers.append(Exposure(config.name, None, f"run `drgui dest test {config.name}` to find out"))
            continue
        if mode == "COMPLIANCE":
            answers.append(Exposure(config.name, False, f"{lock}, whatever key asks to delete"))
            continue
        if keys["everyday"].get("delete"):
            why = "the key this laptop backs up with can delete (use a write-only key, docs/offsite.md)"
            answers.append(Exposure(config.name, True, why))
            continue
        if prune_here:
            why = "the prune key is stored in this laptop's keyring (keep it on the kit machine instead)"
            answers.append(Exposure(config.name, True, why))
            continue
        why = "the key this laptop backs up with cannot delete, and the prune key is not on it"
        answers.append(Exposure(config.name, False, f"{why}{'; ' + lock if lock else ''}"))
    return answers


def add_to_status(ws: Workspace, reasons: list[str]) -> tuple[list[dict[str, Any]], int]:
    """(the answers for Status.offsite, points to take off the readiness); exposed ones go into `reasons`."""
    answers = offsite_exposure(ws)
    penalty = 0
    for answer in answers:
        if answer.could_delete:
            penalty += 10
            reasons.append(answer.sentence)
    return [a.to_json() | {"sentence": a.sentence} for a in answers], penalty
