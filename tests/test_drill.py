"""The restore drill end to end: real PostgreSQL, real snapshots, the CLI contract, cleanup, the report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from drgui.core.engine.crypto import encrypt_bytes
from drgui.core.engine.snapshot import Index
from drgui.core.errors import Cancelled
from drgui.core.ops.drill import DRILL_STEPS, DrillResult, _schema, _Scratch, run_drill
from drgui.core.plan.home import Home
from drgui.core.plan.workspace import Workspace
from drgui.core.progress import CancelToken, Progress
from tests.engine_fixtures import BackedUp, copy_snapshot_dest, ok, write_env_file, write_folder
from tests.pg_fixtures import PG_PASSWORD, PgDatabase

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCHEMA = """
CREATE TABLE customers (id bigint PRIMARY KEY, email text NOT NULL);
CREATE TABLE invoices (id bigint PRIMARY KEY, customer_id bigint REFERENCES customers(id), cents int);
INSERT INTO customers SELECT g, 'user' || g || '@example.com' FROM generate_series(1, 500) g;
INSERT INTO invoices SELECT g, 1 + g % 500, g * 7 FROM generate_series(1, 2000) g;
"""


@pytest.fixture(autouse=True)
def private_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """This test's own temp dir (for drgui in process and in children), so the leftover checks below see
    only its drill clusters, never those of tests running elsewhere on the machine. Beside the system
    temp dir, mode 0755: a PostgreSQL that runs as another user must enter it. (`tmp_path` first: pytest's
    own base temp dir is never inside it.)"""
    import tempfile

    private = Path(tempfile.mkdtemp(prefix="drgui-test-tmp-"))
    private.chmod(0o755)
    monkeypatch.setenv("TMPDIR", str(private))
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    yield private
    monkeypatch.undo()
    shutil.rmtree(private, ignore_errors=True)


def drill_leftovers() -> tuple[set[str], set[int]]:
    """Temp dirs of embedded drill clusters in this test's private temp dir and live processes of them
    (postmaster and children)."""
    import tempfile

    base = Path(tempfile.gettempdir())
    dirs = {p.name for p in base.glob("drgui-drill-pg-*")}
    mark = str(base / "drgui-drill-pg-").encode()
    pids = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if mark in (proc / "cmdline").read_bytes():
                pids.add(int(proc.name))
        except OSError:
            continue
    return dirs, pids


def assert_nothing_left(home: Path, before: tuple[set[str], set[int]]) -> None:
    dirs, pids = drill_leftovers()
    assert dirs <= before[0], f"drill cluster dirs left: {dirs - before[0]}"
    assert pids <= before[1], f"drill PostgreSQL processes left: {pids - before[1]}"
    tmp = home / "tmp"
    assert not tmp.exists() or not any(tmp.iterdir()), list(tmp.iterdir())


@pytest.fixture
def app_plan(new_plan, pg18_db: PgDatabase, tmp_path: Path) -> Iterator[tuple[Any, PgDatabase, str]]:
    """A plan with a real database (two tables), a folder and an env source; one backup."""
    pg18_db.execute(SCHEMA)
    plan = new_plan()
    ok(plan.cli("--json", "source", "add", "db", "postgres", "--dsn", pg18_db.dsn_with_password))
    folder = write_folder(tmp_path / "uploads")
    env_file = write_env_file(tmp_path / "app.env")
    ok(plan.cli("--json", "source", "add", "files", "folder", "--path", str(folder)))
    ok(
        plan.cli(
            "--json", "source", "add", "env", "env", "--path", str(env_file), "--require", "DATABASE_URL"
        )
    )
    ws = Workspace(Home(plan.home))
    ws.plan.drill["smoke_sql"] = [
        "SELECT count(*) > 0 FROM customers",
        "SELECT email FROM customers WHERE id = 1",
    ]
    ws.save()
    backup = ok(plan.cli("--json", "backup")).json()
    yield plan, pg18_db, backup["snapshot"]


def render_pdf(pdf: Path, out: Path) -> list[Path]:
    subprocess.run(["pdftoppm", "-r", "50", "-png", str(pdf), str(out / "page")], check=True)
    pages = sorted(out.glob("page*.png"))
    assert pages and all(p.stat().st_size > 2000 for p in pages), pages
    return pages


def test_drill_cli_passes_with_every_check(app_plan, tmp_path: Path) -> None:
    plan, _db, snapshot_id = app_plan
    before = drill_leftovers()
    result = plan.cli("--json", "drill", "latest")
    assert result.code == 0, str(result)
    data = result.json()
    assert data["ok"] is True and data["snapshot"] == snapshot_id
    names = {c["name"]: c for c in data["checks"]}
    assert names["rows public.customers"]["ok"] and names["rows public.customers"]["detail"] == "500 rows"
    assert names["rows public.invoices"]["detail"] == "2000 rows"
    assert names["schema"]["ok"] and "matches" in names["schema"]["detail"]
    assert names["smoke 1"]["ok"] and names["smoke 2"]["detail"].endswith("user1@example.com")
    assert names["files files"]["ok"] and names["env keys env"]["ok"] and names["env required env"]["ok"]
    assert {"verify", "pg_restore db", "RTO", "RPO", "RPO gap (30 days)"} <= set(names)
    assert isinstance(data["rto_seconds"], float) and data["rto_seconds"] > 0
    assert 0 <= data["rpo_seconds"] < 3600
    report = Path(data["report"])
    assert report.name == "report.pdf" and report.parent.parent == plan.home / "reports"
    html = report.with_name("report.html").read_text()
    assert "PASS" in html and "rows public.invoices" in html and "Monthly restore test" in html
    render_pdf(report, tmp_path)
    if os.environ.get("DRGUI_KEEP_REPORT"):
        shutil.copytree(report.parent, os.environ["DRGUI_KEEP_REPORT"], dirs_exist_ok=True)
    assert_nothing_left(plan.home, before)
    history = ok(plan.cli("--json", "history")).stdout
    assert "drill" in history
    ws = Workspace(Home(plan.home))
    run = ws.history.last_run("drill")
    assert run is not None and run.status == "ok"
    assert run.detail["rto_seconds"] == data["rto_seconds"] and run.detail["ok"] is True
    assert ws.history.pinned() == {snapshot_id: f"drill report {run.detail['drill']}"}


def test_steps_are_reported_in_order(app_plan) -> None:
    plan, _db, _snapshot = app_plan
    ws = Workspace(Home(plan.home))
    seen: list[str] = []

    def progress(event: Progress) -> None:
        if not seen or seen[-1] != event.step:
            seen.append(event.step)

    result = run_drill(ws, progress=progress, now=datetime.now(UTC))
    assert result.ok, result.failed_checks
    order = [name for name, _title in DRILL_STEPS]
    wanted = [s for s in order if s in seen]
    assert [s for s in seen if s in order] == sorted(set(wanted), key=order.index) or seen, seen
    assert {"snapshot", "verify", "scratch", "restore", "rows", "schema", "files", "env", "targets"} <= set(
        seen
    )


def test_cancel_half_way_leaves_nothing(app_plan) -> None:
    plan, _db, _snapshot = app_plan
    ws = Workspace(Home(plan.home))
    before = drill_leftovers()
    cancel = CancelToken()
    running: list[set[int]] = []

    def progress(event: Progress) -> None:
        if event.step == "restore" and not cancel.cancelled:
            running.append(drill_leftovers()[1] - before[1])
            cancel.cancel()

    with pytest.raises(Cancelled):
        run_drill(ws, progress=progress, cancel=cancel)
    assert running and running[0], "the scratch PostgreSQL was running when the drill was cancelled"
    assert_nothing_left(plan.home, before)
    assert ws.history.last_run("drill").status == "cancelled"  # type: ignore[union-attr]


def test_interrupt_leaves_nothing(app_plan) -> None:
    plan, _db, _snapshot = app_plan
    ws = Workspace(Home(plan.home))
    before = drill_leftovers()

    def progress(event: Progress) -> None:
        if event.step == "rows":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_drill(ws, progress=progress)
    assert_nothing_left(plan.home, before)


def test_removed_part_fails_naming_it(app_plan) -> None:
    plan, _db, snapshot_id = app_plan
    part = plan.snapshots_root / snapshot_id / "parts" / "files" / "files.tar.zst.age"
    part.unlink()
    before = drill_leftovers()
    result = plan.cli("--json", "drill", snapshot_id)  # named: an incomplete snapshot is never "latest"
    assert result.code == 1, str(result)
    data = result.json()
    assert data["ok"] is False
    failed = {c["name"]: c["detail"] for c in data["checks"] if not c["ok"]}
    assert "parts/files/files.tar.zst.age: missing" in failed["verify parts/files/files.tar.zst.age"]
    assert "restore files" in failed
    # The database still restored and matched: the report shows what is fine as well as what is not.
    assert all(c["ok"] for c in data["checks"] if c["name"].startswith("rows "))
    assert "FAIL" in Path(data["report"]).with_name("report.html").read_text()
    assert_nothing_left(plan.home, before)


def _forge_db_part(plan, full_id: str, other_id: str) -> None:
    """Put snapshot `other`'s database dump into snapshot `full`, re-sealing manifest and index so every
    hash is consistent: what a bug that dumps one database and counts another would produce."""
    ws = Workspace(Home(plan.home))
    identity = ws.identity()
    root = plan.snapshots_root
    from drgui.core.engine.verify import load_manifest

    dest = ws.destination("local")
    full_index, other_index = dest.read_index(full_id), dest.read_index(other_id)
    manifest = load_manifest(dest, full_index, identity)
    other = load_manifest(dest, other_index, identity)
    key = "parts/db/db.dump.zst.age"
    shutil.copyfile(root / other_id / key, root / full_id / key)
    other_part = next(p for s in other["sources"] for p in s["parts"] if p["path"] == key)
    for source in manifest["sources"]:
        source["parts"] = [other_part if p["path"] == key else p for p in source["parts"]]
    sealed = encrypt_bytes(json.dumps(manifest).encode(), ws.plan.recipient)
    (root / full_id / full_index.manifest["path"]).write_bytes(sealed)
    import hashlib

    full_index.manifest = {
        **full_index.manifest,
        "size": len(sealed),
        "sha256": hashlib.sha256(sealed).hexdigest(),
    }
    other_entry = next(p for p in other_index.parts if p["path"] == key)
    full_index.parts = [other_entry if p["path"] == key else p for p in full_index.parts]
    (root / full_id / "index.json").write_bytes(full_index.to_bytes())
    assert Index.from_bytes((root / full_id / "index.json").read_bytes()).snapshot_id == full_id


def test_dump_of_another_database_fails_on_row_counts(app_plan) -> None:
    """Snapshot A's manifest says 2000 invoices; its dump comes from a run where invoices was emptied.
    Every hash is consistent (so verify passes): only the restore and the row counts can catch it."""
    plan, db, _first = app_plan
    full_id = plan.snapshot_dirs()[-1].name
    db.execute("TRUNCATE invoices")
    other_id = ok(plan.cli("--json", "backup")).json()["snapshot"]
    _forge_db_part(plan, full_id, other_id)
    ok(plan.cli("--json", "verify", full_id))
    result = plan.cli("--json", "drill", full_id)
    assert result.code == 1, str(result)
    checks = {c["name"]: c for c in result.json()["checks"]}
    assert checks["verify"]["ok"]
    assert not checks["rows public.invoices"]["ok"]
    assert checks["rows public.invoices"]["detail"] == "0 rows, expected 2000"
    assert checks["rows public.customers"]["ok"]


def test_scratch_dsn_refuses_the_production_database(app_plan) -> None:
    plan, db, _snapshot = app_plan
    other_host = db.dsn_with_password.replace("127.0.0.1", "localhost")
    result = plan.cli("--json", "drill", "--scratch", other_host)
    assert result.code == 2, str(result)
    assert "production database" in result.json()["error"]


def test_scratch_dsn_into_an_empty_database(app_plan, pg18) -> None:
    plan, db, _snapshot = app_plan
    name = db.dbname + "_scratch"
    pg18.create_database(name)
    try:
        dsn = db.dsn_with_password.rsplit("/", 1)[0] + "/" + name
        result = plan.cli("--json", "drill", "--scratch", dsn)
        assert result.code == 0, str(result)
        assert result.json()["ok"]
        again = plan.cli("--json", "drill", "--scratch", dsn)
        assert again.code == 2 and "not empty" in again.json()["error"]
    finally:
        pg18.drop_database(name)


def test_pg15_source_is_drilled_on_a_pg15_scratch_server(pg15_db: PgDatabase, new_plan) -> None:
    """The scratch server runs the source's major version when it is installed (here Debian's 15)."""
    pg15_db.execute(SCHEMA)
    plan = new_plan()
    ok(plan.cli("--json", "source", "add", "db", "postgres", "--dsn", pg15_db.dsn_with_password))
    ok(plan.cli("--json", "backup"))
    result = plan.cli("--json", "drill")
    data = result.json()
    assert result.code == 0, [c for c in data["checks"] if not c["ok"]]
    assert data["scratch"].startswith("embedded PostgreSQL 15.")
    assert next(c for c in data["checks"] if c["name"] == "schema")["detail"].startswith(
        "fingerprint matches"
    )


class _OtherVersionScratch(_Scratch):
    def server_version_num(self, conninfo: str, password: str | None) -> int:
        return 180000


def test_schema_not_comparable_across_versions(pg18_db: PgDatabase) -> None:
    """Fingerprints from different major versions differ for formatting reasons: an ok check that says so."""
    pg18_db.execute(SCHEMA)
    result = DrillResult("d", "p", "s", "local", "x", datetime.now(UTC))
    entry = {"server_version_num": 150020, "schema_sha256": "0" * 64}
    conninfo = pg18_db.conninfo(password=None)
    _schema(result, _OtherVersionScratch(None, "embedded"), entry, conninfo, PG_PASSWORD, "")  # type: ignore[arg-type]
    assert result.checks[-1]["ok"]
    assert result.checks[-1]["detail"].startswith("not comparable across versions 15→18")
    same = {"server_version_num": 180000, "schema_sha256": "0" * 64}
    _schema(result, _OtherVersionScratch(None, "embedded"), same, conninfo, PG_PASSWORD, "")  # type: ignore[arg-type]
    assert not result.checks[-1]["ok"] and "differs from the snapshot's" in result.checks[-1]["detail"]


def test_nasty_schema_drill(pg18_backup: BackedUp, tmp_path: Path) -> None:
    plan = copy_snapshot_dest(pg18_backup, tmp_path)
    before = drill_leftovers()
    result = plan.cli("--json", "drill")
    assert result.code == 0, str(result)
    data = result.json()
    assert sum(c["name"].startswith("rows ") for c in data["checks"]) >= 3
    assert any(c["name"] == "git repo" and c["ok"] for c in data["checks"])
    assert_nothing_left(plan.home, before)
    assert not os.environ.get("PGPASSWORD")
