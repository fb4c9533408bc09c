"""The recovery kit, end to end: a machine is lost, and a new one restores everything from S3 with only the
kit file, the passphrase and the S3 credentials. Also: the kit never holds a secret in the clear."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
import zlib
from pathlib import Path

import pytest

from drgui.core.plan.home import Home
from drgui.core.plan.workspace import IDENTITY_KEY, Workspace
from tests.engine_fixtures import (
    ENV_SECRETS,
    PASSPHRASE,
    assert_no_secret,
    run_cli,
    write_env_file,
    write_folder,
)
from tests.pg_fixtures import PG_PASSWORD, PgDatabase
from tests.s3_fixtures import FAKE_KEY_ID, FAKE_SECRET, s3_client
from tests.support import need

pytestmark = pytest.mark.integration

_STREAM = re.compile(rb"stream\r?\n(.*?)\r?\nendstream", re.DOTALL)


def ok(result):
    assert result.code == 0, str(result)
    return result


def pdf_plain_bytes(pdf: bytes) -> bytes:
    """The PDF with every Flate stream decompressed appended, so a search sees the drawn text as well."""
    inflated = []
    for match in _STREAM.finditer(pdf):
        try:
            inflated.append(zlib.decompress(match.group(1)))
        except zlib.error:
            continue
    return pdf + b"\n".join(inflated)


def assert_kit_clean(pdf_path: Path, json_path: Path, secrets: list[str]) -> None:
    need(shutil.which("pdftotext") is not None, "pdftotext (poppler-utils)")
    text = subprocess.run(
        ["pdftotext", str(pdf_path), "-"], capture_output=True, check=True, timeout=60
    ).stdout
    assert b"BEGIN AGE ENCRYPTED FILE" in text, "the wrapped identity should be printed"
    for where, data in (
        ("the PDF", pdf_plain_bytes(pdf_path.read_bytes())),
        ("the PDF's text", text),
        ("the kit JSON", json_path.read_bytes()),
    ):
        assert b"AGE-SECRET-KEY-1" not in data.upper(), f"a private identity is in {where} in plaintext"
        for value in secrets:
            assert value.encode() not in data, f"a secret is in {where}"
        assert_no_secret(data, where)


def assert_pdf_renders(pdf_path: Path, out_dir: Path) -> None:
    need(shutil.which("pdftoppm") is not None, "pdftoppm (poppler-utils)")
    subprocess.run(
        ["pdftoppm", "-r", "30", "-png", str(pdf_path), str(out_dir / "page")], check=True, timeout=60
    )
    pages = sorted(out_dir.glob("page*.png"))
    assert pages and all(p.stat().st_size > 1000 for p in pages)


@pytest.fixture
def no_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The new machine has no AWS configuration: only what the kit import stores is used."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


def test_fresh_machine_restores_from_s3_with_only_the_kit(
    tmp_path: Path, moto_endpoint: str, no_aws_env: None, pg18_db: PgDatabase
) -> None:
    bucket = f"drgui-kit-{uuid.uuid4().hex[:10]}"
    s3_client(moto_endpoint).create_bucket(Bucket=bucket)
    carried = tmp_path / "carried"  # what the founder keeps off the machine
    carried.mkdir()
    passphrase_file = carried / "passphrase.txt"
    passphrase_file.write_text(PASSPHRASE + "\n")
    s3_secret_file = carried / "s3-secret.txt"
    s3_secret_file.write_text(FAKE_SECRET + "\n")
    prod = tmp_path / "prod"  # production data: the database, files and .env to compare with
    prod.mkdir()
    folder = write_folder(prod / "uploads")
    env_file = write_env_file(prod / "app.env")
    pg18_db.execute(
        "CREATE TABLE customers(id int PRIMARY KEY, email text NOT NULL);"
        "INSERT INTO customers SELECT g, 'c' || g || '@example.com' FROM generate_series(1, 700) g;"
        "CREATE TABLE invoices(id int PRIMARY KEY, customer int REFERENCES customers, cents bigint);"
        "INSERT INTO invoices SELECT g, 1 + g % 700, g * 100 FROM generate_series(1, 1500) g;"
    )

    # --- machine A: a plan that backs up to S3 only ------------------------------------------------
    home_a = tmp_path / "machine-a" / "home"
    ok(run_cli(home_a, "--json", "init", "--name", "Acme", "--passphrase-file", str(passphrase_file)))
    ok(
        run_cli(
            home_a, "--json", "dest", "add", "offsite", "s3", "--bucket", bucket, "--prefix", "acme",
            "--endpoint-url", moto_endpoint, "--region", "us-east-1",
            "--access-key-id", FAKE_KEY_ID, "--secret-access-key-file", str(s3_secret_file),
        )
    )  # fmt: skip
    ok(run_cli(home_a, "--json", "source", "add", "db", "postgres", "--dsn", pg18_db.dsn_with_password))
    ok(run_cli(home_a, "--json", "source", "add", "files", "folder", "--path", str(folder)))
    ok(run_cli(home_a, "--json", "source", "add", "env", "env", "--path", str(env_file)))
    backup = ok(run_cli(home_a, "--json", "backup")).json()
    assert backup["ok"], backup
    snapshot_id = backup["snapshot"]
    export = ok(run_cli(home_a, "--json", "kit", "export", str(carried / "acme-kit.pdf"))).json()
    pdf_path, kit_path = Path(export["pdf"]), Path(export["kit"])
    assert kit_path == carried / "acme-kit.kit.json"

    import json

    kit = json.loads(kit_path.read_text())
    plan_id = kit["plan"]["id"]
    store = Workspace(Home(home_a)).store
    assert store.plan_id == plan_id
    private_identity = store.get(*IDENTITY_KEY)
    assert private_identity and private_identity.startswith("AGE-SECRET-KEY-1")
    secrets = [private_identity, FAKE_KEY_ID, FAKE_SECRET, PG_PASSWORD, PASSPHRASE, *ENV_SECRETS.values()]
    assert_kit_clean(pdf_path, kit_path, secrets)
    assert_pdf_renders(pdf_path, tmp_path)
    [dest] = kit["destinations"]
    assert dest["settings"]["bucket"] == bucket and dest["settings"]["endpoint_url"] == moto_endpoint
    assert dest["snapshots"] == [snapshot_id]
    assert {s["name"] for s in kit["sources"]} == {"db", "files", "env"}

    # --- the machine is lost: its home and its keyring entries are gone -----------------------------
    shutil.rmtree(tmp_path / "machine-a")
    for entry in (
        IDENTITY_KEY,
        ("dest", "offsite", "access_key_id"),
        ("dest", "offsite", "secret_access_key"),
    ):
        store.delete(*entry)
    store.delete("source", "db", "password")

    # --- machine B: a wrong passphrase changes nothing ----------------------------------------------
    wrong = carried / "wrong.txt"
    wrong.write_text("this is not the passphrase at all\n")
    home_b = tmp_path / "machine-b" / "home"
    refused = run_cli(home_b, "--json", "kit", "import", str(kit_path), "--passphrase-file", str(wrong))
    assert refused.code == 2, str(refused)
    assert not (home_b / "config.toml").exists()

    imported = ok(
        run_cli(
            home_b, "--json", "kit", "import", str(kit_path), "--passphrase-file", str(passphrase_file),
            "--access-key-id", FAKE_KEY_ID, "--secret-access-key-file", str(s3_secret_file),
        )
    ).json()  # fmt: skip
    assert imported["sources_needing_secrets"] == ["db"]
    assert imported["credentials_stored_for"] == ["offsite"]
    assert (home_b / "identity.age").exists()
    assert_no_secret((home_b / "config.toml").read_bytes(), "config.toml")

    snapshots = ok(run_cli(home_b, "--json", "snapshots")).json()
    assert [s["id"] for s in snapshots] == [snapshot_id]
    assert snapshots[0]["destinations"] == ["offsite"]
    verify = ok(run_cli(home_b, "--json", "verify", "latest", "--deep")).json()
    assert verify["ok"], verify

    target_db = f"{pg18_db.dbname}_kit"
    cluster = pg18_db.cluster
    try:
        restored = ok(
            run_cli(
                home_b, "--json", "restore", "latest", "--source", "db",
                "--to-dsn", cluster.url(target_db, password=PG_PASSWORD),
            )
        ).json()  # fmt: skip
        assert restored["ok"], restored
        for table in ("customers", "invoices"):
            query = f"SELECT count(*), md5(string_agg(t::text, ',' ORDER BY id)) FROM {table} t"
            assert cluster.query(query, dbname=target_db) == cluster.query(query, dbname=pg18_db.dbname)
    finally:
        cluster.drop_database(target_db)

    files_dir = tmp_path / "restored-files"
    ok(run_cli(home_b, "--json", "restore", "latest", "--source", "files", "--to-dir", str(files_dir)))
    for path in folder.rglob("*"):
        if path.is_file():
            assert (files_dir / path.relative_to(folder)).read_bytes() == path.read_bytes()
    env_restored = ok(
        run_cli(home_b, "--json", "restore", "latest", "--source", "env", "--to-dir", str(tmp_path / "e"))
    ).json()
    assert Path(env_restored["target"]).read_bytes() == env_file.read_bytes()

    drill = ok(run_cli(home_b, "--json", "drill", "latest")).json()
    assert drill["ok"], drill

    # A backup from the new machine needs the database password again, and says so.
    again = run_cli(home_b, "--json", "backup")
    assert again.code == 2 and "source add" in again.stderr, str(again)


def test_bare_armored_block_imports_with_a_plan_name(tmp_path: Path) -> None:
    """The paper path: the block typed from the PDF into a text file, plus a plan name."""
    work = tmp_path / "a"
    work.mkdir()
    passphrase_file = work / "passphrase.txt"
    passphrase_file.write_text(PASSPHRASE + "\n")
    home_a = work / "home"
    ok(run_cli(home_a, "--json", "init", "--name", "Acme", "--passphrase-file", str(passphrase_file)))
    export = ok(run_cli(home_a, "--json", "kit", "export", str(tmp_path / "kit.pdf"))).json()
    import json

    kit = json.loads(Path(export["kit"]).read_text())
    block = tmp_path / "identity.txt"
    block.write_text("typed from the paper kit:\n" + kit["identity_age_armored"])
    home_b = tmp_path / "b"
    no_name = run_cli(
        home_b, "--json", "kit", "import", str(block), "--passphrase-file", str(passphrase_file)
    )
    assert no_name.code == 2 and "--plan-name" in no_name.stderr
    result = ok(
        run_cli(
            home_b, "--json", "kit", "import", str(block), "--passphrase-file", str(passphrase_file),
            "--plan-name", "Acme again",
        )
    ).json()  # fmt: skip
    assert result["plan"]["name"] == "Acme again" and result["destinations"] == []
    assert 'recipient = "' + kit["plan"]["recipient"] in (home_b / "config.toml").read_text()
    # Importing over an existing plan is refused.
    again = run_cli(home_b, "--json", "kit", "import", str(block), "--passphrase-file", str(passphrase_file),
                    "--plan-name", "x")  # fmt: skip
    assert again.code == 2
