"""Runbook texts in the app's words: "run `drgui backup`" reads "click Back up now" on screen.

The checklists are written for both the CLI and the app; in the app a founder who never opens a terminal
reads where to click instead of a command. Each CLI command maps to the control that does the same.
"""

from __future__ import annotations

import re

# command prefix -> (verb, the control or place); the longest matching prefix wins
_CONTROLS: dict[str, tuple[str, str]] = {
    "backup": ("click", "Back up now"),
    "status": ("open", "the Dashboard"),
    "env-to-drive": ("click", "Sync .env to drive (tray menu or Destinations page)"),
    "verify": ("click", "Verify on the Snapshots page"),
    "snapshots": ("open", "the Snapshots page"),
    "restore": ("click", "Restore on the Snapshots page"),
    "source test": ("click", "Test on the Sources page"),
    "source": ("open", "the Sources page"),
    "dest test": ("click", "Test connection on the Destinations page"),
    "dest": ("open", "the Destinations page"),
    "drill": ("click", "Start restore test on the Restore tests page"),
    "prune": ("open", "the retention settings (Settings page)"),
    "kit export": ("click", "Export the kit on the Recovery kit page"),
    "kit import": ("click", "Restore from a recovery kit (Help menu)"),
    "checklist run": ("open", "that checklist on this page"),
    "history": ("open", "the history of runs"),
    "--version": ("open", "Help → About drgui"),
}
_COMMAND = re.compile(r"(?:\b(run|Run|use|Use) )?`drgui ([^`]*)`")


def _control(command: str) -> tuple[str, str]:
    words = command.split()
    for length in (2, 1):
        key = " ".join(words[:length])
        if key in _CONTROLS:
            return _CONTROLS[key]
    return ("use", "the matching page of the app")


def _replace(match: re.Match[str]) -> str:
    verb_before, command = match.group(1), match.group(2)
    verb, control = _control(command)
    if verb_before is None:
        return control
    return (verb.capitalize() if verb_before[0].isupper() else verb) + " " + control


def app_words(text: str) -> str:
    """`text` with every `drgui ...` command replaced by the app's control for it."""
    return _COMMAND.sub(_replace, text)
