"""Sources page."""

from __future__ import annotations

from drgui.gui.pages.listing import PlanItemsPage


class SourcesPage(PlanItemsPage):
    SOURCE = True
