"""ksqlDB's stream-table join cases (``joins.json`` of ../shared/ksql-qtt) through the join
operator streams.country runs (:mod:`streams.operators.join`), in the in-memory test driver.

Applicable: a JSON stream joined key-to-key (LEFT or INNER) to a JSON table, selecting plain
columns. Columns are qualified by side inside the harness (``S.NAME``, ``T.NAME``) so that
a name both sides carry stays two columns, as in ksqlDB. Everything else (table-table and
stream-stream joins, value-to-key joins with other key formats, ``*``, expressions, Avro or
Protobuf variants, expected errors) is not applicable and listed with its reason.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from quixstreams import Application

from streams.operators import join
from streams.testing import TestDriver
from tests.conformance.qtt import Case, load_cases

_CREATE = re.compile(
    r"CREATE (STREAM|TABLE) (\w+) \((.*)\) WITH \((.*)\);?$", re.IGNORECASE | re.DOTALL
)
_JOIN = re.compile(
    r"CREATE STREAM (\w+) AS SELECT (.+?) FROM (\w+)(?: (\w+))? (LEFT |INNER )?JOIN (\w+)"
    r"(?: (\w+))? ON ([\w.]+) ?= ?([\w.]+);?$",
    re.IGNORECASE | re.DOTALL,
)
_OUT = "qtt-join-output"


class NotApplicable(Exception):
    pass


def _source(statement: str) -> dict[str, Any]:
    match = _CREATE.match(statement.strip())
    if not match:
        raise NotApplicable("not a plain CREATE STREAM/TABLE")
    kind, name, columns, options = match.groups()
    opts = dict(re.findall(r"(\w+)\s*=\s*'([^']*)'", options))
    opts = {k.lower(): v for k, v in opts.items()}
    if opts.get("value_format", opts.get("format", "")).upper() != "JSON":
        raise NotApplicable("value format other than JSON")
    if opts.get("key_format", "KAFKA").upper() != "KAFKA":
        raise NotApplicable("key format other than KAFKA")
    cols = [c.strip().split() for c in columns.split(",")]
    keys = [c[0].upper() for c in cols if len(c) > 2 and c[2].upper() in ("KEY", "PRIMARY")]
    if len(keys) != 1:
        raise NotApplicable("not exactly one key column")
    values = [c[0].upper() for c in cols if c[0].upper() not in keys]
    return {"kind": kind.upper(), "name": name.upper(), "topic": opts["kafka_topic"],
            "key": keys[0], "values": values}  # fmt: skip


def plan(case: Case) -> dict[str, Any]:
    """The case as a stream-table join this harness can drive, or NotApplicable."""
    raw = case.raw
    if "expectedException" in raw or "outputs" not in raw:
        raise NotApplicable("ksqlDB rejects the statements")
    if len(raw["statements"]) != 3:
        raise NotApplicable("not two sources and one join")
    first, second = (_source(s) for s in raw["statements"][:2])
    kinds = {first["kind"]: first, second["kind"]: second}
    if set(kinds) != {"STREAM", "TABLE"}:
        raise NotApplicable("not a stream-table join")
    stream, table = kinds["STREAM"], kinds["TABLE"]
    join = _JOIN.match(raw["statements"][2].strip())
    if not join:
        raise NotApplicable("not CREATE STREAM AS SELECT columns FROM s [LEFT] JOIN t ON a = b")
    out, select, left, left_alias, kind, right, right_alias, on_a, on_b = join.groups()
    if (left.upper(), right.upper()) != (stream["name"], table["name"]):
        raise NotApplicable("table on the left")
    aliases = {
        (left_alias or left).upper(): "S", left.upper(): "S",
        (right_alias or right).upper(): "T", right.upper(): "T",
    }  # fmt: skip
    on = sorted(_qualify(c, aliases, stream, table) for c in (on_a, on_b))
    if on != [f"S.{stream['key']}", f"T.{table['key']}"]:
        raise NotApplicable("not a key-to-key join")
    columns: dict[str, str] = {}  # output name -> qualified input column
    for item in (i.strip().split() for i in select.split(",")):
        if len(item) == 3 and item[1].upper() == "AS":
            item = [item[0], item[2]]
        if len(item) > 2 or not re.fullmatch(r"[\w.]+", item[0]):
            raise NotApplicable("select list with expressions or *")
        qualified = _qualify(item[0], aliases, stream, table)
        if qualified in on:
            continue  # the key: in the record's key, not its value
        columns[(item[1] if len(item) == 2 else item[0].split(".")[-1]).upper()] = qualified
    for record in raw["inputs"]:
        if record["topic"] == stream["topic"] and not isinstance(record.get("value"), dict):
            raise NotApplicable("a NULL stream value (the app dead-letters it before the join)")
    return {"stream": stream, "table": table, "inner": (kind or "").strip().upper() != "LEFT",
            "columns": columns, "output": out.upper()}  # fmt: skip


def _qualify(column: str, aliases: dict[str, str], stream: dict, table: dict) -> str:
    side, _, name = column.upper().rpartition(".")
    if side:
        if side not in aliases:
            raise NotApplicable(f"unknown source {side}")
        return f"{aliases[side]}.{name}"
    sides = [s for s, src in (("S", stream), ("T", table)) if name in (src["key"], *src["values"])]
    if len(sides) != 1:
        raise NotApplicable(f"column {name} not in exactly one source")
    return f"{sides[0]}.{name}"


def run(case: Case) -> list[dict[str, Any]]:
    p = plan(case)
    stream, table = p["stream"], p["table"]
    missing = {f"T.{c}": None for c in table["values"]}

    def qualified(side: str, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else {f"{side}.{k.upper()}": v for k, v in value.items()}

    def setup(app: Application) -> None:
        # QTT keys are JSON values (BIGINT keys as numbers).
        views = app.dataframe(app.topic(stream["topic"], key_deserializer="json"))
        rows = app.dataframe(app.topic(table["topic"], key_deserializer="json"))
        step = join.join_step("inner" if p["inner"] else "left", missing)
        # INNER: the app routes unmatched views to its late topic; they are no join output.
        joined, _excluded = join.stream_table_join(
            views.apply(lambda v: qualified("S", v)), rows.apply(lambda v: qualified("T", v)), step
        )
        joined.to_topic(app.topic(_OUT, key_serializer="json"))

    outputs = []
    with TestDriver(setup) as driver:
        for record in case.raw["inputs"]:
            ts = record.get("timestamp", 0)
            driver.pipe(record["topic"], record["key"], record.get("value"), timestamp=ts)
            for out in driver.read(_OUT):
                value = {name: out.value.get(col) for name, col in p["columns"].items()}
                outputs.append({"key": out.key, "value": value, "timestamp": out.timestamp})
            driver.read_all()
    return outputs


def expected(case: Case) -> list[dict[str, Any]]:
    return [
        {"key": o["key"], "value": o["value"], "timestamp": o.get("timestamp", 0)}
        for o in case.raw["outputs"]
    ]


def classify() -> tuple[list[Case], dict[str, str]]:
    applicable, skipped = [], {}
    for case in load_cases(("joins", "stream-table-join")):
        try:
            plan(case)
            applicable.append(case)
        except NotApplicable as exc:
            skipped[case.id] = str(exc)
    return applicable, skipped


APPLICABLE, NOT_APPLICABLE = classify()


@pytest.mark.parametrize("case", APPLICABLE, ids=[c.id for c in APPLICABLE])
def test_case_matches_ksqldb(case: Case) -> None:
    assert run(case) == expected(case)


def test_stream_table_cases_are_found() -> None:
    # The LEFT, INNER and same-column-name cases of joins.json; the rest has its reason.
    names = {c.name for c in APPLICABLE}
    assert {"stream table left join - JSON", "stream table inner join - JSON"} <= names
    assert all(NOT_APPLICABLE.values())
