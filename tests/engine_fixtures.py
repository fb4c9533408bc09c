"""pytest plugin: run the real `drgui` CLI against real plans (loaded from tests/conftest.py).

- `run_cli(home, *args)` runs `python -m drgui --home HOME ...` as a subprocess and returns a CliResult.
  Every call checks that no known secret (the database password, the `.env` values) appears on its
  stdout or stderr, so the whole engine test suite doubles as the secret-leak test.
- `new_plan()` (function scope): an initialised plan in a fresh home with a local destination.
- `pg18_backup` (session scope): one plan backing up the nasty schema on PostgreSQL 18 plus a folder,
  a `.env` and a git repository, with one completed backup. Read-only tests share it; tests that
  damage a snapshot work on a copy.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from drgui.core.pg.pgtools import EmbeddedCluster
from tests.pg_fixtures import PG_PASSWORD, PgDatabase, temporary_database

PASSPHRASE = "orbit velvet cactus harbor lantern seventeen"
ENV_SECRETS = {
    "DATABASE_URL": "postgresql://app:EnvDbPassw0rd-91x@db.internal:5432/app",
    "STRIPE_SECRET_KEY": "sk_live_51HtestSECRETvalue0042",
    "SESSION_SECRET": "f3a9c2e1-session-secret-77b1",
}
SECRET_VALUES = [PG_PASSWORD, *ENV_SECRETS.values()]
CLI_TIMEOUT = 300


@dataclass
class CliResult:
    argv: list[str]
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        try:
            return json.loads(self.stdout)
        except json.JSONDecodeError:
            raise AssertionError(f"not one JSON document: {self}") from None

    def __str__(self) -> str:
        return f"drgui {' '.join(self.argv)} -> exit {self.code}\nstdout: {self.stdout[-3000:]}\nstderr: {self.stderr[-3000:]}"


def assert_no_secret(text: str | bytes, where: str) -> None:
    data = text.encode() if isinstance(text, str) else text
    for value in SECRET_VALUES:
        assert value.encode() not in data, f"a secret leaked into {where}"


def cli_argv(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "drgui", "--home", str(home), *args]


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGPASS")}
    env["DRGUI_NO_PROMPT"] = "1"
    env.update(extra or {})
    return env


def run_cli(
    home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = CLI_TIMEOUT
) -> CliResult:
    """`drgui --home HOME ARGS...` as a child process, without a terminal; checks for leaked secrets."""
    process = subprocess.run(
        cli_argv(home, *args),
        capture_output=True,
        text=True,
        env=cli_env(env),
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )
    result = CliResult(list(args), process.returncode, process.stdout, process.stderr)
    assert_no_secret(result.stdout, f"stdout of {result.argv}")
    assert_no_secret(result.stderr, f"stderr of {result.argv}")
    return result


def ok(result: CliResult) -> CliResult:
    assert result.code == 0, str(result)
    return result


def assert_home_clean(home: Path) -> None:
    """No secret in any file of the home: config.toml, history.sqlite (and its WAL), logs, caches."""
    for path in home.rglob("*"):
        if path.is_file() and "snapshots" not in path.parts:
            assert_no_secret(path.read_bytes(), str(path))


@dataclass
class Plan:
    """An initialised plan for the tests."""

    home: Path
    dest_dir: Path
    passphrase_file: Path
    work: Path
    sources: dict[str, str] = field(default_factory=dict)

    def cli(self, *args: str, **kwargs: Any) -> CliResult:
        return run_cli(self.home, *args, **kwargs)

    @property
    def plan_id(self) -> str:
        import tomllib

        return str(tomllib.loads((self.home / "config.toml").read_text())["plan"]["id"])

    @property
    def snapshots_root(self) -> Path:
        """Where this plan's snapshots are at its local destination (its scope: `<dest>/<plan id>/`)."""
        return self.dest_dir / self.plan_id / "snapshots"

    def snapshot_dirs(self) -> list[Path]:
        root = self.snapshots_root
        return sorted(root.iterdir()) if root.is_dir() else []


def make_plan(work: Path, *, name: str = "Acme") -> Plan:
    """init + a local destination, in `work` (home, destination and passphrase file inside it)."""
    work.mkdir(parents=True, exist_ok=True)
    passphrase_file = work / "passphrase.txt"
    passphrase_file.write_text(PASSPHRASE + "\n")
    plan = Plan(work / "home", work / "dest", passphrase_file, work)
    ok(plan.cli("--json", "init", "--name", name, "--passphrase-file", str(passphrase_file)))
    ok(plan.cli("--json", "dest", "add", "local", "local", "--path", str(plan.dest_dir)))
    return plan


def write_env_file(path: Path) -> Path:
    lines = ["# production settings", *(f"{key}={value}" for key, value in ENV_SECRETS.items())]
    lines.append('MULTILINE_CERT="-----BEGIN X-----\nabc\n-----END X-----"')
    path.write_text("\n".join(lines) + "\n")
    return path


FAKE_UDISKSCTL = """#!/bin/sh
echo "$*" >> "{log}"
if [ "$1" = "{fail}" ]; then echo "Error locking /dev/sdb1: Device is busy" >&2; exit 1; fi
"""


def fake_udisksctl(tmp: Path, fail: str = "") -> tuple[str, Path]:
    """A `udisksctl` that logs its arguments (and fails the `fail` verb, "Device is busy").
    Returns the PATH that finds it first, and its log."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    log = tmp / "udisksctl.log"
    fake = bin_dir / "udisksctl"
    fake.write_text(FAKE_UDISKSCTL.format(log=log, fail=fail or "none"))
    fake.chmod(0o755)
    return f"{bin_dir}:{os.environ['PATH']}", log


def write_folder(root: Path) -> Path:
    (root / "invoices" / "2025").mkdir(parents=True)
    (root / "invoices" / "2025" / "inv-0001.pdf").write_bytes(b"%PDF-1.4\n" + os.urandom(30_000))
    (root / "avatars").mkdir()
    (root / "avatars" / "änne.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(5_000))
    (root / "empty.txt").write_bytes(b"")
    return root


def make_git_repo(root: Path) -> Path:
    root.mkdir(parents=True)
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com"}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    for argv in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "commit", "-q", "--allow-empty", "-m", "first"],
        ["git", "tag", "v1"],
    ):
        subprocess.run(argv, cwd=root, env=env, check=True, capture_output=True)
    (root / "app.py").write_text("print('hello')\n")
    subprocess.run(["git", "add", "app.py"], cwd=root, env=env, check=True, capture_output=True)
    subprocess.run(["git", "commit", "-q", "-m", "app"], cwd=root, env=env, check=True, capture_output=True)
    return root


def session_database(cluster: EmbeddedCluster, prefix: str) -> contextlib.AbstractContextManager[PgDatabase]:
    return temporary_database(cluster, f"{prefix}_{secrets.token_hex(3)}")


@dataclass
class BackedUp:
    """A plan with a postgres source `db` (nasty schema), folder `files`, env `env`, git `repo`, one backup."""

    plan: Plan
    database: PgDatabase
    snapshot_id: str
    backup_json: dict[str, Any]
    folder: Path
    env_file: Path
    repo: Path


def back_up_nasty(work: Path, database: PgDatabase, *, extras: bool = True) -> BackedUp:
    database.load_sql()
    plan = make_plan(work)
    ok(plan.cli("--json", "source", "add", "db", "postgres", "--dsn", database.dsn_with_password))
    folder = write_folder(work / "uploads")
    env_file = write_env_file(work / "app.env")
    repo = make_git_repo(work / "repo")
    if extras:
        ok(plan.cli("--json", "source", "add", "files", "folder", "--path", str(folder)))
        ok(plan.cli("--json", "source", "add", "env", "env", "--path", str(env_file)))
        ok(plan.cli("--json", "source", "add", "repo", "git", "--path", str(repo)))
    backup = ok(plan.cli("--json", "backup")).json()
    assert backup["ok"], backup
    return BackedUp(plan, database, backup["snapshot"], backup, folder, env_file, repo)


@contextlib.contextmanager
def _work_dir(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=prefix) as directory:
        yield Path(directory)


@pytest.fixture(scope="session")
def pg18_backup(pg18: EmbeddedCluster) -> Iterator[BackedUp]:
    with session_database(pg18, "nasty18") as database, _work_dir("drgui-e2e-18-") as work:
        backed_up = back_up_nasty(work, database)
        yield backed_up
        assert_home_clean(backed_up.plan.home)


@pytest.fixture(scope="session")
def pg15_backup(pg15: EmbeddedCluster) -> Iterator[BackedUp]:
    with session_database(pg15, "nasty15") as database, _work_dir("drgui-e2e-15-") as work:
        backed_up = back_up_nasty(work, database, extras=False)
        yield backed_up
        assert_home_clean(backed_up.plan.home)


@pytest.fixture
def new_plan(tmp_path: Path) -> Callable[..., Plan]:
    """Factory: an initialised plan with a local destination, in a fresh directory under tmp_path."""
    counter = iter(range(1000))

    def factory(**kwargs: Any) -> Plan:
        plan = make_plan(tmp_path / f"plan{next(counter)}", **kwargs)
        return plan

    return factory


def copy_snapshot_dest(backed_up: BackedUp, target: Path) -> Plan:
    """A second plan home pointing at a copy of the destination (same key, same keyring entries)."""
    shutil.copytree(backed_up.plan.home, target / "home", ignore=shutil.ignore_patterns("*.lock", "tmp"))
    shutil.copytree(backed_up.plan.dest_dir, target / "dest")
    config = (target / "home" / "config.toml").read_text()
    (target / "home" / "config.toml").write_text(
        config.replace(str(backed_up.plan.dest_dir), str(target / "dest"))
    )
    return Plan(target / "home", target / "dest", backed_up.plan.passphrase_file, target)
