"""Build a Source from its config: the one place that maps kinds to classes."""

from __future__ import annotations

from drgui.core.engine.sources.base import Source
from drgui.core.errors import UsageError
from drgui.core.plan.config import SourceConfig
from drgui.core.plan.secrets import SecretStore


def open_source(config: SourceConfig, store: SecretStore | None = None) -> Source:
    if config.kind == "postgres":
        from drgui.core.engine.sources.postgres import PostgresSource

        return PostgresSource(config, store)
    if config.kind == "folder":
        from drgui.core.engine.sources.folder import FolderSource

        return FolderSource(config, store)
    if config.kind == "env":
        from drgui.core.engine.sources.envfile import EnvSource

        return EnvSource(config, store)
    if config.kind == "git":
        from drgui.core.engine.sources.git import GitSource

        return GitSource(config, store)
    if config.kind == "s3":
        from drgui.core.engine.sources.s3 import S3Source

        return S3Source(config, store)
    raise UsageError(f"Unknown source kind '{config.kind}'.", hint="Use postgres, folder, env, s3 or git.")
