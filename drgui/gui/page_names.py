"""The app's pages, in sidebar order; no Qt here, so `drgui gui --page` can offer them without loading it."""

from __future__ import annotations

PAGES = (
    "dashboard",
    "sources",
    "destinations",
    "snapshots",
    "drills",
    "checklists",
    "history",
    "kit",
    "settings",
)
