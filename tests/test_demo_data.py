"""drgui.core.ops.demo_data: the demo's generated SaaS database, uploads and .env."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from drgui.core.errors import UsageError
from drgui.core.ops import demo_data
from tests.pg_fixtures import PgDatabase

MB = 1024 * 1024


@pytest.mark.integration
def test_populate_saas_counts_size_and_shape(pg18_db: PgDatabase) -> None:
    steps: list[tuple[str, float]] = []
    counts = demo_data.populate_saas(
        pg18_db.conninfo(), size_mb=24, seed=7, progress=lambda step, fraction: steps.append((step, fraction))
    )
    assert set(counts) == set(demo_data.TABLES)
    for table, expected in counts.items():
        assert pg18_db.query(f"SELECT count(*) FROM app.{table}") == [(expected,)]
    assert counts["events"] > max(counts[t] for t in demo_data.TABLES if t != "events")

    ((size,),) = pg18_db.query("SELECT pg_database_size(current_database())")
    assert 0.7 * 24 * MB <= size <= 1.3 * 24 * MB, size / MB

    # Some payments are recent, whenever the test runs.
    ((recent,),) = pg18_db.query(
        "SELECT count(*) FROM app.payments WHERE paid_at > now() - interval '7 days'"
    )
    assert recent > 0
    ((future,),) = pg18_db.query("SELECT count(*) FROM app.payments WHERE paid_at > now()")
    assert future == 0
    assert pg18_db.query(
        "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND connamespace = 'app'::regnamespace"
    ) == [(6,)]
    assert pg18_db.query("SELECT enum_range(NULL::app.plan)::text") == [("{free,starter,pro,business}",)]
    ((kinds,),) = pg18_db.query("SELECT count(DISTINCT payload->>'path') FROM app.events")
    assert kinds > 100
    # Identity sequences continue after the generated rows: the app can insert.
    pg18_db.execute(
        "INSERT INTO app.customers (email, name, country, created_at) VALUES ('new@example.com', 'N', 'DE', now())"
    )

    fractions = [fraction for _, fraction in steps]
    assert fractions == sorted(fractions)
    assert fractions[0] == 0.0 and steps[-1] == ("done", 1.0)
    assert {"customers", "events", "constraints"} <= {step for step, _ in steps}

    with pytest.raises(UsageError, match="already has a schema 'app'"):
        demo_data.populate_saas(pg18_db.conninfo(), size_mb=10)


@pytest.mark.integration
def test_populate_saas_is_deterministic_per_seed_and_runs_on_pg15(pg15_db: PgDatabase) -> None:
    cluster = pg15_db.cluster
    demo_data.populate_saas(pg15_db.conninfo(), size_mb=10, seed=3)
    other = pg15_db.dbname + "_b"
    cluster.create_database(other)
    try:
        demo_data.populate_saas(cluster.conninfo(other, password=pg15_db.password), size_mb=10, seed=3)
        fingerprint = (
            "SELECT md5(string_agg(concat_ws('|', id, email, name, company, country), ',' ORDER BY id))"
            " FROM app.customers"
        )
        assert pg15_db.query(fingerprint) == cluster.query(fingerprint, dbname=other)
        events = "SELECT md5(string_agg(concat_ws('|', id, customer_id, kind, payload), ',' ORDER BY id)) FROM app.events"
        assert pg15_db.query(events) == cluster.query(events, dbname=other)
    finally:
        cluster.drop_database(other)


def test_populate_saas_rejects_a_silly_size() -> None:
    with pytest.raises(UsageError):
        demo_data.populate_saas("host=/nonexistent", size_mb=0)


def test_write_uploads(tmp_path: Path) -> None:
    written = demo_data.write_uploads(tmp_path / "uploads", count=40, seed=1)
    files = sorted(p for p in (tmp_path / "uploads").rglob("*") if p.is_file())
    assert written == len(files) == 40
    relative = [p.relative_to(tmp_path / "uploads") for p in files]
    assert any(len(r.parts) >= 4 for r in relative)  # invoices/YYYY/MM/file
    assert any(not r.as_posix().isascii() for r in relative)
    assert any(p.stat().st_size == 0 for p in files)
    assert any(p.suffix == ".png" for p in files) and any(p.suffix == ".pdf" for p in files)

    again = demo_data.write_uploads(tmp_path / "again", count=40, seed=1)
    assert again == 40
    for path in files:
        twin = tmp_path / "again" / path.relative_to(tmp_path / "uploads")
        assert twin.read_bytes() == path.read_bytes()
    demo_data.write_uploads(tmp_path / "other", count=40, seed=2)
    first_pdf = next(p for p in files if p.suffix == ".pdf" and p.stat().st_size > 100)
    other = tmp_path / "other" / first_pdf.relative_to(tmp_path / "uploads")
    assert not other.exists() or other.read_bytes() != first_pdf.read_bytes()


def _parse_env(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        values[key] = value[1:-1] if value[:1] == value[-1:] == '"' else value
    return values


def test_write_env(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    values = demo_data.write_env(path, seed=5)
    text = path.read_text()
    assert _parse_env(text) == values
    for key in (
        "DATABASE_URL",
        "STRIPE_SECRET_KEY",
        "AWS_SECRET_ACCESS_KEY",
        "SENDGRID_API_KEY",
        "JWT_SECRET",
    ):
        assert values[key]
    assert values["STRIPE_SECRET_KEY"].startswith("sk_test_")
    assert "\n#" in "\n" + text and "\nexport " in text and '="' in text
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert demo_data.write_env(tmp_path / "same.env", seed=5) == values
    other = demo_data.write_env(tmp_path / "other.env", seed=6)
    assert other["JWT_SECRET"] != values["JWT_SECRET"]
    assert other["STRIPE_SECRET_KEY"] != values["STRIPE_SECRET_KEY"]
