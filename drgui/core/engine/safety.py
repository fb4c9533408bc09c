"""The pre-restore safety snapshot (design section 7): before `restore --overwrite` replaces anything in
a non-empty directory, that directory is backed up as an ordinary snapshot of one folder source named
`pre-restore-<source>`, so `drgui restore <id> --source pre-restore-<source> --to-dir DIR` gives it back.

It goes through the normal snapshot writer, into the plan's first available local destination, or
into the home's queue when the plan has none (then queued for every destination, so the next backup
uploads it and the queue copy is only dropped once it is there). Prune keeps it for 30 days (snapshot.SAFETY_KEEP), outside the retention policy's buckets, and
`latest` never means it.
"""

from __future__ import annotations

from pathlib import Path

from drgui.core.engine.snapshot import SAFETY_PIN_REASON, safety_source_name
from drgui.core.engine.sources.base import Source
from drgui.core.engine.sources.envfile import EnvSource
from drgui.core.engine.sources.folder import FolderSource
from drgui.core.ops.backup import ensure_identity_file, write_snapshot
from drgui.core.plan.config import SourceConfig
from drgui.core.plan.lock import HomeLock
from drgui.core.plan.workspace import LOCAL_KINDS, Workspace
from drgui.core.progress import CancelToken, Progress, ProgressCallback


def take_safety_snapshot(
    ws: Workspace,
    directory: Path | str,
    source_name: str,
    progress: ProgressCallback,
    cancel: CancelToken | None,
    source: Source | None = None,
) -> str:
    """Snapshot `directory` as it is now (or, when it is a file such as a `.env`, that file as an env
    source, restored with `--to-dir DIR` as DIR/<its name>; or `source` as given, e.g. the bucket prefix
    a restore --to-bucket replaces, `directory` then naming it); return the snapshot id."""
    name = safety_source_name(source_name)
    if source is None:
        path = Path(directory)
        if path.is_file():
            source = EnvSource(SourceConfig(name, "env", {"path": str(path)}), None)
        else:
            source = FolderSource(SourceConfig(name, "folder", {"path": str(path)}), None)
    source.preflight()
    progress(Progress("restore", source_name, f"Taking a safety snapshot of {directory} first"))
    with HomeLock(ws.home.lock_path, "restore"):
        locals_ = [d for d in ws.destinations() if d.kind in LOCAL_KINDS and d.available()]
        primary = locals_[0] if locals_ else ws.queue_destination()
        if locals_:
            ensure_identity_file(ws, primary)
        snapshot_id, _results = write_snapshot(ws, [source], primary, progress, cancel or CancelToken())
        if not locals_:
            for dest in ws.plan.destinations:
                ws.history.enqueue(snapshot_id, dest.name, "pre-restore safety snapshot, not copied yet")
        ws.history.pin(snapshot_id, f"{SAFETY_PIN_REASON} {directory}")
    return snapshot_id
