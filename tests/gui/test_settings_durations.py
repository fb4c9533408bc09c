"""Settings keeps an RPO/RTO shown as two units ('1h 30m'), and says why a duration it cannot read is refused.

(Found by mypy: the page set `None` into the plan for any text with a space in it, then crashed saving it.)
"""

from __future__ import annotations

from drgui.gui.app import App


def test_a_two_unit_duration_shown_unchanged_is_kept(started: App) -> None:
    started.ws.plan.rpo_seconds = 90 * 60
    started.ws.plan.rto_seconds = 26 * 3600
    started.ws.save()
    page = started.window.pages["settings"]
    page.load()
    assert (page.rpo.text(), page.rto.text()) == ("1h 30m", "1d 2h")
    assert page.save()
    plan = started.ws.reload()
    assert (plan.rpo_seconds, plan.rto_seconds) == (90 * 60, 26 * 3600)


def test_a_duration_that_cannot_be_read_is_refused_and_the_plan_is_unchanged(started: App) -> None:
    page = started.window.pages["settings"]
    before = started.ws.plan.rpo_seconds
    page.rpo.setText("1y")  # a retention span's unit, not an interval's
    assert not page.save()
    assert "is not a time interval" in page.message.text()
    assert started.ws.plan.rpo_seconds == before
    assert started.ws.reload().rpo_seconds == before


def test_a_new_two_unit_duration_is_read(started: App) -> None:
    """The notation Settings shows ('2h 30m') is the one it reads, not only when left unchanged."""
    page = started.window.pages["settings"]
    page.rpo.setText("2h 30m")
    assert page.save()
    assert started.ws.reload().rpo_seconds == 150 * 60
