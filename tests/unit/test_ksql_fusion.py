"""Windowed aggregations over one stream with the same WHERE, GROUP BY and emit run in one pass
(one read, one repartition, one window engine): what each writes is exactly what it writes
compiled alone, record for record, whatever its window, aggregates, HAVING and projection."""

from __future__ import annotations

from collections import defaultdict

import orjson
import pytest

from contracts.partitioning import partition_for
from streams.ksql.compiler import compile_sql
from streams.ksql.plans import fusion_groups, pass_name
from streams.testing import TestDriver

T0 = 1_700_000_100_000

STREAM = """
CREATE STREAM clicks (id STRING KEY, grp STRING, x INT, ok BOOLEAN)
  WITH (kafka_topic='clicks', value_format='JSON');
"""
QUERIES = {
    # Two aggregates, one of them shared with the next query.
    "T1": """CREATE TABLE t1 AS SELECT grp, COUNT(*) AS n, SUM(x) AS total FROM clicks
             WINDOW TUMBLING (SIZE 10 SECONDS) WHERE ok GROUP BY grp;""",
    # HAVING: windows leave the table (tombstones) and enter it.
    "T2": """CREATE TABLE t2 AS SELECT grp, WINDOWSTART AS ws, COUNT(*) AS n FROM clicks
             WINDOW HOPPING (SIZE 10 SECONDS, ADVANCE BY 5 SECONDS) WHERE ok GROUP BY grp
             HAVING COUNT(*) < 3;""",
    # Another aggregate only this one computes; a value of the window bounds alone.
    "T3": """CREATE TABLE t3 AS SELECT grp, MAX(x) AS top,
             TIMESTAMPTOSTRING(WINDOWEND, 'HH:mm:ss', 'UTC') AS ends FROM clicks
             WINDOW SESSION (5 SECONDS) WHERE ok GROUP BY grp;""",
    # No WHERE: not the same rows, so a pass of its own.
    "T4": """CREATE TABLE t4 AS SELECT grp, COUNT(*) AS n FROM clicks
             WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY grp;""",
}


def clicks() -> list[tuple[bytes, bytes, int]]:
    """Out of order within the grace period, sessions that merge, rows the WHERE drops."""
    rows = [
        ("a", 1, True, 1_000),
        ("b", 5, True, 2_000),
        ("a", 7, True, 4_000),
        ("a", 2, False, 4_500),
        ("b", 3, True, 12_000),
        ("a", 4, True, 3_000),
        ("a", 9, True, 16_000),
        ("b", 1, True, 9_000),
        ("a", 6, True, 30_000),
        ("b", 8, False, 31_000),
        ("a", 2, True, 34_000),
    ]
    return [
        (f"k{i}".encode(), orjson.dumps({"GRP": g, "X": x, "OK": ok}), ts)
        for i, (g, x, ok, ts) in enumerate(rows)
    ]


def run(sql: str) -> dict[str, list[tuple[bytes | None, bytes | None, int]]]:
    """Each output topic's records, in order."""
    program = compile_sql(sql)
    out: dict[str, list[tuple[bytes | None, bytes | None, int]]] = defaultdict(list)
    with TestDriver(program.setup, partitions=1) as driver:
        for key, value, ts in clicks():
            driver.pipe("clicks", key, value, timestamp=ts)
        for record in driver.read_all():
            out[record.topic].append((record.raw_key, record.raw_value, record.timestamp))
    return out


def test_the_same_stream_where_and_group_by_make_one_pass() -> None:
    program = compile_sql(STREAM + "".join(QUERIES.values()))
    groups = fusion_groups(program.queries.values())
    assert [[q.sink.name for q in group] for group in groups] == [["T1", "T2", "T3"], ["T4"]]
    explained = program.explain()
    shared = pass_name(groups[0])  # type: ignore[arg-type]
    assert shared.startswith("CTAS_T1_0-")
    assert explained.count(f"repartition   {shared}-groupby") == 3
    assert "one pass with CTAS_T2_1, CTAS_T3_2" in explained
    assert "repartition   CTAS_T4_3-groupby" in explained


def test_another_set_of_queries_is_another_pass_with_its_own_state() -> None:
    """State is laid out for a pass's queries: a changed set must not read it."""
    all_three = compile_sql(STREAM + QUERIES["T1"] + QUERIES["T2"] + QUERIES["T3"])
    two = compile_sql(STREAM + QUERIES["T1"] + QUERIES["T2"])
    names = [pass_name(fusion_groups(p.queries.values())[0]) for p in (all_three, two)]  # type: ignore[arg-type]
    assert names[0] != names[1]


def test_each_query_writes_what_it_writes_alone() -> None:
    together = run(STREAM + "".join(QUERIES.values()))
    for name, query in QUERIES.items():
        alone = run(STREAM + query)
        assert together[name] == alone[name], name
        assert together[name], f"{name} wrote nothing: the case proves nothing"
    # HAVING took a window out of T2's table: a tombstone is among its records.
    assert any(value is None for _key, value, _ts in together["T2"])


@pytest.mark.parametrize("fn", ["UUID()", "CAST(RANDOM() AS STRING)"])
def test_a_nondeterministic_value_is_computed_per_update(fn: str) -> None:
    sql = STREAM + (
        f"CREATE TABLE t AS SELECT grp, COUNT(*) AS n, {fn} AS r FROM clicks "
        "WINDOW TUMBLING (SIZE 100 SECONDS) GROUP BY grp;"
    )
    updates = [orjson.loads(value) for _key, value, _ts in run(sql)["T"]]
    assert len(updates) == len(clicks())
    assert len({update["R"] for update in updates}) == len(updates)


def test_a_windowed_result_is_on_its_group_s_partition_as_kafka_streams_puts_it() -> None:
    """Kafka Streams' windowed partitioner hashes the group's key alone: every window of a
    group, and a session's retraction, share one partition (Pinot's upserts rely on it)."""
    program = compile_sql(
        "CREATE STREAM v (s VARCHAR) WITH (KAFKA_TOPIC='v', VALUE_FORMAT='JSON', PARTITIONS=5);"
        "CREATE TABLE t WITH (PARTITIONS=5) AS SELECT s, COUNT(*) AS n FROM v"
        " WINDOW HOPPING (SIZE 5 MINUTES, ADVANCE BY 1 MINUTE) GROUP BY s;"
        "CREATE TABLE u WITH (PARTITIONS=5) AS SELECT s, COUNT(*) AS n FROM v"
        " WINDOW SESSION (1 MINUTE) GROUP BY s;"
    )
    with TestDriver(program.setup, partitions=5) as driver:
        for i, ts in enumerate([0, 30_000, 200_000, 90_000, 400_000]):
            driver.pipe("v", None, orjson.dumps({"S": f"g{i % 3}"}), timestamp=T0 + ts)
        records = [r for r in driver.read_all() if r.topic in ("T", "U")]
    assert len(records) > 10
    for record in records:
        sink = program.catalog.get(record.topic)
        inner, _start, _end = sink.windowed_key_serde.split(record.raw_key)
        assert record.partition == partition_for(inner, 5), record
