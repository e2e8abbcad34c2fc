"""No single record stops the pipeline: ``python -m streams`` on the native stack, fed poison.

One app (users + country + windows in one process) runs for the whole module on unique topics.
Each test sends one kind of poison, then 100 good page views of a source of its own, and checks
that the app is still up, that the poison is in the dead-letter topic with its reason, and that
all 100 good views are counted exactly (the latest topic6 count of their window). The last test
feeds a few thousand random byte strings and JSON documents to every input topic.
"""

from __future__ import annotations

import io
import json
import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import fastavro
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from clients.settings import SchemaRegistrySettings
from contracts.users_schema import SCHEMA
from tests.integration.apps import TOPIC_VARIABLES, StreamsApp, create_topic

pytestmark = pytest.mark.integration

T0 = 1_700_000_100_000  # a multiple of 5 minutes, in 2023


class Pipeline:
    """The running app, its topics, and a committed reader of each output."""

    def __init__(self, kafka: str, topics: dict[str, str], app: StreamsApp) -> None:
        self.kafka = kafka
        self.topics = topics
        self.app = app
        self.producer = Producer({"bootstrap.servers": kafka, "partitioner": "murmur2_random"})
        self._readers: dict[str, Consumer] = {}
        self._seen: dict[str, list] = {}

    def send(self, var: str, key: bytes | None, value: bytes | None, ts: int = T0) -> None:
        self.producer.produce(self.topics[var], key=key, value=value, timestamp=ts)

    def flush(self) -> None:
        assert self.producer.flush(30) == 0

    def views(self, source: str, count: int = 100) -> None:
        for i in range(count):
            body = {"session_id": f"{source}-{i}", "user_id": i, "source": source}
            self.send("TOPIC_PAGEVIEWS", f"{source}-{i}".encode(), view_bytes(body, T0 + i))
        self.flush()

    def records(self, var: str) -> list:
        """Every committed record of the topic so far (read on from where the last call ended)."""
        topic = self.topics[var]
        if topic not in self._readers:
            reader = Consumer(
                {
                    "bootstrap.servers": self.kafka,
                    "group.id": f"test-reader-{uuid.uuid4().hex[:8]}",
                    "auto.offset.reset": "earliest",
                    "isolation.level": "read_committed",
                    "enable.auto.commit": False,
                }
            )
            reader.subscribe([topic])
            self._readers[topic], self._seen[topic] = reader, []
        while batch := self._readers[topic].consume(10_000, timeout=1.0):
            self._seen[topic] += [m for m in batch if m.error() is None]
        return self._seen[topic]

    def wait_for(self, condition, what: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.app.process is not None and self.app.process.poll() is None, (
                f"the app exited while waiting for {what}:\n{self.app.log.read_text()[-4000:]}"
            )
            assert time.monotonic() < deadline, f"{what} not seen in {timeout:.0f} s"
            time.sleep(0.5)

    def count_of(self, source: str) -> int | None:
        key = f"{source}|{T0}".encode()
        mine = [m for m in self.records("TOPIC_TUMBLING") if m.key() == key]
        return json.loads(mine[-1].value())["pageview_count"] if mine else None

    def letters(self, **match: bytes) -> list:
        return [
            m
            for m in self.records("TOPIC_DEAD_LETTER")
            if all(dict(m.headers() or [])[k.replace("_", ".")] == v for k, v in match.items())
        ]

    def assert_counted(self, source: str, expected: int = 100) -> None:
        self.wait_for(lambda: self.count_of(source) == expected, f"{expected} views of {source}")

    def close(self) -> None:
        for reader in self._readers.values():
            reader.close()


def view_bytes(body: dict, ts: int | str) -> bytes:
    return json.dumps({**body, "event_timestamp": ts}).encode()


@pytest.fixture(scope="module")
def pipeline(kafka: str, schema_registry_url: str, tmp_path_factory) -> Iterator[Pipeline]:
    topics = {var: create_topic(kafka, f"poison-{var[6:].lower()}") for var in TOPIC_VARIABLES}
    admin = AdminClient({"bootstrap.servers": kafka})
    state: Path = tmp_path_factory.mktemp("poison-state")
    app = StreamsApp(
        "streams", kafka, topics, state, env={"SCHEMA_REGISTRY_URL": schema_registry_url}
    )
    running = Pipeline(kafka, topics, app)
    with app:
        app.start()
        running.views("warm-up", 1)
        running.assert_counted("warm-up", 1)
        yield running
        running.close()
    for future in admin.delete_topics(list(topics.values())).values():
        future.exception(timeout=30)


def test_a_view_hours_ahead_of_the_clock(pipeline: Pipeline) -> None:
    future = int(time.time() * 1000) + 2 * 3_600_000
    body = {"session_id": "future", "user_id": 1, "source": "future"}
    pipeline.send("TOPIC_PAGEVIEWS", b"future", view_bytes(body, future))
    pipeline.views("after-future")
    pipeline.assert_counted("after-future")
    (letter,) = pipeline.letters(error_type=b"InvalidTimestamp")
    assert letter.key() == b"future"
    assert b"ahead of the wall clock" in dict(letter.headers())["error"]
    assert pipeline.count_of("future") is None
    # It did not advance stream time: none of the good views after it was late.
    assert pipeline.records("TOPIC_LATE") == []


def test_a_field_named_reason(pipeline: Pipeline) -> None:
    body = {"session_id": "reason", "user_id": 1, "source": "reason", "reason": "mine"}
    pipeline.send("TOPIC_PAGEVIEWS", b"reason", view_bytes(body, T0))
    pipeline.views("reason")
    pipeline.assert_counted("reason", 101)  # a valid page view: counted like the others


def test_a_600_kb_field_and_a_600_kb_source(pipeline: Pipeline) -> None:
    wide = {"session_id": "wide", "user_id": 1, "source": "wide", "blob": "x" * 600_000}
    pipeline.send("TOPIC_PAGEVIEWS", b"wide", view_bytes(wide, T0))
    long = {"session_id": "long", "user_id": 1, "source": "y" * 600_000}
    pipeline.send("TOPIC_PAGEVIEWS", b"long", view_bytes(long, T0))
    pipeline.views("wide")
    pipeline.assert_counted("wide", 101)
    (letter,) = pipeline.letters(error_type=b"BadField")
    assert letter.key() == b"long"
    assert letter.value() == view_bytes(long, T0)  # the original, whole: it fits
    assert dict(letter.headers())["error"] == b"source is 600000 characters long, more than 1024"


def test_avro_with_a_union_index_out_of_range(pipeline: Pipeline, schema_registry_url: str) -> None:
    registry = SchemaRegistrySettings(schema_registry_url).client()
    from confluent_kafka.schema_registry import Schema

    schema_id = registry.register_schema(
        f"{pipeline.topics['TOPIC_USERS']}-value", Schema(SCHEMA, "AVRO")
    )
    header = b"\x00" + schema_id.to_bytes(4, "big")
    pipeline.send("TOPIC_USERS", b"1", header + b"\x02\x0a")  # user 1, age: union branch 5 of 2
    good = io.BytesIO()
    row = {"user_id": 2, "age": 30, "gender": "F", "country": "FR", "subscription": "Gold"}
    fastavro.schemaless_writer(good, fastavro.parse_schema(json.loads(SCHEMA)), row)
    pipeline.send("TOPIC_USERS", b"2", header + good.getvalue())
    pipeline.flush()
    pipeline.wait_for(lambda: len(pipeline.records("TOPIC_CLEANED_USERS")) == 1, "user 2")
    assert pipeline.records("TOPIC_CLEANED_USERS")[0].key() == b"2"
    (letter,) = pipeline.letters(error_type=b"BadAvro")
    assert letter.key() == b"1"
    assert dict(letter.headers())["processor"] == b"streams.users"


def test_twenty_thousand_distinct_sources(pipeline: Pipeline) -> None:
    """The old engine kept every source ever seen in one state value: 2 MB of names here,
    over the changelog's maximum record size, so the commit failed on every restart."""
    for i in range(20_000):
        body = {"session_id": f"d{i}", "user_id": i, "source": f"distinct-{i:05d}-" + "z" * 85}
        pipeline.send("TOPIC_PAGEVIEWS", f"d{i}".encode(), view_bytes(body, T0 + i))
        if i % 5000 == 0:
            pipeline.producer.poll(0)
    pipeline.views("after-distinct")
    pipeline.assert_counted("after-distinct", 100)
    changelogs = [
        t
        for t in AdminClient({"bootstrap.servers": pipeline.kafka}).list_topics(timeout=10).topics
        if t.startswith("changelog__") and pipeline.app.group in t
    ]
    assert changelogs
    largest = 0
    for topic in changelogs:
        reader = Consumer(
            {
                "bootstrap.servers": pipeline.kafka,
                "group.id": f"test-reader-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        reader.subscribe([topic])
        while batch := reader.consume(10_000, timeout=2.0):
            largest = max([largest, *(len(m.value() or b"") for m in batch if not m.error())])
        reader.close()
    assert 0 < largest < 64_000, largest


def test_thousands_of_random_records_on_every_input(pipeline: Pipeline) -> None:
    rng = random.Random(13)

    def random_json(depth: int = 0) -> object:
        kind = rng.randrange(7 if depth < 3 else 4)
        if kind == 0:
            return rng.randrange(-(10**12), 10**12)
        if kind == 1:
            return "".join(rng.choice('ab\u00e9\u2603"\\ {}') for _ in range(rng.randrange(20)))
        if kind == 2:
            return rng.choice([None, True, False, 1.5e300])
        if kind == 3:
            return rng.random()
        if kind in (4, 5):
            return {
                rng.choice(["source", "user_id", "country", "age", "x", "session_id"]): random_json(
                    depth + 1
                )
                for _ in range(rng.randrange(5))
            }
        return [random_json(depth + 1) for _ in range(rng.randrange(5))]

    def letters_by_topic() -> dict[str, int]:
        counts: dict[str, int] = {}
        for letter in pipeline.records("TOPIC_DEAD_LETTER"):
            topic = dict(letter.headers())["source.topic"].decode()
            counts[topic] = counts.get(topic, 0) + 1
        return counts

    def is_cleaned_user(key: bytes | None, value: bytes) -> bool:
        """What topic4 may hold (streams.users' output): a JSON object with a UTF-8 key,
        country a string or null, age a number or null. Anything else is not a users row."""
        try:
            assert key is not None
            key.decode()
            row = json.loads(value)
        except (AssertionError, UnicodeDecodeError, ValueError):
            return False
        if not isinstance(row, dict):
            return False
        country, age = row.get("country"), row.get("age")
        return (country is None or isinstance(country, str)) and (
            age is None or (isinstance(age, int | float) and not isinstance(age, bool))
        )

    before = letters_by_topic()
    expected = {var: 0 for var in ("TOPIC_PAGEVIEWS", "TOPIC_USERS", "TOPIC_CLEANED_USERS")}
    for var in expected:
        for i in range(1500):
            key = rng.choice([None, rng.randbytes(rng.randrange(1, 12)), f"k{i}".encode()])
            if i % 2:
                value = rng.randbytes(rng.randrange(0, 300))
            else:
                value = json.dumps(random_json()).encode()
            pipeline.send(var, key, value)
            # No random record is a page view (they never have an event_timestamp) nor a
            # Confluent Avro users row; some topic4 records are valid table rows.
            if var != "TOPIC_CLEANED_USERS" or not is_cleaned_user(key, value):
                expected[var] += 1
    pipeline.views("after-fuzz")
    pipeline.assert_counted("after-fuzz")
    after = letters_by_topic()
    got = {
        var: after.get(pipeline.topics[var], 0) - before.get(pipeline.topics[var], 0)
        for var in expected
    }
    print(f"poison: random records dead-lettered per input topic {got} (expected {expected})")
    assert got == expected
    assert expected["TOPIC_CLEANED_USERS"] < 1500  # the check above had valid rows to pass
