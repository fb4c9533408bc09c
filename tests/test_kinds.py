"""The kind registry: every kind declares its settings once, and the CLI, the app's forms, the kit and restore
come from that declaration. The must-show: a toy source kind (a directory of JSON files) written as ONE new
module, registered with `register()`, shows up in `drgui source add --help`, in the app's Add dialog and in
the kit, and backs up and restores."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from drgui.cli.main import main
from drgui.core.engine.destinations.registry import DEST_KINDS
from drgui.core.engine.kinds import BuildContext, Kind, Setting
from drgui.core.engine.sources.registry import SOURCE_KINDS, open_source
from drgui.core.errors import UsageError
from drgui.core.plan.config import SourceConfig
from tests.engine_fixtures import PASSPHRASE

# The whole toy kind: one module, nothing else edited. It reuses the folder capture and declares that a
# restore is a tree of files (restore.py dispatches on `restore_as`, not on the kind's name).
TOY_MODULE = '''
"""A toy source kind: a directory of JSON files (every file must parse)."""

import json
from pathlib import Path

from drgui.core.engine.kinds import RESTORE_TREE, Kind, Setting
from drgui.core.engine.sources.folder import FolderSource
from drgui.core.errors import SourceError


class JsonDirSource(FolderSource):
    kind = "jsondir"

    def describe(self) -> str:
        return f"JSON documents in {self.root}"

    def preflight(self) -> None:
        super().preflight()
        for path in sorted(Path(self.root).glob("*.json")):
            try:
                json.loads(path.read_text("utf-8"))
            except ValueError as error:
                raise SourceError(f"JSON source '{self.name}': {path.name} is not valid JSON ({error}).")


KIND = Kind(
    name="jsondir",
    role="source",
    label="JSON documents",
    description="a directory of JSON documents, each checked to parse",
    settings=(Setting("path", "the directory of .json files", label="Directory", required=True, path=True,
                      widget="dir"),),
    opener=JsonDirSource,
    restore_as=RESTORE_TREE,
)
'''


def load_module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def toy_kind(tmp_path: Path) -> Iterator[Kind]:
    package = tmp_path / "toykinds"
    package.mkdir()
    (package / "jsondir.py").write_text(TOY_MODULE)
    module = load_module(package / "jsondir.py", "toykinds_jsondir")
    kind = SOURCE_KINDS.register(module.KIND)
    yield kind
    SOURCE_KINDS.unregister(kind.name)
    sys.modules.pop("toykinds_jsondir", None)


def drgui(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The CLI in this process (so it sees the kind registered here): exit code, stdout, stderr."""
    os.environ["DRGUI_NO_PROMPT"] = "1"
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # --help
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_every_builtin_kind_declares_itself_once() -> None:
    assert SOURCE_KINDS.names() == ("postgres", "folder", "env", "s3", "git")
    assert DEST_KINDS.names() == ("local", "s3", "drive")
    for kind in (*SOURCE_KINDS.all(), *DEST_KINDS.all()):
        assert kind.label and kind.description and kind.settings, kind.name
        assert len({s.name for s in kind.settings}) == len(kind.settings), kind.name
    for kind in SOURCE_KINDS.all():
        assert kind.restore_as, f"{kind.name} does not say how it restores"
    assert {"password"} == set(SOURCE_KINDS.get("postgres").secret_fields)
    assert {"access_key_id", "secret_access_key", "prune_access_key_id", "prune_secret_access_key"} == set(
        DEST_KINDS.get("s3").secret_fields
    )


def test_unknown_kind_names_the_known_ones() -> None:
    with pytest.raises(UsageError) as refused:
        SOURCE_KINDS.get("ftp")
    assert "Unknown source kind 'ftp'" in refused.value.message
    assert "postgres, folder, env, s3, git" in str(refused.value.hint)


def test_settings_are_checked_by_the_declaration(tmp_path: Path) -> None:
    kind = Kind(
        name="toy",
        role="source",
        label="Toy",
        description="toy",
        settings=(
            Setting("path", "where", required=True, path=True),
            Setting("count", "how many", type=int),
            Setting("tags", "tags", repeatable=True),
            Setting("token", "a token", secret=True, secret_file=True),
        ),
        opener=object,
    )
    ctx = BuildContext("source", "toy", "t1", "plan")
    settings, secrets = kind.build_settings(
        {"path": "~/x", "count": "3", "tags": "a, b,,c"}, {"token": "s3cr3t-value"}, ctx
    )
    assert settings == {"path": str(Path("~/x").expanduser().absolute()), "count": 3, "tags": ["a", "b", "c"]}
    assert secrets == {"token": "s3cr3t-value"}
    with pytest.raises(UsageError, match="needs path"):
        kind.build_settings({}, {}, ctx)
    with pytest.raises(UsageError, match="Source 't1': toy source: count must be a whole number"):
        kind.build_settings({"path": "/x", "count": "many"}, {}, ctx)
    with pytest.raises(UsageError, match="has no setting colour"):
        kind.build_settings({"path": "/x", "colour": "red"}, {}, ctx)


def test_a_toy_kind_is_one_module_and_shows_everywhere(
    toy_kind: Kind, tmp_path: Path, capsys: pytest.CaptureFixture[str], qtbot
) -> None:
    home = tmp_path / "home"
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.json").write_text(json.dumps({"invoice": 1, "total": "12.50"}))
    (docs / "b.json").write_text(json.dumps([1, 2, 3]))
    passphrase = tmp_path / "pass.txt"
    passphrase.write_text(PASSPHRASE + "\n")

    # the CLI: listed with its description by `source add --help`, its own options from its settings
    code, out, _ = drgui(capsys, "source", "add", "--help")
    assert code == 0 and "jsondir" in out and "a directory of JSON documents" in out
    code, out, _ = drgui(capsys, "source", "add", "docs", "jsondir", "--help")
    assert code == 0 and "--path PATH" in out and "the directory of .json files" in out

    assert (
        drgui(capsys, "--home", str(home), "init", "--name", "Toy", "--passphrase-file", str(passphrase))[0]
        == 0
    )
    dest = tmp_path / "dest"
    assert drgui(capsys, "--home", str(home), "dest", "add", "local", "local", "--path", str(dest))[0] == 0
    # its validation is the declaration's: a missing --path is refused as for any kind
    code, _, err = drgui(capsys, "--home", str(home), "source", "add", "docs", "jsondir")
    assert code == 2 and "needs directory (--path)" in err
    code, out, err = drgui(
        capsys, "--home", str(home), "--json", "source", "add", "docs", "jsondir", "--path", str(docs)
    )
    assert code == 0, err
    assert json.loads(out)["description"] == f"JSON documents in {docs}"

    # backup and restore (restore dispatches on the declared `restore_as`)
    code, out, err = drgui(capsys, "--home", str(home), "--json", "backup")
    assert code == 0, err
    assert [s["kind"] for s in json.loads(out)["sources"]] == ["jsondir"]
    restored = tmp_path / "restored"
    code, out, err = drgui(
        capsys,
        "--home",
        str(home),
        "--json",
        "restore",
        "latest",
        "--source",
        "docs",
        "--to-dir",
        str(restored),
    )
    assert code == 0, err
    assert json.loads((restored / "a.json").read_text()) == {"invoice": 1, "total": "12.50"}
    assert json.loads((restored / "b.json").read_text()) == [1, 2, 3]

    # the kit describes it with its label and description
    from drgui.core.plan.home import Home
    from drgui.core.plan.workspace import Workspace
    from drgui.report.kit import build_kit, kit_html

    ws = Workspace(Home(home))
    kit = build_kit(ws)
    (entry,) = kit["sources"]
    assert (entry["label"], entry["description"]) == ("JSON documents", toy_kind.description)
    page = kit_html(kit)
    assert "JSON documents" in page and "a directory of JSON documents" in page and str(docs) in page

    # the app's Add dialog lists it with a form generated from its settings
    from PySide6.QtWidgets import QLineEdit

    from drgui.gui.dialogs import AddDialog
    from drgui.gui.worker import Worker

    worker = Worker()
    dialog = AddDialog(ws, worker, source=True)
    qtbot.addWidget(dialog)
    index = dialog.kind_combo.findData("jsondir")
    assert index >= 0 and dialog.kind_combo.itemText(index) == "JSON documents"
    dialog.set_kind("jsondir")
    assert dialog.form().findChild(QLineEdit, "field_path") is not None
    # and adding through it runs the kind's own checks on the worker
    (docs / "bad.json").write_text("{not json")
    dialog.name_edit.setText("more")
    dialog.form().edits["path"].setText(str(docs))
    dialog.add_button.click()
    qtbot.waitUntil(lambda: "bad.json is not valid JSON" in dialog.error.text(), timeout=30_000)
    assert [s.name for s in Workspace(Home(home)).plan.sources] == ["docs"]
    assert open_source(SourceConfig("x", "jsondir", {"path": str(docs)})).describe().startswith("JSON")
