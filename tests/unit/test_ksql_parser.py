"""streams.ksql.parser: ksqlDB text -> the syntax tree of streams.ksql.ast.

Exact trees for each statement kind, the clauses, precedence, identifiers, literals and errors;
then ksqlDB's own corpus (../shared/ksql-qtt, ksql-statements, ksql-test-runner): every
statement parses, and what ksqlDB rejects as a syntax error is rejected here too, at the same
line and column.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from lark import Lark
from lark import logger as lark_logger

from streams.ksql.ast import (
    AlterSource,
    ArrayConstructor,
    Between,
    Binary,
    Case,
    Cast,
    ColumnDef,
    ColumnRef,
    CreateAs,
    CreateSource,
    Dereference,
    Drop,
    FunctionCall,
    InList,
    InsertInto,
    InsertValues,
    IntervalUnit,
    IsDistinctFrom,
    IsNull,
    Join,
    Lambda,
    LambdaVariable,
    Like,
    Literal,
    MapConstructor,
    Position,
    Relation,
    Select,
    SelectItem,
    SetProperty,
    SqlType,
    Star,
    StructConstructor,
    Subscript,
    Terminate,
    Unary,
    UnsetProperty,
    Window,
    Within,
)
from streams.ksql.errors import KsqlSyntaxError
from streams.ksql.parser import parse, parse_expression

GRAMMAR = Path(__file__).resolve().parents[2] / "src" / "streams" / "ksql" / "grammar.lark"

INTEGER = SqlType("INTEGER")
BIGINT = SqlType("BIGINT")
DOUBLE = SqlType("DOUBLE")
STRING = SqlType("STRING")
BOOLEAN = SqlType("BOOLEAN")


def one(text: str) -> Any:
    statements = parse(text)
    assert len(statements) == 1
    return statements[0]


def query(text: str) -> Select:
    """The query of ``CREATE STREAM OUT AS <text>``."""
    return one(f"CREATE STREAM OUT AS {text}").query


def col(name: str, source: str | None = None) -> ColumnRef:
    return ColumnRef(name, source)


def num(value: int) -> Literal:
    return Literal(value, INTEGER)


def text(value: str) -> Literal:
    return Literal(value, STRING)


def reason(error: KsqlSyntaxError) -> str:
    """The error's message without its "line L:C: " prefix."""
    prefix = f"line {error.line}:{error.column}: "
    assert error.message.startswith(prefix)
    return error.message[len(prefix) :]


def syntax_error(statement: str) -> KsqlSyntaxError:
    with pytest.raises(KsqlSyntaxError) as info:
        parse(statement)
    return info.value


# --- the grammar -------------------------------------------------------------------------------


def test_grammar_has_no_lalr_conflicts():
    # Lark resolves a shift/reduce conflict silently (as a shift) and only logs it in debug
    # mode; a conflict would be an ambiguity the grammar's author did not decide.
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect(level=logging.DEBUG)
    level = lark_logger.level
    lark_logger.addHandler(handler)
    lark_logger.setLevel(logging.DEBUG)
    try:
        Lark(
            GRAMMAR.read_text(),
            parser="lalr",
            lexer="contextual",
            start=["statement", "expression"],
            maybe_placeholders=True,
            debug=True,
        )
    finally:
        lark_logger.removeHandler(handler)
        lark_logger.setLevel(level)
    conflicts = [r.getMessage() for r in records if "conflict" in r.getMessage().lower()]
    assert conflicts == []


# --- statements --------------------------------------------------------------------------------


def test_create_stream_with_columns_and_properties():
    stmt = one(
        "CREATE STREAM pageviews (session_id VARCHAR, user_id INT KEY, amount DECIMAL(10, 2), "
        "tags ARRAY<STRING>, attrs MAP<STRING, BIGINT>, address STRUCT<street STRING, `Zip` INT>, "
        "raw BYTES HEADERS, trace BYTES HEADER('trace-id'), ts TIMESTAMP, d DATE, t TIME, "
        "ok BOOLEAN, x DOUBLE, s STRING, i INTEGER) "
        "WITH (KAFKA_TOPIC='topic1', value_format='JSON', PARTITIONS=5, WRAP_SINGLE_VALUE=false, "
        "\"Quoted\"=1.5, 'timestamp_format'='yyyy-MM-dd''T''HH', REPLICAS=-1, X=NULL);"
    )
    assert stmt == CreateSource(
        kind="STREAM",
        name="PAGEVIEWS",
        columns=(
            ColumnDef("SESSION_ID", STRING),
            ColumnDef("USER_ID", INTEGER, key=True),
            ColumnDef("AMOUNT", SqlType("DECIMAL", precision=10, scale=2)),
            ColumnDef("TAGS", SqlType("ARRAY", element=STRING)),
            ColumnDef("ATTRS", SqlType("MAP", key=STRING, element=BIGINT)),
            ColumnDef("ADDRESS", SqlType("STRUCT", fields=(("STREET", STRING), ("Zip", INTEGER)))),
            ColumnDef("RAW", SqlType("BYTES"), headers=True),
            ColumnDef("TRACE", SqlType("BYTES"), headers=True, header="trace-id"),
            ColumnDef("TS", SqlType("TIMESTAMP")),
            ColumnDef("D", SqlType("DATE")),
            ColumnDef("T", SqlType("TIME")),
            ColumnDef("OK", BOOLEAN),
            ColumnDef("X", DOUBLE),
            ColumnDef("S", STRING),
            ColumnDef("I", INTEGER),
        ),
        properties={
            "KAFKA_TOPIC": "topic1",
            "VALUE_FORMAT": "JSON",
            "PARTITIONS": 5,
            "WRAP_SINGLE_VALUE": False,
            "QUOTED": 1.5,
            "TIMESTAMP_FORMAT": "yyyy-MM-dd'T'HH",
            "REPLICAS": -1,
            "X": None,
        },
    )
    assert isinstance(stmt.properties["PARTITIONS"], int)
    assert isinstance(stmt.properties["QUOTED"], float)


def test_create_table_primary_key_and_flags():
    stmt = one(
        "create or replace source table if not exists Users (id BIGINT PRIMARY KEY, name STRING) "
        "with (kafka_topic='users', format='AVRO')"
    )
    assert stmt == CreateSource(
        kind="TABLE",
        name="USERS",
        columns=(ColumnDef("ID", BIGINT, key=True, primary_key=True), ColumnDef("NAME", STRING)),
        properties={"KAFKA_TOPIC": "users", "FORMAT": "AVRO"},
        or_replace=True,
        if_not_exists=True,
        source=True,
    )


def test_create_source_without_columns():
    # The schema comes from the registry.
    assert one("CREATE STREAM S WITH (kafka_topic='s', value_format='AVRO');") == CreateSource(
        kind="STREAM",
        name="S",
        columns=(),
        properties={"KAFKA_TOPIC": "s", "VALUE_FORMAT": "AVRO"},
    )


def test_create_table_as_select():
    stmt = one(
        "CREATE OR REPLACE TABLE IF NOT EXISTS counts WITH (KAFKA_TOPIC='topic6', PARTITIONS=5) AS "
        "SELECT source, COUNT(*) AS pageview_count FROM pageview_stream "
        "WINDOW TUMBLING (SIZE 5 MINUTES) GROUP BY source EMIT CHANGES;"
    )
    assert stmt == CreateAs(
        kind="TABLE",
        name="COUNTS",
        properties={"KAFKA_TOPIC": "topic6", "PARTITIONS": 5},
        query=Select(
            items=(
                SelectItem(col("SOURCE")),
                SelectItem(FunctionCall("COUNT", star=True), "PAGEVIEW_COUNT"),
            ),
            source=Relation("PAGEVIEW_STREAM"),
            window=Window("TUMBLING", 300_000),
            group_by=(col("SOURCE"),),
            emit="CHANGES",
        ),
        or_replace=True,
        if_not_exists=True,
    )


def test_create_stream_as_select_without_properties():
    stmt = one("CREATE STREAM S2 AS SELECT * FROM S1")
    assert stmt == CreateAs(
        kind="STREAM",
        name="S2",
        properties={},
        query=Select(items=(Star(),), source=Relation("S1")),
    )


def test_insert_into_select():
    stmt = one("INSERT INTO out WITH (QUERY_ID='q1') SELECT a FROM src WHERE a > 1;")
    assert stmt == InsertInto(
        target="OUT",
        query=Select(
            items=(SelectItem(col("A")),),
            source=Relation("SRC"),
            where=Binary(">", col("A"), num(1)),
        ),
        properties={"QUERY_ID": "q1"},
    )
    assert one("INSERT INTO out SELECT * FROM src").properties == {}


def test_insert_values():
    assert one("INSERT INTO t (id, `Val`, s) VALUES (1, 'x', -2.5);") == InsertValues(
        target="T",
        columns=("ID", "Val", "S"),
        values=(
            num(1),
            text("x"),
            Literal(Decimal("-2.5"), SqlType("DECIMAL", precision=2, scale=1)),
        ),
    )
    assert one("INSERT INTO t VALUES ('a', NULL)") == InsertValues(
        target="T", columns=(), values=(text("a"), Literal(None, None))
    )
    assert one("INSERT INTO t VALUES ()") == InsertValues(target="T", columns=(), values=())


def test_set_and_unset():
    assert parse("SET 'auto.offset.reset' = 'earliest'; UNSET 'ksql.streams.x';") == [
        SetProperty(name="auto.offset.reset", value="earliest"),
        UnsetProperty(name="ksql.streams.x"),
    ]
    assert one("SET 'a'='it''s'") == SetProperty(name="a", value="it's")


def test_drop():
    assert parse(
        "DROP STREAM IF EXISTS test; DROP TABLE t DELETE TOPIC; DROP TABLE IF EXISTS `Mixed`;"
    ) == [
        Drop(kind="STREAM", name="TEST", if_exists=True),
        Drop(kind="TABLE", name="T", delete_topic=True),
        Drop(kind="TABLE", name="Mixed", if_exists=True),
    ]


def test_terminate():
    assert parse("TERMINATE CTAS_USERS_TABLE_3; TERMINATE ALL;") == [
        Terminate(query_id="CTAS_USERS_TABLE_3"),
        Terminate(query_id=None),
    ]


def test_alter():
    assert one("ALTER STREAM s ADD COLUMN a INT, ADD b ARRAY<STRING>;") == AlterSource(
        kind="STREAM",
        name="S",
        columns=(ColumnDef("A", INTEGER), ColumnDef("B", SqlType("ARRAY", element=STRING))),
    )


# --- several statements, positions, comments ---------------------------------------------------


def test_statements_carry_their_position_and_text():
    source = (
        "-- header comment; with a semicolon\n"
        "SET 'a' = 'b';\n"
        "\n"
        "  /* a block; comment */ CREATE STREAM s (v STRING)\n"
        "    WITH (kafka_topic='t;x', value_format='JSON'); DROP STREAM s\n"
    )
    first, second, third = parse(source)
    assert first.position == Position(2, 1, "SET 'a' = 'b';")
    assert second.position == Position(
        4,
        26,
        "CREATE STREAM s (v STRING)\n    WITH (kafka_topic='t;x', value_format='JSON');",
    )
    assert second.properties["KAFKA_TOPIC"] == "t;x"
    # The last statement's ';' is optional.
    assert third == Drop(kind="STREAM", name="S")
    assert third.position == Position(5, 52, "DROP STREAM s")


def test_comments_and_empty_statements_are_ignored():
    assert parse("") == []
    assert parse("  -- nothing\n /* at all */ ;; ") == []
    stmt = one("DROP /* x */ STREAM -- y\n s --z")
    assert stmt == Drop(kind="STREAM", name="S")


def test_quotes_hide_comment_markers_and_semicolons():
    stmt = query("SELECT '--not a comment;' AS a, `x;--y` FROM s")
    assert stmt.items == (SelectItem(text("--not a comment;"), "A"), SelectItem(col("x;--y")))


# --- queries -----------------------------------------------------------------------------------


def test_select_items_and_aliases():
    select = query('SELECT *, s.*, a, b AS bee, c see, `d` AS `Dee`, e + 1 "Eplus" FROM src AS s')
    assert select.items == (
        Star(),
        Star("S"),
        SelectItem(col("A")),
        SelectItem(col("B"), "BEE"),
        SelectItem(col("C"), "SEE"),
        SelectItem(col("d"), "Dee"),
        SelectItem(Binary("+", col("E"), num(1)), "Eplus"),
    )
    assert select.source == Relation("SRC", "S")
    assert select.source.label == "S"
    assert query("SELECT a FROM src s").source == Relation("SRC", "S")


def test_clauses_in_order():
    select = query(
        "SELECT a, COUNT(*) FROM s WINDOW HOPPING (SIZE 10 SECONDS, ADVANCE BY 5 SECONDS) "
        "WHERE b = 'x' GROUP BY a HAVING COUNT(*) > 1 EMIT FINAL LIMIT 10"
    )
    assert select == Select(
        items=(SelectItem(col("A")), SelectItem(FunctionCall("COUNT", star=True))),
        source=Relation("S"),
        window=Window("HOPPING", 10_000, advance_ms=5_000),
        where=Binary("=", col("B"), text("x")),
        group_by=(col("A"),),
        having=Binary(">", FunctionCall("COUNT", star=True), num(1)),
        emit="FINAL",
        limit=10,
    )


def test_partition_by():
    assert query("SELECT * FROM s PARTITION BY a, b->c EMIT CHANGES").partition_by == (
        col("A"),
        Dereference(col("B"), "C"),
    )
    assert query("SELECT * FROM s PARTITION BY (a, b)").partition_by == (col("A"), col("B"))


def test_group_by_forms():
    assert query("SELECT COUNT(*) FROM s GROUP BY a, b").group_by == (col("A"), col("B"))
    assert query("SELECT COUNT(*) FROM s GROUP BY (a, b)").group_by == (col("A"), col("B"))
    # One parenthesised expression is just that (ksqlDB reads both forms so).
    assert query("SELECT COUNT(*) FROM s GROUP BY (a IS NULL)").group_by == (IsNull(col("A")),)
    assert query("SELECT COUNT(*) FROM s GROUP BY (a) + 1").group_by == (
        Binary("+", col("A"), num(1)),
    )


@pytest.mark.parametrize("clause", ["GROUP", "PARTITION"])
def test_empty_grouping_is_rejected(clause):
    error = syntax_error(f"CREATE STREAM O AS SELECT * FROM s {clause} BY ();")
    assert reason(error) == f"{clause} BY requires at least one expression"
    assert (error.line, error.column) == (
        1,
        len(f"CREATE STREAM O AS SELECT * FROM s {clause} BY ") + 1,
    )


def test_group_by_takes_value_expressions_only():
    # As in ksqlDB: `GROUP BY a AND b` and a parenthesised list among others are errors.
    error = syntax_error("CREATE TABLE O AS SELECT COUNT(*) FROM s GROUP BY a AND b;")
    assert "at or near 'AND'" in error.message
    error = syntax_error("CREATE TABLE O AS SELECT COUNT(*) FROM s GROUP BY c, (a, b);")
    assert "at or near ','" in error.message


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ("TUMBLING (SIZE 5 MINUTES)", Window("TUMBLING", 300_000)),
        (
            "TUMBLING (SIZE 1 HOUR, RETENTION 2 DAYS, GRACE PERIOD 10 SECONDS)",
            Window("TUMBLING", 3_600_000, retention_ms=172_800_000, grace_ms=10_000),
        ),
        (
            "tumbling (size 2 milliseconds, grace period 0 millisecond)",
            Window("TUMBLING", 2, grace_ms=0),
        ),
        (
            "HOPPING (SIZE 30 SECONDS, ADVANCE BY 15 SECONDS, GRACE PERIOD 1 MINUTE)",
            Window("HOPPING", 30_000, advance_ms=15_000, grace_ms=60_000),
        ),
        (
            "HOPPING (SIZE 1 DAY, ADVANCE BY 1 HOURS, RETENTION 7 DAYS)",
            Window("HOPPING", 86_400_000, advance_ms=3_600_000, retention_ms=604_800_000),
        ),
        ("SESSION (30 SECONDS)", Window("SESSION", 30_000)),
        ("SESSION (5 MILLISECONDS, GRACE PERIOD 6 MILLISECONDS)", Window("SESSION", 5, grace_ms=6)),
        # ksqlDB allows (and ignores) a window name.
        ("w1 SESSION (1 SECOND)", Window("SESSION", 1_000)),
    ],
)
def test_windows(window, expected):
    assert query(f"SELECT a, COUNT(*) FROM s WINDOW {window} GROUP BY a").window == expected


def test_window_needs_a_whole_number():
    error = syntax_error(
        "CREATE TABLE O AS SELECT COUNT(*) FROM s WINDOW TUMBLING (SIZE 1.5 SECONDS) GROUP BY a;"
    )
    assert "whole number" in error.message


def test_units_are_ksqldbs():
    # ksqlDB has no WEEK(S) (nor months or years in windows).
    error = syntax_error(
        "CREATE TABLE O AS SELECT COUNT(*) FROM s WINDOW TUMBLING (SIZE 1 WEEK) GROUP BY a;"
    )
    assert reason(error) == (
        "Syntax error at or near 'WEEK': "
        "expected a time unit (MILLISECONDS, SECONDS, MINUTES, HOURS or DAYS)"
    )


def test_joins():
    select = query(
        "SELECT * FROM a JOIN b ON a.id = b.id "
        "INNER JOIN c AS cc WITHIN 10 SECONDS ON a.id = cc.id "
        "LEFT JOIN d WITHIN (1 MINUTE, 2 HOURS) ON a.id = d.id "
        "LEFT OUTER JOIN e WITHIN 1 MINUTE GRACE PERIOD 30 SECONDS ON a.id = e.id "
        "RIGHT JOIN f ff ON ff.id = a.id "
        "RIGHT OUTER JOIN g ON g.id = a.id "
        "FULL JOIN h ON h.id = a.id "
        "FULL OUTER JOIN i WITHIN (1 SECOND, 2 SECONDS) GRACE PERIOD 3 SECONDS ON i.id = a.id"
    )

    def on(left: str, right: str) -> Binary:
        return Binary("=", col("ID", left), col("ID", right))

    assert select.joins == (
        Join("INNER", Relation("B"), on("A", "B")),
        Join("INNER", Relation("C", "CC"), on("A", "CC"), Within(10_000, 10_000)),
        Join("LEFT", Relation("D"), on("A", "D"), Within(60_000, 7_200_000)),
        Join("LEFT", Relation("E"), on("A", "E"), Within(60_000, 60_000, grace_ms=30_000)),
        Join("RIGHT", Relation("F", "FF"), on("FF", "A")),
        Join("RIGHT", Relation("G"), on("G", "A")),
        Join("FULL", Relation("H"), on("H", "A")),
        Join("FULL", Relation("I"), on("I", "A"), Within(1_000, 2_000, grace_ms=3_000)),
    )


def test_join_on_any_expression():
    select = query(
        "SELECT * FROM pageview_stream LEFT JOIN users "
        "ON CAST(pageview_stream.user_id AS BIGINT) = users.user_id"
    )
    assert select.joins[0].on == Binary(
        "=",
        Cast(col("USER_ID", "PAGEVIEW_STREAM"), BIGINT),
        col("USER_ID", "USERS"),
    )


# --- expressions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("a OR b AND c", Binary("OR", col("A"), Binary("AND", col("B"), col("C")))),
        ("a AND b OR c", Binary("OR", Binary("AND", col("A"), col("B")), col("C"))),
        ("NOT a AND b", Binary("AND", Unary("NOT", col("A")), col("B"))),
        ("NOT a = b", Unary("NOT", Binary("=", col("A"), col("B")))),
        ("NOT NOT a", Unary("NOT", Unary("NOT", col("A")))),
        (
            "a = b AND c <> d",
            Binary("AND", Binary("=", col("A"), col("B")), Binary("<>", col("C"), col("D"))),
        ),
        ("a != b", Binary("<>", col("A"), col("B"))),
        ("a + b * c", Binary("+", col("A"), Binary("*", col("B"), col("C")))),
        ("a * b + c", Binary("+", Binary("*", col("A"), col("B")), col("C"))),
        ("a - b - c", Binary("-", Binary("-", col("A"), col("B")), col("C"))),
        ("a / b % c", Binary("%", Binary("/", col("A"), col("B")), col("C"))),
        ("(a + b) * c", Binary("*", Binary("+", col("A"), col("B")), col("C"))),
        # ksqlDB binds || looser than + and -.
        ("a || b + c", Binary("||", col("A"), Binary("+", col("B"), col("C")))),
        ("a + b || c", Binary("||", Binary("+", col("A"), col("B")), col("C"))),
        ("a || b = c", Binary("=", Binary("||", col("A"), col("B")), col("C"))),
        ("-a * b", Binary("*", Unary("-", col("A")), col("B"))),
        ("+a", Unary("+", col("A"))),
        ("a * -1", Binary("*", col("A"), num(-1))),
        ("1 - -1", Binary("-", num(1), num(-1))),
        ("-(1)", Unary("-", num(1))),
        ("- a->f", Unary("-", Dereference(col("A"), "F"))),
        ("a + 1 IS NULL", IsNull(Binary("+", col("A"), num(1)))),
        ("a IS NOT NULL AND b", Binary("AND", IsNull(col("A"), negated=True), col("B"))),
        (
            "a BETWEEN 1 AND 2 AND b",
            Binary("AND", Between(col("A"), num(1), num(2)), col("B")),
        ),
        (
            "a NOT BETWEEN b - 1 AND b + 1",
            Between(
                col("A"), Binary("-", col("B"), num(1)), Binary("+", col("B"), num(1)), negated=True
            ),
        ),
        ("a LIKE 'x%'", Like(col("A"), text("x%"))),
        ("a NOT LIKE 'x!%%' ESCAPE '!'", Like(col("A"), text("x!%%"), escape="!", negated=True)),
        ("a IN (1, b, 'c')", InList(col("A"), (num(1), col("B"), text("c")))),
        ("a NOT IN (1)", InList(col("A"), (num(1),), negated=True)),
        ("a IS DISTINCT FROM b", IsDistinctFrom(col("A"), col("B"))),
        (
            "a IS NOT DISTINCT FROM NULL",
            IsDistinctFrom(col("A"), Literal(None, None), negated=True),
        ),
        ("x->f[1]", Subscript(Dereference(col("X"), "F"), num(1))),
        ("x[1]->f", Dereference(Subscript(col("X"), num(1)), "F")),
        ("m['k']['j']", Subscript(Subscript(col("M"), text("k")), text("j"))),
        ("a->b->`c`", Dereference(Dereference(col("A"), "B"), "c")),
        ("s.a->b", Dereference(col("A", "S"), "B")),
    ],
)
def test_precedence_and_operators(source, expected):
    assert parse_expression(source) == expected


def test_one_comparison_per_value():
    # `a = b = c` is not SQL in ksqlDB either.
    with pytest.raises(KsqlSyntaxError, match="at or near '='"):
        parse_expression("a = b = c")


@pytest.mark.parametrize(
    ("source", "value", "type_"),
    [
        ("0", 0, INTEGER),
        ("2147483647", 2147483647, INTEGER),
        ("2147483648", 2147483648, BIGINT),
        ("-2147483648", -2147483648, INTEGER),
        ("-2147483649", -2147483649, BIGINT),
        ("-00002147483647", -2147483647, INTEGER),
        ("9223372036854775807", 9223372036854775807, BIGINT),
        ("-9223372036854775808", -9223372036854775808, BIGINT),
        ("1.5", Decimal("1.5"), SqlType("DECIMAL", precision=2, scale=1)),
        ("123.450", Decimal("123.450"), SqlType("DECIMAL", precision=6, scale=3)),
        ("-12.5", Decimal("-12.5"), SqlType("DECIMAL", precision=3, scale=1)),
        # ksqlDB: within (-1, 1) the precision is scale + 1.
        ("0.05", Decimal("0.05"), SqlType("DECIMAL", precision=3, scale=2)),
        ("-0.5", Decimal("-0.5"), SqlType("DECIMAL", precision=2, scale=1)),
        (".5", Decimal("0.5"), SqlType("DECIMAL", precision=2, scale=1)),
        ("0.0", Decimal("0.0"), SqlType("DECIMAL", precision=2, scale=1)),
        ("1.", Decimal("1"), SqlType("DECIMAL", precision=1, scale=0)),
        ("04.90", Decimal("4.90"), SqlType("DECIMAL", precision=3, scale=2)),
        ("1.5E3", 1500.0, DOUBLE),
        ("1e-2", 0.01, DOUBLE),
        ("-4.9E-324", -5e-324, DOUBLE),
        ("1E0", 1.0, DOUBLE),
        ("1.7976931348623157E308", 1.7976931348623157e308, DOUBLE),
        ("'it''s'", "it's", STRING),
        ("''", "", STRING),
        ("'back\\slash'", "back\\slash", STRING),
        ("TRUE", True, BOOLEAN),
        ("false", False, BOOLEAN),
        ("True", True, BOOLEAN),
        ("NULL", None, None),
    ],
)
def test_literals(source, value, type_):
    literal = parse_expression(source)
    assert literal == Literal(value, type_)
    assert type(literal.value) is type(value)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("9223372036854775808", "Invalid numeric literal: 9223372036854775808"),
        ("-9223372036854775809", "Invalid numeric literal: -9223372036854775809"),
        ("1.7976931348623159E308", "Number overflows DOUBLE: 1.7976931348623159E308"),
        ("-1.7976931348623160E308", "Number overflows DOUBLE: -1.7976931348623160E308"),
    ],
)
def test_literal_overflow(source, message):
    with pytest.raises(KsqlSyntaxError) as info:
        parse(f"CREATE STREAM O AS SELECT\n  {source} FROM s;")
    assert reason(info.value) == message
    assert (info.value.line, info.value.column) == (2, 3)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("a", col("A")),
        ("userId", col("USERID")),
        ("s.a", col("A", "S")),
        ("`s`.`a`", col("a", "s")),
        ("`MixedCase`", col("MixedCase")),
        ('"Mixed Case"', col("Mixed Case")),
        ("`with``tick`", col("with`tick")),
        ('"dq""x"', col('dq"x')),
        ("`SELECT`", col("SELECT")),
        ("_x@1", col("_X@1")),
        # ksqlDB's non-reserved keywords are names where no keyword fits.
        ("KEY", col("KEY")),
        ("source", col("SOURCE")),
        ("timestamp", col("TIMESTAMP")),
        ("value", col("VALUE")),
        ("session", col("SESSION")),
        ("emit", col("EMIT")),
        ("map", col("MAP")),
        ("struct", col("STRUCT")),
        ("ROWTIME", col("ROWTIME")),
        ("WINDOWSTART", col("WINDOWSTART")),
        # ksqlDB's DIGIT_IDENTIFIER.
        ("1R", col("1R")),
    ],
)
def test_identifiers(source, expected):
    assert parse_expression(source) == expected


def test_non_reserved_keywords_as_source_and_column_names():
    stmt = one(
        "CREATE STREAM source (key STRING KEY, timestamp BIGINT, map INT) WITH (kafka_topic='k');"
    )
    assert stmt.name == "SOURCE"
    assert [c.name for c in stmt.columns] == ["KEY", "TIMESTAMP", "MAP"]
    assert stmt.columns[0].key


def test_reserved_words_are_not_names():
    error = syntax_error("CREATE STREAM O AS SELECT size FROM s;")
    assert reason(error) == (
        "Syntax error at or near 'size': expected an expression or '*' "
        "(SIZE is a reserved word: write `SIZE` to use it as a name)"
    )
    assert (error.line, error.column) == (1, 27)
    assert query("SELECT `SIZE` FROM s").items == (SelectItem(col("SIZE")),)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("COUNT(*)", FunctionCall("COUNT", star=True)),
        ("count()", FunctionCall("COUNT")),
        ("COUNT(DISTINCT a)", FunctionCall("COUNT", (col("A"),), distinct=True)),
        ("latest_by_offset(age)", FunctionCall("LATEST_BY_OFFSET", (col("AGE"),))),
        ("`myUdf`(1)", FunctionCall("MYUDF", (num(1),))),
        (
            "FORMAT_TIMESTAMP(FROM_UNIXTIME(WINDOWSTART), 'yyyy-MM-dd HH:mm:ss', 'UTC')",
            FunctionCall(
                "FORMAT_TIMESTAMP",
                (
                    FunctionCall("FROM_UNIXTIME", (col("WINDOWSTART"),)),
                    text("yyyy-MM-dd HH:mm:ss"),
                    text("UTC"),
                ),
            ),
        ),
        (
            "TIMESTAMPADD(SECONDS, 3, ts)",
            FunctionCall("TIMESTAMPADD", (IntervalUnit("SECONDS"), num(3), col("TS"))),
        ),
        ("DATEADD(day, 1, d)", FunctionCall("DATEADD", (IntervalUnit("DAYS"), num(1), col("D")))),
        (
            "TIMESTAMPSUB(MILLISECOND, 1, ts)",
            FunctionCall("TIMESTAMPSUB", (IntervalUnit("MILLISECONDS"), num(1), col("TS"))),
        ),
    ],
)
def test_function_calls(source, expected):
    assert parse_expression(source) == expected


def test_lambdas_bind_their_parameters():
    assert parse_expression("filter(numbers, x => x > 5)") == FunctionCall(
        "FILTER",
        (col("NUMBERS"), Lambda(("X",), Binary(">", LambdaVariable("X"), num(5)))),
    )
    assert parse_expression("reduce(m, 0, (s, k, v) => s + v + t.v + w)") == FunctionCall(
        "REDUCE",
        (
            col("M"),
            num(0),
            Lambda(
                ("S", "K", "V"),
                Binary(
                    "+",
                    Binary(
                        "+", Binary("+", LambdaVariable("S"), LambdaVariable("V")), col("V", "T")
                    ),
                    col("W"),
                ),
            ),
        ),
    )
    # An inner lambda's parameter shadows the outer one of the same name.
    assert parse_expression("transform(a, x => transform(x, x => x + 1))") == FunctionCall(
        "TRANSFORM",
        (
            col("A"),
            Lambda(
                ("X",),
                FunctionCall(
                    "TRANSFORM",
                    (LambdaVariable("X"), Lambda(("X",), Binary("+", LambdaVariable("X"), num(1)))),
                ),
            ),
        ),
    )
    assert parse_expression("f(a, (x) => x)") == FunctionCall(
        "F", (col("A"), Lambda(("X",), LambdaVariable("X")))
    )
    with pytest.raises(KsqlSyntaxError, match="lambda's parameter must be a name"):
        parse_expression("f(a, s.x => 1)")


def test_case():
    assert parse_expression(
        "CASE WHEN a < 2 THEN 'small' WHEN a < 4.0 THEN 'medium' ELSE 'large' END"
    ) == Case(
        None,
        (
            (Binary("<", col("A"), num(2)), text("small")),
            (
                Binary(
                    "<", col("A"), Literal(Decimal("4.0"), SqlType("DECIMAL", precision=2, scale=1))
                ),
                text("medium"),
            ),
        ),
        text("large"),
    )
    assert parse_expression("CASE a + 1 WHEN 1 THEN 'one' END") == Case(
        Binary("+", col("A"), num(1)), ((num(1), text("one")),)
    )


@pytest.mark.parametrize(
    ("type_text", "expected"),
    [
        ("INT", INTEGER),
        ("integer", INTEGER),
        ("BIGINT", BIGINT),
        ("DOUBLE", DOUBLE),
        ("BOOLEAN", BOOLEAN),
        ("STRING", STRING),
        ("VARCHAR", STRING),
        ("VARCHAR(STRING)", STRING),
        ("DECIMAL(38, 0)", SqlType("DECIMAL", precision=38, scale=0)),
        ("BYTES", SqlType("BYTES")),
        ("TIMESTAMP", SqlType("TIMESTAMP")),
        ("DATE", SqlType("DATE")),
        ("TIME", SqlType("TIME")),
        ("ARRAY<ARRAY<INT>>", SqlType("ARRAY", element=SqlType("ARRAY", element=INTEGER))),
        (
            "MAP<STRING, ARRAY<DOUBLE>>",
            SqlType("MAP", key=STRING, element=SqlType("ARRAY", element=DOUBLE)),
        ),
        (
            "STRUCT<a INT, `B` STRUCT<c STRING>>",
            SqlType(
                "STRUCT", fields=(("A", INTEGER), ("B", SqlType("STRUCT", fields=(("C", STRING),))))
            ),
        ),
        ("STRUCT<>", SqlType("STRUCT")),
    ],
)
def test_cast_types(type_text, expected):
    assert parse_expression(f"CAST(x AS {type_text})") == Cast(col("X"), expected)


@pytest.mark.parametrize(
    ("type_text", "message", "column"),
    [
        ("FOO", "Unknown type: FOO", 20),
        ("DECIMAL(0, 0)", "DECIMAL precision must be >= 1: DECIMAL(0,0)", 28),
        ("DECIMAL(2, 3)", "DECIMAL precision must be >= scale: DECIMAL(2,3)", 31),
        ("NULL", "Syntax error at or near 'NULL': expected a type", 20),
    ],
)
def test_bad_types(type_text, message, column):
    with pytest.raises(KsqlSyntaxError) as info:
        parse(f"CREATE STREAM s (v {type_text}) WITH (kafka_topic='t');")
    assert reason(info.value) == message
    assert (info.value.line, info.value.column) == (1, column)


def test_constructors():
    assert parse_expression("ARRAY[]") == ArrayConstructor(())
    assert parse_expression("ARRAY[1, a]") == ArrayConstructor((num(1), col("A")))
    assert parse_expression("MAP('a' := 1, b := c)") == MapConstructor(
        ((text("a"), num(1)), (col("B"), col("C")))
    )
    assert parse_expression("MAP()") == MapConstructor(())
    assert parse_expression("STRUCT(a := 1, `b` := x->y)") == StructConstructor(
        (("A", num(1)), ("b", Dereference(col("X"), "Y")))
    )
    assert parse_expression("STRUCT()") == StructConstructor(())


# --- errors ------------------------------------------------------------------------------------


def test_syntax_error_names_line_column_token_and_statement():
    source = "SET 'a' = 'b';\nCREATE STREAM s (v STRING)\n  WITH (kafka_topic='t') extra;"
    with pytest.raises(KsqlSyntaxError) as info:
        parse(source)
    error = info.value
    assert (error.line, error.column) == (3, 26)
    assert reason(error) == ("Syntax error at or near 'extra': expected the end of the statement")
    assert error.statement == "CREATE STREAM s (v STRING)\n  WITH (kafka_topic='t') extra;"
    assert str(error).startswith("line 3:26: Syntax error at or near 'extra'")


def test_error_at_the_end_of_a_statement():
    error = syntax_error("CREATE STREAM O AS SELECT a FROM;")
    assert reason(error) == "Syntax error at the end of the statement: expected a name"
    assert (error.line, error.column) == (1, 33)


def test_missing_semicolon_between_statements():
    error = syntax_error("DROP STREAM a\nDROP STREAM b;")
    assert "at or near 'DROP'" in error.message
    assert "the end of the statement" in error.message
    assert (error.line, error.column) == (2, 1)


def test_columns_with_as_select_are_rejected():
    error = syntax_error("CREATE STREAM s (a INT) AS SELECT * FROM t;")
    assert "at or near 'AS'" in error.message
    assert (error.line, error.column) == (1, 25)


def test_unterminated_string():
    error = syntax_error("SET 'a' = 'b;\nDROP STREAM x;")
    assert reason(error) == "Syntax error: unterminated string starting here"
    assert (error.line, error.column) == (1, 11)


def test_unexpected_character():
    error = syntax_error("CREATE STREAM O AS SELECT a # b FROM s;")
    assert "'#'" in error.message
    assert (error.line, error.column) == (1, 29)


def test_a_bare_query_says_how_to_run_it():
    error = syntax_error("SELECT * FROM s EMIT CHANGES;")
    assert "CREATE STREAM|TABLE name AS SELECT" in error.message


def test_parse_expression_takes_one_expression():
    with pytest.raises(KsqlSyntaxError, match="expected one expression"):
        parse_expression("a; b")
    with pytest.raises(KsqlSyntaxError, match="expected one expression"):
        parse_expression("  ")


# --- the corpus --------------------------------------------------------------------------------


def shared_dir() -> Path:
    """``../shared`` beside the repository (as tests/conformance/qtt.py finds ksql-qtt), or the
    parent of ``KSQL_QTT_DIR``. It exists in CI: no skipping."""
    if os.environ.get("KSQL_QTT_DIR"):
        return Path(os.environ["KSQL_QTT_DIR"]).resolve().parent
    return (Path(__file__).resolve().parents[2].parent / "shared").resolve()


QTT = shared_dir() / "ksql-qtt"
QTT_FILES = sorted(p.name for p in QTT.glob("*.json"))

#: Cases ksqlDB rejects with a ParseFailedException that are about property values, which the
#: planner validates (the parser only reads them).
PROPERTY_VALIDATION = {
    "hopping-windows.json::import table with invalid window size",
    "session-windows.json::import table with invalid window size",
}

#: ksqlDB reports where a syntax error is as "line L:C"; for errors its AST builder raises
#: (numeric literals) the column is one more than the token's, a ksqlDB quirk not copied.
_KSQL_POSITION = re.compile(r"line (\d+):(\d+): Syntax Error|at line (\d+):(\d+)")


def qtt_cases(file: str) -> list[tuple[str, list[str], dict[str, Any] | None]]:
    """(id, statements, expectedException) per case, once per format of ``format``/``formats``."""
    cases = []
    for raw in json.loads((QTT / file).read_text())["tests"]:
        for fmt in raw.get("formats") or raw.get("format") or [None]:
            statements = raw["statements"]
            if fmt is not None:
                statements = [s.replace("{FORMAT}", fmt) for s in statements]
            name = raw["name"] if fmt is None else f"{raw['name']} - {fmt}"
            cases.append((f"{file}::{name}", statements, raw.get("expectedException")))
    return cases


def test_the_corpus_is_there():
    assert len(QTT_FILES) >= 52, f"ksqlDB's cases are missing from {QTT}"
    assert (shared_dir() / "ksql-statements" / "seed-001-pageviews.sql").is_file()
    assert (shared_dir() / "ksql-test-runner" / "correct").is_dir()


@pytest.mark.parametrize("file", QTT_FILES)
def test_qtt_statements_parse(file):
    for case_id, statements, expected_exception in qtt_cases(file):
        # ksqlDB's test driver runs a case's statements as one text, one per line.
        source = "\n".join(statements)
        if expected_exception is None:
            parsed = parse(source)
            assert len(parsed) == len(statements), case_id
            continue
        try:
            parse(source)
        except KsqlSyntaxError as error:
            ksql_position = _KSQL_POSITION.search(expected_exception.get("message", ""))
            if ksql_position:
                line, column = (int(g) for g in ksql_position.groups() if g is not None)
                assert (error.line, error.column) == (line, column), case_id
            continue
        # Accepted: then ksqlDB must have rejected it after parsing, not as a syntax error.
        parse_failure = expected_exception.get("type", "").endswith("ParseFailedException")
        assert not parse_failure or case_id in PROPERTY_VALIDATION, (
            f"{case_id}: ksqlDB rejects this as a parse failure "
            f"({expected_exception.get('message')!r}); it parsed here"
        )


SQL_FILES = sorted(
    [
        *(shared_dir() / "ksql-statements").glob("*.sql"),
        *(shared_dir() / "ksql-test-runner").glob("*/*/statements.sql"),
    ]
)


@pytest.mark.parametrize(
    "path", SQL_FILES, ids=[str(p.relative_to(shared_dir())) for p in SQL_FILES]
)
def test_statement_files_parse(path):
    statements = parse(path.read_text())
    assert statements
    for stmt in statements:
        assert stmt.position is not None and stmt.position.text.strip()


def test_seed_001_pageviews():
    statements = parse((shared_dir() / "ksql-statements" / "seed-001-pageviews.sql").read_text())
    kinds = [type(s).__name__ for s in statements]
    assert kinds == ["SetProperty"] * 2 + ["Drop"] * 11 + ["CreateSource"] * 3 + ["CreateAs"] * 7
    assert statements[0] == SetProperty(name="auto.offset.reset", value="earliest")
    pageviews = statements[13]
    assert pageviews.properties == {
        "KAFKA_TOPIC": "topic1_PageView",
        "VALUE_FORMAT": "JSON",
        "PARTITIONS": 5,
        "TIMESTAMP": "event_timestamp",
        "TIMESTAMP_FORMAT": "yyyy-MM-dd HH:mm:ss",
    }
    hopping = statements[-2].query
    assert hopping.window == Window("HOPPING", 300_000, advance_ms=60_000)
    assert hopping.items[1] == SelectItem(
        FunctionCall(
            "FORMAT_TIMESTAMP",
            (
                FunctionCall("FROM_UNIXTIME", (col("WINDOWSTART"),)),
                text("yyyy-MM-dd HH:mm:ss"),
                text("UTC"),
            ),
        ),
        "WINDOW_START",
    )
    assert statements[-1].query.window == Window("SESSION", 300_000)


def test_the_whole_corpus_parses_quickly():
    texts = ["\n".join(s) for f in QTT_FILES for _, s, e in qtt_cases(f) if e is None]
    texts += [p.read_text() for p in SQL_FILES]
    parse(texts[0])  # the parser is built (or loaded) outside the timing
    started = time.perf_counter()
    count = sum(len(parse(t)) for t in texts)
    elapsed = time.perf_counter() - started
    assert count > 2000
    # About a second on a laptop; the bound only catches a grammar gone quadratic.
    assert elapsed < 15, f"{count} statements took {elapsed:.1f}s"
