"""``python -m streams.ksql query`` and ``print`` without Kafka: a push query is compiled by the
planner, its sink's records (as the test driver runs the plan) become rows of text, a row at a
time in a table; PRINT decodes with a declared source or guesses; a statement that cannot
compile is an error before anything is contacted."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from decimal import Decimal

import pytest
from rich.console import Console

from streams.ksql import adhoc
from streams.ksql.ast import SqlType
from streams.ksql.compiler import Builder, compile_sql
from streams.ksql.errors import KsqlError, KsqlSyntaxError
from streams.ksql.plans import Encoded
from streams.testing import TestDriver

SINK = "query-sink"
PV = (
    "CREATE STREAM pv (id STRING KEY, source STRING, views INT) "
    "WITH (KAFKA_TOPIC='pv', VALUE_FORMAT='JSON');"
)
T0 = 1_700_000_100_000  # a multiple of 5 minutes


def rows_of(
    text: str, records: list[tuple[str, dict | None, int]], source: str = "pv"
) -> tuple[adhoc.PushQuery, adhoc.RowFormatter, list[adhoc.ResultRow]]:
    """The compiled push query of ``text``, and its rows for ``records`` piped to ``source``."""
    query = adhoc.compile_push_query(text, [], SINK)
    formatter = adhoc.RowFormatter(query.plan.sink)
    with TestDriver(lambda app: query.plan.build(Builder(app))) as driver:
        for key, value, ts in records:
            driver.pipe(source, key, value, timestamp=ts)
        out = driver.read(SINK)
    return query, formatter, [formatter(Encoded(r.raw_key, r.raw_value, r.timestamp)) for r in out]


def test_a_projection_with_where_is_rows_of_its_columns_with_its_limit() -> None:
    query, formatter, rows = rows_of(
        f"{PV}\nSELECT id, views * 2 AS twice FROM pv WHERE source = 'Inbox' EMIT CHANGES LIMIT 2;",
        [
            ("a", {"SOURCE": "Inbox", "VIEWS": 1}, T0),
            ("b", {"SOURCE": "Homepage", "VIEWS": 2}, T0),
            ("c", {"SOURCE": "Inbox", "VIEWS": None}, T0),
        ],
    )
    assert query.limit == 2
    assert query.plan.sink.kind == "STREAM"
    assert formatter.columns == ["ID", "TWICE"]
    assert rows == [adhoc.ResultRow(["a", "2"]), adhoc.ResultRow(["c", "null"])]


def test_a_push_query_needs_not_select_the_key_as_a_persistent_query_must() -> None:
    # As ksqlDB's CLI: only what was selected is shown; the key rides along, hidden.
    _query, formatter, rows = rows_of(
        f"{PV}\nSELECT views FROM pv EMIT CHANGES;",
        [("a", {"SOURCE": "Inbox", "VIEWS": 1}, T0), ("b", {"SOURCE": "Inbox", "VIEWS": 3}, T0)],
    )
    assert formatter.columns == ["VIEWS"]
    assert rows == [adhoc.ResultRow(["1"]), adhoc.ResultRow(["3"])]
    _query, formatter, rows = rows_of(
        f"{PV}\nSELECT COUNT(*) AS n FROM pv WINDOW TUMBLING (SIZE 5 MINUTES) "
        "GROUP BY source EMIT CHANGES;",
        [("a", {"SOURCE": "Inbox", "VIEWS": 1}, T0), ("b", {"SOURCE": "Inbox", "VIEWS": 3}, T0)],
    )
    assert formatter.columns == ["WINDOWSTART", "WINDOWEND", "N"]
    end = T0 + 300_000
    assert [row.cells for row in rows] == [[str(T0), str(end), "1"], [str(T0), str(end), "2"]]


def test_a_windowed_aggregation_shows_the_window_bounds_after_the_key() -> None:
    query, formatter, rows = rows_of(
        f"{PV} SELECT source, COUNT(*) AS n FROM pv WINDOW TUMBLING (SIZE 5 MINUTES) "
        "GROUP BY source EMIT CHANGES;",
        [
            ("a", {"SOURCE": "Inbox", "VIEWS": 1}, T0),
            ("b", {"SOURCE": "Inbox", "VIEWS": 1}, T0 + 1_000),
            ("c", {"SOURCE": "Inbox", "VIEWS": 1}, T0 + 300_000),
        ],
    )
    assert query.plan.sink.kind == "TABLE"
    assert query.limit is None
    assert formatter.columns == ["SOURCE", "WINDOWSTART", "WINDOWEND", "N"]
    start, mid, end = str(T0), str(T0 + 300_000), str(T0 + 600_000)
    assert [r.cells for r in rows] == [
        ["Inbox", start, mid, "1"],
        ["Inbox", start, mid, "2"],
        ["Inbox", mid, end, "1"],
    ]


def test_a_table_row_that_leaves_the_table_is_a_deleted_row() -> None:
    users = (
        "CREATE TABLE users (id STRING PRIMARY KEY, name STRING, score INT) "
        "WITH (KAFKA_TOPIC='users', VALUE_FORMAT='JSON');"
    )
    _query, formatter, rows = rows_of(
        f"{users} SELECT id, name, score FROM users WHERE score > 0 EMIT CHANGES;",
        [
            ("1", {"NAME": "ann", "SCORE": 3}, T0),
            ("2", {"NAME": "bob", "SCORE": 1}, T0),
            ("1", None, T0),  # deleted
            ("2", {"NAME": "bob", "SCORE": 0}, T0),  # filtered out: leaves the table
        ],
        source="users",
    )
    assert formatter.columns == ["ID", "NAME", "SCORE"]
    assert rows == [
        adhoc.ResultRow(["1", "ann", "3"]),
        adhoc.ResultRow(["2", "bob", "1"]),
        adhoc.ResultRow(["1", "<deleted>", ""], deleted=True),
        adhoc.ResultRow(["2", "<deleted>", ""], deleted=True),
    ]


@pytest.mark.parametrize(
    ("value", "sql_type", "text"),
    [
        (None, "INTEGER", "null"),
        (True, "BOOLEAN", "true"),
        (T0, "TIMESTAMP", "2023-11-14T22:15:00.000"),
        (19_675, "DATE", "2023-11-14"),
        (80_100_000, "TIME", "22:15"),
        (b"\x00\xff", "BYTES", '"AP8="'),
        (Decimal("1.50"), "DECIMAL", "1.50"),
        (1.5, "DOUBLE", "1.5"),
    ],
)
def test_a_value_shows_as_ksqldb_shows_it(value, sql_type: str, text: str) -> None:
    assert adhoc.cell(value, SqlType(sql_type)) == text


def test_collections_show_as_json() -> None:
    struct = SqlType("STRUCT", fields=(("A", SqlType("INTEGER")),))
    assert adhoc.cell({"A": 1, "B": [Decimal("2.5"), None]}, struct) == '{"A":1,"B":["2.5",null]}'


def test_rows_print_one_at_a_time_under_one_header_with_the_same_widths() -> None:
    out = io.StringIO()
    printer = adhoc.TablePrinter(Console(file=out, width=30), ["ID", "NAME"])
    printer.header()
    printer.row(adhoc.ResultRow(["1", "ann"]))
    printer.row(adhoc.ResultRow(["1", "<deleted>"], deleted=True))
    assert out.getvalue().splitlines() == [
        "ID           │ NAME        ",
        "─────────────┼─────────────",
        "1            │ ann         ",
        "1            │ <deleted>   ",
    ]


def test_the_declarations_before_the_select_are_sources_and_errors_point_into_the_text() -> None:
    declarations, select, statement = adhoc.split_push_query(
        f"{PV}\n-- the query\nSELECT * FROM pv EMIT CHANGES LIMIT 5;"
    )
    assert [d.name for d in declarations] == ["PV"]
    assert (select.limit, statement) == (5, "SELECT * FROM pv EMIT CHANGES LIMIT 5;")
    with pytest.raises(KsqlSyntaxError) as caught:
        adhoc.split_push_query(f"{PV}\n  SELECT id,, FROM pv EMIT CHANGES;")
    assert (caught.value.line, caught.value.column) == (2, 13)
    assert (
        caught.value.message
        == "line 2:13: Syntax error at or near ',': expected an expression or '*'"
    )
    assert caught.value.statement == "SELECT id,, FROM pv EMIT CHANGES;"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"{PV} SELECT * FROM pv;", "Pull queries are not supported"),
        (
            f"{PV} CREATE STREAM b AS SELECT * FROM pv; SELECT * FROM b EMIT CHANGES;",
            "only CREATE STREAM|TABLE statements may come before the SELECT",
        ),
        (PV, "no push query"),
        ("SELECT * FROM pv EMIT CHANGES;", "PV does not exist."),
    ],
)
def test_what_is_not_a_push_query_is_said(text: str, message: str) -> None:
    with pytest.raises(KsqlError, match=message.replace("|", r"\|")):
        adhoc.compile_push_query(text, [], SINK)


def test_the_sources_of_statements_files_are_read_and_their_queries_not_planned_again(
    tmp_path,
) -> None:
    file = tmp_path / "pipeline.sql"
    file.write_text(
        f"{PV}\nCREATE TABLE per_source AS SELECT source, COUNT(*) AS n FROM pv GROUP BY source;\n"
    )
    query = adhoc.compile_push_query("SELECT * FROM per_source EMIT CHANGES;", [file], SINK)
    assert [s.name for s in query.plan.inputs] == ["PER_SOURCE"]
    assert [c.name for c in query.plan.sink.columns] == ["SOURCE", "N"]


def test_a_statement_that_does_not_compile_exits_1_before_contacting_kafka() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streams.ksql", "query", "SELECT * FROM nowhere EMIT CHANGES;"],
        # Nothing listens there: contacting it would hang for the admin client's 30 s timeout.
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"},
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 1
    assert "error: NOWHERE does not exist.\nStatement: SELECT * FROM nowhere EMIT CHANGES;" in (
        done.stderr
    )
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("data", "shown"),
    [
        (None, "<null>"),
        (b'{"a": [1, 2.5]}', '{"a":[1,2.5]}'),
        (b"42", "42"),
        (b"hello world", "hello world"),
        (b"\x00\x00\x00\x07", "0x00000007"),
        (b"\xff\xfe", "0xFFFE"),
    ],
)
def test_print_guesses_an_unknown_format_as_ksqldb_does(data: bytes | None, shown: str) -> None:
    assert adhoc.guess(data) == shown


def test_print_decodes_with_a_source_declared_over_the_topic() -> None:
    catalog = compile_sql(PV).catalog
    source = adhoc.source_over(catalog, "pv")
    assert source is not None and adhoc.source_over(catalog, "other") is None
    line = adhoc.record_line(T0 + 5, 2, 17, b"a", b'{"SOURCE": "Inbox", "VIEWS": 3}', source)
    assert line == (
        'rowtime: 2023/11/14 22:15:00.005 Z, partition: 2, offset: 17, key: {"ID":"a"}, '
        'value: {"SOURCE":"Inbox","VIEWS":3}'
    )
    # What the source cannot read is guessed; a null value is shown as null.
    line = adhoc.record_line(T0, 0, 1, b"a", b"not json", source)
    assert line.endswith('key: {"ID":"a"}, value: not json')
    assert adhoc.record_line(None, 0, 2, None, None).endswith("key: <null>, value: <null>")
    assert adhoc.record_line(None, 0, 2, None, None).startswith("rowtime: N/A,")


def test_print_shows_a_windowed_key_with_its_bounds() -> None:
    table = compile_sql(
        "CREATE TABLE counts (source STRING PRIMARY KEY, n BIGINT) WITH (KAFKA_TOPIC='counts', "
        "VALUE_FORMAT='JSON', WINDOW_TYPE='TUMBLING', WINDOW_SIZE='5 MINUTES');"
    ).catalog.get("COUNTS")
    key = table.windowed_key_serde.serialize(["Inbox"], T0, T0 + 300_000)
    assert adhoc.key_text(key, table) == (
        f'{{"SOURCE":"Inbox","WINDOWSTART":{T0},"WINDOWEND":{T0 + 300_000}}}'
    )
