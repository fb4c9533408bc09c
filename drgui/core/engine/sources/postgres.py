"""PostgreSQL via pg_dump: dump, row counts and schema fingerprint all from one exported snapshot."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import subprocess
import tempfile
import threading
from collections.abc import Generator, Iterator, Mapping
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from drgui.core.engine import scratch
from drgui.core.engine.kinds import RESTORE_DATABASE, BuildContext, Kind, Setting
from drgui.core.engine.sources.base import CaptureContext, ChildProcess, PartStream, Source
from drgui.core.errors import EnvironmentNotReady, SourceError, UsageError
from drgui.core.pg import pgtools
from drgui.core.plan.config import SourceConfig
from drgui.core.plan.secrets import SecretStore, redact, remember

CONNINFO_KEYS = (
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "application_name",
    "connect_timeout",
    "options",
    "target_session_attrs",
    "service",
)
SECRET_CONNINFO_KEYS = ("password", "sslpassword")

COUNT_TABLES_SQL = """
SELECT n.nspname, c.relname, c.relkind
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
  AND c.relpersistence <> 't'
  AND (c.relkind <> 'm' OR c.relispopulated)
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2
"""


_URL_PASSWORD = re.compile(r"^postgres(?:ql)?://[^:@/?#]*:(?P<password>.*)@", re.IGNORECASE | re.DOTALL)
_QUERY_PASSWORD = re.compile(r"[?&](?:ssl)?password=(?P<password>[^&#]*)", re.IGNORECASE)
_KEYWORD_PASSWORD = re.compile(r"(?:^|\s)(?:ssl)?password\s*=\s*(?P<password>'(?:[^'\\]|\\.)*'?|\S+)")
_QUOTED_TOKEN = re.compile(r'"[^"]*"')


def _remember_dsn_passwords(dsn: str) -> None:
    """Mark whatever looks like a password in a DSN as secret, before libpq has parsed (or refused) it."""
    for pattern in (_URL_PASSWORD, _QUERY_PASSWORD, _KEYWORD_PASSWORD):
        for match in pattern.finditer(dsn):
            remember(match.group("password"))
            remember(match.group("password").strip("'"))


def split_dsn(dsn: str) -> tuple[dict[str, str], str | None]:
    """A DSN (URL or key=value) -> (settings without secrets, password or None)."""
    _remember_dsn_passwords(dsn)
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as error:
        # libpq quotes the token it refused, which may be the password: no quoted token is ever shown.
        reason = _QUOTED_TOKEN.sub('"***"', redact(str(error).strip()))
        raise UsageError(
            f"The DSN is not valid: {reason}",
            hint="Use postgresql://USER@HOST:PORT/DBNAME or 'host=... dbname=... user=...'; in a URL, "
            "write a % in the password as %25 (and @ as %40, / as %2F).",
        ) from None
    password = params.pop("password", None)
    params.pop("sslpassword", None)
    unknown = sorted(set(params) - set(CONNINFO_KEYS))
    if unknown:
        raise UsageError(f"Unsupported DSN parameter(s): {', '.join(unknown)}.")
    if "dbname" not in params:
        raise UsageError(
            "The DSN names no database.", hint="Add the database name, e.g. postgresql://app@db:5432/app."
        )
    if password:
        remember(str(password))
    return {k: str(v) for k, v in params.items()}, (str(password) if password else None)


def describe_conninfo(params: dict[str, Any]) -> str:
    host = params.get("host") or params.get("hostaddr") or "local socket"
    port = params.get("port", "5432")
    return f"{params.get('user', '(default user)')}@{host}:{port}/{params.get('dbname')}"


def connect_error(error: psycopg.Error, what: str) -> SourceError:
    text = redact(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)
    lowered = text.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        hint = (
            "Check the user and password; store a new one with `drgui source edit NAME --password-file FILE`."
        )
    elif "does not exist" in lowered and "database" in lowered:
        hint = "Check the database name in the DSN."
    elif "could not translate host name" in lowered or "name or service not known" in lowered:
        hint = "Check the host name in the DSN, and your network or VPN."
    elif "connection refused" in lowered or "timeout" in lowered or "could not connect" in lowered:
        hint = "Is the server running and reachable on that host and port? Check firewall and VPN."
    else:
        hint = "Check the DSN and that the server accepts connections from this machine."
    return SourceError(f"Cannot connect to {what}: {text}", hint=hint)


def _pgpass_field(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


@contextlib.contextmanager
def child_env(password: str | None) -> Iterator[dict[str, str]]:
    """The environment for pg_dump, pg_dumpall, pg_restore and psql while the block runs: the password only
    in a 0600 PGPASSFILE in a private temp dir, removed afterwards (never PGPASSWORD, never argv)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGPASS")}
    env.setdefault("PGAPPNAME", "drgui")
    if not password:
        yield env
        return
    if "\n" in password or "\r" in password:
        raise UsageError("The database password contains a line break, which PostgreSQL's tools cannot take.")
    with scratch.private_dir(Path(tempfile.gettempdir()), scratch.PGPASS_PREFIX, "pgpass") as directory:
        pgpass = directory / "pgpass"
        fd = os.open(pgpass, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(f"*:*:*:*:{_pgpass_field(password)}\n")
        env["PGPASSFILE"] = str(pgpass)
        yield env


_SERVER_STAMPED_OPTION = re.compile(r"pg_attver=\d+(?:, )?")


def normalise_schema(dump_text: str) -> str:
    """Drop what differs between two dumps of the same schema: comments, SET lines, \\restrict keys."""
    kept = []
    for line in dump_text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("--") or stripped.startswith(("\\restrict", "\\unrestrict")):
            continue
        if stripped.startswith(("SET ", "SELECT pg_catalog.set_config(")):
            continue
        if "pg_attver=" in line:
            # Some server builds stamp every column with a pg_attver option (a WAL position) that a
            # restore cannot reproduce: it says nothing about the schema, so it is left out.
            line = _SERVER_STAMPED_OPTION.sub("", line).replace(", )", ")")
            if line.rstrip().endswith("SET ();"):
                continue
        kept.append(line.rstrip())
    return "\n".join(kept) + "\n"


def schema_dump_argv(pg_dump: Path, conninfo: str, snapshot: str | None = None) -> list[str]:
    argv = [
        str(pg_dump),
        "--schema-only",
        "--no-owner",
        "--no-privileges",
        "--no-comments",
        f"--dbname={conninfo}",
    ]
    if snapshot:
        argv.insert(1, f"--snapshot={snapshot}")
    return argv


def schema_fingerprint(conninfo: str, password: str | None, snapshot: str | None = None) -> str:
    """sha256 of the normalised schema-only dump (owners and privileges left out, so a scratch restore compares)."""
    pg_dump = pgtools.find_tool("pg_dump")
    with child_env(password) as env:
        result = subprocess.run(
            schema_dump_argv(pg_dump, conninfo, snapshot), capture_output=True, env=env, check=False
        )
    if result.returncode != 0:
        raise SourceError(
            f"pg_dump --schema-only failed: {redact(result.stderr.decode(errors='replace').strip())}"
        )
    return hashlib.sha256(normalise_schema(result.stdout.decode("utf-8")).encode()).hexdigest()


def count_rows(conn: psycopg.Connection) -> list[dict[str, Any]]:
    tables = []
    for schema, table, relkind in conn.execute(COUNT_TABLES_SQL).fetchall():
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
        (rows,) = conn.execute(query).fetchone()  # type: ignore[misc]
        tables.append(
            {
                "schema": schema,
                "table": table,
                "kind": "matview" if relkind == "m" else "table",
                "rows": int(rows),
            }
        )
    return tables


def server_identity(conn: psycopg.Connection) -> dict[str, Any]:
    """Server version, system identifier and database name: how the production guard recognises a server."""
    info: dict[str, Any] = {}
    info["server_version_num"] = int(conn.execute("SHOW server_version_num").fetchone()[0])  # type: ignore[index]
    info["server_version"] = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
    info["database"] = str(conn.execute("SELECT current_database()").fetchone()[0])  # type: ignore[index]
    try:
        with conn.transaction():
            row = conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone()
        info["system_identifier"] = str(row[0]) if row else None
    except psycopg.Error:
        info["system_identifier"] = None
    return info


class PostgresSource(Source):
    kind = "postgres"

    def __init__(self, config: SourceConfig, store: SecretStore | None) -> None:
        super().__init__(config, store)
        self.params = {k: str(v) for k, v in config.settings.items() if k in CONNINFO_KEYS}

    def describe(self) -> str:
        return f"PostgreSQL {describe_conninfo(self.params)}"

    @property
    def conninfo(self) -> str:
        return make_conninfo(**self.params)

    def password(self) -> str | None:
        if self.store is None or not self.config.settings.get("has_password"):
            return None
        password = self.store.get("source", self.name, "password")
        if password is None:
            raise EnvironmentNotReady(
                f"The keyring has no password for source {self.name}.",
                hint=f"Store it again: `drgui source edit {self.name} --password-file FILE` (or Edit on the "
                f"Sources page of the app); a source made with `drgui source add {self.name} postgres --dsn ...` "
                "takes the password in the DSN too.",
            )
        return password

    @contextlib.contextmanager
    def connect(self, *, autocommit: bool = True) -> Iterator[psycopg.Connection]:
        kwargs: dict[str, Any] = {"connect_timeout": int(self.params.get("connect_timeout", 10))}
        password = self.password()
        if password:
            kwargs["password"] = password
        try:
            conn = psycopg.connect(self.conninfo, autocommit=autocommit, **kwargs)
        except psycopg.Error as error:
            raise connect_error(error, f"source '{self.name}' ({describe_conninfo(self.params)})") from None
        try:
            yield conn
        finally:
            conn.close()

    def preflight(self) -> None:
        pg_dump = pgtools.find_tool("pg_dump")
        with self.connect() as conn:
            version = int(conn.execute("SHOW server_version_num").fetchone()[0])  # type: ignore[index]
        pgtools.check_dump_compatible(version, pg_dump)

    def capture(self, ctx: CaptureContext) -> Generator[PartStream, None, None]:
        pg_dump = pgtools.find_tool("pg_dump")
        password = self.password()
        with child_env(password) as env, self.connect(autocommit=False) as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            identity = server_identity(conn)
            pgtools.check_dump_compatible(identity["server_version_num"], pg_dump)
            conn.execute("SET row_security = off")
            snapshot = str(conn.execute("SELECT pg_export_snapshot()").fetchone()[0])  # type: ignore[index]
            ctx.manifest.update(
                {
                    "server_version": identity["server_version"],
                    "server_version_num": identity["server_version_num"],
                    "system_identifier": identity["system_identifier"],
                    "database": identity["database"],
                    "pg_dump_version": ".".join(map(str, pgtools.tool_version(pg_dump))),
                    "connection": describe_conninfo(self.params),
                }
            )
            # Counts and the schema fingerprint run beside the data dump, in the same exported snapshot.
            side_result: dict[str, Any] = {}
            side = threading.Thread(
                target=self._side_work,
                args=(conn, password, snapshot, side_result),
                name="drgui-pg-counts",
                daemon=True,
            )
            side.start()
            child = ChildProcess(
                [str(pg_dump), "-Fc", "-Z0", f"--snapshot={snapshot}", f"--dbname={self.conninfo}"],
                env=env,
                stderr_path=ctx.workdir / f"{self.name}-pg_dump.log",
            )
            try:
                yield PartStream("db.dump.zst", child.stdout, compressed=True)
            except BaseException:
                child.stop()
                side.join()
                raise
            code = child.wait()
            side.join()
            if code != 0:
                raise SourceError(
                    f"pg_dump of source '{self.name}' failed (exit {code}): {redact(child.stderr_tail())}",
                    hint="Read the message above; the snapshot was not kept.",
                )
            if "error" in side_result:
                raise side_result["error"]
            ctx.manifest["tables"] = side_result["tables"]
            ctx.manifest["large_objects"] = side_result["large_objects"]
            ctx.manifest["schema_sha256"] = side_result["schema_sha256"]
            ctx.manifest["rows_total"] = sum(t["rows"] for t in side_result["tables"])
            # Roles last: the data dump starts as early as possible (start-up time counts in the benchmark).
            yield from self._globals(ctx, env)
            conn.rollback()

    def _side_work(
        self, conn: psycopg.Connection, password: str | None, snapshot: str, result: dict[str, Any]
    ) -> None:
        try:
            result["schema_sha256"] = schema_fingerprint(self.conninfo, password, snapshot)
            result["tables"] = count_rows(conn)
            result["large_objects"] = int(
                conn.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()[0]  # type: ignore[index]
            )
        except psycopg.Error as error:
            result["error"] = SourceError(
                f"Counting rows of source '{self.name}' failed: {redact(str(error))}"
            )
        except Exception as error:
            result["error"] = error

    def _globals(self, ctx: CaptureContext, env: dict[str, str]) -> Iterator[PartStream]:
        """Roles and tablespaces via pg_dumpall --globals-only, when this user may read them."""
        try:
            pg_dumpall = pgtools.find_tool("pg_dumpall")
        except Exception as error:
            ctx.manifest["globals"] = {"included": False, "reason": str(error)}
            return
        result = subprocess.run(
            [str(pg_dumpall), "--globals-only", "--no-role-passwords", f"--dbname={self.conninfo}"],
            capture_output=True,
            env=env,
            check=False,
        )
        if result.returncode != 0:
            reason = redact(
                result.stderr.decode(errors="replace").strip().splitlines()[-1:][0]
                if result.stderr.strip()
                else f"exit {result.returncode}"
            )
            ctx.manifest["globals"] = {"included": False, "reason": reason}
            ctx.warnings.append(f"Roles of '{self.name}' not saved: {reason}")
            return
        ctx.manifest["globals"] = {"included": True}
        yield PartStream("globals.sql.zst", io.BytesIO(result.stdout), compressed=True)


def _build(
    settings: dict[str, Any], secrets: dict[str, str], ctx: BuildContext
) -> tuple[dict[str, Any], dict[str, str]]:
    """The DSN is split: connection settings to config.toml, its password (if any) to the keyring.
    A password file wins over the DSN's password, which wins over PGPASSWORD (`ctx.fallback`)."""
    params, dsn_password = split_dsn(str(settings.pop("dsn")))
    password = secrets.get("password") or dsn_password or ctx.fallback.get("password")
    out = dict(secrets)
    if password:
        out["password"] = password
    kept = bool(ctx.existing and ctx.existing.get("has_password") and "password" in ctx.existing_secrets)
    return {**params, "has_password": bool(password) or kept}, out


def _values(settings: Mapping[str, Any]) -> dict[str, Any]:
    return {"dsn": make_conninfo(**{k: str(v) for k, v in settings.items() if k in CONNINFO_KEYS})}


KIND = Kind(
    name="postgres",
    role="source",
    label="PostgreSQL database",
    description="a PostgreSQL database (pg_dump), with its roles, row counts and schema fingerprint",
    settings=(
        Setting(
            "dsn",
            "postgresql://USER[:PASSWORD]@HOST:PORT/DB; a password in it goes to the keyring",
            label="Connection (DSN)",
            required=True,
            stored=False,
            placeholder="postgresql://app@db.example.com:5432/app",
        ),
        Setting(
            "password",
            "file with the database password (else the DSN's, else $PGPASSWORD); kept in the keyring",
            label="Password",
            secret=True,
            secret_file=True,
            env="PGPASSWORD",
        ),
    ),
    opener=PostgresSource,
    build=_build,
    to_values=_values,
    uses_secrets=lambda settings: ("password",) if settings.get("has_password") else (),
    derived=(*CONNINFO_KEYS, "has_password"),
    restore_as=RESTORE_DATABASE,
    order=0,
)
