"""The production guard: a restore never writes into a configured source database, whatever the alias."""

from __future__ import annotations

import pytest

from drgui.core.pg.pgtools import EmbeddedCluster
from tests.engine_fixtures import BackedUp
from tests.pg_fixtures import PG_PASSWORD

pytestmark = pytest.mark.integration


def fingerprint(cluster: EmbeddedCluster, dbname: str) -> list[tuple]:
    """Row counts and a checksum of the content of every ordinary table."""
    tables = cluster.query(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1",
        dbname=dbname,
    )
    rows = []
    for (table,) in tables:
        rows += cluster.query(
            f"SELECT '{table}', count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t",
            dbname=dbname,
        )
    rows += cluster.query("SELECT count(*) FROM pg_largeobject_metadata", dbname=dbname)
    return rows


def test_restore_into_the_source_database_is_refused(pg18_backup: BackedUp) -> None:
    cluster = pg18_backup.database.cluster
    dbname = pg18_backup.database.dbname
    before = fingerprint(cluster, dbname)
    aliases = {
        "localhost": cluster.url(dbname, host="localhost", password=PG_PASSWORD),
        "127.0.0.1": cluster.url(dbname, host="127.0.0.1", password=PG_PASSWORD),
        "socket": cluster.url(dbname, host=str(cluster.socket_dir)),
    }
    for alias, dsn in aliases.items():
        for extra in ([], ["--clean"]):
            result = pg18_backup.plan.cli(
                "--json", "restore", "latest", "--source", "db", "--to-dsn", dsn, *extra
            )
            assert result.code in (1, 2), f"{alias} {extra}: {result}"
            assert not result.json()["ok"]
            if extra:
                # --clean skips the non-empty check: only the production guard stands in the way.
                assert "production database" in result.stderr, f"{alias}: {result}"
    assert fingerprint(cluster, dbname) == before
