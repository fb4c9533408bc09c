"""Benchmark: three daily backups with drgui against `restic backup` of the same data, in the same run.

Day 1 backs up --files files of --size bytes (random, incompressible); day 2 changes nothing; day 3 adds
1% new files, edits one, deletes one and renames one. For each day: wall time and bytes added to the
destination (drgui) or repository (restic); then what each stores after three days, and the ratios.

Two scenarios:
- folder: drgui's folder source against `restic backup DIR`.
- s3: a bucket on moto (ThreadedMotoServer on loopback, in this process). drgui's S3 source against what
  a restic user runs, since restic cannot read a bucket: mirror it to a directory the way `aws s3 sync`
  does (download only keys whose size or ETag changed, delete what is gone; boto3, same endpoint) and
  `restic backup` the mirror. The baseline's time is mirror + restic; its local mirror (a full extra
  copy of the bucket on disk) is not counted in its storage.
restic is skipped with a message when it is not installed. Needs a keyring: run under tools/with-keyring.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PASSPHRASE = "bench orbit velvet cactus harbor lantern"
KEY_ID, SECRET = "AKIABENCHINCREMENTAL", "bench/Secret0123456789abcdefEXAMPLEkey"
DAYS = ("day 1", "day 2 (unchanged)", "day 3 (+1%, 1 edited, 1 deleted, 1 renamed)")


@dataclass
class Tool:
    """One contender: how to back up once, and how many bytes it stores."""

    name: str
    backup: Callable[[], None]
    stored: Callable[[], int]
    days: list[tuple[float, int]] = field(default_factory=list)  # (seconds, bytes added)

    def run_day(self) -> None:
        before = self.stored()
        started = time.perf_counter()
        self.backup()
        self.days.append((time.perf_counter() - started, self.stored() - before))


def parse_size(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]i?B?|B)?\s*", text, re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (e.g. 1MiB, 64KiB, 4096)")
    unit = (match.group(2) or "B").upper().rstrip("B").replace("I", "")
    return int(float(match.group(1)) * {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[unit])


def tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def run(argv: list[str], env: dict[str, str]) -> str:
    process = subprocess.run(argv, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if process.returncode != 0:
        raise SystemExit(
            f"{' '.join(argv[:4])} ... failed (exit {process.returncode}):\n{process.stderr[-3000:]}"
        )
    return process.stdout


def mb(count: float) -> str:
    return f"{count / 1e6:,.0f} MB"


# --- the contenders ------------------------------------------------------------------------------------


def drgui_tool(work: Path, env: dict[str, str], source_args: list[str]) -> Tool:
    home, dest = work / "drgui-home", work / "drgui-dest"
    dest.mkdir()
    passphrase = work / "passphrase"
    passphrase.write_text(PASSPHRASE)
    cli = [sys.executable, "-m", "drgui", "--home", str(home)]
    run([*cli, "init", "--name", "Bench", "--passphrase-file", str(passphrase)], env)
    run([*cli, "dest", "add", "local", "local", "--path", str(dest)], env)
    run([*cli, "source", "add", "data", *source_args], env)

    def backup() -> None:
        result = json.loads(run([*cli, "--json", "backup"], env))
        if not result.get("ok"):
            raise SystemExit(f"drgui backup failed: {result}")

    return Tool("drgui", backup, lambda: tree_size(dest))


def restic_tool(
    work: Path, env: dict[str, str], target: Path, before: Callable[[], None] | None = None
) -> Tool:
    repo = work / "restic-repo"
    restic_env = {
        **env,
        "RESTIC_REPOSITORY": str(repo),
        "RESTIC_PASSWORD": PASSPHRASE,
        "RESTIC_CACHE_DIR": str(work / "restic-cache"),
    }
    run(["restic", "init", "--quiet"], restic_env)

    def backup() -> None:
        if before is not None:
            before()
        run(["restic", "backup", "--quiet", str(target)], restic_env)

    return Tool("restic", backup, lambda: tree_size(repo))


# --- the scenarios -------------------------------------------------------------------------------------


def folder_scenario(work: Path, env: dict[str, str], files: int, size: int, with_restic: bool) -> list[Tool]:
    data = work / "data"
    data.mkdir()
    for number in range(files):
        (data / f"file{number:05d}.bin").write_bytes(os.urandom(size))
    tools = [drgui_tool(work, env, ["folder", "--path", str(data)])]
    if with_restic:
        tools.append(restic_tool(work, env, data))

    def day3() -> None:
        for number in range(max(1, files // 100)):
            (data / f"new{number:05d}.bin").write_bytes(os.urandom(size))
        (data / "file00001.bin").write_bytes(os.urandom(size))
        (data / "file00002.bin").unlink()
        (data / "file00003.bin").rename(data / "renamed.bin")

    run_days(tools, day3)
    return tools


def s3_scenario(work: Path, env: dict[str, str], files: int, size: int, with_restic: bool) -> list[Tool]:
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        env = {
            **env,
            "AWS_ACCESS_KEY_ID": KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        env |= {"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
        client = boto3.session.Session(
            aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET, region_name="us-east-1"
        ).client("s3", endpoint_url=endpoint)
        bucket = "bench-uploads"
        client.create_bucket(Bucket=bucket)
        for number in range(files):
            client.put_object(Bucket=bucket, Key=f"uploads/file{number:05d}.bin", Body=os.urandom(size))
        source = ["s3", "--bucket", bucket, "--endpoint-url", endpoint, "--region", "us-east-1"]
        tools = [drgui_tool(work, env, source)]
        if with_restic:
            mirror = work / "mirror"
            mirror.mkdir()
            tools.append(restic_tool(work, env, mirror, before=lambda: sync_bucket(client, bucket, mirror)))

        def day3() -> None:
            for number in range(max(1, files // 100)):
                client.put_object(Bucket=bucket, Key=f"uploads/new{number:05d}.bin", Body=os.urandom(size))
            client.put_object(Bucket=bucket, Key="uploads/file00001.bin", Body=os.urandom(size))
            client.delete_object(Bucket=bucket, Key="uploads/file00002.bin")
            client.copy_object(
                Bucket=bucket,
                Key="uploads/renamed.bin",
                CopySource={"Bucket": bucket, "Key": "uploads/file00003.bin"},
            )
            client.delete_object(Bucket=bucket, Key="uploads/file00003.bin")

        run_days(tools, day3)
        return tools
    finally:
        server.stop()


def sync_bucket(client: Any, bucket: str, mirror: Path) -> None:
    """What `aws s3 sync s3://bucket dir --delete` does: fetch new or changed keys, remove gone ones."""
    state_file = mirror.parent / "mirror-state.json"
    state: dict[str, list[Any]] = json.loads(state_file.read_text()) if state_file.exists() else {}
    seen: dict[str, list[Any]] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            key, signature = item["Key"], [item["Size"], item["ETag"]]
            seen[key] = signature
            if state.get(key) != signature:
                target = mirror / key
                target.parent.mkdir(parents=True, exist_ok=True)
                client.download_file(bucket, key, str(target))
    for key in set(state) - set(seen):
        (mirror / key).unlink(missing_ok=True)
    state_file.write_text(json.dumps(seen))


def run_days(tools: list[Tool], day3: Callable[[], None]) -> None:
    for label in DAYS:
        if label.startswith("day 3"):
            day3()
        for tool in tools:
            tool.run_day()
            seconds, added = tool.days[-1]
            print(f"  {label[:5]} {tool.name:<6} {seconds:6.2f} s  +{mb(added)}", file=sys.stderr, flush=True)


# --- the report ------------------------------------------------------------------------------------------


def report(title: str, data_bytes: int, tools: list[Tool]) -> None:
    print(f"\n### {title} ({mb(data_bytes)} of data)\n")
    print(
        "| | day 1 | day 2 (unchanged) | day 3 (+1%, 1 edited, 1 deleted, 1 renamed) | stored after 3 days |"
    )
    print("|---|---|---|---|---|")
    for tool in tools:
        (t1, a1), (t2, a2), (t3, a3) = tool.days
        print(
            f"| {tool.name} | {t1:.1f} s, +{mb(a1)} | {t2:.1f} s, +{mb(a2)} | {t3:.1f} s, +{mb(a3)} | {mb(tool.stored())} |"
        )
    drgui = tools[0]
    print(f"\ndrgui day 2 added {drgui.days[1][1] / data_bytes:.2%} of the data (target < 1%)")
    if len(tools) > 1:
        restic = tools[1]
        print(f"day 1 time, drgui / restic:     {drgui.days[0][0] / restic.days[0][0]:.2f}")
        print(f"day 2 time, drgui / restic:     {drgui.days[1][0] / restic.days[1][0]:.2f}  (target <= 1.5)")
        print(f"day 3 time, drgui / restic:     {drgui.days[2][0] / restic.days[2][0]:.2f}")
        print(f"stored after 3 days, drgui / restic: {drgui.stored() / restic.stored():.2f}  (target <= 1.1)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000, help="files (objects) on day 1 (default 1000)")
    parser.add_argument("--size", type=parse_size, default=1024**2, help="size of each, e.g. 1MiB (default)")
    parser.add_argument("--s3-files", type=int, help="objects in the bucket (default: --files)")
    parser.add_argument("--only", choices=["folder", "s3"], help="run one scenario")
    args = parser.parse_args()
    with_restic = shutil.which("restic") is not None
    if not with_restic:
        print("restic is not installed (Debian: apt install restic): measuring drgui alone.", file=sys.stderr)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PGPASS", "AWS_", "RESTIC_"))}
    env |= {"DRGUI_NO_PROMPT": "1", "DRGUI_SNAPSHOT_FORMAT": "2"}
    # An installed drgui starts from compiled bytecode; with PYTHONDONTWRITEBYTECODE (set on some CI
    # machines) every run would compile all of drgui again (about 1 s of CPU) and measure that instead.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    scenarios = [("folder", args.files, folder_scenario), ("s3", args.s3_files or args.files, s3_scenario)]
    for name, files, scenario in scenarios:
        if args.only and args.only != name:
            continue
        with tempfile.TemporaryDirectory(prefix=f"drgui-bench-incr-{name}-") as base:
            env["PYTHONPYCACHEPREFIX"] = str(Path(base) / "pycache")  # nothing written into the source tree
            print(f"{name}: {files} x {args.size:,} bytes ...", file=sys.stderr, flush=True)
            tools = scenario(Path(base), env, files, args.size, with_restic)
            title = (
                "folder" if name == "folder" else "S3 bucket on moto (baseline: sync to a mirror + restic)"
            )
            report(title, files * args.size, tools)
    return 0


if __name__ == "__main__":
    sys.exit(main())
