"""The collector's Kafka side: publish without ever blocking the HTTP response.

``produce`` only queues a record in librdkafka's buffer, bounded by ``buffer_messages``; a
thread serves delivery reports. While the broker is slow or down, records wait in the buffer
(and are delivered when it is back) for up to ``delivery_timeout_s``. What cannot wait is
dropped and counted: a record refused because the buffer is full, and a record whose delivery
failed or timed out. Each drop is logged (rate-limited) and shown by ``/health`` and
``/metrics``. The producer is idempotent, so retries after a broker restart write no duplicate.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from clients.logs import RateLimitedLog

logger = logging.getLogger("producers.collector")

#: A drop or delivery error this recent makes ``/health`` say "degraded".
DEGRADED_FOR_S = 30.0


class HitPublisher:
    """A bounded, non-blocking publisher with counters; :meth:`start` it, :meth:`close` it."""

    def __init__(
        self,
        config: dict[str, Any],
        buffer_messages: int = 100_000,
        delivery_timeout_s: float = 300.0,
    ) -> None:
        self.buffer_messages = buffer_messages
        self._producer = Producer(
            {
                "partitioner": "murmur2_random",  # the session key lands as Java would place it
                "enable.idempotence": True,
                "linger.ms": 5,
                "compression.type": "lz4",
                "queue.buffering.max.messages": buffer_messages,
                "message.timeout.ms": int(delivery_timeout_s * 1000),
                **config,
            }
        )
        self.published: Counter[str] = Counter()  #: accepted into the buffer, by topic
        self.delivered: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()  #: "buffer_full", "delivery_failed"
        self.last_error: str | None = None
        self._last_problem = float("-inf")
        self._log = RateLimitedLog("hit dropped", logger)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="hit-deliveries", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def publish(self, topic: str, key: bytes | None, value: bytes, timestamp_ms: int) -> bool:
        """Queue one record; False if it had to be dropped (the buffer is full)."""
        try:
            self._producer.produce(
                topic, value, key, timestamp=timestamp_ms, on_delivery=self._report
            )
        except BufferError:
            self._drop("buffer_full", f"the buffer of {self.buffer_messages} records is full")
            return False
        self.published[topic] += 1
        return True

    def _report(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            self.delivered[message.topic()] += 1
        else:
            self.last_error = error.str()
            self._drop("delivery_failed", f"not delivered to {message.topic()}: {error.str()}")

    def _drop(self, cause: str, why: str) -> None:
        self.dropped[cause] += 1
        self._last_problem = time.monotonic()
        self._log("%s", why)

    def _serve(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)

    def queued(self) -> int:
        return len(self._producer)

    def health(self) -> dict[str, Any]:
        queued = self.queued()
        recent = time.monotonic() - self._last_problem < DEGRADED_FOR_S
        full = queued >= 0.9 * self.buffer_messages
        return {
            "status": "degraded" if recent or full else "ok",
            "queued": queued,
            "buffer_messages": self.buffer_messages,
            "published": sum(self.published.values()),
            "delivered": sum(self.delivered.values()),
            "dropped": {
                "buffer_full": self.dropped["buffer_full"],
                "delivery_failed": self.dropped["delivery_failed"],
            },
            "last_delivery_error": self.last_error,
        }

    def close(self, timeout_s: float = 10.0) -> int:
        """Deliver what is buffered within ``timeout_s``; return how many records were left."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        left = self._producer.flush(timeout_s)
        if left:
            logger.warning("%d hit(s) still undelivered at shutdown", left)
        return left
