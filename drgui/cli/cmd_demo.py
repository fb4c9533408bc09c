"""drgui demo: a generated SaaS in a fresh home, one backup, then the app (unless --no-gui)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from drgui.cli.common import add_command
from drgui.cli.output import human_bytes
from drgui.core.plan.home import Home


def register(sub, common) -> None:
    parser = add_command(sub, common, "demo", "try drgui on a generated SaaS (nothing to configure)", run)
    parser.add_argument("--no-gui", action="store_true", help="back up and verify, print, and exit")
    parser.add_argument("--size", type=int, default=30, metavar="MB", help="database size (default 30 MB)")


def run(args, out) -> int:
    from drgui.core.ops.demo import create_demo

    home = Home.resolve(args.home) if args.home else Home(Path(tempfile.mkdtemp(prefix="drgui-demo-")))
    demo = create_demo(home, size_mb=args.size, log=lambda text: print(text, file=sys.stderr, flush=True))
    try:
        backup, verify = demo.backup, demo.verify
        assert backup is not None and verify is not None
        data = {
            "ok": backup.ok and verify.ok,
            "home": str(home.path),
            "backup": backup.to_json(),
            "verify": verify.to_json(),
            "passphrase_file": str(demo.passphrase_file),
        }
        lines = [
            f"Demo plan in {home.path}",
            f"Snapshot {backup.snapshot_id}: "
            + ", ".join(f"{s.name} {human_bytes(s.bytes)}" for s in backup.sources),
            f"Deep verify: {'OK' if verify.ok else 'PROBLEMS: ' + '; '.join(verify.problems)}",
            f"Recovery passphrase of this demo: {demo.passphrase_file}",
            f"Try: drgui --home {home.path} snapshots | status | verify --deep | drill",
        ]
        out.result(data, "\n".join(lines))
        if not args.no_gui:
            from drgui.gui.app import run_app

            return run_app(home, demo=demo)
        return 0 if data["ok"] else 1
    finally:
        demo.stop()
