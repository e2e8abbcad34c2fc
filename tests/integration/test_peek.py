"""``streams.peek`` shows exactly the latest committed rows of a topic, tombstones included."""

from __future__ import annotations

import json
import uuid

import pytest
from confluent_kafka import Consumer, Producer
from rich.console import Console

from streams import peek

pytestmark = pytest.mark.integration


def test_latest_rows_across_partitions_skip_aborted(kafka: str, make_topic) -> None:
    topic = make_topic("peek", partitions=3)
    producer = Producer({"bootstrap.servers": kafka, "transactional.id": f"peek-{uuid.uuid4()}"})
    producer.init_transactions(30)
    producer.begin_transaction()
    for i in range(10):
        value = json.dumps({"source": f"s{i}", "pageview_count": i})
        producer.produce(topic, key=f"k{i}", value=value, timestamp=1_000 + i)
    producer.produce(topic, key="gone", value=None, timestamp=2_000)
    producer.commit_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, key="aborted", value=b"{}", timestamp=3_000)
    producer.flush(30)
    producer.abort_transaction(30)

    consumer = Consumer(
        {
            "bootstrap.servers": kafka,
            "group.id": f"peek-{uuid.uuid4()}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    try:
        records = peek.latest(consumer, topic, 3)
    finally:
        consumer.close()

    assert [(m.key(), m.value()) for m in records] == [
        (b"k8", b'{"source": "s8", "pageview_count": 8}'),
        (b"k9", b'{"source": "s9", "pageview_count": 9}'),
        (b"gone", None),
    ]
    console = Console(width=200, record=True)
    console.print(peek.render(topic, records))
    text = console.export_text()
    assert "k9" in text and "(tombstone)" in text and "aborted" not in text


def test_dead_letters_show_their_reason_stage_and_origin(kafka: str, make_topic) -> None:
    topic = make_topic("peek-letters", partitions=1)
    producer = Producer({"bootstrap.servers": kafka})
    headers = [
        ("error", b"value is not JSON: unexpected character"),
        ("error.type", b"MalformedJson"),
        ("source.topic", b"topic1_PageView"),
        ("source.partition", b"3"),
        ("source.offset", b"42"),
        ("processor", b"streams.windows"),
        ("stage", b"validate"),
    ]
    producer.produce(topic, key=b"s9", value=b"\xff{bad", headers=headers, timestamp=1_000)
    assert producer.flush(30) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": kafka,
            "group.id": f"peek-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    try:
        records = peek.latest(consumer, topic, 5)
    finally:
        consumer.close()
    console = Console(width=250, record=True)
    console.print(peek.render(topic, records))
    text = console.export_text()
    for shown in (
        "MalformedJson",
        "value is not JSON",
        "validate",
        "topic1_PageView[3]@42",
        "{bad",
    ):
        assert shown in text, text
