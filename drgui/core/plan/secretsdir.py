"""Secrets on a headless server: systemd credentials and a private secrets directory instead of a keyring.

A database server has no Secret Service. drgui run there by a systemd timer as the cluster's OS user reads
its secrets from one of two places, and then never touches a keyring:

- ``$CREDENTIALS_DIRECTORY``: set by systemd for a unit with ``LoadCredentialEncrypted=`` lines (the unit
  ``drgui secrets unit`` writes). systemd decrypts each sealed file (``drgui secrets seal NAME`` wraps
  ``systemd-creds encrypt``) into a private, read-only directory for the unit's lifetime.
- A secrets directory given by ``--secrets-dir DIR`` (or ``$DRGUI_SECRETS_DIR``) where systemd is absent:
  the directory and each file must belong to the user running drgui and be closed to everybody else
  (directory 0700, files 0600 or 0400); anything else is refused with the command that fixes it.

One file per secret, named ``<kind>.<name>.<field>`` (``source.db.password``, ``dest.offsite.secret_access_key``,
``plan.identity.age``): the directory belongs to one plan, so the plan and home ids are not in the name.
Still never a plaintext keyring backend and never a secret in config.toml.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from drgui.core.engine.fsutil import atomic_write_bytes
from drgui.core.errors import EnvironmentNotReady

SECRETS_DIR_ENV = "DRGUI_SECRETS_DIR"
CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"


def credential_name(kind: str, name: str, field: str) -> str:
    return f"{kind}.{name}.{field}"


def _closed(mode: int) -> bool:
    return mode & (stat.S_IRWXG | stat.S_IRWXO) == 0


def _refuse_shared(
    what: str, info: os.stat_result, owners: set[int], chown_hint: str, verb: str, chmod_hint: str
) -> None:
    """Refuse `what` (a directory or file of secrets) unless one of `owners` owns it and only its owner
    has any access (`verb`: what other users could do with it)."""
    if info.st_uid not in owners:
        raise EnvironmentNotReady(
            f"{what} belongs to uid {info.st_uid}, not to this user ({os.geteuid()}).", hint=chown_hint
        )
    if not _closed(info.st_mode):
        raise EnvironmentNotReady(
            f"{what} can be {verb} by other users (mode {stat.S_IMODE(info.st_mode):o}).", hint=chmod_hint
        )


@dataclass(frozen=True)
class SecretsDirectory:
    """Where secrets are read (and, for a secrets directory, written) instead of the keyring."""

    credentials: Path | None  # systemd's, read-only
    directory: Path | None  # --secrets-dir, read-write

    @property
    def description(self) -> str:
        places = []
        if self.credentials is not None:
            places.append(f"systemd credentials in {self.credentials}")
        if self.directory is not None:
            places.append(f"the secrets directory {self.directory}")
        return " and ".join(places)

    def check(self) -> None:
        """Refuse (exit 3) a secrets directory that is missing, not ours or open to others."""
        if self.directory is None:
            return
        path = self.directory
        try:
            info = path.lstat()
        except FileNotFoundError:
            raise EnvironmentNotReady(
                f"The secrets directory {path} does not exist.",
                hint=f"Create it for this user only: mkdir -m 700 {path}",
            ) from None
        if not stat.S_ISDIR(info.st_mode):
            raise EnvironmentNotReady(
                f"The secrets directory {path} is not a directory (a link or a file).",
                hint="Give --secrets-dir a real directory owned by this user with mode 0700.",
            )
        _refuse_shared(
            f"The secrets directory {path}",
            info,
            {os.geteuid()},
            f"chown $(id -u) {path} (run drgui as the user that owns its secrets)",
            "opened",
            f"chmod 700 {path}",
        )
        for entry in sorted(path.iterdir()):  # every secret in it, not only those this run reads
            if not entry.name.endswith(".partial"):
                self._file(path, entry.name, systemd=False)

    def _file(self, base: Path, name: str, systemd: bool) -> Path | None:
        path = base / name
        try:
            info = path.lstat()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise EnvironmentNotReady(f"Cannot read the secret file {path}: {error.strerror}.") from None
        if not stat.S_ISREG(info.st_mode):
            raise EnvironmentNotReady(
                f"The secret file {path} is not a regular file (a link or a directory).",
                hint=f"Replace it with a file owned by this user with mode 0600: {path}",
            )
        owners = {os.geteuid(), 0} if systemd else {os.geteuid()}
        _refuse_shared(
            f"The secret file {path}", info, owners, f"chown $(id -u) {path}", "read", f"chmod 600 {path}"
        )
        return path

    def get(self, kind: str, name: str, field: str) -> str | None:
        wanted = credential_name(kind, name, field)
        for base, systemd in ((self.credentials, True), (self.directory, False)):
            if base is None:
                continue
            path = self._file(base, wanted, systemd)
            if path is not None:
                try:
                    return path.read_text("utf-8").strip("\r\n") or None
                except (OSError, UnicodeDecodeError) as error:
                    raise EnvironmentNotReady(f"Cannot read the secret file {path}: {error}.") from None
        return None

    def set(self, kind: str, name: str, field: str, value: str) -> None:
        wanted = credential_name(kind, name, field)
        if self.directory is None:
            raise EnvironmentNotReady(
                f"Cannot store {wanted}: systemd credentials are read-only.",
                hint=f"Seal it with `drgui secrets seal {wanted}` and add it to the unit "
                "(`drgui secrets unit`), or give --secrets-dir DIR.",
            )
        self.check()
        atomic_write_bytes(self.directory / wanted, value.encode("utf-8"), mode=0o600)

    def delete(self, kind: str, name: str, field: str) -> None:
        if self.directory is None:
            return
        (self.directory / credential_name(kind, name, field)).unlink(missing_ok=True)


def configured() -> SecretsDirectory | None:
    """The secrets directory and systemd credentials this process was given, if any (then no keyring)."""
    credentials = os.environ.get(CREDENTIALS_ENV) or None
    directory = os.environ.get(SECRETS_DIR_ENV) or None
    if credentials is None and directory is None:
        return None
    return SecretsDirectory(
        Path(credentials) if credentials else None,
        Path(directory).expanduser().absolute() if directory else None,
    )


CREDSTORE_DIR = "credstore"  # in the plan home: the sealed files `drgui secrets seal` writes


def seal(name: str, value: str, output: Path) -> Path:
    """Encrypt one secret with `systemd-creds encrypt` (the host key, or the TPM where there is one) into
    `output`, for a unit's `LoadCredentialEncrypted=NAME:PATH`. The value goes through a pipe, never argv."""
    import shutil
    import subprocess

    tool = shutil.which("systemd-creds")
    if tool is None:
        raise EnvironmentNotReady(
            "systemd-creds is not installed, so secrets cannot be sealed for a systemd unit.",
            hint="Install systemd 250 or newer, or use --secrets-dir DIR (files 0600) where systemd is absent.",
        )
    output.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = output.with_name(output.name + ".partial")
    result = subprocess.run(
        [tool, "encrypt", f"--name={name}", "-", str(partial)],
        input=value.encode("utf-8"),
        capture_output=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C"},
        check=False,
    )
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        reason = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise EnvironmentNotReady(
            f"systemd-creds could not seal {name}: {reason[-1] if reason else 'exit ' + str(result.returncode)}.",
            hint="Run drgui secrets seal as root (the host key is /var/lib/systemd/credential.secret) "
            "or on a machine with a TPM.",
        )
    os.chmod(partial, 0o600)
    os.replace(partial, output)
    return output


def sealed(home_path: Path) -> list[tuple[str, Path]]:
    """(name, path) of every sealed credential in the plan home, sorted by name."""
    folder = home_path / CREDSTORE_DIR
    if not folder.is_dir():
        return []
    return sorted((p.name, p) for p in folder.iterdir() if p.is_file() and not p.name.endswith(".partial"))
