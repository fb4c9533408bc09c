"""history.sqlite: runs, the upload queue, and an append-only event log in which every record holds
the sha256 of the previous one, so an edit, a deletion or a reorder is detected by `verify_chain`."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import logging
import os
import socket
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drgui.core.engine.fsutil import atomic_writer
from drgui.core.plan.secrets import redact

log = logging.getLogger(__name__)
GENESIS = "0" * 64
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
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
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
"""
# Columns added after the first release: (table, column, declaration) for ALTER TABLE.
ADDED_COLUMNS = (("runs", "pid", "INTEGER"), ("runs", "host", "TEXT"))
DAMAGED_NOTICE = "damaged"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def event_hash(prev_hash: str, seq: int, time: str, kind: str, data: str) -> str:
    payload = json.dumps([prev_hash, seq, time, kind, data], separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(payload.encode()).hexdigest()


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


@dataclass(frozen=True)
class ChainProblem:
    seq: int
    problem: str


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


class History:
    """A damaged file (truncated, overwritten) never stops the caller: it is checked on first use, and
    when SQLite cannot read it, it is moved aside as `history.sqlite.damaged-<time>` and a new log
    starts with a notice that says so (`notices()`; status and the next backup's result show it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._checked = False
        self.moved_aside: Path | None = None  # set when this object moved a damaged file aside
        self._open_lock = threading.Lock()

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
            try:
                conn = self._open()
            except sqlite3.DatabaseError as error:  # damaged before this process or since (another writer)
                if not _is_damage(error):
                    raise
                self._move_aside(error)
                conn = self._open()
            self._checked = True
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
        message = (
            f"The history file was damaged and could not be read; it was kept as {aside.name} "
            "and a new history was started. Backups go on as before."
        )
        conn = self._open()
        try:
            conn.execute(
                "INSERT OR REPLACE INTO notices(key, message, since) VALUES (?, ?, ?)",
                (DAMAGED_NOTICE, message, now_iso()),
            )
        finally:
            conn.close()

    # --- notices (things the user must be told once) --------------------------------------------
    def notices(self) -> dict[str, str]:
        with self._connect() as conn:
            return dict(conn.execute("SELECT key, message FROM notices ORDER BY since").fetchall())

    def clear_notice(self, key: str) -> None:
        with self._connect() as conn:
            conn.execute("DELETE FROM notices WHERE key=?", (key,))

    # --- runs ----------------------------------------------------------------------------------
    def start_run(self, kind: str, target: str | None = None, snapshot_id: str | None = None) -> int:
        with self._connect() as conn:
            cursor = conn.execute(
                "INSERT INTO runs(kind, started, status, target, snapshot_id, pid, host) "
                "VALUES (?, ?, 'running', ?, ?, ?, ?)",
                (kind, now_iso(), target, snapshot_id, os.getpid(), socket.gethostname()),
            )
            return int(cursor.lastrowid or 0)

    def finish_run(
        self,
        run_id: int,
        status: str,
        *,
        snapshot_id: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        detail_text = redact(json.dumps(detail or {}, default=str))
        with self._connect() as conn:
            row = conn.execute("SELECT kind, target, snapshot_id FROM runs WHERE id=?", (run_id,)).fetchone()
            conn.execute(
                "UPDATE runs SET finished=?, status=?, snapshot_id=COALESCE(?, snapshot_id), detail=? WHERE id=?",
                (now_iso(), status, snapshot_id, detail_text, run_id),
            )
        if row:
            self.append_event(
                f"{row[0]}.{status}",
                {"run": run_id, "target": row[1], "snapshot": snapshot_id or row[2], **(detail or {})},
            )

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
        return [Run(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7] or "{}")) for r in rows]

    def last_run(self, kind: str, status: str | None = None, target: str | None = None) -> Run | None:
        for run in self.runs(kind):
            if (status is None or run.status == status) and (target is None or run.target == target):
                return run
        return None

    def mark_interrupted(self) -> None:
        """Runs left 'running' by a crashed process (called while holding the home lock)."""
        with self._connect() as conn:
            conn.execute(
                "UPDATE runs SET status='interrupted', finished=? WHERE status='running'", (now_iso(),)
            )

    def mark_dead_runs(self) -> None:
        """Runs 'running' whose process on this machine is gone (killed, crashed) become 'interrupted'."""
        host = socket.gethostname()
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT id, pid FROM runs WHERE status='running' AND host=?", (host,)
            ).fetchall()
            dead = [run_id for run_id, pid in rows if pid is not None and not _process_alive(int(pid))]
            for run_id in dead:
                conn.execute(
                    "UPDATE runs SET status='interrupted', finished=? WHERE id=? AND status='running'",
                    (now_iso(), run_id),
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

    # --- audit log -----------------------------------------------------------------------------
    def append_event(self, kind: str, data: dict[str, Any]) -> None:
        text = redact(json.dumps(data, sort_keys=True, default=str, ensure_ascii=True))
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                last = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
                seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
                time = now_iso()
                conn.execute(
                    "INSERT INTO events(seq, time, kind, data, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?)",
                    (seq, time, kind, text, prev, event_hash(prev, seq, time, kind, text)),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def events(self) -> list[dict[str, Any]]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT seq, time, kind, data, prev_hash, hash FROM events ORDER BY seq"
            ).fetchall()
        return [
            {
                "seq": r[0],
                "time": r[1],
                "kind": r[2],
                "data": json.loads(r[3]),
                "prev_hash": r[4],
                "hash": r[5],
            }
            for r in rows
        ]

    def verify_chain(self) -> list[ChainProblem]:
        """Every problem in the chain; the first names the first record that was edited, removed or moved."""
        problems = []
        prev = GENESIS
        expected_seq = 1
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT seq, time, kind, data, prev_hash, hash FROM events ORDER BY rowid"
            ).fetchall()
        for seq, time, kind, data, prev_hash, stored in rows:
            if seq != expected_seq:
                problems.append(ChainProblem(seq, f"record {expected_seq} is missing or out of order"))
            if prev_hash != prev:
                problems.append(
                    ChainProblem(seq, "does not follow the previous record (deleted or reordered)")
                )
            if event_hash(prev_hash, seq, time, kind, data) != stored:
                problems.append(ChainProblem(seq, "was edited after it was written"))
            prev = stored
            expected_seq = seq + 1
        return problems

    def export_csv(self, path: Path) -> int:
        events = self.events()
        with atomic_writer(path, 0o644) as handle:
            text = _csv_text(events)
            handle.write(text.encode("utf-8"))
        return len(events)


def _csv_text(events: list[dict[str, Any]]) -> str:
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["seq", "time", "kind", "data", "prev_hash", "hash"])
    for event in events:
        writer.writerow(
            [
                event["seq"],
                event["time"],
                event["kind"],
                json.dumps(event["data"], sort_keys=True),
                event["prev_hash"],
                event["hash"],
            ]
        )
    return buffer.getvalue()
