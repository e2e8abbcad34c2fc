"""Kafka the way every part here reads and writes it beyond the plain client calls: the last
records of a topic's partitions, and producing through a full local queue.

Reading back from a partition's end is how the users source finds where it stopped, how the
events generator continues its clock and what ``streams.peek`` shows. Where that end is cannot
be told from offsets alone: aborted records and transaction markers take offsets, and a
read_committed consumer never receives them, so the consumer's partition-end event says when a
partition is read (:func:`tail_consumer` asks for it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

#: Waiting this long for a record or a partition's end means something is wrong, not done.
IDLE_S = 30.0


def tail_consumer(bootstrap_servers: str, group_id: str) -> Consumer:
    """A consumer for :func:`read_offsets`: committed records only, never commits offsets (it
    only assigns partitions), and reports where each partition ends."""
    return Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": group_id,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )


def watermarks(consumer: Consumer, topic: str, timeout: float = 10.0) -> dict[int, range]:
    """Each partition of ``topic`` with the range of offsets it holds (none for an unknown
    topic: producing to it is what reports that, with the broker's reason)."""
    partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
    return {
        partition: range(*consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout))
        for partition in partitions
    }


def read_offsets(
    consumer: Consumer,
    topic: str,
    offsets: Mapping[int, range],
    quiet_s: float | None = None,
    idle_s: float = IDLE_S,
) -> Iterator[Message]:
    """The records at ``offsets`` (partition -> offsets) of ``topic`` that ``consumer``
    receives, in offset order within each partition, as they arrive (however many offsets are
    asked for, they need not fit in memory at once).

    A partition is read when its end is reported or its last offset received. A consumer that
    does not report partition ends (no ``enable.partition.eof``) needs ``quiet_s``: the read
    then ends after that many seconds without a record (``idle_s`` before the first one).
    Otherwise ``idle_s`` without a record nor an end is an error, never a short answer.
    """
    pending = {partition: span for partition, span in offsets.items() if span}
    if not pending:
        return
    consumer.assign([TopicPartition(topic, p, span.start) for p, span in pending.items()])
    silence = idle_s
    last_seen = time.monotonic()
    try:
        while pending:
            messages = consumer.consume(1000, timeout=1.0)
            now = time.monotonic()
            if messages:
                last_seen = now
            elif now - last_seen > silence:
                if quiet_s is not None:
                    break
                raise RuntimeError(
                    f"reading {topic} partitions {sorted(pending)}: no record and no end of "
                    f"partition for {idle_s:.0f} s"
                )
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.pop(message.partition(), None)
                    elif error.fatal():
                        raise KafkaException(error)
                    continue  # transient (a broker connection): librdkafka retries on its own
                span = pending.get(message.partition())
                if span is None:
                    continue  # a partition already read
                if message.offset() < span.stop:
                    yield message
                    if quiet_s is not None:
                        silence = quiet_s
                if message.offset() >= span.stop - 1:
                    del pending[message.partition()]
    finally:
        consumer.unassign()


def last_records(
    consumer: Consumer,
    topic: str,
    count: int,
    quiet_s: float | None = None,
    idle_s: float = IDLE_S,
) -> list[Message]:
    """The records among the last ``count`` offsets of each partition of ``topic`` (see
    :func:`read_offsets` for ``quiet_s`` and ``idle_s``), so the topic is never scanned."""
    tails = {
        partition: range(max(span.start, span.stop - count), span.stop)
        for partition, span in watermarks(consumer, topic).items()
    }
    return list(read_offsets(consumer, topic, tails, quiet_s, idle_s))


def produce(
    producer: Producer,
    topic: str,
    key: bytes | str | None,
    value: bytes | str | None,
    timestamp: int = 0,
    *,
    on_delivery: Callable[[KafkaError | None, Message], None] | None = None,
    headers: list[tuple[str, bytes]] | None = None,
    while_full: Callable[[], None] | None = None,
) -> None:
    """``producer.produce`` that waits while librdkafka's local queue is full instead of
    failing: it serves delivery reports (which lets the queue drain), calls ``while_full``
    (e.g. to stop on a failed delivery), and retries."""
    while True:
        try:
            producer.produce(
                topic, value, key, on_delivery=on_delivery, timestamp=timestamp, headers=headers
            )
            return
        except BufferError:
            producer.poll(0.05)
            if while_full is not None:
                while_full()
