"""ksqlDB's record cache for compiled windowed aggregations (``SET
'cache.max.bytes.buffering'`` > 0): each window's latest update every ``commit.interval.ms``,
and a splittable aggregate in two phases (partials, not rows, cross the repartition), with the
final tables of every update emitted, out of order, on five partitions, with HAVING and
sessions that merge across input partitions in the global step."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from contracts.partitioning import partition_for
from streams.ksql.compiler import compile_sql, record_cache_ms
from streams.ksql.errors import KsqlError
from streams.ksql.plans import event_grouping, pass_name
from streams.testing import TestDriver
from tests.unit.cache_periods import local_stages, pipe_with_clock

T0 = 1_700_000_100_000
CACHE_MS = 1000
CACHE = f"SET 'cache.max.bytes.buffering'='10000000'; SET 'commit.interval.ms'='{CACHE_MS}';"
STREAM = """
CREATE STREAM clicks (id STRING KEY, grp STRING, x INT, d DOUBLE, p DECIMAL(6, 2), ok BOOLEAN)
  WITH (kafka_topic='clicks', value_format='JSON', partitions=5);
"""
#: One pass (same stream, WHERE and GROUP BY): COUNT, SUM, AVG, MAX over three window kinds,
#: with HAVING taking windows in and out of T2.
SPLITTABLE = """
CREATE TABLE t1 AS SELECT grp, COUNT(*) AS n, SUM(x) AS total, AVG(d) AS mean FROM clicks
  WINDOW TUMBLING (SIZE 10 SECONDS) WHERE ok GROUP BY grp;
CREATE TABLE t2 AS SELECT grp, WINDOWSTART AS ws, COUNT(*) AS n FROM clicks
  WINDOW HOPPING (SIZE 10 SECONDS, ADVANCE BY 5 SECONDS) WHERE ok GROUP BY grp
  HAVING COUNT(*) < 4;
CREATE TABLE t3 AS SELECT grp, MAX(x) AS top, MIN(x) AS low, MIN(p) AS cheapest FROM clicks
  WINDOW SESSION (3 SECONDS) WHERE ok GROUP BY grp;
"""
#: LATEST_BY_OFFSET cannot be merged across partitions: one phase, coalesced all the same.
LATEST = """
CREATE TABLE t4 AS SELECT grp, LATEST_BY_OFFSET(x) AS last, COUNT(*) AS n FROM clicks
  WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY grp;
"""


def clicks(seed: int, count: int = 400) -> list[tuple[bytes, bytes, int]]:
    """Bursts and lulls (sessions open and close), shuffled within 4 s, over 60 keys."""
    rng = random.Random(seed)
    t, out = T0, []
    for i in range(count):
        t += rng.choice([200, 500, 4_000]) if rng.random() < 0.4 else 0
        value = {
            "GRP": rng.choice("abcd"),
            "X": rng.randrange(-50, 50),
            # Sums of halves are exact in any order: the comparison is of counts, not rounding.
            "D": rng.randrange(100) / 2,
            "P": rng.randrange(10_000) / 100,  # a DECIMAL: its accumulator is text
            "OK": rng.random() < 0.9,
        }
        out.append((f"k{i % 60}".encode(), orjson.dumps(value), t + rng.randrange(4_000)))
    return out


Topics = dict[str, list[tuple[bytes | None, bytes | None]]]


def run(sql: str, seed: int) -> tuple[Topics, int]:
    """Each topic's records (key, value) in order, the wall clock moving between records,
    and how many input partitions ran a local stage (two-phase aggregation's) for the first
    pass. Every windowed record is on its group's partition, as Kafka Streams puts it."""
    program = compile_sql(sql)
    out: Topics = {}
    with TestDriver(program.setup, partitions=5) as driver:
        records = [("clicks", key, value, ts) for key, value, ts in clicks(seed)]
        pipe_with_clock(driver, records, CACHE_MS, seed)
        for record in driver.read_all():
            out.setdefault(record.topic, []).append((record.raw_key, record.raw_value))
            inner, _start, _end = program.catalog.get(record.topic).windowed_key_serde.split(
                record.raw_key
            )
            assert record.partition == partition_for(inner, 5), record
        driver.commit()
        first = pass_name(program.passes()[0])  # type: ignore[arg-type] # aggregations
        return out, local_stages(driver, "clicks", event_grouping(first))


def table(records: list[tuple[bytes | None, bytes | None]]) -> dict[bytes | None, Any]:
    """The latest value per key, tombstoned keys (retracted sessions, HAVING) dropped."""
    latest = dict(records)
    return {key: orjson.loads(value) for key, value in latest.items() if value is not None}


@pytest.mark.parametrize("seed", [1, 2])
def test_the_record_cache_gives_the_final_tables_of_every_update(seed: int) -> None:
    every, _ = run(STREAM + SPLITTABLE, seed)
    cached, local_stages = run(CACHE + STREAM + SPLITTABLE, seed)
    for sink in ("T1", "T2", "T3"):
        assert table(cached[sink]) == table(every[sink]), sink
        # Coalesced: a window's updates of one period are one record.
        assert len(cached[sink]) < len(every[sink]) / 2, sink
    # The case proves something: HAVING took windows out, sessions merged (tombstones).
    assert any(value is None for _key, value in every["T2"])
    assert any(value is None for _key, value in every["T3"])
    assert len(table(every["T1"])) > 8
    # Two phases: every input partition folded its rows before the repartition.
    assert local_stages == 5


def test_latest_by_offset_is_cached_in_one_phase() -> None:
    every, _ = run(STREAM + LATEST, 3)
    cached, local_stages = run(CACHE + STREAM + LATEST, 3)
    assert table(cached["T4"]) == table(every["T4"])
    assert len(cached["T4"]) < len(every["T4"]) / 2
    assert local_stages == 0


def test_two_passes_over_one_stream_keep_their_local_stages_apart() -> None:
    """Another WHERE is another pass, with a local stage of its own on the same input."""
    other = SPLITTABLE.replace("WHERE ok", "WHERE NOT ok").replace("TABLE t", "TABLE u")
    every, _ = run(STREAM + SPLITTABLE + other, 5)
    cached, _ = run(CACHE + STREAM + SPLITTABLE + other, 5)
    for sink in ("T1", "T2", "T3", "U1", "U2", "U3"):
        assert table(cached[sink]) == table(every[sink]), sink
    assert table(every["U1"]) and table(every["T1"]) != table(every["U1"])


def test_an_explicit_grace_is_cached_in_one_phase_with_its_late_rows_dropped() -> None:
    """Partials would be judged late whole, at their latest event time: under an explicit
    grace each row is judged, as ksqlDB does whatever its cache."""
    query = """CREATE TABLE t6 AS SELECT grp, COUNT(*) AS n, SUM(x) AS total FROM clicks
      WINDOW TUMBLING (SIZE 2 SECONDS, GRACE PERIOD 0 SECONDS) GROUP BY grp;"""
    every, _ = run(STREAM + query, 6)
    cached, local = run(CACHE + STREAM + query, 6)
    assert table(cached["T6"]) == table(every["T6"])
    assert local == 0
    explained = compile_sql(CACHE + STREAM + query).explain()
    assert "record cache" in explained and "-partials" not in explained
    counted = sum(value["N"] for value in table(every["T6"]).values())
    assert counted < len(clicks(6)) - 20  # many rows were too late


def test_a_table_aggregation_keeps_its_state_under_its_key_bytes() -> None:
    """Where state of a running non-windowed GROUP BY has always been: Quix prefixes it by the
    repartition key, and a string key would be prefixed as JSON text instead."""
    program = compile_sql(
        STREAM + "CREATE TABLE g AS SELECT grp, COUNT(*) AS n FROM clicks GROUP BY grp;"
    )
    with TestDriver(program.setup, partitions=1) as driver:
        for key, value, ts in clicks(7, count=20):
            driver.pipe("clicks", key, value, timestamp=ts)
        driver.commit()
        stream = "clicks--groupby--CTAS_G_0-groupby"
        counts = {g: driver.state(f'["{g}"]'.encode(), stream=stream).get("agg") for g in "abcd"}
    assert sum(agg[0][0] for agg in counts.values() if agg) == 20


def test_turning_the_cache_on_makes_another_pass() -> None:
    """Its window state may live after the partials' repartition: a pass of its own, with its
    own consumer group, rebuilt from the source rather than finding its windows empty."""
    plain = compile_sql(STREAM + LATEST).passes()[0]
    cached = compile_sql(CACHE + STREAM + LATEST).passes()[0]
    assert pass_name(plain) == "CTAS_T4_0"  # type: ignore[arg-type]
    assert pass_name(cached) == "CTAS_T4_0-cached"  # type: ignore[arg-type]
    assert (
        "repartition   CTAS_T4_0-cached-groupby" in compile_sql(CACHE + STREAM + LATEST).explain()
    )


def test_explain_says_what_the_cache_does() -> None:
    explained = compile_sql(CACHE + STREAM + SPLITTABLE + LATEST).explain()
    assert explained.count(f"each window's latest update every {CACHE_MS} ms") == 4
    assert explained.count("-partials instead") == 3  # not T4's LATEST_BY_OFFSET
    assert "record cache" not in compile_sql(STREAM + SPLITTABLE).explain()
    # In one pass with a query that cannot split, no query of the pass is split.
    fused = LATEST.replace("t4", "t5").replace("GROUP BY", "WHERE ok GROUP BY")
    explained = compile_sql(CACHE + STREAM + SPLITTABLE + fused).explain()
    assert "one pass with CTAS_T2_1, CTAS_T3_2, CTAS_T5_3" in explained
    assert "-partials" not in explained


def test_emit_final_and_table_aggregations_are_not_cached() -> None:
    program = compile_sql(
        CACHE + STREAM + "CREATE TABLE f AS SELECT grp, COUNT(*) AS n FROM clicks"
        " WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY grp EMIT FINAL;"
        "CREATE TABLE g AS SELECT grp, COUNT(*) AS n FROM clicks GROUP BY grp;"
    )
    assert [query.emit for query in program.queries.values()] == ["final", "changes"]


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        ({}, None),
        ({"cache.max.bytes.buffering": "0"}, None),
        ({"cache.max.bytes.buffering": "1"}, 2000),  # ksqlDB's commit interval
        ({"ksql.streams.cache.max.bytes.buffering": "10", "commit.interval.ms": "50"}, 50),
        ({"cache.max.bytes.buffering": "10", "ksql.streams.commit.interval.ms": "70"}, 70),
    ],
)
def test_record_cache_properties(properties: dict[str, str], expected: int | None) -> None:
    assert record_cache_ms(properties) == expected


@pytest.mark.parametrize("value", ["lots", "-1"])
def test_a_bad_record_cache_property_is_refused(value: str) -> None:
    with pytest.raises(KsqlError, match=r"cache\.max\.bytes\.buffering"):
        compile_sql(f"SET 'cache.max.bytes.buffering'='{value}';" + STREAM + LATEST)
