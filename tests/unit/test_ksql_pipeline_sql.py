"""The project's own statements file for the page-view pipeline (sql/pageview-pipeline.sql),
compiled by streams.ksql, against the hand-written processors (``python -m streams``) on the
same input in the test driver: topics 4-8 hold the same tables, row for row. They differ where
the file says (the key bytes: ksqlDB's windowed keys there, ``group|start`` text here; a
session merged away: a tombstone there, a ``deleted`` row here), so rows are compared by group
and window start, with merged-away sessions left out on both sides."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from contracts import topics
from contracts.users_schema import SCHEMA
from streams import __main__ as combined
from streams import country, users, windows
from streams.ksql import formats
from streams.ksql.compiler import compile_sql
from streams.ksql.errors import KsqlError
from streams.ksql.runner import substitute
from streams.testing import TestDriver

PIPELINE = Path(__file__).resolve().parents[2] / "sql" / "pageview-pipeline.sql"
MINUTE = 60_000
T0 = 1_700_000_100_000
TOPICS = ("topic4", "topic5", "topic6", "topic7", "topic8")
#: Users 1-7; 5 has a NULL column (not cleaned); 6 is cleaned, then gains a NULL column and
#: leaves the table. Views also name users 8 and 9, who do not exist: country 'unknown'.
USERS: list[dict[str, Any]] = [
    {
        "user_id": n,
        "age": 20 + 3 * n,
        "gender": "F" if n % 2 else "M",
        "country": ("France", "Norway", "Chile")[n % 3],
        "subscription": "free",
    }
    for n in range(1, 8)
]
USERS[4]["country"] = None
LEAVES = {**USERS[5], "subscription": None}


def text_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def views(count: int = 400) -> list[dict[str, Any]]:
    """In event-time order, with ties, and gaps that end sessions."""
    rng = random.Random(11)
    out, ts = [], T0
    for i in range(count):
        ts += rng.choice([0, 1_000, 7_000, 45_000]) if i % 40 else 6 * MINUTE
        out.append(
            {
                "session_id": f"s{i}",
                "user_id": rng.randint(1, 9),
                "source": rng.choice(["Homepage", "Inbox", "External"]),
                "event_timestamp": text_time(ts),
            }
        )
    return out


def run(setup: Callable[[Any], None], registry: SchemaRegistryClient) -> list[Any]:
    """Every user row (Avro on topic3), then every view: the same input for both engines."""
    serialize = AvroSerializer(registry, SCHEMA)
    ctx = SerializationContext("topic3_Users", MessageField.VALUE)
    with TestDriver(setup, partitions=5) as driver:
        for row in [*USERS, LEAVES]:
            key = str(row["user_id"])
            driver.pipe("topic3_Users", key, serialize(row, ctx), timestamp=T0 - MINUTE)
        for view in views():
            driver.pipe("topic1_PageView", view["session_id"], orjson.dumps(view))
        return driver.read_all()


def tables(records: list[Any], key_of: Callable[[Any, dict], Any]) -> dict[str, dict]:
    """Per topic, the latest value of each row: a tombstone or a ``deleted`` row removes it."""
    out: dict[str, dict] = {topic: {} for topic in TOPICS}
    for record in records:
        if record.topic not in out:
            continue
        value = None if record.raw_value is None else orjson.loads(record.raw_value)
        key = key_of(record, value)
        if value is None or value.pop("deleted", False):
            out[record.topic].pop(key, None)
        else:
            out[record.topic][key] = value
    return out


@pytest.fixture(scope="module")
def engines() -> tuple[dict[str, dict], dict[str, dict]]:
    registry = SchemaRegistryClient.new_client({"url": "mock://test_ksql_pipeline_sql"})
    configs = (users.UsersConfig(registry), country.CountryConfig(), windows.WindowsConfig())
    hand = run(lambda app: combined.setup(app, *configs), registry)

    program = compile_sql(substitute(PIPELINE.read_text(), topics.NAMES))
    previous = formats.use_registry(registry)
    try:
        compiled = run(program.setup, registry)
    finally:
        formats.use_registry(previous)
    sinks = {q.sink.topic: q.sink for q in program.queries.values()}

    def compiled_key(record: Any, _value: Any) -> Any:
        sink = sinks[record.topic]
        if sink.window is None:
            return record.raw_key
        inner, start, _end = sink.windowed_key_serde.split(record.raw_key)
        return sink.key_serde.deserialize(inner)[0], start

    def hand_key(record: Any, _value: Any) -> Any:
        if record.topic == "topic4":
            return record.raw_key
        group, start = record.raw_key.decode().rsplit("|", 1)
        return group, int(start)

    return tables(hand, hand_key), tables(compiled, compiled_key)


@pytest.mark.parametrize("topic", TOPICS)
def test_the_statements_compute_what_the_hand_written_processors_do(engines, topic) -> None:
    hand, compiled = engines
    assert compiled[topic] == hand[topic]
    assert len(hand[topic]) >= 4  # rows enough to mean something


def test_an_undefined_variable_is_named_with_its_line() -> None:
    with pytest.raises(KsqlError, match=r"line 2: variable 'TOPIC_X' is not defined"):
        substitute("SELECT 1;\nCREATE STREAM s (a INT) WITH (KAFKA_TOPIC='${TOPIC_X}');", {})
    assert substitute("'${topic_x}' ${Topic_X}", {"TOPIC_X": "t1"}) == "'t1' t1"


def test_the_input_reaches_every_case_the_pipeline_has(engines) -> None:
    hand, _compiled = engines
    assert sorted(int(k) for k in hand["topic4"]) == [1, 2, 3, 4, 7]
    assert {country for country, _start in hand["topic5"]} == {
        "France",
        "Norway",
        "Chile",
        "unknown",
    }
    assert len({start for _source, start in hand["topic8"]}) > 3  # sessions ended by gaps
