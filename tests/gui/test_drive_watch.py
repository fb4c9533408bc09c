"""Drive insertion in the app: the watcher polls the recorded lsblk output; sync automatically or ask."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication, QMessageBox

from drgui.core.errors import EnvironmentNotReady
from drgui.core.plan.setup import add_destination
from drgui.core.plan.workspace import Workspace
from drgui.core.platform.drives import RECORDED_DRIVES_ENV
from drgui.gui.drive_watch import (
    DRIVE_SYNC_SETTING,
    DriveSyncOnInsert,
    DriveSyncQuestion,
    DriveWatcher,
    drive_sync_mode,
)
from drgui.gui.worker import Worker
from tests.engine_fixtures import ENV_SECRETS, fake_udisksctl

DATA = Path(__file__).parent.parent / "data" / "drives"
INNER_UUID = "c2d14b6e-8f3a-4a71-b5e9-3f0c7d2a9e18"
LUKS_UUID = "0a4e8f7c-6d1b-4c2e-9f3a-5b7d8e1c2a46"
RECORDED_MOUNT = "/media/alice/DRKEY"
INTERVAL_MS = 30


class Recording:
    """One lsblk recording file that $DRGUI_DRIVES_JSON points at; `plug`/`unplug` swap its content."""

    def __init__(self, tmp_path: Path) -> None:
        self.mount = tmp_path / "media" / "DRKEY"
        self.mount.mkdir(parents=True)
        self.path = tmp_path / "lsblk.json"
        self.plugged = (
            (DATA / "lsblk_luks_mounted.json").read_text().replace(f'"{RECORDED_MOUNT}"', f'"{self.mount}"')
        )
        self.empty = (DATA / "lsblk_no_removable.json").read_text()

    def _write(self, text: str) -> None:
        staged = self.path.with_suffix(".new")
        staged.write_text(text)
        os.replace(staged, self.path)  # the worker never reads a half-written file

    def plug(self) -> None:
        self._write(self.plugged)

    def unplug(self) -> None:
        self._write(self.empty)


@pytest.fixture
def recording(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Recording:
    rec = Recording(tmp_path.resolve())
    monkeypatch.setenv(RECORDED_DRIVES_ENV, str(rec.path))
    return rec


@pytest.fixture
def drive_ws(files_ws: Workspace, recording: Recording) -> Workspace:
    """The plan (an env source) with a LUKS drive registered by UUID, then unplugged."""
    recording.plug()
    settings = {
        "uuid": INNER_UUID,
        "container_uuid": LUKS_UUID,
        "encryption": "luks",
        "allow_unencrypted": False,
        "plan_id": files_ws.plan.plan_id,
    }
    add_destination(files_ws, "key", "drive", settings)
    recording.unplug()
    return files_ws


@pytest.fixture
def worker(qtbot) -> Iterator[Worker]:
    worker = Worker()
    yield worker
    worker.cancel_all()
    worker.wait(60_000)


def watch(qtbot, ws: Workspace, worker: Worker) -> tuple[DriveWatcher, DriveSyncOnInsert]:
    watcher = DriveWatcher(ws, worker, interval_ms=INTERVAL_MS)
    on_insert = DriveSyncOnInsert(ws, worker, watcher)
    return watcher, on_insert


def wait_polls(qtbot, watcher: DriveWatcher, count: int = 3) -> None:
    """Let the watcher finish `count` more polls (it answers on the worker)."""
    for _ in range(count):
        with qtbot.waitSignal(watcher.timer.timeout, timeout=5_000):
            pass
        qtbot.waitUntil(lambda: watcher._job is None, timeout=5_000)


def env_copy(recording: Recording, ws: Workspace) -> Path:
    return recording.mount / "drgui" / ws.plan.plan_id / "env" / "env" / "current" / "env.age"


def drive_sync_runs(ws: Workspace) -> list:
    return ws.history.runs("drive_sync")


def set_mode(ws: Workspace, mode: str) -> None:
    ws.plan.reminders[DRIVE_SYNC_SETTING] = mode
    ws.save()


def test_default_mode_is_ask(plan_ws: Workspace) -> None:
    assert drive_sync_mode(plan_ws.plan) == "ask"
    plan_ws.plan.reminders[DRIVE_SYNC_SETTING] = "sometimes"
    assert drive_sync_mode(plan_ws.plan) == "ask"


def test_insertion_signalled_once_then_removal(
    qtbot, drive_ws: Workspace, recording: Recording, worker
) -> None:
    set_mode(drive_ws, "off")
    watcher, _ = watch(qtbot, drive_ws, worker)
    inserted: list[str] = []
    removed: list[str] = []
    watcher.inserted.connect(inserted.append)
    watcher.removed.connect(removed.append)
    watcher.start()
    qtbot.waitUntil(lambda: watcher.present is not None, timeout=5_000)
    assert watcher.present == frozenset()
    wait_polls(qtbot, watcher)
    assert inserted == [] and removed == []

    recording.plug()
    with qtbot.waitSignal(watcher.inserted, timeout=5_000) as blocker:
        pass
    assert blocker.args == ["key"]
    wait_polls(qtbot, watcher)
    assert inserted == ["key"]  # not again on the next polls
    assert removed == []

    recording.unplug()
    with qtbot.waitSignal(watcher.removed, timeout=5_000) as blocker:
        pass
    assert blocker.args == ["key"]
    wait_polls(qtbot, watcher)
    assert inserted == ["key"] and removed == ["key"]
    assert drive_sync_runs(drive_ws) == []  # "off": nothing written
    watcher.stop()


def test_auto_syncs_and_names_keys_only(qtbot, drive_ws: Workspace, recording: Recording, worker) -> None:
    set_mode(drive_ws, "auto")
    watcher, on_insert = watch(qtbot, drive_ws, worker)
    messages: list[tuple[str, str, str]] = []
    on_insert.message.connect(lambda *args: messages.append(args))
    watcher.start()
    qtbot.waitUntil(lambda: watcher.present is not None, timeout=5_000)
    recording.plug()
    with qtbot.waitSignal(on_insert.synced, timeout=30_000):
        pass
    watcher.stop()
    assert env_copy(recording, drive_ws).is_file()
    runs = drive_sync_runs(drive_ws)
    assert [(r.status, r.target) for r in runs] == [("ok", "key")]
    [(level, title, text)] = messages
    assert (level, title) == ("info", "Drive synced") and "key" in text
    assert "safe to unplug" in text.lower()
    for key, value in ENV_SECRETS.items():
        assert key in text
        assert value not in text
    assert on_insert.last_message == text


def test_ask_writes_nothing_until_accepted(qtbot, drive_ws: Workspace, recording: Recording, worker) -> None:
    set_mode(drive_ws, "ask")
    watcher, on_insert = watch(qtbot, drive_ws, worker)
    watcher.start()
    qtbot.waitUntil(lambda: watcher.present is not None, timeout=5_000)
    recording.plug()
    with qtbot.waitSignal(watcher.inserted, timeout=5_000):
        pass
    question = on_insert.questions["key"]
    assert isinstance(question, DriveSyncQuestion)
    assert question.isVisible() and not question.isModal()
    wait_polls(qtbot, watcher)
    assert list(on_insert.questions) == ["key"]  # asked once, not on every poll
    assert not env_copy(recording, drive_ws).exists()
    assert drive_sync_runs(drive_ws) == []

    with qtbot.waitSignal(on_insert.synced, timeout=30_000):
        question.sync_button.click()
    watcher.stop()
    assert env_copy(recording, drive_ws).is_file()
    assert [r.status for r in drive_sync_runs(drive_ws)] == ["ok"]
    assert on_insert.questions == {}


def test_ask_declined_and_question_closed_on_removal(
    qtbot, drive_ws: Workspace, recording: Recording, worker
) -> None:
    watcher, on_insert = watch(qtbot, drive_ws, worker)  # default: ask
    watcher.start()
    qtbot.waitUntil(lambda: watcher.present is not None, timeout=5_000)
    recording.plug()
    with qtbot.waitSignal(watcher.inserted, timeout=5_000):
        pass
    on_insert.questions["key"].later_button.click()
    assert on_insert.questions == {}
    recording.unplug()
    with qtbot.waitSignal(watcher.removed, timeout=5_000):
        pass
    recording.plug()
    with qtbot.waitSignal(watcher.inserted, timeout=5_000):
        pass
    question = on_insert.questions["key"]
    recording.unplug()
    with qtbot.waitSignal(watcher.removed, timeout=5_000):
        pass
    watcher.stop()
    assert on_insert.questions == {} and not question.isVisible()
    assert drive_sync_runs(drive_ws) == []


def env_path(ws: Workspace) -> Path:
    return Path(next(s for s in ws.plan.sources if s.kind == "env").settings["path"])


def test_drive_plugged_in_before_start_is_synced_when_out_of_date(
    qtbot, drive_ws: Workspace, recording: Recording, worker
) -> None:
    """A drive left plugged in over a restart, never given the current .env: auto mode syncs it."""
    set_mode(drive_ws, "auto")
    recording.plug()
    watcher, on_insert = watch(qtbot, drive_ws, worker)
    inserted: list[str] = []
    watcher.inserted.connect(inserted.append)
    with qtbot.waitSignal(on_insert.synced, timeout=30_000):
        watcher.start()
    wait_polls(qtbot, watcher, 4)
    watcher.stop()
    assert inserted == []  # the baseline is not an insertion
    assert env_copy(recording, drive_ws).is_file()
    assert [r.status for r in drive_sync_runs(drive_ws)] == ["ok"]  # once: up to date afterwards


def test_env_changed_while_plugged_in_asks_once_per_change(
    qtbot, drive_ws: Workspace, recording: Recording, worker
) -> None:
    recording.plug()
    from drgui.core.ops.envsync import sync_env_to_drive

    sync_env_to_drive(drive_ws, "key")
    watcher, on_insert = watch(qtbot, drive_ws, worker)  # default: ask
    watcher.start()
    wait_polls(qtbot, watcher, 4)
    assert on_insert.questions == {}  # plugged in and up to date: nothing to ask

    with env_path(drive_ws).open("a") as handle:
        handle.write("NEW_FLAG=1\n")
    with qtbot.waitSignal(watcher.stale, timeout=5_000) as blocker:
        pass
    assert blocker.args == ["key"]
    question = on_insert.questions["key"]
    assert "out of date" in question.text()
    question.later_button.click()
    wait_polls(qtbot, watcher, 4)
    assert on_insert.questions == {}  # declined: not asked again for the same content

    with env_path(drive_ws).open("a") as handle:
        handle.write("OTHER_FLAG=2\n")
    with qtbot.waitSignal(watcher.stale, timeout=5_000):
        pass
    with qtbot.waitSignal(on_insert.synced, timeout=30_000):
        on_insert.questions["key"].sync_button.click()
    wait_polls(qtbot, watcher, 4)
    watcher.stop()
    assert on_insert.questions == {}
    assert [r.status for r in drive_sync_runs(drive_ws)] == ["ok", "ok"]


def test_absent_drive_no_dialog_no_error(
    qtbot, drive_ws: Workspace, recording: Recording, worker, caplog: pytest.LogCaptureFixture
) -> None:
    set_mode(drive_ws, "auto")
    watcher, on_insert = watch(qtbot, drive_ws, worker)
    messages: list = []
    on_insert.message.connect(lambda *args: messages.append(args))
    watcher.start()
    wait_polls(qtbot, watcher, 4)
    recording.path.unlink()  # the listing itself fails now: still quiet, and the watcher keeps going
    wait_polls(qtbot, watcher, 4)
    watcher.stop()
    assert messages == [] and on_insert.questions == {}
    assert not [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]
    assert drive_sync_runs(drive_ws) == []


def test_missing_tool_switches_the_watcher_off(qtbot, drive_ws: Workspace, worker) -> None:
    def no_lsblk() -> list:
        raise EnvironmentNotReady("lsblk is not installed.", hint="Install util-linux.")

    watcher = DriveWatcher(drive_ws, worker, interval_ms=INTERVAL_MS, lister=no_lsblk)
    with qtbot.waitSignal(watcher.status_changed, timeout=5_000, check_params_cb=lambda t: "off" in t):
        watcher.start()
    assert not watcher.running
    assert "lsblk" in watcher.status_text


def test_plain_directory_present_when_it_exists(qtbot, plan_ws: Workspace, tmp_path: Path, worker) -> None:
    folder = tmp_path / "stick"
    folder.mkdir()
    add_destination(
        plan_ws,
        "stick",
        "drive",
        {"path": str(folder), "allow_unencrypted": True, "plan_id": plan_ws.plan.plan_id},
    )
    watcher = DriveWatcher(plan_ws, worker, interval_ms=INTERVAL_MS)
    watcher.start()
    qtbot.waitUntil(lambda: watcher.present is not None, timeout=5_000)
    assert watcher.present == frozenset({"stick"})
    moved = tmp_path / "elsewhere"
    folder.rename(moved)
    with qtbot.waitSignal(watcher.removed, timeout=5_000):
        pass
    moved.rename(folder)
    with qtbot.waitSignal(watcher.inserted, timeout=5_000):
        pass
    watcher.stop()


def test_app_starts_watcher_and_pages_show_drive(qtbot, drive_ws: Workspace, recording: Recording) -> None:
    from drgui.gui.app import App

    set_mode(drive_ws, "auto")
    app = App(drive_ws, tray=False)
    qtbot.addWidget(app.window)
    try:
        settings = app.window.pages["settings"]
        assert settings.drive_sync.currentData() == "auto"
        settings.drive_sync.setCurrentIndex(settings.drive_sync.findData("ask"))
        assert settings.save()
        assert Workspace(drive_ws.home).plan.reminders[DRIVE_SYNC_SETTING] == "ask"
        set_mode(drive_ws, "auto")

        app.start()
        assert app.drive_watcher is not None and app.drive_watcher.running
        page = app.window.pages["destinations"]
        qtbot.waitUntil(lambda: "not plugged in" in page.drive_info.text(), timeout=10_000)
        assert "encrypted (LUKS)" in page.drive_info.text()
        assert "never synced" in page.drive_info.text()
        qtbot.waitUntil(lambda: app.drive_watcher.present is not None, timeout=5_000)

        recording.plug()
        with qtbot.waitSignal(app.drive_sync.synced, timeout=30_000):
            pass
        assert app.window.banner.isVisibleTo(app.window)
        assert "safe to unplug" in app.window.banner.text.text().lower()
        qtbot.waitUntil(lambda: "last synced" in page.drive_info.text(), timeout=10_000)
        assert "· plugged in" in page.drive_info.text()
    finally:
        app.drive_watcher.stop()
        app.controller.worker.cancel_all()
        app.controller.worker.wait(60_000)
    assert not app.drive_watcher.running


def test_app_without_drive_has_no_watcher(gui_app) -> None:
    gui_app.start()
    assert gui_app.drive_watcher is None


def test_destinations_page_syncs_and_ejects_the_drive(
    qtbot, drive_ws: Workspace, recording: Recording, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from drgui.gui.app import App

    path, log = fake_udisksctl(tmp_path)
    monkeypatch.setenv("PATH", path)
    set_mode(drive_ws, "off")
    app = App(drive_ws, tray=False)
    qtbot.addWidget(app.window)
    page = app.window.pages["destinations"]
    with qtbot.waitSignal(app.controller.status_changed, timeout=30_000):
        app.start("destinations")
    assert page.drive_buttons.isVisibleTo(page)
    assert not page.eject_button.isEnabled()  # not plugged in

    recording.plug()
    app.controller.refresh()
    qtbot.waitUntil(page.eject_button.isEnabled, timeout=10_000)
    page.sync_button.click()
    qtbot.waitUntil(lambda: "safe to unplug" in page.message.text().lower(), timeout=30_000)
    assert env_copy(recording, drive_ws).is_file()
    page.eject_button.click()
    qtbot.waitUntil(lambda: "ejected" in page.message.text(), timeout=10_000)
    assert [line.split()[0] for line in log.read_text().splitlines()] == ["unmount", "lock", "power-off"]
