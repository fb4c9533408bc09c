"""The unattended restore test (issue 18, item 1): `drgui run-due` runs the headless drill when its
schedule is due, records it, alerts while it failed, and never runs beside a backup."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drgui.core.ops import unattended
from drgui.core.ops.alerts import compute_alerts
from drgui.core.ops.history import History
from drgui.core.plan.home import Home
from drgui.core.plan.lock import HomeLock
from drgui.core.plan.workspace import Workspace
from drgui.core.timing import schedule
from tests.engine_fixtures import Plan, ok, write_env_file, write_folder

pytestmark = [pytest.mark.integration]


def next_drill_night() -> str:
    """Half an hour after the next unattended drill slot (first Sunday 03:00 local), as --at takes it."""
    tz = schedule.local_tz()
    slot = schedule.next_occurrence(schedule.at_quiet_hour(schedule.PRESETS["drill"]), datetime.now(UTC), tz)
    assert slot is not None
    return (slot + timedelta(minutes=30)).isoformat()


def files_plan(new_plan) -> Plan:
    """A plan with a folder and a .env (no database: no scratch server to start) and one backup."""
    plan: Plan = new_plan()
    folder = write_folder(plan.work / "uploads")
    env_file = write_env_file(plan.work / "app.env")
    ok(plan.cli("--json", "source", "add", "files", "folder", "--path", str(folder)))
    ok(plan.cli("--json", "source", "add", "env", "env", "--path", str(env_file)))
    ok(plan.cli("--json", "backup"))
    return plan


def drill_runs(plan: Plan) -> list:
    return History(plan.home / "history.sqlite").runs("drill")


def test_quiet_hour_keeps_the_drill_days() -> None:
    assert (
        schedule.at_quiet_hour(schedule.PRESETS["drill"])
        == "FREQ=MONTHLY;BYDAY=1SU;BYHOUR=3;BYMINUTE=0;BYSECOND=0"
    )
    tz = schedule.local_tz()
    slot = schedule.next_occurrence(schedule.at_quiet_hour(schedule.PRESETS["drill"]), datetime.now(UTC), tz)
    assert slot is not None and slot.weekday() == 6 and slot.day <= 7 and (slot.hour, slot.minute) == (3, 0)


def test_due_drill_runs_unattended_and_passes(new_plan) -> None:
    plan = files_plan(new_plan)
    # Not due right after the plan was made: nothing but the schedule is said.
    now = ok(plan.cli("--json", "run-due")).json()
    assert now["drill"]["due"] is False and "result" not in now["drill"]
    at = next_drill_night()
    dry = ok(plan.cli("--json", "run-due", "--at", at, "--dry-run")).json()
    assert dry["drill"]["would_run"] is True and dry["backup"]["would_run"] is True
    assert drill_runs(plan) == []  # the dry run ran nothing

    data = ok(plan.cli("--json", "run-due", "--at", at)).json()
    drill = data["drill"]
    assert drill["due"] is True and drill["result"]["ok"] is True, drill
    assert Path(drill["result"]["report"]).is_file()
    assert Path(drill["result"]["report_html"]).is_file()
    assert drill["questions_left"] > 0  # the manual part is left for the founder
    runs = drill_runs(plan)
    assert [r.status for r in runs] == ["ok"]
    ws = Workspace(Home(plan.home))
    events = [e for e in ws.history.events() if e["kind"] == unattended.UNATTENDED_EVENT]
    assert events and events[-1]["data"]["drill"] == drill["result"]["drill"]
    # The reminder then asks only for the manual part of that drill.
    lines = unattended.reminder_lines(ws, schedule.local_tz())
    assert lines is not None
    started = datetime.fromisoformat(drill["result"]["started"]).astimezone(schedule.local_tz())
    assert f"The automatic restore test passed on {started:%A} at {started:%H:%M}" in lines[0]
    assert f"{drill['questions_left']} questions left for you" in lines[0]
    status = ok(plan.cli("--json", "status")).json()
    assert status["last_drill"]["ok"] is True


def test_broken_snapshot_fails_and_alerts_until_a_drill_passes(new_plan) -> None:
    plan = files_plan(new_plan)
    (snapshot,) = plan.snapshot_dirs()
    part = snapshot / "parts" / "env" / "env.age"
    data = bytearray(part.read_bytes())
    data[-20:] = bytes(b ^ 0xFF for b in data[-20:])  # same size: complete, but not what was written
    part.write_bytes(bytes(data))
    # No backup on that night (a schedule that ended long ago): the drill must meet the broken snapshot.
    ws = Workspace(Home(plan.home))
    ws.plan.schedule["backup"] = "FREQ=DAILY;BYHOUR=2;BYMINUTE=0;BYSECOND=0;UNTIL=20010105"
    ws.save()

    result = plan.cli("--json", "run-due", "--at", next_drill_night())
    assert result.code == 1, str(result)
    drill = result.json()["drill"]
    assert drill["result"]["ok"] is False
    assert any(not c["ok"] and "env" in c["name"] for c in drill["result"]["checks"]), drill
    assert Path(drill["result"]["report"]).is_file()
    assert [r.status for r in drill_runs(plan)] == ["failed"]
    ws = Workspace(Home(plan.home))
    alerts = [a for a in compute_alerts(ws, datetime.now(UTC)) if a.kind == "drill_failed"]
    assert len(alerts) == 1 and "restore test" in alerts[0].message
    assert (
        "The automatic restore test FAILED" in (unattended.reminder_lines(ws, schedule.local_tz()) or [""])[0]
    )

    # A new good backup and the next drill: the alert is gone.
    ok(plan.cli("--json", "backup"))
    again = ok(plan.cli("--json", "run-due", "--at", next_drill_night())).json()
    assert again["drill"]["result"]["ok"] is True
    ws = Workspace(Home(plan.home))
    assert not [a for a in compute_alerts(ws, datetime.now(UTC)) if a.kind == "drill_failed"]


def test_no_drill_while_a_backup_holds_the_lock(new_plan) -> None:
    plan = files_plan(new_plan)
    with HomeLock(plan.home, "backup"):
        result = ok(plan.cli("--json", "run-due", "--at", next_drill_night())).json()
    assert result["drill"]["due"] is True
    assert "Another backup is running" in result["drill"]["skipped"]
    assert "result" not in result["drill"]
    assert drill_runs(plan) == []


def test_unattended_can_be_turned_off_and_bad_time_is_usage(new_plan) -> None:
    plan = files_plan(new_plan)
    bad = plan.cli("--json", "run-due", "--at", "next sunday")
    assert bad.code == 2 and "--at" in bad.stderr
    ws = Workspace(Home(plan.home))
    ws.plan.drill["unattended"] = False
    ws.save()
    data = ok(plan.cli("--json", "run-due", "--at", next_drill_night())).json()
    assert data["drill"]["enabled"] is False and "result" not in data["drill"]
    assert drill_runs(plan) == []


def test_a_drill_that_cannot_start_is_said_once_per_slot(new_plan) -> None:
    plan: Plan = new_plan()  # no source, no snapshot
    ws = Workspace(Home(plan.home))
    ws.plan.created = (datetime.now(UTC) - timedelta(days=40)).isoformat()  # a drill slot has passed since
    ws.plan.schedule["backup"] = "FREQ=DAILY;BYHOUR=2;BYMINUTE=0;BYSECOND=0;UNTIL=20010105"
    ws.save()
    first = plan.cli("--json", "run-due")
    assert first.code == 1, str(first)
    assert first.json()["drill"]["due"] is True and first.json()["drill"]["error"]
    again = ok(plan.cli("--json", "run-due")).json()["drill"]
    assert again["due"] is False and "error" not in again
    events = [
        e for e in Workspace(Home(plan.home)).history.events() if e["kind"] == unattended.UNATTENDED_EVENT
    ]
    assert len(events) == 1 and events[0]["data"]["ok"] is False


def notifications_owned() -> bool:
    from jeepney import DBusAddress, new_method_call
    from jeepney.io.blocking import open_dbus_connection

    bus = DBusAddress("/org/freedesktop/DBus", "org.freedesktop.DBus", "org.freedesktop.DBus")
    with open_dbus_connection(bus="SESSION") as connection:
        call = new_method_call(bus, "NameHasOwner", "s", ("org.freedesktop.Notifications",))
        return bool(connection.send_and_get_reply(call, timeout=5).body[0])


@pytest.fixture
def notification_server(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A real notification server (dunst on Xvfb) on this test session's private D-Bus bus."""
    import os
    import select
    import shutil
    import subprocess

    from tests.support import need

    for tool in ("Xvfb", "dunst", "dunstctl"):
        need(shutil.which(tool) is not None, tool)
    need(
        bool(os.environ.get("DBUS_SESSION_BUS_ADDRESS")), "a D-Bus session bus (run under tools/with-keyring)"
    )
    read_end, write_end = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", "800x600x24", "-nolisten", "tcp"],
        pass_fds=(write_end,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    processes = [xvfb]
    try:
        number, deadline = b"", time.monotonic() + 30
        while not number.endswith(b"\n") and time.monotonic() < deadline:
            ready, _, _ = select.select([read_end], [], [], 1.0)
            number += os.read(read_end, 16) if ready else b""
        assert number.endswith(b"\n"), "Xvfb did not start"
        env = {**os.environ, "DISPLAY": f":{int(number)}"}
        rc = tmp_path / "dunstrc"
        rc.write_text("[urgency_normal]\n    timeout = 0\n[urgency_low]\n    timeout = 0\n")
        processes.append(
            subprocess.Popen(
                ["dunst", "-config", str(rc)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        )
        deadline = time.monotonic() + 30
        while not notifications_owned():  # asked without D-Bus activation, which would start a second dunst
            assert time.monotonic() < deadline, "dunst did not come up on the session bus"
            time.sleep(0.1)
        yield env
    finally:
        os.close(read_end)
        for process in reversed(processes):
            process.terminate()
            process.wait(timeout=30)


def test_the_result_is_a_desktop_notification(new_plan, notification_server: dict[str, str]) -> None:
    import subprocess

    plan = files_plan(new_plan)
    data = ok(plan.cli("--json", "run-due", "--at", next_drill_night(), env=notification_server)).json()
    assert data["drill"]["result"]["ok"] is True and data["drill"]["notified"] is True
    shown = subprocess.run(
        ["dunstctl", "count", "displayed"],
        env=notification_server,
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(shown.stdout) >= 1
