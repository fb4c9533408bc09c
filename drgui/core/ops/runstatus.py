"""The statuses a history run ends with, and which of them count as a success: spelled once here.

A run is "running" until it ends "ok", "partial", "failed" or "cancelled"; a run whose process vanished
(kill -9, power loss) is read as "interrupted".
"""

from __future__ import annotations

__all__ = [
    "ATTEMPTED",
    "CANCELLED",
    "FAILED",
    "INTERRUPTED",
    "OK",
    "PARTIAL",
    "RUNNING",
    "SUCCESS",
    "VERDICT",
]

RUNNING = "running"
OK = "ok"
PARTIAL = "partial"
FAILED = "failed"
CANCELLED = "cancelled"
INTERRUPTED = "interrupted"

# A partial backup is complete on at least one destination (some source or destination failed): it counts.
SUCCESS: tuple[str, ...] = (OK, PARTIAL)
# A run that came to a verdict, passed or failed (a drill), as opposed to one cancelled or interrupted.
VERDICT: tuple[str, ...] = (OK, FAILED)
# A run that was started and not given up on: what the schedule counts as "the last backup" (a cancelled
# or interrupted one is retried).
ATTEMPTED: tuple[str, ...] = (OK, PARTIAL, FAILED, RUNNING)
