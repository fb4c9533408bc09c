"""The drill report: one self-contained HTML page (readable on screen, printable) and the same as PDF.

The HTML sticks to what Qt's rich-text engine renders too (tables, inline styles, bgcolor), so
the PDF is the same document laid out by QTextDocument and written by QPdfWriter. No secret is
ever in a report: checks carry names, counts and hashes only.
"""

from __future__ import annotations

import html
import os
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drgui.core.engine.fsutil import atomic_write_text
from drgui.core.plan.config import format_duration

if TYPE_CHECKING:
    from collections.abc import Sequence

    from drgui.core.engine.restore_result import Check
    from drgui.core.ops.drill import DrillResult

GREEN, RED, GREY = "#1b7f3b", "#b3261e", "#5f6368"
STEP_TITLES = {
    "verify": "Download and verify",
    "restore": "Database restore",
    "rows": "Row counts (every table)",
    "schema": "Schema",
    "smoke": "Smoke queries",
    "files": "Files",
    "env": ".env",
    "targets": "RTO and RPO",
}


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _when(text: str | None) -> str:
    return text.replace("T", " ")[:19] + " UTC" if text else "—"


def _duration(seconds: float | None) -> str:
    return "—" if seconds is None else format_duration(seconds)


# A short cell (a verdict, a name, a date) never wraps: Qt's text engine, which lays out the PDF, breaks
# a word that does not fit its column anywhere ("Stat e", "ope n"); a cell that does not wrap makes its
# column as wide as its text. Long free text (checks, figures, notes) wraps at word boundaries.
NOWRAP = ' style="white-space: nowrap"'


def _badge(ok: bool) -> str:
    color, word = (GREEN, "PASS") if ok else (RED, "FAIL")
    return f'<span style="color:{color}; font-weight:bold">{word}</span>'


def _checks_table(checks: Sequence[Check]) -> str:
    rows = []
    for check in checks:
        rows.append(
            "<tr>"
            f"<td{NOWRAP}>{_badge(check['ok'])}</td>"
            f"<td>{_e(check['name'])}</td>"
            f"<td>{_e(check['detail'])}</td>"
            "</tr>"
        )
    return (
        '<table class="checks" width="100%" cellspacing="0" cellpadding="4" border="1">'
        f'<tr bgcolor="#eeeeee"><th{NOWRAP}>Result</th><th width="34%">Check</th><th width="56%">Figure</th></tr>'
        + "".join(rows)
        + "</table>"
    )


def _targets_table(result: DrillResult) -> str:
    rto_ok = result.rto_seconds is not None and result.rto_seconds <= result.rto_target
    rpo_ok = result.rpo_seconds is not None and result.rpo_seconds <= result.rpo_target
    gap = result.largest_gap_seconds
    gap_ok = gap is None or gap <= result.rpo_target
    rows = [
        ("RTO (drill start → verified)", _duration(result.rto_seconds), _duration(result.rto_target), rto_ok),
        ("RPO (snapshot age at start)", _duration(result.rpo_seconds), _duration(result.rpo_target), rpo_ok),
        (
            "Largest gap between backups (30 days)",
            "fewer than two backups" if gap is None else _duration(gap),
            _duration(result.rpo_target),
            gap_ok,
        ),
    ]
    body = "".join(
        f"<tr><td>{_e(a)}</td><td><b>{_e(b)}</b></td><td{NOWRAP}>{_e(c)}</td><td{NOWRAP}>{_badge(ok)}</td></tr>"
        for a, b, c, ok in rows
    )
    return (
        '<table width="100%" cellspacing="0" cellpadding="4" border="1">'
        '<tr bgcolor="#eeeeee"><th width="40%">Measure</th><th width="30%">Measured</th>'
        f"<th{NOWRAP}>Target</th><th{NOWRAP}>Result</th></tr>" + body + "</table>"
    )


def _checklist_html(result: DrillResult) -> str:
    run = result.checklist_run()
    if run is None:
        return "<p>No checklist was recorded.</p>"
    done, total = run.progress
    rows = []
    for item in run.checklist.items:
        state = run.states[item.id]
        if item.kind == "auto":
            who = "drgui<br>(automatic)"
            figure = f"<code>{_e(item.check)}</code>: {_e(state.detail or 'not run')}"
        else:
            who = _e(state.by) if state.by else "—"
            figure = _e(state.note or "")
        mark = (
            f'<span style="color:{GREEN}; font-weight:bold">done</span>'
            if state.done
            else f'<span style="color:{GREY if item.kind == "manual" else RED}">open</span>'
        )
        when = _e(state.at.astimezone(UTC).strftime("%Y-%m-%d")) if state.at else "—"
        if state.at:
            when += "<br>" + _e(state.at.astimezone(UTC).strftime("%H:%M UTC"))
        rows.append(
            f"<tr><td{NOWRAP}>{mark}</td><td>{_e(item.text)}</td><td{NOWRAP}>{who}</td>"
            f"<td{NOWRAP}>{when}</td><td>{figure}</td></tr>"
        )
    return (
        f"<p>{_e(run.checklist.title)}: <b>{done} of {total}</b> items done.</p>"
        '<table width="100%" cellspacing="0" cellpadding="4" border="1">'
        f'<tr bgcolor="#eeeeee"><th{NOWRAP}>State</th><th width="26%">Item</th><th{NOWRAP}>By</th>'
        f'<th{NOWRAP}>When</th><th width="48%">Detail / note</th></tr>' + "".join(rows) + "</table>"
    )


def render_html(result: DrillResult, *, for_pdf: bool = False) -> str:
    """The whole report as one HTML document with inline CSS (no external file, no script).

    ``for_pdf`` leaves out the screen layout (centred column) that Qt's text engine would turn into indents.
    """
    ok = result.ok
    verdict_color = GREEN if ok else RED
    failed = result.failed_checks
    verdict_text = (
        "PASS — the snapshot restored completely and every check matched."
        if ok
        else f"FAIL — {len(failed)} check{'s' if len(failed) != 1 else ''} failed: "
        + ", ".join(c["name"] for c in failed[:6])
        + ("…" if len(failed) > 6 else "")
    )
    sources = ", ".join(f"{s['name']} ({s['kind']})" for s in result.sources) or "—"
    facts = [
        ("Plan", result.plan),
        ("Drill", result.drill_id),
        ("Snapshot", result.snapshot_id),
        ("Read from destination", result.destination),
        ("Sources in the snapshot", sources),
        ("Scratch database server", result.scratch),
        ("Started", _when(result.started.isoformat())),
        ("Finished", _when(result.finished.isoformat() if result.finished else None)),
    ]
    if result.signed_by:
        facts.append(("Signed off by", result.signed_by))
    if result.audit and result.audit.get("mac"):  # the chain head this report anchors (docs/audit.md)
        facts.append(
            ("Audit log anchor", f"record #{result.audit['seq']}, MAC {str(result.audit['mac'])[:16]}…")
        )
    fact_rows = "".join(f'<tr><td width="30%"><b>{_e(k)}</b></td><td>{_e(v)}</td></tr>' for k, v in facts)
    sections = []
    for step, title in STEP_TITLES.items():
        checks = [c for c in result.checks if c.get("step") == step]
        if checks:
            sections.append(f"<h3>{_e(title)}</h3>{_checks_table(checks)}")
    notes = f"<h2>Notes</h2><p>{_e(result.notes)}</p>" if result.notes else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Restore drill {_e(result.drill_id)}: {"PASS" if ok else "FAIL"}</title>
<style>
 body {{ font-family: "DejaVu Sans", Arial, Helvetica, sans-serif; font-size: {"9pt" if for_pdf else "10pt"};
        color: #202124; {"" if for_pdf else "max-width: 60em; margin: 1.5em auto; padding: 0 1em;"} }}
 h1 {{ font-size: 17pt; margin-bottom: 0.2em; }}
 h2 {{ font-size: 13pt; margin-top: 1.2em; border-bottom: 1px solid #ccc; }}
 h3 {{ font-size: 11pt; margin-bottom: 0.3em; }}
 table {{ border-collapse: collapse; border-color: #bbbbbb; }}
 td, th {{ text-align: left; vertical-align: top; padding: 3px 6px; }}
 code {{ font-family: "DejaVu Sans Mono", monospace; }}
 .verdict {{ font-size: 14pt; font-weight: bold; padding: 8px; }}
 @media print {{ body {{ margin: 0; max-width: none; }} h2 {{ page-break-after: avoid; }} }}
</style></head>
<body>
<h1>Restore drill report — {_e(result.plan)}</h1>
<table width="100%" cellpadding="8" cellspacing="0"><tr>
<td class="verdict" bgcolor="{verdict_color}" style="color:#ffffff">{_e(verdict_text)}</td></tr></table>
<h2>What was tested</h2>
<table width="100%" cellspacing="0" cellpadding="3" border="0">{fact_rows}</table>
<h2>Recovery time and data loss</h2>
{_targets_table(result)}
<h2>Checks ({len(result.checks) - len(failed)} of {len(result.checks)} passed)</h2>
{"".join(sections)}
<h2>Checklist</h2>
{_checklist_html(result)}
{notes}
<p style="color:{GREY}; font-size:8pt">Written by drgui. RTO here is the machine part of a recovery
(download, restore, checks); a real recovery also needs a person to notice, decide and switch over.</p>
</body></html>
"""


def write_report(result: DrillResult, html_path: Path, pdf_path: Path) -> None:
    """The report as HTML and as PDF: the `ReportWriter` that `drgui drill` and the restore wizard pass to
    `drill.run_drill`, `drill.save_report` and `drill.sign_off` (the engine itself imports no Qt)."""
    atomic_write_text(html_path, render_html(result), 0o644)
    write_pdf(render_html(result, for_pdf=True), pdf_path)


def _ensure_gui_app() -> None:
    """QTextDocument layout needs a QGuiApplication; create an offscreen one when none exists."""
    from PySide6.QtGui import QGuiApplication

    if QGuiApplication.instance() is not None:
        return
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    global _APP  # kept alive for the process: Qt allows one application object
    _APP = QGuiApplication([])


_APP: Any = None


def write_pdf(html_text: str, path: Path) -> None:
    """A4 PDF of the report, written to a temp file and renamed (never half a PDF)."""
    _ensure_gui_app()
    from PySide6.QtCore import QMarginsF
    from PySide6.QtGui import QPageLayout, QPageSize, QPdfWriter, QTextDocument

    tmp = path.with_name(path.name + ".tmp")
    writer = QPdfWriter(str(tmp))
    writer.setPageSize(QPageSize(QPageSize.PageSizeId.A4))
    writer.setPageMargins(QMarginsF(15, 15, 15, 15), QPageLayout.Unit.Millimeter)
    writer.setResolution(300)
    writer.setTitle("drgui restore drill report")
    writer.setCreator("drgui")
    document = QTextDocument()
    document.setDocumentMargin(0)
    document.setHtml(html_text)
    document.print_(writer)
    del writer
    os.replace(tmp, path)
