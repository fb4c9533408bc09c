"""How long does the GUI's event loop stall while "Back up now" runs a 200 MB database backup?

A QTimer ticks every 10 ms on the GUI thread while the backup runs on the worker; the longest gap
between ticks (minus the 10 ms interval) is the longest stall a user could notice. Target: < 50 ms.
Run inside tools/with-keyring:  tools/with-keyring python bench/gui_stall.py [--size MB]
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QEventLoop, QObject, QTimer, Slot
from PySide6.QtWidgets import QApplication

from drgui.core.ops.demo_data import populate_saas
from drgui.core.pg.pgtools import EmbeddedCluster
from drgui.core.plan.home import Home
from drgui.core.plan.setup import add_destination, add_source, init_plan
from drgui.gui.app import App

TICK_MS = 10


class StallMeter(QObject):
    """Records the longest gap between 10 ms timer ticks on the GUI thread."""

    def __init__(self) -> None:
        super().__init__()
        self.timer = QTimer(self)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self.tick)
        self.last = 0.0
        self.longest = 0.0
        self.ticks = 0

    def start(self) -> None:
        self.last = time.perf_counter()
        self.timer.start()

    @Slot()
    def tick(self) -> None:
        now = time.perf_counter()
        self.longest = max(self.longest, now - self.last)
        self.last = now
        self.ticks += 1

    def stop(self) -> float:
        self.timer.stop()
        return max(0.0, self.longest * 1000 - TICK_MS)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=200, help="database size in MB (default 200)")
    args = parser.parse_args()
    qt_app = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory(prefix="drgui-stall-") as work_dir:
        work = Path(work_dir)
        password = secrets.token_urlsafe(16)
        cluster = EmbeddedCluster(base_dir=None, password=password, name="drgui-stall").start()
        try:
            cluster.create_database("acme")
            print(f"generating a {args.size} MB database...", file=sys.stderr, flush=True)
            populate_saas(cluster.conninfo("acme", password=password), size_mb=args.size)
            ws = init_plan(Home(work / "home"), "Stall bench", "orbit velvet cactus harbor lantern seventeen")
            settings = {
                "host": cluster.host,
                "port": str(cluster.port),
                "dbname": "acme",
                "user": cluster.superuser,
            }
            add_source(ws, "db", "postgres", settings, secrets={"password": password})
            add_destination(ws, "local", "local", {"path": str(work / "dest")})
            app = App(ws, tray=False)
            app.window.show()
            loop = QEventLoop()
            results = []
            app.controller.backup_finished.connect(results.append)
            app.controller.backup_done.connect(loop.quit)
            meter = StallMeter()
            meter.start()
            started = time.perf_counter()
            app.controller.start_backup()
            loop.exec()
            seconds = time.perf_counter() - started
            stall_ms = meter.stop()
            app.window.close()
            if not results or not results[0].ok:
                print("backup did not complete", file=sys.stderr)
                return 1
            total = sum(s.bytes for s in results[0].sources)
            print(
                f"gui stall: longest event-loop stall {stall_ms:.1f} ms during a {args.size} MB database backup "
                f"({total / 1e6:.0f} MB written in {seconds:.1f} s, {meter.ticks} ticks); target < 50 ms"
            )
        finally:
            cluster.stop()
    del qt_app
    return 0


if __name__ == "__main__":
    sys.exit(main())
