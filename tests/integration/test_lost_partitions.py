"""``streams.quix.drop_checkpoint_when_partitions_are_lost`` on the real broker and Quix.

When the group drops an instance (paused past its session), Quix keeps its open checkpoint;
once it rejoins, the broker accepts that transaction with the new group generation, and what
it processed before the pause is counted twice (seen once in ``test_faults.py``'s pause test,
when the resumed instance's first poll rejoined before it committed). Here the lost-partitions
callback is called directly, so the order is certain: what was written before it must be
aborted, and the next commit holds only what came after.
"""

from __future__ import annotations

import argparse
import json
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition

from streams import quix
from streams.app import add_app_arguments, create_app

pytestmark = pytest.mark.integration


def values(kafka: str, topic: str, isolation: str) -> list[dict]:
    consumer = Consumer(
        {
            "bootstrap.servers": kafka,
            "group.id": f"test-reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "isolation.level": isolation,
            "enable.partition.eof": True,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    found = []
    try:
        while True:
            message = consumer.poll(10)
            assert message is not None, f"could not read {topic} to its end"
            if message.error():
                break  # the end of the partition
            found.append(json.loads(message.value()))
    finally:
        consumer.close()
    return found


def test_lost_partitions_abort_what_was_written_since_the_last_commit(
    kafka, make_topic, tmp_path
) -> None:
    source = make_topic("lost-in", partitions=1)
    sink = make_topic("lost-out", partitions=1)
    parser = argparse.ArgumentParser()
    add_app_arguments(parser, "lost")
    group = f"test-lost-{uuid.uuid4().hex[:8]}"
    app = create_app(parser.parse_args(["--consumer-group", group, "--state-dir", str(tmp_path)]))
    out = app.topic(sink, key_serializer="str", value_serializer="json")
    # What the run loop does around one record: a checkpoint (a transaction), the record's
    # output, its offset; then the next record after the callback, and a commit.
    context = app._processing_context
    context.init_checkpoint()
    before = context.checkpoint
    quix.produce(app, out, {"n": 0}, "k", 1, quix.origin(source, 0, 0))
    context.store_offset(source, 0, 0)
    assert context.producer.flush(10) == 0  # on the broker, in the open transaction

    app._on_lost(app._consumer, [TopicPartition(source, 0)])

    assert context.checkpoint is not before
    assert context.checkpoint.empty()
    quix.produce(app, out, {"n": 1}, "k", 2, quix.origin(source, 0, 1))
    context.store_offset(source, 0, 1)
    context.commit_checkpoint(force=True)
    assert values(kafka, sink, "read_committed") == [{"n": 1}]
    assert values(kafka, sink, "read_uncommitted") == [{"n": 0}, {"n": 1}]
    reader = Consumer({"bootstrap.servers": kafka, "group.id": group})
    try:
        [committed] = reader.committed([TopicPartition(source, 0)], timeout=10)
    finally:
        reader.close()
    assert committed.offset == 2
    context.producer.abort_transaction(5)
