"""The app's log file: rotating, under the platform's user log directory, with every secret redacted.

The worker logs an unexpected error's traceback there ("the details are in the log"); Help → Open log
folder shows it. Secrets never reach it: each record goes through `core.secrets.redact` (every secret
value this process has seen) and a password written in a URL (`scheme://user:password@host`) is masked.
"""

from __future__ import annotations

import logging
import os
import re
from logging.handlers import RotatingFileHandler
from pathlib import Path

import platformdirs

from drgui.core.plan.secrets import redact

LOG_NAME = "drgui.log"
MAX_BYTES = 1_000_000
BACKUPS = 5
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+@", re.IGNORECASE)


def log_dir() -> Path:
    """$DRGUI_LOG_DIR, else the platform's user log folder for drgui (~/.local/state/drgui/log on Linux)."""
    override = os.environ.get("DRGUI_LOG_DIR")
    return (
        Path(override) if override else Path(platformdirs.user_log_dir("drgui", appauthor=False)).expanduser()
    )


def scrub(text: str) -> str:
    """`text` without any secret this process knows of nor a password inside a URL."""
    return _URL_PASSWORD.sub(r"\g<head>***@", redact(text))


class RedactingFilter(logging.Filter):
    """Rewrites each record (message, arguments and traceback) with `scrub` before it is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


def setup_logging(folder: Path | None = None, level: int = logging.INFO) -> Path:
    """Send the `drgui` loggers to `folder`/drgui.log (rotating, 5 × 1 MB); returns the file's path.
    Called once by the app's entry point; calling it again does not add a second handler."""
    folder = folder or log_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOG_NAME
    logger = logging.getLogger("drgui")
    for handler in list(logger.handlers):
        if isinstance(handler, RotatingFileHandler) and Path(handler.baseFilename) == path:
            return path
    handler = RotatingFileHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    # The file gets INFO; the terminal keeps warnings only, as before (not through the root logger,
    # which would print the INFO lines too).
    console = logging.StreamHandler()
    console.setLevel(logging.WARNING)
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    console.addFilter(RedactingFilter())
    logger.addHandler(console)
    logger.propagate = False
    logger.setLevel(level)
    return path
