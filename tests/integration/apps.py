"""Running the processors on the native stack in integration tests: subprocesses, and
reading what they committed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from contracts import topics as topic_names
from contracts.records import window_key

#: The environment variables naming every topic of the pipeline (src/contracts/topics.py): a test
#: that runs the whole pipeline sets each to a name of its own.
TOPIC_VARIABLES = tuple(topic_names.NAMES)


def recent_start(multiple_ms: int) -> int:
    """An event time about a day ago, a multiple of ``multiple_ms``.

    For tests whose topics the code under test creates (``streams.ksql run``'s sinks): those get
    the broker's 7-day time retention, which deletes records timestamped in 2023 whenever its
    periodic check runs mid-test (a third of the runs lost the first records so).
    """
    start = int(time.time() * 1000) - 86_400_000
    return start - start % multiple_ms


def create_topic(
    kafka: str, prefix: str, partitions: int = 5, config: dict[str, str] | None = None
) -> str:
    """A topic named ``test-<prefix>-<random>``, once every partition has a leader.

    Tests replay fixed event times from 2023, so time retention is off by default: the
    broker's 7-day retention would delete such records mid-test, whenever its periodic check
    happens to run. Creation returns before every partition has a leader in the metadata;
    clients that look the topic up at once (Pinot's table creation) could still find it
    missing, hence the wait.
    """
    admin = AdminClient({"bootstrap.servers": kafka})
    name = f"test-{prefix}-{uuid.uuid4().hex[:8]}"
    config = {"retention.ms": "-1", **(config or {})}
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config)]
    )
    futures[name].result(timeout=30)
    deadline = time.monotonic() + 30
    while True:
        topic = admin.list_topics(name, timeout=10).topics[name]
        leaders = [p.leader for p in topic.partitions.values()]
        if topic.error is None and len(leaders) == partitions and min(leaders) >= 0:
            return name
        assert time.monotonic() < deadline, f"topic {name} has no leaders after 30 s"
        time.sleep(0.1)


def read_all(kafka: str, topic: str, expected: int, timeout: float = 180.0) -> list:
    """Committed records of ``topic``: once ``expected`` arrived, until 3 s pass with no more."""
    consumer = Consumer(
        {
            "bootstrap.servers": kafka,
            "group.id": f"test-reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    records: list = []
    deadline = time.monotonic() + timeout
    last_arrival = time.monotonic()
    try:
        while time.monotonic() < deadline:
            batch = [m for m in consumer.consume(1000, timeout=1.0) if m.error() is None]
            if batch:
                records += batch
                last_arrival = time.monotonic()
            elif len(records) >= expected and time.monotonic() - last_arrival > 3:
                break
    finally:
        consumer.close()
    return records


_COORDINATOR_MOVING = (
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
)


def read_to_end(
    kafka: str, topic: str, timeout: float = 60.0, isolation: str = "read_committed"
) -> list:
    """Committed records of ``topic``, from its beginning to the end it has now, commit markers
    included: for outputs whose writers have stopped. A read_committed reader cannot pass an
    open transaction, so this waits, up to ``timeout``, for the markers of the last ones.
    ``isolation="read_uncommitted"`` reads aborted records too."""
    consumer = Consumer(
        {
            "bootstrap.servers": kafka,
            "group.id": f"test-reader-{uuid.uuid4().hex[:8]}",
            "isolation.level": isolation,
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        marks = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            for p in partitions
        }
        # An empty partition has no position to reach.
        ends = {p: high for p, (low, high) in marks.items() if high > low}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        records: list = []
        deadline = time.monotonic() + timeout
        while True:
            records += [m for m in consumer.consume(1000, timeout=0.5) if m.error() is None]
            positions = consumer.position([TopicPartition(topic, p) for p in ends])
            if all(tp.offset >= ends[tp.partition] for tp in positions):
                return records
            assert time.monotonic() < deadline, (
                f"{topic}: read to {[tp.offset for tp in positions]} of {ends} in {timeout:.0f} s"
            )
    finally:
        consumer.close()


def committed_input(kafka: str, topic: str, group: str) -> int:
    """How many input records the app's group has committed (its transactions' offsets); 0
    while the group's coordinator is still moving or loading (a fresh broker's first groups)."""
    consumer = Consumer({"bootstrap.servers": kafka, "group.id": group})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        try:
            committed = consumer.committed(
                [TopicPartition(topic, p) for p in partitions], timeout=10
            )
        except KafkaException as exc:
            if exc.args[0].code() in _COORDINATOR_MOVING:
                return 0
            raise
        return sum(max(tp.offset, 0) for tp in committed)
    finally:
        consumer.close()


def latest_by_key(records) -> dict:
    return {m.key().decode(): json.loads(m.value()) for m in records}


class StreamsApp:
    """A processor (``python -m <module>``) as a subprocess with its own topics (TOPIC_*
    overrides), consumer group and state directory; a context manager that stops it and
    deletes its internal (repartition, changelog) topics."""

    def __init__(
        self,
        module: str,
        kafka: str,
        topics: dict[str, str],
        state_dir: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        processor = module.rpartition(".")[2]
        self.module = module
        self.kafka = kafka
        self.group = f"test-{processor}-{uuid.uuid4().hex[:8]}"
        self.env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": kafka,
            f"{processor.upper()}_CONSUMER_GROUP": self.group,
            "STREAMS_STATE_DIR": str(state_dir),
            "STREAMS_COMMIT_INTERVAL_S": "1",
            **topics,
            **(env or {}),
        }
        self.process: subprocess.Popen | None = None
        self.log = state_dir / f"{processor}.log"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module],
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def __enter__(self) -> StreamsApp:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
        # Quix's repartition and changelog topics carry the unique group name.
        admin = AdminClient({"bootstrap.servers": self.kafka})
        internal = [t for t in admin.list_topics(timeout=10).topics if self.group in t]
        if internal:
            for future in admin.delete_topics(internal).values():
                future.exception(timeout=30)


def expected_country(
    views: list[dict[str, Any]], table: dict[int, dict[str, Any]], window_ms: int = 300_000
) -> dict[str, dict[str, Any]]:
    """topic5's latest row per window key, computed by brute force from the page views and the
    cleaned users table (LEFT join: a view without a user counts under "unknown")."""
    counts: Counter[tuple[str, int]] = Counter()
    ages: dict[tuple[str, int], list[int]] = defaultdict(list)
    for view in views:
        user = table.get(view["user_id"])
        country = user["country"] if user else "unknown"
        start = view["event_timestamp"] - view["event_timestamp"] % window_ms
        counts[country, start] += 1
        if user:
            ages[country, start].append(user["age"])
    return {
        window_key(c, s): {
            "country": c,
            "window_start": s,
            "window_end": s + window_ms,
            "pageview_count": n,
            "average_age": sum(ages[c, s]) / len(ages[c, s]) if ages[c, s] else None,
        }
        for (c, s), n in counts.items()
    }
