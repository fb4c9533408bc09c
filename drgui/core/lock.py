"""One lock file in the home makes backups (and prune) single-flight across the GUI, the CLI and the timer."""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

from drgui.core.errors import OperationFailed

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt


class HomeLock:
    """An exclusive, non-blocking lock on `path`; released when the process dies, whatever the cause."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        self._fd: int | None = None

    def __enter__(self) -> HomeLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            else:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            os.close(fd)
            raise OperationFailed(
                f"Another drgui operation is running in this home; the {self.what} did not start.",
                hint="Wait for it to finish (the app, the CLI or the scheduled run), then try again.",
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {self.what}\n".encode())
        self._fd = fd
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
