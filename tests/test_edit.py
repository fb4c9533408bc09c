"""`drgui source edit` and `drgui dest edit` (issue 14, Edit): the options of `add`, only the given ones change;
a new database password or S3 key after a rotation goes to the keyring (never config.toml); retention per
destination; bad values refused exactly as `add` refuses them, nothing half-written; the next backup and
prune use the new values."""

from __future__ import annotations

import json
import secrets as random
import tomllib
from pathlib import Path

from drgui.core.plan.home import Home
from drgui.core.plan.workspace import Workspace
from tests.engine_fixtures import Plan, assert_home_clean, make_plan, ok, write_folder
from tests.pg_fixtures import PgDatabase
from tests.s3_fixtures import S3Bucket


def config(plan: Plan) -> dict:
    return tomllib.loads((plan.home / "config.toml").read_text())


def store(plan: Plan):
    return Workspace(Home(plan.home)).store


def refused(result, code: int, *needles: str) -> None:
    assert result.code == code, str(result)
    for needle in needles:
        assert needle in result.stderr, f"{needle!r} not in {result}"
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr


def test_edit_a_database_password_after_a_rotation(tmp_path: Path, pg18_db: PgDatabase) -> None:
    role = f"edit_{random.token_hex(3)}"
    old, new = "Old-pw-" + random.token_hex(6), "New-pw-" + random.token_hex(6)
    pg18_db.execute(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{old}'")
    pg18_db.execute(f"CREATE TABLE {role}_t (id int); INSERT INTO {role}_t VALUES (1), (2)")
    plan = make_plan(tmp_path / "p")
    dsn = pg18_db.dsn.replace("://postgres@", f"://{role}@")
    assert role in dsn
    old_file, new_file = tmp_path / "old.txt", tmp_path / "new.txt"
    old_file.write_text(old + "\n")
    new_file.write_text(new + "\n")
    ok(plan.cli("--json", "source", "add", "db", "postgres", "--dsn", dsn, "--password-file", str(old_file)))
    ok(plan.cli("--json", "backup"))

    pg18_db.execute(f"ALTER ROLE {role} PASSWORD '{new}'")  # the rotation
    failed = plan.cli("--json", "backup")
    assert failed.code != 0 and "password" in failed.stderr.lower(), str(failed)

    before = (plan.home / "config.toml").read_bytes()
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not-the-password\n")
    # a wrong password is refused as `add` refuses it (the connection test), and nothing changes
    refused(plan.cli("--json", "source", "edit", "db", "--password-file", str(wrong)), 2, "password")
    assert (plan.home / "config.toml").read_bytes() == before
    assert store(plan).get("source", "db", "password") == old

    edited = ok(plan.cli("--json", "source", "edit", "db", "--password-file", str(new_file))).json()
    assert edited["changed"] == ["password"]
    assert store(plan).get("source", "db", "password") == new
    entry = config(plan)["sources"][0]
    assert entry["user"] == role and entry["has_password"] is True and new not in json.dumps(entry)
    assert (plan.home / "config.toml").read_text().count(role) >= 1
    ok(plan.cli("--json", "backup"))  # the next backup uses the new password
    for secret in (old, new):
        for path in plan.home.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), f"a password is in {path}"

    # a new DSN replaces the connection (and its password, given in it, goes to the keyring)
    pg18_db.execute(f"ALTER ROLE {role} PASSWORD '{old}'")
    moved = dsn.replace(f"{role}@", f"{role}:{old}@")
    ok(plan.cli("--json", "source", "edit", "db", "--dsn", moved))
    assert store(plan).get("source", "db", "password") == old
    assert old not in (plan.home / "config.toml").read_text()


def test_edit_a_destination_path_and_retention_then_backup_and_prune(tmp_path: Path) -> None:
    plan = make_plan(tmp_path / "p")
    write_folder(tmp_path / "files")
    ok(plan.cli("--json", "source", "add", "files", "folder", "--path", str(tmp_path / "files")))
    ok(plan.cli("--json", "backup"))
    moved = tmp_path / "moved"
    edited = ok(
        plan.cli(
            "--json", "dest", "edit", "local", "--path", str(moved), "--keep-last", "1", "--keep-daily", "0"
        )
    ).json()
    assert edited["retention"] == {"last": 1}
    assert config(plan)["destinations"][0]["path"] == str(moved)
    assert config(plan)["destinations"][0]["retention"] == {"last": 1}
    assert (moved / plan.plan_id / "identity.age").is_file()  # the new place can be restored from alone
    ok(plan.cli("--json", "backup"))
    ok(plan.cli("--json", "backup"))
    snapshots = sorted((moved / plan.plan_id / "snapshots").iterdir())
    assert len(snapshots) == 2  # the next backups went to the new path
    pruned = ok(plan.cli("--json", "prune")).json()
    assert len(pruned["keep"]) == 1 and len(pruned["remove"]) == 1  # prune used the new retention
    assert [p.name for p in (moved / plan.plan_id / "snapshots").iterdir()] == [snapshots[-1].name]
    # only the given options change: retention edits keep the path, a path edit keeps retention
    ok(plan.cli("--json", "dest", "edit", "local", "--keep-within", "30d"))
    entry = config(plan)["destinations"][0]
    assert entry["path"] == str(moved) and entry["retention"] == {"last": 1, "within": "30d"}
    listed = ok(plan.cli("--json", "dest", "list")).json()
    assert listed[0]["retention"] == {"last": 1, "within": "30d"}
    events = [e for e in Workspace(Home(plan.home)).history.events() if "dest_edit" in json.dumps(e)]
    assert len(events) == 2, events


def test_bad_values_are_refused_as_add_refuses_them(tmp_path: Path) -> None:
    plan = make_plan(tmp_path / "p")
    write_folder(tmp_path / "files")
    ok(plan.cli("--json", "source", "add", "files", "folder", "--path", str(tmp_path / "files")))
    before = (plan.home / "config.toml").read_bytes()
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for bad in (blocker / "sub", tmp_path / "missing-parent" / "dir"):
        added = plan.cli("--json", "dest", "add", "other", "local", "--path", str(bad))
        edited = plan.cli("--json", "dest", "edit", "local", "--path", str(bad))
        refused(added, 2, "Destination 'other'")
        refused(edited, 2, "Destination 'local'")
        # the same rule, the same words (only the name differs)
        assert added.json()["error"].replace("'other'", "'local'") == edited.json()["error"]
        assert added.json()["hint"] == edited.json()["hint"]
    assert "does not exist" in edited.json()["error"] and "mount" in edited.json()["hint"]
    refused(plan.cli("--json", "dest", "edit", "local", "--keep-daily", "-5"), 2, "retention count daily")
    refused(
        plan.cli("--json", "dest", "edit", "local", "--keep-within", "3 fortnights"),
        2,
        "'local'",
        "3 fortnights",
    )
    refused(plan.cli("--json", "dest", "edit", "local", "--keep-daily", "0"), 2, "no retention rule")
    refused(plan.cli("--json", "source", "edit", "files", "--bucket", "b"), 2, "has no --bucket")
    refused(plan.cli("--json", "source", "edit", "files", "--path", str(tmp_path / "nowhere")), 2, "nowhere")
    refused(plan.cli("--json", "source", "edit", "ghost", "--path", "/tmp"), 2, "no source named 'ghost'")
    assert (plan.home / "config.toml").read_bytes() == before  # nothing half-written
    missing = plan.cli("--json", "dest", "add", "x", "local", "--path", str(tmp_path / "no" / "parent"))
    refused(missing, 2, "its parent folder")
    assert not (tmp_path / "no").exists()


def test_edit_s3_keys_after_a_rotation(tmp_path: Path, s3_bucket: S3Bucket, monkeypatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    plan = make_plan(tmp_path / "p")
    first, second = tmp_path / "k1.txt", tmp_path / "k2.txt"
    first.write_text("first-Secret-Key-0001\n")
    second.write_text("second-Secret-Key-0002\n")
    where = ["--bucket", s3_bucket.name, "--endpoint-url", s3_bucket.endpoint, "--region", "us-east-1"]
    keys = ["--access-key-id", "AKIAFIRSTKEY000001", "--secret-access-key-file", str(first)]
    ok(plan.cli("--json", "dest", "add", "off", "s3", *where, *keys))
    refused(
        plan.cli("--json", "dest", "edit", "off", "--access-key-id", "AKIAONLYID"), 2, "No S3 credentials"
    )
    assert store(plan).get("dest", "off", "access_key_id") == "AKIAFIRSTKEY000001"
    new_keys = ["--access-key-id", "AKIASECONDKEY00002", "--secret-access-key-file", str(second)]
    ok(plan.cli("--json", "dest", "edit", "off", *new_keys, "--storage-class", "STANDARD_IA"))
    assert store(plan).get("dest", "off", "access_key_id") == "AKIASECONDKEY00002"
    assert store(plan).get("dest", "off", "secret_access_key") == "second-Secret-Key-0002"
    entry = config(plan)["destinations"][1]
    assert entry["credentials"] == "keyring" and entry["storage_class"] == "STANDARD_IA"
    assert entry["bucket"] == s3_bucket.name and entry["endpoint_url"] == s3_bucket.endpoint
    ok(plan.cli("--json", "dest", "edit", "off", "--prefix", "elsewhere"))  # keys kept: no key given
    assert store(plan).get("dest", "off", "secret_access_key") == "second-Secret-Key-0002"
    assert config(plan)["destinations"][1]["prefix"] == "elsewhere"
    ok(plan.cli("--json", "dest", "test", "off"))
    text = (plan.home / "config.toml").read_text()
    assert "Secret-Key" not in text and "AKIA" not in text
    assert_home_clean(plan.home)


def test_edit_gives_an_imported_source_its_missing_secret(tmp_path: Path) -> None:
    """After a kit import a source that needs a password is marked `secrets_missing` (backup refuses it);
    `source edit NAME --password-file` stores it and clears the mark, keeping the connection settings."""
    from drgui.core.plan import setup

    plan = make_plan(tmp_path / "p")
    ws = Workspace(Home(plan.home))
    imported = {"host": "db.example.com", "port": "5432", "dbname": "app", "user": "app"}
    setup.add_source(ws, "db", "postgres", {**imported, "secrets_missing": ["password"]}, test=False)
    assert config(plan)["sources"][0]["has_password"] is False
    password_file = tmp_path / "pw.txt"
    password_file.write_text("Imported-Secret-0001\n")
    ok(plan.cli("--json", "source", "edit", "db", "--password-file", str(password_file), "--no-test"))
    entry = config(plan)["sources"][0]
    assert "secrets_missing" not in entry and entry["has_password"] is True
    assert {k: entry[k] for k in imported} == imported
    assert store(plan).get("source", "db", "password") == "Imported-Secret-0001"


def test_a_retention_edit_does_not_recreate_an_unmounted_folder(tmp_path: Path) -> None:
    plan = make_plan(tmp_path / "p")
    nas = tmp_path / "nas"
    nas.mkdir()
    ok(plan.cli("--json", "dest", "edit", "local", "--path", str(nas / "backups")))
    assert (nas / "backups" / plan.plan_id / "identity.age").is_file()
    (nas / "backups" / plan.plan_id / "identity.age").unlink()
    (nas / "backups" / plan.plan_id).rmdir()
    (nas / "backups").rmdir()
    nas.rmdir()  # "unmounted"
    ok(plan.cli("--json", "dest", "edit", "local", "--keep-daily", "3", "--no-test"))
    assert not nas.exists()
    assert config(plan)["destinations"][0]["retention"] == {"daily": 3}
