"""An in-memory test driver for Quix Streams pipelines: Kafka Streams' TopologyTestDriver, for Quix.

Quix Streams has no way to run a ``StreamingDataFrame`` pipeline without a broker. This driver
builds a real :class:`quixstreams.Application` whose topics, producer and partition assignment
are simulated, runs your ``setup(app)`` on it (the same function your ``main()`` runs), and then
processes records you pipe in, one at a time and to completion, through the composed pipeline
with real state (RocksDB in a temporary directory: windows, joins, ``stateful=True`` steps).

Records the pipeline writes to topics it also consumes (the repartition topics of
``group_by``, or a topic one pipeline writes and another reads) are fed back in produce order
on the partition Java's partitioner would pick (:mod:`contracts.partitioning`), so keyed state
lands where it would in production. Everything written to a topic is kept for :meth:`read`,
in order, tombstones included. Pipe order is processing order, across topics, as in ksqlDB's
query-validation tests::

    from streams.testing import TestDriver
    from streams import windows

    def test_two_views_in_one_window():
        config = windows.WindowsConfig()
        with TestDriver(lambda app: windows.setup(app, config)) as driver:
            view = {"session_id": "s1", "user_id": 1, "source": "Inbox",
                    "event_timestamp": 1_700_000_100_000}
            driver.pipe("topic1_PageView", "s1", view)
            driver.pipe("topic1_PageView", "s2", {**view, "session_id": "s2"})
            counts = [r.value["pageview_count"] for r in driver.read("topic6")]
            assert counts == [1, 2]

Wall-clock punctuation (Quix's periodic tasks, e.g. the ``--emit cached`` flush) runs when you
call :meth:`TestDriver.tick`, not on its own, and the processors' wall clock
(:mod:`streams.clock`) is the driver's: it starts at ``wall_clock_s`` and moves only with
:meth:`TestDriver.advance_wall_clock` (which then ticks), so no test waits for time to pass.
:meth:`TestDriver.state` shows what a stateful step holds, as TopologyTestDriver's state
stores do.
Not simulated: consumer rebalances, changelog recovery and transactions (use the integration
tests on the native stack for those), and the timestamp alignment a running Quix consumer
applies across topics merged with ``concat`` (here pipe order is the processing order, which is
what a test wants to control; pipe in timestamp order to see what production does with
buffered topics).

What the driver needs of Quix Streams' internals (topic metadata lookup, the producer, store
assignment, the composed topology, checkpoints) is :class:`streams.quix.DriverHooks`, checked
for the pinned version by ``tests/unit/test_quix_contract.py``.
"""

from __future__ import annotations

import contextvars
import logging
import shutil
import tempfile
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import KafkaError, KafkaException
from quixstreams import Application
from quixstreams.context import set_message_context
from quixstreams.internal_producer import _KEY_UNSET
from quixstreams.models import Topic, TopicConfig
from quixstreams.models.serializers import JSONSerializer, StringSerializer
from quixstreams.state.base.state import State

from contracts.partitioning import partition_for
from streams import clock, quix

Headers = list[tuple[str, bytes]]
logger = logging.getLogger("streams.testing")
#: The driven app's commit interval: longer than any test runs (see ``commit()``).
DRIVER_COMMIT_INTERVAL_S = 10.0**9


@dataclass(frozen=True)
class Record:
    """A record the pipeline produced. ``key``/``value`` are deserialised with the topic's
    deserializers (``value is None`` is a tombstone); ``raw_key``/``raw_value`` are the bytes."""

    topic: str
    key: Any
    value: Any
    timestamp: int
    headers: Headers
    partition: int
    raw_key: bytes | None
    raw_value: bytes | None


class _Message:
    """The part of ``confluent_kafka.Message`` a Quix topic's deserialisation reads."""

    def __init__(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        timestamp: int,
        headers: Headers | None,
        partition: int,
        offset: int,
    ) -> None:
        self._topic, self._key, self._value = topic, key, value
        self._timestamp, self._headers = timestamp, headers
        self._partition, self._offset = partition, offset

    def topic(self) -> str:
        return self._topic

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> Headers | None:
        return self._headers

    def timestamp(self) -> tuple[int, int]:
        return 1, self._timestamp  # TIMESTAMP_CREATE_TIME

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def leader_epoch(self) -> None:
        return None

    def error(self) -> None:
        return None

    def __len__(self) -> int:
        return len(self._value or b"")


def to_bytes(data: Any) -> bytes | None:
    """What a test passes as a key or value, as Kafka bytes: bytes and None as they are,
    str as UTF-8, anything else as JSON (dicts, lists, numbers)."""
    if data is None or isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    return orjson.dumps(data)


class TestDriver:
    """Runs a Quix pipeline without a broker; see the module docstring for an example.

    ``setup(app)`` declares topics with ``app.topic()`` and builds the dataframes, exactly as
    the application does before ``app.run()``. ``partitions`` is the partition count of every
    topic (keys are placed by murmur2 as Java clients do); ``state_dir`` keeps RocksDB state
    in a directory of yours instead of a temporary one. A record larger than
    ``max_message_bytes`` (librdkafka's ``message.max.bytes``) is refused when produced, as the
    real producer refuses it; an error the app's ``on_processing_error`` handler does not
    suppress propagates out of :meth:`pipe`, as it would stop the app.
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self,
        setup: Callable[[Application], None],
        *,
        partitions: int = 1,
        state_dir: Path | None = None,
        consumer_group: str = "test-driver",
        max_message_bytes: int = 1_000_000,
        wall_clock_s: float = 1_700_000_000.0,
    ) -> None:
        self.partitions = partitions
        self.max_message_bytes = max_message_bytes
        # The processors' wall clock is this driver's until it closes: time is a parameter.
        self.wall_clock_s = wall_clock_s
        self._previous_clock = clock.use(lambda: self.wall_clock_s)
        self._own_dir = state_dir is None
        self._state_dir = (
            Path(tempfile.mkdtemp(prefix="streams-testing-")) if state_dir is None else state_dir
        )
        quix.check_version()
        self._app = Application(
            broker_address="127.0.0.1:1",  # never contacted
            consumer_group=consumer_group,
            state_dir=str(self._state_dir),
            use_changelog_topics=False,
            # The driver commits when told (commit()): its checkpoint never expires on the real
            # clock, so what a test sees does not depend on how fast it runs.
            commit_interval=DRIVER_COMMIT_INTERVAL_S,
        )
        self._hooks = quix.DriverHooks(self._app)
        self._hooks.answer_topic_metadata(self._fetch_topic)
        self._topics: dict[str, Topic] = {}
        setup(self._app)
        self._composed, consumed = self._hooks.compose()
        for topic in consumed:
            self._topics[topic.name] = topic
        self._hooks.capture_produced(self._capture, self._capture_bytes)
        self._hooks.assign_all(partitions)
        self._offsets: dict[tuple[str, int], int] = {}
        self._outputs: list[Record] = []
        self._decoders: dict[str, tuple[Callable[[bytes], Any], Callable[[bytes], Any]]] = {}
        self._pending: deque[
            tuple[str, bytes | None, bytes | None, int, Headers | None, int, bool]
        ] = deque()

    def _fetch_topic(self, topic: Topic) -> Topic:
        topic.broker_config = TopicConfig(
            num_partitions=self.partitions,
            replication_factor=1,
            extra_config={"retention.ms": "-1"},
        )
        self._topics[topic.name] = topic
        return topic

    def _capture(
        self,
        row: Any,
        topic: Topic,
        key: Any = _KEY_UNSET,
        partition: int | None = None,
        timestamp: int | None = None,
    ) -> None:
        self._topics.setdefault(topic.name, topic)
        message = topic.row_serialize(row=row, key=row.key if key is _KEY_UNSET else key)
        ts = row.timestamp if timestamp is None else timestamp
        self._enqueue(topic.name, message.key, message.value, ts, message.headers, partition)

    def _capture_bytes(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
        timestamp: int | None = None,
        **_delivery: Any,
    ) -> None:
        """The producer's ``produce`` of bytes already encoded."""
        self._enqueue(topic, key, value, timestamp or 0, headers, partition)

    def _enqueue(
        self,
        name: str,
        key: bytes | None,
        value: bytes | None,
        timestamp: int,
        headers: Headers | None,
        partition: int | None,
    ) -> None:
        if partition is None:
            partition = 0 if key is None else partition_for(key, self.partitions)
        headers = list(headers or [])
        size = len(key or b"") + len(value or b"")
        size += sum(len(header) + len(content or b"") for header, content in headers)
        if size > self.max_message_bytes:
            # What librdkafka's produce() raises, synchronously, for a record over its limit.
            raise KafkaException(
                KafkaError(
                    KafkaError.MSG_SIZE_TOO_LARGE,
                    f"Message size {size} exceeds message.max.bytes {self.max_message_bytes}",
                )
            )
        self._pending.append((name, key, value, timestamp, headers, partition, True))

    # --- public API ----------------------------------------------------------------------

    def pipe(
        self,
        topic: str,
        key: Any,
        value: Any,
        timestamp: int = 0,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> None:
        """Write one record to ``topic`` and process it, and all it causes, to completion.

        ``key``/``value`` are Kafka bytes, or a str (UTF-8) or JSON-able object encoded for
        you (see :func:`to_bytes`); the topic's own deserializers then read them, as in
        production. ``partition`` defaults to where Java's partitioner puts the key.
        """
        raw_key = to_bytes(key)
        if partition is None:
            partition = 0 if raw_key is None else partition_for(raw_key, self.partitions)
        self._pending.append(
            (topic, raw_key, to_bytes(value), timestamp, headers, partition, False)
        )
        self._drain()

    def tick(self) -> None:
        """Run the app's periodic tasks once, as its run loop does between records (the
        punctuation of wall-clock work), and process all they produce to completion."""
        self._hooks.run_periodic_tasks()
        self._drain()

    def advance_wall_clock(self, ms: int) -> None:
        """Move the processors' wall clock (:mod:`streams.clock`) forward, then :meth:`tick`."""
        self.wall_clock_s += ms / 1000
        self.tick()

    def read(self, topic: str) -> list[Record]:
        """Every record produced to ``topic`` since it was last read, in produce order."""
        records = [r for r in self._outputs if r.topic == topic]
        self._outputs = [r for r in self._outputs if r.topic != topic]
        return records

    def read_all(self) -> list[Record]:
        """Every record produced to any topic since the last read, in produce order."""
        records, self._outputs = self._outputs, []
        return records

    def state(
        self,
        prefix: Any,
        *,
        partition: int = 0,
        stream: str | None = None,
        store: str = "default",
    ) -> State:
        """Inspection: a store's state on ``partition`` under ``prefix``, as a stateful step
        sees it now (``get``; what the step wrote since the last :meth:`commit` included).

        ``prefix`` is the message key a step's state is scoped to (as the step receives it),
        or a prefix a step chose itself (the window operator's is ``"windows"``; it writes
        its cache at commits, so :meth:`commit` first). ``stream`` names the stateful stream
        (its topic's name, a repartition topic's for steps after ``group_by``) when the
        pipeline has more than one.
        """
        return self._hooks.store_state(stream, partition, store, prefix)

    def commit(self) -> None:
        """Do to the state what a checkpoint commit does: flush each store transaction to
        RocksDB and start new ones (so later reads come from the store, not a cache)."""
        self._hooks.commit_state()

    def close(self) -> None:
        clock.use(self._previous_clock)
        self._hooks.close_state()
        if self._own_dir:
            shutil.rmtree(self._state_dir, ignore_errors=True)

    def __enter__(self) -> TestDriver:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- processing ----------------------------------------------------------------------

    def _drain(self) -> None:
        while self._pending:
            name, key, value, timestamp, headers, partition, produced = self._pending.popleft()
            offset = self._offsets.get((name, partition), 0)
            self._offsets[name, partition] = offset + 1
            topic = self._topics.get(name)
            if name not in self._composed:
                self._store(topic, name, key, value, timestamp, headers, partition)
                continue
            if produced and topic is not None and not self._is_internal(topic):
                # A topic the app both writes and reads (e.g. users -> topic4 -> country).
                self._store(topic, name, key, value, timestamp, headers, partition)
            assert topic is not None
            message = _Message(name, key, value, timestamp, headers, partition, offset)
            rows = topic.row_deserialize(message)
            for row in rows if isinstance(rows, list) else [] if rows is None else [rows]:
                context = contextvars.copy_context()
                context.run(set_message_context, row.context)
                try:
                    context.run(
                        self._composed[name], row.value, row.key, row.timestamp, row.headers
                    )
                except Exception as exc:
                    # As Quix's run loop: the app's handler may suppress it (a dead letter).
                    if not quix.processing_error_handler(self._app)(exc, row, logger):
                        raise

    def _is_internal(self, topic: Topic) -> bool:
        return topic.name.startswith(("repartition__", "changelog__"))

    def _store(
        self,
        topic: Topic | None,
        name: str,
        key: bytes | None,
        value: bytes | None,
        timestamp: int,
        headers: Headers | None,
        partition: int,
    ) -> None:
        decoders = self._decoders.get(name)
        if decoders is None or topic is None:
            # Once per topic: an isinstance check against an ABC that fails is slow, and this
            # runs for every output record.
            decoders = self._decoders[name] = (
                _decoder(topic._key_serializer if topic else None),
                _decoder(topic._value_serializer if topic else None),
            )
        decode_key, decode_value = decoders
        self._outputs.append(
            Record(
                name,
                None if key is None else decode_key(key),
                None if value is None else decode_value(value),
                timestamp,
                list(headers or []),
                partition,
                key,
                value,
            )
        )


def _decoder(serializer: object) -> Callable[[bytes], Any]:
    """The inverse of a topic's serializer, for reading its records back; formats other than
    str and JSON (Avro, Protobuf, bytes) stay bytes (``Record.raw_*`` always has them)."""
    if isinstance(serializer, StringSerializer):
        return bytes.decode
    if isinstance(serializer, JSONSerializer):
        return orjson.loads
    return bytes


__all__ = ["Record", "TestDriver", "to_bytes"]
