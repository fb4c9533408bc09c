"""`drgui checklist list|run` and the automatic checks, against real plans and their history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drgui.core.ops import autochecks
from drgui.core.plan.home import Home
from drgui.core.plan.workspace import Workspace
from tests.engine_fixtures import ENV_SECRETS, ok, write_env_file, write_folder

pytestmark = pytest.mark.integration


@pytest.fixture
def backed_up_plan(new_plan, tmp_path: Path):
    plan = new_plan()
    ok(plan.cli("--json", "source", "add", "files", "folder", "--path", str(write_folder(tmp_path / "up"))))
    env_file = write_env_file(tmp_path / "app.env")
    ok(plan.cli("--json", "source", "add", "env", "env", "--path", str(env_file)))
    ok(plan.cli("--json", "backup"))
    return plan


def test_list_names_every_builtin(new_plan) -> None:
    plan = new_plan()
    rows = ok(plan.cli("--json", "checklist", "list")).json()
    ids = {r["id"] for r in rows}
    assert {"weekly-review", "monthly-restore-test", "secret-leaked", "laptop-lost"} <= ids
    human = ok(plan.cli("checklist", "list")).stdout
    assert "monthly-restore-test" in human and "Monthly restore test" in human


def test_run_weekly_review_evaluates_and_ticks(backed_up_plan, tmp_path: Path) -> None:
    plan = backed_up_plan
    ok(plan.cli("--json", "verify", "latest"))
    markdown = tmp_path / "weekly.md"
    result = plan.cli(
        "--json",
        "checklist",
        "run",
        "weekly-review",
        "--tick",
        "hosting-export",
        "--by",
        "Ana",
        "--markdown",
        str(markdown),
    )
    assert result.code == 0, str(result)
    data = result.json()
    states = {s["item_id"]: s for s in data["run"]["states"]}
    assert states["backups-within-rpo"]["done"] and states["backups-within-rpo"]["by"] == "drgui"
    assert states["latest-verified"]["done"], states["latest-verified"]
    assert states["s3-queue-empty"]["done"] and states["no-failed-backups"]["done"]
    assert states["drive-synced"]["done"] and "no drive" in states["drive-synced"]["detail"]
    assert states["hosting-export"]["done"] and states["hosting-export"]["by"] == "Ana"
    assert not data["complete"] and data["done"] < data["total"]
    text = markdown.read_text()
    assert "Ticked by Ana" in text and "[x]" in text
    ws = Workspace(Home(plan.home))
    run = ws.history.last_run("checklist")
    assert run is not None and run.target == "weekly-review" and run.status == "partial"


def test_unverified_snapshot_fails_the_automatic_item(backed_up_plan) -> None:
    result = backed_up_plan.cli("--json", "checklist", "run", "weekly-review")
    assert result.code == 1
    states = {s["item_id"]: s for s in result.json()["run"]["states"]}
    assert (
        not states["latest-verified"]["done"]
        and "not verified on local" in states["latest-verified"]["detail"]
    )


def test_env_keys_variable_uses_names_only(backed_up_plan) -> None:
    result = backed_up_plan.cli("--json", "checklist", "run", "secret-leaked")
    assert result.code in (0, 1), str(result)
    text = result.stdout
    for key in ENV_SECRETS:
        assert key in text
    # run_cli already asserts that no value of the .env reached stdout or stderr


def test_unknown_item_and_checklist_are_usage_errors(backed_up_plan) -> None:
    bad = backed_up_plan.cli("--json", "checklist", "run", "weekly-review", "--tick", "nope")
    assert bad.code == 2 and "has no item 'nope'" in bad.json()["error"]
    assert backed_up_plan.cli("--json", "checklist", "run", "nope").code == 2
    auto = backed_up_plan.cli("--json", "checklist", "run", "weekly-review", "--tick", "latest-verified")
    assert auto.code == 2 and "checked automatically" in auto.json()["error"]


def test_autochecks_from_history(backed_up_plan) -> None:
    ws = Workspace(Home(backed_up_plan.home))
    now = datetime.now(UTC)
    assert autochecks.backup_within_rpo(ws, now)[0]
    assert not autochecks.backup_within_rpo(ws, now + timedelta(days=2))[0]
    assert not autochecks.drill_within_35_days(ws, now)[0]
    run = ws.history.start_run("drill")
    ws.history.finish_run(run, "ok")
    assert autochecks.drill_within_35_days(ws, now)[0]
    assert not autochecks.drill_within_35_days(ws, now + timedelta(days=36))[0]
    assert autochecks.no_failed_backups_7_days(ws, now)[0]
    failed = ws.history.start_run("backup")
    ws.history.finish_run(failed, "failed")
    assert not autochecks.no_failed_backups_7_days(ws, now)[0]
    assert autochecks.no_failed_backups_7_days(ws, now + timedelta(days=8))[0]
    assert autochecks.s3_queue_empty(ws, now)[0]
    ws.history.enqueue("20260101T000000Z-00000000", "s3", "offline")
    assert not autochecks.s3_queue_empty(ws, now)[0]
    assert set(autochecks.evaluate(ws, ["s3_queue_empty", "unknown"], now)) == {"s3_queue_empty"}
