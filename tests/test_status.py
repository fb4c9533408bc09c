"""`drgui status` and `drgui run-due`: readiness, RPO state and what is next, in local time."""

from __future__ import annotations

from datetime import datetime

from tests.engine_fixtures import ok, write_folder

BERLIN = {"TZ": "Europe/Berlin"}


def test_status_after_a_backup_shows_sources_and_next_times(new_plan, tmp_path):
    plan = new_plan()
    folder = write_folder(tmp_path / "uploads")
    ok(plan.cli("--json", "source", "add", "files", "folder", "--path", str(folder)))
    before = ok(plan.cli("--json", "status", env=BERLIN)).json()
    assert before["sources"][0]["rpo_state"] == "never"
    assert before["readiness"] < 100 and any("never been backed up" in r for r in before["reasons"])

    ok(plan.cli("--json", "backup"))
    status = ok(plan.cli("--json", "status", env=BERLIN)).json()
    assert status["sources"][0]["rpo_state"] == "ok"
    assert status["destinations"][0]["available"] is True
    assert status["state"] == "ok"
    assert status["queue"] == []

    review = datetime.fromisoformat(status["next"]["weekly_review"])
    assert (review.isoweekday(), review.hour, review.minute) == (7, 19, 0)
    assert review.utcoffset() is not None and review.utcoffset().total_seconds() in (3600, 7200)
    drill = datetime.fromisoformat(status["next"]["drill"])
    assert (drill.isoweekday(), drill.hour, drill.minute) == (7, 19, 0) and drill.day <= 7
    backup = datetime.fromisoformat(status["next"]["backup"])
    assert (backup.hour, backup.minute) == (2, 0)


def test_run_due_does_nothing_right_after_a_backup(new_plan, tmp_path):
    plan = new_plan()
    folder = write_folder(tmp_path / "uploads")
    ok(plan.cli("--json", "source", "add", "files", "folder", "--path", str(folder)))
    ok(plan.cli("--json", "backup"))
    result = ok(plan.cli("--json", "run-due")).json()
    assert result["backup"]["due"] is False
    assert "Next run" in result["backup"]["reason"]
