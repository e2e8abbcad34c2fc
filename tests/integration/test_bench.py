"""The throughput harness on the real broker: one measured run of the limit, end to end.

Checks what the README's figures rest on: the preloaded input arrives whole, the contender
copies every record, completion is read from the group's committed offsets (through the
consumer path, not the AdminClient call that segfaults on confluent-kafka 2.12), and a run
leaves none of its topics behind.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from bench import preload
from bench.kafka_io import Broker
from bench.run import Inputs, contenders, measure_once
from tests.integration.apps import read_to_end

pytestmark = pytest.mark.integration

EVENTS = 3_000


def read_all(bootstrap: str, topic: str, partitions: list[int]) -> list[tuple[bytes, bytes]]:
    """Every record of ``topic`` (key, value), read to the end of each partition."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-bench-reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
        for p in partitions
    }
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    records: list[tuple[bytes, bytes]] = []
    seen = dict.fromkeys(partitions, 0)
    while any(seen[p] < ends[p] for p in partitions):
        for msg in consumer.consume(1000, 5):
            assert msg.error() is None, msg.error()
            records.append((msg.key(), msg.value()))
            seen[msg.partition()] = msg.offset() + 1
    consumer.close()
    return records


def test_limit_run_copies_every_record_and_cleans_up(
    kafka: str, make_topic, tmp_path: Path
) -> None:
    broker = Broker(kafka)
    pageviews = make_topic("bench-pageviews", partitions=5)
    plan = preload.PageViewPlan(EVENTS, users=50, start_ms=1_700_000_100_000)
    assert preload.produce_all(kafka, pageviews, preload.page_views(plan), EVENTS) == EVENTS
    inputs = Inputs(pageviews, "unused-users", "unused-cleaned", EVENTS, 0)
    (limit,) = [c for c in contenders([]) if c.name == "limit"]

    outputs: list[str] = []
    original_create = broker.create_topics

    def recording_create(names, partitions, config=None):
        names = list(names)
        outputs.extend(names)
        original_create(names, partitions, config)

    broker.create_topics = recording_create  # type: ignore[method-assign]
    keep: dict[str, list[tuple[bytes, bytes]]] = {}
    original_delete = broker.delete

    def read_then_delete(topics: list[str]) -> None:
        tumbling = next(t for t in topics if t.endswith("-tumbling"))
        keep["out"] = read_all(kafka, tumbling, broker.partitions(tumbling))
        original_delete(topics)

    broker.delete = read_then_delete  # type: ignore[method-assign]
    try:
        measurement = measure_once(broker, limit, inputs, run=0, timeout_s=120)
        # A deletion the controller has accepted reaches the brokers' metadata a moment later.
        deadline = time.monotonic() + 30
        while remaining := set(broker.topics_containing("bench-limit-")) & set(outputs):
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        broker.close()

    def canonical(value: bytes) -> bytes:
        return orjson.dumps(orjson.loads(value), option=orjson.OPT_SORT_KEYS)

    expected = Counter((k, canonical(v)) for k, v, _ts in preload.page_views(plan))
    assert Counter((k, canonical(v)) for k, v in keep["out"]) == expected
    assert 0 < measurement.events <= EVENTS
    assert measurement.seconds > 0 and measurement.peak_rss_mb > 10
    assert remaining == set()  # every topic of the run was deleted, none leaked


def outputs_of_a_run(kafka: str, contender_name: str, inputs: Inputs) -> dict[str, dict]:
    """One measured run of a contender; its topic6-8, read before the run deletes them, as the
    latest value per key."""
    broker = Broker(kafka)
    (contender,) = [c for c in contenders([]) if c.name == contender_name]
    latest: dict[str, dict] = {}
    original_delete = broker.delete

    def read_then_delete(topics: list[str]) -> None:
        for kind in ("tumbling", "hopping", "session"):
            topic = next(t for t in topics if t.endswith(f"-{kind}"))
            rows = read_to_end(kafka, topic)
            latest[kind] = {m.key(): orjson.loads(m.value()) for m in rows}
        original_delete(topics)

    broker.delete = read_then_delete  # type: ignore[method-assign]
    try:
        measurement = measure_once(broker, contender, inputs, run=0, timeout_s=300)
    finally:
        broker.close()
    assert 0 < measurement.events <= inputs.events, contender_name  # it finished: all read
    return latest


def test_the_kafka_streams_contender_computes_what_streams_windows_computes(
    kafka: str, make_topic
) -> None:
    """The anchor is only an anchor if it does the same work: the same final row for every
    window of topic6-8, from the same 50 minutes of page views."""
    pageviews = make_topic("bench-ks-pageviews", partitions=5)
    plan = preload.PageViewPlan(EVENTS, users=50, start_ms=1_700_000_100_000, step_ms=1_000)
    assert preload.produce_all(kafka, pageviews, preload.page_views(plan), EVENTS) == EVENTS
    inputs = Inputs(pageviews, "unused-users", "unused-cleaned", EVENTS, 0)
    ours = outputs_of_a_run(kafka, "streams.windows changes", inputs)
    theirs = outputs_of_a_run(kafka, "kafka streams (cache off)", inputs)
    assert len(ours["tumbling"]) == 3 * 10  # 50 minutes: 10 windows per source
    for kind in ("tumbling", "hopping"):
        assert theirs[kind] == ours[kind], kind

    # Sessions are final once all is read; which intermediate ones were merged away (and
    # retracted) depends on how each engine interleaved the five input partitions.
    def live(rows: dict) -> dict:
        return {key: row for key, row in rows.items() if not row["deleted"]}

    assert live(theirs["session"]) == live(ours["session"])
    assert len(live(ours["session"])) == 3  # one session per source: views every second
