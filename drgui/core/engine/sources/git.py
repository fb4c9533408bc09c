"""A git repository as a bundle of all refs (`git bundle create - --all`), restorable with `git clone`."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Generator
from pathlib import Path

from drgui.core.engine.kinds import RESTORE_REPOSITORY, Kind, Setting
from drgui.core.engine.sources.base import CaptureContext, ChildProcess, PartStream, Source
from drgui.core.errors import EnvironmentNotReady, SourceError
from drgui.core.plan.secrets import redact


def git_binary() -> str:
    git = shutil.which("git")
    if not git:
        raise EnvironmentNotReady("git is not installed.", hint="Install git (apt install git).")
    return git


class GitSource(Source):
    kind = "git"

    @property
    def path(self) -> Path:
        return Path(self.config.settings["path"]).expanduser()

    def describe(self) -> str:
        return f"git repository {self.path}"

    def _git(self, *args: str) -> str:
        result = subprocess.run(
            [git_binary(), "-C", str(self.path), *args], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise SourceError(
                f"Git source '{self.name}': git {args[0]} failed: {redact(result.stderr.strip())}",
                hint="Check that the path is a git repository with at least one commit.",
            )
        return result.stdout

    def refs(self) -> dict[str, str]:
        refs = {}
        for line in self._git("for-each-ref", "--format=%(objectname) %(refname)").splitlines():
            sha, _, ref = line.partition(" ")
            refs[ref] = sha
        return refs

    def preflight(self) -> None:
        if not self.path.exists():
            raise SourceError(f"Git source '{self.name}': {self.path} does not exist.")
        self._git("rev-parse", "--git-dir")
        if not self.refs():
            raise SourceError(
                f"Git source '{self.name}': the repository has no commits yet.",
                hint="Commit something first, or remove the source.",
            )

    def capture(self, ctx: CaptureContext) -> Generator[PartStream, None, None]:
        refs = self.refs()
        head = self._git("rev-parse", "HEAD").strip() if refs else None
        child = ChildProcess(
            [git_binary(), "-C", str(self.path), "bundle", "create", "-", "--all"],
            stderr_path=ctx.workdir / f"{self.name}-git.log",
        )
        try:
            yield PartStream("repo.bundle", child.stdout, compressed=True)
        except BaseException:
            child.stop()
            raise
        code = child.wait()
        if code != 0:
            raise SourceError(f"git bundle of '{self.name}' failed: {redact(child.stderr_tail())}")
        ctx.manifest.update({"path": str(self.path), "head": head, "refs": refs})


KIND = Kind(
    name="git",
    role="source",
    label="Git repository",
    description="a git repository, as a bundle of every ref",
    settings=(Setting("path", "the repository", label="Repository", required=True, path=True, widget="dir"),),
    opener=GitSource,
    restore_as=RESTORE_REPOSITORY,
    order=4,
)
