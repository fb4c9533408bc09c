"""Backup -> restore round trips through the CLI, on PostgreSQL 15 and 18, of the nasty schema."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from drgui.core.pg.pgtools import EmbeddedCluster, find_tool
from tests.engine_fixtures import ENV_SECRETS, BackedUp, ok
from tests.pg_fixtures import PG_PASSWORD

pytestmark = pytest.mark.integration

_RANDOM_KEY_LINE = re.compile(r"^\\(un)?restrict\b")
# Debian's PostgreSQL 15 server keeps a per-column `pg_attver` option that it sets itself (a counter,
# different in every database), and pg_dump 18 dumps it: compare everything but its value.
_ATTVER = re.compile(r"pg_attver=\d+")


def schema_only(cluster: EmbeddedCluster, dbname: str) -> str:
    """pg_dump 18 --schema-only over the trusted socket, without the \\restrict lines (random keys)."""
    result = subprocess.run(
        [
            str(find_tool("pg_dump")),
            "--schema-only",
            "-d",
            cluster.conninfo(dbname, host=str(cluster.socket_dir)),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    lines = (line for line in result.stdout.splitlines() if not _RANDOM_KEY_LINE.match(line))
    return _ATTVER.sub("pg_attver=N", "\n".join(lines))


def large_objects(cluster: EmbeddedCluster, dbname: str) -> list[tuple]:
    return cluster.query(
        "SELECT count(*), coalesce(sum(length(lo_get(oid))), 0) FROM pg_largeobject_metadata", dbname=dbname
    )


def restore_and_compare(backed_up: BackedUp) -> None:
    cluster = backed_up.database.cluster
    source_db = backed_up.database.dbname
    target_db = f"{source_db}_restore"
    target_dsn = cluster.url(target_db, password=PG_PASSWORD)
    try:
        result = ok(
            backed_up.plan.cli("--json", "restore", "latest", "--source", "db", "--to-dsn", target_dsn)
        ).json()
        assert result["ok"] and result["snapshot"] == backed_up.snapshot_id
        assert PG_PASSWORD not in result["target"]
        row_checks = [c for c in result["checks"] if c["name"].startswith("rows ")]
        assert row_checks and all(c["ok"] for c in row_checks), row_checks
        # The manifest's counts are the truth; compare with the live source as well.
        source_counts = {
            f"rows {schema}.{table}": count for schema, table, count in _counts(cluster, source_db)
        }
        assert {c["name"] for c in row_checks} == set(source_counts)
        for check in row_checks:
            assert check["detail"] == f"{source_counts[check['name']]} rows"
        assert schema_only(cluster, target_db) == schema_only(cluster, source_db)
        source_lo = large_objects(cluster, source_db)
        assert source_lo[0][0] > 0, "the nasty schema should hold large objects"
        assert large_objects(cluster, target_db) == source_lo
    finally:
        cluster.drop_database(target_db)


def _counts(cluster: EmbeddedCluster, dbname: str) -> list[tuple[str, str, int]]:
    from drgui.core.engine.sources.postgres import count_rows

    with cluster.connect(dbname) as conn:
        return [(t["schema"], t["table"], t["rows"]) for t in count_rows(conn)]


@pytest.mark.parametrize("version", ["pg18", "pg15"])
def test_nasty_schema_round_trip(version: str, request: pytest.FixtureRequest) -> None:
    backed_up: BackedUp = request.getfixturevalue(f"{version}_backup")
    restore_and_compare(backed_up)


def test_folder_env_and_git_round_trip(pg18_backup: BackedUp, tmp_path: Path) -> None:
    plan = pg18_backup.plan
    files = ok(
        plan.cli("--json", "restore", "latest", "--source", "files", "--to-dir", str(tmp_path / "f"))
    ).json()
    assert files["ok"], files
    for path in pg18_backup.folder.rglob("*"):
        if path.is_file():
            assert (tmp_path / "f" / path.relative_to(pg18_backup.folder)).read_bytes() == path.read_bytes()
    env = ok(
        plan.cli("--json", "restore", "latest", "--source", "env", "--to-dir", str(tmp_path / "e"))
    ).json()
    restored_env = Path(env["target"])
    assert restored_env.read_bytes() == pg18_backup.env_file.read_bytes()
    assert os.stat(restored_env).st_mode & 0o077 == 0, "a restored .env must not be readable by others"
    repo = ok(
        plan.cli("--json", "restore", "latest", "--source", "repo", "--to-dir", str(tmp_path / "r"))
    ).json()
    assert repo["ok"], repo
    tags = subprocess.run(
        ["git", "-C", str(tmp_path / "r"), "tag"], capture_output=True, text=True, check=True
    )
    assert "v1" in tags.stdout


def test_manifest_lists_env_keys_never_values(pg18_backup: BackedUp) -> None:
    from drgui.core.engine.verify import load_manifest
    from drgui.core.plan.home import Home
    from drgui.core.plan.workspace import Workspace

    ws = Workspace(Home(pg18_backup.plan.home))
    dest = ws.destination("local")
    manifest = load_manifest(dest, dest.read_index(pg18_backup.snapshot_id), ws.identity())
    env_entry = next(s for s in manifest["sources"] if s["name"] == "env")
    assert env_entry["keys"] == [*ENV_SECRETS, "MULTILINE_CERT"]
    text = str(manifest)
    for value in ENV_SECRETS.values():
        assert value not in text
    db_entry = next(s for s in manifest["sources"] if s["name"] == "db")
    assert db_entry["large_objects"] > 0 and db_entry["tables"]
