"""Benchmark: `drgui backup` against bare `pg_dump -Fc -Z0` of the same database, in the same run.

Generates a SaaS-like database of about --size-mb MB (drgui.core.ops.demo_data.populate_saas) in an
embedded PostgreSQL, then times, alternating, `pg_dump -Fc -Z0 -f out.dump` (the pg_dump binary drgui
uses, over the same TCP connection with the same password) and `drgui backup` (the CLI, as a
subprocess, to a local destination), --runs times each. Prints the median wall times, their ratio and
the peak resident memory of the drgui process. Needs a keyring: run it under tools/with-keyring.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from drgui.core.ops.demo_data import populate_saas
from drgui.core.pg.pgtools import EmbeddedCluster, find_tool, tool_version

PASSWORD = "bench-Passw0rd-not-secret"
PASSPHRASE = "bench orbit velvet cactus harbor lantern"


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """(wall seconds, peak RSS in bytes of the process and its waited-for children, stdout)."""
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        process = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
        if process.stderr:
            process.stderr.close()
        out.seek(0)
        stdout = out.read().decode(errors="replace")
    if process.returncode != 0:
        raise SystemExit(f"{argv[0]} failed (exit {process.returncode}):\n{stderr}\n{stdout}")
    return seconds, usage.ru_maxrss * 1024, stdout


def drgui(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "drgui", "--home", str(home), *args]


def mb(count: float) -> str:
    return f"{count / 1e6:,.1f} MB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=500, help="database size on disk (default 500)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each (default 3)")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGPASS")}
    with tempfile.TemporaryDirectory(prefix="drgui-bench-") as base:
        base_dir = Path(base)
        os.chmod(base_dir, 0o755)  # as root, the server runs as an unprivileged user that must enter it
        with EmbeddedCluster(base_dir=base_dir, password=PASSWORD, name="bench") as cluster:
            cluster.create_database("bench")
            print(f"generating a {args.size_mb} MB database ...", file=sys.stderr, flush=True)
            started = time.perf_counter()
            populate_saas(
                cluster.conninfo("bench", host=str(cluster.socket_dir)), size_mb=args.size_mb, seed=1
            )
            (db_size,) = cluster.query("SELECT pg_database_size('bench')", dbname="bench")[0]
            print(f"  {mb(db_size)} in {time.perf_counter() - started:.0f} s", file=sys.stderr)

            home, dest, work = base_dir / "home", base_dir / "dest", base_dir / "work"
            work.mkdir()
            passphrase_file = work / "passphrase"
            passphrase_file.write_text(PASSPHRASE)
            for argv in (
                drgui(home, "init", "--name", "Bench", "--passphrase-file", str(passphrase_file)),
                drgui(
                    home, "source", "add", "db", "postgres", "--dsn", cluster.url("bench", password=PASSWORD)
                ),
                drgui(home, "dest", "add", "local", "local", "--path", str(dest)),
            ):
                timed(argv, env)

            pg_dump = find_tool("pg_dump")
            dump = work / "out.dump"
            bare = [str(pg_dump), "-Fc", "-Z0", "-f", str(dump), f"--dbname={cluster.conninfo('bench')}"]
            dump_env = {**env, "PGPASSWORD": PASSWORD}
            pg_times, drgui_times, rss, dump_size, snapshot_size = [], [], [], 0, 0
            for run in range(args.runs):
                seconds, _, _ = timed(bare, dump_env)
                pg_times.append(seconds)
                dump_size = dump.stat().st_size
                dump.unlink()
                seconds, peak, stdout = timed(drgui(home, "--json", "backup"), env)
                drgui_times.append(seconds)
                rss.append(peak)
                result = json.loads(stdout)
                # The plan's folder at the destination: <dest>/<plan id>/snapshots/<id>.
                [snapshot] = dest.glob(f"*/snapshots/{result['snapshot']}")
                snapshot_size = sum(p.stat().st_size for p in snapshot.rglob("*") if p.is_file())
                print(
                    f"  run {run + 1}: pg_dump {pg_times[-1]:.2f} s, drgui backup {seconds:.2f} s, "
                    f"peak RSS {mb(peak)}",
                    file=sys.stderr,
                    flush=True,
                )
    pg_median, drgui_median = statistics.median(pg_times), statistics.median(drgui_times)
    version = ".".join(map(str, tool_version(pg_dump)))
    print(f"database on disk:            {mb(db_size)} (PostgreSQL {cluster.version[0]}, pg_dump {version})")
    print(f"pg_dump -Fc -Z0 output:      {mb(dump_size)}")
    print(f"drgui snapshot (zstd + age): {mb(snapshot_size)}")
    print(f"pg_dump -Fc -Z0 median:      {pg_median:.2f} s  {pg_times}")
    print(f"drgui backup median:         {drgui_median:.2f} s  {drgui_times}")
    print(f"ratio drgui / pg_dump:       {drgui_median / pg_median:.2f}")
    print(f"drgui peak RSS (max of runs): {mb(max(rss))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
