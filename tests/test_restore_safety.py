"""Folder restores that keep their promise (issue 11 items 2, 3, 4, 7): symlinks stay links, empty
directories come back, nothing is written before every hash is checked, nothing lands outside the
target, `restore --overwrite` first takes a safety snapshot, and `verify --deep` agrees with restore."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.engine_fixtures import Plan, ok

pytestmark = pytest.mark.integration


def build_tricky_folder(root: Path, outside: Path) -> Path:
    """Absolute, outside and inside links, a link to a directory, an empty dir, a fifo, non-ASCII names."""
    outside.mkdir(parents=True, exist_ok=True)
    (outside / "secret.txt").write_text("outside the folder\n")
    (root / "releases" / "v2").mkdir(parents=True)
    (root / "releases" / "v2" / "app.py").write_text("print('v2')\n")
    (root / "current").symlink_to("releases/v2")  # inside
    (root / "absolute").symlink_to("/etc/hostname")  # absolute
    (root / "node_modules" / ".bin").mkdir(parents=True)
    (root / "node_modules" / ".bin" / "tool").symlink_to("../../../outside/secret.txt")  # points outside
    (root / "outside-dir").symlink_to(outside)  # a link to a directory: never followed at backup
    (root / "dangling").symlink_to("does/not/exist")
    (root / "uploads" / "tmp").mkdir(parents=True)  # empty directory
    (root / "uploads" / "tmp").chmod(0o750)
    (root / "données").mkdir()
    (root / "données" / "résumé €.txt").write_text("non-ASCII name\n")
    (root / "script.sh").write_text("#!/bin/sh\n")
    (root / "script.sh").chmod(0o755)
    os.mkfifo(root / "pipe")
    return root


def tree(root: Path) -> dict[str, Any]:
    """Everything about a directory tree that a restore could change, without following links."""
    found: dict[str, Any] = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        relative = path.relative_to(root).as_posix()
        if stat.S_ISLNK(info.st_mode):
            found[relative] = ("link", os.readlink(path))
        elif stat.S_ISDIR(info.st_mode):
            found[relative] = ("dir", stat.S_IMODE(info.st_mode))
        elif stat.S_ISREG(info.st_mode):
            found[relative] = ("file", path.read_bytes(), stat.S_IMODE(info.st_mode), info.st_mtime_ns)
        else:
            found[relative] = ("special",)
    return found


def folder_plan(new_plan, folder: Path) -> Plan:
    plan = new_plan()
    ok(plan.cli("--json", "source", "add", "files", "folder", "--path", str(folder)))
    return plan


def backup(plan: Plan) -> dict[str, Any]:
    result = ok(plan.cli("--json", "backup")).json()
    assert result["ok"], result
    return result


def test_links_empty_dirs_and_special_files_round_trip(new_plan, tmp_path: Path) -> None:
    folder = build_tricky_folder(tmp_path / "site", tmp_path / "outside")
    plan = folder_plan(new_plan, folder)
    result = backup(plan)
    warnings = result["sources"][0].get("warnings", [])
    assert any("pipe" in w and "fifo" in w for w in warnings), result
    assert ok(plan.cli("--json", "verify", "--deep")).json()["ok"]

    restored = tmp_path / "restored"
    report = ok(
        plan.cli("--json", "restore", "latest", "--source", "files", "--to-dir", str(restored))
    ).json()
    assert report["ok"], report
    expected = {k: v for k, v in tree(folder).items() if k != "pipe"}
    got = tree(restored)
    assert got.keys() == expected.keys()
    for relative, value in expected.items():
        if value[0] == "file":  # content and mode exactly; mtime to the second (tar keeps seconds)
            assert got[relative][:3] == value[:3], relative
            assert got[relative][3] // 10**9 == value[3] // 10**9, relative
        else:
            assert got[relative] == value, relative
    assert os.readlink(restored / "absolute") == "/etc/hostname"
    assert os.readlink(restored / "node_modules" / ".bin" / "tool") == "../../../outside/secret.txt"
    assert (restored / "uploads" / "tmp").is_dir() and not any((restored / "uploads" / "tmp").iterdir())
    assert not (restored / "pipe").exists()
    assert [p.name for p in tmp_path.iterdir() if "drgui-restore" in p.name] == []


def test_manifest_records_types(new_plan, tmp_path: Path) -> None:
    from drgui.core.engine.verify import load_manifest
    from drgui.core.plan.home import Home
    from drgui.core.plan.workspace import Workspace

    folder = build_tricky_folder(tmp_path / "site", tmp_path / "outside")
    plan = folder_plan(new_plan, folder)
    snapshot_id = backup(plan)["snapshot"]
    ws = Workspace(Home(plan.home))
    dest = ws.destination("local")
    entry = load_manifest(dest, dest.read_index(snapshot_id), ws.identity())["sources"][0]
    files = {f["path"]: f for f in entry["files"]}
    assert files["absolute"]["type"] == "symlink" and files["absolute"]["target"] == "/etc/hostname"
    assert files["outside-dir"]["type"] == "symlink"
    assert not any(p.startswith("outside-dir/") for p in files), "a link to a directory was followed"
    assert files["uploads/tmp"]["type"] == "dir" and files["uploads/tmp"]["mode"] == 0o750
    script = files["script.sh"]
    assert script["type"] == "file" and script["mode"] == 0o755 and script["size"] == 10
    assert script["sha256"] == hashlib.sha256(b"#!/bin/sh\n").hexdigest() and "mtime" in script
    assert "pipe" not in files
    assert entry["warnings"]


# --- broken snapshots: verify --deep and restore must agree ---------------------------------------------
def _snapshot_dir(plan: Plan, snapshot_id: str) -> Path:
    return plan.snapshots_root / snapshot_id


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o644
    info.mtime = 1_700_000_000
    return info


def replace_folder_part(plan: Plan, snapshot_id: str, tar_bytes: bytes, files: list[dict[str, Any]]) -> None:
    """Re-encrypt the folder part of a snapshot as `tar_bytes` and make the manifest and index agree with it,
    as an attacker with the public key (or a buggy writer) could: every hash then matches."""
    from drgui.core.engine.crypto import decrypt_bytes, encrypt_bytes
    from drgui.core.engine.pipeline import write_part
    from drgui.core.engine.snapshot import Index, PartRecord
    from drgui.core.plan.home import Home
    from drgui.core.plan.workspace import Workspace

    ws = Workspace(Home(plan.home))
    directory = _snapshot_dir(plan, snapshot_id)
    record = PartRecord("files", "files.tar.zst", True)
    with open(directory / record.key, "wb") as out:
        write_part(record, io.BytesIO(tar_bytes), out, ws.plan.recipient)
    manifest = json.loads(decrypt_bytes((directory / "manifest.age").read_bytes(), ws.identity()))
    entry = next(s for s in manifest["sources"] if s["name"] == "files")
    entry["parts"] = [record.to_manifest()]
    entry["files"] = files
    cipher = encrypt_bytes(json.dumps(manifest, sort_keys=True).encode(), ws.plan.recipient)
    (directory / "manifest.age").write_bytes(cipher)
    index = Index.from_bytes((directory / "index.json").read_bytes())
    index.parts = [record.to_index() if p["source"] == "files" else p for p in index.parts]
    index.manifest = {**index.manifest, "size": len(cipher), "sha256": hashlib.sha256(cipher).hexdigest()}
    (directory / "index.json").write_bytes(index.to_bytes())


def _file_entry(path: str, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    return {
        "path": path,
        "type": "file",
        "size": len(data),
        "mtime": 1_700_000_000,
        "mode": 0o644,
        "sha256": digest,
    }


def _link_entry(path: str, target: str) -> dict[str, Any]:
    return {"path": path, "type": "symlink", "target": target, "mtime": 1_700_000_000}


EVIL = b"written where it must not be\n"


def hostile_parts(outside: Path) -> dict[str, tuple[bytes, list[dict[str, Any]]]]:
    """Tar parts that every hash vouches for but that restore must refuse."""
    return {
        "dotdot": (_tar([(_member("../escape.txt"), EVIL)]), [_file_entry("../escape.txt", EVIL)]),
        "absolute": (
            _tar([(_member(str(outside / "abs.txt")), EVIL)]),
            [_file_entry(str(outside / "abs.txt"), EVIL)],
        ),
        "through-link": (
            _tar([(_member("out", tarfile.SYMTYPE, str(outside)), None), (_member("out/through.txt"), EVIL)]),
            [_link_entry("out", str(outside)), _file_entry("out/through.txt", EVIL)],
        ),
        "hard-link": (
            _tar([(_member("hard", tarfile.LNKTYPE, "/etc/passwd"), None)]),
            [{"path": "hard", "type": "file", "size": 0, "sha256": hashlib.sha256(b"").hexdigest()}],
        ),
        "unlisted": (_tar([(_member("extra.txt"), EVIL)]), []),
    }


def test_deep_verify_and_restore_agree(new_plan, tmp_path: Path) -> None:
    folder = build_tricky_folder(tmp_path / "site", tmp_path / "outside-data")
    plan = folder_plan(new_plan, folder)
    good = backup(plan)["snapshot"]
    outside = tmp_path / "outside"
    outside.mkdir()
    cases: dict[str, str] = {"good": good}
    for name, (tar_bytes, files) in hostile_parts(outside).items():
        cases[name] = backup(plan)["snapshot"]
        replace_folder_part(plan, cases[name], tar_bytes, files)
    cases["old-format"] = backup(plan)["snapshot"]  # as written before issue 11: no types, no directories
    old_file = {k: v for k, v in _file_entry("docs/a.txt", b"old\n").items() if k != "type"}
    replace_folder_part(
        plan,
        cases["old-format"],
        _tar([(_member("docs/a.txt"), b"old\n"), (_member("link", tarfile.SYMTYPE, "/etc/hostname"), None)]),
        [old_file, {"path": "link", "symlink": "/etc/hostname"}],
    )
    cases["flipped"] = backup(plan)["snapshot"]
    _flip_byte(_snapshot_dir(plan, cases["flipped"]) / "parts/files/files.tar.zst.age")
    (folder / "newer.txt").write_text("another snapshot\n")
    cases["swapped"] = backup(plan)["snapshot"]
    donor = backup(plan)["snapshot"]
    shutil.copy(
        _snapshot_dir(plan, donor) / "parts/files/files.tar.zst.age",
        _snapshot_dir(plan, cases["swapped"]) / "parts/files/files.tar.zst.age",
    )
    cases["no-manifest"] = backup(plan)["snapshot"]
    (_snapshot_dir(plan, cases["no-manifest"]) / "manifest.age").unlink()

    verdicts = {}
    for name, snapshot_id in cases.items():
        deep = plan.cli("--json", "verify", snapshot_id, "--deep")
        target = tmp_path / f"restore-{name}"
        restored = plan.cli("--json", "restore", snapshot_id, "--source", "files", "--to-dir", str(target))
        for result in (deep, restored):
            assert "Traceback" not in result.stderr, str(result)
            assert result.code in (0, 1), str(result)
            result.json()
        verdicts[name] = (deep.code == 0, restored.code == 0)
        assert deep.json()["ok"] == (deep.code == 0) and restored.json()["ok"] == (restored.code == 0)
        if restored.code != 0:
            assert not target.exists(), f"{name}: a refused restore left {target}"
    assert verdicts == {name: (name in ("good", "old-format"),) * 2 for name in cases}, verdicts
    assert os.readlink(tmp_path / "restore-old-format" / "link") == "/etc/hostname"
    assert list(outside.iterdir()) == [], "a restore wrote outside its target"
    assert not (tmp_path / "escape.txt").exists()
    assert [p.name for p in tmp_path.iterdir() if "drgui-restore" in p.name] == []


def test_missing_manifest_is_a_clean_error(new_plan, tmp_path: Path) -> None:
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "a.txt").write_text("a\n")
    plan = folder_plan(new_plan, folder)
    snapshot_id = backup(plan)["snapshot"]
    (_snapshot_dir(plan, snapshot_id) / "manifest.age").unlink()
    for argv in (
        ["verify", snapshot_id, "--deep"],
        ["restore", snapshot_id, "--source", "files", "--to-dir", str(tmp_path / "r")],
    ):
        result = plan.cli("--json", *argv)
        assert result.code == 1, str(result)
        assert "Traceback" not in result.stderr
        report = result.json()
        assert not report["ok"]
        assert "manifest.age" in json.dumps(report), report


# --- a failed restore leaves the target exactly as it was -------------------------------------------------
@pytest.mark.parametrize("damage", ["flipped", "swapped"])
def test_damaged_part_leaves_target_untouched(new_plan, tmp_path: Path, damage: str) -> None:
    folder = tmp_path / "site"
    (folder / "sub").mkdir(parents=True)
    for number in range(60):
        (folder / "sub" / f"f{number:02}.txt").write_bytes(os.urandom(2000))
    plan = folder_plan(new_plan, folder)
    snapshot_id = backup(plan)["snapshot"]
    part = _snapshot_dir(plan, snapshot_id) / "parts/files/files.tar.zst.age"
    if damage == "flipped":
        _flip_byte(part)
    else:
        (folder / "sub" / "f00.txt").write_bytes(b"changed")
        donor = backup(plan)["snapshot"]
        shutil.copy(_snapshot_dir(plan, donor) / "parts/files/files.tar.zst.age", part)

    live = tmp_path / "live"
    (live / "sub").mkdir(parents=True)
    (live / "sub" / "f00.txt").write_text("live data, not in any snapshot\n")
    (live / "keep.txt").write_text("keep me\n")
    before = tree(live)
    parent_before = sorted(p.name for p in tmp_path.iterdir())
    snapshots_before = [p.name for p in plan.snapshot_dirs()]
    result = plan.cli(
        "--json", "restore", snapshot_id, "--source", "files", "--to-dir", str(live), "--overwrite"
    )
    assert result.code == 1, str(result)
    assert "Traceback" not in result.stderr
    assert not result.json()["ok"]
    assert tree(live) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == parent_before, "a temp directory was left"
    assert [p.name for p in plan.snapshot_dirs()] == snapshots_before, "nothing was replaced: no safety copy"

    fresh = tmp_path / "fresh"
    result = plan.cli("--json", "restore", snapshot_id, "--source", "files", "--to-dir", str(fresh))
    assert result.code == 1, str(result)
    assert not fresh.exists()


# --- restore --overwrite onto the live folder ---------------------------------------------------------------
def test_overwrite_takes_a_safety_snapshot_that_restores(new_plan, tmp_path: Path) -> None:
    folder = tmp_path / "site"
    (folder / "docs").mkdir(parents=True)
    (folder / "docs" / "report.txt").write_text("version 1\n")
    (folder / "logo.png").write_bytes(b"\x89PNG v1")
    (folder / "empty").mkdir()
    plan = folder_plan(new_plan, folder)
    snapshot_id = backup(plan)["snapshot"]

    (folder / "docs" / "report.txt").write_text("version 2, never backed up\n")
    (folder / "notes.txt").write_text("only in the live folder\n")
    (folder / "logo.png").unlink()
    (folder / "logo.png").symlink_to("/nonexistent/logo")
    refused = plan.cli("--json", "restore", snapshot_id, "--source", "files", "--to-dir", str(folder))
    assert refused.code == 2, str(refused)

    result = ok(
        plan.cli(
            "--json", "restore", snapshot_id, "--source", "files", "--to-dir", str(folder), "--overwrite"
        )
    )
    report = result.json()
    assert report["ok"], report
    safety = report["safety_snapshot"]
    assert safety and safety != snapshot_id
    assert (folder / "docs" / "report.txt").read_text() == "version 1\n"
    assert (folder / "logo.png").read_bytes() == b"\x89PNG v1" and not (folder / "logo.png").is_symlink()
    assert (folder / "notes.txt").read_text() == "only in the live folder\n", "files not in the snapshot stay"
    assert (folder / "empty").is_dir()

    human = plan.cli("restore", snapshot_id, "--source", "files", "--to-dir", str(folder), "--overwrite")
    assert human.code == 0 and "safety snapshot" in (human.stdout + human.stderr).lower(), str(human)

    back = tmp_path / "before-restore"
    ok(plan.cli("--json", "restore", safety, "--source", "pre-restore-files", "--to-dir", str(back)))
    assert (back / "docs" / "report.txt").read_text() == "version 2, never backed up\n"
    assert (back / "notes.txt").read_text() == "only in the live folder\n"
    assert os.readlink(back / "logo.png") == "/nonexistent/logo"
    assert ok(plan.cli("--json", "verify", safety, "--deep")).json()["ok"]


def test_stock_tar_restores_links_and_empty_dirs(new_plan, tmp_path: Path) -> None:
    """docs/restore-by-hand.md section 4 on a folder with links and an empty directory."""
    import subprocess

    from drgui.core.plan.home import Home
    from drgui.core.plan.workspace import Workspace

    folder = build_tricky_folder(tmp_path / "site", tmp_path / "outside")
    plan = folder_plan(new_plan, folder)
    snapshot_id = backup(plan)["snapshot"]
    key = tmp_path / "key.txt"
    key.write_text(Workspace(Home(plan.home)).identity() + "\n")
    key.chmod(0o600)
    out = tmp_path / "by-hand"
    out.mkdir()
    part = _snapshot_dir(plan, snapshot_id) / "parts/files/files.tar.zst.age"
    subprocess.run(
        [
            "bash",
            "-euo",
            "pipefail",
            "-c",
            f"/usr/bin/age -d -i {key} {part} | /usr/bin/zstd -d -q | tar -x -C {out}",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    expected = {k: v for k, v in tree(folder).items() if k != "pipe"}
    got = tree(out)
    assert got.keys() == expected.keys()
    for relative, value in expected.items():
        assert got[relative][:3] == value[:3], relative


def test_overwrite_never_writes_through_a_link_of_the_target(new_plan, tmp_path: Path) -> None:
    folder = tmp_path / "site"
    (folder / "uploads").mkdir(parents=True)
    (folder / "uploads" / "a.txt").write_text("from the snapshot\n")
    plan = folder_plan(new_plan, folder)
    snapshot_id = backup(plan)["snapshot"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "a.txt").write_text("not ours\n")
    shutil.rmtree(folder / "uploads")
    (folder / "uploads").symlink_to(elsewhere)
    report = ok(
        plan.cli(
            "--json", "restore", snapshot_id, "--source", "files", "--to-dir", str(folder), "--overwrite"
        )
    ).json()
    assert (elsewhere / "a.txt").read_text() == "not ours\n" and len(list(elsewhere.iterdir())) == 1
    assert (folder / "uploads").is_dir() and not (folder / "uploads").is_symlink()
    assert (folder / "uploads" / "a.txt").read_text() == "from the snapshot\n"
    back = tmp_path / "back"
    ok(
        plan.cli(
            "--json",
            "restore",
            report["safety_snapshot"],
            "--source",
            "pre-restore-files",
            "--to-dir",
            str(back),
        )
    )
    assert os.readlink(back / "uploads") == str(elsewhere)


def test_a_safety_snapshot_is_never_latest_nor_takes_a_backups_retention_place(
    new_plan, tmp_path: Path
) -> None:
    """`latest` means the newest backup; keep-last 1 keeps that backup and the safety snapshot beside it,
    and the safety snapshot goes once it is older than its 30 days."""
    from datetime import UTC, datetime, timedelta

    from drgui.core.ops.prune import prune
    from drgui.core.plan.config import save
    from drgui.core.plan.home import Home
    from drgui.core.plan.workspace import Workspace

    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "a.txt").write_text("one\n")
    plan = folder_plan(new_plan, folder)
    snapshot_id = backup(plan)["snapshot"]
    (folder / "a.txt").write_text("two\n")
    report = ok(
        plan.cli(
            "--json", "restore", snapshot_id, "--source", "files", "--to-dir", str(folder), "--overwrite"
        )
    ).json()
    safety = report["safety_snapshot"]

    again = ok(plan.cli("--json", "restore", "latest", "--source", "files", "--to-dir", str(tmp_path / "x")))
    assert again.json()["snapshot"] == snapshot_id
    assert ok(plan.cli("--json", "verify", "latest")).json()["snapshot"] == snapshot_id
    assert ok(plan.cli("--json", "verify", "latest")).json()["ok"]

    ws = Workspace(Home(plan.home))
    ws.plan.destinations[0].retention = {"last": 1}
    save(ws.home, ws.plan)
    ws = Workspace(Home(plan.home))
    today = prune(ws, dry_run=True).destinations[0]
    assert sorted(today.keep) == sorted([snapshot_id, safety]) and today.remove == []
    later = prune(ws, dry_run=True, now=datetime.now(UTC) + timedelta(days=31)).destinations[0]
    assert later.keep == [snapshot_id] and later.remove == [safety], later.reasons


def test_killed_restore_leaves_no_staging_dir_after_the_next_command(new_plan, tmp_path: Path) -> None:
    """`kill -9` while a folder is being unpacked beside its target: the next drgui command removes the
    staging directory (it holds a partial copy of the restored files)."""
    import signal
    import subprocess
    import time

    from tests.engine_fixtures import cli_argv, cli_env

    folder = tmp_path / "site"
    folder.mkdir()
    for number in range(40):  # incompressible, so the restore takes a while
        (folder / f"blob{number}.bin").write_bytes(os.urandom(2 * 1024 * 1024))
    plan = folder_plan(new_plan, folder)
    snapshot_id = backup(plan)["snapshot"]
    target = tmp_path / "restored"
    scratch_dir = plan.home / "scratch"
    restore = subprocess.Popen(
        cli_argv(plan.home, "restore", snapshot_id, "--source", "files", "--to-dir", str(target)),
        env=cli_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        staging: list[Path] = []
        while time.monotonic() < deadline and restore.poll() is None:
            staging = list(tmp_path.glob(".restored.drgui-restore-*"))
            pointers = list(scratch_dir.glob("staging-*/elsewhere")) if scratch_dir.is_dir() else []
            if staging and pointers and any((s / "tree").exists() for s in staging):
                break
            time.sleep(0.01)
        assert restore.poll() is None, (
            "the restore finished before it could be killed: make the folder bigger"
        )
        os.kill(restore.pid, signal.SIGKILL)
    finally:
        restore.kill()
        restore.wait()
    assert staging and all(s.exists() for s in staging), "killed: nothing cleaned up yet"
    assert not target.exists()
    ok(plan.cli("--json", "snapshots"))
    assert not any(s.exists() for s in staging), "the next command removes the staging directory"
    assert not list(scratch_dir.glob("staging-*"))
