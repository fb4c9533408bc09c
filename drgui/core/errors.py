"""Errors the user sees: each names the thing that is wrong and how to fix it.

The CLI maps them to its exit codes (shared/design.md section 6); the GUI shows them in a dialog.
Messages never contain a secret: build them from names, paths and versions only.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3
EXIT_PARTIAL = 4


class DrguiError(Exception):
    """Base class: a message for the user and, optionally, what to do about it."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  Fix: {self.hint}" if self.hint else self.message

    def to_json(self) -> dict[str, object]:
        return {"error": self.message, "hint": self.hint, "kind": type(self).__name__}


class OperationFailed(DrguiError):
    """The operation ran and failed, or found problems (exit 1)."""


class UsageError(DrguiError):
    """Bad usage or bad input: unknown name, invalid option, refused target (exit 2)."""

    exit_code = EXIT_USAGE


class EnvironmentNotReady(DrguiError):
    """Keyring refused or locked, pg_dump missing or too old, drive absent (exit 3)."""

    exit_code = EXIT_ENVIRONMENT


class KeyringLocked(EnvironmentNotReady):
    """The keyring exists but is locked: a distinct state the GUI offers to unlock."""


class Cancelled(DrguiError):
    """The user cancelled; everything half-done has been removed."""


class SourceError(OperationFailed):
    """A source could not be read (wrong DSN or password, unreachable host, missing path)."""


class DestinationError(OperationFailed):
    """A destination refused a read or write (not writable, disk full, S3 refusal)."""
