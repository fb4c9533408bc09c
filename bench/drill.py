"""Benchmark: a whole restore drill against bare `pg_restore -j2` of the same dump, in the same run.

Generates a SaaS-like database of about --size-mb MB (drgui.core.ops.demo_data.populate_saas) in an
embedded PostgreSQL, backs it up once with drgui, writes a plain `pg_dump -Fc -Z0` of it, then times,
alternating, --runs times each:

- baseline: start a fresh embedded PostgreSQL, `pg_restore -j2` the plain dump into it, stop it;
- drill: `run_drill` (download + quick verify, decrypt + zstd, fresh embedded PostgreSQL, pg_restore -j,
  exact row counts of every table, schema fingerprint, checklist, HTML + PDF report, cleanup).

Prints the median wall times and their ratio (target: at most 1.2x). Run it under tools/with-keyring.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from drgui.core.engine.sources.postgres import split_dsn
from drgui.core.ops.backup import run_backup
from drgui.core.ops.demo_data import populate_saas
from drgui.core.ops.drill import run_drill
from drgui.core.pg.pgtools import EmbeddedCluster, find_tool
from drgui.core.plan.home import Home
from drgui.core.plan.setup import add_destination, add_source, init_plan
from drgui.core.plan.workspace import Workspace

PASSWORD = "bench-Passw0rd-not-secret"
PASSPHRASE = "bench orbit velvet cactus harbor lantern"


def baseline(dump: Path, base: Path) -> float:
    started = time.perf_counter()
    with EmbeddedCluster(base_dir=base, name="bench-baseline") as cluster:
        cluster.create_database("restored")
        subprocess.run(
            [
                str(find_tool("pg_restore")),
                "-j2",
                "--no-owner",
                "--no-privileges",
                "-d",
                cluster.conninfo("restored"),
                str(dump),
            ],
            check=True,
            capture_output=True,
        )
    return time.perf_counter() - started


def drill(ws: Workspace) -> float:
    started = time.perf_counter()
    result = run_drill(ws)
    seconds = time.perf_counter() - started
    if not result.ok:
        raise SystemExit(f"the drill failed: {result.failed_checks}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=300, help="database size on disk (default 300)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="drgui-bench-drill-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)
        with EmbeddedCluster(base_dir=work, password=PASSWORD, name="bench-source") as source:
            source.create_database("app")
            print(f"generating ~{args.size_mb} MB ...", flush=True)
            counts = populate_saas(source.conninfo("app", password=PASSWORD), size_mb=args.size_mb)
            print(f"  {sum(counts.values()):,} rows in {len(counts)} tables", flush=True)
            ws = init_plan(Home(work / "home"), "Bench", PASSPHRASE)
            add_destination(ws, "local", "local", {"path": str(work / "dest")})
            params, password = split_dsn(source.url("app", password=PASSWORD))
            add_source(ws, "db", "postgres", params, secrets={"password": password or ""})
            ws.reload()
            run_backup(ws)
            dump = work / "plain.dump"
            subprocess.run(
                [
                    str(find_tool("pg_dump")),
                    "-Fc",
                    "-Z0",
                    "-f",
                    str(dump),
                    "-d",
                    source.conninfo("app", password=PASSWORD),
                ],
                check=True,
            )
            print(f"  dump {dump.stat().st_size / 1e6:,.1f} MB", flush=True)
            bare, full = [], []
            for run in range(args.runs):
                bare.append(baseline(dump, work))
                full.append(drill(ws))
                print(f"  run {run + 1}: pg_restore -j2 {bare[-1]:.2f} s, drill {full[-1]:.2f} s", flush=True)
    b, d = statistics.median(bare), statistics.median(full)
    print(
        f"median: bare pg_restore -j2 (fresh cluster) {b:.2f} s; drgui drill {d:.2f} s; ratio {d / b:.2f}x (target <= 1.2x)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
