"""An S3 bucket/prefix (AWS or any S3-compatible endpoint).

Objects are written with bounded-memory multipart uploads (an aborted upload leaves nothing behind);
reads stream and resume with a ranged GET when a connection drops mid-body. A snapshot's parts go first
and `index.json` last: a snapshot without index.json does not exist. Object Lock aware: a locked object
is never deleted, and new objects can get a retention period.

Append-only offsite (docs/offsite.md): on a bucket with Object Lock, `object_lock = "governance"` or
`"compliance"` gives every object drgui writes a retention date that covers the destination's retention
policy (`policy_cover_days`) plus `object_lock_margin_days`. Two keys: the everyday one (put, get, list;
no delete) used by backups, restores and drills, and an optional prune key (`PRUNE_KEY_FIELDS` in its own
keyring entries, or `PRUNE_KEY_ENV` given to `drgui prune` only) that prune opens the destination with
(`for_prune=True`). `probe_keys` says what each key can do by trying it on a test object of its own.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO

from drgui.core.engine import kinds, s3common
from drgui.core.engine.destinations.base import Destination, ObjectInfo, SnapshotWriter
from drgui.core.engine.destlock import LOCKS_DIR
from drgui.core.engine.s3common import describe_location, error_code, make_client, raise_s3_error
from drgui.core.engine.snapshot import INDEX_FILE, Index, snapshot_prefix
from drgui.core.errors import DestinationError, UsageError
from drgui.core.plan.config import DestConfig
from drgui.core.plan.secrets import SecretStore, remember
from drgui.core.timing import retention

log = logging.getLogger(__name__)

MIB = 1024 * 1024
DEFAULT_PART_SIZE_MB = 64
DEFAULT_CONCURRENCY = 2
FILE_UPLOAD_CONCURRENCY = 4  # put_file streams parts from disk, so more in flight costs no memory
MAX_RESUMES = 8
_NOT_FOUND = ("404", "NoSuchKey", "NotFound")

OBJECT_LOCK_MODES = ("governance", "compliance")
DEFAULT_LOCK_MARGIN_DAYS = 7
UNBOUNDED_COVER_DAYS = 366  # a policy that keeps some bucket without limit: lock a year at a time
PRUNE_KEY_FIELDS = ("prune_access_key_id", "prune_secret_access_key")
"""The prune key's keyring fields (beside the everyday access_key_id / secret_access_key)."""
PRUNE_KEY_ENV = ("DRGUI_PRUNE_ACCESS_KEY_ID", "DRGUI_PRUNE_SECRET_ACCESS_KEY")
"""Or the prune key given to one `drgui prune` run only (kept on the kit machine, never stored here)."""
_DENIED = ("AccessDenied", "403", "AllAccessDisabled")
_BUCKET_DAYS = {"hourly": 1 / 24, "daily": 1.0, "weekly": 7.0, "monthly": 31.0, "yearly": 366.0}


def policy_cover_days(policy: retention.Policy) -> int:
    """The longest a snapshot can be kept by `policy`, in whole days: N daily keep up to N days, N monthly
    up to 31 x N, `within 2m` up to 62; `last N` counts one backup a day. A rule without limit (-1) or an
    empty policy (keeps everything) gives UNBOUNDED_COVER_DAYS."""
    if policy.is_empty():
        return UNBOUNDED_COVER_DAYS
    days = float(policy.last)
    for name, per_bucket in _BUCKET_DAYS.items():
        count = int(getattr(policy, name))
        if count == -1 or policy.last == -1:
            return UNBOUNDED_COVER_DAYS
        days = max(days, count * per_bucket)
    for duration in policy.durations().values():
        days = max(days, duration.years * 366 + duration.months * 31 + duration.days + duration.hours / 24)
    return max(1, int(-(-days // 1)))


def _is_lock_object(key: str) -> bool:
    """A destination lock (engine/destlock.py), not backup data."""
    return key.startswith(LOCKS_DIR + "/")


class _ResumingReader(io.RawIOBase):
    """A GET body that re-requests the rest (Range + If-Match) when the connection breaks mid-stream."""

    def __init__(self, dest: S3Destination, key: str) -> None:
        super().__init__()
        self.dest = dest
        self.key = key
        self.position = 0
        self.resumes = 0
        response = dest._call(
            "read", key, lambda: dest.client.get_object(Bucket=dest.bucket, Key=dest._key(key))
        )
        self.etag = response.get("ETag")
        self.length = int(response.get("ContentLength", 0))
        self.body = response["Body"]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        memoryview(buffer)[: len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        from botocore.exceptions import BotoCoreError
        from urllib3.exceptions import HTTPError

        while True:
            try:
                data: bytes = self.body.read() if size is None or size < 0 else self.body.read(size)
            except (BotoCoreError, HTTPError, OSError) as error:
                if self.resumes >= MAX_RESUMES:
                    raise_s3_error(error, self.dest._what, self.dest.bucket, f"read {self.key}")
                self.resumes += 1
                self._reopen()
                continue
            self.position += len(data)
            if not data and self.position < self.length:
                # the server closed early without an error: resume from where we are
                if self.resumes >= MAX_RESUMES:
                    raise DestinationError(f"{self.dest._what}: {self.key} ended early after retries.")
                self.resumes += 1
                self._reopen()
                continue
            return data

    def _reopen(self) -> None:
        with contextlib.suppress(Exception):
            self.body.close()
        dest = self.dest
        extra = {"IfMatch": self.etag} if self.etag else {}
        response = dest._call(
            "read",
            self.key,
            lambda: dest.client.get_object(
                Bucket=dest.bucket, Key=dest._key(self.key), Range=f"bytes={self.position}-", **extra
            ),
        )
        self.body = response["Body"]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.body.close()
        super().close()


class _MultipartWriter:
    """write() buffers up to one part; full parts upload in a small pool (at most `concurrency` in
    flight, so memory stays near (concurrency + 1) x part size). close() completes, abort() aborts."""

    def __init__(self, dest: S3Destination, key: str) -> None:
        self.dest = dest
        self.key = key
        self.full_key = dest._key(key)
        self.buffer: list[bytes] = []
        self.buffered = 0
        self.total = 0
        self.upload_id: str | None = None
        self.parts: list[Future[dict[str, Any]]] = []
        self.slots = threading.BoundedSemaphore(dest.concurrency)
        self.pool: ThreadPoolExecutor | None = None
        self.closed = False

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:
        size = len(data)
        if not size:
            return 0
        self.buffer.append(bytes(data))
        self.buffered += size
        self.total += size
        while self.buffered >= self.dest.part_size:
            self._flush_part(self.dest.part_size)
        return size

    def flush(self) -> None:
        """Parts are sent as they fill; nothing to do here."""

    def _take(self, size: int) -> bytes:
        joined = b"".join(self.buffer)
        self.buffer = [joined[size:]] if len(joined) > size else []
        self.buffered = len(joined) - size if len(joined) > size else 0
        return joined[:size]

    def _flush_part(self, size: int) -> None:
        self._check_failed()
        if self.upload_id is None:
            response = self.dest._call(
                "start an upload to",
                self.key,
                lambda: self.dest.client.create_multipart_upload(
                    Bucket=self.dest.bucket, Key=self.full_key, **self.dest._put_args(self.key)
                ),
            )
            self.upload_id = response["UploadId"]
            self.pool = ThreadPoolExecutor(self.dest.concurrency, thread_name_prefix="drgui-s3-part")
        data = self._take(size)
        number = len(self.parts) + 1
        self.slots.acquire()
        assert self.pool is not None
        try:
            future = self.pool.submit(self._upload_part, number, data)
        except BaseException:
            self.slots.release()
            raise
        self.parts.append(future)

    def _upload_part(self, number: int, data: bytes) -> dict[str, Any]:
        try:
            response = self.dest._call(
                "upload to",
                self.key,
                lambda: self.dest.client.upload_part(
                    Bucket=self.dest.bucket,
                    Key=self.full_key,
                    UploadId=self.upload_id,
                    PartNumber=number,
                    Body=data,
                ),
            )
            return {"PartNumber": number, "ETag": response["ETag"]}
        finally:
            self.slots.release()

    def _check_failed(self) -> None:
        for future in self.parts:
            if future.done() and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]

    def close(self) -> None:
        if self.closed:
            return
        if self.upload_id is None:
            data = self._take(self.buffered)
            self.dest._call(
                "upload to",
                self.key,
                lambda: self.dest.client.put_object(
                    Bucket=self.dest.bucket, Key=self.full_key, Body=data, **self.dest._put_args(self.key)
                ),
            )
            self.closed = True
            return
        if self.buffered:
            self._flush_part(self.buffered)
        parts = [future.result() for future in self.parts]
        self._shutdown()
        try:
            self.dest._call(
                "complete an upload to",
                self.key,
                lambda: self.dest.client.complete_multipart_upload(
                    Bucket=self.dest.bucket,
                    Key=self.full_key,
                    UploadId=self.upload_id,
                    MultipartUpload={"Parts": parts},
                ),
                passthrough=("NoSuchUpload",),
            )
        except Exception as error:
            # A retried complete whose first attempt succeeded answers NoSuchUpload: accept the object
            # when it is there with exactly the bytes we sent.
            info = self.dest.stat(self.key) if error_code(error) == "NoSuchUpload" else None
            if info is None or info.size != self.total:
                raise_s3_error(error, self.dest._what, self.dest.bucket, f"complete the upload of {self.key}")
        self.closed = True

    def _shutdown(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    def abort(self) -> None:
        self._shutdown()
        self.closed = True
        if self.upload_id is not None:
            try:
                self.dest.client.abort_multipart_upload(
                    Bucket=self.dest.bucket, Key=self.full_key, UploadId=self.upload_id
                )
            except Exception as error:  # best effort: prune aborts stale uploads later
                log.warning("could not abort the multipart upload of %s: %s", self.key, type(error).__name__)


class _S3SnapshotWriter(SnapshotWriter):
    def __init__(self, dest: S3Destination, snapshot_id: str) -> None:
        super().__init__(snapshot_id)
        self.dest = dest
        self.prefix = snapshot_prefix(snapshot_id)

    def open_part(self, key: str) -> contextlib.AbstractContextManager[BinaryIO]:
        return self.dest.open_write(f"{self.prefix}/{key}")

    def put_file(self, key: str, path: Path) -> None:
        self.dest.put_file(f"{self.prefix}/{key}", path)

    def commit(self, index: Index) -> None:
        self.dest.put_bytes(f"{self.prefix}/{INDEX_FILE}", index.to_bytes())

    def abort(self) -> None:
        try:
            self.dest.remove_incomplete(self.snapshot_id)
        except DestinationError as error:  # unreachable now: prune removes the leftovers later
            log.warning("could not remove the leftovers of %s: %s", self.snapshot_id, error.message)

    def discard(self, key: str) -> None:
        """A failed part's multipart upload was aborted by open_write; a completed one is deleted."""
        full = f"{self.prefix}/{key}"
        if self.dest.exists(full):
            self.dest.delete(full)


class S3Destination(Destination):
    kind = "s3"

    def __init__(
        self,
        config: DestConfig,
        store: SecretStore | None = None,
        client: Any = None,
        scope: str = "",
        *,
        for_prune: bool = False,
    ) -> None:
        super().__init__(config, store, scope)
        self.for_prune = for_prune
        self.last_probe: list[dict[str, Any]] | None = None  # what test() found for each key
        settings = config.settings
        self.bucket = str(settings["bucket"])
        self.base_prefix = str(settings.get("prefix", "")).strip("/")
        self.prefix = "/".join(part for part in (self.base_prefix, scope) if part)
        self.part_size = int(float(settings.get("part_size_mb", DEFAULT_PART_SIZE_MB)) * MIB)
        self.concurrency = max(1, int(settings.get("concurrency", DEFAULT_CONCURRENCY)))
        if client is not None:
            self.__dict__["client"] = client

    @cached_property
    def client(self) -> Any:
        """The everyday key's client; for prune, the prune key's when one is given (else the everyday one)."""
        keys = self.prune_key() if self.for_prune else None
        return make_client(self.config.settings, self.store, "dest", self.name, keys=keys)

    # --- the two keys and Object Lock ------------------------------------------------------------
    def prune_key(self) -> tuple[str, str] | None:
        """(key id, secret) of the prune key: $DRGUI_PRUNE_ACCESS_KEY_ID/_SECRET_ACCESS_KEY for this run,
        else the prune key's own keyring entries; None when there is none (the everyday key is used)."""
        import os

        from_env = tuple(os.environ.get(name, "") for name in PRUNE_KEY_ENV)
        if all(from_env):
            remember(from_env[1])
            return from_env[0], from_env[1]
        if self.store is None:
            return None
        stored = tuple(self.store.get("dest", self.name, name) or "" for name in PRUNE_KEY_FIELDS)
        return (stored[0], stored[1]) if all(stored) else None

    def prune_key_stored(self) -> bool:
        """Whether this machine's keyring holds the prune key (then a stolen laptop holds it too)."""
        if self.store is None:
            return False
        return all(self.store.get("dest", self.name, name) for name in PRUNE_KEY_FIELDS)

    @property
    def lock_mode(self) -> str | None:
        """GOVERNANCE or COMPLIANCE when drgui sets retention on what it writes, else None."""
        settings = self.config.settings
        mode = str(settings.get("object_lock", "") or "").lower()
        if mode in OBJECT_LOCK_MODES:
            return mode.upper()
        if int(settings.get("object_lock_days", 0) or 0):  # the older fixed-days setting
            return str(settings.get("object_lock_mode", "GOVERNANCE")).upper()
        return None

    @property
    def lock_days(self) -> int:
        """Days of retention on each new object: the policy's cover plus the margin (or the fixed days)."""
        settings = self.config.settings
        fixed = int(settings.get("object_lock_days", 0) or 0)
        if fixed:
            return fixed
        policy = (
            retention.Policy.from_dict(self.config.retention)
            if self.config.retention
            else retention.DEFAULT_POLICIES["s3"]
        )
        margin = int(settings.get("object_lock_margin_days", DEFAULT_LOCK_MARGIN_DAYS))
        return policy_cover_days(policy) + max(0, margin)

    def retain_until(self, now: datetime | None = None) -> datetime | None:
        if self.lock_mode is None:
            return None
        return (now or datetime.now(UTC)) + timedelta(days=self.lock_days)

    def detect_object_lock(self, mode: str | None = None) -> str | None:
        """At `dest add`: turn retention on when the bucket has Object Lock (in `mode`, default governance);
        `mode` "off" leaves it off. Returns the mode set, or None. Refuses a mode on a bucket without it."""
        settings = self.config.settings
        wanted = (mode or "").lower()
        if wanted == "off":
            settings.pop("object_lock", None)
            return None
        if wanted and wanted not in OBJECT_LOCK_MODES:
            raise DestinationError(
                f"Unknown Object Lock mode '{mode}'.", hint="Use governance, compliance or off."
            )
        if not self.object_lock_enabled:
            if wanted:
                raise DestinationError(
                    f"{self._what}: bucket '{self.bucket}' has no Object Lock, so '{wanted}' cannot be set.",
                    hint="Object Lock is chosen when a bucket is created: create one with it "
                    "(docs/offsite.md has the steps per provider), or leave out --object-lock-mode.",
                )
            return None
        settings["object_lock"] = wanted or "governance"
        return str(settings["object_lock"])

    def _open_legacy_view(self) -> S3Destination:
        return S3Destination(self.config, self.store, client=self.client)

    @property
    def _what(self) -> str:
        return f"S3 destination '{self.name}'"

    def describe(self) -> str:
        return describe_location(self.config.settings)

    def _key(self, key: str) -> str:
        legacy = self._legacy_route(key)
        if isinstance(legacy, S3Destination):
            return legacy._key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _relative(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1 :] if self.prefix else full_key

    def _call(self, action: str, key: str, call: Callable[[], Any], passthrough: tuple[str, ...] = ()) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return call()
        except (ClientError, BotoCoreError) as error:
            if error_code(error) in passthrough:
                raise
            raise_s3_error(error, self._what, self.bucket, f"{action} {self._key(key) or '/'}")

    def _put_args(self, key: str = "") -> dict[str, Any]:
        settings = self.config.settings
        args: dict[str, Any] = {}
        if settings.get("sse"):
            args["ServerSideEncryption"] = settings["sse"]
            if settings.get("sse_kms_key_id"):
                args["SSEKMSKeyId"] = settings["sse_kms_key_id"]
        if _is_lock_object(key):
            return args  # rewritten every minute and removed when done: no retention, no storage class
        if settings.get("storage_class"):
            args["StorageClass"] = settings["storage_class"]
        until = self.retain_until()
        if until is not None:
            args["ObjectLockMode"] = self.lock_mode
            args["ObjectLockRetainUntilDate"] = until
        return args

    # --- objects -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def open_read(self, key: str) -> Iterator[BinaryIO]:
        try:
            reader = _ResumingReader(self, key)
        except DestinationError:
            if self.stat(key) is None:
                raise FileNotFoundError(f"{self._what}: {self._key(key)} does not exist") from None
            raise
        try:
            yield reader  # type: ignore[misc]
        finally:
            reader.close()

    @contextlib.contextmanager
    def open_write(self, key: str) -> Iterator[BinaryIO]:
        writer = _MultipartWriter(self, key)
        try:
            yield writer  # type: ignore[misc]
            writer.close()
        except BaseException:
            writer.abort()
            raise

    def put_file(self, key: str, path: Path) -> None:
        """Upload a local file with boto3's transfer manager: parts are read from disk as they are sent,
        so memory stays small whatever the part size; a failed multipart upload is aborted by it."""
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(
            multipart_threshold=self.part_size,
            multipart_chunksize=self.part_size,
            max_concurrency=max(self.concurrency, FILE_UPLOAD_CONCURRENCY),
            use_threads=True,
        )
        self._call(
            "upload",
            key,
            lambda: self.client.upload_file(
                str(path), self.bucket, self._key(key), ExtraArgs=self._put_args(key) or None, Config=config
            ),
        )

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        legacy = self._legacy_route(prefix)
        if legacy is not None:
            yield from legacy.list_objects(prefix)
            return
        paginator = self.client.get_paginator("list_objects_v2")
        full = self._key(prefix) if prefix else (self.prefix + "/" if self.prefix else "")
        pages = iter(paginator.paginate(Bucket=self.bucket, Prefix=full))
        while True:
            page = self._call("list", prefix, lambda: next(pages, None))
            if page is None:
                return
            for item in page.get("Contents", []):
                yield ObjectInfo(self._relative(item["Key"]), int(item["Size"]), item.get("LastModified"))

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            head: dict[str, Any] = self._call(
                "read",
                key,
                lambda: self.client.head_object(Bucket=self.bucket, Key=self._key(key)),
                passthrough=_NOT_FOUND,
            )
            return head
        except Exception as error:
            if error_code(error) in _NOT_FOUND:
                return None
            raise

    def stat(self, key: str) -> ObjectInfo | None:
        head = self._head(key)
        if head is None:
            return None
        return ObjectInfo(key, int(head["ContentLength"]), head.get("LastModified"))

    @cached_property
    def object_lock_enabled(self) -> bool:
        """Whether the bucket has Object Lock (read once; a provider without the API has none)."""
        try:
            response = self.client.get_object_lock_configuration(Bucket=self.bucket)
        except Exception as error:
            code = error_code(error)
            if code in ("ObjectLockConfigurationNotFoundError", "NotImplemented", "AccessDenied", "501"):
                return False
            raise_s3_error(error, self._what, self.bucket, "read the Object Lock configuration of")
        enabled: str | None = response.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
        return enabled == "Enabled"

    def lock_reason(self, key: str, now: datetime | None = None) -> str | None:
        """Why `key` cannot be deleted (retention or legal hold), or None."""
        if not self.object_lock_enabled:
            return None
        head = self._head(key)
        if head is None:
            return None
        now = now or datetime.now(UTC)
        until = head.get("ObjectLockRetainUntilDate")
        if until is not None and until > now:
            return f"{head.get('ObjectLockMode', 'retention').lower()} retention until {until.isoformat()}"
        if head.get("ObjectLockLegalHoldStatus") == "ON":
            return "legal hold"
        return None

    def snapshot_lock_reason(self, snapshot_id: str) -> str | None:
        if not self.object_lock_enabled:
            return None
        for info in self.list_objects(snapshot_prefix(snapshot_id) + "/"):
            reason = self.lock_reason(info.key)
            if reason:
                return f"object-locked ({info.key}: {reason})"
        return None

    def delete(self, key: str) -> None:
        # A lock object has no retention of its own; under a bucket's default retention the delete only
        # adds a delete marker (S3 allows that), which is all a lock's release needs.
        reason = None if _is_lock_object(key) else self.lock_reason(key)
        if reason:
            raise DestinationError(
                f"{self._what}: {self._key(key)} in bucket '{self.bucket}' is object-locked ({reason}); "
                "drgui does not try to delete it.",
                hint="It can be deleted once the retention period ends (or the legal hold is removed).",
            )
        if not self.object_lock_enabled:
            self._call(
                "delete", key, lambda: self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
            )
            return
        # A bucket with Object Lock keeps versions: a plain delete only hides the object behind a delete
        # marker. Removing for real is deleting each version (what only the prune key may do).
        full = self._key(key)
        response = self._call(
            "list versions of", key, lambda: self.client.list_object_versions(Bucket=self.bucket, Prefix=full)
        )
        versions = [
            v for v in response.get("Versions", []) + response.get("DeleteMarkers", []) if v["Key"] == full
        ]
        for version_id in [str(v["VersionId"]) for v in versions]:
            self._delete_version(key, full, version_id)

    def _delete_version(self, key: str, full: str, version_id: str) -> None:
        self._call(
            "delete",
            key,
            lambda: self.client.delete_object(Bucket=self.bucket, Key=full, VersionId=version_id),
        )

    def delete_snapshot(self, snapshot_id: str) -> None:
        reason = self.snapshot_lock_reason(snapshot_id)
        if reason:
            raise DestinationError(
                f"{self._what}: snapshot {snapshot_id} is {reason}; it was not deleted.",
                hint="It can be deleted once its retention period ends.",
            )
        super().delete_snapshot(snapshot_id)

    # --- snapshots -----------------------------------------------------------------------------
    def begin(self, snapshot_id: str) -> SnapshotWriter:
        return _S3SnapshotWriter(self, snapshot_id)

    def incomplete_ids(self) -> list[str]:
        return sorted(sid for sid, names in self._snapshot_sizes().items() if INDEX_FILE not in names)

    def remove_incomplete(self, snapshot_id: str) -> None:
        prefix = snapshot_prefix(snapshot_id)
        if self.exists(f"{prefix}/{INDEX_FILE}"):
            return
        for info in list(self.list_objects(prefix + "/")):
            self.delete(info.key)
        for upload in self.multipart_uploads(prefix + "/"):
            self._abort_upload(upload)

    def multipart_uploads(self, prefix: str = "") -> list[dict[str, Any]]:
        """Unfinished multipart uploads under our prefix: {"Key", "UploadId", "Initiated"}."""
        paginator = self.client.get_paginator("list_multipart_uploads")
        full = self._key(prefix) if prefix else (self.prefix + "/" if self.prefix else "")
        pages = iter(paginator.paginate(Bucket=self.bucket, Prefix=full))
        uploads: list[dict[str, Any]] = []
        while True:
            page = self._call("list uploads in", prefix, lambda: next(pages, None))
            if page is None:
                return uploads
            uploads.extend(page.get("Uploads", []))

    def _abort_upload(self, upload: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):
            self._call(
                "abort an upload to",
                self._relative(upload["Key"]),
                lambda: self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                ),
                passthrough=("NoSuchUpload",),
            )

    def abort_stale_uploads(self, older_than: datetime, dry_run: bool = False) -> list[str]:
        """Abort multipart uploads under our prefix started before `older_than`; return their keys."""
        stale = [u for u in self.multipart_uploads() if u["Initiated"] < older_than]
        if not dry_run:
            for upload in stale:
                self._abort_upload(upload)
        return [self._relative(u["Key"]) for u in stale]

    def test(self) -> list[str]:
        """Check list, write, read and delete for each key, and say which permission is missing.

        The everyday key must list, write and read (else DestinationError naming the permission); that
        it cannot delete is what an append-only offsite wants, so it is reported, not refused."""
        checked: list[str] = []
        self.last_probe = self.probe_keys()
        for report in self.last_probe:
            if report["key"] == "everyday" or report["error"]:
                if report["error"]:
                    raise DestinationError(report["error"], hint=report["hint"])
                checked += [step for step in ("list", "write", "read", "delete") if report[step]]
            checked.append(f"{report['key']} key: {'can delete' if report['delete'] else 'cannot delete'}")
        if self.object_lock_enabled:
            checked.append("object lock: enabled")
            if self.lock_mode:
                checked.append(f"object lock: {self.lock_mode.lower()}, {self.lock_days} days")
        return checked

    def probe_keys(self) -> list[dict[str, Any]]:
        """What each key can do: [{"key": "everyday"|"prune", "list", "write", "read", "delete": bool,
        "error": str|None, "hint": str|None}], found by trying each on a test object of its own (the
        delete removes that object's version for good where it is allowed)."""
        reports = [self._probe("everyday", self.client)]
        prune_key = self.prune_key()
        if prune_key is not None:
            prune = make_client(self.config.settings, self.store, "dest", self.name, keys=prune_key)
            reports.append(self._probe("prune", prune))
        return reports

    def _probe(self, name: str, client: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        key = self._key(f".drgui-test-{name}")
        payload = b"drgui destination test\n"
        report: dict[str, Any] = {"key": name, "list": False, "write": False, "read": False, "delete": False}
        report |= {"error": None, "hint": None}
        written: dict[str, Any] = {}
        steps: list[tuple[str, str, Callable[[], Any]]] = [
            ("list", "s3:ListBucket", lambda: client.list_objects_v2(Bucket=self.bucket, MaxKeys=1)),
            (
                "write",
                "s3:PutObject",
                lambda: written.update(client.put_object(Bucket=self.bucket, Key=key, Body=payload)),
            ),
            ("read", "s3:GetObject", lambda: client.get_object(Bucket=self.bucket, Key=key)["Body"].read()),
            (
                "delete",
                "s3:DeleteObject",
                lambda: client.delete_object(
                    Bucket=self.bucket,
                    Key=key,
                    **({"VersionId": written["VersionId"]} if written.get("VersionId") else {}),
                ),
            ),
        ]
        for step, permission, call in steps:
            try:
                result = call()
            except (ClientError, BotoCoreError) as error:
                if step == "delete" and error_code(error) in _DENIED:
                    break  # what a write-only key should answer
                if error_code(error) in _DENIED:
                    done = [s for s in ("list", "write", "read") if report[s]]
                    report["error"] = (
                        f"{self._what}: the {name} key may not {step} in bucket '{self.bucket}' "
                        f"(checked: {', '.join(done) or 'nothing yet'})."
                    )
                    report["hint"] = (
                        f"Grant {permission} on arn:aws:s3:::{self.bucket}"
                        + ("" if step == "list" else f"/{self.prefix + '/' if self.prefix else ''}*")
                        + " to this key."
                    )
                    return report
                raise_s3_error(error, self._what, self.bucket, step)
            if step == "read" and result != payload:
                raise DestinationError(f"{self._what} returned different bytes than were written.")
            report[step] = True
        return report


def _lock_mode(value: Any) -> str:
    mode = str(value).lower()
    if mode not in (*OBJECT_LOCK_MODES, "off"):
        raise UsageError(f"Unknown Object Lock mode '{value}'.", hint="Use governance, compliance or off.")
    return mode


def _margin_days(value: Any) -> int:
    if int(value) < 0:
        raise UsageError("--object-lock-margin-days must be 0 or more.")
    return int(value)


def _build(
    settings: dict[str, Any], secrets: dict[str, str], ctx: kinds.BuildContext
) -> tuple[dict[str, Any], dict[str, str]]:
    """The shared S3 rules, plus: the prune key comes as a pair (or not at all)."""
    pair = [secrets.get("prune_access_key_id"), secrets.get("prune_secret_access_key")]
    if any(pair) and not all(pair):
        raise UsageError(
            "The prune key needs both --prune-access-key-id and --prune-secret-access-key-file.",
            hint="Or leave both out: prune then uses the everyday key (give it the prune key at prune time "
            "with DRGUI_PRUNE_ACCESS_KEY_ID and DRGUI_PRUNE_SECRET_ACCESS_KEY).",
        )
    return s3common.build_s3(settings, secrets, ctx)


# The S3 destination's settings: the shared location and credentials plus its own (one line per setting).
KIND = kinds.Kind(
    name="s3",
    role="destination",
    label="S3 bucket (AWS, Backblaze B2, Cloudflare R2, MinIO)",
    description="a bucket/prefix on any S3-compatible service: the off-site copy",
    settings=(
        *s3common.S3_LOCATION_SETTINGS,
        kinds.Setting("compat", "checksum behaviour for B2, R2, MinIO", label="B2/R2/MinIO mode", type=bool),
        kinds.Setting(
            "storage_class", "the storage class of uploads, e.g. STANDARD_IA", label="Storage class"
        ),
        kinds.Setting("sse", "server-side encryption (AES256 or aws:kms)", label="Server-side encryption"),
        kinds.Setting(
            "object_lock_mode",
            "retention on a bucket with Object Lock: governance, compliance or off "
            "(default governance when the bucket has it; docs/offsite.md)",
            label="Object Lock mode",
            validate=_lock_mode,
        ),
        kinds.Setting(
            "object_lock_margin_days",
            "days of retention beyond what the retention policy keeps (default 7)",
            label="Object Lock margin (days)",
            type=int,
            validate=_margin_days,
        ),
        *s3common.S3_CREDENTIAL_SETTINGS,
        kinds.Setting(
            "prune_access_key_id",
            "the key prune deletes with (kept in the keyring; the everyday key then need not delete)",
            label="Prune key ID",
            secret=True,
        ),
        kinds.Setting(
            "prune_secret_access_key",
            "file with the prune key's secret (kept in the keyring)",
            label="Prune key secret",
            secret=True,
            secret_file=True,
        ),
    ),
    opener=S3Destination,
    build=_build,
    to_values=s3common.s3_values,
    derived=s3common.S3_DERIVED,
    locate=s3common.locate_s3,
    default_retention={"daily": 30, "monthly": 12},
    prune_key=True,
    order=1,
)
