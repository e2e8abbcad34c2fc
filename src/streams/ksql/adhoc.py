"""``python -m streams.ksql query`` and ``print``: ksqlDB's push queries and PRINT, ad hoc.

``query`` runs ``SELECT ... EMIT CHANGES [LIMIT n]`` as a transient query. The SELECT is planned
by :func:`streams.ksql.plans.plan_query` as the query writing a private sink that no broker
knows: the plan is built as any persistent query is, and the records it would produce to that
sink are taken from the app's producer and printed, decoded with the sink's serdes, as a table.
The sources come from statements files (their catalog; their persistent queries are not run)
and from ``CREATE STREAM|TABLE`` statements before the SELECT.

A transient query leaves nothing behind: its consumer group (``streams-ksql-query-<id>``) and
every topic named after it (Quix's repartition topics) are deleted when it stops, at LIMIT, on
Ctrl-C or SIGTERM; its state lives in a temporary directory, without changelog topics. A bad
record is logged and skipped, not dead-lettered.

``print`` shows a topic's records as ksqlDB's ``PRINT`` does, decoded with the serdes of a
source declared over the topic, or guessed: JSON, else UTF-8 text, else hex. It assigns the
partitions itself: no consumer group, no commits.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import logging
import re
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec
from quixstreams import Application
from quixstreams.internal_producer import InternalProducer
from quixstreams.models import Topic
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from clients.settings import KafkaSettings, librdkafka_properties
from streams import quix
from streams.ksql import ast, formats, runner
from streams.ksql.catalog import WINDOWEND, WINDOWSTART, Catalog, Source
from streams.ksql.compiler import Builder, declare_source
from streams.ksql.errors import KsqlError, KsqlSyntaxError
from streams.ksql.functions import format_date_text, format_time_text, format_timestamp_text
from streams.ksql.parser import parse, split_statements
from streams.ksql.plans import Encoded, EncodedSerializer, QueryPlan, plan_query
from streams.operators.deadletter import ProcessingErrors

logger = logging.getLogger("streams.ksql.adhoc")

#: The name the SELECT is planned under: what ksqlDB's messages call the query's sink.
TRANSIENT = "TRANSIENT_QUERY"
GROUP_PREFIX = "streams-ksql-query-"
_AS_SELECT = f"CREATE STREAM {TRANSIENT} AS "
_PRODUCES_TABLE = "Invalid result type. Your SELECT query produces a TABLE."
_KEY_MISSING = f"The query used to build `{TRANSIENT}` must include the"
#: The names of key columns a push query needs but did not select: not printed.
HIDDEN = "KSQL_HIDDEN_KEY_"
#: What a deleted row (a table's tombstone) shows in its first value column.
DELETED = "<deleted>"
#: What PRINT shows for a null key or value.
NULL = "<null>"


# --- compiling --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushQuery:
    plan: QueryPlan
    limit: int | None


def compile_push_query(text: str, files: Sequence[Path], sink_topic: str) -> PushQuery:
    """The SELECT ending ``text``, planned over the sources of ``files`` and of the
    ``CREATE STREAM|TABLE`` statements before it, writing ``sink_topic``."""
    catalog = runner.load(list(files)).catalog if files else Catalog()
    declarations, select, statement = split_push_query(text)
    for declaration in declarations:
        if not isinstance(declaration, ast.CreateSource):
            raise KsqlError(
                "only CREATE STREAM|TABLE statements may come before the SELECT: query runs no "
                "persistent query (see `run`)",
                _text(declaration),
            )
        try:
            catalog.add(declare_source(declaration))
        except KsqlError as exc:
            exc.statement = exc.statement or _text(declaration)
            raise
    if select.emit is None:
        raise KsqlError(
            "Pull queries are not supported: a push query ends with EMIT CHANGES "
            "(SELECT ... EMIT CHANGES [LIMIT n];)",
            statement,
        )
    try:
        return PushQuery(plan_transient(select, catalog, sink_topic), select.limit)
    except KsqlError as exc:
        exc.statement = exc.statement or statement
        raise


def _text(statement: ast.AnyStatement) -> str | None:
    return statement.position.text if statement.position is not None else None


def split_push_query(text: str) -> tuple[list[ast.AnyStatement], ast.Select, str]:
    """The statements before the final SELECT, the SELECT, and the SELECT's text."""
    spans = split_statements(text)
    if not spans or not re.match(r"SELECT\b", text[spans[-1].start :], re.IGNORECASE):
        raise KsqlError("no push query: the text must end with SELECT ... EMIT CHANGES;")
    last = spans[-1]
    statement = text[last.start : last.stop]
    # The grammar (grammar.lark) has no statement that is a bare SELECT: it is parsed as the
    # query of a CREATE STREAM ... AS, and a syntax error is moved back to where it was written.
    declarations = parse(text[: last.start])
    try:
        (created,) = parse(_AS_SELECT + statement)
    except KsqlSyntaxError as exc:
        raise _moved(exc, text, last.start, statement) from None
    assert isinstance(created, ast.CreateAs)
    return declarations, created.query, statement


def _moved(exc: KsqlSyntaxError, text: str, start: int, statement: str) -> KsqlSyntaxError:
    """``exc`` (of the SELECT behind the CREATE ... AS prefix) at its place in ``text``."""
    line = text.count("\n", 0, start) + 1
    column = exc.column
    if exc.line == 1:
        column += start - (text.rfind("\n", 0, start) + 1) - len(_AS_SELECT)
    message = exc.message.split(": ", 1)[1]  # without the "line L:C: " of the rewritten text
    return KsqlSyntaxError(message, line + exc.line - 1, max(column, 1), statement)


def plan_transient(select: ast.Select, catalog: Catalog, sink_topic: str) -> QueryPlan:
    """``select`` planned as a persistent query's, a stream or a table as the planner decides.

    The sink's formats are JSON whatever the sources': nothing but this process reads them,
    JSON carries every type (the projection of a DELIMITED stream may be a STRUCT), and a
    registry format would register schemas for a sink that does not exist.
    """
    properties = {"KAFKA_TOPIC": sink_topic, "KEY_FORMAT": "JSON", "VALUE_FORMAT": "JSON"}

    def plan(select: ast.Select) -> QueryPlan:
        try:
            return plan_query(select, catalog, "STREAM", TRANSIENT, TRANSIENT, properties)
        except KsqlError as exc:
            if not exc.message.startswith(_PRODUCES_TABLE):
                raise
        return plan_query(select, catalog, "TABLE", TRANSIENT, TRANSIENT, properties)

    try:
        return plan(select)
    except KsqlError as exc:
        # A persistent query's sink needs its key in the projection; a push query does not
        # (ksqlDB's prints what was selected): the key goes in, under a name not shown.
        if _KEY_MISSING not in exc.message:
            raise
        keys = [key for key in _key_expressions(select, catalog) if key not in _selected(select)]
        if not keys:
            raise
        hidden = [ast.SelectItem(key, f"{HIDDEN}{i}") for i, key in enumerate(keys)]
        return plan(replace(select, items=(*select.items, *hidden)))


def _key_expressions(select: ast.Select, catalog: Catalog) -> list[ast.Expr]:
    """What keys a query's result: its GROUP BY, else its PARTITION BY, else its source's key
    columns (a join's key is for the user to project, as in ksqlDB)."""
    if select.joins:
        return []
    if select.group_by:
        return list(select.group_by)
    if select.partition_by:
        return list(select.partition_by)
    source = catalog.get(select.source.name)
    return [ast.ColumnRef(c.name, select.source.label) for c in source.key_columns]


def _selected(select: ast.Select) -> list[ast.Expr]:
    return [item.expr for item in select.items if isinstance(item, ast.SelectItem)]


# --- result rows ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResultRow:
    cells: list[str]
    deleted: bool = False


class RowFormatter:
    """A sink's records as rows of text: key columns, the window bounds of a windowed key
    (unless the projection names them), then value columns, as ksqlDB's CLI shows them."""

    def __init__(self, sink: Source) -> None:
        self._sink = sink
        # Key columns only the query needed (see plan_transient) are decoded, not shown.
        self._shown = [not c.name.startswith(HIDDEN) for c in sink.key_columns]
        keys = [(c.name, c.type) for c in sink.key_columns if not c.name.startswith(HIDDEN)]
        values = [(c.name, c.type) for c in sink.value_columns]
        self._bounds = sink.window is not None and not {WINDOWSTART, WINDOWEND} & {
            name for name, _type in values
        }
        bigint = ast.SqlType("BIGINT")
        bounds = [(WINDOWSTART, bigint), (WINDOWEND, bigint)] if self._bounds else []
        self._key_types = [t for _n, t in keys] + [t for _n, t in bounds]
        self._value_types = [t for _n, t in values]
        self.columns = [name for name, _type in keys + bounds + values]

    def __call__(self, record: Encoded) -> ResultRow:
        keys = self._keys(record.key)
        key_cells = [cell(v, t) for v, t in zip(keys, self._key_types, strict=True)]
        values = self._sink.value_serde.deserialize(record.value)
        if values is None:
            blanks = [""] * (len(self._value_types) - 1)
            return ResultRow([*key_cells, DELETED, *blanks], deleted=True)
        value_cells = [cell(v, t) for v, t in zip(values, self._value_types, strict=True)]
        return ResultRow(key_cells + value_cells)

    def _keys(self, data: bytes | None) -> list[Any]:
        sink = self._sink
        if data is None:
            return [None] * len(self._key_types)
        bounds: list[Any] = []
        if sink.window is None:
            keys = sink.key_serde.deserialize(data)
        else:
            keys, start, end = sink.windowed_key_serde.deserialize(data)
            bounds = [start, end] if self._bounds else []
        keys = keys or [None] * len(sink.key_columns)
        return [k for k, shown in zip(keys, self._shown, strict=True) if shown] + bounds


def cell(value: Any, sql_type: ast.SqlType) -> str:
    """A value as ksqlDB's CLI shows it: temporal types as text, BYTES in base64,
    collections as JSON, NULL as ``null``."""
    if value is None:
        return "null"
    name = sql_type.name
    if name == "TIMESTAMP":
        return format_timestamp_text(value)
    if name == "DATE":
        return format_date_text(value)
    if name == "TIME":
        return format_time_text(value)
    if name in ("ARRAY", "MAP", "STRUCT", "BOOLEAN", "BYTES"):
        return as_json(value)
    return str(value)


def as_json(value: Any) -> str:
    return orjson.dumps(value, default=_json_default).decode()


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return str(value)  # Decimal: its digits, exact


class TablePrinter:
    """A table printed a row at a time, as rows arrive: every row is a table of its own with
    the header's column widths (the terminal's width shared, as ksqlDB's CLI does)."""

    def __init__(self, console: Console, columns: Sequence[str]) -> None:
        self._console = console
        self._columns = list(columns)
        share = console.width // max(len(columns), 1) - 3  # the separator and padding
        self._widths = [max(len(name), share) for name in columns]

    def _table(self, header: bool) -> Table:
        table = Table(box=box.MINIMAL, show_edge=False, show_header=header, pad_edge=False)
        for name, width in zip(self._columns, self._widths, strict=True):
            table.add_column(Text(name), width=width, overflow="fold")
        return table

    def header(self) -> None:
        self._console.print(self._table(header=True))

    def row(self, row: ResultRow) -> None:
        table = self._table(header=False)
        table.add_row(*(Text(c) for c in row.cells), style="dim" if row.deleted else None)
        self._console.print(table)


# --- running a transient query ----------------------------------------------------------------


class TransientBuilder(Builder):
    """The query's topics: its sources as every query reads them; its sink and dead letters
    topics that are never created, whose records :func:`divert` takes before they are sent."""

    def __init__(self, app: Application, sink_topic: str) -> None:
        super().__init__(app, processor="streams.ksql query")
        self.sink = Topic(sink_topic, key_serializer="bytes", value_serializer=EncodedSerializer())
        self.rejected = Topic(f"{sink_topic}-rejected", value_serializer="bytes")
        # A bad record is logged (as a dead letter, by the handler) and skipped: a transient
        # query writes nothing to the processors' dead-letter topic.
        quix.set_processing_error_handler(app, ProcessingErrors(app, self.rejected))

    def topic(self, name: str) -> Topic:
        return self.sink if name == self.sink.name else super().topic(name)

    @property
    def dead_letter(self) -> Topic:
        return self.rejected


def divert(
    app: Application,
    builder: TransientBuilder,
    producer: InternalProducer,
    deliver: Callable[[Encoded], None],
) -> None:
    """Records for ``builder``'s sink go to ``deliver``, its dead letters nowhere; the app's
    own topics (repartitions) are produced as usual. The sink's records all reach
    ``produce_row``: its serializer is not the plain JSON one that the emitter encodes itself."""
    if quix.encoder(builder.sink) is not None or quix.encoder(builder.rejected) is not None:
        raise TypeError("a transient query's sink and dead letters must be produced as rows")
    produce_row = producer.produce_row

    def produce_or_divert(row: Any, topic: Topic, *args: Any, **kwargs: Any) -> None:
        if topic is builder.sink:
            deliver(row.value)
        elif topic is not builder.rejected:
            produce_row(row, topic, *args, **kwargs)

    quix.DriverHooks(app).capture_produced(produce_or_divert)


class TransientQuery:
    """One run of a push query: its consumer group, state directory and cleanup."""

    def __init__(self, text: str, files: Sequence[Path]) -> None:
        self.group = f"{GROUP_PREFIX}{uuid.uuid4().hex[:12]}"
        self.query = compile_push_query(text, files, f"{self.group}-sink")
        self._settings = KafkaSettings.from_env()
        self._admin = AdminClient(
            {
                "bootstrap.servers": self._settings.bootstrap_servers,
                **librdkafka_properties("STREAMS_CONSUMER_CONFIG"),
            }
        )

    def run(self, from_beginning: bool, console: Console) -> None:
        """Print the query's rows until its LIMIT, Ctrl-C or SIGTERM; then clean up."""
        plan = self.query.plan
        topics = self._admin.list_topics(timeout=30).topics
        missing = sorted({s.topic for s in plan.inputs} - set(topics))
        if missing:
            raise KsqlError(f"Kafka topic does not exist: {', '.join(missing)}")
        logger.info("transient query: consumer group %s", self.group)
        state_dir = tempfile.mkdtemp(prefix=f"{self.group}-")
        try:
            if not from_beginning:
                self._start_at_end(plan.inputs)
            self._run(state_dir, console)
        finally:
            # Nothing stops the cleanup half way: a second Ctrl-C would leave topics behind.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            self._clean_up()
            shutil.rmtree(state_dir, ignore_errors=True)

    def _start_at_end(self, sources: Sequence[Source]) -> None:
        """The group starts at the sources' end offsets: ksqlDB's ``auto.offset.reset``
        latest, for the sources only. Its repartition topics must be read from their first
        record (the consumer's reset is earliest), as Kafka Streams reads internal topics."""
        metadata = self._admin.list_topics(timeout=30).topics
        wanted = {
            TopicPartition(s.topic, p): OffsetSpec.latest()
            for s in sources
            for p in metadata[s.topic].partitions
        }
        ends = [
            TopicPartition(tp.topic, tp.partition, future.result(timeout=30).offset)
            for tp, future in self._admin.list_offsets(wanted).items()
        ]
        request = ConsumerGroupTopicPartitions(self.group, ends)
        for future in self._admin.alter_consumer_group_offsets([request]).values():
            future.result(timeout=30)

    def _run(self, state_dir: str, console: Console) -> None:
        plan, limit = self.query.plan, self.query.limit
        quix.check_version()
        app = Application(
            broker_address=self._settings.bootstrap_servers,
            consumer_group=self.group,
            auto_offset_reset="earliest",  # see _start_at_end
            # No transactions: what a repartition writes is read at once, not after a commit.
            processing_guarantee="at-least-once",
            commit_interval=1.0,
            state_dir=state_dir,
            use_changelog_topics=False,
            producer_extra_config={
                "partitioner": "murmur2_random",
                **librdkafka_properties("STREAMS_PRODUCER_CONFIG"),
            },
            consumer_extra_config=librdkafka_properties("STREAMS_CONSUMER_CONFIG"),
            # What Quix says on every start and stop is noise between the rows of a query.
            loglevel="WARNING",
        )
        builder = TransientBuilder(app, plan.sink.topic)
        plan.build(builder)
        formatter = RowFormatter(plan.sink)
        printer = TablePrinter(console, formatter.columns)
        shown = 0

        def deliver(record: Encoded) -> None:
            nonlocal shown
            if limit is not None and shown >= limit:
                return  # later records of the record that reached the limit
            printer.row(formatter(record))
            shown += 1
            if shown == limit:
                console.print("Limit Reached")
                app.stop()

        producer = builder.frame(plan.inputs[0]).processing_context.producer
        divert(app, builder, producer, deliver)
        printer.header()
        app.run()
        console.print("Query terminated")

    def _clean_up(self) -> None:
        internal = [t for t in self._admin.list_topics(timeout=30).topics if self.group in t]
        if internal:
            for future in self._admin.delete_topics(internal, operation_timeout=30).values():
                with contextlib.suppress(KafkaException):
                    future.result(timeout=60)
            logger.info("deleted topics %s", ", ".join(sorted(internal)))
        delete_group(self._admin, self.group)


def delete_group(admin: AdminClient, group: str, timeout_s: float = 30) -> None:
    """Delete ``group``, waiting for its last member to leave (a consumer just closed may still
    be a member for a moment); a group that was never created is done."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin.delete_consumer_groups([group], request_timeout=10)[group].result()
            return
        except KafkaException as exc:
            code = exc.args[0].code()
            if code == KafkaError.GROUP_ID_NOT_FOUND:
                return
            if code != KafkaError.NON_EMPTY_GROUP or time.monotonic() > deadline:
                raise
        time.sleep(0.5)


def _interrupt(*_args: object) -> None:
    raise KeyboardInterrupt


def add_query_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "statement",
        help="SELECT ... EMIT CHANGES [LIMIT n], after any CREATE STREAM|TABLE statements that "
        "declare its sources ('CREATE STREAM s (...) WITH (...); SELECT * FROM s EMIT CHANGES;')",
    )
    parser.add_argument(
        "--from-beginning",
        action="store_true",
        help="read the sources from their earliest offsets (ksqlDB's auto.offset.reset "
        "earliest); default: only records produced after the query starts",
    )
    parser.add_argument(
        "--statements",
        action="append",
        type=Path,
        default=[],
        metavar="FILE.sql",
        help="a .sql file whose streams and tables the query can read (its persistent queries "
        "are not run); repeat for several",
    )


def query_main(args: argparse.Namespace) -> int:
    """Exit 0 once the query stops (LIMIT, Ctrl-C, SIGTERM), 1 if it cannot run."""
    signal.signal(signal.SIGTERM, _interrupt)  # until the app handles it, then again for us
    try:
        query = TransientQuery(args.statement, args.statements)
    except KsqlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        query.run(args.from_beginning, Console(highlight=False))
    except KsqlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass  # before the app ran, which handles Ctrl-C and SIGTERM itself; cleaned up
    return 0


# --- PRINT ------------------------------------------------------------------------------------


def guess(data: bytes | None) -> str:
    """Bytes of an unknown format as ksqlDB's PRINT guesses them: JSON if they parse, else
    UTF-8 text, else hex."""
    if data is None:
        return NULL
    try:
        return as_json(orjson.loads(data))
    except orjson.JSONDecodeError:
        pass
    try:
        text = data.decode()
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c in "\t\n\r" for c in text):
        return text
    return "0x" + data.hex().upper()


def key_text(data: bytes | None, source: Source | None) -> str:
    """A key by column name with ``source``'s serde (window bounds included), else guessed."""
    if data is None:
        return NULL
    if source is None or not source.key_columns:
        return guess(data)
    names = [c.name for c in source.key_columns]
    try:
        if source.window is None:
            values = source.key_serde.deserialize(data) or [None] * len(names)
        else:
            keys, start, end = source.windowed_key_serde.deserialize(data)
            values = [*(keys or [None] * len(names)), start, end]
            names += [WINDOWSTART, WINDOWEND]
    except formats.SerdeError:
        return guess(data)
    return as_json(dict(zip(names, values, strict=True)))


def value_text(data: bytes | None, source: Source | None) -> str:
    """A value by column name with ``source``'s serde, else guessed."""
    if data is None:
        return NULL
    if source is None:
        return guess(data)
    try:
        values = source.value_serde.deserialize(data)
    except formats.SerdeError:
        return guess(data)
    if values is None:
        return NULL
    return as_json({c.name: v for c, v in zip(source.value_columns, values, strict=True)})


def rowtime_text(ms: int | None) -> str:
    """ksqlDB's PRINT rowtime: ``2023/11/14 22:15:00.000 Z``."""
    if ms is None or ms < 0:
        return "N/A"
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return f"{moment:%Y/%m/%d %H:%M:%S}.{ms % 1000:03} Z"


def record_line(
    rowtime: int | None,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    source: Source | None = None,
) -> str:
    return (
        f"rowtime: {rowtime_text(rowtime)}, partition: {partition}, offset: {offset}, "
        f"key: {key_text(key, source)}, value: {value_text(value, source)}"
    )


def _message_line(message: Message, source: Source | None) -> str:
    _kind, rowtime = message.timestamp()
    return record_line(
        rowtime, message.partition(), message.offset(), message.key(), message.value(), source
    )


def source_over(catalog: Catalog, topic: str) -> Source | None:
    """The first stream or table declared over ``topic``, if any."""
    return next((s for s in catalog.sources.values() if s.topic == topic), None)


def print_topic(topic: str, from_beginning: bool, limit: int | None, source: Source | None) -> None:
    """Print ``topic``'s records until ``limit`` of them (or Ctrl-C, SIGTERM)."""
    consumer = Consumer(
        {
            "bootstrap.servers": KafkaSettings.from_env().bootstrap_servers,
            # Partitions are assigned, never subscribed: the group is never joined or written.
            "group.id": f"streams-ksql-print-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            **librdkafka_properties("STREAMS_CONSUMER_CONFIG"),
        }
    )
    try:
        metadata = consumer.list_topics(timeout=30).topics.get(topic)
        if metadata is None:
            raise KsqlError(f"Kafka topic does not exist: {topic}")
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        consumer.assign([TopicPartition(topic, p, start) for p in sorted(metadata.partitions)])
        printed = 0
        while limit is None or printed < limit:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error() is not None:
                raise KafkaException(message.error())
            print(_message_line(message, source), flush=True)
            printed += 1
    finally:
        consumer.close()


def add_print_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("topic", help="the topic to print")
    parser.add_argument(
        "--from-beginning",
        action="store_true",
        help="from the earliest offsets; default: only records produced after it starts",
    )
    parser.add_argument(
        "--limit", type=int, metavar="N", help="stop after N records (default: until Ctrl-C)"
    )
    parser.add_argument(
        "--statements",
        action="append",
        type=Path,
        default=[],
        metavar="FILE.sql",
        help="a .sql file: the first stream or table over TOPIC decodes its records, columns by "
        "name; repeat for several files. Without one, each key and value is shown as JSON if it "
        "parses, else as UTF-8 text, else in hex",
    )


def print_main(args: argparse.Namespace) -> int:
    """Exit 0 once stopped (--limit, Ctrl-C, SIGTERM), 1 if the topic cannot be printed."""
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        catalog = runner.load(args.statements).catalog if args.statements else Catalog()
        source = source_over(catalog, args.topic)
        if source is not None:
            logger.info("decoding %s with %s %s", args.topic, source.kind.lower(), source.name)
        print_topic(args.topic, args.from_beginning, args.limit, source)
    except KsqlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0
