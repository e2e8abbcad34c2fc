"""Repartition topics kept until the group has processed them, then purged, as Kafka Streams does.

Quix gives a ``group_by`` topic the retention of its input (7 days on the pipeline's topics).
Time retention deletes by record time, and a repartitioned record keeps its event time, so a
replay of older events (a generator started in the past, a backfill) lets the broker delete
records before the group reads them. Seen in CI: the broker's retention check ran while
``streams.country`` was restarting; its committed offset fell below the repartition topic's
low watermark, and Quix discarded the partition's state and resumed past ~1,200 unprocessed
page views. Kafka Streams avoids this by giving repartition topics ``retention.ms=-1`` and
deleting records once its group has committed past them; :class:`RepartitionPurger` does the
same for a processor's consumer group. Records below a committed offset are done (under
exactly-once the offset is committed in the transaction that wrote their results), so the
purge never loses data and the topics stay small.
"""

from __future__ import annotations

import logging
import threading

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from streams import quix

log = logging.getLogger(__name__)

_KEEP = {"retention.ms": "-1", "retention.bytes": "-1"}


class RepartitionPurger:
    """Keeps the group's repartition topics (``repartition__<group>--*``) and purges what the
    group committed, every ``interval_s`` seconds on a daemon thread."""

    def __init__(self, bootstrap_servers: str, group: str, interval_s: float = 30.0) -> None:
        self._admin = AdminClient({"bootstrap.servers": bootstrap_servers})
        # Committed offsets through a consumer carrying the group id (it never subscribes, so
        # never joins the group), not AdminClient.list_consumer_group_offsets: in
        # confluent-kafka 2.12 that segfaults the process when the coordinator answers with an
        # error, as it does while a transactional app commits (confluent-kafka-python #1982).
        self._offsets = Consumer(
            {
                "bootstrap.servers": bootstrap_servers,
                "group.id": group,
                "enable.auto.commit": False,
            }
        )
        self._group = group
        self._interval_s = interval_s
        self._purged: dict[tuple[str, int], int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="repartition-purger", daemon=True)
        self.partitions = self._repartition_partitions()

    def _repartition_partitions(self) -> list[TopicPartition]:
        metadata = self._admin.list_topics(timeout=30)
        prefix = f"repartition__{self._group}--"
        return [
            TopicPartition(name, p)
            for name, topic in sorted(metadata.topics.items())
            if name.startswith(prefix)
            for p in sorted(topic.partitions)
        ]

    def keep(self) -> None:
        """Infinite retention on the repartition topics: only :meth:`purge` deletes from them."""
        topics = sorted({tp.topic for tp in self.partitions})
        if not topics:
            return
        resources = [
            ConfigResource(
                ResourceType.TOPIC,
                name,
                incremental_configs=[
                    ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
                    for key, value in _KEEP.items()
                ],
            )
            for name in topics
        ]
        for future in self._admin.incremental_alter_configs(resources).values():
            future.result(timeout=30)
        log.info("repartition topics kept until processed: %s", ", ".join(topics))

    def purge(self) -> int:
        """Delete what the group committed since the last purge; returns the records deleted."""
        if not self.partitions:
            return 0
        committed = self._offsets.committed(self.partitions, timeout=30)
        due = [
            TopicPartition(tp.topic, tp.partition, tp.offset)
            for tp in committed
            if tp.offset > self._purged.get((tp.topic, tp.partition), 0)
        ]
        if not due:
            return 0
        deleted = 0
        for tp, future in quix.delete_records(self._admin, due).items():
            future.result(timeout=30)
            key = (tp.topic, tp.partition)
            deleted += tp.offset - self._purged.get(key, 0)
            self._purged[key] = tp.offset
        return deleted

    def start(self) -> None:
        self.keep()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._offsets.close()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                deleted = self.purge()
            except Exception as exc:  # a failed purge is retried next interval
                log.warning("repartition purge failed, retrying: %s", exc)
            else:
                if deleted:
                    log.debug("purged %d processed repartition records", deleted)
