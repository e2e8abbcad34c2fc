"""``streams.quix.delete_records`` on the real broker: it deletes, and it leaves the
reference count of its argument as it found it (the pinned confluent-kafka's own call drops
one reference it never took, which crashed streams.country in a benchmark)."""

from __future__ import annotations

import sys

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from streams.quix import delete_records

pytestmark = pytest.mark.integration


def test_delete_records_deletes_and_keeps_the_reference_count(kafka, make_topic):
    topic = make_topic("purge", partitions=1)
    producer = Producer({"bootstrap.servers": kafka})
    for i in range(10):
        producer.produce(topic, value=str(i))
    assert producer.flush(30) == 0
    offsets = [TopicPartition(topic, 0, 4)]
    references = sys.getrefcount(offsets)
    admin = AdminClient({"bootstrap.servers": kafka})  # kept: its futures die with it
    results = delete_records(admin, offsets)
    assert [f.result(timeout=30).low_watermark for f in results.values()] == [4]
    assert sys.getrefcount(offsets) == references
    consumer = Consumer({"bootstrap.servers": kafka, "group.id": "unused"})
    try:
        assert consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (4, 10)
    finally:
        consumer.close()
