"""What every producer here needs from Kafka: Java-compatible partitioning, checked delivery.

Keys are placed by murmur2 (``partitioner=murmur2_random``) as Java clients place them, so the
topics written here co-partition with topics written by Kafka Connect, ksqlDB and the
processors. Every delivery report is checked: a record that cannot be delivered is an error
that stops the producer with the broker's reason, never a silent loss.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from clients.kafka import produce
from clients.settings import KafkaSettings


class DeliveryFailed(RuntimeError):
    """The broker did not accept a record (unknown topic, authorisation, too large...)."""


class CheckedProducer:
    """A confluent-kafka Producer whose delivery reports are checked; see :meth:`finish`."""

    def __init__(self, **config: Any) -> None:
        settings = {
            "bootstrap.servers": KafkaSettings.from_env().bootstrap_servers,
            "partitioner": "murmur2_random",
            "enable.idempotence": True,
            # Throughput: large lz4 batches, a few ms of linger; the callers poll per batch.
            "compression.type": "lz4",
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 1_000_000,
            **config,
        }
        self.producer = Producer(settings)
        self.delivered = 0
        self.error: KafkaError | None = None

    def _report(self, error: KafkaError | None, _message: Message) -> None:
        if error is None:
            self.delivered += 1
        elif self.error is None:
            self.error = error

    def produce(
        self,
        topic: str,
        key: Any,
        value: Any,
        timestamp: int = 0,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """Queue one record; while the local queue is full, serve reports (stopping on a failed
        delivery) and retry."""
        produce(
            self.producer,
            topic,
            key,
            value,
            timestamp,
            on_delivery=self._report,
            headers=headers,
            while_full=self.check,
        )

    def poll(self) -> None:
        """Serve delivery reports now (call once per batch, not per record)."""
        self.producer.poll(0)
        self.check()

    def check(self) -> None:
        if self.error is not None:
            raise DeliveryFailed(f"a record was not delivered: {self.error.str()}")

    def finish(self, timeout: float = 60.0) -> int:
        """Wait for every record's report; raise if any failed. Returns how many were delivered."""
        remaining = self.producer.flush(timeout)
        self.check()
        if remaining:
            raise DeliveryFailed(f"{remaining} record(s) still undelivered after {timeout} s")
        return self.delivered
