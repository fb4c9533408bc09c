"""The restore wizard, offscreen: walk every page to a signed-off report; cancel mid-run cleans up."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtWidgets import QWizard

from drgui.core.engine.sources.postgres import split_dsn
from drgui.core.ops.backup import run_backup
from drgui.core.plan.setup import add_source
from drgui.core.plan.workspace import Workspace
from drgui.gui.restore_wizard import RestoreWizard
from tests.pg_fixtures import PgDatabase
from tests.test_drill import SCHEMA, assert_nothing_left, drill_leftovers

SHOTS = os.environ.get("DRGUI_WIZARD_SCREENSHOTS")


def shot(wizard: RestoreWizard, name: str) -> None:
    """With DRGUI_WIZARD_SCREENSHOTS=DIR, save each page for docs/drills.md."""
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        wizard.grab().save(str(Path(SHOTS) / f"wizard-{name}.png"))


@pytest.fixture
def drill_ws(files_ws: Workspace, pg18_db: PgDatabase) -> Workspace:
    pg18_db.execute(SCHEMA)
    params, password = split_dsn(pg18_db.dsn_with_password)
    add_source(files_ws, "db", "postgres", params, secrets={"password": password or ""})
    files_ws.reload()
    run_backup(files_ws)
    return files_ws


def test_walk_through_to_a_signed_report(qtbot, drill_ws: Workspace) -> None:
    wizard = RestoreWizard(drill_ws)
    qtbot.addWidget(wizard)
    wizard.show()
    assert wizard.objectName() == "restoreWizard"
    assert wizard.currentPage().objectName() == "drillIntroPage"
    shot(wizard, "1-intro")
    wizard.next()
    assert wizard.currentPage().objectName() == "drillSnapshotPage"
    assert wizard.snapshot_page.snapshots.count() == 1 and wizard.snapshot_page.isComplete()
    shot(wizard, "2-snapshot")
    before = drill_leftovers()
    with qtbot.waitSignal(wizard.run_page.completeChanged, timeout=180_000):
        wizard.next()  # starts the drill on the worker
        shot(wizard, "3-running")
    qtbot.waitUntil(lambda: wizard.run_page.state != "running", timeout=180_000)
    assert wizard.run_page.state == "finished", wizard.run_page.figure.text()
    shot(wizard, "3-run-finished")
    assert_nothing_left(drill_ws.home.path, before)
    wizard.next()
    assert wizard.currentPage().objectName() == "drillResultsPage"
    assert wizard.results_page.verdict.text().startswith("PASS")
    names = [wizard.results_page.table.item(r, 1).text() for r in range(wizard.results_page.table.rowCount())]
    assert "rows public.invoices" in names and "files files" in names
    shot(wizard, "4-results")
    wizard.next()
    assert wizard.currentPage().objectName() == "drillChecklistPage"
    wizard.checklist_page.boxes["read-report"].setChecked(True)
    wizard.checklist_page.boxes["rto-rpo"].setChecked(True)
    shot(wizard, "5-checklist")
    wizard.next()
    assert wizard.currentPage().objectName() == "drillSignOffPage"
    assert not wizard.button(QWizard.WizardButton.NextButton).isEnabled()
    wizard.sign_off_page.name.setText("Ana Founder")
    wizard.sign_off_page.notes.setPlainText("Restore took 5 s; nothing to fix.")
    shot(wizard, "6-sign-off")
    wizard.next()
    assert wizard.currentPage().objectName() == "drillReportPage"
    shot(wizard, "7-report")
    result = wizard.drill_result
    assert result is not None and result.ok and result.signed_by == "Ana Founder"
    html = Path(result.report_html).read_text()  # type: ignore[arg-type]
    assert "Ana Founder" in html and "Restore took 5 s" in html
    assert Path(result.report_pdf).stat().st_size > 5000  # type: ignore[arg-type]
    run = result.checklist_run()
    assert run is not None and run.states["read-report"].by == "Ana Founder"
    events = [e["kind"] for e in drill_ws.history.events()]
    assert "drill.ok" in events and "drill.signed" in events
    assert drill_ws.history.pinned() == {result.snapshot_id: f"drill report {result.drill_id}"}


def test_cancel_while_running_cleans_up_and_closes(qtbot, drill_ws: Workspace) -> None:
    wizard = RestoreWizard(drill_ws)
    qtbot.addWidget(wizard)
    wizard.show()
    wizard.next()
    before = drill_leftovers()
    wizard.next()
    qtbot.waitUntil(lambda: wizard.run_page.current in ("scratch", "restore", "rows"), timeout=120_000)
    with qtbot.waitSignal(wizard.rejected, timeout=120_000):
        wizard.reject()  # the Cancel button of the wizard
    assert wizard.run_page.state == "cancelled"
    assert_nothing_left(drill_ws.home.path, before)
    last = drill_ws.history.last_run("drill")
    assert last is not None and last.status == "cancelled"
