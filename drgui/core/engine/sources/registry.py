"""The source kinds (every module of this package that declares `KIND`) and opening a Source from its config."""

from __future__ import annotations

from drgui.core.engine.kinds import Kind, KindRegistry
from drgui.core.engine.sources.base import Source
from drgui.core.plan.config import SourceConfig
from drgui.core.plan.secrets import SecretStore

SOURCE_KINDS = KindRegistry("source", "drgui.core.engine.sources")


def source_kind(name: str) -> Kind:
    return SOURCE_KINDS.get(name)


def open_source(config: SourceConfig, store: SecretStore | None = None) -> Source:
    source = source_kind(config.kind).opener(config, store)
    assert isinstance(source, Source)
    return source
