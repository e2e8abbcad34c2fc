"""The streams and tables the statements declare: ksqlDB's metastore, for one compilation.

A :class:`Source` is a topic with a schema: key columns (in the record key) and value columns,
formats, and, for a windowed table, how its keys carry the window. ``CREATE STREAM|TABLE``
adds one, ``CREATE ... AS SELECT`` adds its sink, ``DROP`` removes one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from streams.ksql import formats
from streams.ksql.ast import SqlType
from streams.ksql.errors import KsqlError

#: ksqlDB's pseudo columns every source has; WINDOWSTART/WINDOWEND only windowed ones.
ROWTIME, ROWPARTITION, ROWOFFSET = "ROWTIME", "ROWPARTITION", "ROWOFFSET"
WINDOWSTART, WINDOWEND = "WINDOWSTART", "WINDOWEND"
BIGINT = SqlType("BIGINT")
INTEGER = SqlType("INTEGER")
SYSTEM_COLUMNS: dict[str, SqlType] = {
    ROWTIME: BIGINT,
    ROWPARTITION: INTEGER,
    ROWOFFSET: BIGINT,
    WINDOWSTART: BIGINT,
    WINDOWEND: BIGINT,
}


@dataclass(frozen=True)
class Column:
    name: str
    type: SqlType
    key: bool = False


@dataclass(frozen=True)
class WindowInfo:
    """How a windowed source's keys carry their window: time windows (start; end = start +
    size) or sessions (start and end)."""

    kind: Literal["time", "session"]
    size_ms: int | None = None


@dataclass
class Source:
    """A stream or table: its topic, schema and formats."""

    name: str
    kind: Literal["STREAM", "TABLE"]
    topic: str
    columns: tuple[Column, ...]
    key_format: str
    value_format: str
    properties: dict[str, Any] = field(default_factory=dict)
    window: WindowInfo | None = None
    timestamp_column: str | None = None
    timestamp_format: str | None = None
    partitions: int | None = None
    #: The query that writes it (None: declared over an existing topic).
    query_id: str | None = None
    #: ``CREATE SOURCE``: no INSERT INTO, no DELETE TOPIC.
    read_only: bool = False

    @property
    def key_columns(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.key)

    @property
    def value_columns(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if not c.key)

    def column(self, name: str) -> Column | None:
        for column in self.columns:
            if column.name == name:
                return column
        return None

    @cached_property
    def key_serde(self) -> formats.Serde:
        columns = [(c.name, c.type) for c in self.key_columns]
        return formats.key_serde(
            self.key_format, columns, self.properties, topic=self.topic, source=self.name
        )

    @cached_property
    def value_serde(self) -> formats.Serde:
        columns = [(c.name, c.type) for c in self.value_columns]
        return formats.value_serde(self.value_format, columns, self.properties, topic=self.topic)

    @cached_property
    def windowed_key_serde(self) -> formats.WindowedSerde:
        assert self.window is not None
        return formats.windowed_key_serde(self.key_serde, self.window.kind, self.window.size_ms)

    def schema_text(self) -> str:
        """ksqlDB's schema text: ``A INT KEY, B STRING``."""
        parts = []
        for c in self.columns:
            suffix = (" PRIMARY KEY" if self.kind == "TABLE" else " KEY") if c.key else ""
            parts.append(f"{c.name} {c.type}{suffix}")
        return ", ".join(parts)


class Catalog:
    """Sources by name, as the statements so far declared them."""

    def __init__(self) -> None:
        self.sources: dict[str, Source] = {}

    def get(self, name: str) -> Source:
        source = self.sources.get(name)
        if source is None:
            raise KsqlError(f"{name} does not exist.")
        return source

    def add(self, source: Source, replace: bool = False) -> None:
        existing = self.sources.get(source.name)
        if existing is not None and not replace:
            kind = existing.kind.lower()
            raise KsqlError(
                f"Cannot add {source.kind.lower()} '{source.name}': A {kind} with the same "
                "name already exists"
            )
        self.sources[source.name] = source

    def drop(self, name: str, if_exists: bool) -> None:
        if name not in self.sources:
            if if_exists:
                return
            raise KsqlError(f"Source {name} does not exist.")
        del self.sources[name]
