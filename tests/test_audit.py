"""Issue 13: the audit log is keyed, covers runs and events, is anchored at the destinations, survives a
lost file, and `history --verify` catches a hostile local user (real CLI, real keyring, real backups)."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from pyrage import x25519

from drgui.core.ops.history import History, audit_key, record_mac
from drgui.core.plan.home import Home
from drgui.core.plan.workspace import Workspace
from tests.engine_fixtures import CliResult, Plan, run_cli, write_env_file, write_folder

IDENTITY = str(x25519.Identity.generate())


def ok(result: CliResult) -> CliResult:
    assert result.code == 0, str(result)
    assert "Traceback" not in result.stderr, str(result)
    return result


def failed(result: CliResult) -> dict:
    """verify exit 1 with exactly one JSON document and no traceback."""
    assert result.code == 1, str(result)
    assert "Traceback" not in result.stderr, str(result)
    data = result.json()
    assert data["ok"] is False and data["problems"], data
    return data


def sql(path: Path, statement: str, params: tuple = ()) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(statement, params)
    conn.close()


def rows(path: Path, query: str) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


@pytest.fixture
def backed_up(new_plan: Callable[..., Plan]) -> Plan:
    """A folder plan with a backup and a failed backup run: a log with runs and events, anchored."""
    plan = new_plan()
    folder = write_folder(plan.work / "uploads")
    ok(plan.cli("--json", "source", "add", "files", "folder", "--path", str(folder)))
    ok(plan.cli("--json", "backup"))
    ws = Workspace(Home.resolve(plan.home))
    run_id = ws.history.start_run("backup")
    ws.history.finish_run(run_id, "failed", detail={"error": "the disk was full"})
    verified = ok(plan.cli("--json", "history", "--verify")).json()
    assert verified["ok"] and verified["anchors"], verified
    return plan


def history_path(plan: Plan) -> Path:
    return plan.home / "history.sqlite"


# --- the four attacks of the issue, a truncated file, and a chain under another key ------------------
def test_deleted_history_is_found(backed_up: Plan) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{history_path(backed_up)}{suffix}").unlink(missing_ok=True)
    data = failed(backed_up.cli("--json", "history", "--verify"))
    text = " ".join(data["problems"])
    assert "no audit records" in text and "missing" in text, data


def test_deleted_last_event_is_found(backed_up: Plan) -> None:
    sql(history_path(backed_up), "DELETE FROM chain WHERE seq = (SELECT MAX(seq) FROM chain)")
    data = failed(backed_up.cli("--json", "history", "--verify"))
    assert any("1 record missing at the end" in p for p in data["problems"]), data


def test_edited_run_is_found_and_named(backed_up: Plan) -> None:
    path = history_path(backed_up)
    [(run_id,)] = rows(path, "SELECT id FROM runs WHERE status = 'failed'")
    sql(path, "UPDATE runs SET status = 'ok' WHERE id = ?", (run_id,))
    data = failed(backed_up.cli("--json", "history", "--verify"))
    assert any(f"run #{run_id} (backup) was edited: status 'ok'" in p for p in data["problems"]), data
    assert "failed" in " ".join(data["problems"])


def relink_chain(path: Path, mac: Callable[..., str]) -> tuple[list[tuple], str]:
    """Every chain record given a new mac, `mac(prev_mac, seq, time, kind, data)`, each linked to the one
    before; returns the records as they were and the last new mac."""
    records = rows(path, "SELECT seq, time, kind, data, prev_mac FROM chain ORDER BY seq")
    prev = records[0][4]
    conn = sqlite3.connect(path)
    with conn:
        for seq, time, kind, data, _ in records:
            new = mac(prev, seq, time, kind, data)
            conn.execute("UPDATE chain SET prev_mac = ?, mac = ? WHERE seq = ?", (prev, new, seq))
            prev = new
    conn.close()
    return records, prev


def test_chain_rewritten_with_recomputed_sha256_is_rejected(backed_up: Plan) -> None:
    path = history_path(backed_up)
    records, _last = relink_chain(
        path, lambda *record: hashlib.sha256(json.dumps(list(record)).encode()).hexdigest()
    )
    data = failed(backed_up.cli("--json", "history", "--verify"))
    assert any(
        f"{len(records)} of {len(records)} records fail the key check" in p for p in data["problems"]
    ), data


def test_chain_with_the_right_structure_and_another_key_is_rejected(backed_up: Plan) -> None:
    """Every record re-MACed, correctly linked, with a key derived from another identity."""
    path = history_path(backed_up)
    other = audit_key(IDENTITY)
    records, prev = relink_chain(path, lambda *record: record_mac(other, *record))
    Path(path.with_name("audit-head.json")).write_text(json.dumps({"seq": records[-1][0], "mac": prev}))
    data = failed(backed_up.cli("--json", "history", "--verify"))
    text = " ".join(data["problems"])
    assert "the whole chain was rewritten without the key" in text, data
    assert "differs from the anchor in snapshot" in text, data


def test_truncated_history_is_found_and_backup_goes_on(backed_up: Plan) -> None:
    path = history_path(backed_up)
    original = path.read_bytes()
    path.write_bytes(original[: len(original) // 2])
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    data = failed(backed_up.cli("--json", "history", "--verify"))
    assert any("damaged" in p for p in data["problems"]), data

    backup = ok(backed_up.cli("--json", "backup")).json()
    assert backup["ok"] and any("damaged" in w for w in backup["warnings"]), backup
    data = failed(backed_up.cli("--json", "history", "--verify"))
    assert any("records #1 to #" in p and "--rebuild" in p for p in data["problems"]), data
    rebuilt = ok(backed_up.cli("--json", "history", "--rebuild")).json()
    assert len(rebuilt["snapshots"]) == 1 and rebuilt["lost_records_to"] > 0, rebuilt
    assert "lost for good" in rebuilt["summary"]
    after = ok(backed_up.cli("--json", "history", "--verify")).json()
    assert after["ok"], after
    listed = ok(backed_up.cli("--json", "history")).json()
    assert sum(1 for r in listed if r["kind"] == "backup") == 2, listed


def test_backup_after_a_deleted_history_links_to_the_last_anchor(backed_up: Plan) -> None:
    before = rows(history_path(backed_up), "SELECT MAX(seq) FROM chain")[0][0]
    for suffix in ("", "-wal", "-shm"):
        Path(f"{history_path(backed_up)}{suffix}").unlink(missing_ok=True)
    backup = ok(backed_up.cli("--json", "backup")).json()
    assert backup["ok"] and any("history file was missing" in w for w in backup["warnings"]), backup
    [(kind, data)] = rows(history_path(backed_up), "SELECT kind, data FROM chain ORDER BY seq LIMIT 1")
    start = json.loads(data)
    assert kind == "audit.start" and start["reason"] == "missing", start
    assert start["continues"]["seq"] == before  # the head file knew the last record; anchors <= it
    data = failed(backed_up.cli("--json", "history", "--verify"))
    assert any(f"records #1 to #{before} are not in this log" in p for p in data["problems"]), data


# --- the log proves the real work: backups, a drill, a drive sync ------------------------------------
def test_real_backups_drill_and_drive_sync_verify(
    new_plan: Callable[..., Plan], pg18_db, tmp_path: Path
) -> None:
    pg18_db.execute(
        "CREATE TABLE customers(id int PRIMARY KEY, email text);INSERT INTO customers VALUES (1, 'a@b')"
    )
    plan = new_plan()
    ok(plan.cli("--json", "source", "add", "db", "postgres", "--dsn", pg18_db.dsn_with_password))
    env_file = write_env_file(tmp_path / "app.env")
    ok(plan.cli("--json", "source", "add", "env", "env", "--path", str(env_file)))
    stick = tmp_path / "stick"
    stick.mkdir()
    ok(plan.cli("--json", "dest", "add", "key", "drive", "--path", str(stick), "--allow-unencrypted"))
    ok(plan.cli("--json", "backup"))
    ok(plan.cli("--json", "backup"))
    drill = ok(plan.cli("--json", "drill", "latest")).json()
    assert drill["ok"], drill
    ok(plan.cli("--json", "env-to-drive"))
    result = ok(plan.cli("--json", "history", "--verify")).json()
    assert result["ok"] and result["problems"] == [], result
    where = {a["destination"] for a in result["anchors"]}
    assert {"local", "key", "drill report"} <= where, result
    kinds = {e["kind"] for e in Workspace(Home.resolve(plan.home)).history.events()}
    assert {"backup.ok", "upload.ok", "drill.ok", "drill.report", "drive_sync.ok"} <= kinds, kinds
    report = json.loads(next((plan.home / "reports").glob("*/drill.json")).read_text())
    assert report["audit"]["seq"] > 0 and len(report["audit"]["mac"]) == 64
    human = ok(plan.cli("history", "--verify")).stdout
    assert human.startswith("Audit log intact:") and "keyed" in human, human


def test_index_json_carries_the_chain_head(backed_up: Plan) -> None:
    ws = Workspace(Home.resolve(backed_up.home))
    index = json.loads(next(backed_up.snapshots_root.glob("*/index.json")).read_text())
    anchor = index.get("audit") or index["extra"]["audit"]
    macs = dict(rows(history_path(backed_up), "SELECT seq, mac FROM chain"))
    assert macs[anchor["seq"]] == anchor["mac"]
    assert ws.history.key() is not None


# --- a fresh machine after kit import -----------------------------------------------------------------
def test_fresh_machine_after_kit_import_reports_the_anchors(backed_up: Plan, tmp_path: Path) -> None:
    kit = ok(backed_up.cli("--json", "kit", "export", str(tmp_path / "kit.pdf"))).json()
    home_b = tmp_path / "machine-b"
    ok(
        run_cli(
            home_b, "--json", "kit", "import", kit["kit"], "--passphrase-file", str(backed_up.passphrase_file)
        )
    )
    result = ok(run_cli(home_b, "--json", "history", "--verify")).json()
    assert result["ok"] and result["anchors"], result
    assert any("records #1 to #" in n and "elsewhere" in n for n in result["notes"]), result
    assert result["first_seq"] > 1


# --- the key: pending while the keyring is locked, sealed later -------------------------------------
def test_records_written_without_the_key_are_sealed_later(tmp_path: Path) -> None:
    identity: list[str | None] = [None]
    history = History(tmp_path / "history.sqlite", identity=lambda: identity[0])
    run_id = history.start_run("backup")
    history.finish_run(run_id, "ok")
    assert all(e["mac"] is None for e in history.events())
    assert "not available" in history.verify_chain()[0].problem
    identity[0] = IDENTITY
    assert History(history.path, identity=lambda: IDENTITY).verify_chain() == []
    sealed = History(history.path, identity=lambda: IDENTITY)
    assert all(e["mac"] for e in sealed.events())
    wrong = History(history.path, identity=lambda: str(x25519.Identity.generate()))
    assert any("fails the key check" in p.problem for p in wrong.verify_chain())


def test_mac_is_hmac_of_the_identity_derived_key() -> None:
    key = audit_key(IDENTITY)
    assert key == hmac.new(IDENTITY.encode(), b"drgui audit chain v1", hashlib.sha256).digest()
    assert record_mac(key, "0" * 64, 1, "t", "k", "{}") != record_mac(
        audit_key(IDENTITY + "x"), "0" * 64, 1, "t", "k", "{}"
    )


def test_history_shows_no_traceback_and_csv_export(backed_up: Plan, tmp_path: Path) -> None:
    exported = ok(backed_up.cli("--json", "history", "--csv", str(tmp_path / "audit.csv"))).json()
    lines = (tmp_path / "audit.csv").read_text().splitlines()
    assert lines[0] == "seq,time,kind,data,prev_mac,mac" and len(lines) == exported["records"] + 1
    shutil.rmtree(backed_up.dest_dir)  # the destination is gone: verify still answers
    data = ok(backed_up.cli("--json", "history", "--verify")).json()
    assert data["ok"] and data["unreachable"] == ["local"], data
    assert any("not reachable now" in n for n in data["notes"]), data


def test_deleted_inserted_runs_and_a_deleted_middle_record_are_found(tmp_path: Path) -> None:
    history = History(tmp_path / "history.sqlite", identity=lambda: IDENTITY)
    failed_run = history.start_run("backup")
    history.finish_run(failed_run, "failed", detail={"error": "disk full"})
    drill = history.start_run("drill")
    history.finish_run(drill, "ok")
    history.append_event("settings.schedule", {"backup": "daily"})
    assert history.verify_chain() == []
    sql(history.path, "DELETE FROM runs WHERE id = ?", (failed_run,))
    sql(
        history.path,
        "INSERT INTO runs(kind, started, status) VALUES ('backup', '2026-01-01T00:00:00+00:00', 'ok')",
    )
    problems = [p.problem for p in history.verify_chain()]
    assert any(f"run #{failed_run} (backup" in p and "deleted from the runs table" in p for p in problems), (
        problems
    )
    assert any("is not in the audit chain" in p for p in problems), problems
    sql(history.path, "DELETE FROM chain WHERE seq = 3")
    problems = [p.problem for p in history.verify_chain()]
    assert any("record #3 is missing" in p for p in problems), problems


def test_verify_without_the_key_is_environment_not_ready(backed_up: Plan) -> None:
    from drgui.core.plan.workspace import IDENTITY_KEY

    ws = Workspace(Home.resolve(backed_up.home))
    ws.store.delete(*IDENTITY_KEY)
    ws.history.append_event("test.pending", {"note": "written while the key is gone"})
    result = backed_up.cli("--json", "history", "--verify")
    assert result.code == 3 and "Traceback" not in result.stderr, str(result)
    assert "private key" in result.json()["error"], result.stdout


def test_a_history_from_before_the_keyed_chain_is_adopted(tmp_path: Path) -> None:
    """A home written by the previous drgui (runs, and the unkeyed `events` chain) keeps its runs, now
    covered by the keyed chain from its first write on."""
    path = tmp_path / "history.sqlite"
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, started TEXT NOT NULL, "
            "finished TEXT, status TEXT NOT NULL, snapshot_id TEXT, target TEXT, detail TEXT NOT NULL DEFAULT '{}')"
        )
        conn.execute(
            "CREATE TABLE events (seq INTEGER PRIMARY KEY, time TEXT, kind TEXT, data TEXT, prev_hash TEXT, hash TEXT)"
        )
        conn.execute(
            "INSERT INTO runs(kind, started, status) VALUES ('backup', '2026-01-01T00:00:00+00:00', 'ok')"
        )
        conn.execute(
            "INSERT INTO events VALUES (1, '2026-01-01T00:00:00+00:00', 'backup.ok', '{}', ?, 'ab')",
            ("0" * 64,),
        )
    conn.close()
    history = History(path, identity=lambda: IDENTITY)
    history.append_event("settings.schedule", {})
    assert history.verify_chain() == []
    [start] = [e for e in history.events() if e["kind"] == "audit.start"]
    assert start["data"]["legacy_events"] == 1 and start["data"]["legacy_head"] == "ab"
    assert [r.status for r in history.runs("backup")] == ["ok"]
    sql(path, "UPDATE runs SET status = 'failed'")
    assert any("was edited" in p.problem for p in history.verify_chain())
