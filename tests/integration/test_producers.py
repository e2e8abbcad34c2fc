"""The producers against the real MySQL, Schema Registry and Kafka.

Each test uses its own MySQL table (USERS_TABLE) and topics, and runs the producers as the
README does, as ``python -m producers.NAME`` subprocesses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime

import pymysql
import pytest
from confluent_kafka import IsolationLevel, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, OffsetSpec
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from contracts.partitioning import partition_for
from producers.mysql import connect
from tests.integration.apps import read_all

pytestmark = pytest.mark.integration


@pytest.fixture
def table(mysql):
    name = f"Users_test_{uuid.uuid4().hex[:8]}"
    yield name
    with connect().cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS `{name}`")
        cur.execute(f"DROP TABLE IF EXISTS `{name}_deleted`")


def run(module: str, *args: str, env: dict[str, str], check: bool = True):
    result = subprocess.run(
        [sys.executable, "-m", module, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def mysql_rows(mysql, table: str) -> dict[int, dict]:
    with connect().cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute(f"SELECT user_id, age, gender, country, subscription FROM `{table}`")
        return {row["user_id"]: row for row in cur.fetchall()}


def decoded_users(kafka: str, registry_url: str, topic: str, expected: int):
    deserialize = AvroDeserializer(SchemaRegistryClient({"url": registry_url}))
    ctx = SerializationContext(topic, MessageField.VALUE)
    out = []
    for message in read_all(kafka, topic, expected, timeout=60):
        value = None if message.value() is None else deserialize(message.value(), ctx)
        out.append((message.key().decode(), value))
    return out


def test_users_reach_topic3_as_avro_with_updates_and_tombstones(
    kafka, schema_registry_url, mysql, table, make_topic
):
    topic = make_topic("users", 5)
    env = {"USERS_TABLE": table, "TOPIC_USERS": topic, "USERS_SOURCE_LAG_MS": "0"}
    run("producers.users", "--count", "40", "--seed", "11", "--null-share", "0.25", env=env)
    rows = mysql_rows(mysql, table)
    assert len(rows) == 40
    for column in ("age", "gender", "country", "subscription"):
        assert sum(row[column] is None for row in rows.values()) == 10
    run("producers.users_source", "--once", env=env)
    first = decoded_users(kafka, schema_registry_url, topic, 40)
    assert sorted(first, key=lambda kv: int(kv[0])) == [
        (str(user_id), rows[user_id]) for user_id in sorted(rows)
    ]
    run("producers.users_source", "--once", env=env)  # nothing new: nothing sent
    run("producers.users", "--update", "3", "--delete", "2", "--seed", "12", env=env)
    time.sleep(0.01)
    run("producers.users_source", "--once", env=env)
    everything = decoded_users(kafka, schema_registry_url, topic, 45)
    assert len(everything) == 45
    after = mysql_rows(mysql, table)
    deleted = set(rows) - set(after)
    assert len(deleted) == 2
    tombstones = {key for key, value in everything if value is None}
    assert tombstones == {str(user_id) for user_id in deleted}
    latest = {}
    for key, value in everything:
        latest[key] = value
    assert {k: v for k, v in latest.items() if v is not None} == {
        str(user_id): row for user_id, row in after.items()
    }
    # The first run's records, and only the 5 changes since (no row sent twice).
    new = Counter(map(repr, everything)) - Counter(map(repr, first))
    assert sum(new.values()) == 5


def committed_offsets(admin: AdminClient, topic: str) -> int:
    """Offsets up to the last stable offset of every partition: committed records and markers."""
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    spec = {TopicPartition(topic, p): OffsetSpec.latest() for p in partitions}
    futures = admin.list_offsets(spec, isolation_level=IsolationLevel.READ_COMMITTED)
    return sum(future.result().offset for future in futures.values())


def test_users_source_sends_each_row_once_across_a_sigkill(
    kafka, schema_registry_url, mysql, table, make_topic
):
    topic = make_topic("users", 5)
    env = {
        "USERS_TABLE": table,
        "TOPIC_USERS": topic,
        "USERS_SOURCE_LAG_MS": "0",
        "USERS_SOURCE_BATCH": "50",
    }
    run("producers.users", "--count", "6000", "--seed", "2", env=env)
    source = subprocess.Popen(
        [sys.executable, "-m", "producers.users_source"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Watched through the partitions' last stable offsets, not by reading the records
        # (seconds a look): the source sends all 6000 in about 4 s.
        admin = AdminClient({"bootstrap.servers": kafka})
        deadline = time.monotonic() + 60
        while committed_offsets(admin, topic) < 300:
            assert time.monotonic() < deadline, "the source sent nothing"
            time.sleep(0.02)
        source.send_signal(signal.SIGKILL)
        source.wait(30)
    finally:
        source.kill()
    before = len(read_all(kafka, topic, 0, timeout=3))
    assert before < 6000, "the kill must land mid-run"
    run("producers.users_source", "--once", env=env)
    keys = Counter(m.key().decode() for m in read_all(kafka, topic, 6000))
    assert len(keys) == 6000
    assert set(keys.values()) == {1}, "a row was sent twice"


def views(kafka: str, topic: str, expected: int):
    return read_all(kafka, topic, expected, timeout=60)


def test_events_are_keyed_partitioned_and_timed_as_java_and_the_original(
    kafka, mysql, table, make_topic
):
    pageviews, sessions = make_topic("pageviews", 5), make_topic("sessions", 5)
    env = {"USERS_TABLE": table, "TOPIC_PAGEVIEWS": pageviews, "TOPIC_USER_SESSIONS": sessions}
    run("producers.users", "--count", "20", "--seed", "1", env=env)
    args = ("--count", "2000", "--seed", "5", "--start", "2026-11-20T10:00:00", "--quiet")
    run("producers.events", *args, env=env)
    records = views(kafka, pageviews, 2000)
    assert len(records) == 2000
    user_ids = set(mysql_rows(mysql, table))
    for message in records:
        view = json.loads(message.value())
        assert message.key().decode() == view["session_id"]
        assert message.partition() == partition_for(message.key(), 5)
        parsed = datetime.strptime(view["event_timestamp"], "%Y-%m-%d %H:%M:%S")
        assert message.timestamp()[1] == int(parsed.replace(tzinfo=UTC).timestamp() * 1000)
        assert view["user_id"] in user_ids
        assert view["source"] in {"Homepage", "Inbox", "External"}
    logins = {json.loads(m.value())["session_id"] for m in views(kafka, sessions, 1)}
    assert {json.loads(m.value())["session_id"] for m in records} <= logins

    # The same seed and start reproduce the same events exactly.
    again = make_topic("pageviews", 5)
    run("producers.events", *args, env={**env, "TOPIC_PAGEVIEWS": again})

    def by_offset(messages):
        return sorted((m.partition(), m.offset(), m.value()) for m in messages)

    assert by_offset(views(kafka, again, 2000)) == by_offset(records)

    # Without --start, a run continues after the latest event time in the topic.
    run("producers.events", "--count", "10", "--seed", "6", "--quiet", env=env)
    newest = max(m.timestamp()[1] for m in records)
    later = [m for m in views(kafka, pageviews, 2010) if m.timestamp()[1] > newest]
    assert len(later) == 10


def test_a_failed_delivery_is_an_error_not_a_silent_loss(mysql, table):
    env = {"USERS_TABLE": table, "TOPIC_PAGEVIEWS": f"no-such-topic-{uuid.uuid4().hex[:8]}"}
    run("producers.users", "--count", "5", env=env)
    result = run("producers.events", "--count", "10", "--quiet", env=env, check=False)
    assert result.returncode != 0
    assert "was not delivered" in result.stderr
    assert "UNKNOWN_TOPIC" in result.stderr or "Unknown topic" in result.stderr


def test_the_clickstream_generator_creates_its_topics_then_fills_them(kafka: str) -> None:
    """On a broker without its topics (auto-creation is off), as on a fresh stack."""
    suffix = uuid.uuid4().hex[:8]
    names = {var: f"test-cs-gen-{suffix}-{var.lower()}" for var in ("CLICKS", "USERS", "CODES")}
    env = {
        "TOPIC_CLICKSTREAM": names["CLICKS"],
        "TOPIC_CLICKSTREAM_USERS": names["USERS"],
        "TOPIC_CLICKSTREAM_CODES": names["CODES"],
    }
    admin = AdminClient({"bootstrap.servers": kafka})
    try:
        args = ("--count", "50", "--users", "7", "--partitions", "3", "--quiet")
        result = run("producers.clickstream", *args, env=env)
        assert f"50 clicks sent to {names['CLICKS']}" in result.stderr
        metadata = admin.list_topics(timeout=10).topics
        assert {len(metadata[n].partitions) for n in names.values()} == {3}
        configs = admin.describe_configs(
            [ConfigResource(ConfigResource.Type.TOPIC, n) for n in names.values()]
        )
        policies = {r.name: f.result()["cleanup.policy"].value for r, f in configs.items()}
        assert policies == {
            names["CLICKS"]: "delete",
            names["USERS"]: "compact",
            names["CODES"]: "compact",
        }
        assert len(read_all(kafka, names["CLICKS"], 50, timeout=60)) == 50
        assert len(read_all(kafka, names["USERS"], 7, timeout=60)) == 7
    finally:
        for future in admin.delete_topics(list(names.values())).values():
            future.exception(timeout=30)
