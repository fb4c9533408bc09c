"""Checklist templates, their expansion and the record of a run."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import drgui
from drgui.core.errors import UsageError
from drgui.core.ops import checklists
from drgui.core.ops.checklists import AUTO_CHECKS, ChecklistRun, load, load_all, run_checklist

ENV_KEYS = [
    "DATABASE_URL",
    "STRIPE_SECRET_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "S3_ACCESS_KEY_ID",
    "SESSION_SECRET",
]
VARIABLES = {"env_keys": ENV_KEYS}
BUILTINS = {
    "weekly-review",
    "monthly-restore-test",
    "quarterly-drill",
    "laptop-lost",
    "database-corrupted",
    "platform-outage",
    "secret-leaked",
    "data-breach",
    "launch-readiness",
}
T0 = datetime(2025, 1, 5, 19, 0, tzinfo=UTC)


def write_template(directory: Path, checklist_id: str, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{checklist_id}.toml"
    path.write_text(
        f'id = "{checklist_id}"\ntitle = "T"\nwhen = "W"\nsummary = "S"\n{body}', encoding="utf-8"
    )
    return path


MANUAL = '[[items]]\nid = "a"\ntext = "Do A"\ndone_when = "A is done"\n'


# --- the built-in templates ---------------------------------------------------------------------


def test_every_builtin_is_present_and_loads() -> None:
    templates = load_all()
    assert set(templates) == BUILTINS
    for name in BUILTINS:
        checklist = load(name, VARIABLES)
        assert checklist.expanded
        assert checklist.title and checklist.when and checklist.summary


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_builtin_is_valid(name: str) -> None:
    template = load_all()[name]
    ids = [item.id for item in template.items]
    assert len(ids) == len(set(ids))
    assert template.origin and Path(template.origin).name == f"{name}.toml"
    for item in template.items:
        if item.kind == "auto":
            assert item.check in AUTO_CHECKS
        else:
            assert item.check is None
            assert item.done_when, f"{item.id}: a manual step says how to know it is done"
        if item.for_each:
            assert item.for_each in template.variables
    expanded = load(name, VARIABLES)
    assert len({item.id for item in expanded.items}) == len(expanded.items)
    for item in expanded.items:
        # No placeholder is left behind for a stressed reader to decode.
        assert not re.search(r"\{[A-Za-z_]+\}", item.text + (item.help or "") + (item.done_when or ""))


def test_auto_checks_registry_has_the_agreed_names() -> None:
    assert set(AUTO_CHECKS) == {
        "backup_within_rpo",
        "drill_within_35_days",
        "drive_synced_within_7_days",
        "s3_queue_empty",
        "no_failed_backups_7_days",
        "verify_latest_ok",
    }
    assert all(description.strip() for description in AUTO_CHECKS.values())


def test_weekly_review_covers_the_sunday_reminder() -> None:
    checklist = load("weekly-review")
    assert set(checklist.checks) == set(AUTO_CHECKS) - {"drill_within_35_days"}
    texts = " ".join(item.text for item in checklist.items).lower()
    assert "export" in texts and "stripe" in texts


def test_data_breach_has_the_deadlines_and_both_templates() -> None:
    checklist = load("data-breach")
    everything = " ".join([checklist.summary, *(item.text for item in checklist.items)])
    assert "72 hours" in everything
    assert "art. 33" in everything and "art. 34" in everything
    assert "without undue delay" in everything
    assert {"customer_email", "status_page"} <= set(checklist.templates)
    for name in ("customer_email", "status_page"):
        placeholders = checklists.template_placeholders(checklist.templates[name])
        assert {"contact_email", "data_affected", "discovered_at"} <= set(placeholders)


def test_fill_template_leaves_unknown_placeholders_visible() -> None:
    text = load("data-breach").templates["customer_email"]
    filled = checklists.fill_template(text, {"product": "Acme", "contact_email": "help@acme.example"})
    assert "Acme" in filled and "help@acme.example" in filled
    assert "{product}" not in filled and "{data_affected}" in filled


def test_database_corrupted_restores_to_a_new_database_and_keeps_the_broken_one() -> None:
    text = " ".join(item.text for item in load("database-corrupted").items)
    assert "drgui restore" in text and "--to-dsn" in text
    assert "DATABASE_URL" in text
    assert "forensics" in text


# --- expansion of env keys ----------------------------------------------------------------------


def test_secret_leaked_has_one_rotation_item_per_key_in_order() -> None:
    checklist = load("secret-leaked", {"env_keys": [*ENV_KEYS, "DATABASE_URL"]})
    rotations = [
        item for item in checklist.items if item.id.startswith("rotate-") and item.id != "rotate-other"
    ]
    assert [item.id for item in rotations] == [f"rotate-{key}" for key in ENV_KEYS]
    for item, key in zip(rotations, ENV_KEYS, strict=True):
        assert item.text.startswith(f"Rotate {key}:")
        assert item.for_each is None and item.kind == "manual"
    ids = [item.id for item in checklist.items]
    assert (
        ids.index("rotate-SESSION_SECRET")
        < ids.index("redeploy")
        < ids.index("revoke-old")
        < ids.index("check-logs")
    )


def test_secret_leaked_without_env_sources_still_has_the_generic_steps() -> None:
    checklist = load("secret-leaked", {"env_keys": []})
    ids = {item.id for item in checklist.items}
    assert {"rotate-other", "redeploy", "revoke-old", "check-logs"} <= ids
    assert not any(item.id.startswith("rotate-") and item.id != "rotate-other" for item in checklist.items)


def test_missing_variable_is_a_usage_error_naming_it() -> None:
    with pytest.raises(UsageError, match="env_keys"):
        load("secret-leaked")


def test_secret_leaked_expansion_contains_no_value_looking_string() -> None:
    checklist = load("secret-leaked", VARIABLES)
    run = ChecklistRun(checklist=checklist, started=T0)
    dumped = json.dumps(run.to_dict()) + run.to_markdown()
    for marker in ("sk_live_", "sk_test_", "whsec_", "AKIA", "ghp_", "postgres://", "postgresql://"):
        assert marker not in dumped
    for key in ENV_KEYS:
        assert f"Rotate {key}:" in dumped


@pytest.mark.parametrize(
    "value",
    [
        "sk_live_51Habcdefghijklmnop",
        "STRIPE_SECRET_KEY=sk_live_x",
        "AKIAIOSFODNN7EXAMPLE",
        "a8f3c9d2e1b7a6f5c4d3e2f1a0b9c8d7",
    ],
)
def test_a_value_passed_as_a_key_name_is_refused_without_echoing_it(value: str) -> None:
    with pytest.raises(UsageError) as caught:
        load("secret-leaked", {"env_keys": ["DATABASE_URL", value]})
    assert value not in str(caught.value)
    assert "#2" in str(caught.value)


def test_variables_must_be_a_list_not_a_string() -> None:
    with pytest.raises(TypeError):
        load("secret-leaked", {"env_keys": "DATABASE_URL"})


# --- errors -------------------------------------------------------------------------------------


def test_unknown_checklist_lists_the_known_ones() -> None:
    with pytest.raises(UsageError) as caught:
        load("no-such-list")
    assert "no-such-list" in str(caught.value)
    assert "weekly-review" in str(caught.value) and "data-breach" in str(caught.value)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('[[items]]\nid = "a"\ntext = "x"\ncheck = "made_up_check"\n', "items[0].check"),
        (
            '[[items]]\nid = "a-{key}"\ntext = "x {key}"\nfor_each = "env_keys"\ndone_when = "d"\n',
            "items[0].for_each",
        ),
        (MANUAL + MANUAL, "items[].id"),
        ('[[items]]\nid = "a"\ntext = "x"\n', "items[0].done_when"),
        ('[[items]]\nid = "a"\ntext = "x {key}"\ndone_when = "d"\n', "items[0].text"),
        (MANUAL + 'colour = "red"\n', "items[0].colour"),
        ('[[items]]\nid = "a"\ntext = "x"\nkind = "sometimes"\n', "items[0].kind"),
        ("items = []\n", "items"),
        (MANUAL + '[templates]\ncustomer_email = ""\n', "templates.customer_email"),
    ],
)
def test_invalid_template_names_file_and_field(tmp_path: Path, body: str, field: str) -> None:
    path = write_template(tmp_path, "mine", body)
    with pytest.raises(UsageError) as caught:
        load_all([tmp_path])
    assert str(path) in str(caught.value)
    assert f"'{field}'" in str(caught.value)


def test_template_id_must_match_file_name(tmp_path: Path) -> None:
    (tmp_path / "other.toml").write_text(
        'id = "mine"\ntitle = "T"\nwhen = "W"\nsummary = "S"\n' + MANUAL, encoding="utf-8"
    )
    with pytest.raises(UsageError, match="'id'"):
        load_all([tmp_path])


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text("id = \n", encoding="utf-8")
    with pytest.raises(UsageError, match=re.escape(str(path))):
        load_all([tmp_path])


def test_plan_override_replaces_builtin_by_id(tmp_path: Path) -> None:
    write_template(tmp_path / "plan", "weekly-review", MANUAL)
    write_template(tmp_path / "plan", "my-own", MANUAL)
    templates = load_all([tmp_path / "plan", tmp_path / "does-not-exist"])
    assert [item.id for item in templates["weekly-review"].items] == ["a"]
    assert "my-own" in templates and "data-breach" in templates
    assert load("weekly-review", extra_dirs=[tmp_path / "plan"]).title == "T"


# --- runs ---------------------------------------------------------------------------------------


ALL_OK = {name: (True, f"{name} fine") for name in AUTO_CHECKS}


def test_tick_auto_progress_complete() -> None:
    run = run_checklist("weekly-review", {"backup_within_rpo": (True, "all 4 sources within 24 h")}, now=T0)
    done, total = run.progress
    assert (done, total) == (1, len(run.checklist.items))
    assert not run.complete and run.finished is None
    state = run.states["backups-within-rpo"]
    assert state.done and state.auto and state.by == checklists.AUTO_BY
    assert state.detail == "all 4 sources within 24 h"

    run.apply_auto({"s3_queue_empty": (False, "2 snapshots waiting")}, T0)
    assert not run.states["s3-queue-empty"].done
    assert run.states["s3-queue-empty"].detail == "2 snapshots waiting"
    assert run.states["backups-within-rpo"].done  # absent from these results: unchanged

    later = T0 + timedelta(minutes=30)
    run.apply_auto(ALL_OK, later)
    manual = [item.id for item in run.checklist.items if item.kind == "manual"]
    for n, item_id in enumerate(manual):
        run.tick(item_id, by="alice", at=later + timedelta(minutes=n), note="ok")
    assert run.complete and run.progress == (total, total)
    finished = later + timedelta(minutes=len(manual) - 1)
    assert run.finished == finished

    run.tick(manual[0], by="alice", at=finished + timedelta(minutes=1), done=False)
    assert not run.complete and run.finished is None
    assert run.states[manual[0]].by == "alice"


def test_tick_refuses_auto_and_unknown_items() -> None:
    run = run_checklist("weekly-review", {}, now=T0)
    with pytest.raises(UsageError, match="automatically"):
        run.tick("backups-within-rpo", by="alice", at=T0)
    with pytest.raises(UsageError, match="no-such-item"):
        run.tick("no-such-item", by="alice", at=T0)
    with pytest.raises(UsageError):
        run.tick("hosting-export", by="  ", at=T0)
    with pytest.raises(ValueError, match="timezone"):
        run.tick("hosting-export", by="alice", at=datetime(2025, 1, 5, 19, 0))


def test_apply_auto_refuses_unknown_check_names() -> None:
    run = run_checklist("weekly-review", {}, now=T0)
    with pytest.raises(UsageError, match="backup_within_rpp"):
        run.apply_auto({"backup_within_rpp": (True, "")}, T0)


def test_a_template_with_for_each_items_cannot_be_run_unexpanded() -> None:
    with pytest.raises(UsageError, match="load"):
        ChecklistRun(checklist=load_all()["secret-leaked"], started=T0)


def test_to_markdown_says_who_did_what_and_when() -> None:
    run = run_checklist("secret-leaked", {"drive_synced_within_7_days": (False, "last sync 12 days ago")},
                        VARIABLES, now=T0)  # fmt: skip
    at = datetime(2025, 1, 5, 20, 15, tzinfo=UTC)
    run.tick("rotate-STRIPE_SECRET_KEY", by="Alice Founder", at=at, note="new key created in the dashboard")
    text = run.to_markdown()
    assert text.startswith("# A secret leaked\n")
    assert "Alice Founder" in text
    assert "2025-01-05 20:15:00+00:00" in text
    assert "new key created in the dashboard" in text
    assert "last sync 12 days ago" in text and "FAILED" in text
    assert "- [x] Rotate STRIPE_SECRET_KEY:" in text
    assert "- [ ] Rotate DATABASE_URL:" in text
    assert f"Progress: 1 of {len(run.checklist.items)} done" in text
    assert "## Put new values in place" in text


def test_round_trip_through_json() -> None:
    run = run_checklist("laptop-lost", ALL_OK, VARIABLES, now=T0)
    run.tick("install-drgui", by="alice", at=T0 + timedelta(hours=1), note="pipx on the new Mac\nsecond line")
    run.tick("import-kit", by="alice", at=T0 + timedelta(hours=2), done=False)
    data = json.loads(json.dumps(run.to_dict()))
    again = ChecklistRun.from_dict(data)
    assert again == run
    assert again.to_markdown() == run.to_markdown()
    assert again.to_dict() == run.to_dict()


def test_old_record_stays_readable_after_a_template_changes() -> None:
    data = run_checklist("weekly-review", ALL_OK, now=T0).to_dict()
    data["checklist"]["items"][0]["check"] = "a_check_since_renamed"
    again = ChecklistRun.from_dict(data)
    assert again.states[again.checklist.items[0].id].done


def test_damaged_record_is_a_usage_error() -> None:
    data = run_checklist("weekly-review", {}, now=T0).to_dict()
    del data["started"]
    with pytest.raises(UsageError, match="Damaged"):
        ChecklistRun.from_dict(data)
    with pytest.raises(UsageError, match="format"):
        ChecklistRun.from_dict({**data, "format": 99})


def test_builtins_ship_inside_the_package() -> None:
    package_dir = Path(drgui.__file__).resolve().parent
    for template in load_all().values():
        assert Path(template.origin or "").resolve().is_relative_to(package_dir / "resources" / "checklists")


def test_unwrap_joins_wrapped_lines_and_keeps_paragraphs_and_lists() -> None:
    text = "\nOne line\nwrapped.\n\n- first\n- second\n  continued\n"
    assert checklists.unwrap(text) == "One line wrapped.\n\n- first\n- second continued"
