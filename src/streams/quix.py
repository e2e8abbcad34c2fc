"""Every use of Quix Streams' internals, in one place, for the version tested.

Quix Streams' public API has no way to do a few things the processors and the test driver need.
Each is a hook into a private attribute or a constructor Quix does not document; all of them
are here, so that moving to another Quix version means reading one module and running one test
file (``tests/unit/test_quix_contract.py``: a test per hook stating what is relied on, failing
with a readable message on a version that breaks it). The apps refuse to start on any other
version than :data:`TESTED_VERSION` (:func:`check_version`).

Hooks:

1. :func:`key_transaction`: a key-scoped ``State`` handed to a stateful step is a view on its
   partition's transaction (``state._transaction``); the window engine needs partition scope
   (stream time is per partition), so it takes the transaction itself, or without a ``State``
   at all, from the open checkpoint (:func:`record_transaction`: ``register_store`` and
   ``processing_context.checkpoint.get_store_transaction``, as Quix's stateful wrapper).
2. :func:`before_prepare`: run a function just before a store transaction is prepared for
   commit (wraps ``transaction.prepare``), where cached window state is written once.
3. :func:`partition_transactions`: the open checkpoint's store transaction of each assigned
   partition of a dataframe's store (``processing_context.checkpoint``, ``state_manager``), for
   work done on the clock rather than per record (the ``--emit cached`` flush).
4. :func:`register_periodic_task`: a function the run loop calls between records, on the
   processing thread (``sdf._registry.register_periodic_task``); :func:`committing_interval_ms`:
   whether the loop commits right after its periodic tasks this time (the open checkpoint has
   expired; its ``_commit_interval``), so cached results can be flushed into that commit.
5. :func:`produce`: produce a record inside the open checkpoint, through the app's own
   (transactional) producer, from a hand-built ``Row`` with a ``MessageContext`` of its origin;
   :func:`emitter`: the same for a step's outputs, encoding them itself where :func:`encoder`
   knows the topic's serializers (their private ``_serializer``, ``_dumps``, ``_validator``)
   and producing those bytes on the confluent-kafka producer inside the app's
   (``producer._producer._producer``), with Quix's own ``_on_delivery`` for delivery errors;
   :func:`produce_each`: each record of a dataframe, to the topic and partition it names
   (``to_topic`` picks no partition, and with its timestamp and headers is three stages).
6. :func:`processing_error_handler` / :func:`set_processing_error_handler`: the app's
   ``on_processing_error`` callback, replaced after the app exists (the dead-letter handler is
   installed by the processors that declare a dead-letter topic).
7. :func:`repartitions`: whether ``group_by`` on a dataframe writes a repartition topic; on
   one input partition it only re-keys in place (``_single_partition_groupby``), so a record
   produced to "its" topic would go to the input topic itself. :func:`group_by`: Quix's
   ``group_by`` with the records written by the :func:`emitter`, from the same parts
   (``sdf._topic_manager``'s ``derive_topic_config`` and ``repartition_topic``,
   ``__dataframe_clone__``, ``sdf._registry.register_groupby``).
8. :class:`DriverHooks`: what :mod:`streams.testing` replaces or calls to run an app with no
   broker (topic metadata lookup, the producer's ``produce_row``, store assignment, the
   composed topology, periodic tasks, checkpoints, a store's state for inspection).
9. :func:`drop_checkpoint_when_partitions_are_lost`: the app's ``on_lost`` rebalance callback
   (``app._on_lost``), and its open checkpoint replaced by an empty one
   (``processing_context.init_checkpoint``).

confluent-kafka has one known defect worked around here as well (:func:`delete_records`).
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from operator import itemgetter
from typing import Any

import quixstreams
from confluent_kafka import TopicPartition
from confluent_kafka import version as confluent_kafka_version
from confluent_kafka.admin import AdminClient
from quixstreams import Application, message_context
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.models import Topic
from quixstreams.models.messagecontext import MessageContext
from quixstreams.models.rows import Row
from quixstreams.models.serializers import JSONSerializer, StringSerializer
from quixstreams.state.base.state import State
from quixstreams.state.base.transaction import PartitionTransaction

#: The Quix Streams version whose internals the hooks below are written against.
TESTED_VERSION = "3.28.1"
#: confluent-kafka-python releases before this one free the list given to delete_records.
DELETE_RECORDS_FIXED = (2, 13, 0)

ProcessingErrorHandler = Callable[[Exception, Row | None, Any], bool]

logger = logging.getLogger(__name__)


class UnsupportedQuixVersion(RuntimeError):
    """Quix Streams is not the version the hooks of this module were tested with."""


def check_version(installed: str = quixstreams.__version__) -> None:
    """Refuse to run on a Quix Streams other than the tested one, saying what to do."""
    if installed != TESTED_VERSION:
        raise UnsupportedQuixVersion(
            f"quixstreams {installed} is installed, but pageview-streams reaches into Quix "
            f"internals tested only on {TESTED_VERSION} (see streams/quix.py): install "
            f"quixstreams=={TESTED_VERSION} (pip install -e .), or port the hooks and run "
            f"tests/unit/test_quix_contract.py"
        )


# 1, 2 ------------------------------------------------------------------------------------


def key_transaction(state: Any) -> PartitionTransaction:
    """The partition transaction behind a key-scoped ``State`` of a stateful step."""
    return state._transaction


def record_transaction(sdf: StreamingDataFrame) -> Callable[[], PartitionTransaction]:
    """For a step on ``sdf`` with partition scope: registers ``sdf``'s store, as a step with
    ``stateful=True`` would, and returns what gives the store transaction of the record being
    processed. Quix's stateful wrapper would also make a key-scoped ``State`` per record (its
    prefix is the key's JSON), ~2 us that such a step does not use."""
    sdf.register_store()
    context, stream_id = sdf.processing_context, sdf.stream_id

    def transaction() -> PartitionTransaction:
        return context.checkpoint.get_store_transaction(stream_id, message_context().partition)

    return transaction


def before_prepare(transaction: PartitionTransaction, fn: Callable[[], None]) -> None:
    """Call ``fn`` each time ``transaction`` is about to be prepared for commit."""
    prepare = transaction.prepare

    def call_then_prepare(*args: Any, **kwargs: Any) -> Any:
        fn()
        return prepare(*args, **kwargs)

    transaction.prepare = call_then_prepare  # type: ignore[method-assign]


# 3, 4 ------------------------------------------------------------------------------------


def partition_transactions(sdf: StreamingDataFrame) -> Iterator[tuple[int, PartitionTransaction]]:
    """(partition, open store transaction) of each assigned partition of ``sdf``'s store,
    in partition order; nothing while the state is being recovered (it is not yet what was
    committed)."""
    context = sdf.processing_context
    manager = context.state_manager
    if manager.recovery_required:
        return
    stream_id = sdf.stream_id
    for partition in sorted(manager.get_store(stream_id=stream_id).partitions):
        yield partition, context.checkpoint.get_store_transaction(stream_id, partition)


def register_periodic_task(sdf: StreamingDataFrame, task: Callable[[], None]) -> None:
    """Have the app's run loop call ``task`` between records, on the processing thread."""
    sdf._registry.register_periodic_task(task)


def committing_interval_ms(sdf: StreamingDataFrame) -> int | None:
    """The commit interval (ms) if the open checkpoint commits on its clock right after this
    pass of the run loop's periodic tasks (the loop runs them, then commits if the checkpoint
    has expired), else None."""
    checkpoint = sdf.processing_context.checkpoint
    if not checkpoint.expired():
        return None
    return int(checkpoint._commit_interval * 1000)


# 5, 6 ------------------------------------------------------------------------------------


def produce(
    app_or_sdf: Application | StreamingDataFrame,
    topic: Topic,
    value: Any,
    key: Any,
    timestamp: int,
    origin: MessageContext,
    headers: list[tuple[str, bytes]] | None = None,
    partition: int | None = None,
) -> None:
    """Produce through the app's producer in the open checkpoint (so, under exactly-once, in
    the transaction that commits with the offsets); ``origin`` is the record it comes from,
    ``partition`` None for the producer's partitioner on the key bytes."""
    context = (
        app_or_sdf.processing_context
        if isinstance(app_or_sdf, StreamingDataFrame)
        else app_or_sdf._processing_context
    )
    row = Row(value, key, timestamp, origin, headers or [])
    context.producer.produce_row(row, topic, key=key, partition=partition, timestamp=timestamp)


#: What :func:`produce_each` writes a value as: topic, key, timestamp, and partition (None: the
#: producer's partitioner on the key bytes).
Destination = tuple[Topic, Any, int, int | None]


#: ``emit(topic, value, key, timestamp, partition=None, headers=None)``: see :func:`emitter`.
Emit = Callable[..., None]


def emitter(sdf: StreamingDataFrame) -> Emit:
    """A function that produces one value (with no headers unless given) for the record
    ``sdf`` is processing, through the app's producer in the open checkpoint: what a step
    that writes several outputs per input calls, instead of expanding them into Quix stages
    per output.

    To a topic with plain string keys and JSON values (every output of the window step) it
    encodes the record itself, with the topic's own JSON ``dumps``, and produces the bytes:
    Quix's ``row_serialize`` costs 4.5 us per record against 0.5 us for the same bytes (under
    EMIT CHANGES a page view has 8 outputs). Other topics go through ``produce_row``.

    The bytes go straight to the confluent-kafka producer inside Quix's (:class:`_Direct`):
    Quix's ``produce`` costs 3.3 us per record against 1.3 us for the same call, as it builds
    its arguments twice, polls after every record and records every delivery's offset, which
    only its changelogs need. Its run loop polls the producer before each input record."""
    context = sdf.processing_context
    encoders: dict[str, Encoder | None] = {}
    direct = _Direct(context)

    def emit(
        topic: Topic,
        value: Any,
        key: Any,
        timestamp: int,
        partition: int | None = None,
        headers: Any = None,
    ) -> None:
        name = topic.name
        encode = encoders[name] if name in encoders else encoders.setdefault(name, encoder(topic))
        if encode is None:
            row = Row(value, key, timestamp, message_context(), headers or [])
            context.producer.produce_row(
                row, topic, key=key, partition=partition, timestamp=timestamp
            )
        else:
            key_bytes, value_bytes = encode(key, value)
            direct(name, value_bytes, key_bytes, partition, timestamp, headers)

    return emit


#: librdkafka's RD_KAFKA_PARTITION_UA: the partitioner picks the partition from the key.
_ANY = -1


class _Direct:
    """``produce`` of encoded bytes on the confluent-kafka producer inside the app's producer,
    in the open transaction, as Quix's ``InternalProducer.produce`` would, minus its cost.

    Under exactly-once no delivery callback is set: librdkafka fails the transaction's commit
    if any of its records failed delivery, so nothing commits without them, and a callback per
    record would cost the run loop's poll 1 us more. Otherwise a delivery error is handed to the
    Quix producer's ``_on_delivery``, which latches it (and ignores purges): its next
    ``produce`` or the checkpoint's flush raises it, before any offset commits. A full queue
    (BufferError) goes through Quix's ``produce``, which polls for room and retries. Where the
    producer's ``produce`` is replaced on the instance (:meth:`DriverHooks.capture_produced`),
    that replacement is called.
    """

    __slots__ = ("_context", "_latch", "_owner", "_produce")

    def __init__(self, context: Any) -> None:
        self._context = context
        self._owner: Any = None
        self._produce: Callable[..., None] | None = None
        self._latch: Callable[[Any, Any], None] | None = None

    def _bind(self, owner: Any) -> None:
        self._owner = owner
        if "produce" in vars(owner):
            self._produce = self._latch = None
            return
        producer = owner._producer
        self._produce, self._latch = producer._producer.produce, None
        if not producer._transactional:
            on_delivery = owner._on_delivery

            def latch(error: Any, message: Any) -> None:
                if error is not None:
                    on_delivery(error, message)

            self._latch = latch

    def __call__(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        partition: int | None,
        timestamp: int,
        headers: Any = None,
    ) -> None:
        owner = self._context.producer
        if owner is not self._owner:
            self._bind(owner)
        produce = self._produce
        if produce is not None:
            try:
                produce(
                    topic, value, key, partition=_ANY if partition is None else partition,
                    timestamp=timestamp, headers=headers, on_delivery=self._latch,
                )  # fmt: skip
                return
            except BufferError:
                pass
        owner.produce(
            topic=topic,
            value=value,
            key=key,
            partition=partition,
            timestamp=timestamp,
            headers=headers,
        )


#: ``encode(key, value) -> (key bytes, value bytes)``: see :func:`encoder`.
Encoder = Callable[[Any, Any], tuple[bytes | None, bytes]]


def encoder(topic: Topic) -> Encoder | None:
    """The bytes ``topic.row_serialize`` would make of a key and value, without its per-record
    overhead, if the topic has Quix's UTF-8 string key serializer and its plain JSON value
    serializer (no schema, no registry, no extra headers); None for any other topic."""
    keys, values = topic._key_serializer, topic._value_serializer
    if (
        type(keys) is not StringSerializer
        or keys._serializer.codec not in ("utf_8", "utf-8", "utf8")
        or type(values) is not JSONSerializer
        or values._validator is not None
        or values._schema_registry_serializer is not None
        or values.extra_headers
    ):
        return None
    dumps = values._dumps

    def encode(key: Any, value: Any) -> tuple[bytes | None, bytes]:
        encoded = dumps(value)
        return (
            None if key is None else key.encode(),
            encoded.encode() if isinstance(encoded, str) else encoded,
        )

    return encode


def produce_each(sdf: StreamingDataFrame, destination: Callable[[Any], Destination]) -> None:
    """Produce each value of ``sdf`` as ``destination(value)`` says, with no headers, in one
    stage, through the app's producer in the open checkpoint."""
    emit = emitter(sdf)

    def step(value: Any, _key: Any, _timestamp: int, _headers: Any) -> None:
        topic, key, timestamp, partition = destination(value)
        emit(topic, value, key, timestamp, partition)

    sdf.update(step, metadata=True)


def origin(topic: str, partition: int, offset: int = -1) -> MessageContext:
    """The ``MessageContext`` of a record produced on the clock, not from an input record."""
    return MessageContext(topic, partition, offset, 0)


def processing_error_handler(app: Application) -> ProcessingErrorHandler:
    return app._on_processing_error


def set_processing_error_handler(app: Application, handler: ProcessingErrorHandler) -> None:
    app._on_processing_error = handler


# 7, 8 ------------------------------------------------------------------------------------


def repartitions(sdf: StreamingDataFrame) -> bool:
    """Whether ``sdf.group_by`` repartitions through a topic (its input has > 1 partition)."""
    return max(topic.broker_config.num_partitions or 1 for topic in sdf.topics) > 1


def group_by(
    sdf: StreamingDataFrame,
    key: str | Callable[[Any], Any],
    name: str | None = None,
    key_serializer: Any = "json",
    key_deserializer: Any = "json",
    value_serializer: Any = "json",
    value_deserializer: Any = "json",
) -> StreamingDataFrame:
    """``sdf.group_by(key, name, ...)``: the same repartition topic, records and dataframe,
    with each record written by the :func:`emitter` (headers kept) rather than ``to_topic``.

    Every record crosses the repartition once, and Quix's ``to_topic`` costs ~8 us per record
    (``row_serialize`` and its ``produce``) against ~2 us for the same bytes. On one input
    partition Quix only re-keys in place, and that is left to it.
    """
    serdes = {
        "key_serializer": key_serializer,
        "key_deserializer": key_deserializer,
        "value_serializer": value_serializer,
        "value_deserializer": value_deserializer,
    }
    operation = key if name is None else name
    if not isinstance(operation, str):
        raise ValueError('group_by needs a "name" when "key" is a function')
    topics = sdf._topic_manager
    config = topics.derive_topic_config(sdf.topics)
    if config.num_partitions == 1:
        return sdf.group_by(key, name=name, **serdes)
    topic = topics.repartition_topic(
        operation=operation, stream_id=sdf.stream_id, config=config, **serdes
    )
    group = itemgetter(key) if isinstance(key, str) else key
    emit = emitter(sdf)

    def to_repartition(value: Any, _key: Any, timestamp: int, headers: Any) -> None:
        emit(topic, value, group(value), timestamp, headers=headers)

    sdf.update(to_repartition, metadata=True)
    grouped = sdf.__dataframe_clone__(topic)
    sdf._registry.register_groupby(source_sdf=sdf, new_sdf=grouped)
    return grouped


class DriverHooks:
    """What the test driver reaches into, for one app with no broker."""

    def __init__(self, app: Application) -> None:
        self.app = app

    def answer_topic_metadata(self, fetch: Callable[[Topic], Topic]) -> None:
        """``app.topic()`` asks the broker for each topic's configuration; ``fetch`` answers."""
        self.app._topic_manager._fetch_topic = fetch

    def capture_produced(
        self, produce_row: Callable[..., None], produce: Callable[..., None] | None = None
    ) -> None:
        """Every ``produce_row`` of the app's producer goes to ``produce_row`` instead and,
        given ``produce``, every ``produce`` of bytes too (the :func:`emitter`'s path to
        string-keyed JSON topics, see :func:`encoder`); without it those are produced."""
        producer = self.app._processing_context.producer
        producer.produce_row = produce_row
        if produce is not None:
            producer.produce = produce

    def compose(self) -> tuple[dict[str, Callable[..., Any]], list[Topic]]:
        """The composed pipeline per consumed topic name, and the consumed topics."""
        registry = self.app._dataframe_registry
        return registry.compose_all(), list(registry.consumer_topics)

    def assign_all(self, partitions: int) -> None:
        """Assign partitions 0..n-1 of every store, with no committed offsets, and open a
        checkpoint."""
        state = self.app._state_manager
        for stream_id in list(state.stores):
            for partition in range(partitions):
                state.on_partition_assign(
                    stream_id=stream_id, partition=partition, committed_offsets={}
                )
        self.app._processing_context.init_checkpoint()

    def run_periodic_tasks(self) -> None:
        self.app._dataframe_registry.run_periodic_tasks()

    def commit_state(self) -> None:
        """What a checkpoint commit does to the stores: prepare and flush each transaction to
        RocksDB, then open a new checkpoint."""
        context = self.app._processing_context
        for transaction in context.checkpoint._store_transactions.values():
            transaction.prepare(processed_offsets={})
            transaction.flush()
        context.init_checkpoint()

    def store_state(
        self, stream_id: str | None, partition: int, store_name: str, prefix: Any
    ) -> State:
        """The open checkpoint's state of a store partition under ``prefix``, as a stateful
        step sees it; ``stream_id`` may be None when the app has one stateful stream."""
        stores = self.app._state_manager.stores
        if stream_id is None:
            if len(stores) != 1:
                raise ValueError(f"the app has stateful streams {sorted(stores)}: name one")
            (stream_id,) = stores
        checkpoint = self.app._processing_context.checkpoint
        transaction = checkpoint.get_store_transaction(stream_id, partition, store_name)
        return transaction.as_state(prefix=prefix)

    def close_state(self) -> None:
        self.app._state_manager.close()


# 9 ---------------------------------------------------------------------------------------


def drop_checkpoint_when_partitions_are_lost(app: Application) -> None:
    """When the group has dropped this instance, throw away what it did since its last commit.

    Partitions are *lost* (not revoked) when the group coordinator has already removed the
    member: its session expired while the process was paused or cut off for longer than
    ``session.timeout.ms``. Another instance then holds them, from their last commit. Quix's
    ``on_lost`` closes their state but keeps the open checkpoint, and its transaction. Once the
    instance rejoins, with a new group generation, the broker accepts that transaction's
    offsets: the records it processed before and just after the pause are counted a second
    time, on partitions it may no longer own. Aborting the transaction and opening an empty
    checkpoint before Quix's own callback leaves their work to the new owner; under
    at-least-once, dropping the checkpoint keeps its offsets from being committed.
    """
    quix_on_lost = app._on_lost
    context = app._processing_context

    def on_lost(consumer: Any, partitions: list[TopicPartition]) -> None:
        logger.warning(
            "the consumer group dropped this instance (its session expired) and gave its "
            "partitions to another: the work since the last commit is dropped, and redone "
            "by their new owner (%s)",
            ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "none held",
        )
        if context.exactly_once:
            context.producer.abort_transaction()
        context.init_checkpoint()
        quix_on_lost(consumer, partitions)

    app._on_lost = on_lost  # type: ignore[method-assign]


# confluent-kafka ---------------------------------------------------------------------------


def delete_records(
    admin: AdminClient, offsets: list[TopicPartition]
) -> dict[TopicPartition, Future]:
    """``admin.delete_records(offsets)``, safe on confluent-kafka before 2.13.

    Up to 2.12 the C extension releases a reference to the list it is given that it never took
    (confluent-kafka-python #2275, fixed by #2328): the list is freed while still referenced and
    the process crashes later, at random (seen as a SIGSEGV of streams.country minutes into a
    benchmark). On those versions the reference is taken on the extension's behalf; on a fixed
    client the workaround is not applied.
    """
    if _version_tuple(confluent_kafka_version()[0]) < DELETE_RECORDS_FIXED:
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(offsets))
    return admin.delete_records(offsets)


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:3] if part.isdigit())
