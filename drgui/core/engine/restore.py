"""Restore a source from a snapshot, with the production guard (design section 7).

A database goes into a new (or empty) database, never into a configured source database,
recognised by the server's system identifier plus database name, whatever host alias is used.
Folders, .env files and git repositories go into a new or empty directory.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from drgui.core.engine import scratch
from drgui.core.engine.destinations.base import Destination, latest_complete, ordered
from drgui.core.engine.extract import (
    ArchiveReport,
    DiskWriter,
    check_archive,
    check_packed_tree,
    decrypted_pipe,
    index_sha256_of,
)
from drgui.core.engine.kinds import RESTORE_DATABASE, RESTORE_FILE, RESTORE_REPOSITORY, RESTORE_TREE
from drgui.core.engine.pipeline import read_part
from drgui.core.engine.restore_result import Check, RestoreResult
from drgui.core.engine.safety import take_safety_snapshot
from drgui.core.engine.snapshot import FORMAT_V2, SAFETY_PREFIX, find_part, snapshot_prefix
from drgui.core.engine.sources.postgres import (
    PostgresSource,
    child_env,
    connect_error,
    count_rows,
    describe_conninfo,
    split_dsn,
)
from drgui.core.engine.sources.registry import source_kind
from drgui.core.engine.sources.s3 import restore_bucket
from drgui.core.engine.verify import load_manifest
from drgui.core.errors import Cancelled, OperationFailed, UsageError
from drgui.core.pg import pgtools
from drgui.core.plan.secrets import redact
from drgui.core.plan.workspace import Workspace
from drgui.core.progress import CancelToken, Progress, ProgressCallback, RateMeter, ignore_progress


def resolve_snapshot(
    dest: Destination, wanted: str | None, source: str | None = None, *, complete: bool = False
) -> str:
    """The snapshot id meant by `wanted` ('latest' or empty: the newest complete one by start time, holding
    `source` when given; otherwise an id or a unique prefix of one this destination holds). An explicit
    id that is not complete is returned so verify and drill can say what is wrong with it, unless
    `complete` is asked for (restore): then it is refused with the reason."""
    found = dest.snapshots()
    if wanted in (None, "", "latest"):
        newest = latest_complete(found, source)
        if newest is not None:
            return newest.snapshot_id
        newest_any = latest_complete(found)
        if source is not None and newest_any is not None:
            if not any(source in info.source_names for info in found):
                raise UsageError(
                    f"No snapshot on destination '{dest.name}' has a source named '{source}'.",
                    hint=f"The latest holds: {', '.join(newest_any.source_names)}.",
                )
            raise OperationFailed(
                f"No complete snapshot on destination '{dest.name}' holds source '{source}'.",
                hint="Back it up with `drgui backup`, or pick another destination with --dest.",
            )
        damaged = ordered([info for info in found if not info.complete])
        why = f": {damaged[-1].snapshot_id} is not complete ({damaged[-1].problem})" if damaged else ""
        raise OperationFailed(
            f"Destination '{dest.name}' holds no complete snapshot{why}.",
            hint="Run `drgui backup` first, or pick another destination with --dest.",
        )
    ids = [info.snapshot_id for info in found]
    matches = [wanted] if wanted in ids else [i for i in ids if i.startswith(wanted)]
    if len(matches) != 1:
        raise UsageError(
            f"Snapshot {wanted} is not on destination '{dest.name}'.",
            hint="List them with `drgui snapshots`.",
        )
    info = next(i for i in found if i.snapshot_id == matches[0])
    if complete and not info.complete:
        raise OperationFailed(
            f"Snapshot {info.snapshot_id} on destination '{dest.name}' is not complete: {info.problem}.",
            hint="Nothing was restored. Pick another snapshot (`drgui snapshots`) or destination (--dest).",
        )
    return info.snapshot_id


def source_entry(manifest: dict[str, Any], source_name: str) -> dict[str, Any]:
    entries: list[dict[str, Any]] = manifest["sources"]
    for entry in entries:
        if entry["name"] == source_name:
            return entry
    names = ", ".join(e["name"] for e in manifest["sources"])
    raise UsageError(f"The snapshot has no source named '{source_name}'.", hint=f"It holds: {names}.")


# --- the production guard --------------------------------------------------------------------------------
def _server_key(conn: psycopg.Connection) -> str:
    """What identifies a server whatever alias reached it: its system identifier (or start time + port)."""
    try:
        with conn.transaction():
            row = conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone()
        if row and row[0]:
            return f"sysid:{row[0]}"
    except psycopg.Error:
        pass
    row = conn.execute("SELECT pg_postmaster_start_time()::text, current_setting('port')").fetchone()
    return f"started:{row[0]}:port:{row[1]}"  # type: ignore[index]


def _connect(params: dict[str, str], password: str | None, dbname: str) -> psycopg.Connection:
    kwargs: dict[str, Any] = {"connect_timeout": 10, "autocommit": True}
    if password:
        kwargs["password"] = password
    try:
        return psycopg.connect(make_conninfo(**{**params, "dbname": dbname}), **kwargs)
    except psycopg.Error as error:
        raise connect_error(
            error, f"the restore target ({describe_conninfo({**params, 'dbname': dbname})})"
        ) from None


def _production_keys(ws: Workspace) -> dict[tuple[str, str], str]:
    """(server key, database) of every configured postgres source that answers."""
    keys = {}
    for source in ws.sources():
        if isinstance(source, PostgresSource):
            try:
                with source.connect() as conn:
                    keys[(_server_key(conn), str(source.params.get("dbname")))] = source.name
            except OperationFailed:
                continue
    return keys


def _target_database_is_empty(conn: psycopg.Connection) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' "
        "AND c.relkind IN ('r', 'v', 'm', 'S', 'f', 'p')"
    ).fetchone()
    return int(row[0]) == 0  # type: ignore[index]


def prepare_database_target(
    ws: Workspace,
    to_dsn: str,
    *,
    clean: bool,
    manifest_identity: tuple[str | None, str] | None = None,
    password: str | None = None,
) -> tuple[dict[str, str], str | None]:
    """Refuse production and non-empty targets; create the database when it does not exist yet.
    `password`: the target server's password given apart from the DSN (it wins over one in the DSN)."""
    params, dsn_password = split_dsn(to_dsn)
    password = password or dsn_password
    dbname = params["dbname"]
    maintenance = _connect(params, password, "postgres" if dbname != "postgres" else "template1")
    try:
        server = _server_key(maintenance)
        production = _production_keys(ws)
        if manifest_identity and manifest_identity[0]:
            production.setdefault(
                (f"sysid:{manifest_identity[0]}", manifest_identity[1]), "(snapshot's source)"
            )
        if (server, dbname) in production:
            raise UsageError(
                f"Refused: {describe_conninfo(params)} is the production database of source "
                f"'{production[(server, dbname)]}' (same server, same database name).",
                hint="Restore into a NEW database (e.g. add _restore to the name), check it, then switch "
                "DATABASE_URL to it. drgui never restores over a live source database.",
            )
        exists = maintenance.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if not exists:
            maintenance.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(dbname))
            )
            return params, password
    finally:
        maintenance.close()
    with _connect(params, password, dbname) as conn:
        if not _target_database_is_empty(conn) and not clean:
            raise UsageError(
                f"Refused: the target database '{dbname}' is not empty.",
                hint="Restore into a new database name, or pass --clean to drop what is there first.",
            )
    return params, password


# --- restores ------------------------------------------------------------------------------------------
def _decrypt_to_file(
    dest: Destination,
    snapshot_id: str,
    part: dict[str, Any],
    identity: str,
    path: Path,
    cancel: CancelToken,
    meter: RateMeter | None,
) -> None:
    with contextlib.ExitStack() as stack:
        try:
            reader = stack.enter_context(dest.open_read(f"{snapshot_prefix(snapshot_id)}/{part['path']}"))
        except FileNotFoundError:
            raise OperationFailed(
                f"The snapshot's part {part['path']} is missing from destination '{dest.name}'; not restored.",
                hint="Restore from another destination or an older snapshot (`drgui snapshots`).",
            ) from None
        out = stack.enter_context(open(path, "wb"))
        size, digest, _ = read_part(part, reader, identity, out, cancel, meter)
    if size != part["size"] or digest != part["sha256"]:
        raise OperationFailed(f"{part['path']}: decrypted content does not match the manifest; not restored.")


def compare_row_counts(expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> list[Check]:
    """One check per table of the manifest: the exact row count after restore."""
    found = {(t["schema"], t["table"]): t["rows"] for t in actual}
    checks: list[Check] = []
    for table in expected:
        key = (table["schema"], table["table"])
        rows = found.get(key)
        name = f"rows {table['schema']}.{table['table']}"
        if rows is None:
            checks.append(
                {"name": name, "ok": False, "detail": f"table missing (expected {table['rows']} rows)"}
            )
        else:
            checks.append(
                {
                    "name": name,
                    "ok": rows == table["rows"],
                    "detail": f"{rows} rows"
                    + ("" if rows == table["rows"] else f", expected {table['rows']}"),
                }
            )
    return checks


# pg_restore 17+ sends `SET transaction_timeout = 0` on every connection it opens (the leader and each -j
# worker). A server older than 17 does not know the parameter: it reports an error and keeps its default, no
# timeout, which is what the SET asked for. Whether to expect that is decided from the two versions before
# pg_restore runs; afterwards its errors are counted over the whole of stderr, not line by line (with -j the
# workers' lines interleave, but each message is written whole).
OLDER_SERVER_RESTORE_ERROR = 'ERROR:  unrecognized configuration parameter "transaction_timeout"'


def expected_restore_errors(server_version_num: int, pg_restore_version: tuple[int, int]) -> tuple[str, ...]:
    """The server errors a restore with this pg_restore into this server reports although nothing is lost."""
    if server_version_num < 170000 and pg_restore_version[0] >= 17:
        return (OLDER_SERVER_RESTORE_ERROR,)
    return ()


def only_harmless_restore_errors(stderr: str, expected: tuple[str, ...]) -> bool:
    """True when pg_restore reported errors and every one of them is one of `expected`."""
    harmless = sum(stderr.count(message) for message in expected)
    return harmless > 0 and (
        harmless
        == stderr.count("ERROR:")
        == stderr.count("could not execute query: ")
        == stderr.count("error: ")  # pg_restore's own errors (unreadable archive, lost connection) too
    )


def decrypt_dump(
    dest: Destination,
    snapshot_id: str,
    entry: dict[str, Any],
    identity: str,
    path: Path,
    cancel: CancelToken,
    progress: ProgressCallback = ignore_progress,
) -> None:
    """Decrypt a postgres source's dump into `path` (pg_restore -j needs a file it can seek in)."""
    part = find_part(entry, "db.dump.zst")
    if part is None:
        raise OperationFailed(f"The snapshot has no database dump for source '{entry['name']}'.")
    progress(Progress("restore", entry["name"], "Downloading and decrypting the dump"))
    meter = RateMeter(progress, "restore", entry["name"], part["cipher_size"])
    _decrypt_to_file(dest, snapshot_id, part, identity, path, cancel, meter)


def restore_database(
    ws: Workspace,
    dest: Destination,
    snapshot_id: str,
    entry: dict[str, Any],
    to_dsn: str,
    *,
    identity: str,
    clean: bool = False,
    no_owner: bool = False,
    jobs: int | None = None,
    progress: ProgressCallback = ignore_progress,
    cancel: CancelToken | None = None,
    guard: bool = True,
    decrypted_dump: Path | None = None,
    password: str | None = None,
) -> RestoreResult:
    """`password`: the target server's password given apart from `to_dsn` (never put into a DSN).
    `decrypted_dump`: the dump already decrypted (and checked) by the caller, e.g. while the drill's
    scratch server was starting; otherwise it is decrypted here, into a private scratch dir of the home that
    is removed afterwards (and by the next command's sweep when this process is killed)."""
    cancel = cancel or CancelToken()
    if guard:
        params, password = prepare_database_target(
            ws,
            to_dsn,
            clean=clean,
            manifest_identity=(entry.get("system_identifier"), entry.get("database", "")),
            password=password,
        )
    else:
        params, dsn_password = split_dsn(to_dsn)
        password = password or dsn_password
    result = RestoreResult(snapshot_id, entry["name"], describe_conninfo(params))
    if find_part(entry, "db.dump.zst") is None:
        raise OperationFailed(f"The snapshot has no database dump for source '{entry['name']}'.")
    pg_restore = pgtools.find_tool("pg_restore")
    with _connect(params, password, params["dbname"]) as conn:
        server_version_num = int(conn.execute("SHOW server_version_num").fetchone()[0])  # type: ignore[index]
    expected = expected_restore_errors(server_version_num, pgtools.tool_version(pg_restore))
    argv = _pg_restore_argv(pg_restore, params, jobs=jobs, clean=clean, no_owner=no_owner)
    with contextlib.ExitStack() as stack:
        dump = decrypted_dump
        if dump is None:
            scratch.sweep_stale(ws.home.scratch_dir)
            workdir = stack.enter_context(scratch.private_dir(ws.home.scratch_dir, "restore-", "restore"))
            dump = workdir / "db.dump"
            decrypt_dump(dest, snapshot_id, entry, identity, dump, cancel, progress)
        cancel.check()
        progress(Progress("restore", entry["name"], "Running pg_restore"))
        env = stack.enter_context(child_env(password))
        returncode, stderr = _run_pg_restore([*argv, str(dump)], env, cancel)
    _judge_pg_restore(
        result, returncode, redact(stderr.decode(errors="replace").strip()), expected, server_version_num
    )
    progress(Progress("restore", entry["name"], "Counting rows"))
    with _connect(params, password, params["dbname"]) as conn:
        actual = count_rows(conn)
    result.checks.extend(compare_row_counts(entry.get("tables", []), actual))
    return result


def _pg_restore_argv(
    pg_restore: Path, params: dict[str, str], *, jobs: int | None, clean: bool, no_owner: bool
) -> list[str]:
    """pg_restore's arguments, without the dump: the password goes through the child's pgpass, never argv."""
    argv = [
        str(pg_restore),
        "--no-password",
        f"--jobs={jobs or max(2, os.cpu_count() or 2)}",
        f"--dbname={make_conninfo(**params)}",
    ]
    if clean:
        argv += ["--clean", "--if-exists"]
    if no_owner:
        argv += ["--no-owner", "--no-privileges"]
    return argv


def _run_pg_restore(argv: list[str], env: dict[str, str], cancel: CancelToken) -> tuple[int, bytes]:
    """(exit code, stderr) of pg_restore; a cancel terminates it (its process group) and raises Cancelled."""
    env["LC_MESSAGES"] = "C"  # its own messages in English: they are counted by _judge_pg_restore
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        while True:
            try:
                _, stderr = process.communicate(timeout=0.5)
                return process.returncode, stderr
            except subprocess.TimeoutExpired:
                if cancel.cancelled:
                    process.terminate()
                    process.communicate()
                    raise Cancelled(
                        "Restore cancelled; the target database may hold part of the data."
                    ) from None
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def _judge_pg_restore(
    result: RestoreResult, returncode: int, text: str, expected: tuple[str, ...], server_version_num: int
) -> None:
    """pg_restore's outcome as a check: exit 0, only the errors expected of this server (forgiven, said
    as a warning), or failed with its last lines. `text`: its stderr, redacted."""
    if returncode == 0:
        result.checks.append({"name": "pg_restore", "ok": True, "detail": "exit 0"})
    elif only_harmless_restore_errors(text, expected):
        result.warnings.append(
            "pg_restore: transaction_timeout is unknown to PostgreSQL "
            f"{pgtools.format_server_version(server_version_num)}; the server kept its default (no timeout)"
        )
        result.checks.append(
            {"name": "pg_restore", "ok": True, "detail": "settings unknown to the server skipped"}
        )
    else:
        lines = text.splitlines()
        result.warnings.append("pg_restore reported errors: " + " | ".join(lines[-5:]))
        result.checks.append({"name": "pg_restore", "ok": False, "detail": " | ".join(lines[-3:])})


def _refuse_non_empty(path: Path, overwrite: bool) -> None:
    if path.exists() and not path.is_dir():
        raise UsageError(f"Refused: {path} exists and is not a directory.", hint="Name a directory.")
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise UsageError(
            f"Refused: {path} is not empty.",
            hint="Restore into a new or empty directory (or pass --overwrite: drgui first takes a safety "
            "snapshot of what it replaces).",
        )


def _ensure_empty_dir(path: Path, overwrite: bool) -> None:
    _refuse_non_empty(path, overwrite)
    path.mkdir(parents=True, exist_ok=True)


def restore_folder(
    dest: Destination,
    snapshot_id: str,
    entry: dict[str, Any],
    to_dir: Path,
    *,
    identity: str,
    progress: ProgressCallback = ignore_progress,
    cancel: CancelToken | None = None,
    before_replace: Callable[[], str] | None = None,
    scratch_dir: Path | None = None,
) -> RestoreResult:
    """Restore a folder (or bucket) part into `to_dir` (new, empty, or merged into with --overwrite).

    Everything is unpacked into a staging directory beside `to_dir` and checked first (the part's
    ciphertext against the index, its plaintext and every entry against the manifest, with the rules of
    drgui.core.engine.extract); only then are entries moved in. On any problem nothing in `to_dir` changes.
    `before_replace` runs once the checks passed and before anything of a non-empty `to_dir` is replaced
    (the pre-restore safety snapshot); it returns that snapshot's id. Entries of `to_dir` that the
    snapshot does not hold are kept. With `scratch_dir` (the home's), a staging directory left by a
    killed restore is removed by the next drgui command.
    """
    cancel = cancel or CancelToken()
    packed = entry.get("format") == FORMAT_V2
    part = find_part(entry, "files.tar.zst") or find_part(entry, "objects.tar.zst")
    if part is None and not packed:
        raise OperationFailed(f"The snapshot has no files for source '{entry['name']}'.")
    index_sha256 = index_sha256_of(dest, snapshot_id, part) if part is not None else ""
    result = RestoreResult(snapshot_id, entry["name"], str(to_dir))
    with staging_beside(to_dir, scratch_dir) as staging:
        hint = "Restore an older snapshot, or from another destination with --dest."
        try:
            if packed:
                report = _unpack_packed(dest, snapshot_id, entry, identity, staging, cancel, progress)
            else:
                assert part is not None
                report = _unpack(
                    dest, snapshot_id, entry, part, identity, staging, index_sha256, cancel, progress
                )
            problems = report.problems
        except OperationFailed as error:
            problems = [error.message]
            hint = error.hint or hint
        if problems:
            raise OperationFailed("Not restored, the target is unchanged: " + "; ".join(problems), hint=hint)
        cancel.check()
        if before_replace is not None and to_dir.exists() and any(to_dir.iterdir()):
            result.safety_snapshot = before_replace()
        move_into(staging, to_dir)
    apply_directory_modes(to_dir, report.directories)
    result.checks.append({"name": "files", "ok": True, "detail": report.summary})
    return result


def _unpack(
    dest: Destination,
    snapshot_id: str,
    entry: dict[str, Any],
    part: dict[str, Any],
    identity: str,
    staging: Path,
    index_sha256: str,
    cancel: CancelToken,
    progress: ProgressCallback,
) -> ArchiveReport:
    with decrypted_pipe(
        dest, snapshot_id, entry, part, identity, cancel, progress, index_sha256=index_sha256
    ) as (reader, _errors):
        try:
            return check_archive(reader, entry, DiskWriter(staging), cancel, part["path"])
        except OSError as error:
            raise _write_failed(error, staging) from None


def _unpack_packed(
    dest: Destination,
    snapshot_id: str,
    entry: dict[str, Any],
    identity: str,
    staging: Path,
    cancel: CancelToken,
    progress: ProgressCallback,
) -> ArchiveReport:
    """Format 2: the file list and each pack it needs, checked and written into `staging`."""
    try:
        return check_packed_tree(
            dest, snapshot_id, entry, identity, DiskWriter(staging), cancel, staging.parent, progress
        )
    except OSError as error:
        raise _write_failed(error, staging) from None


def _write_failed(error: OSError, staging: Path) -> OperationFailed:
    """The refusal for a restored tree that could not be written into `staging`."""
    where = staging.parent.parent  # the target's parent (the staging holder is removed)
    hint = "Free some space there, or restore into a directory on another disk."
    return OperationFailed(
        f"Cannot write the restored files in {where}: {error.strerror}; not restored.",
        hint=hint if error.errno in (errno.ENOSPC, errno.EDQUOT) else None,
    )


@contextlib.contextmanager
def staging_beside(to_dir: Path, scratch_dir: Path | None = None) -> Iterator[Path]:
    """A private directory on the target's filesystem (`.<name>.drgui-restore-XXXX` in its parent), holding
    the tree to move in; removed afterwards, with any parent directory created for it on failure (and,
    with `scratch_dir`, by the next command's sweep when this process is killed)."""
    created = []
    for parent in reversed([to_dir.parent, *to_dir.parent.parents]):
        if not parent.exists():
            parent.mkdir()
            created.append(parent)
    holder = Path(tempfile.mkdtemp(prefix=f".{to_dir.name}{scratch.STAGING_MARK}", dir=to_dir.parent))
    owned = scratch.owned_elsewhere(scratch_dir, holder) if scratch_dir else contextlib.nullcontext()
    with owned:
        tree = holder / "tree"
        try:
            tree.mkdir()
            yield tree
        except BaseException:
            shutil.rmtree(holder, ignore_errors=True)
            for directory in reversed(created):
                with contextlib.suppress(OSError):
                    directory.rmdir()
            raise
        finally:
            shutil.rmtree(holder, ignore_errors=True)


def move_into(staging: Path, to_dir: Path) -> None:
    """Move the checked tree into `to_dir` by renames (same filesystem), never following a link: a
    directory merges into a directory; anything else replaces what is at its path."""
    try:
        to_dir.lstat()
    except FileNotFoundError:
        os.rename(staging, to_dir)
        return
    for name in sorted(os.listdir(staging)):
        source, target = staging / name, to_dir / name
        source_is_dir = stat.S_ISDIR(source.lstat().st_mode)
        try:
            target_mode: int | None = target.lstat().st_mode
        except FileNotFoundError:
            target_mode = None
        if source_is_dir and target_mode is not None and stat.S_ISDIR(target_mode):
            move_into(source, target)
            continue
        if target_mode is not None and stat.S_ISDIR(target_mode):
            shutil.rmtree(target)
        elif target_mode is not None and source_is_dir:
            target.unlink()
        os.replace(source, target)


def apply_directory_modes(root: Path, directories: list[tuple[str, int, float]]) -> None:
    """Modes and mtimes of restored directories, deepest first, once their content is in place."""
    for relative, mode, mtime in sorted(directories, key=lambda d: d[0].count("/"), reverse=True):
        path = root / relative
        if stat.S_ISDIR(path.lstat().st_mode):
            os.chmod(path, mode)
            os.utime(path, (mtime, mtime))


def restore_env(
    dest: Destination,
    snapshot_id: str,
    entry: dict[str, Any],
    to_dir: Path,
    *,
    identity: str,
    overwrite: bool = False,
    cancel: CancelToken | None = None,
    before_replace: Callable[[Path], str] | None = None,
) -> RestoreResult:
    """Restore the `.env` into `to_dir`; with `overwrite`, an existing one is first kept by
    `before_replace(file)` (the pre-restore safety snapshot), once the part decrypted and checked."""
    part = find_part(entry, "env")
    if part is None:
        raise OperationFailed(f"The snapshot has no .env for source '{entry['name']}'.")
    to_dir.mkdir(parents=True, exist_ok=True)
    target = to_dir / Path(entry.get("path", ".env")).name
    if os.path.lexists(target) and not overwrite:  # a link, even a dangling one, is something there
        raise UsageError(f"Refused: {target} exists.", hint="Choose another directory, or pass --overwrite.")
    link = os.readlink(target) if target.is_symlink() else None
    tmp = target.with_name(target.name + ".drgui-tmp")
    safety_snapshot = None
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    try:
        _decrypt_to_file(dest, snapshot_id, part, identity, tmp, cancel or CancelToken(), None)
        if before_replace is not None and target.is_file():
            safety_snapshot = before_replace(target)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    result = RestoreResult(snapshot_id, entry["name"], str(target))
    result.safety_snapshot = safety_snapshot
    if link is not None:  # as a backup tool restores a file: the link is replaced, what it named is kept
        result.warnings.append(
            f"{target} was a symbolic link to {link}; it is now a regular file holding the restored .env "
            f"({link} is unchanged)"
        )
    result.checks.append(
        {"name": "env", "ok": True, "detail": f"{len(entry.get('keys', []))} keys, sha256 matches"}
    )
    return result


def restore_git(
    dest: Destination,
    snapshot_id: str,
    entry: dict[str, Any],
    to_dir: Path,
    *,
    identity: str,
    cancel: CancelToken | None = None,
) -> RestoreResult:
    part = find_part(entry, "repo.bundle")
    if part is None:
        raise OperationFailed(f"The snapshot has no git bundle for source '{entry['name']}'.")
    _ensure_empty_dir(to_dir, False)
    bundle = to_dir.parent / f".{to_dir.name}.bundle"
    try:
        _decrypt_to_file(dest, snapshot_id, part, identity, bundle, cancel or CancelToken(), None)
        shutil.rmtree(to_dir)
        clone = subprocess.run(
            ["git", "clone", "--quiet", str(bundle), str(to_dir)], capture_output=True, text=True, check=False
        )
        if clone.returncode != 0:
            raise OperationFailed(f"git clone from the bundle failed: {clone.stderr.strip()}")
    finally:
        with contextlib.suppress(FileNotFoundError):
            bundle.unlink()
    head = subprocess.run(
        ["git", "-C", str(to_dir), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    result = RestoreResult(snapshot_id, entry["name"], str(to_dir))
    result.checks.append({"name": "git HEAD", "ok": head == entry.get("head"), "detail": head})
    return result


def restore(
    ws: Workspace,
    snapshot: str | None,
    source_name: str,
    *,
    to_dsn: str | None = None,
    to_dir: Path | None = None,
    dest_name: str | None = None,
    clean: bool = False,
    overwrite: bool = False,
    no_owner: bool = False,
    progress: ProgressCallback = ignore_progress,
    cancel: CancelToken | None = None,
    to_bucket: str | None = None,
    to_prefix: str = "",
    to_password: str | None = None,
) -> RestoreResult:
    dest = ws.destination(dest_name) if dest_name else ws.default_read_destination()
    snapshot_id = resolve_snapshot(dest, snapshot, source_name, complete=True)
    identity = ws.identity()
    manifest = load_manifest(dest, dest.read_index(snapshot_id), identity)
    job = _RestoreJob(
        ws,
        dest,
        snapshot_id,
        source_entry(manifest, source_name),
        identity,
        progress,
        cancel,
        clean=clean,
        overwrite=overwrite,
        no_owner=no_owner,
        to_password=to_password,
    )
    run_id = ws.history.start_run("restore", target=source_name, snapshot_id=snapshot_id)
    try:
        result = _restore_entry(job, to_dsn=to_dsn, to_dir=to_dir, to_bucket=to_bucket, to_prefix=to_prefix)
    except BaseException as error:
        ws.history.finish_run(
            run_id,
            "cancelled" if isinstance(error, Cancelled) else "failed",
            detail={"error": getattr(error, "message", type(error).__name__)},
        )
        raise
    ws.history.finish_run(run_id, "ok" if result.ok else "failed", detail=result.to_json())
    return result


@dataclass(frozen=True)
class _RestoreJob:
    """One source of one snapshot being restored, and how (`restore`'s options)."""

    ws: Workspace
    dest: Destination
    snapshot_id: str
    entry: dict[str, Any]
    identity: str
    progress: ProgressCallback
    cancel: CancelToken | None
    clean: bool = False
    overwrite: bool = False
    no_owner: bool = False
    to_password: str | None = None  # the --to-dsn server's password, never in the DSN

    @property
    def source_name(self) -> str:
        return str(self.entry["name"])

    def safety_snapshot(self, path: Path) -> str:
        """Before anything live is replaced: a snapshot of what will be (`safety.take_safety_snapshot`)."""
        return take_safety_snapshot(self.ws, path, self.source_name, self.progress, self.cancel)


def _restore_entry(
    job: _RestoreJob, *, to_dsn: str | None, to_dir: Path | None, to_bucket: str | None, to_prefix: str
) -> RestoreResult:
    """Where the source's kind says it goes: a database (--to-dsn), a bucket (--to-bucket) or a directory."""
    kind = job.entry["kind"]
    spec = source_kind(kind)  # how this kind restores (its declaration)
    if spec.restore_as == RESTORE_DATABASE:
        if not to_dsn:
            raise UsageError(
                "Restoring a database needs --to-dsn.", hint="Name a NEW database, e.g. ..._restore."
            )
        return restore_database(
            job.ws,
            job.dest,
            job.snapshot_id,
            job.entry,
            to_dsn,
            identity=job.identity,
            clean=job.clean,
            no_owner=job.no_owner,
            progress=job.progress,
            cancel=job.cancel,
            password=job.to_password,
        )
    if spec.restore_to_bucket and to_bucket:
        return _restore_to_bucket(job, to_bucket, to_prefix)
    if to_dir is None:
        raise UsageError(
            f"Restoring a {kind} source needs --to-dir"
            + (" or --to-bucket." if spec.restore_to_bucket else ".")
        )
    if spec.restore_as == RESTORE_TREE:
        return _restore_to_folder(job, to_dir)
    if spec.restore_as == RESTORE_FILE:
        return restore_env(
            job.dest,
            job.snapshot_id,
            job.entry,
            to_dir,
            identity=job.identity,
            overwrite=job.overwrite,
            cancel=job.cancel,
            before_replace=job.safety_snapshot,
        )
    if spec.restore_as == RESTORE_REPOSITORY:
        return restore_git(
            job.dest, job.snapshot_id, job.entry, to_dir, identity=job.identity, cancel=job.cancel
        )
    raise UsageError(f"Cannot restore a source of kind '{kind}'.")


def _restore_to_bucket(job: _RestoreJob, to_bucket: str, to_prefix: str) -> RestoreResult:
    live_name = job.source_name.removeprefix(SAFETY_PREFIX)  # a safety snapshot uses its credentials
    return restore_bucket(
        job.ws.sources([live_name])[0],
        job.dest,
        job.snapshot_id,
        job.entry,
        to_bucket,
        to_prefix,
        identity=job.identity,
        overwrite=job.overwrite,
        cancel=job.cancel,
        progress=job.progress,
        safety_snapshot=lambda target, where: take_safety_snapshot(
            job.ws, where, job.source_name, job.progress, job.cancel, target
        ),
    )


def _restore_to_folder(job: _RestoreJob, to_dir: Path) -> RestoreResult:
    """A folder (or bucket) into a new or empty directory; over the live folder only with --overwrite."""
    live = Path(job.entry.get("path", "")).expanduser() if job.entry.get("path") else None
    if live and to_dir.resolve() == live.resolve() and not job.overwrite:
        raise UsageError(
            f"Refused: {to_dir} is the live folder of source '{job.source_name}'.",
            hint="Restore into a new directory, compare, then move files over.",
        )
    _refuse_non_empty(to_dir, job.overwrite)
    return restore_folder(
        job.dest,
        job.snapshot_id,
        job.entry,
        to_dir,
        identity=job.identity,
        progress=job.progress,
        cancel=job.cancel,
        scratch_dir=job.ws.home.scratch_dir,
        before_replace=lambda: job.safety_snapshot(to_dir),
    )
