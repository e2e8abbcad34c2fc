"""Generate the benchmark input once and produce it fast onto unique topics.

Every processor and baseline in a run reads the same bytes, so differences come from the
processors, not the data. Records are generated deterministically from a seed, encoded before
producing starts (so the producer loop only hands bytes to librdkafka) and batched.

The page views follow the shared contract: key session_id (plain string), JSON value, event
time as the original's ``yyyy-MM-dd HH:mm:ss`` UTC string, Kafka record time = event time.
Users follow topic3's contract (Confluent Avro, key user_id) and topic4's (cleaned JSON).
"""

from __future__ import annotations

import io
import json
import logging
import random
import struct
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import fastavro
import orjson
from confluent_kafka import Producer
from tqdm import tqdm

from clients.kafka import produce
from clients.settings import SchemaRegistrySettings
from contracts.records import SOURCES
from contracts.users_schema import SCHEMA

log = logging.getLogger(__name__)

COUNTRIES = ("US", "DE", "FR", "IN", "BR", "JP")
GENDERS = ("F", "M", "X")
SUBSCRIPTIONS = ("free", "basic", "premium")

#: (key, value, timestamp ms); value None is a tombstone.
Record = tuple[bytes, bytes | None, int]


@dataclass(frozen=True)
class PageViewPlan:
    """What page views to generate: ``count`` views, one every ``step_ms`` of event time."""

    count: int
    users: int
    start_ms: int
    step_ms: int = 10
    seed: int = 5

    @property
    def sessions(self) -> int:
        return self.users * 2


def page_views(plan: PageViewPlan) -> Iterator[Record]:
    """Page views in event-time order, as a page-view generator would write them."""
    rng = random.Random(plan.seed)
    last_second = -1
    stamp = ""
    for i in range(plan.count):
        ts_ms = plan.start_ms + i * plan.step_ms
        second = ts_ms // 1000
        if second != last_second:
            # Formatting a timestamp costs more than the rest of a record: do it once a second.
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
            last_second = second
        session = rng.randrange(plan.sessions)
        session_id = f"s{session:07d}"
        value = {
            "session_id": session_id,
            "user_id": session % plan.users + 1,
            "source": SOURCES[rng.randrange(3)],
            "event_timestamp": stamp,
        }
        # The string has whole seconds, so the record time is truncated to match it.
        yield session_id.encode(), orjson.dumps(value), second * 1000


@dataclass(frozen=True)
class UserPlan:
    """``updates`` rows for user ids 1..``users``: the first ``users`` rows insert every user,
    later ones update a random user; some rows have a NULL column, some delete the user."""

    users: int
    updates: int
    null_ratio: float = 0.1
    delete_ratio: float = 0.02
    seed: int = 3


def user_rows(plan: UserPlan) -> Iterator[tuple[int, dict[str, object] | None]]:
    rng = random.Random(plan.seed)
    for i in range(plan.updates):
        user_id = i + 1 if i < plan.users else rng.randrange(plan.users) + 1
        if i >= plan.users and rng.random() < plan.delete_ratio:
            yield user_id, None
            continue
        row: dict[str, object | None] = {
            "user_id": user_id,
            "age": rng.randrange(16, 80),
            "gender": rng.choice(GENDERS),
            "country": rng.choice(COUNTRIES),
            "subscription": rng.choice(SUBSCRIPTIONS),
        }
        if rng.random() < plan.null_ratio:
            row[rng.choice(("age", "gender", "country", "subscription"))] = None
        yield user_id, row


def confluent_avro(schema_id: int, row: dict[str, object], parsed: object) -> bytes:
    """Confluent wire format: magic byte 0, 4-byte big-endian schema id, Avro body."""
    out = io.BytesIO()
    out.write(struct.pack(">bI", 0, schema_id))
    fastavro.schemaless_writer(out, parsed, row)
    return out.getvalue()


def users_avro(plan: UserPlan, schema_id: int, ts_ms: int) -> Iterator[Record]:
    parsed = fastavro.parse_schema(json.loads(SCHEMA))
    for user_id, row in user_rows(plan):
        value = None if row is None else confluent_avro(schema_id, row, parsed)
        yield str(user_id).encode(), value, ts_ms


def cleaned_users(plan: UserPlan, ts_ms: int) -> list[Record]:
    """topic4 as ``streams.users`` would leave it: the latest row of each user whose columns
    are all non-NULL (a table, so only the final state matters to a join)."""
    latest: dict[int, dict[str, object] | None] = {}
    for user_id, row in user_rows(plan):
        latest[user_id] = row
    return [
        (str(user_id).encode(), orjson.dumps(row), ts_ms)
        for user_id, row in sorted(latest.items())
        if row is not None and all(v is not None for v in row.values())
    ]


def register_users_schema(registry_url: str, subject: str) -> int:
    from confluent_kafka.schema_registry import Schema

    client = SchemaRegistrySettings(registry_url).client()
    return client.register_schema(subject, Schema(SCHEMA, "AVRO"))


def produce_all(bootstrap: str, topic: str, records: Iterable[Record], total: int) -> int:
    """Produce pre-encoded records as fast as the broker takes them; returns the count."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            # Java clients' key hashing, so keyed topics co-partition with the pipeline's own.
            "partitioner": "murmur2_random",
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 500_000,
        }
    )
    failures: list[str] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    produced = 0
    with tqdm(total=total, desc=f"produce {topic}", unit="rec", unit_scale=True) as bar:
        for key, value, ts in records:
            produce(producer, topic, key, value, ts, on_delivery=on_delivery)
            produced += 1
            if produced % 10_000 == 0:
                producer.poll(0)
                bar.update(10_000)
        bar.update(produced % 10_000)
        remaining = producer.flush(120)
    if remaining or failures:
        raise RuntimeError(
            f"{topic}: {remaining} records undelivered, {len(failures)} failed "
            f"(first: {failures[:1]})"
        )
    return produced
