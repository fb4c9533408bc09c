"""Alerts from the history, and the webhook against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from drgui.core.ops.alerts import compute_alerts
from drgui.core.plan.config import Plan, SourceConfig
from drgui.core.plan.home import Home
from drgui.core.plan.workspace import Workspace
from tests.engine_fixtures import run_cli

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
SECRET_PATH = "/services/T000/B000/XsecretWebhookToken42"


# --- compute_alerts ----------------------------------------------------------------------------------


def workspace(tmp_path: Path, **reminders: object) -> Workspace:
    plan = Plan("p1", "Acme", "age1x", created=(NOW - timedelta(days=30)).isoformat())
    plan.sources = [SourceConfig("db", "postgres"), SourceConfig("files", "folder")]
    plan.reminders = dict(reminders)
    return Workspace(Home(tmp_path / "home"), plan)


def add_backup(ws: Workspace, when: datetime, status: str, sizes: dict[str, int]) -> None:
    run_id = ws.history.start_run("backup")
    detail = {"sources": [{"name": n, "kind": "x", "bytes": b} for n, b in sizes.items()]}
    ws.history.finish_run(run_id, status, snapshot_id=f"s{run_id}", detail=detail)
    with sqlite3.connect(ws.home.history_path) as conn:  # the history stamps "now"; move the run back
        conn.execute(
            "UPDATE runs SET started=?, finished=? WHERE id=?", (when.isoformat(), when.isoformat(), run_id)
        )


def test_no_alert_when_recent_and_steady(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    add_backup(ws, NOW - timedelta(days=2), "ok", {"db": 1000, "files": 500})
    add_backup(ws, NOW - timedelta(days=1), "ok", {"db": 1100, "files": 500})
    assert compute_alerts(ws, NOW) == []


def test_stale_source_counts_only_successes_that_contain_it(tmp_path: Path) -> None:
    ws = workspace(tmp_path, alert_no_backup_days=3)
    add_backup(ws, NOW - timedelta(days=5), "ok", {"db": 1000, "files": 500})
    add_backup(ws, NOW - timedelta(hours=5), "ok", {"files": 500})  # only files
    add_backup(ws, NOW - timedelta(hours=1), "failed", {"db": 1000})  # failures never count
    alerts = compute_alerts(ws, NOW)
    assert [(a.kind, a.source) for a in alerts] == [("stale", "db")]
    assert "for 5 days" in alerts[0].message


def test_never_backed_up_source_alerts_after_the_grace_period(tmp_path: Path) -> None:
    ws = workspace(tmp_path)
    add_backup(ws, NOW - timedelta(days=1), "partial", {"files": 500})
    assert [(a.kind, a.source) for a in compute_alerts(ws, NOW)] == [("stale", "db")]
    assert "never" in compute_alerts(ws, NOW)[0].message


@pytest.mark.parametrize(
    ("previous", "current", "alert"), [(1000, 1400, False), (1000, 1600, True), (1000, 10, True)]
)
def test_size_change_against_the_previous_backup(
    tmp_path: Path, previous: int, current: int, alert: bool
) -> None:
    ws = workspace(tmp_path, alert_size_change_percent=50)
    add_backup(ws, NOW - timedelta(days=2), "ok", {"db": previous, "files": 7})
    add_backup(ws, NOW - timedelta(days=1), "ok", {"db": current, "files": 7})
    alerts = compute_alerts(ws, NOW)
    assert [(a.kind, a.source) for a in alerts] == ([("size_change", "db")] if alert else [])
    if alert:
        assert alerts[0].detail["previous"] == previous and alerts[0].detail["current"] == current


# --- the webhook, on a real HTTP server ------------------------------------------------------------


@dataclass
class Hook:
    url: str
    status: int = 200
    bodies: list[dict] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    received: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))

    def wait(self, count: int = 1) -> list[dict]:
        for _ in range(count):
            assert self.received.acquire(timeout=30), "the webhook received nothing"
        return self.bodies


@pytest.fixture
def hook() -> Iterator[Hook]:
    state: dict[str, Hook] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            current = state["hook"]
            length = int(self.headers.get("Content-Length", 0))
            current.bodies.append(json.loads(self.rfile.read(length)))
            current.paths.append(self.path)
            self.send_response(current.status)
            self.end_headers()
            self.wfile.write(b"ok")
            current.received.release()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["hook"] = Hook(f"http://127.0.0.1:{server.server_address[1]}{SECRET_PATH}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state["hook"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def assert_url_hidden(result, hook: Hook) -> None:
    for text in (result.stdout, result.stderr):
        assert "XsecretWebhookToken42" not in text, f"the webhook URL leaked: {result}"


@pytest.mark.integration
def test_set_test_and_clear_webhook(new_plan, hook: Hook, tmp_path: Path) -> None:
    plan = new_plan()
    url_file = tmp_path / "url.txt"
    url_file.write_text(hook.url + "\n")
    assert run_cli(plan.home, "notify", "test").code == 2  # nothing set yet
    result = run_cli(plan.home, "--json", "notify", "set-webhook", "--url-file", str(url_file))
    assert result.code == 0, str(result)
    assert "Xsecret" not in (plan.home / "config.toml").read_text()
    result = run_cli(plan.home, "--json", "notify", "test")
    assert result.code == 0, str(result)
    [body] = hook.wait()
    assert hook.paths == [SECRET_PATH]
    assert "Test notification" in body["text"] and "Acme" in body["text"]
    assert_url_hidden(result, hook)

    hook.status = 500
    failed = run_cli(plan.home, "--json", "notify", "test")
    hook.wait()
    assert failed.code == 1 and "HTTP 500" in failed.stderr
    assert_url_hidden(failed, hook)

    cleared = run_cli(plan.home, "--json", "notify", "clear")
    assert cleared.code == 0 and cleared.json()["removed"] is True
    assert run_cli(plan.home, "notify", "test").code == 2
    history = run_cli(plan.home, "--json", "history", "--csv", str(tmp_path / "audit.csv"))
    assert history.code == 0
    assert "Xsecret" not in (tmp_path / "audit.csv").read_text()


@pytest.mark.integration
def test_unreachable_webhook_fails_cleanly(new_plan, tmp_path: Path) -> None:
    plan = new_plan()
    url_file = tmp_path / "url.txt"
    url_file.write_text(f"http://127.0.0.1:9{SECRET_PATH}\n")  # port 9 (discard): nothing listens
    assert run_cli(plan.home, "notify", "set-webhook", "--url-file", str(url_file)).code == 0
    result = run_cli(plan.home, "notify", "test")
    assert result.code == 1 and "could not be reached" in result.stderr
    assert "Xsecret" not in result.stderr + result.stdout
    bad = tmp_path / "bad.txt"
    bad.write_text("ftp://example.com/x\n")
    assert run_cli(plan.home, "notify", "set-webhook", "--url-file", str(bad)).code == 2


@pytest.mark.integration
def test_failed_backup_and_size_alert_reach_the_webhook(new_plan, hook: Hook, tmp_path: Path) -> None:
    plan = new_plan()
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"x" * 50_000)
    url_file = tmp_path / "url.txt"
    url_file.write_text(hook.url)
    assert run_cli(plan.home, "notify", "set-webhook", "--url-file", str(url_file)).code == 0
    assert run_cli(plan.home, "--json", "source", "add", "files", "folder", "--path", str(folder)).code == 0
    first = run_cli(plan.home, "--json", "backup")
    assert first.code == 0, str(first)
    assert hook.bodies == [], "a healthy first backup sends nothing"

    (folder / "a.bin").write_bytes(b"x" * 10)  # the data collapsed: the size alert fires
    second = run_cli(plan.home, "--json", "backup")
    assert second.code == 0, str(second)
    [body] = hook.wait()
    assert "changed size" in body["text"] and "'files'" in body["text"]
    alerts = run_cli(plan.home, "--json", "notify", "alerts")
    assert alerts.code == 1 and alerts.json()["alerts"][0]["kind"] == "size_change"

    (folder / "a.bin").unlink()
    folder.rmdir()  # the source disappears: the backup fails, and says so on the webhook
    failed = run_cli(plan.home, "--json", "backup")
    assert failed.code != 0
    bodies = hook.wait()
    assert "Backup failed" in bodies[-1]["text"]
    assert_url_hidden(failed, hook)


def test_size_change_is_a_reason_on_the_dashboard(tmp_path: Path) -> None:
    from drgui.core.ops.status import compute_status

    ws = workspace(tmp_path, alert_size_change_percent=50)
    ws.plan.sources = [SourceConfig("db", "postgres", {"host": "db.internal", "dbname": "app"})]
    add_backup(ws, NOW - timedelta(hours=3), "ok", {"db": 1000})
    add_backup(ws, NOW - timedelta(hours=2), "ok", {"db": 10})
    status = compute_status(ws, NOW)
    assert any("db" in reason and "%" in reason for reason in status.reasons), status.reasons
