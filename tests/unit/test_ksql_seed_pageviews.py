"""The original deployment's statements (../shared/ksql-statements/seed-001-pageviews.sql), as
the deployment ran them (SET, DROP ... IF EXISTS of missing sources, CAST in the join,
LATEST_BY_OFFSET, FORMAT_TIMESTAMP(FROM_UNIXTIME(WINDOWSTART))), compiled by streams.ksql and
run in the test driver: topics 4-8 hold what a brute-force computation of the same input says,
and topics 6-8 the same counts as the hand-written streams.windows. (streams.country counts a
view without a cleaned user under "unknown"; the statements' join gives it a NULL country, a
NULL group ksqlDB drops: the brute force below does as the statements say.)"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams import windows
from streams.ksql import formats
from streams.ksql.compiler import Program, compile_sql
from streams.ksql.conformance import CaseRegistry
from streams.testing import TestDriver

SEED = Path(__file__).resolve().parents[2].parent / "shared" / "ksql-statements"
MINUTE = 60_000
T0 = 1_700_000_100_000  # a multiple of 5 minutes
SOURCES = ("Homepage", "Inbox", "External")
#: user_id -> (age, gender, country, subscription); user 4 has a NULL column: not cleaned.
USERS = {
    1: (31, "F", "France", "free"),
    2: (45, "M", "Norway", "paid"),
    3: (27, "F", "France", "paid"),
    4: (52, None, "Spain", "free"),
}


def text_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def views(count: int = 300) -> list[dict[str, Any]]:
    rng = random.Random(7)
    out = []
    for i in range(count):
        ts = T0 + rng.randrange(0, 30 * MINUTE) // 1000 * 1000  # whole seconds: the text format
        out.append(
            {
                "session_id": f"s{i}",
                "user_id": rng.choice([1, 2, 3, 4, 5]),
                "source": rng.choice(SOURCES),
                "event_timestamp": text_time(ts),
                "ts": ts,
            }
        )
    return sorted(out, key=lambda v: v["ts"])


@pytest.fixture(scope="module")
def program() -> Program:
    return compile_sql((SEED / "seed-001-pageviews.sql").read_text())


@pytest.fixture(scope="module")
def outputs(program: Program) -> dict[str, dict[Any, Any]]:
    """Per topic: (key values, window start) -> the latest value, after every user then every
    page view (users first, so each view meets its user, as in the deployment)."""
    previous = formats.use_registry(CaseRegistry())
    try:
        users = program.catalog.get("USERS_STREAM")
        with TestDriver(program.setup, partitions=1) as driver:
            for user_id, (age, gender, land, subscription) in USERS.items():
                value = users.value_serde.serialize([user_id, age, gender, land, subscription])
                driver.pipe("topic3_Users", str(user_id).encode(), value, timestamp=T0 - MINUTE)
            for view in views():
                body = {k: v for k, v in view.items() if k != "ts"}
                driver.pipe("topic1_PageView", view["session_id"], orjson.dumps(body))
            return latest(program, driver.read_all())
    finally:
        formats.use_registry(previous)


def latest(program: Program, records: list[Any]) -> dict[str, dict[Any, Any]]:
    sinks = {query.sink.topic: query.sink for query in program.queries.values()}
    out: dict[str, dict[Any, Any]] = defaultdict(dict)
    for record in records:
        sink = sinks.get(record.topic)
        if sink is None:
            continue
        raw, start = record.raw_key, None
        if sink.window is not None:
            raw, start, _end = sink.windowed_key_serde.split(record.raw_key)
        key = tuple(sink.key_serde.deserialize(raw) or ())
        value = sink.value_serde.deserialize(record.raw_value)
        names = [c.name for c in sink.value_columns]
        out[record.topic][key, start] = (
            None if value is None else dict(zip(names, value, strict=True))
        )
    return out


def test_the_deployment_compiles_as_it_ran(program: Program) -> None:
    assert program.properties == {
        "auto.offset.reset": "earliest",
        "ksql.streams.cache.max.bytes.buffering": "0",
    }
    assert [q.sink.topic for q in program.queries.values()] == [
        "USERS_TABLE",
        "topic4",
        "CLEANED_PAGEVIEW_STREAM",
        "topic5",
        "topic6",
        "topic7",
        "topic8",
    ]


def test_topic4_is_the_users_with_no_null_column(outputs) -> None:
    assert outputs["topic4"] == {
        ((user_id,), None): {"AGE": age, "COUNTRY": land, "SUBSCRIPTION": subscription}
        for user_id, (age, gender, land, subscription) in USERS.items()
        if gender is not None
    }


def test_topic6_7_8_count_views_by_source_as_brute_force_says(outputs) -> None:
    tumbling: Counter[tuple[str, int]] = Counter()
    hopping: Counter[tuple[str, int]] = Counter()
    by_source: dict[str, list[int]] = defaultdict(list)
    for view in views():
        ts, source = view["ts"], view["source"]
        tumbling[source, ts - ts % (5 * MINUTE)] += 1
        for start in range(ts - ts % MINUTE, ts - 5 * MINUTE, -MINUTE):
            hopping[source, start] += 1
        by_source[source].append(ts)
    sessions: dict[tuple[str, int], tuple[int, int]] = {}
    for source, times in by_source.items():
        start = prev = times[0]
        count = 0
        for ts in times:
            if ts - prev > 5 * MINUTE:
                sessions[source, start] = (prev, count)
                start, count = ts, 0
            prev, count = ts, count + 1
        sessions[source, start] = (prev, count)

    def window(start: int, end: int, n: int) -> dict[str, Any]:
        return {"WINDOW_START": text_time(start), "WINDOW_END": text_time(end), "PAGEVIEW_COUNT": n}

    assert outputs["topic6"] == {
        ((s,), start): window(start, start + 5 * MINUTE, n) for (s, start), n in tumbling.items()
    }
    assert outputs["topic7"] == {
        ((s,), start): window(start, start + 5 * MINUTE, n) for (s, start), n in hopping.items()
    }
    live = {k: v for k, v in outputs["topic8"].items() if v is not None}
    assert live == {
        ((s,), start): window(start, end, n) for (s, start), (end, n) in sessions.items()
    }


def test_topic5_counts_and_averages_age_by_country(outputs) -> None:
    counts: Counter[tuple[str, int]] = Counter()
    ages: dict[tuple[str, int], list[int]] = defaultdict(list)
    for view in views():
        user = USERS.get(view["user_id"])
        if user is None or user[1] is None:
            continue  # no cleaned user: NULL country, a NULL group ksqlDB drops
        start = view["ts"] - view["ts"] % (5 * MINUTE)
        counts[user[2], start] += 1
        ages[user[2], start].append(user[0])
    assert outputs["topic5"] == {
        ((land,), start): {
            "WINDOW_START": text_time(start),
            "AVERAGE_AGE": sum(ages[land, start]) / n,
            "PAGEVIEW_COUNT": n,
        }
        for (land, start), n in counts.items()
    }


def test_the_same_counts_as_the_hand_written_processors(outputs) -> None:
    config = windows.WindowsConfig()
    with TestDriver(lambda app: windows.setup(app, config), partitions=1) as driver:
        for view in views():
            body = {k: v for k, v in view.items() if k != "ts"}
            driver.pipe("topic1_PageView", view["session_id"], orjson.dumps(body))
        hand = {
            topic: {r.key: r.value["pageview_count"] for r in driver.read(topic)}
            for topic in ("topic6", "topic7", "topic8")
        }
    for topic in ("topic6", "topic7"):
        compiled = {
            f"{k[0]}|{start}": v["PAGEVIEW_COUNT"] for (k, start), v in outputs[topic].items()
        }
        assert compiled == hand[topic]
    compiled_sessions = {
        f"{k[0]}|{start}": v["PAGEVIEW_COUNT"] for (k, start), v in outputs["topic8"].items() if v
    }
    assert compiled_sessions == {k: n for k, n in hand["topic8"].items() if n}
