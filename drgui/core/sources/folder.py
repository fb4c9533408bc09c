"""A folder as a tar stream (produced in a thread into a pipe), with every file's sha256 in the manifest."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from drgui.core.errors import SourceError
from drgui.core.sources.base import CaptureContext, PartStream, Source, tar_part_stream


class _HashingFile:
    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.digest.update(data)
        return data


def is_excluded(relative: str, patterns: list[str]) -> bool:
    name = relative.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(relative, p) or fnmatch.fnmatch(name, p) for p in patterns)


def walk(root: Path, excludes: list[str]) -> Iterator[tuple[str, Path]]:
    """(relative posix path, absolute path) in a stable order; excluded directories are not entered."""
    for directory, dirs, files in os.walk(root, followlinks=False):
        rel_dir = Path(directory).relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        dirs[:] = sorted(d for d in dirs if not is_excluded(rel_dir + d, excludes))
        for name in sorted(files):
            if not is_excluded(rel_dir + name, excludes):
                yield rel_dir + name, Path(directory) / name


def write_tar(root: Path, excludes: list[str], out: BinaryIO, files: list[dict[str, Any]], cancel) -> None:
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for relative, path in walk(root, excludes):
            cancel.check()
            info = tar.gettarinfo(str(path), arcname=relative)
            info.uname = info.gname = ""
            if info.isreg():
                try:
                    handle = open(path, "rb")  # noqa: SIM115
                except OSError as error:
                    raise SourceError(f"Cannot read {path}: {error.strerror}.") from None
                with handle:
                    hashing = _HashingFile(handle)
                    size_now = os.fstat(handle.fileno()).st_size
                    if size_now != info.size:
                        info.size = size_now
                    tar.addfile(info, hashing)  # type: ignore[arg-type]
                files.append(
                    {
                        "path": relative,
                        "size": info.size,
                        "mtime": int(info.mtime),
                        "sha256": hashing.digest.hexdigest(),
                        "mode": stat.S_IMODE(info.mode),
                    }
                )
            elif info.issym():
                tar.addfile(info)
                files.append({"path": relative, "symlink": info.linkname})


class FolderSource(Source):
    kind = "folder"

    @property
    def root(self) -> Path:
        return Path(self.config.settings["path"]).expanduser()

    @property
    def excludes(self) -> list[str]:
        return list(self.config.settings.get("exclude", []))

    def describe(self) -> str:
        extra = f" (excluding {', '.join(self.excludes)})" if self.excludes else ""
        return f"folder {self.root}{extra}"

    def preflight(self) -> None:
        if not self.root.is_dir():
            raise SourceError(
                f"Folder source '{self.name}': {self.root} is not a directory.",
                hint="Check the path, or remove the source with `drgui source remove`.",
            )
        if not os.access(self.root, os.R_OK | os.X_OK):
            raise SourceError(f"Folder source '{self.name}': {self.root} is not readable.")

    def capture(self, ctx: CaptureContext) -> Iterator[PartStream]:
        files: list[dict[str, Any]] = []
        yield from tar_part_stream(
            "files.tar.zst",
            f"Folder source '{self.name}'",
            lambda out: write_tar(self.root, self.excludes, out, files, ctx.cancel),
        )
        ctx.manifest.update(
            {
                "path": str(self.root),
                "files": files,
                "file_count": len(files),
                "bytes": sum(f.get("size", 0) for f in files),
            }
        )
