"""docs/restore-by-hand.md, step by step, with Debian's age and zstd, tar, pg_restore and git only."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from drgui.core.engine.sources.postgres import count_rows
from drgui.core.pg.pgtools import find_tool
from tests.engine_fixtures import PASSPHRASE, BackedUp
from tests.support import need

pytestmark = pytest.mark.integration

AGE = Path("/usr/bin/age")
ZSTD = Path("/usr/bin/zstd")


def age_with_passphrase(argv: list[str], passphrase: str, cwd: Path) -> None:
    """Run `age` on a pseudo-terminal (it reads passphrases only from a terminal) and type the passphrase:
    util-linux `script` gives it one and forwards our stdin to it (no fork() in this threaded process)."""
    result = subprocess.run(
        ["script", "-qec", shlex.join(argv), "/dev/null"],
        input=passphrase.encode() + b"\n",
        cwd=cwd,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout.decode(errors="replace")


def sh(script: str, cwd: Path) -> str:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, f"{script}\n{result.stderr}"
    return result.stdout


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_restore_by_hand_as_documented(pg18_backup: BackedUp, tmp_path: Path) -> None:
    need(AGE.exists() and ZSTD.exists(), "Debian's age and zstd (apt install age zstd)")
    need(shutil.which("script") is not None, "util-linux script (a terminal for age's passphrase prompt)")
    assert "age -d -o key.txt" in (Path(__file__).parents[1] / "docs" / "restore-by-hand.md").read_text()
    dest = pg18_backup.plan.dest_dir
    scope = dest / pg18_backup.plan.plan_id  # the plan's folder at the destination
    snap = (
        scope
        / "snapshots"
        / sorted(p.name for p in (scope / "snapshots").iterdir() if "partial" not in p.name)[-1]
    )
    work = tmp_path / "restore"
    work.mkdir(mode=0o700)
    env_line = f"DEST={scope} SNAP={snap} AGE={AGE} ZSTD={ZSTD}\n"

    # 1. Unlock the key with the passphrase, on a terminal as age insists.
    age_with_passphrase([str(AGE), "-d", "-o", "key.txt", str(scope / "identity.age")], PASSPHRASE, work)
    assert (work / "key.txt").read_text().count("AGE-SECRET-KEY-1") == 1

    # 2. The manifest, and the ciphertext hashes against it.
    sh(env_line + '$AGE -d -i key.txt "$SNAP/manifest.age" | python3 -m json.tool > manifest.json', work)
    manifest = json.loads((work / "manifest.json").read_text())
    parts = {p["path"]: p for s in manifest["sources"] for p in s["parts"]}
    assert len(parts) == 5
    listed = sh(env_line + 'sha256sum "$SNAP"/parts/*/*.age', work)
    for line in listed.splitlines():
        digest, path = line.split(maxsplit=1)
        assert parts[str(Path(path).relative_to(snap))]["cipher_sha256"] == digest

    # 3. PostgreSQL into a NEW database.
    sh(env_line + '$AGE -d -i key.txt "$SNAP/parts/db/db.dump.zst.age" | $ZSTD -d -q > db.dump', work)
    assert sha256(work / "db.dump") == parts["parts/db/db.dump.zst.age"]["sha256"]
    cluster = pg18_backup.database.cluster
    target = f"{pg18_backup.database.dbname}_byhand"
    cluster.create_database(target)
    try:
        subprocess.run(
            [
                str(find_tool("pg_restore")),
                "--no-owner",
                "-d",
                cluster.conninfo(target, host=str(cluster.socket_dir)),
                str(work / "db.dump"),
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
        with cluster.connect(target) as conn:
            restored = {(t["schema"], t["table"]): t["rows"] for t in count_rows(conn)}
            large_objects = conn.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()
        db_entry = next(s for s in manifest["sources"] if s["name"] == "db")
        assert restored == {(t["schema"], t["table"]): t["rows"] for t in db_entry["tables"]}
        assert large_objects is not None and large_objects[0] == db_entry["large_objects"]
    finally:
        cluster.drop_database(target)
    sh(env_line + '$AGE -d -i key.txt "$SNAP/parts/db/globals.sql.zst.age" | $ZSTD -d -q > globals.sql', work)
    assert "CREATE ROLE" in (work / "globals.sql").read_text()

    # 4. The folder, checked file by file against the manifest.
    (work / "files").mkdir()
    sh(
        env_line + '$AGE -d -i key.txt "$SNAP/parts/files/files.tar.zst.age" | $ZSTD -d -q | tar -x -C files',
        work,
    )
    files_entry = next(s for s in manifest["sources"] if s["name"] == "files")
    for item in files_entry["files"]:
        restored = work / "files" / item["path"]
        if item["type"] == "dir":
            assert restored.is_dir() and not restored.is_symlink()
        elif item["type"] == "symlink":
            assert os.readlink(restored) == item["target"]
        else:
            assert sha256(restored) == item["sha256"]
            assert restored.read_bytes() == (pg18_backup.folder / item["path"]).read_bytes()

    # 5. The .env (age only).
    sh(env_line + '$AGE -d -i key.txt -o .env "$SNAP/parts/env/env.age"', work)
    assert (work / ".env").read_bytes() == pg18_backup.env_file.read_bytes()

    # 6. The git repository.
    sh(env_line + '$AGE -d -i key.txt "$SNAP/parts/repo/repo.bundle.age" | $ZSTD -d -q > repo.bundle', work)
    sh("git clone -q repo.bundle repo", work)
    head = sh("git -C repo rev-parse HEAD", work).strip()
    assert head == sh(f"git -C {pg18_backup.repo} rev-parse HEAD", work).strip()
    assert "v1" in sh("git -C repo tag", work)

    # 7. Clean up.
    sh("shred -u key.txt 2>/dev/null || rm -f key.txt", work)
    assert not (work / "key.txt").exists()
    shutil.rmtree(work)
