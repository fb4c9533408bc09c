"""Secrets and PostgreSQL safety (issue 11 items 5, 9, 10, 11, 13): keyring entries per home, no password in
any message or child environment, decrypted dumps never left behind, drills with missing parts, restores
into an older server that do not depend on timing."""

from __future__ import annotations

from pathlib import Path

import keyring
import pytest

from drgui.core.home import Home
from drgui.core.secrets import SERVICE
from drgui.core.workspace import Workspace
from tests.engine_fixtures import CliResult, Plan, make_plan, ok, run_cli
from tests.pg_fixtures import PG_PASSWORD, PgDatabase

pytestmark = [pytest.mark.integration]


def one_json(result: CliResult) -> dict:
    assert "Traceback" not in result.stderr, str(result)
    document = result.json()
    assert isinstance(document, dict), str(result)
    return document


def db_plan(work: Path, database: PgDatabase) -> Plan:
    database.execute("CREATE TABLE IF NOT EXISTS t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2)")
    plan = make_plan(work)
    ok(plan.cli("--json", "source", "add", "db", "postgres", "--dsn", database.dsn_with_password))
    return plan


# --- item 5: keyring entries per home ------------------------------------------------------------------
def test_second_home_of_one_plan_keeps_its_own_secrets(tmp_path: Path, pg18_db: PgDatabase) -> None:
    first = db_plan(tmp_path / "a", pg18_db)
    ok(first.cli("--json", "backup"))
    export = ok(first.cli("--json", "kit", "export", str(tmp_path / "kit.pdf"))).json()
    home_b = tmp_path / "b" / "home"
    ok(
        run_cli(
            home_b, "--json", "kit", "import", export["kit"], "--passphrase-file", str(first.passphrase_file)
        )
    )
    ws_a, ws_b = Workspace(Home(first.home)), Workspace(Home(home_b))
    assert ws_a.plan.plan_id == ws_b.plan.plan_id
    assert ws_a.store.home_id != ws_b.store.home_id
    # The rehearsal: the second home stores the database again, then removes it.
    ok(run_cli(home_b, "--json", "source", "remove", "db"))
    ok(run_cli(home_b, "--json", "source", "add", "db", "postgres", "--dsn", pg18_db.dsn_with_password))
    ok(run_cli(home_b, "--json", "backup"))
    ok(run_cli(home_b, "--json", "source", "remove", "db"))
    assert Workspace(Home(first.home)).store.get("source", "db", "password") == PG_PASSWORD
    assert one_json(ok(first.cli("--json", "backup")))["ok"]


def test_missing_password_names_the_keyring_and_the_fix(tmp_path: Path, pg18_db: PgDatabase) -> None:
    plan = db_plan(tmp_path, pg18_db)
    Workspace(Home(plan.home)).store.delete("source", "db", "password")
    for args in (("--json", "backup"), ("backup",)):
        result = plan.cli(*args)
        assert result.code == 3, str(result)
        text = result.stdout + result.stderr
        assert "keyring has no password for source db" in text, str(result)
        assert "drgui source add db" in text and "no password supplied" not in text, str(result)
        assert "Traceback" not in result.stderr
    one_json(plan.cli("--json", "backup"))


def test_legacy_home_adopts_its_entries_and_leaves_them(tmp_path: Path, pg18_db: PgDatabase) -> None:
    """A home made before home ids: its entries under '<plan>/<kind>/<name>/<field>' are copied once."""
    plan = db_plan(tmp_path, pg18_db)
    home = Home(plan.home)
    store = Workspace(home).store
    entries = {
        ("plan", "identity", "age"): store.get("plan", "identity", "age"),
        ("source", "db", "password"): store.get("source", "db", "password"),
    }
    for (kind, name, field), value in entries.items():
        assert value
        keyring.set_password(SERVICE, f"{store.plan_id}/{kind}/{name}/{field}", value)
        store.delete(kind, name, field)
    home.home_id_path.unlink()
    assert one_json(ok(plan.cli("--json", "backup")))["ok"]
    adopted = Workspace(home).store
    assert adopted.home_id != store.home_id
    for (kind, name, field), value in entries.items():
        assert adopted.get(kind, name, field) == value
        assert keyring.get_password(SERVICE, f"{store.plan_id}/{kind}/{name}/{field}") == value
    # This version's homes never read the legacy names: a fresh home of another plan finds nothing there.
    ok(plan.cli("--json", "source", "remove", "db"))
    assert keyring.get_password(SERVICE, f"{store.plan_id}/source/db/password") == PG_PASSWORD


# --- item 13a: a DSN that does not parse never echoes its password ----------------------------------------
BAD_ESCAPE_PASSWORD = "p%zzSecretWord"


def test_bad_percent_escape_in_dsn_password_is_never_echoed(tmp_path: Path, pg18_db: PgDatabase) -> None:
    plan = db_plan(tmp_path, pg18_db)
    ok(plan.cli("--json", "backup"))
    port = pg18_db.cluster.port
    bad = f"postgresql://app:{BAD_ESCAPE_PASSWORD}@127.0.0.1:{port}/app_restore"
    results = [
        plan.cli("--json", "source", "add", "db2", "postgres", "--dsn", bad),
        plan.cli("source", "add", "db2", "postgres", "--dsn", bad),
        plan.cli("--json", "restore", "latest", "--source", "db", "--to-dsn", bad),
        plan.cli("restore", "latest", "--source", "db", "--to-dsn", bad),
        plan.cli("--json", "drill", "latest", "--scratch", bad),
    ]
    for result in results:
        assert result.code == 2, str(result)
        assert "Traceback" not in result.stderr, str(result)
        text = result.stdout + result.stderr
        assert "zzSecretWord" not in text, str(result)
        assert "%25" in text, str(result)  # the fix: how to write a % in a password
        if "--json" in result.argv:
            assert one_json(result)["ok"] is False
    for path in plan.home.rglob("*"):
        if path.is_file():
            assert b"zzSecretWord" not in path.read_bytes(), path
