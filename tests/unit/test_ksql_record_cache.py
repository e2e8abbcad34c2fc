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
from quixstreams.state.exceptions import StoreNotRegisteredError

from streams.ksql.compiler import compile_sql, record_cache_ms
from streams.ksql.errors import KsqlError
from streams.testing import TestDriver
from tests.unit.cache_periods import pipe_with_clock

T0 = 1_700_000_100_000
CACHE_MS = 1000
CACHE = f"SET 'cache.max.bytes.buffering'='10000000'; SET 'commit.interval.ms'='{CACHE_MS}';"
STREAM = """
CREATE STREAM clicks (id STRING KEY, grp STRING, x INT, d DOUBLE, ok BOOLEAN)
  WITH (kafka_topic='clicks', value_format='JSON');
"""
#: One pass (same stream, WHERE and GROUP BY): COUNT, SUM, AVG, MAX over three window kinds,
#: with HAVING taking windows in and out of T2.
SPLITTABLE = """
CREATE TABLE t1 AS SELECT grp, COUNT(*) AS n, SUM(x) AS total, AVG(d) AS mean FROM clicks
  WINDOW TUMBLING (SIZE 10 SECONDS) WHERE ok GROUP BY grp;
CREATE TABLE t2 AS SELECT grp, WINDOWSTART AS ws, COUNT(*) AS n FROM clicks
  WINDOW HOPPING (SIZE 10 SECONDS, ADVANCE BY 5 SECONDS) WHERE ok GROUP BY grp
  HAVING COUNT(*) < 4;
CREATE TABLE t3 AS SELECT grp, MAX(x) AS top, MIN(x) AS low FROM clicks
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
            "OK": rng.random() < 0.9,
        }
        out.append((f"k{i % 60}".encode(), orjson.dumps(value), t + rng.randrange(4_000)))
    return out


Topics = dict[str, list[tuple[bytes | None, bytes | None]]]


def run(sql: str, seed: int) -> tuple[Topics, int]:
    """Each topic's records (key, value) in order, the wall clock moving between records,
    and how many input partitions have a local stage (two-phase aggregation's)."""
    program = compile_sql(sql)
    out: Topics = {}
    with TestDriver(program.setup, partitions=5) as driver:
        records = [("clicks", key, value, ts) for key, value, ts in clicks(seed)]
        pipe_with_clock(driver, records, CACHE_MS, seed)
        for record in driver.read_all():
            out.setdefault(record.topic, []).append((record.raw_key, record.raw_value))
        driver.commit()
        try:  # the local stage's state is on the input stream's own partitions
            local = [driver.state("local", partition=p, stream="clicks") for p in range(5)]
        except StoreNotRegisteredError:
            return out, 0
        return out, sum(state.get("local") is not None for state in local)


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
