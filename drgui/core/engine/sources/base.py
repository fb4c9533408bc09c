"""One Source interface. `capture()` yields the part streams one after another and fills the
source's manifest entry; closing the generator (error or cancel) stops any child process."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from drgui.core.engine.packs import PackContext
from drgui.core.errors import SourceError
from drgui.core.plan.config import SourceConfig
from drgui.core.plan.secrets import SecretStore
from drgui.core.progress import CancelToken


@dataclass
class PartStream:
    name: str  # stored as parts/<source>/<name>.age
    stream: BinaryIO
    compressed: bool = True
    expected_size: int | None = None


@dataclass
class CaptureContext:
    workdir: Path
    cancel: CancelToken
    manifest: dict[str, Any] = field(default_factory=dict)  # the source's manifest entry, filled by capture()
    warnings: list[str] = field(default_factory=list)
    # directories never captured (the plan's home and local destinations: a folder holding them would
    # back up its own backups, each run bigger than the last), as {path: what it is}
    never_capture: dict[Path, str] = field(default_factory=dict)
    # the same for S3: (endpoint_url or "", bucket, key prefix ending in "/") -> what it is
    never_capture_keys: dict[tuple[str, str, str], str] = field(default_factory=dict)
    # format 2 (folder and S3 sources): where new contents go and what the parent snapshot holds;
    # None writes format 1's one tar part
    packs: PackContext | None = None


class Source(ABC):
    kind: str = ""

    def __init__(self, config: SourceConfig, store: SecretStore | None) -> None:
        self.config = config
        self.name = config.name
        self.store = store

    @abstractmethod
    def describe(self) -> str:
        """One line for `source list`, without secrets."""

    @abstractmethod
    def preflight(self) -> None:
        """Check the source is reachable and readable before anything is written; raise a DrguiError."""

    def test(self) -> str:
        self.preflight()
        return f"{self.kind} source '{self.name}' is reachable: {self.describe()}"

    @abstractmethod
    def capture(self, ctx: CaptureContext) -> Generator[PartStream, None, None]: ...


class ChildProcess:
    """A child whose stdout we stream; stopped with SIGINT then SIGTERM to its process group (Vorta's way)."""

    def __init__(
        self,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        stderr_path: Path,
        cwd: Path | None = None,
        stdin: int | None = subprocess.DEVNULL,
    ) -> None:
        self.argv = argv
        self.stderr_path = stderr_path
        self._stderr = open(stderr_path, "wb")  # noqa: SIM115 - closed in wait()/stop()
        self.process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            stdin=stdin,
            env=env,
            cwd=cwd,
            start_new_session=True,
            bufsize=0,
        )
        assert self.process.stdout is not None
        self.stdout: BinaryIO = self.process.stdout  # type: ignore[assignment]

    def stderr_tail(self, lines: int = 12) -> str:
        try:
            text = self.stderr_path.read_text("utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def wait(self) -> int:
        self.stdout.close()
        code = self.process.wait()
        self._stderr.close()
        return code

    def stop(self, grace: float = 5.0) -> None:
        if self.process.poll() is None:
            for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, grace), (signal.SIGKILL, 30.0)):
                try:
                    os.killpg(self.process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.process.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self.stdout.close()
        self.process.wait()
        self._stderr.close()


def pump_in_thread[*Args](
    target: Callable[[*Args], object], *args: *Args
) -> tuple[threading.Thread, list[BaseException]]:
    """Run a producer writing into a pipe in a thread; errors are collected for the consumer."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target(*args)
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True, name="drgui-producer")
    thread.start()
    return thread, errors


def tar_part_stream(part_name: str, label: str, write: Callable[[BinaryIO], None]) -> Iterator[PartStream]:
    """Yield one compressed part read from a pipe that `write` fills in a producer thread.

    Closing the reader unblocks the producer if the consumer stopped early; the producer's error (if
    any) is raised once the part has been read, a broken pipe as "<label>: reading stopped early."
    """
    read_fd, write_fd = os.pipe()
    reader = os.fdopen(read_fd, "rb", buffering=0)
    writer = os.fdopen(write_fd, "wb", buffering=1024 * 1024)

    def produce() -> None:
        with writer:
            write(writer)

    thread, errors = pump_in_thread(produce)
    try:
        yield PartStream(part_name, reader, compressed=True)
    finally:
        reader.close()  # unblocks the producer if we stopped reading early
        thread.join()
    if errors:
        error = errors[0]
        if isinstance(error, BrokenPipeError):
            raise SourceError(f"{label}: reading stopped early.")
        raise error
