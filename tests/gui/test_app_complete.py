"""Issue 14, "everything a founder needs is in the app": the recovery kit, the weekly review, notifications,
the first-run wizard's sources, the tray's status line, database restores, progress."""

from __future__ import annotations

import http.server
import json
import re
import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import pytest
from PySide6.QtCore import QObject, Slot
from PySide6.QtWidgets import QApplication

from drgui.core.plan.home import Home
from drgui.core.plan.workspace import Workspace
from drgui.core.progress import Progress
from drgui.gui import humanize
from drgui.gui.app import App
from drgui.gui.app_words import app_words
from drgui.gui.first_run import FirstRunWizard
from drgui.gui.main_window import PAGES
from tests.engine_fixtures import PASSPHRASE

pytestmark = pytest.mark.gui


def export_kit(qtbot, app: App, pdf: Path):
    window = app.window
    window.findChild(type(window.open_log_action), "kitExportAction").trigger()
    assert window.current_page == "kit"
    page = window.pages["kit"]
    page.export_path.setText(str(pdf))
    assert not page.print_button.isEnabled()
    button = page.findChild(type(page.export_button), "kitExportButton")
    button.click()
    qtbot.waitUntil(lambda: page.files is not None, timeout=60_000)
    return page


def test_kit_export_from_the_help_menu_writes_pdf_and_json_and_offers_print(qtbot, started, tmp_path) -> None:
    assert "kit" in PAGES
    pdf = tmp_path / "acme-kit"  # ".pdf" is added, as the CLI does
    page = export_kit(qtbot, started, pdf)
    written = tmp_path / "acme-kit.pdf"
    assert written.is_file() and (tmp_path / "acme-kit.kit.json").is_file()
    assert "Written" in page.export_message.text()
    assert page.print_button.isEnabled() and page.open_button.isEnabled()
    text = subprocess.run(["pdftotext", str(written), "-"], capture_output=True, text=True, check=True).stdout
    assert "Acme" in text
    kit = json.loads((tmp_path / "acme-kit.kit.json").read_text())
    assert kit["kind"] == "drgui-recovery-kit"
    assert any(e["kind"] == "kit.export" for e in started.ws.history.events())


def test_kit_export_into_a_missing_folder_says_so(qtbot, started, tmp_path) -> None:
    started.window.show_page("kit")
    page = started.window.pages["kit"]
    page.export_path.setText(str(tmp_path / "nowhere" / "kit.pdf"))
    page.export_button.click()
    assert "does not exist" in page.export_message.text()


def test_first_run_wizard_restores_a_plan_from_a_kit(qtbot, started, tmp_path) -> None:
    export_kit(qtbot, started, tmp_path / "kit.pdf")
    home = Home(tmp_path / "new-machine")
    wizard = FirstRunWizard(home)
    qtbot.addWidget(wizard)
    wizard.show()
    dialog = wizard.restore_from_kit()
    form = wizard.kit_form
    form.kit_file.setText(str(tmp_path / "kit.kit.json"))
    form.passphrase.setText("not the passphrase at all")
    form.import_button.click()
    assert form.passphrase.text() == ""  # nothing typed stays in the form
    qtbot.waitUntil(lambda: form.import_button.isEnabled() and form.message.level == "error", timeout=60_000)
    assert not home.exists()
    form.passphrase.setText(PASSPHRASE)
    with qtbot.waitSignal(wizard.accepted, timeout=60_000):
        form.import_button.click()
    assert form.message.level == "done", form.message.text()
    assert wizard.result() == FirstRunWizard.DialogCode.Accepted
    assert not dialog.isVisible()
    assert home.exists() and wizard.ws is not None
    imported = Workspace(home)
    assert imported.plan.plan_id == started.ws.plan.plan_id
    assert [s.name for s in imported.plan.sources] == [s.name for s in started.ws.plan.sources]
    assert imported.identity() == started.ws.identity()


def test_kit_page_imports_only_into_a_new_folder(qtbot, started, tmp_path) -> None:
    page = export_kit(qtbot, started, tmp_path / "kit.pdf")
    form = page.import_form
    form.kit_file.setText(str(tmp_path / "kit.kit.json"))
    form.passphrase.setText(PASSPHRASE)
    page.import_home.setText(str(started.ws.home.path))
    form.import_button.click()
    assert "already holds a plan" in form.message.text()
    page.import_home.setText(str(tmp_path / "rehearsal"))
    form.passphrase.setText(PASSPHRASE)
    form.findChild(type(form.import_button), "kitImportButton").click()
    qtbot.waitUntil(lambda: "imported" in form.message.text(), timeout=60_000)
    assert Home(tmp_path / "rehearsal").exists()
    QApplication.processEvents()


# --- weekly review -------------------------------------------------------------------------------------


def test_weekly_review_evaluates_the_automatic_checks_and_finish_records_the_run(qtbot, started) -> None:
    from PySide6.QtCore import Qt

    from drgui.core.ops import autochecks, checklists
    from drgui.core.ops.backup import run_backup

    run_backup(started.ws)
    started.window.show_page("checklists")
    page = started.window.pages["checklists"]
    assert page.checklist is not None and page.checklist.id == "weekly-review"  # opens on the weekly review
    assert "No run of this checklist yet." in page.past.item(0).text()
    page.start_button.click()
    expected = autochecks.evaluate(started.ws, page.checklist.checks, datetime.now(UTC))
    texts = [page.items.item(i).text() for i in range(page.items.count())]
    autos = [item for item in page.checklist.items if item.kind == "auto"]
    for item in autos:
        ok, detail = expected[item.check]
        shown = next(t for t in texts if app_words(item.text) in t)
        assert shown.startswith("✓ " if ok else "✗ ") and detail in shown, shown
    assert expected["backup_within_rpo"][0] and not expected["verify_latest_ok"][0]  # one passes, one fails
    done = sum(ok for ok, _ in expected.values())
    total = len(page.checklist.items)
    failed = len(autos) - done
    assert (
        page.progress.text()
        == f"{done} of {total} done ({humanize.plural(failed, 'automatic check')} failed)"
    )
    first_manual = next(
        page.items.item(i)
        for i in range(page.items.count())
        if page.items.item(i).flags() & Qt.ItemFlag.ItemIsUserCheckable
    )
    first_manual.setCheckState(Qt.CheckState.Checked)
    assert page.progress.text().startswith(f"{done + 1} of {total}")
    finish = page.findChild(type(page.finish_button), "checklistFinishButton")
    finish.click()
    run = started.ws.history.runs("checklist")[0]
    assert run.status == "partial" and run.target == "weekly-review"
    record = checklists.ChecklistRun.from_dict(run.detail["run"])
    assert sum(s.done for s in record.states.values()) == done + 1
    assert "Signed off" in page.message.text()
    assert f"{done + 1} of {total} done" in page.past.item(0).text()
    assert not finish.isEnabled() and page.start_button.isEnabled()


def test_checklist_texts_speak_the_apps_words_and_show_no_placeholder(qtbot, started) -> None:
    page = started.window.pages["checklists"]
    assert app_words("Run `drgui backup` so this week's exports are copied.") == (
        "Click Back up now so this week's exports are copied."
    )
    seen = []
    for row in range(page.list.count()):
        page.list.setCurrentRow(row)
        for i in range(page.items.count()):
            item = page.items.item(i)
            seen.append(item.text())
            for text in (item.text(), item.toolTip(), page.summary.text()):
                assert "`drgui" not in text, text
                assert not re.search(r"\{[a-z_]+\}", text), text
    assert any("click Back up now" in t or "Click Back up now" in t for t in seen)
    # the .env keys of the plan expand the per-key items of "A secret leaked"
    page.select("secret-leaked")
    texts = [page.items.item(i).text() for i in range(page.items.count())]
    assert any("Rotate STRIPE_SECRET_KEY" in t for t in texts), texts


# --- notifications ---------------------------------------------------------------------------------------


class _Hook(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def webhook_server():
    _Hook.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/T000/secret-path-0123456789", _Hook.received
    server.shutdown()
    server.server_close()


def test_webhook_is_set_as_a_secret_and_tested_from_settings(qtbot, started, webhook_server) -> None:
    from drgui.core.ops import notify

    url, received = webhook_server
    started.window.show_page("settings")
    page = started.window.pages["settings"]
    assert "Not set" in page.webhook_state.text() and not page.webhook_test.isEnabled()
    page.webhook_edit.setText("ftp://nope")
    page.webhook_save.click()
    assert "https://" in page.notify_message.text() and page.notify_message.level == "error"
    page.webhook_edit.setText(url)
    page.webhook_save.click()
    assert page.webhook_edit.text() == ""  # nothing typed stays in the form
    qtbot.waitUntil(lambda: "saved" in page.notify_message.text(), timeout=30_000)
    assert notify.webhook_url(started.ws) == url
    assert "secret-path" not in started.ws.home.config_path.read_text()
    assert "127.0.0.1" in page.webhook_state.text() and "secret-path" not in page.webhook_state.text()
    page.webhook_test.click()
    qtbot.waitUntil(lambda: "Test sent" in page.notify_message.text(), timeout=30_000)
    assert received and "Test from drgui" in received[-1]["text"]
    page.webhook_clear.click()
    qtbot.waitUntil(lambda: "removed" in page.notify_message.text(), timeout=30_000)
    assert notify.webhook_url(started.ws) is None and "Not set" in page.webhook_state.text()


def test_preview_reminder_shows_the_sunday_notification_now(qtbot, started) -> None:
    page = started.window.pages["settings"]
    with qtbot.waitSignal(started.reminders.reminder_due, timeout=10_000) as blocker:
        page.findChild(type(page.preview_button), "previewReminderButton").click()
    reminder = blocker.args[0]
    assert reminder.title == "Weekly review" and reminder.lines
    banner = started.window.banner  # no tray here: the reminder is the window's banner
    assert banner.isVisible() and "Weekly review" in banner.text.text()
    assert not started.reminders.shown  # a preview is not the week's reminder: the real one still comes


def test_autostart_at_login_is_a_checkbox(qtbot, started, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    page = started.window.pages["settings"]
    page.load()
    desktop = tmp_path / "config" / "autostart" / "drgui-autostart.desktop"
    assert not page.autostart_check.isChecked()
    page.autostart_check.setChecked(True)
    assert desktop.is_file(), page.notify_message.text()
    assert str(started.ws.home.path) in desktop.read_text()
    assert "start at login" in page.notify_message.text()
    page.load()
    assert page.autostart_check.isChecked()
    page.autostart_check.setChecked(False)
    assert not desktop.exists()
    page.load()
    assert not page.autostart_check.isChecked()


# --- tray status line ---------------------------------------------------------------------------------


def test_tray_menu_starts_with_a_status_line_that_follows_the_state(qtbot, started) -> None:
    from datetime import timedelta

    from drgui.core.ops.backup import run_backup
    from drgui.gui.tray import Tray, status_line

    tray = Tray(started.actions, started.reminders, started.controller)
    first = tray.menu.actions()[0]
    assert first.objectName() == "trayStatusLine" and not first.isEnabled()
    assert first.text() == "No backup yet · 2 sources outside the RPO: files, env"
    with qtbot.waitSignal(started.controller.backup_done, timeout=60_000):
        started.controller.start_backup()
        assert first.text() == "Backing up now…"
    qtbot.waitUntil(lambda: first.text().startswith("Last backup just now"), timeout=30_000)
    assert first.text() == "Last backup just now · all sources within RPO"
    status = started.controller.status
    later = status.last_backup["time"] + timedelta(minutes=5)
    assert status_line(status, now=later) == "Last backup 5 minutes ago · all sources within RPO"
    run_backup(started.ws)  # a backup from elsewhere (the CLI, the timer): the next status shows it
    assert started.ws.history.runs("backup")[0].status == "ok"
    refreshed = started.controller.status
    with qtbot.waitSignal(started.controller.status_changed, timeout=30_000):
        started.controller.refresh()
    assert started.controller.status is not refreshed
    assert first.text() == status_line(started.controller.status)


# --- first-run wizard ---------------------------------------------------------------------------------


def test_first_run_takes_several_sources_and_the_strength_label_follows_the_confirmation(
    qtbot, tmp_path
) -> None:
    from tests.engine_fixtures import make_git_repo, write_env_file, write_folder

    home = Home(tmp_path / "home")
    wizard = FirstRunWizard(home)
    qtbot.addWidget(wizard)
    wizard.show()
    plan = wizard.plan_page
    plan.passphrase.setText(PASSPHRASE)
    assert "type it again" in plan.strength.text()
    plan.confirm.setText(PASSPHRASE[:5])
    assert "differs so far" in plan.strength.text()
    plan.confirm.setText(PASSPHRASE[:5] + "X")
    assert "type the same passphrase twice" in plan.strength.text()
    plan.confirm.setText(PASSPHRASE)
    assert "both entries match" in plan.strength.text()
    with qtbot.waitSignal(wizard.currentIdChanged, timeout=30_000):
        wizard.next()
    page = wizard.source_page
    sources = {
        "uploads": ("folder", {"path": str(write_folder(tmp_path / "uploads"))}),
        "env": ("env", {"path": str(write_env_file(tmp_path / "app.env"))}),
        "repo": ("git", {"path": str(make_git_repo(tmp_path / "repo"))}),
    }
    for name, (kind, fields) in sources.items():
        page.kind.setCurrentIndex(page.kind.findData(kind))
        page.name.setText(name)
        for key, value in fields.items():
            page.form_by_kind[kind].edits[key].setText(value)
        page.findChild(type(wizard.backup_page.button), "wizardTestButton").click()
        qtbot.waitUntil(lambda name=name: name in page.added_label.text(), timeout=30_000)
        assert wizard.currentPage() is page  # the button adds and stays: the next one can be added
        assert page.name.text() == "" and not page.form_filled()
    assert "Add another, or Next" in page.added_label.text()
    with qtbot.waitSignal(wizard.currentIdChanged, timeout=30_000):
        wizard.next()  # an empty form adds nothing more
    assert wizard.currentPage() is wizard.dest_page
    assert [s.name for s in Workspace(home).plan.sources] == ["uploads", "env", "repo"]


# --- database restore from the app ----------------------------------------------------------------------


def test_database_restore_asks_for_the_password_apart_and_forgets_it_on_a_new_source(
    qtbot, started, pg18_db, tmp_path
) -> None:
    from drgui.core.ops.backup import run_backup
    from drgui.core.plan.setup import add_source
    from drgui.gui.widgets import progress_text

    pg18_db.execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2)")
    add_source(started.ws, "db", "postgres", {**_params(pg18_db)}, secrets={"password": pg18_db.password})
    assert run_backup(started.ws).ok
    from drgui.core.progress import CancelToken
    from drgui.gui.controller import estimated_sizes

    with pg18_db.connect() as conn:
        db_size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    assert estimated_sizes(started.ws, CancelToken())["db"] == db_size  # a database: pg_database_size
    page = started.window.pages["snapshots"]
    started.window.show_page("snapshots")
    page.reload()
    qtbot.waitUntil(lambda: page.table.rowCount() == 1, timeout=30_000)
    dialog = page.restore_selected()
    dialog.source_combo.setCurrentIndex(dialog.source_combo.findData("db"))
    target = dialog.target.text()
    new_db = f"{pg18_db.dbname}_restore_{datetime.now().strftime('%Y%m%d')}"
    assert target.endswith(f"/{new_db}") and target.startswith("postgresql://postgres@127.0.0.1:")
    assert pg18_db.password not in target  # never in the DSN
    assert dialog.password.isVisible() and dialog.password.echoMode() == dialog.password.EchoMode.Password
    assert dialog.password.text() == pg18_db.password  # from the keyring: the target is the source's server
    dialog.target.setText(target.replace("postgres@", "someone@"))
    dialog.target.textEdited.emit(dialog.target.text())
    assert dialog.password.text() == ""  # another login: the source's password is not offered
    dialog.password.setText("typed-for-another-server")
    dialog.source_combo.setCurrentIndex(dialog.source_combo.findData("files"))
    assert dialog.target.text() == "" and dialog.password.text() == "" and not dialog.password.isVisible()
    dialog.source_combo.setCurrentIndex(dialog.source_combo.findData("db"))
    assert dialog.target.text() == target and dialog.password.text() == pg18_db.password
    try:
        dialog.start_button.click()
        assert not dialog.source_combo.isEnabled()  # the source cannot change under a running restore
        qtbot.waitUntil(lambda: "passed" in dialog.status.text(), timeout=120_000)
        assert re.search(r"\b(1 check|[02-9]\d* checks) passed", dialog.status.text()), dialog.status.text()
        assert pg18_db.cluster.query("SELECT count(*) FROM t", dbname=new_db) == [(2,)]
        assert dialog.source_combo.isEnabled()
    finally:
        pg18_db.cluster.drop_database(new_db)
    assert (
        progress_text(Progress("restore", "db", "", 500, 1000, 100.0))
        == "50% · 500 B of 1.0 KB · about 5s left"
    )
    assert progress_text(Progress("backup", "db", "", 2_000_000, None, 1_000_000.0)) == "2.0 MB · 1.0 MB/s"


def _params(database) -> dict[str, str]:
    from drgui.core.engine.sources.postgres import split_dsn

    params, _password = split_dsn(database.dsn)
    return params


# --- a .env lacking a required key --------------------------------------------------------------------


def test_a_env_missing_a_required_key_is_amber_with_the_key_names(qtbot, started, tmp_path) -> None:
    from PySide6.QtWidgets import QLabel

    from drgui.core.plan.setup import add_source
    from drgui.gui.widgets import STATE_COLORS

    env_file = tmp_path / "prod.env"
    env_file.write_text("DATABASE_URL=postgresql://app:pw-value-123@db/app\n")
    add_source(
        started.ws, "prod-env", "env", {"path": str(env_file), "require": ["DATABASE_URL", "SENTRY_DSN"]}
    )
    dashboard = started.window.pages["dashboard"]
    with qtbot.waitSignal(started.controller.status_changed, timeout=30_000):
        started.controller.refresh()  # the status knows the new source (a plan change clears old outcomes)
    with qtbot.waitSignal(started.controller.backup_done, timeout=60_000):
        started.controller.start_backup()
    qtbot.waitUntil(lambda: dashboard.findChild(QLabel, "sourceWarning_prod-env") is not None, timeout=30_000)
    result = dashboard.result_label
    assert "SENTRY_DSN" in result.text() and not result.text().startswith("Backed up:")
    assert STATE_COLORS["warning"] in result.styleSheet() and STATE_COLORS["ok"] not in result.styleSheet()
    row = dashboard.findChild(QLabel, "sourceWarning_prod-env")
    assert row.text() == "Missing key(s): SENTRY_DSN" and STATE_COLORS["warning"] in row.styleSheet()
    assert "pw-value-123" not in row.toolTip() + result.text()
    env_file.write_text("DATABASE_URL=postgresql://app:pw-value-123@db/app\nSENTRY_DSN=https://x@sentry/1\n")
    with qtbot.waitSignal(started.controller.status_changed, timeout=30_000):
        started.controller.refresh()
    qtbot.waitUntil(lambda: dashboard.findChild(QLabel, "sourceWarning_prod-env") is None, timeout=30_000)


# --- backup progress --------------------------------------------------------------------------------------


def test_backup_progress_shows_percent_of_the_scanned_size(qtbot, started) -> None:
    import os

    from drgui.gui.widgets import progress_text

    folder = Path(started.ws.plan.source("files").settings["path"])
    (folder / "big.bin").write_bytes(os.urandom(3_000_000))
    scanned = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    events: list[Progress] = []
    started.controller.backup_progress.connect(events.append)
    with qtbot.waitSignal(started.controller.backup_done, timeout=60_000):
        started.controller.start_backup()
    files = [
        e
        for e in events
        if e.step == "backup" and e.source == "files" and e.bytes_done and e.message != "done"
    ]
    assert files, events
    assert all(e.bytes_total and e.bytes_total >= scanned for e in files)  # the quick scan's size, or more
    assert all(e.bytes_done < e.bytes_total for e in files)  # never 100% before it is done
    text = progress_text(files[-1])
    assert re.match(r"\d+% · .* of .*", text), text
    uploads = [e for e in events if e.step == "upload" and e.bytes_done]
    assert not uploads or all("%" in progress_text(e) or "/s" in progress_text(e) for e in uploads)


# --- the kit page from the command line; messages bound to the state ----------------------------------


def test_gui_page_kit_screenshot_at_800x600_from_the_cli(files_ws, tmp_path) -> None:
    from PySide6.QtGui import QImage

    from tests.engine_fixtures import run_cli

    png = tmp_path / "kit.png"
    env = {"QT_QPA_PLATFORM": "offscreen", "DRGUI_LOG_DIR": str(tmp_path / "logs")}
    result = run_cli(
        files_ws.home.path, "gui", "--page", "kit", "--screenshot", str(png), "--size", "800x600", "--no-tray",
        env=env,
    )  # fmt: skip
    assert result.code == 0, result
    image = QImage(str(png))
    assert (image.width(), image.height()) == (800, 600)
    assert len({image.pixel(x, 300) for x in range(0, 800, 8)}) > 3  # a page was drawn, not a blank window


def test_the_kit_messages_go_when_the_page_is_left(qtbot, started, tmp_path) -> None:
    page = export_kit(qtbot, started, tmp_path / "kit.pdf")
    assert page.export_message.isVisible()
    started.window.show_page("dashboard")
    started.window.show_page("kit")
    assert not page.export_message.isVisible() and page.export_message.text() == ""
    started.window.show_page("settings")
    settings = started.window.pages["settings"]
    settings.webhook_edit.setText("nope")
    settings.webhook_save.click()
    assert settings.notify_message.isVisible()
    started.window.show_page("kit")
    started.window.show_page("settings")
    assert not settings.notify_message.isVisible()


def test_the_kit_prints_the_pages_of_the_pdf(qtbot, started, tmp_path) -> None:
    from PySide6.QtPrintSupport import QPrinter

    from drgui.gui.kit import print_kit

    page = export_kit(qtbot, started, tmp_path / "kit.pdf")
    printer = QPrinter(QPrinter.PrinterMode.HighResolution)
    printer.setOutputFormat(QPrinter.OutputFormat.PdfFormat)
    printed = tmp_path / "printed.pdf"
    printer.setOutputFileName(str(printed))
    assert print_kit(page.files.kit, page.files.json.name, page, printer=printer)
    text = subprocess.run(["pdftotext", str(printed), "-"], capture_output=True, text=True, check=True).stdout
    assert "Acme" in text and "kit.kit.json" in text


def test_the_reminders_open_checklist_shows_the_weekly_review(qtbot, started) -> None:
    page = started.window.pages["checklists"]
    page.select("secret-leaked")
    assert page.checklist.id == "secret-leaked"
    started.actions.open_checklist()
    assert started.window.current_page == "checklists" and page.checklist.id == "weekly-review"


def test_verify_progress_shows_percent_of_the_snapshot(qtbot, started) -> None:
    from drgui.core.ops.backup import run_backup

    run_backup(started.ws)
    page = started.window.pages["snapshots"]
    started.window.show_page("snapshots")
    page.reload()
    qtbot.waitUntil(lambda: page.table.rowCount() == 1, timeout=30_000)
    page.table.selectRow(0)
    recorder = _MessageRecorder(page.message)
    job = page.verify_deep_selected()
    job.progress.connect(recorder.record)  # a slot of a GUI-thread object: queued, after the page's own
    with qtbot.waitSignal(job.done, timeout=60_000):
        pass
    said = recorder.said
    assert any(re.search(r"Checking: \d+% · .* of ", text) for text in said), said
    assert page.verify_bar.maximum() in (0, 1000)


class _MessageRecorder(QObject):
    def __init__(self, label) -> None:
        super().__init__()
        self.label = label
        self.said: list[str] = []

    @Slot(object)
    def record(self, _event) -> None:
        self.said.append(self.label.text())
