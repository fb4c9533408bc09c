"""Edit from the app (issue 14): Edit buttons and double-click open the kind's generated form, prefilled
(secrets never read back); retention for destinations; the same checks as the CLI, so a drive added from
the app gets the encryption check and a folder under a missing parent a clear message."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QLineEdit, QPushButton, QSpinBox

from drgui.core.plan.setup import add_source
from drgui.core.plan.workspace import Workspace
from drgui.gui.dialogs import SECRET_UNCHANGED, AddDialog, EditDialog

DATA = Path(__file__).resolve().parents[1] / "data" / "drives"


@pytest.fixture
def started(gui_app, qtbot):
    gui_app.start()
    qtbot.waitUntil(lambda: gui_app.controller.status is not None, timeout=30_000)
    return gui_app


def reloaded(ws: Workspace) -> Workspace:
    return Workspace(ws.home)


def save(qtbot, dialog: EditDialog | AddDialog) -> None:
    button = dialog.findChild(QPushButton, "testAndSaveButton") or dialog.findChild(
        QPushButton, "testAndAddButton"
    )
    assert button is not None
    button.click()


def test_edit_button_opens_the_prefilled_form_and_saves_a_new_path(started, qtbot, tmp_path: Path) -> None:
    page = started.window.pages["sources"]
    qtbot.waitUntil(lambda: page.table.rowCount() == 2, timeout=30_000)
    page.table.selectRow(0)  # "files", a folder
    assert page.table.item(0, 1).text() == "Folder (uploads, media)"  # the kind's declared label
    page.findChild(QPushButton, "sourceEditButton").click()
    dialog = page.dialog
    assert isinstance(dialog, EditDialog) and dialog.isVisible()
    path_field = dialog.findChild(QLineEdit, "field_path")
    old = started.ws.plan.source("files").settings["path"]
    assert path_field.text() == old
    moved = tmp_path / "moved-uploads"
    shutil.copytree(old, moved)
    path_field.setText(str(moved))
    dialog.findChild(QLineEdit, "field_exclude").setText("*.tmp, cache")
    with qtbot.waitSignal(dialog.accepted, timeout=30_000):
        save(qtbot, dialog)
    settings = reloaded(started.ws).plan.source("files").settings
    assert settings == {"path": str(moved), "exclude": ["*.tmp", "cache"]}


def test_a_bad_edit_shows_the_cli_message_and_changes_nothing(started, qtbot, tmp_path: Path) -> None:
    page = started.window.pages["sources"]
    qtbot.waitUntil(lambda: page.table.rowCount() == 2, timeout=30_000)
    before = started.ws.home.config_path.read_bytes()
    dialog = page.edit("files")
    dialog.findChild(QLineEdit, "field_path").setText(str(tmp_path / "nowhere"))
    save(qtbot, dialog)
    qtbot.waitUntil(lambda: "is not a directory" in dialog.error.text(), timeout=30_000)
    assert "unexpected" not in dialog.error.text() and dialog.isVisible()
    assert started.ws.home.config_path.read_bytes() == before


def test_secrets_are_shown_as_unchanged_and_never_read_back(plan_ws: Workspace, qtbot) -> None:
    from drgui.gui.worker import Worker

    secret = "Pg-Secret-" + "x" * 12
    settings = {"host": "db.example.com", "port": "5432", "dbname": "app", "user": "app"}
    add_source(plan_ws, "db", "postgres", settings, secrets={"password": secret}, test=False)
    dialog = EditDialog(plan_ws, Worker(), source=True, name="db")
    qtbot.addWidget(dialog)
    password = dialog.findChild(QLineEdit, "field_password")
    assert password.text() == "" and password.placeholderText() == SECRET_UNCHANGED
    assert password.echoMode() == QLineEdit.EchoMode.Password
    dsn = dialog.findChild(QLineEdit, "field_dsn").text()
    assert "db.example.com" in dsn and "dbname=app" in dsn and secret not in dsn
    assert all(secret not in edit.text() for edit in dialog.findChildren(QLineEdit))


def test_double_click_edits_a_destination_with_its_retention(started, qtbot) -> None:
    page = started.window.pages["destinations"]
    started.window.show()
    started.window.show_page("destinations")
    qtbot.waitExposed(started.window)
    qtbot.waitUntil(lambda: page.table.rowCount() == 1, timeout=30_000)
    assert page.findChild(QPushButton, "destinationEditButton") is not None
    rect = page.table.visualItemRect(page.table.item(0, 0))
    # Qt's views take a double click as press, release, double-click (QTest sends only the last)
    qtbot.mouseClick(page.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(page.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    dialog = page.dialog
    assert isinstance(dialog, EditDialog) and dialog.isVisible()
    daily = dialog.findChild(QSpinBox, "keep_daily")
    assert daily.value() == 7  # the local kind's declared default retention
    daily.setValue(3)
    dialog.findChild(QSpinBox, "keep_monthly").setValue(6)
    with qtbot.waitSignal(dialog.accepted, timeout=30_000):
        save(qtbot, dialog)
    assert reloaded(started.ws).plan.destination("local").retention == {"daily": 3, "monthly": 6}
    # every rule off is refused, as `dest edit --keep-daily 0` is
    dialog = page.edit("local")
    for spin in dialog.findChildren(QSpinBox):
        spin.setValue(0)
    save(qtbot, dialog)
    qtbot.waitUntil(lambda: "no retention rule" in dialog.error.text(), timeout=30_000)


def test_a_drive_added_from_the_app_gets_the_encryption_check(
    plan_ws: Workspace, qtbot, tmp_path: Path, monkeypatch
) -> None:
    from drgui.gui.worker import Worker

    monkeypatch.setenv("DRGUI_DRIVES_JSON", str(DATA / "lsblk_no_removable.json"))
    stick = tmp_path / "stick"
    stick.mkdir()
    dialog = AddDialog(plan_ws, Worker(), source=False)
    qtbot.addWidget(dialog)
    dialog.name_edit.setText("usb")
    dialog.set_kind("drive")
    dialog.form().edits["path"].setText(str(stick))
    save(qtbot, dialog)
    qtbot.waitUntil(lambda: "encrypted" in dialog.error.text(), timeout=30_000)
    assert [d.name for d in reloaded(plan_ws).plan.destinations] == ["local"]  # refused, nothing kept
    dialog.form().findChild(QCheckBox, "field_allow_unencrypted").setChecked(True)
    with qtbot.waitSignal(dialog.accepted, timeout=30_000):
        save(qtbot, dialog)
    added = reloaded(plan_ws).plan.destination("usb")
    assert added.settings["allow_unencrypted"] is True and added.settings["path"] == str(stick)


def test_a_destination_folder_under_a_missing_parent_gets_a_clear_message(
    plan_ws: Workspace, qtbot, tmp_path: Path
) -> None:
    from drgui.gui.worker import Worker

    dialog = AddDialog(plan_ws, Worker(), source=False)
    qtbot.addWidget(dialog)
    dialog.name_edit.setText("nas")
    dialog.set_kind("local")
    dialog.form().edits["path"].setText(str(tmp_path / "unmounted-nas" / "backups"))
    save(qtbot, dialog)
    qtbot.waitUntil(lambda: "does not exist" in dialog.error.text(), timeout=30_000)
    text = dialog.error.text()
    assert "unmounted-nas" in text and "mount" in text
    assert "unexpected" not in text and "FileNotFoundError" not in text and "bug" not in text
    assert not (tmp_path / "unmounted-nas").exists()


def test_saving_an_untouched_form_changes_nothing(started, qtbot) -> None:
    page = started.window.pages["destinations"]
    qtbot.waitUntil(lambda: page.table.rowCount() == 1, timeout=30_000)
    before = tomllib.loads(started.ws.home.config_path.read_text())
    dialog = page.edit("local")
    with qtbot.waitSignal(dialog.accepted, timeout=30_000):
        save(qtbot, dialog)
    assert tomllib.loads(started.ws.home.config_path.read_text()) == before
