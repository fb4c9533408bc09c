"""Garbage collection on the GUI thread only.

Python's cyclic garbage collector runs on whichever thread happens to allocate when a threshold is
crossed: in the app that is often a worker thread streaming a backup. If the cycle it frees holds a Qt
widget (a closed dialog, a finished job's receiver), Qt deletes that widget off the GUI thread and
crashes. The app therefore turns automatic collection off and collects from a timer on the GUI thread,
with the interpreter's own thresholds (the approach pyqtgraph uses).
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer, Slot


class GuiThreadCollector(QObject):
    def __init__(self, interval_ms: int = 1000, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.threshold = gc.get_threshold()
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.check)
        self.collections = 0

    def start(self) -> None:
        gc.disable()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()
        gc.enable()

    @Slot()
    def check(self) -> None:
        """Collect the oldest generation whose count is over its threshold, as the interpreter would."""
        counts = gc.get_count()
        for generation in (2, 1, 0):
            if counts[generation] > self.threshold[generation]:
                gc.collect(generation)
                self.collections += 1
                return
