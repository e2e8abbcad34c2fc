"""ksqlDB statements -> a :class:`Program`: the catalog of sources and one Quix Streams topology
per persistent query, built from :mod:`streams.operators`.

:func:`compile_sql` runs the statements in order, as ksqlDB's engine does: ``CREATE STREAM|TABLE``
declares a source over a topic, ``CREATE ... AS SELECT`` and ``INSERT INTO`` plan a persistent
query (checked now, with ksqlDB's messages), ``SET``/``UNSET`` change properties, ``DROP`` and
``TERMINATE`` remove. :meth:`Program.setup` then wires every query onto a Quix ``Application``
(the same call the test driver makes), and :meth:`Program.explain` describes the topologies.

A query's plan is one of the shapes of :mod:`streams.ksql.plans`; each knows how to build itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from quixstreams import Application
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.models import Topic

from streams.ksql import ast, formats
from streams.ksql.catalog import Catalog, Column, Source, WindowInfo
from streams.ksql.errors import KsqlError, Unsupported
from streams.ksql.parser import parse
from streams.ksql.plans import (
    PROCESSOR,
    AggregatePlan,
    EncodedSerializer,
    QueryPlan,
    build_windowed,
    fusion_groups,
    plan_query,
)
from streams.operators.deadletter import dead_letter_topic
from streams.operators.window_engine import DEFAULT_CACHE_MS

logger = logging.getLogger("streams.ksql")

#: ksqlDB's server property: the prefix of a sink topic's name when the statement gives none.
OUTPUT_TOPIC_PREFIX = "ksql.output.topic.name.prefix"

#: ksqlDB's record cache (its server default 10,000,000 bytes; QTT's and ours 0: every update
#: is emitted) and the commit interval that flushes it, each also with the prefix
#: ``ksql.streams.``. Any size > 0 turns the cache on for windowed aggregations (its size is
#: not modelled: the window engine bounds what is pending).
CACHE_BYTES, COMMIT_INTERVAL = "cache.max.bytes.buffering", "commit.interval.ms"


#: Properties a source may declare (WITH), and what ksqlDB defaults.
SOURCE_PROPERTIES = {
    "KAFKA_TOPIC",
    "VALUE_FORMAT",
    "KEY_FORMAT",
    "FORMAT",
    "PARTITIONS",
    "REPLICAS",
    "TIMESTAMP",
    "TIMESTAMP_FORMAT",
    "WRAP_SINGLE_VALUE",
    "VALUE_DELIMITER",
    "KEY_DELIMITER",
    "WINDOW_TYPE",
    "WINDOW_SIZE",
    "KEY_SCHEMA_ID",
    "VALUE_SCHEMA_ID",
    "KEY_SCHEMA_FULL_NAME",
    "VALUE_SCHEMA_FULL_NAME",
    "VALUE_AVRO_SCHEMA_FULL_NAME",
    "RETENTION_MS",
}


@dataclass
class Program:
    """What a set of statements compiles to."""

    catalog: Catalog
    queries: dict[str, QueryPlan] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)  # query id -> its statement's text

    def passes(self) -> list[list[QueryPlan]]:
        """The persistent queries as they are built: one pass each, or several windowed
        aggregations in one (see :func:`streams.ksql.plans.fusion_groups`)."""
        return fusion_groups(self.queries.values())

    def setup(
        self,
        app: Application,
        passes: list[list[QueryPlan]] | None = None,
        processor: str = PROCESSOR,
        max_future_ms: int | None = None,
    ) -> None:
        """Build every persistent query (or those of ``passes``) on ``app``; topics read by
        several queries share one dataframe, as Quix allows one per topic. Dead letters name
        ``processor``; with ``max_future_ms``, a record timestamped further ahead of the wall
        clock is one (on a broker: it would refuse what is written with that timestamp)."""
        builder = Builder(app, processor, max_future_ms)
        for group in self.passes() if passes is None else passes:
            if len(group) > 1:
                build_windowed(group, builder)  # type: ignore[arg-type] # aggregations only
            else:
                group[0].build(builder)

    def explain(self) -> str:
        fused = {query.id: group for group in self.passes() if len(group) > 1 for query in group}
        return "\n\n".join(q.describe(fused.get(q.id, [])) for q in self.queries.values())


class Builder:
    """The app's topics and source dataframes, shared by the queries built on it."""

    def __init__(
        self, app: Application, processor: str = PROCESSOR, max_future_ms: int | None = None
    ) -> None:
        self.app = app
        self.processor = processor
        self.max_future_ms = max_future_ms
        self._topics: dict[str, Topic] = {}
        self._frames: dict[str, StreamingDataFrame] = {}
        self._dead_letter: Topic | None = None

    def topic(self, name: str) -> Topic:
        """One topic object per name, for reading (bytes) and writing (encoded records) alike:
        a query may read what another writes."""
        if name not in self._topics:
            self._topics[name] = self.app.topic(
                name,
                key_serializer="bytes",
                value_serializer=EncodedSerializer(),
                key_deserializer="bytes",
                value_deserializer="bytes",
            )
        return self._topics[name]

    def frame(self, source: Source) -> StreamingDataFrame:
        """The raw (bytes) dataframe of ``source``'s topic."""
        if source.topic not in self._frames:
            self._frames[source.topic] = self.app.dataframe(self.topic(source.topic))
        return self._frames[source.topic]

    @property
    def dead_letter(self) -> Topic:
        if self._dead_letter is None:
            self._dead_letter = dead_letter_topic(self.app, self.processor)
        return self._dead_letter


def compile_sql(text: str, properties: dict[str, str] | None = None) -> Program:
    """Parse and compile ``text`` (any number of statements)."""
    return compile_statements(parse(text), properties)


def compile_statements(
    statements: list[ast.AnyStatement], properties: dict[str, str] | None = None
) -> Program:
    program = Program(Catalog(), properties=dict(properties or {}))
    for statement in statements:
        try:
            before = set(program.queries)
            _execute(program, statement)
            for query_id in set(program.queries) - before:
                program.texts[query_id] = statement.position.text if statement.position else ""
        except KsqlError as exc:
            if exc.statement is None and statement.position is not None:
                exc.statement = statement.position.text
            raise
    return program


def _execute(program: Program, statement: ast.AnyStatement) -> None:
    if isinstance(statement, ast.CreateSource):
        program.catalog.add(declare_source(statement), replace=False)
    elif isinstance(statement, ast.CreateAs):
        _create_as(program, statement)
    elif isinstance(statement, ast.InsertInto):
        target = program.catalog.get(statement.target)
        if target.kind == "TABLE":
            raise KsqlError(
                f"INSERT INTO can only be used to insert into a stream. {target.name} is a table."
            )
        if target.read_only:
            raise KsqlError(f"Cannot insert into read-only stream: {target.name}")
        query_id = f"INSERTQUERY_{len(program.queries)}"
        plan = plan_query(statement.query, program.catalog, target.kind, target.name, query_id)
        _check_insert(plan.sink, target)
        plan.sink = target
        program.queries[query_id] = plan
    elif isinstance(statement, ast.SetProperty):
        program.properties[statement.name] = statement.value
    elif isinstance(statement, ast.UnsetProperty):
        program.properties.pop(statement.name, None)
    elif isinstance(statement, ast.Drop):
        _drop(program, statement)
    elif isinstance(statement, ast.Terminate):
        if statement.query_id is None:
            program.queries.clear()
        elif program.queries.pop(statement.query_id, None) is None:
            raise KsqlError(f"Unknown queryId: {statement.query_id}")
    else:
        raise Unsupported(f"{type(statement).__name__} statements are not supported yet")


def declare_source(statement: ast.CreateSource) -> Source:
    """A ``CREATE STREAM|TABLE`` over an existing topic, checked as ksqlDB checks it."""
    kind = statement.kind
    if statement.or_replace:
        raise KsqlError(
            f"Cannot add {kind.lower()} '{statement.name}': CREATE OR REPLACE is not supported "
            f"on source {kind.lower()}s."
        )
    props = dict(statement.properties)
    unknown = set(props) - SOURCE_PROPERTIES
    if unknown:
        raise KsqlError(
            f"Invalid config variable(s) in the WITH clause: {', '.join(sorted(unknown))}"
        )
    if "KAFKA_TOPIC" not in props:
        raise KsqlError('Missing required property "KAFKA_TOPIC" which has no default value.')
    key_format, value_format = formats.resolve_formats(props, {"KEY_FORMAT": "KAFKA"})
    if not statement.columns:
        # ksqlDB infers the columns from the Schema Registry: the key's when its format is a
        # registry format, the value's likewise (the latest schema of `<topic>-key` and
        # `<topic>-value`, or the one KEY_SCHEMA_ID / VALUE_SCHEMA_ID names). The one place
        # compiling talks to the registry.
        from dataclasses import replace

        topic = str(props["KAFKA_TOPIC"])
        inferred = []
        if key_format in formats.REGISTRY_FORMATS:
            for name, sql_type in formats.registry_columns(key_format, topic, "key", props):
                inferred.append(
                    ast.ColumnDef(name, sql_type, key=True, primary_key=kind == "TABLE")
                )
        if value_format in formats.REGISTRY_FORMATS:
            for name, sql_type in formats.registry_columns(value_format, topic, "value", props):
                inferred.append(ast.ColumnDef(name, sql_type))
        else:
            formats.value_serde(value_format, [], props)  # the format's own checks come first
        if not inferred:
            raise KsqlError("The statement does not define any columns.")
        statement = replace(statement, columns=tuple(inferred))
    columns = []
    for column in statement.columns:
        if column.headers or column.header:
            raise Unsupported("HEADERS columns")
        if kind == "STREAM" and column.primary_key:
            raise KsqlError(
                f"Column `{column.name}` is a 'PRIMARY KEY' column: please use 'KEY' for streams."
                "\nTables have PRIMARY KEYs, which are unique and NON NULL.\nStreams have KEYs, "
                "which have no uniqueness or NON NULL constraints."
            )
        if kind == "TABLE" and column.key and not column.primary_key:
            raise KsqlError(
                f"Column `{column.name}` is a 'KEY' column: please use 'PRIMARY KEY' for tables."
                "\nTables have PRIMARY KEYs, which are unique and NON NULL.\nStreams have KEYs, "
                "which have no uniqueness or NON NULL constraints."
            )
        columns.append(Column(column.name, column.type, key=column.key or column.primary_key))
    _check_unique(statement.name, columns)
    if kind == "TABLE" and not any(c.key for c in columns):
        raise KsqlError(
            "Tables require a PRIMARY KEY. Please define the PRIMARY KEY.\n"
            "Use a partial schema to define the primary key and still load the value columns "
            "from the Schema Registry, for example:\n\tCREATE TABLE "
            f"{statement.name} (ID INT PRIMARY KEY) WITH (...);"
        )
    source = Source(
        name=statement.name,
        kind=kind,
        topic=str(props["KAFKA_TOPIC"]),
        columns=tuple(columns),
        key_format=key_format,
        value_format=value_format,
        properties=props,
        timestamp_column=_upper(props.get("TIMESTAMP")),
        timestamp_format=props.get("TIMESTAMP_FORMAT"),
        partitions=props.get("PARTITIONS"),
        read_only=statement.source,
        window=_window(props),
    )
    source.key_serde  # noqa: B018 -- the format checks the key schema now, with its message
    source.value_serde  # noqa: B018
    if source.timestamp_column and source.column(source.timestamp_column) is None:
        raise KsqlError(
            f"The TIMESTAMP column set in the WITH clause does not exist in the schema: "
            f"'{source.timestamp_column}'"
        )
    return source


_UNITS = {
    "MILLISECOND": 1,
    "SECOND": 1000,
    "MINUTE": 60_000,
    "HOUR": 3_600_000,
    "DAY": 86_400_000,
}


def _window(props: dict[str, Any]) -> WindowInfo | None:
    """A source over a windowed topic (``WINDOW_TYPE``, ``WINDOW_SIZE``): how its keys carry
    the window, checked as ksqlDB checks it."""
    kind = props.get("WINDOW_TYPE")
    size = props.get("WINDOW_SIZE")
    if kind is None:
        if size is not None:
            raise KsqlError("'WINDOW_SIZE' should not be set without 'WINDOW_TYPE'.")
        return None
    kind = str(kind).upper()
    if kind == "SESSION":
        if size is not None:
            raise KsqlError("'WINDOW_SIZE' should not be set for SESSION windows.")
        return WindowInfo("session")
    if kind not in ("TUMBLING", "HOPPING"):
        raise KsqlError(f"Unknown window type: '{kind}'")
    if size is None:
        raise KsqlError(f"'WINDOW_SIZE' must be set for {kind} windows.")
    parts = str(size).split()
    unit = parts[-1].upper().removesuffix("S") if parts else ""
    if len(parts) != 2 or not parts[0].isdigit() or unit not in _UNITS:
        raise KsqlError(
            f"Configuration WINDOW_SIZE is invalid: Invalid duration: '{size}'. "
            f"Unknown time unit: '{parts[-1].upper() if parts else ''}'"
        )
    return WindowInfo("time", int(parts[0]) * _UNITS[unit])


def _upper(name: Any) -> str | None:
    return None if name is None else str(name).upper()


def _check_unique(name: str, columns: list[Column]) -> None:
    seen: set[str] = set()
    for column in columns:
        if column.name in seen:
            raise KsqlError(f"Duplicate column names: {column.name}")
        seen.add(column.name)


def _create_as(program: Program, statement: ast.CreateAs) -> None:
    kind = "CSAS" if statement.kind == "STREAM" else "CTAS"
    existing = program.catalog.sources.get(statement.name)
    if existing is not None and not statement.or_replace:
        if statement.if_not_exists:
            return
        raise KsqlError(
            f"Cannot add {statement.kind.lower()} '{statement.name}': A "
            f"{existing.kind.lower()} with the same name already exists"
        )
    query_id = f"{kind}_{statement.name}_{len(program.queries)}"
    properties = dict(statement.properties)
    prefix = program.properties.get(OUTPUT_TOPIC_PREFIX)
    if prefix and "KAFKA_TOPIC" not in properties:
        properties["KAFKA_TOPIC"] = f"{prefix}{statement.name}"
    plan = plan_query(
        statement.query, program.catalog, statement.kind, statement.name, query_id, properties
    )
    cache_ms = record_cache_ms(program.properties)
    if cache_ms is not None and isinstance(plan, AggregatePlan):
        plan.use_record_cache(cache_ms)
    program.catalog.add(plan.sink, replace=True)
    program.queries[query_id] = plan


def record_cache_ms(properties: dict[str, str]) -> int | None:
    """The record cache's flush period in ms if ``properties`` turn it on, else None."""

    def number(name: str, default: int) -> int:
        text = properties.get(f"ksql.streams.{name}", properties.get(name))
        if text is None:
            return default
        try:
            value = int(text)
        except ValueError:
            raise KsqlError(f"Invalid value {text} for configuration {name}") from None
        if value < 0:
            raise KsqlError(f"Invalid value {text} for configuration {name}: must be >= 0")
        return value

    if number(CACHE_BYTES, 0) == 0:
        return None
    return number(COMMIT_INTERVAL, DEFAULT_CACHE_MS)


def _check_insert(produced: Source, target: Source) -> None:
    if produced.kind != target.kind:
        raise KsqlError(
            f"Incompatible data sink and query result. Data sink ({target.name}) type is "
            f"{target.kind} but select query result is {produced.kind}."
        )
    mine = [(c.name, str(c.type), c.key) for c in produced.columns]
    theirs = [(c.name, str(c.type), c.key) for c in target.columns]
    if mine != theirs:
        raise KsqlError(
            "Incompatible schema between results and sink.\n"
            f"Result schema is {produced.schema_text()}\nSink schema is {target.schema_text()}"
        )


def _drop(program: Program, statement: ast.Drop) -> None:
    source = program.catalog.sources.get(statement.name)
    if source is not None and statement.delete_topic and source.query_id is None:
        raise KsqlError(f"Cannot delete topic for read-only source: {statement.name}")
    program.catalog.drop(statement.name, statement.if_exists)
    if source is not None and source.query_id is not None:
        program.queries.pop(source.query_id, None)
