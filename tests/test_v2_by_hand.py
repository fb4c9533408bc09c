"""docs/restore-by-hand.md section 4b (format 2), run as written with Debian's age, zstd and tar."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine_fixtures import PASSPHRASE, make_plan, ok
from tests.support import need
from tests.test_engine_restore_by_hand import AGE, ZSTD, age_with_passphrase
from tests.test_v2_format import assert_same_tree

pytestmark = pytest.mark.integration

DOC = Path(__file__).parents[1] / "docs" / "restore-by-hand.md"


@pytest.fixture(autouse=True)
def format_2(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("DRGUI_SNAPSHOT_FORMAT", "2")
    yield


def section_4b_script() -> str:
    text = DOC.read_text()
    section = text[text.index("## 4b.") : text.index("## 5.")]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "section 4b has one shell block"
    return blocks[0]


def test_a_format_2_folder_restores_by_hand_as_documented(tmp_path: Path) -> None:
    need(AGE.exists() and ZSTD.exists(), "Debian's age and zstd (apt install age zstd)")
    need(shutil.which("script") is not None, "util-linux script (a terminal for age's passphrase prompt)")
    data = tmp_path / "data"
    (data / "docs" / "deep").mkdir(parents=True)
    (data / "empty").mkdir()
    (data / "docs" / "a.txt").write_text("alpha\n")
    (data / "docs" / "copy of a.txt").write_text("alpha\n")  # same content: one member, two paths
    (data / "docs" / "deep" / "big.bin").write_bytes(os.urandom(300_000))
    (data / "link").symlink_to("docs/a.txt")
    (data / "outside").symlink_to("/etc/hostname")
    plan = make_plan(tmp_path / "plan")
    ok(plan.cli("--json", "source", "add", "files", "folder", "--path", str(data)))
    ok(plan.cli("--json", "backup"))
    (data / "docs" / "day2.txt").write_text("day two\n")  # the latest snapshot needs two packs
    (data / "docs" / "a.txt").unlink()
    snapshot_id = ok(plan.cli("--json", "backup")).json()["snapshot"]

    scope = plan.dest_dir / plan.plan_id
    snap = scope / "snapshots" / snapshot_id
    work = tmp_path / "restore"
    work.mkdir(mode=0o700)
    age_with_passphrase([str(AGE), "-d", "-o", "key.txt", str(scope / "identity.age")], PASSPHRASE, work)
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in (AGE, ZSTD):
        (tools / tool.name).symlink_to(tool)
    env = {**os.environ, "PATH": f"{tools}:/usr/bin:/bin", "DEST": str(scope), "SNAP": str(snap)}
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", section_4b_script()],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert_same_tree(data, work / "files")
    assert not (work / "contents").exists()
