"""Where one plan lives: config.toml, history.sqlite, the lock, caches and reports."""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import platformdirs

HOME_ENV = "DRGUI_HOME"
HOME_ID_FILE = "home-id"


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

    @property
    def scratch_dir(self) -> Path:
        """Private scratch directories of restores and drills (decrypted dumps), each marked with its
        owner's pid so the next command removes what a killed one left (`fsutil.sweep_stale_scratch`)."""
        return self.path / "scratch"

    @property
    def home_id_path(self) -> Path:
        """This home's random id: keeps two homes of one plan on one machine from sharing keyring entries.
        A file of its own, not config.toml: a kit import writes config, and a copied config must not carry it."""
        return self.path / HOME_ID_FILE

    def read_home_id(self) -> str | None:
        with contextlib.suppress(FileNotFoundError):
            value = self.home_id_path.read_text("ascii").strip()
            if value:
                return value
        return None

    @staticmethod
    def new_home_id() -> str:
        return secrets.token_hex(8)

    def create_home_id(self, value: str | None = None) -> str:
        """This home's id, created (once, atomically; `value` or a new one) when it has none yet."""
        existing = self.read_home_id()
        if existing:
            return existing
        self.ensure()
        value = value or self.new_home_id()
        temp = self.home_id_path.with_name(f".{HOME_ID_FILE}.{os.getpid()}.tmp")
        temp.write_text(value + "\n", "ascii")
        try:
            os.link(temp, self.home_id_path)  # never replaces an id another process just created
        except FileExistsError:
            pass
        finally:
            temp.unlink(missing_ok=True)
        return self.read_home_id() or value

    def exists(self) -> bool:
        return self.config_path.exists()

    def ensure(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
