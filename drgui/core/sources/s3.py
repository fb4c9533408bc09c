"""A bucket/prefix of the product's uploads, captured as one tar stream (objects.tar.zst).

The tar is produced in a thread into a pipe, as for folders; the manifest lists every object's key,
size, ETag and sha256. Restores go into a directory (the folder restore) or into another bucket/prefix.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable, Generator, Iterator
from functools import cached_property
from typing import Any, BinaryIO, NoReturn

from drgui.core.config import SourceConfig
from drgui.core.destinations.base import Destination
from drgui.core.errors import DestinationError, SourceError, UsageError
from drgui.core.extract import decrypted_pipe
from drgui.core.progress import CancelToken, ProgressCallback, ignore_progress
from drgui.core.restore_result import RestoreResult
from drgui.core.s3common import describe_location, error_code, make_client, raise_s3_error
from drgui.core.snapshot import find_part, safety_source_name
from drgui.core.sources.base import CaptureContext, PartStream, Source, tar_part_stream
from drgui.core.sources.folder import _HashingFile

ENCODED_DIR = ".drgui-s3-keys"  # members for keys that cannot be a plain relative path


def _plain(relative: str) -> bool:
    parts = relative.split("/")
    return (
        bool(relative)
        and "\x00" not in relative
        and parts[0] != ENCODED_DIR
        and all(part not in ("", ".", "..") for part in parts)
    )


def member_names(relatives: list[str]) -> dict[str, str]:
    """The tar member name of each object (its key after the prefix): the key itself when it is a plain
    relative path that no other key uses as a directory; else `.drgui-s3-keys/<n>` (the manifest's
    `object` gives the key back). So keys with `//`, a leading `/`, `.` or `..` segments, a trailing
    `/` ("folder" objects) or both `a` and `a/b` restore exactly, under extract.py's rules."""
    directories = {
        "/".join(parts[:depth])
        for parts in (r.split("/") for r in relatives)
        for depth in range(1, len(parts))
    }
    names: dict[str, str] = {}
    for relative in relatives:
        plain = _plain(relative) and relative not in directories
        names[relative] = relative if plain else f"{ENCODED_DIR}/{len(names):08d}"
    return names


class S3Source(Source):
    kind = "s3"

    @property
    def bucket(self) -> str:
        return str(self.config.settings["bucket"])

    @property
    def prefix(self) -> str:
        return str(self.config.settings.get("prefix", "")).strip("/")

    @cached_property
    def client(self) -> Any:
        return make_client(self.config.settings, self.store, "source", self.name)

    def describe(self) -> str:
        return describe_location(self.config.settings)

    def _fail(self, error: BaseException, action: str) -> NoReturn:
        try:
            raise_s3_error(error, f"S3 source '{self.name}'", self.bucket, action)
        except DestinationError as translated:
            raise SourceError(translated.message, translated.hint) from None

    def preflight(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.list_objects_v2(Bucket=self.bucket, Prefix=self._list_prefix, MaxKeys=1)
        except (ClientError, BotoCoreError) as error:
            self._fail(error, "list")

    @property
    def _list_prefix(self) -> str:
        return self.prefix + "/" if self.prefix else ""

    def objects(self) -> Iterator[dict[str, Any]]:
        from botocore.exceptions import BotoCoreError, ClientError

        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._list_prefix
        )
        try:
            for page in pages:
                yield from page.get("Contents", [])
        except (ClientError, BotoCoreError) as error:
            self._fail(error, "list")

    def _write_tar(
        self, out: BinaryIO, files: list[dict[str, Any]], cancel: CancelToken, ctx: CaptureContext
    ) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        listing = list(self.objects())
        endpoint = str(self.config.settings.get("endpoint_url") or "")
        for (where, bucket, prefix), what in ctx.never_capture_keys.items():
            if (where, bucket) == (endpoint, self.bucket) and any(
                i["Key"].startswith(prefix) for i in listing
            ):
                listing = [item for item in listing if not item["Key"].startswith(prefix)]
                ctx.warnings.append(f"s3://{bucket}/{prefix}: skipped, it is {what} (its own backups)")
        names = member_names([item["Key"][len(self._list_prefix) :] for item in listing])
        # (an empty key after the prefix is the prefix's own "folder" placeholder, skipped below)
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for item in listing:
                cancel.check()
                key = item["Key"]
                relative = key[len(self._list_prefix) :]
                if not relative:
                    continue  # the prefix's own "folder" placeholder
                try:
                    response = self.client.get_object(Bucket=self.bucket, Key=key, IfMatch=item["ETag"])
                except (ClientError, BotoCoreError) as error:
                    if error_code(error) in ("NoSuchKey", "PreconditionFailed", "412"):
                        continue  # deleted or replaced since the listing: the next run takes the new one
                    self._fail(error, f"read {key}")
                info = tarfile.TarInfo(names[relative])
                info.size = int(response["ContentLength"])
                info.mtime = int(item["LastModified"].timestamp())
                info.mode = 0o644
                hashing = _HashingFile(response["Body"])
                try:
                    tar.addfile(info, hashing)
                finally:
                    response["Body"].close()
                files.append(
                    {
                        "path": info.name,
                        "key": key,
                        "object": relative,
                        "size": info.size,
                        "mtime": info.mtime,
                        "etag": item["ETag"].strip('"'),
                        "sha256": hashing.digest.hexdigest(),
                    }
                )

    def capture(self, ctx: CaptureContext) -> Generator[PartStream, None, None]:
        files: list[dict[str, Any]] = []
        yield from tar_part_stream(
            "objects.tar.zst",
            f"S3 source '{self.name}'",
            lambda out: self._write_tar(out, files, ctx.cancel, ctx),
        )
        ctx.manifest.update(
            {
                "bucket": self.bucket,
                "prefix": self.prefix,
                "endpoint_url": self.config.settings.get("endpoint_url"),
                "files": files,
                "file_count": len(files),
                "bytes": sum(f["size"] for f in files),
            }
        )


def refuse_live_prefix(entry: dict[str, Any], to_bucket: str, to_prefix: str, overwrite: bool) -> None:
    """The source's own live bucket/prefix is never a restore target without --overwrite."""
    if (to_bucket, to_prefix.strip("/")) == (entry.get("bucket"), entry.get("prefix", "")) and not overwrite:
        raise UsageError(
            f"Refused: s3://{to_bucket}/{to_prefix} is the live bucket/prefix of source '{entry['name']}'.",
            hint="Restore into another bucket or prefix (--to-prefix restored/), check it, then switch; "
            "or pass --overwrite after careful thought.",
        )


def restore_to_bucket(
    source: S3Source,
    tar_stream: BinaryIO,
    entry: dict[str, Any],
    to_bucket: str,
    to_prefix: str,
    *,
    overwrite: bool = False,
) -> list[dict[str, Any]]:
    """Upload every object of the snapshot's tar to to_bucket/to_prefix; checks compare sha256 as sent."""

    from boto3.s3.transfer import TransferConfig
    from botocore.exceptions import BotoCoreError, ClientError

    to_prefix = to_prefix.strip("/")
    refuse_live_prefix(entry, to_bucket, to_prefix, overwrite)
    expected = {f["path"]: f["sha256"] for f in entry.get("files", []) if "sha256" in f}
    objects = {f["path"]: f.get("object", f["path"]) for f in entry.get("files", [])}
    bad: list[str] = []
    count = 0
    config = TransferConfig(multipart_chunksize=64 * 1024 * 1024, max_concurrency=2)
    with tarfile.open(fileobj=tar_stream, mode="r|") as tar:
        for member in tar:
            if not member.isreg():
                continue
            handle = tar.extractfile(member)
            assert handle is not None
            hashing = _HashingFile(handle)
            relative = objects.get(member.name, member.name)
            key = f"{to_prefix}/{relative}" if to_prefix else relative
            try:
                source.client.upload_fileobj(hashing, to_bucket, key, Config=config)
            except (ClientError, BotoCoreError) as error:
                raise_s3_error(error, f"Restore of S3 source '{entry['name']}'", to_bucket, f"write {key}")
            count += 1
            if expected.get(member.name) != hashing.digest.hexdigest():
                bad.append(member.name)
    detail = (
        f"{count} objects uploaded, sha256 match" if not bad else f"{len(bad)} differ: {', '.join(bad[:5])}"
    )
    if count != len(expected):
        bad.append("count")
        detail += f"; {count} of {len(expected)} objects restored"
    return [{"name": "objects", "ok": not bad, "detail": detail}]


def restore_bucket(
    source: Source,
    dest: Destination,
    snapshot_id: str,
    entry: dict[str, Any],
    to_bucket: str,
    to_prefix: str,
    *,
    identity: str,
    overwrite: bool = False,
    cancel: CancelToken | None = None,
    progress: ProgressCallback | None = None,
    safety_snapshot: Callable[[S3Source, str], str],
) -> RestoreResult:
    """`restore ID --source NAME --to-bucket B [--to-prefix P]`: decrypt the tar and upload its objects.

    A non-empty target is refused, or with `overwrite` first kept by `safety_snapshot(target, where)`
    (the pre-restore safety snapshot of that bucket prefix; it returns its id)."""
    cancel = cancel or CancelToken()
    if not isinstance(source, S3Source):
        raise UsageError(f"Source '{entry['name']}' is not an S3 source in this plan.")
    target = S3Source(
        SourceConfig(
            safety_source_name(entry["name"]),
            "s3",
            {**source.config.settings, "bucket": to_bucket, "prefix": to_prefix},
        ),
        None,
    )
    refuse_live_prefix(entry, to_bucket, to_prefix, overwrite)
    target.client = source.client  # the same credentials, another bucket/prefix
    where = f"s3://{to_bucket}/{target.prefix}"
    safety = None
    if next(iter(target.objects()), None) is not None:  # never replace objects without a safety copy
        if not overwrite:
            raise UsageError(
                f"Refused: {where} is not empty.",
                hint="Restore into an empty bucket or prefix (or pass --overwrite: drgui first takes a "
                "safety snapshot of what is there).",
            )
        safety = safety_snapshot(target, where)
    part = find_part(entry, "objects.tar.zst")
    if part is None:
        raise SourceError(f"The snapshot has no objects for source '{entry['name']}'.")
    with decrypted_pipe(dest, snapshot_id, entry, part, identity, cancel, progress or ignore_progress) as (
        reader,
        _errors,
    ):
        checks = restore_to_bucket(source, reader, entry, to_bucket, to_prefix, overwrite=overwrite)
    result = RestoreResult(snapshot_id, entry["name"], f"s3://{to_bucket}/{to_prefix.strip('/')}")
    result.safety_snapshot = safety
    result.checks.extend(checks)
    return result
