"""Upload throughput of S3Destination (put_file, the path snapshots take from a local copy; or --streaming,
the bounded-memory multipart writer) vs boto3's own upload_file.

Both upload the same bytes to the same moto server (HTTP on 127.0.0.1) in the same run; the figure is
the ratio of their throughputs (> 1: drgui is faster). Usage: python bench/s3.py [--size-mb 500]
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import tempfile
import time
from pathlib import Path

import boto3
from boto3.s3.transfer import TransferConfig
from moto.server import ThreadedMotoServer

from drgui.core.engine.destinations.s3 import S3Destination
from drgui.core.plan.config import DestConfig

CHUNK = 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=int, default=500)
    parser.add_argument("--part-size-mb", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--streaming",
        action="store_true",
        help="measure the streaming writer (backups to S3 only) instead of the file upload path",
    )
    args = parser.parse_args()
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket="bench")
    dest = S3Destination(
        DestConfig(
            "bench",
            "s3",
            {
                "bucket": "bench",
                "endpoint_url": endpoint,
                "credentials": "environment",
                "part_size_mb": args.part_size_mb,
                "concurrency": args.concurrency,
            },
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "snapshot.bin"
        with open(path, "wb") as handle:
            for _ in range(args.size_mb):
                handle.write(os.urandom(CHUNK))
        size = path.stat().st_size
        ours, theirs = [], []
        for round_number in range(args.rounds):
            started = time.perf_counter()
            if args.streaming:
                with open(path, "rb") as source, dest.open_write(f"ours-{round_number}.bin") as out:
                    while chunk := source.read(CHUNK):
                        out.write(chunk)
            else:
                dest.put_file(f"ours-{round_number}.bin", path)
            ours.append(time.perf_counter() - started)
            client.delete_object(Bucket="bench", Key=f"ours-{round_number}.bin")

            started = time.perf_counter()
            client.upload_file(str(path), "bench", f"boto3-{round_number}.bin", Config=TransferConfig())
            theirs.append(time.perf_counter() - started)
            client.delete_object(Bucket="bench", Key=f"boto3-{round_number}.bin")
    server.stop()
    mb = size / 1e6
    ours_rate, theirs_rate = mb / min(ours), mb / min(theirs)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"size: {mb:.0f} MB, part size {args.part_size_mb} MiB, concurrency {dest.concurrency}")
    label = "S3Destination.open_write" if args.streaming else "S3Destination.put_file"
    print(f"{label}: {ours_rate:.1f} MB/s  ({min(ours):.2f} s)")
    print(f"boto3 upload_file:        {theirs_rate:.1f} MB/s  ({min(theirs):.2f} s)")
    print(f"throughput ratio drgui/boto3: {ours_rate / theirs_rate:.2f}")
    print(f"peak RSS of the whole process (includes the moto server): {peak:.0f} MB")


if __name__ == "__main__":
    main()
