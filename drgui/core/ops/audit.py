"""`drgui history --verify` and `--rebuild`: the local audit chain against what the destinations prove.

verify: the chain is checked with the key (every record's HMAC, the links, the runs table against the
chain's copy of each run, the head file), then against the newest anchors of every reachable
destination and of the drill reports. The result names how many records are missing or differ, and
since when. Its outcome is kept (`last_verify`), so a failed check is an alert (dashboard, tray, status)
until a check passes.

rebuild: after a lost or damaged history, the runs the destinations still prove (snapshots, drill
reports) are written back into the log, and a rebuild record says which records are lost for good.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drgui.core.engine.destinations.base import Destination
from drgui.core.errors import DrguiError, EnvironmentNotReady
from drgui.core.ops.anchors import Anchor, destination_anchors
from drgui.core.ops.history import REBUILD_KIND, ChainProblem, Head, LocalCheck
from drgui.core.plan.workspace import Workspace

LAST_VERIFY = "last_verify"
DRILL_REPORT = "drill report"
AUDIT_ALERT = "The audit log check failed"


@dataclass
class VerifyResult:
    ok: bool
    records: int
    first_seq: int
    last_seq: int
    pending: int
    anchors: list[Anchor] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    destinations: list[str] = field(default_factory=list)  # reached
    unreachable: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.ok:
            newest = max(self.anchors, key=lambda a: a.head.seq, default=None)
            anchored = (
                f"; matches {len(self.anchors)} anchor{'s' if len(self.anchors) != 1 else ''} "
                f"(newest #{newest.head.seq} in {newest.where})"
                if newest
                else "; no destination holds an anchor yet"
            )
            return f"Audit log intact: {self.records} records (#{self.first_seq} to #{self.last_seq}), keyed{anchored}."
        return f"Audit log NOT intact: {self.problems[0]}" + (
            f" (and {len(self.problems) - 1} more problem{'s' if len(self.problems) > 2 else ''})"
            if len(self.problems) > 1
            else ""
        )

    def human(self) -> str:
        lines = [self.summary()]
        if not self.ok:
            lines += [f"  - {p}" for p in self.problems]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "records": self.records,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "pending": self.pending,
            "anchors": [a.to_json() for a in self.anchors],
            "destinations": self.destinations,
            "unreachable": self.unreachable,
            "problems": self.problems,
            "notes": self.notes,
            "summary": self.summary(),
        }


def _key(ws: Workspace) -> bytes:
    key = ws.history.key()
    if key is None:
        raise EnvironmentNotReady(
            "The audit log cannot be checked: the plan's private key is not readable from the keyring.",
            hint="Unlock the keyring (or import the plan with `drgui kit import`), then run it again.",
        )
    return key


def drill_anchors(ws: Workspace) -> list[Anchor]:
    """The anchors the saved drill reports carry (reports/<drill>/drill.json, key "audit")."""
    found = []
    reports = ws.home.reports_dir
    for path in sorted(reports.glob("*/drill.json")) if reports.is_dir() else []:
        try:
            data = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            continue
        head = Head.from_json(data.get("audit")) if isinstance(data, dict) else None
        if head is not None and head.mac:
            found.append(Anchor(head, DRILL_REPORT, path.parent.name, str(data.get("finished") or "")))
    return found


def _summarise_local(check: LocalCheck) -> list[str]:
    """The local problems in words, the key failures counted as one line."""
    failed = [p for p in check.problems if "fails the key check" in p.problem]
    others = [p for p in check.problems if p not in failed]
    lines = []
    if failed:
        linked = not any("does not follow" in p.problem for p in check.problems)
        first = failed[0]
        what = (
            "the whole chain was rewritten without the key (right structure, wrong MACs)"
            if len(failed) == check.records - check.pending and linked
            else "edited or rewritten without the key"
        )
        lines.append(
            f"{len(failed)} of {check.records} records fail the key check, from #{first.seq} "
            f"(written {first.time}): {what}"
        )
    for problem in others:
        lines.append(_words(problem))
    return lines


def _words(problem: ChainProblem) -> str:
    if (
        problem.seq
        and not problem.problem.startswith(("record #", "run #"))
        and "records missing" not in problem.problem
    ):
        return f"record #{problem.seq} {problem.problem}" + (
            f" (written {problem.time})" if problem.time else ""
        )
    return problem.problem


def verify(ws: Workspace) -> VerifyResult:
    """The local chain (with the key), then the newest anchors of every reachable destination and report."""
    check = ws.history.verify_local(_key(ws))
    result = VerifyResult(False, check.records, check.first_seq, check.last.seq, check.pending)
    result.problems = _summarise_local(check)
    result.anchors = _collect_anchors(ws, result)
    _judge_start(check, result)
    _judge_anchors(check, result)
    if check.pending:
        result.notes.append(
            f"{check.pending} records wait for the key (written while the keyring was locked)"
        )
    if result.unreachable:
        result.notes.append(f"not reachable now, so not compared: {', '.join(result.unreachable)}")
    result.ok = not result.problems
    _remember(ws, result)
    return result


def _collect_anchors(ws: Workspace, result: VerifyResult) -> list[Anchor]:
    anchors: list[Anchor] = []
    for dest in ws.destinations():
        found, listed = destination_anchors(dest)
        if found or listed:
            result.destinations.append(dest.name)
        elif not _reachable(dest):
            result.unreachable.append(dest.name)
        anchors += found
    anchors += drill_anchors(ws)
    return anchors


def _judge_start(check: LocalCheck, result: VerifyResult) -> None:
    """What the log's first record says: restarted after a loss (a problem until rebuilt), or new here."""
    start = check.start or {}
    continues = Head.from_json(start.get("continues"))
    before = check.first_seq - 1 if check.records else 0  # records before this log (its start links there)
    if start.get("reason") in ("missing", "damaged") and check.acknowledged_to < before:
        aside = f", kept as {check.moved_aside}" if check.moved_aside else ""
        result.problems.append(
            f"the history file was {start['reason']}{aside}: records #1 to #{before} are not in this log, "
            f"which was restarted at {check.times.get(check.first_seq, '')}; run `drgui history --rebuild`"
        )
    elif start.get("reason") in ("missing", "damaged") and before > 0:
        result.notes.append(
            f"records #1 to #{before} were lost when the history file was {start['reason']} "
            f"(the log restarted at {check.times.get(check.first_seq, '')}); `history --rebuild` recorded it"
        )
    elif start.get("reason") == "new" and before > 0:
        result.notes.append(
            f"this log began on this machine at record #{check.first_seq} "
            f"({check.times.get(check.first_seq, '')}), linked to anchor #{continues.seq if continues else before}: "
            f"records #1 to #{before} were written elsewhere (another machine or an earlier home)"
        )
    if check.records == 0:
        aside = f" (the damaged one was kept as {check.moved_aside})" if check.moved_aside else ""
        result.problems.insert(0, f"history.sqlite holds no audit records{aside}")


def _judge_anchors(check: LocalCheck, result: VerifyResult) -> None:
    """Each anchor against the local log: present with its MAC, or missing (and how many, since when)."""
    start = check.start or {}
    anchors = result.anchors
    missing_at_end: dict[int, Anchor] = {}
    for anchor in anchors:
        seq = anchor.head.seq
        if seq in check.macs:
            if check.macs[seq] != anchor.head.mac:
                result.problems.append(
                    f"record #{seq} differs from the anchor in {anchor.where} (written {anchor.head.time}): "
                    "the log was rewritten since"
                )
        elif seq < check.first_seq or check.records == 0:
            if check.records == 0 or (start.get("reason") != "new" and seq > check.acknowledged_to):
                missing_at_end.setdefault(seq, anchor)
        elif seq > check.last.seq:
            missing_at_end.setdefault(seq, anchor)
        elif seq not in check.times:
            result.problems.append(
                f"record #{seq}, anchored in {anchor.where} ({anchor.head.time}), was deleted"
            )
    if missing_at_end:
        seq = max(missing_at_end)
        anchor = missing_at_end[seq]
        if check.records and seq < check.first_seq:  # before this log began: lost with the old file
            result.problems.append(
                f"{anchor.where} anchors record #{seq} (written {anchor.head.time}), which this log does not "
                f"hold: it begins at #{check.first_seq}"
            )
        else:
            count = seq - check.last.seq
            since = f"; missing since {check.last.time}" if check.last.time else ""
            result.problems.append(
                f"{count} record{'s' if count != 1 else ''} missing: {anchor.where} anchors record #{seq} "
                f"(written {anchor.head.time}), the log holds {_range(check)}{since}"
            )


def _range(check: LocalCheck) -> str:
    return f"#{check.first_seq} to #{check.last.seq}" if check.records else "no record"


def _reachable(dest: Destination) -> bool:
    try:
        return bool(dest.available())
    except (DrguiError, OSError):
        return False


def _remember(ws: Workspace, result: VerifyResult) -> None:
    """Keep the outcome: a failed check is an alert (ops/alerts.py) until a check passes."""
    value = {
        "ok": result.ok,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "summary": result.summary(),
    }
    ws.history.set_meta(LAST_VERIFY, json.dumps(value))


def last_verify(ws: Workspace) -> dict[str, Any] | None:
    text = ws.history.get_meta(LAST_VERIFY)
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def failed_verification(ws: Workspace) -> str | None:
    """The alert text while the last `history --verify` failed, else None."""
    value = last_verify(ws)
    if not value or value.get("ok"):
        return None
    return (
        f"{AUDIT_ALERT} ({str(value.get('time', ''))[:16].replace('T', ' ')} UTC): {value.get('summary', '')}"
    )


@dataclass
class RebuildResult:
    snapshots: list[str] = field(default_factory=list)
    drills: list[str] = field(default_factory=list)
    lost_to: int = 0  # records #1..#lost_to are lost for good
    destinations: list[str] = field(default_factory=list)

    def human(self) -> str:
        lost = (
            f"Records #1 to #{self.lost_to} are lost for good: what they said that no destination proves "
            "(uploads, verifies, checklists, settings changes, failed runs) cannot be recovered."
            if self.lost_to
            else "No record was lost."
        )
        where = ", ".join(self.destinations) or "no reachable destination"
        return (
            f"Rebuilt from {where}: {len(self.snapshots)} backup{'s' if len(self.snapshots) != 1 else ''} "
            f"and {len(self.drills)} drill{'s' if len(self.drills) != 1 else ''} written back into the history. {lost}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": True,
            "snapshots": self.snapshots,
            "drills": self.drills,
            "lost_records_to": self.lost_to,
            "destinations": self.destinations,
            "summary": self.human(),
        }


def rebuild(ws: Workspace) -> RebuildResult:
    """Write back the backups and drills the destinations and reports prove, and record what is lost."""
    _key(ws)
    history = ws.history
    result = RebuildResult()
    known = {r.snapshot_id for r in history.runs("backup", limit=100_000) if r.snapshot_id}
    for dest in ws.destinations():
        try:
            if not dest.available():
                continue
            infos = [i for i in dest.snapshots() if i.complete]
        except (DrguiError, OSError):  # an unreachable destination proves nothing; the others still count
            continue
        result.destinations.append(dest.name)
        for info in infos:
            if info.snapshot_id in known or info.index is None:
                continue
            known.add(info.snapshot_id)
            history.rebuilt_run(
                "backup",
                info.index.time,
                info.index.end_time or info.index.time,
                "ok",
                target=None,
                snapshot_id=info.snapshot_id,
                detail={
                    "rebuilt_from": dest.name,
                    "sources": [{"name": s.get("name")} for s in info.index.sources],
                },
            )
            result.snapshots.append(info.snapshot_id)
    drills_known = {str(r.detail.get("drill")) for r in history.runs("drill", limit=100_000)}
    reports = ws.home.reports_dir
    for path in sorted(reports.glob("*/drill.json")) if reports.is_dir() else []:
        drill = _drill(path)
        if drill is None or drill["id"] in drills_known:
            continue
        history.rebuilt_run(
            "drill",
            drill["started"],
            drill["finished"],
            "ok" if drill["ok"] else "failed",
            target=drill["destination"],
            snapshot_id=drill["snapshot"],
            detail={
                "drill": drill["id"],
                "ok": drill["ok"],
                "rebuilt_from": "drill report",
                "report": str(path.parent / "report.pdf"),
            },
        )
        result.drills.append(drill["id"])
    check = history.verify_local(_key(ws))
    result.lost_to = (
        max(check.first_seq - 1, 0) if (check.start or {}).get("reason") in ("missing", "damaged") else 0
    )
    history.append_event(
        REBUILD_KIND,
        {"acknowledged_to": result.lost_to, "snapshots": len(result.snapshots), "drills": len(result.drills)},
    )
    for notice in ("damaged", "history_lost"):
        history.clear_notice(notice)
    return result


def _drill(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not data.get("started"):
        return None
    checks = data.get("checks") or []
    ok = bool(checks) and all(isinstance(c, dict) and bool(c.get("ok")) for c in checks)
    return {
        "id": str(data.get("drill_id") or path.parent.name),
        "started": str(data["started"]),
        "finished": str(data.get("finished") or data["started"]),
        "ok": ok,
        "destination": data.get("destination"),
        "snapshot": data.get("snapshot_id"),
    }
