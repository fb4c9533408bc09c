"""`drgui restore … --to-dsn postgresql://USER@HOST/NEWDB --password-file F`: the target server's password
comes from a file, never from the DSN, and reaches neither the output nor the history."""

from __future__ import annotations

from pathlib import Path

import pytest

from drgui.core.pg.pgtools import EmbeddedCluster
from tests.engine_fixtures import make_plan, ok
from tests.pg_fixtures import PG_PASSWORD, PgDatabase

pytestmark = pytest.mark.integration


@pytest.fixture
def backed_up(tmp_path: Path, pg18_db: PgDatabase):
    pg18_db.execute(
        "CREATE TABLE customers (id int PRIMARY KEY, name text); INSERT INTO customers VALUES (1, 'a')"
    )
    plan = make_plan(tmp_path / "plan")
    ok(plan.cli("--json", "source", "add", "db", "postgres", "--dsn", pg18_db.dsn_with_password))
    assert ok(plan.cli("--json", "backup")).json()["ok"]
    return plan, pg18_db


def test_restore_reads_the_target_password_from_a_file(tmp_path: Path, backed_up) -> None:
    plan, database = backed_up
    cluster: EmbeddedCluster = database.cluster
    target_db = f"{database.dbname}_restore"
    target_dsn = cluster.url(target_db)  # postgresql://postgres@127.0.0.1:PORT/NEWDB: no password
    assert PG_PASSWORD not in target_dsn
    password_file = tmp_path / "target-password"
    password_file.write_text(PG_PASSWORD + "\n")
    try:
        # Without the password the server refuses the login: the restore fails and says so.
        refused = plan.cli("--json", "restore", "latest", "--source", "db", "--to-dsn", target_dsn)
        assert refused.code != 0, refused
        restored = ok(
            plan.cli(
                "--json", "restore", "latest", "--source", "db", "--to-dsn", target_dsn,
                "--password-file", str(password_file),
            )
        )  # fmt: skip
        result = restored.json()
        assert result["ok"], result
        assert PG_PASSWORD not in restored.stdout + restored.stderr
        assert cluster.query("SELECT name FROM customers", dbname=target_db) == [("a",)]
        human = ok(
            plan.cli(
                "restore", "latest", "--source", "db", "--to-dsn", cluster.url(target_db + "2"),
                "--password-file", str(password_file),
            )
        )  # fmt: skip
        checks = len(result["checks"])
        assert f"{checks} check{'' if checks == 1 else 's'} passed." in human.stderr + human.stdout
        history = (plan.home / "history.sqlite").read_bytes()
        assert PG_PASSWORD.encode() not in history
    finally:
        cluster.drop_database(target_db)
        cluster.drop_database(target_db + "2")


def test_password_file_needs_a_database_target(tmp_path: Path, backed_up) -> None:
    plan, _database = backed_up
    password_file = tmp_path / "pw"
    password_file.write_text("whatever-password\n")
    result = plan.cli(
        "--json", "restore", "latest", "--source", "db", "--to-dir", str(tmp_path / "out"),
        "--password-file", str(password_file),
    )  # fmt: skip
    assert result.code == 2, result
    assert "--password-file" in result.stderr
    empty = tmp_path / "empty"
    empty.write_text("")
    result = plan.cli(
        "--json", "restore", "latest", "--source", "db", "--to-dsn", "postgresql://u@h/x",
        "--password-file", str(empty),
    )  # fmt: skip
    assert result.code == 2 and "empty" in result.stderr, result
