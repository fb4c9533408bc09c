"""CLI output: one JSON document on stdout with --json; human text otherwise (progress always on stderr)."""

from __future__ import annotations

import getpass
import json
import os
import sys
from typing import Any

from drgui.core.errors import UsageError
from drgui.core.fmt import size
from drgui.core.plan.secrets import redact
from drgui.core.progress import Progress, ScanCounts


def human_bytes(count: float) -> str:
    return size(count)  # the GUI's formatter too: one notation for sizes


class Output:
    def __init__(self, json_mode: bool) -> None:
        self.json_mode = json_mode
        self._progress_line = False
        self.printed = False  # the one JSON document is out (an error after it must not add a second)

    def info(self, text: str) -> None:
        """Human text for the user: stderr in --json mode, stdout otherwise."""
        self._end_progress()
        stream = sys.stderr if self.json_mode else sys.stdout
        print(redact(text), file=stream, flush=True)

    def warn(self, text: str) -> None:
        self._end_progress()
        print(redact(f"warning: {text}"), file=sys.stderr, flush=True)

    def result(self, data: Any, human: str | None = None) -> None:
        self._end_progress()
        if self.json_mode:
            self.printed = True
            print(redact(json.dumps(data, indent=1, sort_keys=True, default=str)), flush=True)
        elif human:
            print(redact(human), flush=True)

    def progress(self, event: Progress) -> None:
        if not sys.stderr.isatty():
            return
        parts = [event.step]
        if event.source:
            parts.append(event.source)
        if event.bytes_done:
            parts.append(human_bytes(event.bytes_done))
        if event.rate:
            parts.append(f"{human_bytes(event.rate)}/s")
        if event.message and not event.bytes_done:
            parts.append(event.message)
        if event.scan is not None:  # format 2: what the folder/bucket scan found so far
            parts.append(scan_summary(event.scan))
        sys.stderr.write("\r\033[K" + redact("  ".join(parts))[:120])
        sys.stderr.flush()
        self._progress_line = True

    def _end_progress(self) -> None:
        if self._progress_line:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
            self._progress_line = False


def scan_summary(scan: ScanCounts) -> str:
    return (
        f"{scan.files_scanned} files scanned ({human_bytes(scan.bytes_scanned)}), "
        f"{scan.files_unchanged} unchanged ({human_bytes(scan.bytes_unchanged)}), "
        f"{scan.files_new} new ({human_bytes(scan.bytes_new)})"
    )


def read_secret(option_value: str | None, option_name: str, prompt: str, *, confirm: bool = False) -> str:
    """A secret from --...-file, else a prompt on a terminal, else exit 2 naming the option."""
    from drgui.core.plan.secrets import read_secret_file

    if option_value:
        return read_secret_file(option_value, option_name.lstrip("-").replace("-file", ""))
    if not (sys.stdin.isatty() and os.environ.get("DRGUI_NO_PROMPT") != "1"):
        raise UsageError(f"No terminal to ask for the {prompt}.", hint=f"Pass {option_name} FILE.")
    value = getpass.getpass(f"{prompt}: ")
    if confirm and getpass.getpass(f"{prompt} (again): ") != value:
        raise UsageError("The two entries differ.")
    return value
