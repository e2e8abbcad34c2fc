"""``python -m streams.users`` and ``python -m streams.country`` on the native stack.

Users rows go to topic3 as Confluent Avro through the real registry (as the users source writes
them); streams.users must leave exactly the expected table on topic4, tombstones included;
streams.country, fed by that topic4 and deterministic page views, must leave exactly the
expected per-country counts and average ages on topic5, also across a SIGKILL and restart.
"""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from contracts.users_schema import SCHEMA
from tests.integration.apps import (
    StreamsApp,
    committed_input,
    expected_country,
    latest_by_key,
    read_all,
)

pytestmark = pytest.mark.integration

T0 = 1_700_000_100_000
MINUTE = 60_000
COUNTRIES = ("Thailand", "Singapore", "Vietnam")


def make_users(count: int = 30) -> list[dict]:
    """Users 1..count; every 5th has a NULL column (never enters the cleaned table)."""
    users = []
    for user_id in range(1, count + 1):
        users.append(
            {
                "user_id": user_id,
                "age": 20 + user_id,
                "gender": "Female" if user_id % 2 else "Male",
                "country": None if user_id % 5 == 0 else COUNTRIES[user_id % 3],
                "subscription": "Gold",
            }
        )
    return users


def produce_users(kafka: str, registry_url: str, topic: str, rows, ts: int) -> None:
    """Rows as the users source writes them: key user_id, Avro value, None = delete."""
    serialize = AvroSerializer(SchemaRegistryClient({"url": registry_url}), SCHEMA)
    ctx = SerializationContext(topic, MessageField.VALUE)
    producer = Producer({"bootstrap.servers": kafka, "partitioner": "murmur2_random"})
    for user_id, row in rows:
        value = None if row is None else serialize(row, ctx)
        producer.produce(topic, key=str(user_id), value=value, timestamp=ts)
    assert producer.flush(30) == 0


@pytest.fixture
def topics(make_topic):
    return {
        "TOPIC_USERS": make_topic("users", 5),
        "TOPIC_CLEANED_USERS": make_topic("cleaned", 5),
        "TOPIC_PAGEVIEWS": make_topic("pageviews", 5),
        "TOPIC_PAGEVIEWS_BY_COUNTRY": make_topic("country", 5),
        "TOPIC_LATE": make_topic("late", 1),
        "TOPIC_DEAD_LETTER": make_topic("dead-letter", 1),
    }


def test_users_app_keeps_the_table_of_complete_users(kafka, schema_registry_url, topics, tmp_path):
    users = make_users()
    changes = [(u["user_id"], u) for u in users]
    changes += [
        (1, {**users[0], "age": None}),  # leaves the table: tombstone
        (2, None),  # deleted: tombstone
        (5, None),  # never in the table: nothing
        (3, {**users[2], "country": "Laos"}),  # update
    ]
    produce_users(kafka, schema_registry_url, topics["TOPIC_USERS"], changes, ts=T0)
    bad = Producer({"bootstrap.servers": kafka})
    bad.produce(topics["TOPIC_USERS"], key=b"7", value=b"not avro")
    assert bad.flush(30) == 0

    complete = [u for u in users if u["country"] is not None]
    expected_count = len(complete) + 3  # + two tombstones + one update
    with StreamsApp("streams.users", kafka, topics, tmp_path) as app:
        app.start()
        out = read_all(kafka, topics["TOPIC_CLEANED_USERS"], expected_count)
        dead = read_all(kafka, topics["TOPIC_DEAD_LETTER"], 1)
    assert len(out) == expected_count
    by_key = defaultdict(list)
    for message in out:
        value = None if message.value() is None else json.loads(message.value())
        by_key[message.key().decode()].append(value)
    assert by_key["1"] == [users[0], None]
    assert by_key["2"] == [users[1], None]
    assert by_key["3"] == [users[2], {**users[2], "country": "Laos"}]
    assert "5" not in by_key and "10" not in by_key
    assert {k for k, v in by_key.items()} == {str(u["user_id"]) for u in complete}
    [message] = dead
    assert dict(message.headers())["error.type"] == b"BadAvro"


def make_views(user_ids: list[int], count: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    views = [
        {
            "session_id": f"s{i % 40}",
            "user_id": rng.choice(user_ids),
            "source": "Inbox",
            "event_timestamp": T0 + rng.randrange(0, 20 * MINUTE),
        }
        for i in range(count)
    ]
    views.sort(key=lambda v: v["event_timestamp"])
    return views


def test_country_app_joins_and_counts_exactly_across_a_sigkill(kafka, topics, tmp_path):
    users = make_users()
    table = {u["user_id"]: u for u in users if u["country"] is not None}
    producer = Producer({"bootstrap.servers": kafka, "partitioner": "murmur2_random"})
    for user in table.values():  # the cleaned table, older than every view
        producer.produce(
            topics["TOPIC_CLEANED_USERS"],
            key=str(user["user_id"]),
            value=json.dumps(user),
            timestamp=T0 - MINUTE,
        )
    views = make_views([*range(1, 31), 99], 20_000)  # 99: no such user -> unknown
    for v in views:
        producer.produce(
            topics["TOPIC_PAGEVIEWS"],
            key=v["session_id"],
            value=json.dumps(v),
            timestamp=v["event_timestamp"],
        )
    assert producer.flush(30) == 0
    expected = expected_country(views, table)
    assert "unknown|" + str(T0) in expected

    with StreamsApp("streams.country", kafka, topics, tmp_path) as app:
        app.start()
        repartition = f"repartition__{app.group}--{topics['TOPIC_PAGEVIEWS']}--user_id"
        deadline = time.monotonic() + 120
        while committed_input(kafka, repartition, app.group) == 0:
            assert time.monotonic() < deadline, f"no commit; see {app.log}"
            time.sleep(0.2)
        app.kill()
        before = len(read_all(kafka, topics["TOPIC_PAGEVIEWS_BY_COUNTRY"], 0, timeout=10))
        assert before < len(views), "the kill must land mid-run"
        app.start()
        out = read_all(kafka, topics["TOPIC_PAGEVIEWS_BY_COUNTRY"], len(views))
    # EMIT CHANGES: one update per view, so the count proves nothing lost or counted twice.
    assert len(out) == len(views)
    assert latest_by_key(out) == expected
