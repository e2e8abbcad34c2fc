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
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from quixstreams import message_context
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.models.serializers import Deserializer, Serializer
from quixstreams.models.serializers.base import SerializationContext

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
from streams.ksql.rewrite import column_refs, function_calls, sql, transform
from streams.operators.deadletter import RecordRejected, Rejected
from streams.operators.join import join_step, stream_table_join
from streams.operators.window_aggregate import late_log, window_step
from streams.operators.window_engine import Aggregate, WindowEngine, WindowSpec

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
    return _json_hook(orjson.loads(data))


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

    def entries(self, system: bool = True) -> list[tuple[str | None, str, str, ast.SqlType]]:
        out = [(self.label, c.name, self.row_key(c.name), c.type) for c in self.source.columns]
        if system:
            for name in (ROWTIME, ROWPARTITION, ROWOFFSET):
                out.append((self.label, name, self.row_key(name), SYSTEM_COLUMNS[name]))
            if self.source.window is not None:
                for name in (WINDOWSTART, WINDOWEND):
                    out.append((self.label, name, self.row_key(name), SYSTEM_COLUMNS[name]))
        return out


def _scope(relations: Sequence[Relation]) -> tuple[Scope, dict[str, tuple[str, str]]]:
    """The scope of ``relations``, and each row key's (label, column)."""
    entries = [entry for relation in relations for entry in relation.entries()]
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


def row_reader(source: Source, relation: Relation) -> Callable[..., Any]:
    """``(value, key, timestamp, headers) -> row``, a :class:`Tombstone` for a table's
    tombstone, or raise the record's dead letter. Streams' null values are no rows."""
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
                raise RecordRejected(Rejected("a table row needs a key", "NullKey"), PROCESSOR)
            keys = keys or [None] * len(key_names)
            values = value_serde.deserialize(value)
        except formats.SerdeError as exc:
            raise RecordRejected(Rejected(str(exc), "BadRecord"), PROCESSOR) from exc
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
            if event_time is None:
                raise RecordRejected(
                    Rejected(f"timestamp column {ts_key} is null or unreadable", "BadTimestamp"),
                    PROCESSOR,
                )
            row[system[0]] = event_time
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
    rows = raw.apply(row_reader(relation.source, relation), metadata=True)
    ts_key = relation.row_key(ROWTIME)
    return rows.set_timestamp(lambda row, _key, _ts, _headers: row[ts_key])


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
            if joined and isinstance(expr, ast.ColumnRef) and expr.name in SYSTEM_COLUMNS:
                # Both sides have them: ksqlDB names them by source, as SELECT * names all.
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


def _check_where(where: ast.Expr, scope: Scope, clause: str = "WHERE") -> Callable[[dict], Any]:
    for ref in column_refs(where):
        if ref.name in (WINDOWSTART, WINDOWEND):
            raise KsqlError(
                f"Window bounds column {ref.name} can only be used in the SELECT clause of "
                "windowed aggregations and can not be passed to aggregate functions."
            )
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
        listed = (
            missing[0]
            if len(missing) == 1
            else " and ".join([", ".join(missing[:-1]), missing[-1]])
        )
        raise KsqlError(
            f"The query used to build `{sink_name}` must include the {plural} {listed} in its "
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
    if "FORMAT" not in properties and "KEY_FORMAT" not in properties:
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


def _derived_key_format(key_format: str, keys: list[Output]) -> str:
    """ksqlDB's key format for a sink that sets none: the source's, unless it cannot carry
    the key (several columns in KAFKA or NONE, or a type it does not support): then JSON."""
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

    def describe(self) -> str:
        lines = [f"Query {self.id}: {type(self).__name__.removesuffix('Plan')}"]
        for source in self.inputs:
            lines.append(f"  source topic  {source.topic} ({source.kind} {source.name})")
        for topic in self.repartitions:
            lines.append(f"  repartition   {topic}")
        for store in self.stores:
            lines.append(f"  state store   {store}")
        sink = self.sink
        lines.append(
            f"  sink topic    {sink.topic} ({sink.kind} {sink.name}: {sink.schema_text()})"
        )
        return "\n".join(lines)

    def _emit(self, out: StreamingDataFrame, builder: Builder) -> None:
        out = out.set_timestamp(lambda enc, _key, _ts, _headers: enc.timestamp)
        out = out.set_headers(lambda _value, _key, _ts, _headers: [])
        out.to_topic(builder.topic(self.sink.topic), key=lambda enc: enc.key)


def _key_encoder(sink: Source, keys: list[Callable[[dict], Any]]) -> Callable[[dict], bytes | None]:
    """A row's key bytes: None (a null key) for a keyless sink or a key whose columns are all
    null, as ksqlDB writes them."""
    serde = sink.key_serde

    def encode(row: dict) -> bytes | None:
        if not keys:
            return None
        values = [fn(row) for fn in keys]
        return None if all(v is None for v in values) else serde.serialize(values)

    return encode


def _encoder(
    sink: Source, keys: list[Callable[[dict], Any]], values: list[Callable[[dict], Any]]
) -> Callable[[dict, int], Encoded]:
    """A row's output record; a :class:`Tombstone` row has no value."""
    key_of, value_serde = _key_encoder(sink, keys), sink.value_serde

    def encode(row: dict, timestamp: int) -> Encoded:
        if isinstance(row, Tombstone):
            return Encoded(key_of(row), None, timestamp)
        return Encoded(key_of(row), value_serde.serialize([fn(row) for fn in values]), timestamp)

    return encode


@dataclass
class ProjectPlan(QueryPlan):
    relation: Relation | None = None
    where: Callable[[dict], Any] | None = None
    keys: list[Callable[[dict], Any]] = field(default_factory=list)
    values: list[Callable[[dict], Any]] = field(default_factory=list)
    key_columns: list[str] = field(default_factory=list)  # sink key columns, in the row
    rekey: bool = False
    output_ts: Callable[[dict], Any] | None = None

    def build(self, builder: Builder) -> None:
        assert self.relation is not None
        rows = source_rows(builder, self.relation)
        encode = _encoder(self.sink, self.keys, self.values)
        key_of = _key_encoder(self.sink, self.keys)
        where, output_ts = self.where, self.output_ts
        table = self.relation.source.kind == "TABLE"

        def project(row: Any, _key: Any, timestamp: int, _headers: Any) -> list[Encoded]:
            if isinstance(row, Tombstone):
                return [encode(row, timestamp)]
            if where is not None and where(row) is not True:
                # A table row that fails the filter leaves the table: a tombstone.
                return [Encoded(key_of(row), None, timestamp)] if table else []
            ts = timestamp
            if output_ts is not None:
                ts = output_ts(row)
                if ts is None:
                    return []
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

    def _events(self, builder: Builder) -> StreamingDataFrame:
        """Rows as ``[group values, aggregate arguments]``, re-keyed by group."""
        assert self.relation is not None
        rows = source_rows(builder, self.relation)
        where, groups, arguments, query = self.where, self.groups, self.arguments, self.id

        def event(row: Any) -> list[Any]:
            if isinstance(row, Tombstone):
                return []
            if where is not None and where(row) is not True:
                return []
            group = [fn(row) for fn in groups]
            if any(g is None for g in group):
                logger.debug("%s: a GROUP BY value is null; the row is dropped: %s", query, row)
                return []
            return [[group, [[fn(row) for fn in args] for args in arguments]]]

        events = rows.apply(event, expand=True)
        return events.group_by(
            lambda e: encode_json(e[0]),
            name=f"{self.id}-groupby",
            key_serializer="bytes",
            key_deserializer="bytes",
            value_serializer=RowSerializer(),
            value_deserializer=RowDeserializer(),
        )

    def build(self, builder: Builder) -> None:
        grouped = self._events(builder)
        if self.window is None:
            out = grouped.apply(self._table_step(), stateful=True, metadata=True, expand=True)
        else:
            out = self._windowed(grouped)
        self._emit(out, builder)

    def _result_row(self, group: list[Any], results: list[Any]) -> dict[str, Any]:
        row = {f"KSQL_GROUP_{i}": value for i, value in enumerate(group)}
        row.update({f"KSQL_AGG_{j}": value for j, value in enumerate(results)})
        return row

    def _table_step(self) -> Callable[..., list[Encoded]]:
        specs, having, values = self.specs, self.having, self.values
        key_serde, value_serde = self.sink.key_serde, self.sink.value_serde

        def step(event: list, _key: Any, timestamp: int, _headers: Any, state: Any) -> list:
            group, args = event
            stored = state.get("agg")
            accs = [spec.init() for spec in specs] if stored is None else stored[0]
            accs = [spec.add(acc, a) for spec, acc, a in zip(specs, accs, args, strict=True)]
            max_ts = timestamp if stored is None else max(stored[1], timestamp)
            was_in = bool(stored and stored[2])
            row = self._result_row(group, [s.result(a) for s, a in zip(specs, accs, strict=True)])
            passes = having is None or having(row) is True
            state.set("agg", [accs, max_ts, passes])
            key = key_serde.serialize(group)
            if passes:
                return [Encoded(key, value_serde.serialize([fn(row) for fn in values]), max_ts)]
            return [Encoded(key, None, max_ts)] if was_in else []

        return step

    def _windowed(self, grouped: StreamingDataFrame) -> StreamingDataFrame:
        assert self.window is not None
        window = self.window
        grace = window.grace_ms
        if window.kind == "TUMBLING":
            spec = WindowSpec.tumbling(window.size_ms, grace)
        elif window.kind == "HOPPING":
            spec = WindowSpec.hopping(window.size_ms, window.advance_ms or window.size_ms, grace)
        else:
            spec = WindowSpec.session(window.size_ms, grace)
        specs = self.specs

        def init() -> list:
            return [s.init() for s in specs]

        def add(accs: list, event: list) -> list:
            return [s.add(acc, a) for s, acc, a in zip(specs, accs, event[1], strict=True)]

        def merge(a: list, b: list) -> list:
            return [s.merge(x, y) for s, x, y in zip(specs, a, b, strict=True)]

        def result(accs: list) -> dict[str, Any]:
            return {"results": [s.result(a) for s, a in zip(specs, accs, strict=True)]}

        engine = WindowEngine(
            [spec], Aggregate(init, add, merge, result), self.emit, group_column="group"
        )
        serde = self.sink.windowed_key_serde
        value_serde = self.sink.value_serde
        having, values = self.having, self.values
        step = window_step(engine, late_log("group", logger), late_key=lambda _e: None)
        # The engine indexes groups by text: the group's key, JSON of its values.
        records = grouped.apply(
            lambda event, key, ts, headers, state: step(event, key.decode(), ts, headers, state),
            stateful=True,
            metadata=True,
            expand=True,
        )

        def finish(record: Any) -> list[Encoded]:
            if record.route != 0:
                return []  # too late for its window: logged by the engine's late log
            group = decode_json(record["group"])
            start, end = record["window_start"], record["window_end"]
            key = serde.serialize(group, start, end)
            if record.get("deleted"):
                return [Encoded(key, None, record.timestamp)]
            row = self._result_row(group, record["results"])
            row[WINDOWSTART], row[WINDOWEND] = start, end
            if having is not None and having(row) is not True:
                return [Encoded(key, None, record.timestamp)]
            value = value_serde.serialize([fn(row) for fn in values])
            return [Encoded(key, value, record.timestamp)]

        return records.apply(finish, expand=True)


@dataclass
class StreamTableJoinPlan(QueryPlan):
    stream: Relation | None = None
    table: Relation | None = None
    join: str = "inner"
    stream_key: Callable[[dict], Any] | None = None  # the stream side of the condition
    rekey: bool = False
    where: Callable[[dict], Any] | None = None
    keys: list[Callable[[dict], Any]] = field(default_factory=list)
    values: list[Callable[[dict], Any]] = field(default_factory=list)

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
            stream_rows = keyed.group_by(
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
        encode = _encoder(self.sink, self.keys, self.values)
        where = self.where

        def project(row: dict, _key: Any, timestamp: int, _headers: Any) -> list[Encoded]:
            if where is not None and where(row) is not True:
                return []
            return [encode(row, timestamp)]

        self._emit(joined.apply(project, metadata=True, expand=True), builder)


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
    _check_kind(kind, source.kind, name)
    where = _check_where(select.where, scope) if select.where is not None else None
    partition = [_normalise(e, scope, names) for e in select.partition_by]
    outputs = _outputs(select.items, [relation], scope, names, partition=partition)
    for output in outputs:
        _no_window_bounds(output.expr, source)
    if select.partition_by:
        if source.window is not None:
            raise KsqlError(
                "Implicit repartitioning of windowed sources is not supported. See "
                "https://github.com/confluentinc/ksql/issues/4385."
            )
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
    if sink.timestamp_column:
        column = next(o for o in keys + values if o.name == sink.timestamp_column)
        plan.output_ts = compile_expression(column.expr, scope).fn
    return plan


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
    if source.window is not None:
        return
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
    if source.kind == "TABLE":
        raise Unsupported("GROUP BY over a table (aggregations that undo)")
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
    for item in select.items:
        if isinstance(item, ast.Star):
            raise KsqlError("SELECT * is not supported in aggregate queries")
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
            for ref in column_refs(arg):
                if ref.name in (WINDOWSTART, WINDOWEND):
                    raise KsqlError(
                        f"Window bounds column {ref.name} can only be used in the SELECT clause "
                        "of windowed aggregations and can not be passed to aggregate functions."
                    )
            compiled = compile_expression(arg, scope)
            arg_types.append(compiled.type or ast.SqlType("STRING"))
            compiled_args.append(compiled.fn)
        specs.append(aggregate_function(call, arg_types))
        arguments.append(compiled_args)
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
            for ref in column_refs(rewritten):
                if ref.name in (WINDOWSTART, WINDOWEND):
                    raise KsqlError(
                        f"Window bounds column {ref.name} can only be used in the SELECT clause "
                        "of windowed aggregations and can not be passed to aggregate functions."
                    )
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
    if having is not None:
        plan.having = _check_where(having, agg_scope, "HAVING")
    plan.window = select.window
    plan.emit = "final" if select.emit == "FINAL" else "changes"
    plan.repartitions = [f"{query_id}-groupby"]
    plan.stores = [f"{query_id}-aggregate"]
    return plan


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
    if len(select.joins) > 1:
        raise Unsupported("joins of more than two sources")
    (join,) = select.joins
    if join.within is not None:
        raise Unsupported("stream-stream joins (WITHIN)")
    left = catalog.get(select.source.name)
    right = catalog.get(join.right.name)
    if left.kind != "STREAM" or right.kind != "TABLE":
        raise Unsupported(f"{left.kind.lower()}-{right.kind.lower()} joins")
    if join.kind not in ("INNER", "LEFT"):
        raise KsqlError(f"{join.kind} OUTER joins are not supported for stream-table joins")
    kafka = [s.name for s in (left, right) if s.value_format == "KAFKA"]
    if kafka:
        raise KsqlError(
            f"Source(s) {', '.join(kafka)} are using the 'KAFKA' value format. This format does "
            "not yet support JOIN."
        )
    if select.group_by or select.window is not None:
        raise Unsupported("aggregations over joins")
    stream = Relation(left, select.source.label, qualified=True)
    table = Relation(right, join.right.label, qualified=True)
    scope, names = _scope([stream, table])
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
    table_side, stream_side = sides.get(table.label), sides.get(stream.label)
    if table_side is None or stream_side is None:
        raise KsqlError(f"Invalid join condition '{sql(condition)}'")
    table_key = [ast.ColumnRef(c.name, table.label) for c in right.key_columns]
    if [table_side] != table_key:
        raise KsqlError(
            "Invalid join condition: stream-table joins require to join on the table's primary "
            f"key. Got {sql(condition.left)} = {sql(condition.right)}."
        )
    outputs = _outputs(select.items, [stream, table], scope, names, joined=True)
    where = _check_where(_normalise(select.where, scope, names), scope) if select.where else None
    key_options = [stream_side, table_side]
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
    sink = _sink(name, kind, keys, values, left, properties, query_id)
    stream_key = compile_expression(stream_side, scope).fn
    stream_keys = [ast.ColumnRef(c.name, stream.label) for c in left.key_columns]
    plan = StreamTableJoinPlan(query_id, sink, [left, right], stream=stream, table=table)
    plan.join = join.kind.lower()
    plan.stream_key = stream_key
    # The table's key bytes are what the stream must be keyed by: same column, same format.
    plan.rekey = [stream_side] != stream_keys or left.key_format != right.key_format
    plan.where = where
    plan.keys = [compile_expression(o.expr, scope).fn for o in keys]
    plan.values = [compile_expression(o.expr, scope).fn for o in values]
    if plan.rekey:
        plan.repartitions = [f"{query_id}-rekey"]
    plan.stores = [f"{query_id}-join"]
    return plan
