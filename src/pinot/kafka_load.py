"""Write window rows to a Kafka topic the way the stream processors do.

Used by the integration tests and the benchmark to load known rows into the Pinot tables:
keys are the window identity (:func:`contracts.records.window_key`), partitioned like Java clients
(murmur2) and written inside Kafka transactions, so Pinot's read_committed consumption is
exercised exactly as in production.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import Producer

from clients.kafka import produce
from contracts.records import window_key
from pinot.tables import TableSpec


class TransactionalWriter:
    """A transactional producer for one table's topic; use as a context manager."""

    def __init__(self, bootstrap_servers: str, spec: TableSpec) -> None:
        self._spec = spec
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap_servers,
                "transactional.id": f"pinot-load-{spec.table}-{uuid.uuid4().hex[:8]}",
                "partitioner": "murmur2_random",
                "linger.ms": 20,
            }
        )
        self._producer.init_transactions(30)

    def __enter__(self) -> TransactionalWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._producer.flush(30)

    def write(self, rows: Iterable[Mapping[str, Any]], commit: bool = True) -> int:
        """Write ``rows`` in one transaction, then commit it (or abort it, to test isolation)."""
        count = 0
        self._producer.begin_transaction()
        for row in rows:
            key = window_key(str(row[self._spec.group_column]), int(row["window_start"]))
            produce(self._producer, self._spec.topic, key.encode(), json.dumps(row).encode())
            count += 1
        if commit:
            self._producer.commit_transaction(60)
        else:
            # Without a flush, librdkafka would purge still-queued records on abort and the
            # broker would never hold the aborted data that read_committed must skip.
            self._producer.flush(60)
            self._producer.abort_transaction(60)
        return count
