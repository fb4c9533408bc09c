"""Where one plan lives: config.toml, history.sqlite, the lock, caches and reports."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

HOME_ENV = "DRGUI_HOME"


@dataclass(frozen=True)
class Home:
    path: Path

    @staticmethod
    def default_path() -> Path:
        """The platform's per-user data directory (what the OS timer and autostart use)."""
        return Path(platformdirs.user_data_dir("drgui", appauthor=False)).expanduser().absolute()

    @classmethod
    def resolve(cls, explicit: str | os.PathLike[str] | None = None) -> Home:
        """`--home`, else $DRGUI_HOME, else the platform's per-user data directory."""
        chosen = explicit or os.environ.get(HOME_ENV)
        return cls(Path(chosen).expanduser().absolute() if chosen else cls.default_path())

    @property
    def config_path(self) -> Path:
        return self.path / "config.toml"

    @property
    def history_path(self) -> Path:
        return self.path / "history.sqlite"

    @property
    def lock_path(self) -> Path:
        return self.path / "backup.lock"

    @property
    def queue_dir(self) -> Path:
        """Snapshots written here first when no local destination exists, until every destination has them."""
        return self.path / "queue"

    @property
    def reports_dir(self) -> Path:
        return self.path / "reports"

    @property
    def logs_dir(self) -> Path:
        return self.path / "logs"

    @property
    def tmp_dir(self) -> Path:
        return self.path / "tmp"

    def exists(self) -> bool:
        return self.config_path.exists()

    def ensure(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
