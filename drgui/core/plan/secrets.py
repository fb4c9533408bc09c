"""Every secret lives in the OS keyring under service 'drgui', username '<plan>/<home>/<kind>/<name>/<field>'.

The home id (see `Home.home_id_path`) keeps two homes of one plan on one machine (a rehearsed kit import)
from reading or deleting each other's entries. Homes made before it existed used '<plan>/<kind>/<name>/<field>';
their entries are copied once to the new names (`SecretStore.adopt_legacy`) and the old ones left for any
other legacy home that shares them.

Plaintext-file, null and fail backends are refused: a backup tool that leaves the keys to the
business in a readable file has failed before it starts. A locked keyring is its own state.
Values read or written here are also remembered (in this process only) so `redact()` can scrub
them from any text that is about to be shown or logged.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import keyring
import keyring.backend
import keyring.errors

from drgui.core.errors import EnvironmentNotReady, KeyringLocked, UsageError
from drgui.core.plan import secretsdir

SERVICE = "drgui"
BACKEND_ENV = "PYTHON_KEYRING_BACKEND"

_REFUSED_MODULES = ("keyring.backends.null", "keyring.backends.fail", "keyrings.alt")
_FIX = (
    "Use the desktop's keyring: on Linux install and unlock GNOME Keyring or KWallet (the Secret Service; "
    "`apt install gnome-keyring`), on a headless server start one with "
    "`dbus-run-session -- sh -c 'gnome-keyring-daemon --unlock --components=secrets; drgui ...'`; "
    "macOS Keychain and Windows Credential Manager work as they are. "
    "Remove PYTHON_KEYRING_BACKEND or keyrings.alt if they select a plaintext file."
)

_known_values: set[str] = set()
_known_lock = threading.Lock()


def remember(value: str | None) -> None:
    """Mark a value as secret for `redact()`; short values are ignored (they would redact ordinary words)."""
    if value and len(value) >= 6:
        with _known_lock:
            _known_values.add(value)


def redact(text: str) -> str:
    """Replace every secret value seen by this process with '***'."""
    with _known_lock:
        values = sorted(_known_values, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, "***")
    return text


@dataclass(frozen=True)
class BackendStatus:
    name: str
    usable: bool
    locked: bool
    problem: str | None


def _configured_keyring() -> keyring.backend.KeyringBackend:
    """keyring's backend; one that cannot be loaded (a PYTHON_KEYRING_BACKEND naming no installed class, a
    bad keyringrc.cfg) is an environment that is not ready, not a crash."""
    try:
        return keyring.get_keyring()
    except Exception as error:
        reason = f"{type(error).__name__}: {error}"
        chosen = os.environ.get(BACKEND_ENV)
        if chosen:
            raise EnvironmentNotReady(
                f"{BACKEND_ENV}={chosen} names a keyring backend that cannot be loaded ({reason}).",
                hint=f"Unset {BACKEND_ENV} so drgui uses the desktop's keyring, or set it to an installed "
                "backend such as keyring.backends.SecretService.Keyring.",
            ) from None
        raise EnvironmentNotReady(f"The keyring backend cannot be loaded ({reason}).", hint=_FIX) from None


def _backend_name(backend: keyring.backend.KeyringBackend) -> str:
    return f"{type(backend).__module__}.{type(backend).__qualname__}"


def _leaf_backends(backend: keyring.backend.KeyringBackend) -> list[keyring.backend.KeyringBackend]:
    inner = getattr(backend, "backends", None)
    return list(inner) if isinstance(inner, list | tuple) else [backend]


def _secret_service_locked(backend: keyring.backend.KeyringBackend) -> bool:
    """True when the Secret Service's default collection is locked (checked without prompting)."""
    if not type(backend).__module__.endswith("SecretService"):
        return False
    import secretstorage

    connection = secretstorage.dbus_init()
    try:
        collection = secretstorage.get_default_collection(connection)
        return bool(collection.is_locked())
    except secretstorage.exceptions.SecretStorageException:
        return False
    finally:
        with contextlib.suppress(Exception):
            connection.close()


def _refused(backend: keyring.backend.KeyringBackend) -> bool:
    return _backend_name(backend).startswith(_REFUSED_MODULES)


def chosen_backend() -> keyring.backend.KeyringBackend | None:
    """The backend drgui talks to: the highest-priority acceptable one, never a chainer that could fall
    back to a plaintext file when the real keyring fails."""
    for leaf in _leaf_backends(_configured_keyring()):
        if not _refused(leaf):
            return leaf
    return None


def backend_status() -> BackendStatus:
    directory = secretsdir.configured()
    if directory is not None:  # a headless server: no keyring is consulted at all
        try:
            directory.check()
        except EnvironmentNotReady as error:
            return BackendStatus(directory.description, False, False, error.message)
        return BackendStatus(directory.description, True, False, None)
    try:
        backend = _configured_keyring()
    except EnvironmentNotReady as error:
        return BackendStatus(os.environ.get(BACKEND_ENV, "(none)"), False, False, error.message)
    leaves = _leaf_backends(backend)
    names = ", ".join(_backend_name(b) for b in leaves) or _backend_name(backend)
    refused = [b for b in leaves if _refused(b)]
    if not leaves or len(refused) == len(leaves):
        kind = (
            "stores secrets in a plaintext file"
            if any("keyrings.alt" in _backend_name(b) for b in refused)
            else ("cannot store secrets")
        )
        return BackendStatus(names, False, False, f"The keyring backend {names} {kind}; drgui refuses it.")
    try:
        chosen = chosen_backend()
        locked = chosen is not None and _secret_service_locked(chosen)
    except Exception as error:
        return BackendStatus(names, False, False, f"The keyring backend {names} does not answer: {error}.")
    name = _backend_name(chosen) if chosen is not None else names
    return BackendStatus(name, True, locked, "The keyring is locked." if locked else None)


def require_keyring() -> BackendStatus:
    """Raise EnvironmentNotReady (exit 3) unless a real, unlocked keyring (or a secrets directory) is active."""
    directory = secretsdir.configured()
    if directory is not None:
        directory.check()
        return BackendStatus(directory.description, True, False, None)
    _configured_keyring()  # a backend that cannot be loaded: its own message and fix
    status = backend_status()
    if not status.usable:
        raise EnvironmentNotReady(status.problem or "No keyring.", hint=_FIX)
    if status.locked:
        raise KeyringLocked(
            f"The keyring ({status.name}) is locked.",
            hint="Unlock it (log in to the desktop, or open 'Passwords and Keys' and unlock 'Login'), then try again.",
        )
    return status


def unlock_keyring() -> bool:
    """Ask the Secret Service to unlock its default collection (shows the desktop's prompt)."""
    leaf = chosen_backend()
    if leaf is not None and type(leaf).__module__.endswith("SecretService"):
        import secretstorage

        connection = secretstorage.dbus_init()
        try:
            collection = secretstorage.get_default_collection(connection)
            if collection.is_locked():
                return not collection.unlock()
            return True
        finally:
            connection.close()
    return backend_status().usable


SOURCE_SECRET_FIELDS = ("password", "secret_access_key", "access_key_id")
DEST_SECRET_FIELDS = ("access_key_id", "secret_access_key", "prune_access_key_id", "prune_secret_access_key")


class SecretStore:
    """The keyring entries of one plan in one home (or, on a headless server, its secrets directory:
    `secretsdir`; then the keyring is never touched)."""

    def __init__(self, plan_id: str, home_id: str) -> None:
        self.plan_id = plan_id
        self.home_id = home_id
        self._backend: keyring.backend.KeyringBackend | None = None
        self._cache: dict[str, str | None] = {}  # each D-Bus round trip costs ~50 ms
        self._directory = secretsdir.configured()

    def _ensure(self) -> keyring.backend.KeyringBackend:
        if self._backend is None:
            require_keyring()
            self._backend = chosen_backend()
        assert self._backend is not None
        return self._backend

    def ensure_ready(self) -> None:
        """Refuse plaintext, null, fail and locked keyrings (exit 3) before any work starts."""
        if self._directory is not None:
            self._directory.check()
            return
        self._ensure()

    def username(self, kind: str, name: str, field: str) -> str:
        return f"{self.plan_id}/{self.home_id}/{kind}/{name}/{field}"

    def adopt_legacy(self, entries: list[tuple[str, str, str]]) -> int:
        """Copy the entries a home made before home ids stored under '<plan>/<kind>/<name>/<field>' to this
        home's names (those not set yet). The legacy entries stay: another legacy home may share them."""
        if self._directory is not None:
            return 0
        backend = self._ensure()
        copied = 0
        for kind, name, field in entries:
            try:
                legacy = backend.get_password(SERVICE, f"{self.plan_id}/{kind}/{name}/{field}")
            except keyring.errors.KeyringError:
                continue
            if legacy is None or self.get(kind, name, field) is not None:
                continue
            self.set(kind, name, field, legacy)
            copied += 1
        return copied

    def set(self, kind: str, name: str, field: str, value: str) -> None:
        remember(value)
        self._cache.pop(self.username(kind, name, field), None)
        if self._directory is not None:
            self._directory.set(kind, name, field, value)
            return
        backend = self._ensure()
        try:
            backend.set_password(SERVICE, self.username(kind, name, field), value)
        except keyring.errors.KeyringError as error:
            raise EnvironmentNotReady(
                f"Could not store the {field} of {kind} '{name}' in the keyring: {type(error).__name__}.",
                hint=_FIX,
            ) from None

    def get(self, kind: str, name: str, field: str) -> str | None:
        username = self.username(kind, name, field)
        if username in self._cache:
            return self._cache[username]
        if self._directory is not None:
            value = self._directory.get(kind, name, field)
            remember(value)
            self._cache[username] = value
            return value
        backend = self._ensure()
        try:
            value = backend.get_password(SERVICE, username)
        except keyring.errors.KeyringLocked:
            raise KeyringLocked("The keyring is locked.", hint="Unlock it, then try again.") from None
        except keyring.errors.KeyringError as error:
            raise EnvironmentNotReady(
                f"Could not read the {field} of {kind} '{name}' from the keyring: {type(error).__name__}.",
                hint=_FIX,
            ) from None
        remember(value)
        self._cache[username] = value
        return value

    def delete(self, kind: str, name: str, field: str) -> None:
        self._cache.pop(self.username(kind, name, field), None)
        if self._directory is not None:
            self._directory.delete(kind, name, field)
            return
        backend = self._ensure()
        with contextlib.suppress(keyring.errors.PasswordDeleteError):
            backend.delete_password(SERVICE, self.username(kind, name, field))


def read_secret_file(path: str | os.PathLike[str], what: str) -> str:
    """A secret given as a file (--password-file, --secret-access-key-file ...): its text without the
    line ending; exit 2 naming the file when it cannot be read or is empty."""
    try:
        text = Path(path).read_text("utf-8")
    except OSError as error:
        raise UsageError(f"Cannot read the {what} file {path}: {error.strerror}.") from None
    value = text.strip("\r\n")
    if not value:
        raise UsageError(f"The {what} file {path} is empty.")
    return value
