"""Broker plumbing shared by the benchmarks: unique topics, offsets and group progress.

Benchmarks never touch the pipeline's fixed topic names: each run makes its own topics (so
parallel runs and the demo do not collide) and deletes them afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

log = logging.getLogger(__name__)

_TIMEOUT_S = 30


def unique_name(prefix: str) -> str:
    """A topic, group or table name no other run uses."""
    return f"bench-{prefix}-{uuid.uuid4().hex[:8]}"


class Broker:
    """Admin and offset queries against one cluster, with the topics this run created."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        # One idle consumer answers watermark queries; it never subscribes, so joins no group.
        self._probe = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": unique_name("probe"), "logger": log}
        )
        self.created: list[str] = []
        self._group_readers: dict[str, Consumer] = {}
        self._marker_reader: Consumer | None = None

    def create_topics(
        self, names: Iterable[str], partitions: int, config: dict[str, str] | None = None
    ) -> None:
        new = [NewTopic(n, num_partitions=partitions, config=config or {}) for n in names]
        for name, future in self.admin.create_topics(new).items():
            future.result(timeout=_TIMEOUT_S)
            self.created.append(name)

    def partitions(self, topic: str) -> list[int]:
        meta = self.admin.list_topics(topic, timeout=_TIMEOUT_S).topics[topic]
        if meta.error is not None:
            raise RuntimeError(f"topic {topic}: {meta.error}")
        return sorted(meta.partitions)

    def topics_containing(self, text: str) -> list[str]:
        """Topics whose name contains ``text``: an app's internal repartition and changelog
        topics carry its consumer group in their name (Quix: ``repartition__{group}--...``)."""
        return sorted(t for t in self.admin.list_topics(timeout=_TIMEOUT_S).topics if text in t)

    def end_offsets(self, topic: str) -> dict[int, int]:
        """High watermark per partition (includes transaction markers on transactional topics)."""
        return {
            p: self._probe.get_watermark_offsets(TopicPartition(topic, p), timeout=_TIMEOUT_S)[1]
            for p in self.partitions(topic)
        }

    def record_count(self, topic: str) -> int:
        """Records in a topic written without transactions (offsets then count records)."""
        return sum(self.end_offsets(topic).values())

    def group_offsets(self, group: str, topics: Iterable[str]) -> dict[tuple[str, int], int]:
        """Committed offset per (topic, partition) of ``topics`` that the group committed.

        Asked through a consumer carrying the group id (it never subscribes, so never joins
        the group), not AdminClient.list_consumer_group_offsets: in confluent-kafka 2.12 that
        segfaults the whole process when the coordinator answers with an error, as it does
        while a transactional app commits (confluent-kafka-python #1982, fixed in 2.13).
        """
        consumer = self._group_readers.get(group)
        if consumer is None:
            consumer = self._group_readers[group] = Consumer(
                {
                    "bootstrap.servers": self.bootstrap,
                    "group.id": group,
                    "enable.auto.commit": False,
                    "logger": log,
                }
            )
        wanted = [TopicPartition(t, p) for t in topics for p in self.partitions(t)]
        return {
            (tp.topic, tp.partition): tp.offset
            for tp in consumer.committed(wanted, timeout=_TIMEOUT_S)
            if tp.offset >= 0
        }

    def holds_records(self, tp: tuple[str, int], start: int, end: int) -> bool:
        """Whether offsets [start, end) of a partition hold a committed record, as the app's
        read_committed consumer would see it; markers and aborted records are skipped."""
        if self._marker_reader is None:
            self._marker_reader = Consumer(
                {
                    "bootstrap.servers": self.bootstrap,
                    "group.id": unique_name("markers"),
                    "isolation.level": "read_committed",
                    "enable.auto.commit": False,
                    "logger": log,
                }
            )
        reader, partition = self._marker_reader, TopicPartition(tp[0], tp[1])
        reader.assign([TopicPartition(tp[0], tp[1], start)])
        deadline = time.monotonic() + _TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                msg = reader.poll(0.1)
                if msg is not None and msg.error() is None:
                    return msg.offset() < end
                if reader.position([partition])[0].offset >= end:
                    return False
            return True  # undecided: not done yet, asked again next poll
        finally:
            reader.unassign()

    def delete(self, topics: list[str]) -> None:
        # A name given twice fails the whole request (INVALID_REQUEST): every topic would stay.
        topics = list(dict.fromkeys(topics))
        if not topics:
            return
        for future in self.admin.delete_topics(topics).values():
            # Cleanup must never hide a benchmark's own result or error.
            with contextlib.suppress(Exception):
                future.result(timeout=_TIMEOUT_S)

    def delete_created(self) -> None:
        self.delete(self.created)
        self.created.clear()

    def close(self) -> None:
        self._probe.close()
        if self._marker_reader is not None:
            self._marker_reader.close()
        for consumer in self._group_readers.values():
            consumer.close()
        self._group_readers.clear()


#: Whether (topic, partition)'s offsets [start, end) hold a record, not only transaction markers.
HoldsRecords = Callable[[tuple[str, int], int, int], bool]


def group_done(
    committed: dict[tuple[str, int], int],
    ends: dict[tuple[str, int], int],
    input_topic: str,
    holds_records: HoldsRecords,
) -> bool:
    """Whether a consumer group has processed everything it reads.

    Input partitions must be committed to their end exactly. Other partitions (internal
    repartition topics an app writes and reads itself) are written in transactions under
    exactly-once: each transaction leaves a commit marker, which the app never commits past
    (it is not a record), and with several instances writing one partition, several markers
    can trail its last record. There, a gap is done when ``holds_records`` finds only markers.
    """
    for tp, end in ends.items():
        start = committed.get(tp, 0)
        if end > start and (tp[0] == input_topic or holds_records(tp, start, end)):
            return False
    return True
