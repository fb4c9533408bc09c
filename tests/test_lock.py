"""lock.py: one backup at a time across processes; the OS frees a crashed holder's lock."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from drgui.core.errors import OperationFailed
from drgui.core.plan import lock as lock_module
from drgui.core.plan.lock import LOCK_NAME, HomeLock, LockHeld

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the child protocol below uses POSIX signals")

HELD_MESSAGE = re.compile(r"^Another (\w+) is running \(pid (\d+), ([^,]+), since (\d\d:\d\d:\d\d)\)\.$")

# Named like the GUI's launcher so argv[0]'s basename is "drgui-gui"; argv[2] is a fake secret.
CHILD = """\
import sys
from pathlib import Path
from drgui.core.plan.lock import HomeLock

lock = HomeLock(Path(sys.argv[1]), sys.argv[3])
lock.acquire()
print("locked", flush=True)
sys.stdin.readline()
lock.release()
print("released", flush=True)
sys.stdin.readline()
"""
SECRET = "--password=hunter2-secret"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


class Child:
    def __init__(self, tmp_path: Path, lock_path: Path, purpose: str = "backup") -> None:
        script = tmp_path / "drgui-gui"
        script.write_text(CHILD)
        self.process = subprocess.Popen(
            [sys.executable, str(script), str(lock_path), SECRET, purpose],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.read() == "locked"

    @property
    def pid(self) -> int:
        return self.process.pid

    def read(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def tell(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def child_factory(tmp_path: Path) -> Iterator:
    children: list[Child] = []

    def start(lock_path: Path, purpose: str = "backup") -> Child:
        children.append(Child(tmp_path, lock_path, purpose))
        return children[-1]

    yield start
    for child in children:
        child.kill()


def test_lock_and_release_in_one_process(home: Path) -> None:
    lock_path = home / LOCK_NAME
    assert HomeLock.holder(lock_path) is None  # no file yet
    with HomeLock(lock_path, "backup") as held:
        assert held.held
        info = HomeLock.holder(lock_path)
        assert info is not None
        assert info["pid"] == os.getpid()
        assert info["purpose"] == "backup"
        assert info["program"]
        assert datetime.fromisoformat(info["since"]).tzinfo is not None
    assert not held.held
    assert HomeLock.holder(lock_path) is None
    assert lock_path.read_bytes() == b""  # the record is cleared on release
    with HomeLock(lock_path):  # and the lock can be taken again
        pass


def test_home_directory_stands_for_its_lock_file(home: Path) -> None:
    with HomeLock(home, "drill"):
        assert (home / "backup.lock").exists()
        assert HomeLock.holder(home)["purpose"] == "drill"
        assert HomeLock.holder(home / LOCK_NAME)["purpose"] == "drill"


def test_second_lock_in_the_same_process_is_refused(home: Path) -> None:
    with HomeLock(home, "restore"), pytest.raises(OperationFailed) as caught:
        HomeLock(home, "backup").acquire()
    match = HELD_MESSAGE.match(caught.value.message)
    assert match, caught.value.message
    assert match.group(1) == "restore"  # the holder's purpose, not the refused one's
    assert int(match.group(2)) == os.getpid()
    assert caught.value.hint == "Wait for it to finish or cancel it there."
    assert caught.value.exit_code == 1


def test_acquire_twice_on_one_object_is_a_bug(home: Path) -> None:
    lock = HomeLock(home)
    with lock, pytest.raises(RuntimeError):
        lock.acquire()


def test_another_process_holds_it_until_killed(home: Path, child_factory) -> None:
    lock_path = home / LOCK_NAME
    child = child_factory(lock_path)

    with pytest.raises(OperationFailed) as caught, HomeLock(lock_path, "backup"):
        pytest.fail("the lock is held by the child")
    match = HELD_MESSAGE.match(caught.value.message)
    assert match, caught.value.message
    assert (match.group(1), int(match.group(2)), match.group(3)) == ("backup", child.pid, "drgui-gui")
    assert isinstance(caught.value, LockHeld) and caught.value.holder["pid"] == child.pid
    assert "hunter2" not in str(caught.value)

    info = HomeLock.holder(lock_path)
    assert info is not None and info["pid"] == child.pid and info["program"] == "drgui-gui"
    assert "hunter2" not in lock_path.read_text()  # never the whole argv
    assert set(json.loads(lock_path.read_text())) == {"pid", "purpose", "program", "since"}

    child.kill()  # SIGKILL: no clean-up runs; the OS drops the flock with the process
    assert HomeLock.holder(lock_path) is None
    with HomeLock(lock_path, "backup"):
        assert HomeLock.holder(lock_path)["pid"] == os.getpid()


def test_wait_gets_the_lock_when_the_holder_finishes(home: Path, child_factory) -> None:
    child = child_factory(home / LOCK_NAME)
    child.tell()  # the child releases while we wait
    with HomeLock(home, wait=30) as held:
        assert held.held
    assert child.read() == "released"


def test_wait_gives_up_after_the_timeout(home: Path, child_factory) -> None:
    child = child_factory(home / LOCK_NAME, purpose="drill")
    started = time.monotonic()
    with pytest.raises(OperationFailed, match=rf"^Another drill is running \(pid {child.pid}, drgui-gui"):
        HomeLock(home, wait=0.4).acquire()
    assert time.monotonic() - started >= 0.4


def test_missing_home_directory_is_created(tmp_path: Path) -> None:
    with HomeLock(tmp_path / "new-home" / LOCK_NAME):
        assert HomeLock.holder(tmp_path / "new-home")["pid"] == os.getpid()


def test_unusable_lock_path_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    with pytest.raises(OperationFailed, match="Cannot open the lock file") as caught:
        HomeLock(tmp_path / "a-file" / LOCK_NAME).acquire()
    assert "plan home" in (caught.value.hint or "")


def test_unreadable_record_still_names_a_running_holder(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lock_module, "_POLL", 0.001)
    with HomeLock(home) as held:
        os.ftruncate(held._fd, 0)  # as if the holder had not written its record yet
        assert HomeLock.holder(home) == {"pid": None, "purpose": None, "program": None, "since": None}
        with pytest.raises(OperationFailed) as caught:
            HomeLock(home).acquire()
    assert caught.value.message == "Another backup is running (holder unknown)."


def test_since_shows_the_date_when_not_today() -> None:
    now = datetime.now().astimezone()
    recent = now - timedelta(minutes=3)
    assert lock_module._format_since(recent.isoformat()) == recent.strftime("%H:%M:%S")
    old = now - timedelta(days=2)
    assert lock_module._format_since(old.isoformat()) == old.strftime("%Y-%m-%d %H:%M:%S")
    assert lock_module._format_since("garbage") is None
    assert lock_module._format_since(None) is None
