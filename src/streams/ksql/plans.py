"""Persistent queries: a SELECT planned against the catalog, and built onto Quix Streams.

:func:`plan_query` checks a query as ksqlDB does (names, types, key columns, GROUP BY rules,
with ksqlDB's messages) and returns one of the plan shapes:

- :class:`ProjectPlan`: a stream or table through WHERE, the projection and PARTITION BY;
  a table's deletions and filtered rows become tombstones.
- :class:`AggregatePlan`: GROUP BY over a stream, windowed (the window engine of
  :mod:`streams.operators.window_engine`, through :mod:`streams.operators.window_aggregate`)
  or not (one accumulator per group in keyed state), with HAVING as a table filter.
- :class:`StreamTableJoinPlan`: a stream joined with a table on the table's key
  (:mod:`streams.operators.join`), the stream re-keyed first when its side of the condition
  is not its key, as ksqlDB's repartition does.

Rows are dicts keyed by column name (qualified ``LABEL.NAME`` inside joins), plus the system
columns; a record that cannot be read becomes a dead letter with the reason.
"""

from __future__ import annotations

import base64
import decimal
import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from quixstreams import message_context
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.models import Topic
from quixstreams.models.serializers import Deserializer, Serializer
from quixstreams.models.serializers.base import SerializationContext
from quixstreams.models.topics.exceptions import TopicConfigurationError

from contracts.partitioning import partition_for
from streams import quix
from streams.ksql import ast, formats
from streams.ksql.aggregates import aggregate_function, is_aggregate
from streams.ksql.catalog import (
    ROWOFFSET,
    ROWPARTITION,
    ROWTIME,
    SYSTEM_COLUMNS,
    WINDOWEND,
    WINDOWSTART,
    Catalog,
    Column,
    Source,
    WindowInfo,
)
from streams.ksql.errors import KsqlError, Unsupported
from streams.ksql.expressions import Scope, compile_expression, infer_name
from streams.ksql.functions import deterministic
from streams.ksql.rewrite import column_refs, function_calls, sql, transform
from streams.operators.deadletter import RecordRejected, Rejected
from streams.operators.join import (
    JoinedDeletion,
    join_step,
    stream_stream_join,
    stream_table_join,
    table_table_join,
)
from streams.operators.window_aggregate import (
    CachedState,
    Emitted,
    Grouping,
    late_log,
    window_aggregate,
)
from streams.operators.window_engine import (
    DEFAULT_CACHE_MS,
    Aggregate,
    WindowEngine,
    WindowRecord,
    WindowSpec,
)

if TYPE_CHECKING:
    from streams.ksql.compiler import Builder

logger = logging.getLogger("streams.ksql")

PROCESSOR = "streams.ksql"


# --- values between stages ---------------------------------------------------------------------


class Tombstone(dict):
    """A record without a value: a table's deletion, a stream's null value. The dict is the
    row with every value column null (key and system columns as read)."""


@dataclass(slots=True)
class Encoded:
    """An output record ready to produce: key and value bytes (None: a tombstone)."""

    key: bytes | None
    value: bytes | None
    timestamp: int


@dataclass(slots=True)
class Routed(Encoded):
    """An output record of one of several queries built together: with its sink topic, and
    the partition of its window's group (as Kafka Streams' windowed partitioner places a
    windowed key: by the group alone, so that all of a group's windows share a partition)."""

    topic: Topic
    partition: int | None


class EncodedSerializer(Serializer):
    """Produces an :class:`Encoded`'s value bytes as they are."""

    def __call__(self, value: Encoded, ctx: SerializationContext) -> bytes | None:
        return value.value


def _json_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode()}
    if isinstance(value, Tombstone):
        return {"$tombstone": dict(value)}
    raise TypeError(type(value).__name__)


def _json_hook(obj: Any) -> Any:
    if isinstance(obj, dict):
        if len(obj) == 1:
            ((tag, inner),) = obj.items()
            if tag == "$decimal":
                return decimal.Decimal(inner)
            if tag == "$bytes":
                return base64.b64decode(inner)
            if tag == "$tombstone":
                return Tombstone({k: _json_hook(v) for k, v in inner.items()})
        return {k: _json_hook(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_hook(item) for item in obj]
    return obj


def encode_json(value: Any) -> bytes:
    """Rows and events between stages (repartition topics, state): JSON that keeps DECIMAL
    and BYTES values exact."""
    return orjson.dumps(value, default=_json_default, option=orjson.OPT_PASSTHROUGH_SUBCLASS)


def decode_json(data: bytes | str) -> Any:
    value = orjson.loads(data)
    # Only a tagged value ({"$decimal": ...}) needs the walk; its text holds '"$'.
    tagged = b'"$' in data if isinstance(data, bytes) else '"$' in data
    return _json_hook(value) if tagged else value


class RowSerializer(Serializer):
    def __call__(self, value: Any, ctx: SerializationContext) -> bytes:
        return encode_json(value)


class RowDeserializer(Deserializer):
    def __call__(self, value: bytes, ctx: SerializationContext) -> Any:
        return decode_json(value)


# --- scopes ------------------------------------------------------------------------------------


@dataclass
class Relation:
    """A source as a query sees it: its label (alias) and how its columns are keyed in rows."""

    source: Source
    label: str
    qualified: bool  # row keys are LABEL.NAME (joins) or NAME

    def row_key(self, name: str) -> str:
        return f"{self.label}.{name}" if self.qualified else name

    def entries(self, windowed: bool = False) -> list[tuple[str | None, str, str, ast.SqlType]]:
        """Scope entries of the columns, the system columns and, for a windowed source or a
        windowed aggregation (``windowed``), the window bounds."""
        out = [(self.label, c.name, self.row_key(c.name), c.type) for c in self.source.columns]
        for name in (ROWTIME, ROWPARTITION, ROWOFFSET):
            out.append((self.label, name, self.row_key(name), SYSTEM_COLUMNS[name]))
        if self.source.window is not None or windowed:
            for name in (WINDOWSTART, WINDOWEND):
                out.append((self.label, name, self.row_key(name), SYSTEM_COLUMNS[name]))
        return out


def _scope(
    relations: Sequence[Relation], windowed: bool = False
) -> tuple[Scope, dict[str, tuple[str, str]]]:
    """The scope of ``relations``, and each row key's (label, column)."""
    entries = [entry for relation in relations for entry in relation.entries(windowed)]
    return Scope(entries), {row_key: (label, name) for label, name, row_key, _t in entries}


def _normalise(expr: ast.Expr, scope: Scope, names: dict[str, tuple[str, str]]) -> ast.Expr:
    """``expr`` with every column reference qualified by its source, so that equal
    expressions (``ID`` and ``INPUT.ID``) compare equal."""

    def qualify(node: ast.Expr) -> ast.Expr | None:
        if isinstance(node, ast.ColumnRef):
            row_key, _type = scope.resolve(node)
            label, name = names[row_key]
            return ast.ColumnRef(name, label)
        return None

    return transform(expr, qualify)


# --- reading a source --------------------------------------------------------------------------


def row_reader(
    source: Source,
    relation: Relation,
    processor: str = PROCESSOR,
    max_future_ms: int | None = None,
) -> Callable[..., Any]:
    """``(value, key, timestamp, headers) -> row``, a :class:`Tombstone` for a table's
    tombstone, or raise the record's dead letter. Streams' null values are no rows. With
    ``max_future_ms``, a row timestamped further than that ahead of the wall clock is a dead
    letter too: the broker refuses records written with it (``streams.timestamps``)."""
    key_serde, value_serde = source.key_serde, source.value_serde
    windowed = source.windowed_key_serde if source.window is not None else None
    key_names = [relation.row_key(c.name) for c in source.key_columns]
    value_names = [relation.row_key(c.name) for c in source.value_columns]
    system = [relation.row_key(n) for n in (ROWTIME, ROWPARTITION, ROWOFFSET)]
    window_names = [relation.row_key(WINDOWSTART), relation.row_key(WINDOWEND)]
    table = source.kind == "TABLE"
    nulls = [None] * len(value_names)
    ts_key = relation.row_key(source.timestamp_column) if source.timestamp_column else None
    ts_parse = _timestamp_parser(source.timestamp_format)

    def read(value: bytes | None, key: bytes | None, timestamp: int, _headers: Any) -> Any:
        try:
            bounds = None
            if windowed is not None:
                keys, start, end = windowed.deserialize(key)
                bounds = (start, end)
            else:
                keys = key_serde.deserialize(key) if key_names else []
            if table and key_names and (keys is None or any(k is None for k in keys)):
                raise RecordRejected(Rejected("a table row needs a key", "NullKey"), processor)
            keys = keys or [None] * len(key_names)
            values = value_serde.deserialize(value)
        except formats.SerdeError as exc:
            raise RecordRejected(Rejected(str(exc), "BadRecord"), processor) from exc
        row: dict[str, Any] = Tombstone() if values is None else {}
        row.update(zip(key_names, keys, strict=True))
        row.update(zip(value_names, values or nulls, strict=True))
        context = message_context()
        row[system[0]] = timestamp
        row[system[1]] = context.partition if context else 0
        row[system[2]] = context.offset if context else 0
        if bounds is not None:
            row[window_names[0]], row[window_names[1]] = bounds
        if ts_key is not None and values is not None:
            event_time = ts_parse(row[ts_key])
            if event_time is None or event_time < 0:
                # Kafka Streams skips a record whose extracted timestamp is invalid.
                reason = f"timestamp column {ts_key} is null, negative or unreadable"
                raise RecordRejected(Rejected(reason, "BadTimestamp"), processor)
            row[system[0]] = event_time
        if max_future_ms is not None and row[system[0]] > time.time() * 1000 + max_future_ms:
            reason = (
                f"timestamp {row[system[0]]} ms is more than {max_future_ms} ms ahead of the "
                "wall clock (STREAMS_MAX_FUTURE_MS): Kafka would refuse the records written "
                "with it"
            )
            raise RecordRejected(Rejected(reason, "FutureTimestamp"), processor)
        return row

    return read


def _timestamp_parser(fmt: str | None) -> Callable[[Any], int | None]:
    if fmt is None:

        def as_ms(value: Any) -> int | None:
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        return as_ms
    from streams.ksql.functions import string_to_timestamp

    def parse(value: Any) -> int | None:
        if not isinstance(value, str):
            return None
        try:
            return string_to_timestamp(value, fmt)
        except ValueError:
            return None

    return parse


def source_rows(builder: Builder, relation: Relation) -> StreamingDataFrame:
    """The rows of ``relation``'s topic, with ROWTIME as the record timestamp."""
    raw = builder.frame(relation.source)
    builder.dead_letter  # noqa: B018 -- installs the dead-letter handler before any record
    rows = raw.apply(
        row_reader(relation.source, relation, builder.processor, builder.max_future_ms),
        metadata=True,
    )
    ts_key = relation.row_key(ROWTIME)
    return rows.set_timestamp(lambda row, _key, _ts, _headers: row[ts_key])


def source_events(
    builder: Builder, relation: Relation, events: Callable[[Any], list[list[Any]]]
) -> StreamingDataFrame:
    """``events(row)`` of each row of ``relation``'s topic, expanded, each event timestamped
    with its row's ROWTIME (appended to it): :func:`source_rows` and the next step in one
    stage, as Quix's cost per stage and record is a good part of a cheap step's."""
    raw = builder.frame(relation.source)
    builder.dead_letter  # noqa: B018 -- installs the dead-letter handler before any record
    read = row_reader(relation.source, relation, builder.processor, builder.max_future_ms)
    ts_key = relation.row_key(ROWTIME)

    def read_events(value: Any, key: Any, timestamp: int, headers: Any) -> list[list[Any]]:
        row = read(value, key, timestamp, headers)
        out = events(row)
        for event in out:
            event.append(row[ts_key])
        return out

    expanded = raw.apply(read_events, metadata=True, expand=True)
    return expanded.set_timestamp(lambda event, _key, _ts, _headers: event[-1])


# --- projection --------------------------------------------------------------------------------


@dataclass
class Output:
    """A projected column: its name, the expression (in the query's scope) and its type."""

    name: str
    expr: ast.Expr
    type: ast.SqlType
    source_expr: ast.Expr  # as written, normalised, for key matching and messages


def _star_columns(
    relations: Sequence[Relation], star: ast.Star, joined: bool, keys_last: bool = False
) -> list[Output]:
    """``*``'s columns: key columns first, or last when the query re-keys (PARTITION BY)."""
    out = []
    for relation in relations:
        if star.source is not None and star.source not in (relation.label, relation.source.name):
            continue
        columns = relation.source.columns
        if keys_last:
            columns = relation.source.value_columns + relation.source.key_columns
        for column in columns:
            name = f"{relation.label}_{column.name}" if joined else column.name
            ref = ast.ColumnRef(column.name, relation.label)
            out.append(Output(name, ref, column.type, ref))
        if relation.source.window is not None and not joined:
            for name in (WINDOWSTART, WINDOWEND):
                ref = ast.ColumnRef(name, relation.label)
                out.append(Output(name, ref, SYSTEM_COLUMNS[name], ref))
    if star.source is not None and not out:
        raise KsqlError(f"'{star.source}' is not a valid stream/table name or alias.")
    return out


def _outputs(
    items: Sequence[ast.SelectItem | ast.Star],
    relations: Sequence[Relation],
    scope: Scope,
    names: dict[str, tuple[str, str]],
    joined: bool = False,
    partition: Sequence[ast.Expr] = (),
) -> list[Output]:
    """The projection; with ``*`` and PARTITION BY, the partitioning expressions not projected
    become columns of their own (ksqlDB's synthesised key columns)."""
    outputs: list[Output] = []
    unnamed = 0
    star = any(isinstance(item, ast.Star) for item in items)
    for item in items:
        if isinstance(item, ast.Star):
            outputs.extend(_star_columns(relations, item, joined, keys_last=bool(partition)))
            continue
        expr = _normalise(item.expr, scope, names)
        name = item.alias
        if name is None:
            inferred = infer_name(item.expr)
            if joined and isinstance(expr, ast.ColumnRef) and _ambiguous(expr.name, relations):
                # A name both sides have is named by its source, as SELECT * names all.
                inferred = f"{expr.source}_{expr.name}"
            if inferred is None:
                inferred = f"KSQL_COL_{unnamed}"
                unnamed += 1
            name = inferred
        elif name in (ROWTIME, WINDOWSTART, WINDOWEND, ROWPARTITION, ROWOFFSET):
            raise KsqlError(
                f"`{name}` is a reserved column name. You cannot use it as an alias for a column."
            )
        compiled = compile_expression(expr, scope)
        if compiled.type is None:
            raise KsqlError(
                "Can't infer a type of null. Please explicitly cast it to a required type, "
                "e.g. CAST(null AS VARCHAR)."
            )
        outputs.append(Output(name, expr, compiled.type, expr))
    if star:
        for expr in partition:
            if _is_null(expr) or any(o.source_expr == expr for o in outputs):
                continue
            name = infer_name(expr)
            if name is None:
                name = f"KSQL_COL_{unnamed}"
                unnamed += 1
            compiled = compile_expression(expr, scope)
            outputs.append(Output(name, expr, compiled.type or ast.SqlType("STRING"), expr))
    seen: set[str] = set()
    for output in outputs:
        if output.name in seen:
            raise KsqlError(f"Duplicate column names: {output.name}")
        seen.add(output.name)
    return outputs


def _ambiguous(name: str, relations: Sequence[Relation]) -> bool:
    """Whether more than one of ``relations`` has a column ``name`` (system columns: all)."""
    if name in SYSTEM_COLUMNS:
        return True
    return sum(r.source.column(name) is not None for r in relations) > 1


def _check_where(where: ast.Expr, scope: Scope, clause: str = "WHERE") -> Callable[[dict], Any]:
    _reject_window_bounds(where)
    try:
        compiled = compile_expression(where, scope)
    except KsqlError as exc:
        if exc.message.startswith(("Cannot compare", "Error in")):
            raise KsqlError(f"Error in {clause} expression: {exc.message}") from exc
        raise
    if compiled.type is not None and compiled.type.name != "BOOLEAN":
        raise KsqlError(
            f"Type error in {clause} expression: Should evaluate to boolean but is "
            f"{sql(where)} ({compiled.type}) instead."
        )
    return compiled.fn


def _split_keys(
    outputs: list[Output],
    key_exprs: Sequence[ast.Expr],
    what: str,
    sink_name: str,
    rendered: Sequence[str],
) -> tuple[list[Output], list[Output]]:
    """Key and value columns of the sink: each key expression must be projected once."""
    keys: list[Output] = []
    missing: list[str] = []
    for expr, text in zip(key_exprs, rendered, strict=True):
        matches = [o for o in outputs if o.source_expr == expr]
        if not matches:
            missing.append(text)
            continue
        if len(matches) > 1:
            name = expr.name if isinstance(expr, ast.ColumnRef) else matches[0].name
            aliases = " and ".join(sorted(m.name for m in matches))
            raise KsqlError(
                f"The projection contains a key column (`{name}`) more than once, aliased as: "
                f"{aliases}."
            )
        keys.append(matches[0])
    if missing:
        plural = f"{what}s" if len(missing) > 1 else what
        raise KsqlError(
            f"The query used to build `{sink_name}` must include the {plural} "
            f"{_and_list(missing)} in its "
            f"projection (eg, SELECT {', '.join(missing)}...)."
        )
    values = [o for o in outputs if all(o is not k for k in keys)]
    return keys, values


def _sink(
    name: str,
    kind: str,
    keys: list[Output],
    values: list[Output],
    inherit: Source,
    properties: dict[str, Any],
    query_id: str,
    window: WindowInfo | None = None,
) -> Source:
    key_format, value_format = formats.resolve_formats(
        properties, {"KEY_FORMAT": inherit.key_format, "VALUE_FORMAT": inherit.value_format}
    )
    if not ({"FORMAT", "KEY_FORMAT"} & (set(properties) | set(inherit.properties))) and not (
        inherit.key_columns
    ):
        key_format = _derived_key_format(key_format, keys)
    props = {**_inherited(inherit, key_format, value_format), **properties}
    columns = [Column(o.name, o.type, key=True) for o in keys]
    columns += [Column(o.name, o.type) for o in values]
    if not values:
        raise KsqlError("The projection contains no value columns.")
    props.setdefault("KAFKA_TOPIC", name)
    sink = Source(
        name=name,
        kind=kind,  # type: ignore[arg-type]
        topic=str(props["KAFKA_TOPIC"]),
        columns=tuple(columns),
        key_format=key_format,
        value_format=value_format,
        properties=props,
        window=window,
        timestamp_column=_upper(properties.get("TIMESTAMP")),
        timestamp_format=properties.get("TIMESTAMP_FORMAT"),
        query_id=query_id,
    )
    sink.key_serde  # noqa: B018 -- the format checks the key schema now
    sink.value_serde  # noqa: B018
    return sink


def _inherited(source: Source, key_format: str, value_format: str) -> dict[str, Any]:
    """The source's delimiters, where the sink keeps its formats (ksqlDB does not carry
    WRAP_SINGLE_VALUE over)."""
    out = {}
    if key_format == source.key_format and "KEY_DELIMITER" in source.properties:
        out["KEY_DELIMITER"] = source.properties["KEY_DELIMITER"]
    if value_format == source.value_format and "VALUE_DELIMITER" in source.properties:
        out["VALUE_DELIMITER"] = source.properties["VALUE_DELIMITER"]
    return out


def _and_list(names: Sequence[str]) -> str:
    """``A``, ``A and B``, ``A, B and C``: as ksqlDB lists names in its messages."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _derived_key_format(key_format: str, keys: list[Output]) -> str:
    """ksqlDB's key format for a sink whose source is keyless and neither sets one: the
    default (KAFKA), unless it cannot carry the key (several columns, or a type it does not
    support): then JSON."""
    if key_format in ("KAFKA", "NONE") and len(keys) > 1:
        return "JSON"
    try:
        formats.key_serde(key_format, [(o.name, o.type) for o in keys], {})
    except KsqlError:
        return "JSON"
    return key_format


def _upper(name: Any) -> str | None:
    return None if name is None else str(name).upper()


# --- the plans ---------------------------------------------------------------------------------


@dataclass
class QueryPlan:
    """A persistent query: ``build`` wires it onto an app; ``describe`` is its topology."""

    id: str
    sink: Source
    inputs: list[Source]
    repartitions: list[str] = field(default_factory=list)
    stores: list[str] = field(default_factory=list)

    def build(self, builder: Builder) -> None:
        raise NotImplementedError

    def describe(self, fused: Sequence[QueryPlan] = ()) -> str:
        """The topology; ``fused`` are the queries built in one pass with this one."""
        lines = [f"Query {self.id}: {type(self).__name__.removesuffix('Plan')}"]
        for source in self.inputs:
            lines.append(f"  source topic  {source.topic} ({source.kind} {source.name})")
        repartitions, stores = self.repartitions, self.stores
        if fused:
            name = pass_name(fused)  # type: ignore[arg-type] # passes are of aggregations
            repartitions, stores = [f"{name}-groupby"], [f"{name}-aggregate"]
        for topic in repartitions:
            lines.append(f"  repartition   {topic}")
        for store in stores:
            lines.append(f"  state store   {store}")
        if fused:
            others = ", ".join(q.id for q in fused if q is not self)
            lines.append(f"  one pass with {others} (one read, repartition and window engine)")
        sink = self.sink
        lines.append(
            f"  sink topic    {sink.topic} ({sink.kind} {sink.name}: {sink.schema_text()})"
        )
        return "\n".join(lines)

    def _emit(self, out: StreamingDataFrame, builder: Builder) -> None:
        topic = builder.topic(self.sink.topic)
        if self.sink.window is None:
            quix.produce_each(out, lambda enc: (topic, enc.key, enc.timestamp, None))
            return
        split, partitions = self.sink.windowed_key_serde.split, _partition_count(topic)

        def windowed(enc: Encoded) -> quix.Destination:
            partition = None
            if enc.key is not None and partitions is not None:
                partition = partition_for(split(enc.key)[0], partitions)
            return topic, enc.key, enc.timestamp, partition

        quix.produce_each(out, windowed)


def _partition_count(topic: Topic) -> int | None:
    """``topic``'s partitions on the broker; None for one that is not on a broker (a push
    query's sink, whose records are printed, never produced)."""
    try:
        return topic.broker_config.num_partitions
    except TopicConfigurationError:
        return None


def _key_encoder(sink: Source, keys: list[Callable[[dict], Any]]) -> Callable[[dict], bytes | None]:
    """A row's key bytes: None (a null key) for a keyless sink or a single null key column,
    as ksqlDB writes them (several columns are a struct, even of nulls)."""
    serde = sink.key_serde

    def encode(row: dict) -> bytes | None:
        if not keys:
            return None
        values = [fn(row) for fn in keys]
        return None if len(values) == 1 and values[0] is None else serde.serialize(values)

    return encode


def _encoder(
    sink: Source,
    keys: list[Callable[[dict], Any]],
    values: list[Callable[[dict], Any]],
    tombstone_keys: list[Callable[[dict], Any]] | None = None,
) -> Callable[[dict, int], Encoded]:
    """A row's output record. A :class:`Tombstone` row has no value, and its key is computed
    by ``tombstone_keys`` (default ``keys``): ksqlDB evaluates nothing on a null value, so
    only the key columns it was read with survive into the key."""
    key_of, value_serde = _key_encoder(sink, keys), sink.value_serde
    tombstone_key_of = key_of if tombstone_keys is None else _key_encoder(sink, tombstone_keys)

    def encode(row: dict, timestamp: int) -> Encoded:
        if isinstance(row, Tombstone):
            return Encoded(tombstone_key_of(row), None, timestamp)
        return Encoded(key_of(row), value_serde.serialize([fn(row) for fn in values]), timestamp)

    return encode


@dataclass
class ProjectPlan(QueryPlan):
    relation: Relation | None = None
    where: Callable[[dict], Any] | None = None
    keys: list[Callable[[dict], Any]] = field(default_factory=list)
    values: list[Callable[[dict], Any]] = field(default_factory=list)
    tombstone_keys: list[Callable[[dict], Any]] = field(default_factory=list)
    same_key: bool = False
    output_ts: Callable[[dict], Any] | None = None

    def build(self, builder: Builder) -> None:
        assert self.relation is not None
        rows = source_rows(builder, self.relation)
        encode = _encoder(self.sink, self.keys, self.values, self.tombstone_keys)
        key_of = _key_encoder(self.sink, self.keys)
        where, output_ts = self.where, self.output_ts
        table = self.relation.source.kind == "TABLE"

        same_key = self.same_key

        def project(row: Any, key: Any, timestamp: int, _headers: Any) -> list[Encoded]:
            out = _project(row, timestamp)
            if same_key and key is None:
                # The source's key, unchanged: a null key stays null (not a struct of nulls).
                for record in out:
                    record.key = None
            return out

        def _project(row: Any, timestamp: int) -> list[Encoded]:
            if isinstance(row, Tombstone):
                # A stream's null value passes a projection, not a filter.
                return [] if where is not None and not table else [encode(row, timestamp)]
            if where is not None and where(row) is not True:
                # A table row that fails the filter leaves the table: a tombstone.
                return [Encoded(key_of(row), None, timestamp)] if table else []
            ts = timestamp
            if output_ts is not None:
                ts = output_ts(row)
                if ts is None or ts < 0:
                    return []  # no valid record time: the record is skipped, as Kafka Streams
            return [encode(row, ts)]

        out = rows.apply(project, metadata=True, expand=True)
        self._emit(out, builder)


@dataclass
class AggregatePlan(QueryPlan):
    relation: Relation | None = None
    where: Callable[[dict], Any] | None = None
    groups: list[Callable[[dict], Any]] = field(default_factory=list)
    arguments: list[list[Callable[[dict], Any]]] = field(default_factory=list)
    specs: list[Any] = field(default_factory=list)
    having: Callable[[dict], Any] | None = None
    values: list[Callable[[dict], Any]] = field(default_factory=list)
    window: ast.Window | None = None
    emit: str = "changes"
    cache_ms: int = DEFAULT_CACHE_MS  # the record cache's flush period, under emit "cached"
    calls: list[str] = field(default_factory=list)  # the aggregate calls, as planned
    per_window: list[bool] = field(default_factory=list)  # which values are (see _per_window)
    columns: list[str | None] = field(default_factory=list)  # a value that is a result column
    # Windowed aggregations with the same fusion key share one pass (see build_windowed):
    # same stream, WHERE, GROUP BY and emit; None for any other aggregation.
    fusion: str | None = None

    def _events(
        self, builder: Builder, arguments: list[list[Callable[[dict], Any]]]
    ) -> StreamingDataFrame:
        """Rows as events ``[sign, group values, arguments, undone arguments]`` (a stream's
        with its ROWTIME after): +1 adds, -1 takes back, 0 replaces (takes back ``undone``,
        adds ``arguments``).

        A stream's rows only add. A table's row replaces its key's previous row, whose
        contribution is taken back, as ksqlDB's table aggregations undo it (the previous row is
        kept in state by the table's key); within one group that is one update, one output.
        """
        assert self.relation is not None
        where, groups, query = self.where, self.groups, self.id

        def contribution(row: Any) -> list[Any] | None:
            if isinstance(row, Tombstone):
                return None
            if where is not None and where(row) is not True:
                return None
            group = [fn(row) for fn in groups]
            if any(g is None for g in group):
                logger.debug("%s: a GROUP BY value is null; the row is dropped: %s", query, row)
                return None
            return [group, [[fn(row) for fn in args] for args in arguments]]

        def stream_event(row: Any) -> list[Any]:
            new = contribution(row)
            return [] if new is None else [[1, *new, None]]

        def table_event(row: Any, _key: Any, _ts: int, _headers: Any, state: Any) -> list[Any]:
            stored, new = state.get("row"), contribution(row)
            if new is None:
                state.delete("row")
            else:
                state.set("row", encode_json(new).decode())
            old = None if stored is None else decode_json(stored)
            if old is not None and new is not None and old[0] == new[0]:
                return [[0, new[0], new[1], old[1]]]
            out = [] if old is None else [[-1, old[0], old[1], None]]
            return out if new is None else [*out, [1, *new, None]]

        if self.relation.source.kind == "TABLE":
            rows = source_rows(builder, self.relation)
            return rows.apply(table_event, stateful=True, metadata=True, expand=True)
        return source_events(builder, self.relation, stream_event)  # ROWTIME appended

    def _grouped_events(
        self, builder: Builder, arguments: list[list[Callable[[dict], Any]]], name: str
    ) -> StreamingDataFrame:
        """:meth:`_events` repartitioned by group, as :func:`event_grouping` says."""
        return event_grouping(name).group(self._events(builder, arguments))

    def use_record_cache(self, cache_ms: int) -> None:
        """ksqlDB's record cache (``cache.max.bytes.buffering`` > 0): a windowed EMIT CHANGES
        emits each window's latest update every ``cache_ms`` (``commit.interval.ms``), and a
        splittable aggregate is computed in two phases (see
        :func:`streams.operators.window_aggregate.window_aggregate`)."""
        if self.window is None or self.emit != "changes":
            return
        self.emit, self.cache_ms = "cached", cache_ms
        self.fusion = f"{self.fusion} cached every {cache_ms} ms"
        name = pass_name([self])
        self.repartitions, self.stores = [f"{name}-groupby"], [f"{name}-aggregate"]

    def describe(self, fused: Sequence[QueryPlan] = ()) -> str:
        text = super().describe(fused)
        if self.emit != "cached":
            return text
        plans: list[AggregatePlan] = list(fused) or [self]  # type: ignore[arg-type]
        name = pass_name(plans)
        # The pass's engine computes every fused query's aggregates: all of them must split.
        split = all(spec.splittable for plan in plans for spec in plan.specs)
        two_phase = (
            f"; partial aggregates cross {name}-partials instead, when the source has more "
            "than one partition"
            if split and all(plan.window and plan.window.grace_ms is None for plan in plans)
            else ""
        )
        head, sink = text.rsplit("\n", 1)
        cache = f"  record cache  each window's latest update every {self.cache_ms} ms{two_phase}"
        return f"{head}\n{cache}\n{sink}"

    def build(self, builder: Builder) -> None:
        if self.window is not None:
            build_windowed([self], builder)
            return
        grouped = self._grouped_events(builder, self.arguments, self.id)
        out = grouped.apply(self._table_step(), stateful=True, metadata=True, expand=True)
        self._emit(out, builder)

    def _result_row(self, group: list[Any], results: list[Any]) -> dict[str, Any]:
        row = {f"KSQL_GROUP_{i}": value for i, value in enumerate(group)}
        row.update({f"KSQL_AGG_{j}": value for j, value in enumerate(results)})
        return row

    def _table_step(self) -> Callable[..., list[Encoded]]:
        specs, having, values = self.specs, self.having, self.values
        key_serde, value_serde = self.sink.key_serde, self.sink.value_serde

        def step(event: list, _key: Any, timestamp: int, _headers: Any, state: Any) -> list:
            sign, group, args, undone = event[:4]  # a stream's events end with ROWTIME
            # [accumulators, max record time, whether the row is in the output table]
            stored = state.get("agg")
            accs = [spec.init() for spec in specs] if stored is None else stored[0]
            if sign <= 0:
                taken = args if sign < 0 else undone
                accs = [s.undo(acc, a) for s, acc, a in zip(specs, accs, taken, strict=True)]
            if sign >= 0:
                accs = [s.add(acc, a) for s, acc, a in zip(specs, accs, args, strict=True)]
            max_ts = timestamp if stored is None else max(stored[1], timestamp)
            was_in = bool(stored and stored[2])
            key = key_serde.serialize(group)
            # A group whose rows all left stays, with its undone aggregate (COUNT 0), as ksqlDB.
            row = self._result_row(group, [s.result(a) for s, a in zip(specs, accs, strict=True)])
            passes = having is None or having(row) is True
            state.set("agg", [accs, max_ts, passes])
            if passes:
                return [Encoded(key, value_serde.serialize([fn(row) for fn in values]), max_ts)]
            return [Encoded(key, None, max_ts)] if was_in else []

        return step

    def _window_spec(self) -> WindowSpec:
        assert self.window is not None
        window = self.window
        if window.kind == "TUMBLING":
            return WindowSpec.tumbling(window.size_ms, window.grace_ms)
        if window.kind == "HOPPING":
            advance = window.advance_ms or window.size_ms
            return WindowSpec.hopping(window.size_ms, advance, window.grace_ms)
        return WindowSpec.session(window.size_ms, window.grace_ms)

    def _window_finish(
        self, picks: list[int], results: list[Callable[[Any], Any]], topic: Topic
    ) -> Callable[[Any, Any], Any]:
        """This query's output record (or None) of one window result of a shared engine,
        whose accumulators this query's are at ``picks``, made results by ``results``
        (each call's ``result``, in pick order); ``state`` is the engine's state of the
        partition, where HAVING keeps what passed.

        It runs once per window and update (eight times per page view for seed-001's
        windows), so what can be is done once per window: its key, and the values that are
        functions of its group and bounds alone."""
        serde, write = self.sink.windowed_key_serde, self.sink.value_serde.row_writer()
        windowed, having, values = serde.windowed, self.having, self.values
        partitions = _partition_count(topic)
        close = self._window_spec().effective_grace(self.emit)
        passed_key = f"{self.id}-passed"
        # A result row's columns, in this order: the group, the aggregates, the bounds.
        groups = len(self.groups)
        names = [f"KSQL_GROUP_{i}" for i in range(groups)]
        names += [f"KSQL_AGG_{j}" for j in range(len(picks))] + [WINDOWSTART, WINDOWEND]
        # The last group's text, values, key bytes and partition.
        last: list[Any] = [None, None, None, None]
        # The output value, a dict by column name (in order): each value is a column of the
        # result row as it is (read directly), or a function of the window's group and bounds
        # alone (computed once per window, in a bounded memo: windows come and go), or
        # computed per update from the row.
        columns = [name for name, _type in self.sink.value_serde.columns]
        positions = [None if c is None else names.index(c) for c in self.columns]
        aggregates: list[tuple[str, int]] = []  # (column, index in this query's results)
        others: list[tuple[str, str]] = []  # (column, result row column): group, bounds
        fixed: list[tuple[str, Callable[[dict], Any]]] = []
        computed: list[tuple[str, Callable[[dict], Any]]] = []
        for column, position, per_window, fn in zip(
            columns, positions, self.per_window, values, strict=True
        ):
            if position is not None and groups <= position < groups + len(picks):
                aggregates.append((column, position - groups))
            elif position is not None:
                others.append((column, names[position]))
            else:
                (fixed if per_window else computed).append((column, fn))
        # Per window (bounded: windows come and go): its key bytes and its fixed values.
        memo: dict[tuple[str, int, int], tuple[bytes, int, dict[str, Any]]] = {}
        blank = dict.fromkeys(columns)

        def use_group(text: str) -> None:
            """``last`` is the group of ``text``: decoded, its key serialised."""
            if text != last[0]:
                group = decode_json(text)
                key = serde.inner.serialize(group)
                if key is None:
                    raise formats.SerdeError("A windowed key needs a non-null key")
                partition = None if partitions is None else partition_for(key, partitions)
                last[:] = text, group, key, partition

        converters = list(zip(picks, results, strict=True))

        def results_of(record: Any) -> list[Any]:
            accumulators = record["accumulators"]
            return [result(accumulators[i]) for i, result in converters]

        def row_of(record: Any, mine: list[Any]) -> dict[str, Any]:
            use_group(record["group"])
            values = [*last[1], *mine, record["window_start"], record["window_end"]]
            return dict(zip(names, values, strict=True))

        def window_of(record: Any, mine: list[Any]) -> tuple[bytes, int, dict[str, Any]]:
            window = (record["group"], record["window_start"], record["window_end"])
            entry = memo.get(window)
            if entry is None:
                text, start, end = window
                use_group(text)
                key = windowed(last[2], start, end)
                if record.get("deleted"):
                    return key, last[3], blank  # a retracted session: its key alone, not kept
                once = blank.copy()
                if fixed:
                    row = row_of(record, mine)
                    for column, fn in fixed:
                        once[column] = fn(row)
                if len(memo) >= 4096:
                    memo.clear()
                entry = memo[window] = key, last[3], once
            return entry

        def finish(record: Any, state: Any, mine: list[Any]) -> Routed | None:
            key, partition, once = window_of(record, mine)
            if record.get("deleted"):
                return Routed(key, None, record.timestamp, topic, partition)
            out = once.copy()
            for column, j in aggregates:
                out[column] = mine[j]
            if others or computed:
                row = row_of(record, mine)
                for column, name in others:
                    out[column] = row[name]
                for column, fn in computed:
                    out[column] = fn(row)
            return Routed(key, write(out), record.timestamp, topic, partition)

        def finished(record: Any, state: Any) -> Routed | None:
            deleted = record.get("deleted")
            return finish(record, state, [] if deleted else results_of(record))

        if having is None:
            return finished

        def filtered(record: Any, state: Any) -> Routed | None:
            """HAVING as a table filter per window: a window that stops passing gets a
            tombstone, one that never passed gets nothing. The windows that passed are kept
            per group, in the engine's state of the partition, until they close (end <= the
            group's latest time - grace)."""
            if record.get("deleted"):
                return finish(record, state, [])
            mine = results_of(record)
            out = finish(record, state, mine)
            if out is None:
                return out
            key = f"{passed_key}|{record['group']}"
            passed: dict[str, int] = state.get(key) or {}
            bounds = f"{record['window_start']}|{record['window_end']}"
            if having(row_of(record, mine)) is True:
                passed[bounds] = record["window_end"]
            elif passed.pop(bounds, None) is not None:
                out.value = None
            else:
                out = None
            horizon = record.timestamp - close
            passed = {b: e for b, e in passed.items() if e > horizon}
            if passed:
                state.set(key, passed)
            else:
                state.delete(key)  # not one entry per group ever seen
            return out

        return filtered


def event_grouping(name: str) -> Grouping:
    """How a pass ``name`` groups its events: by the JSON of their group values (the key
    bytes of its repartition ``{name}-groupby`` and the text its state indexes), the events
    kept exact (DECIMAL, BYTES) by the row serialiser."""
    return Grouping(
        lambda event: encode_json(event[1]).decode(),
        f"{name}-groupby",
        f"{name}-partials",
        RowSerializer(),
        RowDeserializer(),
        bytes_key=True,  # a table aggregation's state is under its key's bytes
    )


def _engine_aggregate(specs: list[Any]) -> Aggregate:
    """The window engine's aggregate of the aggregate calls ``specs``, whose arguments are an
    event's third item; its result is ``{"accumulators": [each call's]}``, which each
    query's finisher makes results (a DECIMAL, BYTES...): the engine keeps pending results
    in state under ``--emit cached``, and an accumulator is plain JSON."""
    if len(specs) == 1:
        # The usual case, kept bare (no list of one accumulator): the engine adds and takes a
        # result once per window and record, which made the lists half of its cost.
        (spec,) = specs
        add_one = spec.add
        return Aggregate(
            spec.init,
            lambda acc, event: add_one(acc, event[2][0]),
            spec.merge,
            lambda acc: {"accumulators": [acc]},
            spec.splittable,
        )
    inits, adds = [s.init for s in specs], [s.add for s in specs]
    merges = [s.merge for s in specs]

    def init() -> list:
        return [fn() for fn in inits]

    def add(accs: list, event: list) -> list:
        return [fn(acc, a) for fn, acc, a in zip(adds, accs, event[2], strict=True)]

    def merge(a: list, b: list) -> list:
        return [fn(x, y) for fn, x, y in zip(merges, a, b, strict=True)]

    def result(accs: list) -> dict[str, Any]:
        return {"accumulators": accs}

    return Aggregate(init, add, merge, result, all(s.splittable for s in specs))


def pass_name(plans: list[AggregatePlan]) -> str:
    """What a pass's repartition topic and state are named after: its query's id, or for
    several the first one's and a digest of all their ids, windows and aggregate calls, which
    lay out its state. Another set of queries is another pass, with state of its own, never
    state laid out for other queries."""
    # Cached, its window state may live elsewhere (after the partials' repartition): a query
    # whose cache is turned on is another pass, rebuilt from its source, not one that finds
    # its open windows empty.
    mode = "-cached" if getattr(plans[0], "emit", None) == "cached" else ""  # any plan's pass
    if len(plans) == 1:
        return f"{plans[0].id}{mode}"
    layout = repr([(plan.id, plan.window, plan.calls) for plan in plans])
    return f"{plans[0].id}-{hashlib.sha256(layout.encode()).hexdigest()[:8]}{mode}"


def fusion_groups(queries: Iterable[QueryPlan]) -> list[list[QueryPlan]]:
    """The queries in build order, those that can share one pass (the same
    :attr:`AggregatePlan.fusion`) as one group, in the order they were declared."""
    groups: list[list[QueryPlan]] = []
    by_key: dict[str, list[QueryPlan]] = {}
    for query in queries:
        key = query.fusion if isinstance(query, AggregatePlan) else None
        if key is None:
            groups.append([query])
        elif key in by_key:
            by_key[key].append(query)
        else:
            by_key[key] = [query]
            groups.append(by_key[key])
    return groups


def build_windowed(plans: list[AggregatePlan], builder: Builder) -> None:
    """Windowed aggregations of one fusion group (one query or several) in one pass: one read
    of the stream, one repartition by group, one window engine with a spec per query (results
    of spec ``i`` are query ``i``'s), the union of their aggregate calls computed once; then
    each query's HAVING, projection and sink topic. ksqlDB runs each query on its own, with
    the same results: the queries differ only in their windows, projection and HAVING."""
    lead = plans[0]
    calls: list[str] = []
    specs: list[Any] = []
    arguments: list[list[Callable[[dict], Any]]] = []
    picks: list[list[int]] = []
    for plan in plans:
        mine = []
        for call, spec, args in zip(plan.calls, plan.specs, plan.arguments, strict=True):
            if call not in calls:
                calls.append(call)
                specs.append(spec)
                arguments.append(args)
            mine.append(calls.index(call))
        picks.append(mine)

    # ksqlDB (>= 0.29) purges a window older than stream time - (size + grace) before EMIT
    # FINAL emits it: compiled queries do as ksqlDB does (the hand-written apps emit every
    # window that closes; see the window engine).
    engine = WindowEngine(
        [plan._window_spec() for plan in plans],
        _engine_aggregate(specs),
        lead.emit,
        strict_retention=True,
        cache_ms=lead.cache_ms,
        group_column="group",
    )
    finishers = [
        plan._window_finish(mine, [specs[i].result for i in mine], builder.topic(plan.sink.topic))
        for plan, mine in zip(plans, picks, strict=True)
    ]
    queries = len(plans)  # routes from here on are records too late: logged by the engine

    def output(record: WindowRecord, state: CachedState) -> Emitted | None:
        # Each result is finished where the engine emits it, not in a stage of its own:
        # Quix's cost per stage and output record is most of a window result's.
        if record.route >= queries:
            return None
        out = finishers[record.route](record, state)
        return None if out is None else (out.topic, out, out.key, out.timestamp, out.partition)

    name = pass_name(plans)
    window_aggregate(
        lead._events(builder, arguments),
        engine,
        output,
        event_grouping(name),
        on_late=late_log("group", logger),
    )


@dataclass
class JoinPlan(QueryPlan):
    """What every join plan has: the filter, the projection and the join kind."""

    join: str = "inner"
    where: Callable[[dict], Any] | None = None
    keys: list[Callable[[dict], Any]] = field(default_factory=list)
    values: list[Callable[[dict], Any]] = field(default_factory=list)
    output_ts: Callable[[dict], Any] | None = None  # the sink's TIMESTAMP column

    def _project(self, joined: StreamingDataFrame, builder: Builder) -> None:
        """Joined rows (dicts) -> the sink's records."""
        encode = _encoder(self.sink, self.keys, self.values)
        where, output_ts = self.where, self.output_ts

        def project(row: dict, _key: Any, timestamp: int, _headers: Any) -> list[Encoded]:
            if where is not None and where(row) is not True:
                return []
            if output_ts is not None:
                timestamp = output_ts(row)
                if timestamp is None or timestamp < 0:
                    return []
            return [encode(row, timestamp)]

        self._emit(joined.apply(project, metadata=True, expand=True), builder)


def _rekeyed(rows: StreamingDataFrame, key: Callable[[dict], Any], name: str) -> StreamingDataFrame:
    """``rows`` re-keyed by ``key`` (its JSON: one format for both sides of a join); rows whose
    key is null are dropped, as ksqlDB drops them from joins."""
    keyed = rows.filter(lambda row: key(row) is not None)
    return quix.group_by(
        keyed,
        lambda row: encode_json([key(row)]),
        name=name,
        key_serializer="bytes",
        key_deserializer="bytes",
        value_serializer=RowSerializer(),
        value_deserializer=RowDeserializer(),
    )


def _dump_row(row: dict) -> str:
    return encode_json(row).decode()


@dataclass
class StreamTableJoinPlan(JoinPlan):
    stream: Relation | None = None
    table: Relation | None = None
    stream_key: Callable[[dict], Any] | None = None  # the stream side of the condition
    rekey: bool = False

    def build(self, builder: Builder) -> None:
        assert self.stream is not None and self.table is not None
        table = self.table
        table_serde = table.source.key_serde
        stream_rows = source_rows(builder, self.stream)
        stream_rows = stream_rows.filter(lambda row: not isinstance(row, Tombstone))
        stream_key = self.stream_key
        assert stream_key is not None
        if self.rekey:
            keyed = stream_rows.filter(lambda row: stream_key(row) is not None)
            stream_rows = quix.group_by(
                keyed,
                lambda row: table_serde.serialize([stream_key(row)]),
                name=f"{self.id}-rekey",
                key_serializer="bytes",
                key_deserializer="bytes",
                value_serializer=RowSerializer(),
                value_deserializer=RowDeserializer(),
            )
        table_rows = source_rows(builder, table).apply(
            lambda row: None if isinstance(row, Tombstone) else row
        )
        missing = {table.row_key(c.name): None for c in table.source.columns}
        step = join_step(self.join, missing, stream_name="record", table_name="row")
        joined, _excluded = stream_table_join(stream_rows, table_rows, step)
        self._project(joined, builder)


@dataclass
class StreamStreamJoinPlan(JoinPlan):
    first: Relation | None = None
    second: Relation | None = None
    left_key: Callable[[dict], Any] | None = None
    right_key: Callable[[dict], Any] | None = None
    rekey: bool = False
    before_ms: int = 0
    after_ms: int = 0
    grace_ms: int | None = None

    def build(self, builder: Builder) -> None:
        assert self.first is not None and self.second is not None
        assert self.left_key is not None and self.right_key is not None
        sides = []
        for relation, key, suffix in (
            (self.first, self.left_key, "left"),
            (self.second, self.right_key, "right"),
        ):
            rows = source_rows(builder, relation).filter(lambda r: not isinstance(r, Tombstone))
            if self.rekey:
                rows = _rekeyed(rows, key, f"{self.id}-{suffix}-rekey")
            sides.append(rows)
        joined = stream_stream_join(
            sides[0],
            sides[1],
            kind=self.join if self.join != "full" else "outer",
            before_ms=self.before_ms,
            after_ms=self.after_ms,
            grace_ms=self.grace_ms,
            name=self.id,
            dump=_dump_row,
            load=decode_json,
        )
        nulls = _null_row([self.first, self.second])
        merged = joined.apply(lambda j: {**nulls, **(j.left or {}), **(j.right or {})})
        self._project(merged, builder)


@dataclass
class TableTableJoinPlan(JoinPlan):
    first: Relation | None = None
    second: Relation | None = None

    def build(self, builder: Builder) -> None:
        assert self.first is not None and self.second is not None
        sides = [
            source_rows(builder, relation).apply(
                lambda row: None if isinstance(row, Tombstone) else row
            )
            for relation in (self.first, self.second)
        ]
        joined = table_table_join(
            sides[0],
            sides[1],
            kind=self.join if self.join != "full" else "outer",
            name=self.id,
            dump=_dump_row,
            load=decode_json,
        )
        nulls = _null_row([self.first, self.second])
        encode = _encoder(self.sink, self.keys, self.values)
        where = self.where

        def project(value: Any, _key: Any, timestamp: int, _headers: Any) -> list[Encoded]:
            if isinstance(value, JoinedDeletion):
                return [Encoded(value.key, None, value.timestamp)]
            row = {**nulls, **(value.left or {}), **(value.right or {})}
            if where is not None and where(row) is not True:
                return [Encoded(value.key, None, value.timestamp)]
            return [encode(row, value.timestamp)]

        self._emit(joined.apply(project, metadata=True, expand=True), builder)


def _null_row(relations: Sequence[Relation]) -> dict[str, None]:
    """Every column of ``relations`` null: a side a join did not match."""
    return {r.row_key(name): None for r in relations for _l, name, _k, _t in r.entries()}


# --- planning ----------------------------------------------------------------------------------


def plan_query(
    select: ast.Select,
    catalog: Catalog,
    kind: str,
    name: str,
    query_id: str,
    properties: dict[str, Any] | None = None,
) -> QueryPlan:
    """Check ``select`` and plan it as the query writing ``name`` (a STREAM or TABLE)."""
    properties = dict(properties or {})
    if select.joins:
        return _plan_join(select, catalog, kind, name, query_id, properties)
    source = catalog.get(select.source.name)
    relation = Relation(source, select.source.label, qualified=False)
    scope, names = _scope([relation])
    if select.group_by or select.window is not None:
        return _plan_aggregate(select, relation, scope, names, kind, name, query_id, properties)
    if select.having is not None:
        raise KsqlError("HAVING requires GROUP BY")
    if select.emit == "FINAL":
        raise KsqlError("EMIT FINAL is only supported for windowed aggregations.")
    _check_kind(kind, source.kind, name)
    where = _check_where(select.where, scope) if select.where is not None else None
    partition = [_normalise(e, scope, names) for e in select.partition_by]
    outputs = _outputs(select.items, [relation], scope, names, partition=partition)
    for output in outputs:
        _no_window_bounds(output.expr, source)
    if select.partition_by:
        if source.window is not None:
            raise KsqlError(_WINDOWED_REPARTITION)
        keyless = len(partition) == 1 and _is_null(partition[0])
        if keyless:
            keys, values = [], [o for o in outputs]
        else:
            rendered = [sql(e) for e in partition]
            keys, values = _split_keys(
                outputs, partition, "partitioning expression", name, rendered
            )
    else:
        key_refs = [ast.ColumnRef(c.name, relation.label) for c in source.key_columns]
        keys, values = _split_keys(
            outputs, key_refs, "key column", name, [c.name for c in source.key_columns]
        )
    sink = _sink(name, kind, keys, values, source, properties, query_id, source.window)
    plan = ProjectPlan(query_id, sink, [source], relation=relation, where=where)
    plan.keys = [compile_expression(o.expr, scope).fn for o in keys]
    plan.values = [compile_expression(o.expr, scope).fn for o in values]
    source_keys = {ast.ColumnRef(c.name, relation.label) for c in source.key_columns}
    plan.same_key = not select.partition_by
    plan.tombstone_keys = [
        fn if _only_keys(o.expr, source_keys) else _null
        for o, fn in zip(keys, plan.keys, strict=True)
    ]
    if sink.timestamp_column:
        column = next(o for o in keys + values if o.name == sink.timestamp_column)
        plan.output_ts = compile_expression(column.expr, scope).fn
    return plan


def _null(_row: dict) -> None:
    return None


def _only_keys(expr: ast.Expr, keys: set[ast.ColumnRef]) -> bool:
    """Whether ``expr`` reads key columns only (so it has a value on a null-value record)."""
    refs = column_refs(expr)
    return bool(refs) and all(ref in keys for ref in refs)


def _is_null(expr: ast.Expr) -> bool:
    return isinstance(expr, ast.Literal) and expr.value is None


def _check_kind(kind: str, source_kind: str, name: str) -> None:
    if kind == "TABLE" and source_kind == "STREAM":
        raise KsqlError(
            "Invalid result type. Your SELECT query produces a STREAM. Please use CREATE STREAM "
            "AS SELECT statement instead."
        )
    if kind == "STREAM" and source_kind == "TABLE":
        raise KsqlError(
            "Invalid result type. Your SELECT query produces a TABLE. Please use CREATE TABLE "
            "AS SELECT statement instead."
        )


def _no_window_bounds(expr: ast.Expr, source: Source) -> None:
    if source.window is None:
        _reject_window_bounds(expr)


def _reject_window_bounds(expr: ast.Expr) -> None:
    for ref in column_refs(expr):
        if ref.name in (WINDOWSTART, WINDOWEND):
            raise KsqlError(
                f"Window bounds column {ref.name} can only be used in the SELECT clause of "
                "windowed aggregations and can not be passed to aggregate functions."
            )


def _plan_aggregate(
    select: ast.Select,
    relation: Relation,
    scope: Scope,
    names: dict[str, tuple[str, str]],
    kind: str,
    name: str,
    query_id: str,
    properties: dict[str, Any],
) -> QueryPlan:
    source = relation.source
    if select.window is not None:
        # WINDOWSTART and WINDOWEND resolve in the projection (they are the window's).
        scope, names = _scope([relation], windowed=True)
    if select.emit == "FINAL" and select.window is None:
        raise KsqlError("EMIT FINAL is only supported for windowed aggregations.")
    if source.kind == "TABLE" and select.window is not None:
        raise KsqlError("Windowed aggregations are not supported on tables")
    if source.value_format == "KAFKA":
        raise KsqlError(
            f"Source(s) {source.name} are using the 'KAFKA' value format. This format does not "
            "yet support GROUP BY."
        )
    if not select.group_by:
        raise Unsupported("windowed aggregation without GROUP BY")
    if kind == "STREAM":
        raise KsqlError(
            "Invalid result type. Your SELECT query produces a TABLE. Please use CREATE TABLE "
            "AS SELECT statement instead."
        )
    where = _check_where(select.where, scope) if select.where is not None else None
    groups = [_normalise(e, scope, names) for e in select.group_by]
    for group in groups:
        for call in function_calls(group):
            if is_aggregate(call.name):
                raise KsqlError(
                    f"GROUP BY does not support aggregate functions: {call.name} is an "
                    "aggregate function."
                )
    group_types = [compile_expression(g, scope).type or ast.SqlType("STRING") for g in groups]
    calls: list[ast.FunctionCall] = []

    def replace(node: ast.Expr) -> ast.Expr | None:
        if isinstance(node, ast.ColumnRef) and node.name in (WINDOWSTART, WINDOWEND):
            return ast.ColumnRef(node.name)
        for i, group in enumerate(groups):
            if node == group:
                return ast.ColumnRef(f"KSQL_GROUP_{i}")
        if isinstance(node, ast.FunctionCall) and is_aggregate(node.name):
            if node not in calls:
                calls.append(node)
            return ast.ColumnRef(f"KSQL_AGG_{calls.index(node)}")
        return None

    items: list[tuple[ast.SelectItem, ast.Expr, ast.Expr]] = []
    unnamed = 0
    expanded: list[ast.SelectItem] = []
    for item in select.items:
        if isinstance(item, ast.Star):
            # Every column of the source: each must then be a grouping expression.
            expanded += [
                ast.SelectItem(ast.ColumnRef(c.name, relation.label)) for c in source.columns
            ]
        else:
            expanded.append(item)
    for item in expanded:
        normal = _normalise(item.expr, scope, names)
        items.append((item, normal, transform(normal, replace)))
    having = None
    if select.having is not None:
        having = transform(_normalise(select.having, scope, names), replace)
    if not calls:
        raise KsqlError(
            "GROUP BY requires aggregate functions in either the SELECT or HAVING clause."
        )
    # What is left of the source's columns must be inside a grouping expression.
    loose = []
    for _item, _normal, rewritten in items:
        for ref in column_refs(rewritten):
            if ref.source is not None and ref.name not in (WINDOWSTART, WINDOWEND):
                loose.append(sql(ast.ColumnRef(ref.name)))
    if loose:
        raise KsqlError(
            f"Non-aggregate SELECT expression(s) not part of GROUP BY: {', '.join(loose)}"
        )
    specs = []
    arguments = []
    for call in calls:
        arg_types = []
        compiled_args = []
        for arg in call.args:
            _reject_window_bounds(arg)
            compiled = compile_expression(arg, scope)
            arg_types.append(compiled.type or ast.SqlType("STRING"))
            compiled_args.append(compiled.fn)
        specs.append(aggregate_function(call, arg_types))
        arguments.append(compiled_args)
    if source.kind == "TABLE":
        cannot = [spec.name for spec in specs if spec.undo is None]
        if cannot:
            raise KsqlError(
                f"The aggregation functions {_and_list(cannot)} cannot be applied to a table "
                "source, only to a stream source."
            )
    entries: list[tuple[str | None, str, str, ast.SqlType]] = [
        (None, f"KSQL_GROUP_{i}", f"KSQL_GROUP_{i}", t) for i, t in enumerate(group_types)
    ]
    entries += [
        (None, f"KSQL_AGG_{j}", f"KSQL_AGG_{j}", spec.result_type) for j, spec in enumerate(specs)
    ]
    if select.window is not None:
        entries += [(None, n, n, SYSTEM_COLUMNS[n]) for n in (WINDOWSTART, WINDOWEND)]
    agg_scope = Scope(entries)
    outputs = []
    for item, normal, rewritten in items:
        out_name = item.alias
        if out_name is None:
            out_name = infer_name(item.expr)
            if out_name is None:
                out_name = f"KSQL_COL_{unnamed}"
                unnamed += 1
        if select.window is None:
            _reject_window_bounds(rewritten)
        compiled = compile_expression(rewritten, agg_scope)
        outputs.append(Output(out_name, rewritten, compiled.type or ast.SqlType("STRING"), normal))
    key_exprs = [ast.ColumnRef(f"KSQL_GROUP_{i}") for i in range(len(groups))]
    for output in outputs:
        output.source_expr = output.expr
    rendered = [sql(_unqualified(g)) for g in groups]
    keys, values = _split_keys(outputs, key_exprs, "grouping expression", name, rendered)
    window_info = None
    if select.window is not None:
        window_info = (
            WindowInfo("session")
            if select.window.kind == "SESSION"
            else WindowInfo("time", select.window.size_ms)
        )
    sink = _sink(name, "TABLE", keys, values, source, properties, query_id, window_info)
    plan = AggregatePlan(query_id, sink, [source], relation=relation, where=where)
    plan.groups = [compile_expression(g, scope).fn for g in groups]
    plan.arguments = arguments
    plan.specs = specs
    plan.values = [compile_expression(o.expr, agg_scope).fn for o in values]
    plan.per_window = [_per_window(o.expr) for o in values] if select.window else []
    plan.columns = [
        o.expr.name if isinstance(o.expr, ast.ColumnRef) and o.expr.source is None else None
        for o in values
    ]
    if having is not None:
        plan.having = _check_where(having, agg_scope, "HAVING")
    plan.window = select.window
    plan.emit = "final" if select.emit == "FINAL" else "changes"
    plan.calls = [repr(call) for call in calls]
    if select.window is not None:
        plan.fusion = repr((source.name, relation.label, select.where, groups, plan.emit))
    plan.repartitions = [f"{query_id}-groupby"]
    plan.stores = [f"{query_id}-aggregate"]
    return plan


def _per_window(expr: ast.Expr) -> bool:
    """Whether an output column of a windowed aggregation is a function of its group and
    window alone (no aggregate, nothing nondeterministic): the same for every update."""
    if any(ref.name.startswith("KSQL_AGG_") for ref in column_refs(expr)):
        return False
    return all(deterministic(call.name) for call in function_calls(expr))


def _unqualified(expr: ast.Expr) -> ast.Expr:
    return transform(
        expr, lambda n: ast.ColumnRef(n.name) if isinstance(n, ast.ColumnRef) else None
    )


def _plan_join(
    select: ast.Select,
    catalog: Catalog,
    kind: str,
    name: str,
    query_id: str,
    properties: dict[str, Any],
) -> QueryPlan:
    """A join of two sources: stream-table (on the table's key), stream-stream (WITHIN) or
    table-table (on both primary keys)."""
    if len(select.joins) > 1:
        raise Unsupported("joins of more than two sources")
    (join,) = select.joins
    left = catalog.get(select.source.name)
    right = catalog.get(join.right.name)
    if left is right:
        raise KsqlError(
            f"Can not join '{left.name}' to '{right.name}': self joins are not yet supported."
        )
    shape = (left.kind, right.kind)
    if shape == ("TABLE", "STREAM"):
        raise KsqlError(
            f"Invalid join order: table-stream joins are not supported; only stream-table "
            f"joins. Got {select.source.label} {join.kind} JOIN {join.right.label}."
        )
    if shape == ("STREAM", "STREAM") and join.within is None:
        raise KsqlError(
            "Stream-Stream joins must have a WITHIN clause specified. None was provided. To "
            "learn about how to specify a WITHIN clause with a stream-stream join, please "
            "visit: https://docs.confluent.io/current/ksql/docs/syntax-reference.html"
            "#create-stream-as-select"
        )
    if shape != ("STREAM", "STREAM") and join.within is not None:
        raise KsqlError(
            "A window definition was provided for a Stream-Table join. These joins are not "
            "windowed. Please drop the window definition (ie. the WITHIN clause) and try to "
            "execute your join again."
            if shape == ("STREAM", "TABLE")
            else "A window definition was provided for a Table-Table join. These joins are not "
            "windowed. Please drop the window definition (i.e. the WITHIN clause) and try to "
            "execute your Table-Table join again."
        )
    if shape == ("STREAM", "TABLE") and join.kind not in ("INNER", "LEFT"):
        raise KsqlError(f"{join.kind} OUTER joins are not supported for stream-table joins")
    kafka = [s.name for s in (left, right) if s.value_format == "KAFKA"]
    if kafka:
        raise KsqlError(
            f"Source(s) {', '.join(kafka)} are using the 'KAFKA' value format. This format does "
            "not yet support JOIN."
        )
    if (left.window is None) != (right.window is None):
        windowed, plain = (left, right) if left.window is not None else (right, left)
        raise KsqlError(
            "Can not join windowed source to non-windowed source.\n"
            f"`{windowed.name}` is {'SESSION' if windowed.window.kind == 'session' else 'TIME'}"  # type: ignore[union-attr]
            f" windowed\n`{plain.name}` is not windowed"
        )
    if left.window is not None and right.window is not None:
        if (left.window.kind == "session") != (right.window.kind == "session"):
            raise KsqlError(
                "Incompatible windowed sources.\n"
                f"Left source: {_window_name(left)}\nRight source: {_window_name(right)}\n"
                "Session windowed sources can only be joined to other session windowed "
                "sources, and may still not result in expected behaviour as session bounds must "
                "be an exact match for the join to work\nHopping and tumbling windowed sources "
                "can only be joined to other hopping and tumbling windowed sources"
            )
        if left.window != right.window:
            raise KsqlError(_WINDOWED_REPARTITION)
    if select.group_by or select.window is not None:
        raise Unsupported("aggregations over joins")
    first = Relation(left, select.source.label, qualified=True)
    second = Relation(right, join.right.label, qualified=True)
    scope, names = _scope([first, second])
    condition = _normalise(join.on, scope, names)
    if not (isinstance(condition, ast.Binary) and condition.op == "="):
        raise Unsupported("join conditions other than an equality")
    sides = {}
    for side in (condition.left, condition.right):
        labels = {ref.source for ref in column_refs(side)}
        if len(labels) != 1:
            raise KsqlError(
                f"Invalid comparison expression '{sql(side)}' in join '{sql(condition)}'. Each "
                "side of the join comparision must contain references from exactly one source."
            )
        sides[labels.pop()] = side
    right_side, left_side = sides.get(second.label), sides.get(first.label)
    if right_side is None or left_side is None:
        raise KsqlError(f"Invalid join condition '{sql(condition)}'")
    right_key = [ast.ColumnRef(c.name, second.label) for c in right.key_columns]
    left_key = [ast.ColumnRef(c.name, first.label) for c in left.key_columns]
    got = f"{sql(condition.left)} = {sql(condition.right)}"
    if right.kind == "TABLE" and [right_side] != right_key:
        which = "the table's primary key" if left.kind == "STREAM" else None
        if which is not None:
            raise KsqlError(
                f"Invalid join condition: stream-table joins require to join on {which}. Got {got}."
            )
        raise KsqlError(
            "Invalid join condition: table-table joins require to join on the primary key of "
            f"the right input table. Got {got}."
        )
    if shape == ("TABLE", "TABLE") and [left_side] != left_key:
        raise Unsupported("foreign-key table-table joins")
    outputs = _outputs(select.items, [first, second], scope, names, joined=True)
    where = _check_where(_normalise(select.where, scope, names), scope) if select.where else None
    key_options = [left_side, right_side]
    projected = [o for o in outputs if o.source_expr in key_options]
    if not projected:
        options = " or ".join(sql(e) for e in key_options)
        raise KsqlError(
            f"The query used to build `{name}` must include the join expressions {options} in "
            f"its projection (eg, SELECT {sql(key_options[0])}...)."
        )
    keys, values = _split_keys(
        outputs,
        [projected[0].source_expr],
        "join expression",
        name,
        [sql(projected[0].source_expr)],
    )
    sink_kind = "TABLE" if shape == ("TABLE", "TABLE") else "STREAM"
    _check_kind(kind, sink_kind, name)
    sink = _sink(name, kind, keys, values, left, properties, query_id)
    key_fns = [compile_expression(o.expr, scope).fn for o in keys]
    value_fns = [compile_expression(o.expr, scope).fn for o in values]
    if join.kind in ("FULL", "RIGHT") and keys:
        # Either side may be missing: the key is whichever side's join value is there.
        other = right_side if projected[0].source_expr == left_side else left_side
        first_fn, other_fn = key_fns[0], compile_expression(other, scope).fn
        key_fns = [lambda row: _first_not_null(first_fn(row), other_fn(row))]
    left_fn = compile_expression(left_side, scope).fn
    right_fn = compile_expression(right_side, scope).fn
    # Both sides must be keyed by the same bytes: the join column, in one format.
    same_keys = (
        [left_side] == left_key
        and [right_side] == right_key
        and left.key_format == right.key_format
    )
    output_ts = None
    if sink.timestamp_column:
        column = next(o for o in keys + values if o.name == sink.timestamp_column)
        output_ts = compile_expression(column.expr, scope).fn
    common: dict[str, Any] = {
        "inputs": [left, right],
        "output_ts": output_ts,
        "where": where,
        "keys": key_fns,
        "values": value_fns,
        "join": join.kind.lower(),
        "stores": [f"{query_id}-join"],
    }
    if left.window is not None and not same_keys:
        raise KsqlError(_WINDOWED_REPARTITION)
    if shape == ("STREAM", "TABLE"):
        plan: QueryPlan = StreamTableJoinPlan(
            query_id, sink, stream=first, table=second, stream_key=left_fn, **common
        )
        plan.rekey = [left_side] != left_key or left.key_format != right.key_format
        plan.repartitions = [f"{query_id}-rekey"] if plan.rekey else []
        return plan
    if shape == ("TABLE", "TABLE"):
        if left.key_format != right.key_format:
            raise Unsupported("table-table joins of tables whose key formats differ")
        return TableTableJoinPlan(query_id, sink, first=first, second=second, **common)
    within = join.within
    assert within is not None
    plan = StreamStreamJoinPlan(
        query_id,
        sink,
        first=first,
        second=second,
        left_key=left_fn,
        right_key=right_fn,
        rekey=not same_keys,
        before_ms=within.before_ms,
        after_ms=within.after_ms,
        grace_ms=within.grace_ms,
        **common,
    )
    plan.repartitions = [f"{query_id}-left-rekey", f"{query_id}-right-rekey"] if plan.rekey else []
    return plan


_WINDOWED_REPARTITION = (
    "Implicit repartitioning of windowed sources is not supported. See "
    "https://github.com/confluentinc/ksql/issues/4385."
)


def _window_name(source: Source) -> str:
    assert source.window is not None
    return "SESSION" if source.window.kind == "session" else "TUMBLING"


def _first_not_null(a: Any, b: Any) -> Any:
    return b if a is None else a
