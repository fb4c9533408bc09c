"""history.sqlite: runs, the upload queue, and the audit chain.

Every run change (start, finish, interrupted) and every event is one record of the chain, and each
record holds an HMAC-SHA256 over itself and the previous record's MAC, keyed with a key derived from the
plan's private age identity (`audit_key`). Rewriting the chain needs that key; the runs table is checked
against the chain's copy of each run (`verify_local`). The head of the chain (sequence, MAC) is kept in
`audit-head.json` beside the file and written into every snapshot's index.json and drill report
(`anchor()`), so a deleted, truncated or rewritten log is found by `drgui history --verify`
(ops/audit.py). When the identity cannot be read (keyring locked), records are written "pending" (no
MAC) and sealed, in order, by the next write or verify that has the key. See docs/audit.md.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import hmac
import io
import json
import logging
import os
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drgui.core.engine.fsutil import atomic_writer
from drgui.core.plan.secrets import redact
from drgui.core.timing.clock import parse_iso, parse_iso_or_none

log = logging.getLogger(__name__)
GENESIS = "0" * 64
KEY_LABEL = b"drgui audit chain v1"
HEAD_FILE = "audit-head.json"
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,            -- backup, upload, verify, restore, drill, prune, drive_sync, checklist
    started TEXT NOT NULL,
    finished TEXT,
    status TEXT NOT NULL,          -- running, ok, failed, partial, cancelled
    snapshot_id TEXT,
    target TEXT,                   -- source / destination / drive name when the run is about one
    detail TEXT NOT NULL DEFAULT '{}',
    pid INTEGER,                   -- the process running it, so a killed run is seen as interrupted
    host TEXT
);
CREATE INDEX IF NOT EXISTS runs_kind ON runs(kind, started);
CREATE TABLE IF NOT EXISTS chain (
    seq INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    prev_mac TEXT,                 -- NULL while pending (written without the key)
    mac TEXT                       -- HMAC-SHA256 of [prev_mac, seq, time, kind, data]; NULL while pending
);
CREATE TABLE IF NOT EXISTS queue (
    snapshot_id TEXT NOT NULL,
    destination TEXT NOT NULL,
    since TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    PRIMARY KEY (snapshot_id, destination)
);
CREATE TABLE IF NOT EXISTS pins (
    snapshot_id TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    since TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS notices (
    key TEXT PRIMARY KEY,          -- e.g. 'damaged': the previous history was unreadable and moved aside
    message TEXT NOT NULL,
    since TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,          -- e.g. 'last_verify': the result of the last `history --verify`
    value TEXT NOT NULL
);
"""
# Columns added after the first release: (table, column, declaration) for ALTER TABLE.
ADDED_COLUMNS = (("runs", "pid", "INTEGER"), ("runs", "host", "TEXT"))
RUN_COLUMNS = (
    "id",
    "kind",
    "started",
    "finished",
    "status",
    "snapshot_id",
    "target",
    "detail",
    "pid",
    "host",
)
DAMAGED_NOTICE = "damaged"
LOST_NOTICE = "history_lost"
START_KIND = "audit.start"  # the first record of a log: new, or restarted after a lost/damaged file
REBUILD_KIND = "audit.rebuild"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def audit_key(identity: str) -> bytes:
    """The chain's HMAC key: HMAC-SHA256 of a fixed label keyed with the plan's private identity."""
    return hmac.new(identity.strip().encode("utf-8"), KEY_LABEL, hashlib.sha256).digest()


def record_mac(key: bytes, prev_mac: str, seq: int, time: str, kind: str, data: str) -> str:
    payload = json.dumps([prev_mac, seq, time, kind, data], separators=(",", ":"), ensure_ascii=True)
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Run:
    id: int
    kind: str
    started: str
    finished: str | None
    status: str
    snapshot_id: str | None
    target: str | None
    detail: dict[str, Any]

    @property
    def started_at(self) -> datetime:
        return parse_iso(self.started)

    @property
    def finished_at(self) -> datetime | None:
        return parse_iso_or_none(self.finished)

    @property
    def ended_at(self) -> datetime:
        """When the run finished, or when it started if it never did."""
        return self.finished_at or self.started_at


@dataclass(frozen=True)
class ChainProblem:
    seq: int
    problem: str
    time: str = ""  # when the record named was written (or the last good one before it)


@dataclass(frozen=True)
class Head:
    """The chain's head at one moment: what an anchor carries (`seq` 0: an empty chain)."""

    seq: int
    mac: str | None
    time: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "mac": self.mac, "time": self.time}

    @classmethod
    def from_json(cls, data: Any) -> Head | None:
        if not isinstance(data, dict) or not isinstance(data.get("seq"), int):
            return None
        mac = data.get("mac")
        return cls(int(data["seq"]), mac if isinstance(mac, str) else None, str(data.get("time") or ""))


@dataclass
class LocalCheck:
    """What the local log says about itself (ops/audit.py adds what the destinations say)."""

    records: int = 0
    first_seq: int = 0
    last: Head = field(default_factory=lambda: Head(0, None))
    start: dict[str, Any] | None = None  # the data of the log's first record when it is an audit.start
    acknowledged_to: int = 0  # records up to this seq were declared lost by `history --rebuild`
    problems: list[ChainProblem] = field(default_factory=list)
    pending: int = 0  # records still waiting for the key
    macs: dict[int, str] = field(default_factory=dict)  # seq -> stored MAC (sealed records)
    times: dict[int, str] = field(default_factory=dict)
    head_file: Head | None = None
    moved_aside: str | None = None


class _Damaged(sqlite3.DatabaseError):
    """PRAGMA quick_check found damage."""


def _is_damage(error: sqlite3.DatabaseError) -> bool:
    """Corrupt or not a database at all; never 'locked' or 'busy', which only mean wait."""
    code = getattr(error, "sqlite_errorcode", None)
    return isinstance(error, _Damaged) or code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    return True


def _row_json(row: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(RUN_COLUMNS, row, strict=True))


IdentitySource = Callable[[], str | None]
AnchorFinder = Callable[[], "tuple[Head, str] | None"]  # the newest anchor at the destinations, and where


class History:
    """A damaged file (truncated, overwritten) never stops the caller: it is checked on first use, and
    when SQLite cannot read it, it is moved aside as `history.sqlite.damaged-<time>` and a new log
    starts with a notice that says so (`notices()`; status and the next backup's result show it).

    `identity` returns the plan's private identity or None (keyring locked, not imported): without it
    records are pending. `find_anchor` returns the newest anchor at the destinations: a new log links
    its first record to it."""

    def __init__(
        self, path: Path, identity: IdentitySource | None = None, find_anchor: AnchorFinder | None = None
    ) -> None:
        self.path = path
        self._identity = identity
        self._find_anchor = find_anchor
        self._key: bytes | None = None
        self._start: dict[str, Any] | None = None  # what the first record of an empty log says
        self._started = False  # the log has records (checked once per object: no query per write)
        self._checked = False
        self.moved_aside: Path | None = None  # set when this object moved a damaged file aside
        self._open_lock = threading.Lock()

    @property
    def head_path(self) -> Path:
        return self.path.with_name(HEAD_FILE)

    def key(self) -> bytes | None:
        """The chain key, or None when the identity cannot be read now."""
        if self._key is None and self._identity is not None:
            identity = self._identity()
            if identity:
                self._key = audit_key(identity)
        return self._key

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)
            columns = {(row[1]) for row in conn.execute("PRAGMA table_info(runs)")}
            for table, column, declaration in ADDED_COLUMNS:
                if column not in columns:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            if not self._checked:
                problem = conn.execute("PRAGMA quick_check").fetchone()
                if problem and problem[0] != "ok":
                    raise _Damaged(f"quick_check: {problem[0]}")
        except BaseException:
            conn.close()
            raise
        return conn

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._open_lock:  # a thread never opens the new log before the damage notice is in it
            missing = not self._checked and not self.path.exists()
            try:
                conn = self._open()
            except sqlite3.DatabaseError as error:  # damaged before this process or since (another writer)
                if not _is_damage(error):
                    raise
                self._move_aside(error)
                conn = self._open()
            self._checked = True
            if missing:
                self._notice_missing(conn)
        try:
            yield conn
        finally:
            conn.close()

    def _move_aside(self, error: sqlite3.DatabaseError) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        aside = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        for number in range(2, 1000):  # never replace an earlier damaged copy
            if not aside.exists():
                break
            aside = self.path.with_name(f"{self.path.name}.damaged-{stamp}-{number}")
        log.warning("%s is damaged (%s); moved aside as %s", self.path, error, aside.name)
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.replace(f"{self.path}{suffix}", f"{aside}{suffix}")
        self.moved_aside = aside
        self._started = False
        message = (
            f"The history file was damaged and could not be read; it was kept as {aside.name} "
            "and a new history was started. Backups go on as before. "
            "`drgui history --rebuild` recovers what the destinations prove."
        )
        conn = self._open()
        try:
            conn.execute(
                "INSERT OR REPLACE INTO notices(key, message, since) VALUES (?, ?, ?)",
                (DAMAGED_NOTICE, message, now_iso()),
            )
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('moved_aside', ?)", (aside.name,))
        finally:
            conn.close()

    def _notice_missing(self, conn: sqlite3.Connection) -> None:
        """The file was gone while its head file says it had records: the user is told once."""
        head = self.read_head_file()
        if head is None or head.seq <= 0:
            return
        log.warning("%s is missing; its head file says it had %d records", self.path, head.seq)
        message = (
            f"The history file was missing (deleted or lost): it had {head.seq} records, the last written "
            f"{head.time}. A new history was started, linked to the last one; backups go on as before. "
            "`drgui history --rebuild` recovers what the destinations prove."
        )
        conn.execute(
            "INSERT OR REPLACE INTO notices(key, message, since) VALUES (?, ?, ?)",
            (LOST_NOTICE, message, now_iso()),
        )

    # --- notices (things the user must be told once) --------------------------------------------
    def notices(self) -> dict[str, str]:
        with self._connect() as conn:
            return dict(conn.execute("SELECT key, message FROM notices ORDER BY since").fetchall())

    def add_notice(self, key: str, message: str) -> None:
        with self._connect() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO notices(key, message, since) VALUES (?, ?, ?)",
                (key, message, now_iso()),
            )

    def clear_notice(self, key: str) -> None:
        with self._connect() as conn:
            conn.execute("DELETE FROM notices WHERE key=?", (key,))

    # --- meta (small state of the log itself) ---------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        with self._connect() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return str(row[0]) if row else None

    def set_meta(self, key: str, value: str | None) -> None:
        with self._connect() as conn:
            if value is None:
                conn.execute("DELETE FROM meta WHERE key=?", (key,))
            else:
                conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    # --- runs ----------------------------------------------------------------------------------
    def _run_row(self, conn: sqlite3.Connection, run_id: int) -> dict[str, Any] | None:
        row = conn.execute(f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE id=?", (run_id,)).fetchone()
        return _row_json(row) if row else None

    def start_run(self, kind: str, target: str | None = None, snapshot_id: str | None = None) -> int:
        return self._insert_run(kind, now_iso(), "running", target=target, snapshot_id=snapshot_id)

    def _insert_run(
        self,
        kind: str,
        started: str,
        status: str,
        *,
        target: str | None = None,
        snapshot_id: str | None = None,
        finished: str | None = None,
        detail: dict[str, Any] | None = None,
        record_kind: str = "run.start",
    ) -> int:
        self._prepare_chain()
        detail_text = redact(json.dumps(detail or {}, default=str))
        with self._connect() as conn, self._transaction(conn):
            cursor = conn.execute(
                "INSERT INTO runs(kind, started, finished, status, target, snapshot_id, detail, pid, host) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    kind,
                    started,
                    finished,
                    status,
                    target,
                    snapshot_id,
                    detail_text,
                    os.getpid(),
                    socket.gethostname(),
                ),
            )
            run_id = int(cursor.lastrowid or 0)
            self._append(conn, record_kind, {"run": run_id, "row": self._run_row(conn, run_id)})
        return run_id

    def finish_run(
        self,
        run_id: int,
        status: str,
        *,
        snapshot_id: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        detail_text = redact(json.dumps(detail or {}, default=str))
        self._prepare_chain()
        with self._connect() as conn, self._transaction(conn):
            conn.execute(
                "UPDATE runs SET finished=?, status=?, snapshot_id=COALESCE(?, snapshot_id), detail=? WHERE id=?",
                (now_iso(), status, snapshot_id, detail_text, run_id),
            )
            row = self._run_row(conn, run_id)
            if row:
                self._append(conn, f"{row['kind']}.{status}", {"run": run_id, "row": row})

    def runs(self, kind: str | None = None, limit: int = 1000) -> list[Run]:
        self.mark_dead_runs()
        with self._connect() as conn:
            query = "SELECT id, kind, started, finished, status, snapshot_id, target, detail FROM runs"
            params: tuple[Any, ...] = ()
            if kind:
                query += " WHERE kind=?"
                params = (kind,)
            query += " ORDER BY id DESC LIMIT ?"
            rows = conn.execute(query, (*params, limit)).fetchall()
        return [Run(r[0], r[1], r[2], r[3], r[4], r[5], r[6], _detail(r[7])) for r in rows]

    def last_run(self, kind: str, status: str | None = None, target: str | None = None) -> Run | None:
        for run in self.runs(kind):
            if (status is None or run.status == status) and (target is None or run.target == target):
                return run
        return None

    def _interrupt(self, run_ids: list[int]) -> None:
        """Mark these runs 'interrupted' (those still 'running'), each change a record of the chain."""
        if not run_ids:
            return  # nothing to change: no write, no key needed
        self._prepare_chain()
        with self._connect() as conn, self._transaction(conn):
            for run_id in run_ids:
                changed = conn.execute(
                    "UPDATE runs SET status='interrupted', finished=? WHERE id=? AND status='running'",
                    (now_iso(), run_id),
                ).rowcount
                if changed:
                    self._append(conn, "run.interrupted", {"run": run_id, "row": self._run_row(conn, run_id)})

    def _running(self) -> list[tuple[int, int | None, str | None]]:
        with self._connect() as conn:
            return [
                (int(r[0]), r[1], r[2])
                for r in conn.execute("SELECT id, pid, host FROM runs WHERE status='running'").fetchall()
            ]

    def mark_interrupted(self) -> None:
        """Runs left 'running' by a crashed process (called while holding the home lock)."""
        self._interrupt([run_id for run_id, _, _ in self._running()])

    def mark_dead_runs(self) -> None:
        """Runs 'running' whose process on this machine is gone (killed, crashed) become 'interrupted'."""
        host = socket.gethostname()
        self._interrupt(
            [
                run_id
                for run_id, pid, run_host in self._running()
                if run_host == host and pid is not None and not _process_alive(int(pid))
            ]
        )

    # --- upload queue --------------------------------------------------------------------------
    def enqueue(self, snapshot_id: str, destination: str, error: str, *, attempt: bool = True) -> None:
        """Record that `destination` lacks the snapshot; `attempt` counts one more try (False: only the
        error of the try already counted is updated)."""
        step = 1 if attempt else 0
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO queue(snapshot_id, destination, since, attempts, last_error) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(snapshot_id, destination) DO UPDATE SET attempts=attempts+?, last_error=excluded.last_error",
                (snapshot_id, destination, now_iso(), max(step, 1), redact(error), step),
            )

    def dequeue(self, snapshot_id: str, destination: str) -> None:
        with self._connect() as conn:
            conn.execute(
                "DELETE FROM queue WHERE snapshot_id=? AND destination=?", (snapshot_id, destination)
            )

    def queue(self) -> list[dict[str, Any]]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT snapshot_id, destination, since, attempts, last_error FROM queue ORDER BY snapshot_id"
            ).fetchall()
        return [
            {"snapshot": r[0], "destination": r[1], "since": r[2], "attempts": r[3], "error": r[4]}
            for r in rows
        ]

    # --- pins (snapshots prune must keep, e.g. the one behind the latest drill report) ----------
    def pin(self, snapshot_id: str, reason: str) -> None:
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO pins(snapshot_id, reason, since) VALUES (?, ?, ?) "
                "ON CONFLICT(snapshot_id) DO UPDATE SET reason=excluded.reason, since=excluded.since",
                (snapshot_id, reason, now_iso()),
            )

    def unpin(self, snapshot_id: str) -> None:
        with self._connect() as conn:
            conn.execute("DELETE FROM pins WHERE snapshot_id=?", (snapshot_id,))

    def pinned(self) -> dict[str, str]:
        """{snapshot id: reason} of every pinned snapshot."""
        with self._connect() as conn:
            rows = conn.execute("SELECT snapshot_id, reason FROM pins ORDER BY snapshot_id").fetchall()
        return {r[0]: r[1] for r in rows}

    # --- audit chain ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def _transaction(self, conn: sqlite3.Connection) -> Iterator[None]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def read_head_file(self) -> Head | None:
        try:
            return Head.from_json(json.loads(self.head_path.read_text("utf-8")))
        except (OSError, ValueError):
            return None

    def _prepare_chain(self) -> None:
        """Before the first record of an empty log: find what it continues (outside any transaction,
        since asking the destinations may take a while)."""
        if self._started or self._start is not None:
            return
        with self._connect() as conn:
            self._started = conn.execute("SELECT 1 FROM chain LIMIT 1").fetchone() is not None
        if self._started:
            return
        head = self.read_head_file()
        anchor = None
        anchor = self._find_anchor() if self._find_anchor is not None else None
        moved = self.get_meta("moved_aside")
        if moved:
            reason = "damaged"
        elif head is not None and head.seq > 0:
            reason = "missing"
        else:
            reason = "new"
        links = [h for h in ((anchor[0] if anchor else None), head) if h is not None and h.mac]
        link = max(links, key=lambda h: h.seq) if links else None
        self._start = {
            "reason": reason,
            "continues": link.to_json() if link else None,
            "anchor": {**anchor[0].to_json(), "where": anchor[1]} if anchor else None,
            "head_file": head.to_json() if head else None,
            "moved_aside": moved,
            **self._legacy_chain(),
        }

    def _legacy_chain(self) -> dict[str, Any]:
        """The unkeyed sha256 chain of drgui before the keyed one (its `events` table, left in place)."""
        with self._connect() as conn:
            if (
                conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='events'").fetchone()
                is None
            ):
                return {}
            row = conn.execute("SELECT COUNT(*), MAX(seq) FROM events").fetchone()
            last = conn.execute("SELECT hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        return {"legacy_events": int(row[0]), "legacy_head": last[0] if last else None} if row[0] else {}

    def _append(self, conn: sqlite3.Connection, kind: str, data: dict[str, Any]) -> Head:
        """One record, inside the caller's transaction; seals pending records first when the key is here."""
        last = conn.execute("SELECT seq, mac FROM chain ORDER BY seq DESC LIMIT 1").fetchone()
        start, self._start = self._start, None
        if last is None:
            start = start or {"reason": "new", "continues": None}
            continues = Head.from_json(start.get("continues"))
            seq = (continues.seq if continues else 0) + 1
            self._insert(
                conn, seq, START_KIND, _text(start), continues.mac if continues and continues.mac else GENESIS
            )
            adopted = conn.execute(
                f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE id IS NOT ? ORDER BY id", (data.get("run"),)
            ).fetchall()
            for number, row in enumerate(adopted, start=seq + 1):  # runs written before the keyed chain
                self._insert(conn, number, "run.adopted", _text({"run": row[0], "row": _row_json(row)}), None)
        self._seal(conn)
        last = conn.execute("SELECT seq, mac FROM chain ORDER BY seq DESC LIMIT 1").fetchone()
        return self._insert(conn, int(last[0]) + 1, kind, _text(data), str(last[1]) if last[1] else None)

    def _insert(self, conn: sqlite3.Connection, seq: int, kind: str, text: str, prev: str | None) -> Head:
        time = now_iso()
        key = self.key()
        mac = record_mac(key, prev, seq, time, kind, text) if key is not None and prev is not None else None
        conn.execute(
            "INSERT INTO chain(seq, time, kind, data, prev_mac, mac) VALUES (?, ?, ?, ?, ?, ?)",
            (seq, time, kind, text, prev if mac else None, mac),
        )
        head = Head(seq, mac, time)
        self._write_head(head)
        return head

    def _write_head(self, head: Head) -> None:
        """Replace the head file (atomically, without fsync: it is a second witness beside the log, which
        SQLite makes durable; after a power cut it may lag behind the log, never run ahead of it)."""
        temp = self.head_path.with_name(f".{HEAD_FILE}.{os.getpid()}.tmp")
        with contextlib.suppress(OSError):  # never a reason for a write to the history to fail
            temp.write_text(json.dumps(head.to_json()) + "\n", "utf-8")
            os.chmod(temp, 0o600)
            os.replace(temp, self.head_path)

    def _seal(self, conn: sqlite3.Connection) -> int:
        """MAC the pending records in order (they were written while the key was unavailable)."""
        key = self.key()
        if key is None:
            return 0
        pending = conn.execute(
            "SELECT seq, time, kind, data FROM chain WHERE mac IS NULL ORDER BY seq"
        ).fetchall()
        sealed = 0
        for seq, time, kind, text in pending:
            before = conn.execute(
                "SELECT mac FROM chain WHERE seq < ? ORDER BY seq DESC LIMIT 1", (seq,)
            ).fetchone()
            if before and before[0]:
                prev = before[0]
            else:  # the log's first record: it continues the anchor it names, or begins at GENESIS
                continues = Head.from_json(_data(text).get("continues")) if kind == START_KIND else None
                prev = continues.mac if continues and continues.mac else GENESIS
            mac = record_mac(key, prev, seq, time, kind, text)
            conn.execute("UPDATE chain SET prev_mac=?, mac=? WHERE seq=?", (prev, mac, seq))
            sealed += 1
        if sealed:
            row = conn.execute("SELECT seq, mac, time FROM chain ORDER BY seq DESC LIMIT 1").fetchone()
            self._write_head(Head(int(row[0]), row[1], row[2]))
        return sealed

    def seal_pending(self) -> int:
        """Seal what was written without the key; the number of records sealed."""
        if self.key() is None:
            return 0
        with self._connect() as conn, self._transaction(conn):
            return self._seal(conn)

    def append_event(self, kind: str, data: dict[str, Any]) -> None:
        self._prepare_chain()
        with self._connect() as conn, self._transaction(conn):
            self._append(conn, kind, data)

    def anchor(self) -> dict[str, Any]:
        """The chain head now (sealed first when the key is here), for a snapshot's index or a report:
        {"seq", "mac", "time"}; an empty log gets its first record so that there is something to anchor."""
        self._prepare_chain()
        with self._connect() as conn, self._transaction(conn):
            self._seal(conn)
            row = conn.execute(
                "SELECT seq, mac, time FROM chain WHERE mac IS NOT NULL ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            if row is None:
                head = self._append(conn, "audit.anchor", {})
                return head.to_json()
        return Head(int(row[0]), row[1], row[2]).to_json()

    def head(self) -> Head:
        with self._connect() as conn:
            row = conn.execute("SELECT seq, mac, time FROM chain ORDER BY seq DESC LIMIT 1").fetchone()
        return Head(int(row[0]), row[1], row[2]) if row else Head(0, None)

    def events(self) -> list[dict[str, Any]]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT seq, time, kind, data, prev_mac, mac FROM chain ORDER BY seq"
            ).fetchall()
        return [
            {"seq": r[0], "time": r[1], "kind": r[2], "data": _data(r[3]), "prev_mac": r[4], "mac": r[5]}
            for r in rows
        ]

    def verify_local(self, key: bytes) -> LocalCheck:
        """Every problem the log and its head file show by themselves, checked with `key`."""
        self.key()
        check = LocalCheck(head_file=self.read_head_file())
        with self._connect() as conn:
            with self._transaction(conn):
                if self._key == key:
                    self._seal(conn)
            rows = conn.execute(
                "SELECT seq, time, kind, data, prev_mac, mac FROM chain ORDER BY rowid"
            ).fetchall()
            runs = {
                int(r[0]): _row_json(r)
                for r in conn.execute(f"SELECT {', '.join(RUN_COLUMNS)} FROM runs").fetchall()
            }
            moved = conn.execute("SELECT value FROM meta WHERE key='moved_aside'").fetchone()
        check.moved_aside = str(moved[0]) if moved else None
        check.records = len(rows)
        problems = check.problems
        expected_seq: int | None = None
        prev: str | None = None
        chained_runs: dict[int, dict[str, Any]] = {}
        for index, (seq, time, kind, text, prev_mac, mac) in enumerate(rows):
            if index == 0:
                check.first_seq = seq
                data = _data(text)
                if kind == START_KIND:
                    check.start = data
                    continues = Head.from_json(data.get("continues"))
                    prev = continues.mac if continues and continues.mac else GENESIS
                else:
                    problems.append(ChainProblem(seq, "the log does not begin with its start record", time))
                    prev = GENESIS
            elif seq != expected_seq:
                problems.append(
                    ChainProblem(
                        seq,
                        f"record #{expected_seq} is missing or out of order",
                        check.times.get(seq - 1, time),
                    )
                )
            check.times[seq] = time
            if mac is None:
                check.pending += 1
                prev = None
            else:
                check.macs[seq] = mac
                if prev is not None and prev_mac != prev:
                    problems.append(
                        ChainProblem(seq, "does not follow the previous record (deleted or reordered)", time)
                    )
                if record_mac(key, prev_mac or "", seq, time, kind, text) != mac:
                    problems.append(
                        ChainProblem(seq, "fails the key check (edited or rewritten without the key)", time)
                    )
                prev = mac
            data = _data(text)
            if kind == REBUILD_KIND:
                acknowledged = data.get("acknowledged_to")
                if isinstance(acknowledged, int) and mac is not None:  # only a sealed record acknowledges
                    check.acknowledged_to = max(check.acknowledged_to, acknowledged)
            row = data.get("row")
            if isinstance(row, dict) and isinstance(row.get("id"), int):
                chained_runs[int(row["id"])] = row
            expected_seq = seq + 1
        if rows:
            last = rows[-1]
            check.last = Head(int(last[0]), last[5], last[1])
        for run_id, row in sorted(runs.items()):
            chained = chained_runs.get(run_id)
            if chained is None:
                problems.append(
                    ChainProblem(
                        0, f"run #{run_id} ({row['kind']}) is not in the audit chain (added by hand)"
                    )
                )
            elif chained != row:
                changed = [c for c in RUN_COLUMNS if chained.get(c) != row.get(c)]
                what = ", ".join(
                    f"{c} '{row.get(c)}' (the chain says '{chained.get(c)}')" for c in changed[:3]
                )
                problems.append(ChainProblem(0, f"run #{run_id} ({row['kind']}) was edited: {what}"))
        for run_id, row in sorted(chained_runs.items()):
            if run_id not in runs:
                problems.append(
                    ChainProblem(
                        0,
                        f"run #{run_id} ({row.get('kind')}, {row.get('started')}) was deleted from the runs table",
                    )
                )
        head = check.head_file
        if head is not None and head.seq > check.last.seq:
            missing = head.seq - check.last.seq
            problems.append(
                ChainProblem(
                    check.last.seq + 1,
                    f"{missing} record{'s' if missing != 1 else ''} missing at the end: the log ends at "
                    f"#{check.last.seq}, its head file says #{head.seq} (written {head.time})"
                    + (f"; missing since {check.last.time}" if check.last.time else ""),
                    check.last.time,
                )
            )
        elif (
            head is not None
            and head.seq == check.last.seq
            and head.mac
            and check.last.mac
            and head.mac != check.last.mac
        ):
            problems.append(
                ChainProblem(head.seq, "the last record differs from the one its head file names", head.time)
            )
        return check

    def verify_chain(self) -> list[ChainProblem]:
        """Problems of the local log alone (with the key); a missing key is one problem."""
        key = self.key()
        if key is None:
            return [
                ChainProblem(0, "the plan's private key is not available, so the chain cannot be checked")
            ]
        return self.verify_local(key).problems

    def rebuilt_run(
        self,
        kind: str,
        started: str,
        finished: str | None,
        status: str,
        *,
        target: str | None,
        snapshot_id: str | None,
        detail: dict[str, Any],
    ) -> int:
        """A run reconstructed from what a destination proves (`history --rebuild`)."""
        return self._insert_run(
            kind,
            started,
            status,
            target=target,
            snapshot_id=snapshot_id,
            finished=finished,
            detail=detail,
            record_kind=f"{kind}.rebuilt",
        )

    def export_csv(self, path: Path) -> int:
        events = self.events()
        with atomic_writer(path, 0o644) as handle:
            handle.write(_csv_text(events).encode("utf-8"))
        return len(events)


def _text(data: dict[str, Any]) -> str:
    return redact(json.dumps(data, sort_keys=True, default=str, ensure_ascii=True))


def _data(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except (TypeError, ValueError):  # a record edited into something that is not JSON text
        return {}
    return value if isinstance(value, dict) else {}


def _detail(text: str | None) -> dict[str, Any]:
    return _data(text or "{}")


def _csv_text(events: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["seq", "time", "kind", "data", "prev_mac", "mac"])
    for event in events:
        writer.writerow(
            [
                event["seq"],
                event["time"],
                event["kind"],
                json.dumps(event["data"], sort_keys=True),
                event["prev_mac"] or "",
                event["mac"] or "pending",
            ]
        )
    return buffer.getvalue()
