"""A bucket/prefix of the product's uploads, captured as one tar stream (objects.tar.zst).

The tar is produced in a thread into a pipe, as for folders; the manifest lists every object's key,
size, ETag and sha256. Restores go into a directory (the folder restore) or into another bucket/prefix.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import tarfile
import tempfile
from collections.abc import Callable, Generator, Iterator
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import IO, Any, BinaryIO, NoReturn

from drgui.core.engine import kinds, s3common
from drgui.core.engine.destinations.base import CHUNK, Destination
from drgui.core.engine.extract import check_archive, check_packed_tree, decrypted_pipe, index_sha256_of
from drgui.core.engine.manifest import FILE_LIST_PART, FileEntry
from drgui.core.engine.packs import SMALL_FILE, PackContext
from drgui.core.engine.restore_result import RestoreResult
from drgui.core.engine.s3common import describe_location, error_code, make_client, raise_s3_error
from drgui.core.engine.scratch import STAGING_MARK
from drgui.core.engine.snapshot import find_part, safety_source_name
from drgui.core.engine.sources.base import CaptureContext, PartStream, Source, tar_part_stream
from drgui.core.engine.sources.folder import Throttle, _HashingFile, reuse_unchanged, store_content
from drgui.core.errors import DestinationError, DrguiError, OperationFailed, SourceError, UsageError
from drgui.core.plan.config import SourceConfig
from drgui.core.progress import CancelToken, Progress, ProgressCallback, ignore_progress

ENCODED_DIR = ".drgui-s3-keys"  # members for keys that cannot be a plain relative path
STAGING_NAME = re.compile(re.escape(STAGING_MARK) + r"(\d{8}T\d{6}Z)-[0-9a-f]{8}")  # restore_bucket's staging
STALE_STAGING = timedelta(hours=1)  # older than this, a staging prefix is a killed restore's: removed


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

    def holds_objects(self) -> bool:
        """Whether the prefix holds anything other than restores' staging prefixes."""
        return any(staging_name(i["Key"][len(self._list_prefix) :]) is None for i in self.objects())

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

    def _listing(self, ctx: CaptureContext) -> list[dict[str, Any]]:
        """The objects to capture: drgui's own destinations and restores' staging prefixes left out
        (each said in the warnings)."""
        listing = list(self.objects())
        endpoint = str(self.config.settings.get("endpoint_url") or "")
        for (where, bucket, prefix), what in ctx.never_capture_keys.items():
            if (where, bucket) == (endpoint, self.bucket) and any(
                i["Key"].startswith(prefix) for i in listing
            ):
                listing = [item for item in listing if not item["Key"].startswith(prefix)]
                ctx.warnings.append(f"s3://{bucket}/{prefix}: skipped, it is {what} (its own backups)")
        staged = {staging_name(i["Key"][len(self._list_prefix) :]) for i in listing} - {None}
        for name in sorted(n for n in staged if n):
            ctx.warnings.append(
                f"s3://{self.bucket}/{self._list_prefix}{name}/: skipped, a restore's staging prefix"
            )
        return [i for i in listing if staging_name(i["Key"][len(self._list_prefix) :]) is None]

    def _objects(self, ctx: CaptureContext) -> list[tuple[dict[str, Any], str, str]]:
        """The listed objects as (listing item, key below the prefix, member name), without the prefix's
        own "folder" placeholder (an empty key after the prefix)."""
        listing = self._listing(ctx)
        names = member_names([item["Key"][len(self._list_prefix) :] for item in listing])
        relatives = [(item, item["Key"][len(self._list_prefix) :]) for item in listing]
        return [(item, relative, names[relative]) for item, relative in relatives if relative]

    def _get_unless_gone(self, item: dict[str, Any]) -> dict[str, Any] | None:
        """GetObject of a listed object, or None when it was deleted or replaced since the listing (the
        next run takes the new one)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response: dict[str, Any] = self.client.get_object(
                Bucket=self.bucket, Key=item["Key"], IfMatch=item["ETag"]
            )
            return response
        except (ClientError, BotoCoreError) as error:
            if error_code(error) in ("NoSuchKey", "PreconditionFailed", "412"):
                return None
            self._fail(error, f"read {item['Key']}")

    def _write_tar(
        self, out: BinaryIO, files: list[dict[str, Any]], cancel: CancelToken, ctx: CaptureContext
    ) -> None:
        objects = self._objects(ctx)
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for item, relative, name in objects:
                cancel.check()
                key = item["Key"]
                response = self._get_unless_gone(item)
                if response is None:
                    continue
                info = tarfile.TarInfo(name)
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

    def _scan(self, out: BinaryIO, ctx: CaptureContext, packs: PackContext, totals: dict[str, int]) -> None:
        """Format 2: the file list into `out`. An object with the same key, size and ETag as in the parent
        snapshot is referenced without a GetObject; any other is downloaded once (spooled to the home's
        tmp dir when large), hashed, and stored unless its content is already at the destination."""
        from botocore.exceptions import BotoCoreError, ClientError

        objects = self._objects(ctx)
        counts, throttle, cancel = packs.counts, Throttle(packs), packs.writer.cancel
        for item, relative, name in objects:
            cancel.check()
            key = item["Key"]
            etag, size = str(item["ETag"]).strip('"'), int(item["Size"])
            entry = FileEntry(
                name,
                "file",
                mode=0o644,
                mtime=int(item["LastModified"].timestamp()),
                key=key,
                object=relative,
                etag=etag,
            )
            counts.files_scanned += 1
            counts.bytes_scanned += size
            parent = None if packs.force_read else packs.index.parent_entry(relative)
            if (
                parent is not None
                and (parent.key, parent.size, parent.etag) == (key, size, etag)
                and packs.reusable(parent.pack)
            ):
                reuse_unchanged(packs, entry, parent, size)
            else:
                response = self._get_unless_gone(item)
                if response is None:
                    continue
                with tempfile.SpooledTemporaryFile(SMALL_FILE, mode="w+b", dir=str(ctx.workdir)) as spool:
                    try:
                        while chunk := response["Body"].read(CHUNK):
                            cancel.check()
                            spool.write(chunk)
                    except (ClientError, BotoCoreError, OSError) as error:
                        self._fail(error, f"read {key}")
                    finally:
                        response["Body"].close()
                    length = spool.tell()
                    spool.seek(0)
                    entry.size, entry.sha256, entry.pack, entry.member = store_content(
                        packs,
                        spool,
                        length,
                        entry.mtime,
                        f"s3://{self.bucket}/{key}",
                    )
            packs.referenced.add(str(entry.pack))
            totals["files"] += 1
            totals["bytes"] += int(entry.size or 0)
            out.write(entry.line())
            packs.record(entry)
            throttle.tick()
        throttle.tick(final=True)

    def capture(self, ctx: CaptureContext) -> Generator[PartStream, None, None]:
        if ctx.packs is not None:
            packs = ctx.packs
            totals = {"files": 0, "bytes": 0}
            yield from tar_part_stream(
                FILE_LIST_PART, f"S3 source '{self.name}'", lambda out: self._scan(out, ctx, packs, totals)
            )
            ctx.manifest.update(
                {
                    "format": 2,
                    "bucket": self.bucket,
                    "prefix": self.prefix,
                    "endpoint_url": self.config.settings.get("endpoint_url"),
                    "files_part": FILE_LIST_PART,
                    "file_count": totals["files"],
                    "bytes": totals["bytes"],
                    "scan": packs.counts.to_json(),
                }
            )
            return
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


class _CountingFile(_HashingFile):
    def __init__(self, handle: IO[bytes]) -> None:
        super().__init__(handle)
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = super().read(size)
        self.size += len(data)
        return data


class _UploadFailed(Exception):
    """An upload into the staging prefix failed: the restore stops (not one problem among members)."""

    def __init__(self, error: DrguiError) -> None:
        super().__init__(error.message)
        self.error = error


class StagingWriter:
    """extract.py's TreeWriter for a bucket: each object goes to `<staging>/<its key>` in the target bucket,
    hashed as sent. S3 holds no directories or links (an S3 manifest lists neither: check_archive refuses
    them before they get here)."""

    def __init__(self, client: Any, bucket: str, staging: str, objects: dict[str, str], what: str) -> None:
        from boto3.s3.transfer import TransferConfig

        self.client = client
        self.bucket = bucket
        self.staging = staging  # the staging prefix (no trailing `/`)
        self.objects = objects  # tar member -> key after the prefix (the manifest's `object`)
        self.what = what
        self.staged: list[str] = []  # the relative keys (after the target prefix) staged, in tar order
        self.config = TransferConfig(multipart_chunksize=64 * 1024 * 1024, max_concurrency=2)

    def directory(self, path: str) -> None:
        pass

    def file(self, path: str, data: IO[bytes], mode: int, mtime: float) -> tuple[int, str]:
        from botocore.exceptions import BotoCoreError, ClientError

        relative = self.objects.get(path, path)
        key = f"{self.staging}/{relative}"
        hashing = _CountingFile(data)
        try:
            self.client.upload_fileobj(hashing, self.bucket, key, Config=self.config)
        except (ClientError, BotoCoreError) as error:
            self._write_failed(error, key)
        self.staged.append(relative)
        return hashing.size, hashing.digest.hexdigest()

    def symlink(self, path: str, target: str, mtime: float) -> None:
        raise OperationFailed(f"'{path}': a link cannot be an S3 object")

    def _write_failed(self, error: BaseException, key: str) -> NoReturn:
        try:
            raise_s3_error(error, self.what, self.bucket, f"write {key}")
        except DrguiError as translated:
            raise _UploadFailed(translated) from None

    def register(self, item: FileEntry) -> None:
        """Format 2: the file list gives each tree name's object key (check_packed_tree calls this)."""
        if item.object is not None:
            self.objects[item.path] = item.object

    def duplicate(self, path: str, written: str, mode: int, mtime: float) -> None:
        """Format 2: two objects with one content; the second is a server-side copy of the first."""
        from botocore.exceptions import BotoCoreError, ClientError

        relative, source = self.objects.get(path, path), self.objects.get(written, written)
        key = f"{self.staging}/{relative}"
        try:
            self.client.copy(
                {"Bucket": self.bucket, "Key": f"{self.staging}/{source}"},
                self.bucket,
                key,
                Config=self.config,
            )
        except (ClientError, BotoCoreError) as error:
            self._write_failed(error, key)
        self.staged.append(relative)


def staging_name(relative: str) -> str | None:
    """The staging prefix (below the target prefix) that a key after the prefix lies in, if any."""
    first = relative.split("/", 1)[0]
    return first if STAGING_NAME.fullmatch(first) and "/" in relative else None


def new_staging_name(now: datetime) -> str:
    return f"{STAGING_MARK}{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def staging_started(name: str) -> datetime:
    match = STAGING_NAME.fullmatch(name)
    assert match is not None
    return datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def _remove_prefix(client: Any, bucket: str, prefix: str) -> None:
    """Every object and unfinished multipart upload whose key starts with `prefix` (ends with `/`)."""
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    for page in pages:
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            response = client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
            if response.get("Errors"):
                first = response["Errors"][0]
                raise DestinationError(
                    f"Cannot delete {first['Key']} in bucket '{bucket}': {first.get('Message', first['Code'])}."
                )
    for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix):
        for upload in page.get("Uploads", []):
            client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])


def sweep_stale_staging(client: Any, bucket: str, base: str, now: datetime) -> list[str]:
    """Remove the staging prefixes directly below `base` (the target prefix, with its `/`) that a killed
    restore left, started more than STALE_STAGING ago; a younger one may be a restore under way. Returns
    a warning per prefix removed."""
    names: set[str] = set()
    listing = client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=base + STAGING_MARK, Delimiter="/"
    )
    for page in listing:
        names.update(p["Prefix"][len(base) :].rstrip("/") for p in page.get("CommonPrefixes", []))
    uploads = client.get_paginator("list_multipart_uploads").paginate(
        Bucket=bucket, Prefix=base + STAGING_MARK
    )
    for page in uploads:
        names.update(u["Key"][len(base) :].split("/", 1)[0] for u in page.get("Uploads", []))
    warnings = []
    for name in sorted(names):
        if STAGING_NAME.fullmatch(name) and now - staging_started(name) > STALE_STAGING:
            _remove_prefix(client, bucket, f"{base}{name}/")
            warnings.append(
                f"s3://{bucket}/{base}{name}: removed, the staging prefix of an earlier restore that did not "
                "finish (killed or cut off)"
            )
    return warnings


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
    """`restore ID --source NAME --to-bucket B [--to-prefix P]`, the bucket's counterpart of restore_folder.

    Every object is first uploaded below a staging prefix inside the target (`P/.drgui-restore-<UTC
    start>-<random>/<key>`) while the part is checked: its ciphertext against the index, its plaintext
    and every object against the manifest (extract.check_archive's rules). Only when all matched is each
    staged object copied server-side to its final key `P/<key>`, then the staging prefix is deleted. On
    any problem the staging prefix is deleted and the target prefix is as it was. A non-empty target is
    refused, or with `overwrite` first kept by `safety_snapshot(target, where)` once the checks passed
    (the pre-restore safety snapshot of that prefix; it returns its id). Staging prefixes left by a killed
    restore into the same prefix, over an hour old, are removed first (said in the result's warnings);
    a backup of an S3 source never captures a staging prefix."""
    from botocore.exceptions import BotoCoreError, ClientError

    cancel = cancel or CancelToken()
    progress = progress or ignore_progress
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
    target.client = client = source.client  # the same credentials, another bucket/prefix
    where = f"s3://{to_bucket}/{target.prefix}"
    what = f"Restore of S3 source '{entry['name']}'"
    if target.holds_objects() and not overwrite:  # never replace objects without a safety copy
        raise UsageError(
            f"Refused: {where} is not empty.",
            hint="Restore into an empty bucket or prefix (or pass --overwrite: drgui first takes a "
            "safety snapshot of what is there).",
        )
    packed = entry.get("format") == 2
    part = find_part(entry, "objects.tar.zst")
    if part is None and not packed:
        raise SourceError(f"The snapshot has no objects for source '{entry['name']}'.")
    index_sha256 = index_sha256_of(dest, snapshot_id, part) if part is not None else ""
    result = RestoreResult(snapshot_id, entry["name"], f"s3://{to_bucket}/{target.prefix}")
    base = target._list_prefix
    now = datetime.now(UTC)
    try:
        result.warnings.extend(sweep_stale_staging(client, to_bucket, base, now))
        staging = base + new_staging_name(now)
        objects = {f["path"]: f.get("object", f["path"]) for f in entry.get("files", [])}
        writer = StagingWriter(client, to_bucket, staging, objects, what)
        try:
            hint = "Restore an older snapshot, or from another destination with --dest."
            try:
                if packed:
                    with tempfile.TemporaryDirectory(prefix="drgui-restore-") as workdir:
                        report = check_packed_tree(
                            dest, snapshot_id, entry, identity, writer, cancel, Path(workdir), progress
                        )
                else:
                    assert part is not None
                    with decrypted_pipe(
                        dest, snapshot_id, entry, part, identity, cancel, progress, index_sha256=index_sha256
                    ) as (reader, _errors):
                        report = check_archive(reader, entry, writer, cancel, part["path"])
                problems = report.problems
            except _UploadFailed as failed:
                problems, hint = [failed.error.message], failed.error.hint or hint
            except OperationFailed as error:
                problems, hint = [error.message], error.hint or hint
            if problems:
                raise OperationFailed(
                    "Not restored, the target is unchanged: " + "; ".join(problems), hint=hint
                )
            cancel.check()
            if target.holds_objects():
                result.safety_snapshot = safety_snapshot(target, where)
            progress(Progress("restore", entry["name"], f"Moving {len(writer.staged)} objects into {where}"))
            _move_staged(client, to_bucket, staging, base, writer, what)
        except BaseException:
            with contextlib.suppress(ClientError, BotoCoreError, DrguiError):
                _remove_prefix(client, to_bucket, staging + "/")
            raise
        try:
            _remove_prefix(client, to_bucket, staging + "/")
        except (ClientError, BotoCoreError, DrguiError):
            result.warnings.append(
                f"s3://{to_bucket}/{staging}/: the staging prefix could not be deleted; the next restore "
                "into this prefix removes it after an hour, or delete it yourself"
            )
    except (ClientError, BotoCoreError) as error:
        raise_s3_error(error, what, to_bucket, f"write below {base or 'the bucket root'}")
    result.checks.append(
        {
            "name": "objects",
            "ok": True,
            "detail": f"{report.counts['file']} objects checked against the manifest (sha256), then restored",
        }
    )
    return result


def _move_staged(client: Any, bucket: str, staging: str, base: str, writer: StagingWriter, what: str) -> None:
    """Server-side copy of every staged object to its final key (boto3's managed copy: multipart for large
    objects). Not cancellable: once objects are being replaced, all of them are."""
    from botocore.exceptions import BotoCoreError, ClientError

    for done, relative in enumerate(writer.staged):
        final = f"{base}{relative}"
        try:
            client.copy(
                {"Bucket": bucket, "Key": f"{staging}/{relative}"}, bucket, final, Config=writer.config
            )
        except (ClientError, BotoCoreError) as error:
            try:
                raise_s3_error(error, what, bucket, f"write {final}")
            except DrguiError as translated:
                raise type(translated)(
                    f"{translated.message} ({done} of {len(writer.staged)} objects were moved into place; "
                    "the snapshot still holds them all)",
                    translated.hint,
                ) from None


KIND = kinds.Kind(
    name="s3",
    role="source",
    label="S3 bucket",
    description="a bucket/prefix of the product's uploads: every object with its sha256",
    settings=(*s3common.S3_LOCATION_SETTINGS, *s3common.S3_CREDENTIAL_SETTINGS),
    opener=S3Source,
    build=s3common.build_s3,
    to_values=s3common.s3_values,
    derived=s3common.S3_DERIVED,
    restore_as=kinds.RESTORE_TREE,
    restore_to_bucket=True,
    order=3,
)
