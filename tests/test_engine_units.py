"""Pure engine pieces: the snapshot index, the plan file, crypto, passphrases, the audit chain, .env keys."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import pytest
from pyrage import x25519

from drgui.core.engine.crypto import (
    armor,
    dearmor,
    decrypt_stream,
    encrypt_stream,
    generate_keypair,
    passphrase_problem,
    scrypt_work_factor,
    unwrap_identity,
    wrap_identity,
)
from drgui.core.engine.snapshot import Index, is_snapshot_id, new_snapshot_id, snapshot_time
from drgui.core.engine.sources.envfile import env_keys
from drgui.core.errors import OperationFailed, UsageError
from drgui.core.ops.history import History
from drgui.core.plan import config as config_module
from drgui.core.plan.config import DestConfig, Plan, SourceConfig
from drgui.core.plan.home import Home

PASSPHRASE = "orbit velvet cactus harbor lantern seventeen"


def _index() -> Index:
    return Index(
        snapshot_id="20260101T020000Z-0a1b2c3d",
        time="2026-01-01T02:00:00+00:00",
        end_time="2026-01-01T02:00:09+00:00",
        plan_id="cafe0123",
        drgui_version="1.0.0",
        sources=[{"name": "db", "kind": "postgres"}],
        parts=[{"path": "parts/db/db.dump.zst.age", "source": "db", "size": 1234, "sha256": "ab" * 32}],
        manifest={"path": "manifest.age", "size": 321, "sha256": "cd" * 32},
    )


def test_index_round_trip_and_self_check() -> None:
    data = _index().to_bytes()
    body = json.loads(data)
    assert len(body["index_sha256"]) == 64
    again = Index.from_bytes(data)
    assert again == _index() and again.to_bytes() == data
    assert again.total_size == 1234 + 321


def test_index_rejects_any_change() -> None:
    data = _index().to_bytes()
    with pytest.raises(OperationFailed, match="corrupt"):
        Index.from_bytes(data.replace(b'"size": 1234', b'"size": 1235'))
    # Same content, other formatting: not the canonical bytes, so not ours.
    body = json.loads(data)
    with pytest.raises(OperationFailed, match="canonical"):
        Index.from_bytes(json.dumps(body, sort_keys=True).encode())
    with pytest.raises(OperationFailed, match="corrupt"):
        Index.from_bytes(data[:-10])
    # A future format is refused with a clear message, even with a valid checksum.
    future = _index()
    future.format = 3
    with pytest.raises(OperationFailed, match="format 3"):
        Index.from_bytes(future.to_bytes())


def test_snapshot_ids_sort_by_time() -> None:
    from datetime import UTC, datetime

    start = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    snapshot_id = new_snapshot_id(start)
    assert is_snapshot_id(snapshot_id) and snapshot_id.startswith("20260304T050607Z-")
    assert snapshot_time(snapshot_id) == start
    assert not is_snapshot_id(snapshot_id + ".partial")


def test_config_round_trip(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    plan = Plan(
        plan_id="cafe0123", name="Acme Ünïcode", recipient="age1example", rto_seconds=5400, rpo_seconds=86400
    )
    plan.sources = [
        SourceConfig(
            "db",
            "postgres",
            {"host": "db.example.com", "port": "5432", "dbname": "app", "has_password": True},
        ),
        SourceConfig("files", "folder", {"path": "/srv/uploads", "exclude": ["*.tmp", "cache/"]}),
    ]
    plan.destinations = [DestConfig("usb", "local", {"path": "/media/usb"}, {"daily": 7, "monthly": 12})]
    plan.contacts = [{"name": "Ops", "phone": "+49 30 1234"}]
    config_module.save(home, plan)
    text = home.config_path.read_text()
    assert "No secrets" in text and (home.config_path.stat().st_mode & 0o077) == 0
    assert config_module.load(home) == plan


def test_config_errors_are_usage_errors(tmp_path: Path) -> None:
    home = Home(tmp_path)
    with pytest.raises(UsageError, match="No drgui plan"):
        config_module.load(home)
    home.config_path.write_text("format = 1\n[plan\n")
    with pytest.raises(UsageError, match="not valid TOML"):
        config_module.load(home)
    home.config_path.write_text("format = 1\n[plan]\nname = 'x'\n")
    with pytest.raises(UsageError, match="no \\[plan\\] id"):
        config_module.load(home)


def test_wrap_and_unwrap_identity() -> None:
    pair = generate_keypair()
    wrapped = wrap_identity(pair, PASSPHRASE)
    assert pair.identity.encode() not in wrapped
    assert unwrap_identity(wrapped, PASSPHRASE) == pair
    assert unwrap_identity(armor(wrapped).encode(), PASSPHRASE) == pair
    assert dearmor(armor(wrapped).encode()) == wrapped
    with pytest.raises(UsageError, match="Wrong passphrase"):
        unwrap_identity(wrapped, PASSPHRASE + "x")


def test_high_scrypt_work_factor_is_refused_before_decrypting() -> None:
    pair = generate_keypair()
    wrapped = wrap_identity(pair, PASSPHRASE)
    header, _, rest = wrapped.partition(b"\n---")
    lines = header.split(b"\n")
    stanza = next(i for i, line in enumerate(lines) if line.startswith(b"-> scrypt "))
    factor = int(lines[stanza].split()[3])
    assert scrypt_work_factor(wrapped) == factor <= 22
    # 2**40 would stall the machine for days: it must be refused without trying.
    parts = lines[stanza].split()
    parts[3] = b"40"
    lines[stanza] = b" ".join(parts)
    hostile = b"\n".join(lines) + b"\n---" + rest
    with pytest.raises(OperationFailed, match="work factor 40"):
        unwrap_identity(hostile, PASSPHRASE)
    with pytest.raises(OperationFailed, match="not an age-encrypted"):
        unwrap_identity(b"hello", PASSPHRASE)


def test_stream_encryption_round_trip() -> None:
    pair = generate_keypair()
    plain = bytes(range(256)) * 5000
    cipher = io.BytesIO()
    encrypt_stream(io.BytesIO(plain), cipher, pair.recipient)
    out = io.BytesIO()
    decrypt_stream(io.BytesIO(cipher.getvalue()), out, pair.identity)
    assert out.getvalue() == plain
    damaged = bytearray(cipher.getvalue())
    damaged[len(damaged) // 2] ^= 1
    with pytest.raises(OperationFailed, match="corrupted"):
        decrypt_stream(io.BytesIO(bytes(damaged)), io.BytesIO(), pair.identity)
    with pytest.raises(OperationFailed):
        decrypt_stream(io.BytesIO(cipher.getvalue()), io.BytesIO(), generate_keypair().identity)


@pytest.mark.parametrize(
    ("passphrase", "reason"),
    [
        ("short", "characters"),
        ("password", "common"),
        ("correct horse battery staple", "common"),
        ("aaaaaaaaaaaaaaaaaaaaaaaa", "too few different"),
        ("abababababababababab", "too few different"),
        ("x" * 15, "15 characters"),
    ],
)
def test_weak_passphrases_are_refused_with_a_reason(passphrase: str, reason: str) -> None:
    problem = passphrase_problem(passphrase)
    assert problem is not None and reason in problem


@pytest.mark.parametrize("passphrase", [PASSPHRASE, "Tr0ub4dor&3-xkcd-936!", "one two three four fives"])
def test_strong_passphrases_pass(passphrase: str) -> None:
    assert passphrase_problem(passphrase) is None


HISTORY_IDENTITY = str(x25519.Identity.generate())


def _history(tmp_path: Path, count: int = 5) -> History:
    history = History(tmp_path / "history.sqlite", identity=lambda: HISTORY_IDENTITY)
    for number in range(count):
        history.append_event("test.event", {"number": number})
    assert history.verify_chain() == []
    return history


def _sql(history: History, statement: str, params: tuple = ()) -> None:
    with sqlite3.connect(history.path) as conn:
        conn.execute(statement, params)
    conn.close()


def test_history_chain_detects_an_edit(tmp_path: Path) -> None:
    history = _history(tmp_path)
    _sql(history, "UPDATE chain SET data = ? WHERE seq = 3", (json.dumps({"number": 99}),))
    problems = history.verify_chain()
    assert [p.seq for p in problems] == [3] and "key check" in problems[0].problem


def test_history_chain_detects_a_deletion(tmp_path: Path) -> None:
    history = _history(tmp_path)
    _sql(history, "DELETE FROM chain WHERE seq = 2")
    problems = history.verify_chain()
    assert problems and problems[0].seq == 3


def test_history_chain_detects_a_deleted_first_record(tmp_path: Path) -> None:
    history = _history(tmp_path)
    _sql(history, "DELETE FROM chain WHERE seq = 1")
    assert history.verify_chain()[0].seq == 2


def test_history_chain_detects_a_reorder(tmp_path: Path) -> None:
    history = _history(tmp_path)
    with sqlite3.connect(history.path) as conn:
        rows = {r[0]: r[1:] for r in conn.execute("SELECT seq, time, kind, data, prev_mac, mac FROM chain")}
        for seq, other in ((2, 4), (4, 2)):
            conn.execute(
                "UPDATE chain SET time=?, kind=?, data=?, prev_mac=?, mac=? WHERE seq=?",
                (*rows[other], seq),
            )
    conn.close()
    problems = history.verify_chain()
    assert problems and problems[0].seq == 2


def test_env_keys_parsing() -> None:
    text = "\n".join(
        [
            "# comment: NOT_A_KEY=1",
            "",
            "DATABASE_URL=postgresql://u:p@h/db",
            "export STRIPE_KEY = 'sk_live_x'",
            '  SPACED="a b c"',
            'CERT="-----BEGIN-----',
            "FAKE_INSIDE=1",
            '-----END-----"',
            "EMPTY=",
            "DATABASE_URL=duplicate",
            "not a line",
            "lower.dotted_key=1",
            "1BAD=2",
        ]
    )
    assert env_keys(text) == ["DATABASE_URL", "STRIPE_KEY", "SPACED", "CERT", "EMPTY", "lower.dotted_key"]
