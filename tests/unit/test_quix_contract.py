"""What ``streams.quix`` relies on in Quix Streams' internals: one test per hook.

On a Quix Streams version that changes one of them, the test of that hook fails and says what
no longer holds; the apps themselves refuse to start on any untested version.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

import pytest
from confluent_kafka import TopicPartition
from quixstreams import Application
from quixstreams.state.base.transaction import PartitionTransaction

from streams import quix
from streams.testing import DRIVER_COMMIT_INTERVAL_S, TestDriver


def test_the_apps_refuse_an_untested_quix_version() -> None:
    quix.check_version()  # the installed one is the tested one
    with pytest.raises(quix.UnsupportedQuixVersion, match=r"quixstreams 3\.29\.0 is installed"):
        quix.check_version("3.29.0")


class Probe:
    """A stateful step and a periodic task on one app, recording what the hooks gave them."""

    def __init__(self) -> None:
        self.transactions: list[Any] = []
        self.prepared = 0
        self.ticks = 0
        self.sdf: Any = None

    def setup(self, app: Application) -> None:
        numbers = app.topic("numbers", key_deserializer="str", value_deserializer="json")
        self.out = app.topic("out", key_serializer="str", value_serializer="json")
        self.sdf = app.dataframe(numbers)

        def step(value: int, _key: Any, _ts: int, _headers: Any, state: Any) -> int:
            transaction = quix.key_transaction(state)
            if transaction not in self.transactions:
                self.transactions.append(transaction)
                quix.before_prepare(transaction, self.count_prepare)
            return value

        self.sdf.apply(step, stateful=True, metadata=True).to_topic(self.out)
        quix.register_periodic_task(self.sdf, self.tick)

    def count_prepare(self) -> None:
        self.prepared += 1

    def tick(self) -> None:
        self.ticks += 1
        for partition, _transaction in quix.partition_transactions(self.sdf):
            origin = quix.origin("numbers", partition)
            quix.produce(self.sdf, self.out, {"tick": partition}, f"p{partition}", 7, origin)


@pytest.fixture
def probe():
    probe = Probe()
    with TestDriver(probe.setup, partitions=3) as driver:
        yield probe, driver


def test_a_key_state_is_a_view_on_its_partition_transaction(probe) -> None:
    probe, driver = probe
    driver.pipe("numbers", "a", 1, partition=0)
    driver.pipe("numbers", "b", 2, partition=0)
    driver.pipe("numbers", "c", 3, partition=2)
    assert len(probe.transactions) == 2, "one transaction per partition, shared by its keys"
    assert all(isinstance(t, PartitionTransaction) for t in probe.transactions), (
        "State._transaction is no longer the partition's PartitionTransaction"
    )
    by_partition = dict(quix.partition_transactions(probe.sdf))
    assert by_partition[0] is probe.transactions[0] and by_partition[2] is probe.transactions[1], (
        "the checkpoint's store transaction is not the one behind the key states"
    )


def test_a_step_with_partition_scope_gets_its_records_transaction_and_commits_it() -> None:
    from quixstreams import message_context

    seen: list[tuple[int, PartitionTransaction]] = []
    frames: list[Any] = []

    def setup(app: Application) -> None:
        numbers = app.topic("numbers", key_deserializer="str", value_deserializer="json")
        sdf = app.dataframe(numbers)
        frames.append(sdf)
        transaction = quix.record_transaction(sdf)

        def step(value: int, key: str, _ts: int, _headers: Any) -> None:
            seen.append((message_context().partition, transaction()))
            seen[-1][1].as_state(prefix="p").set(key, value)

        sdf.update(step, metadata=True)

    with TestDriver(setup, partitions=3) as driver:
        for key, value, partition in [("a", 1, 0), ("b", 2, 2), ("c", 3, 0)]:
            driver.pipe("numbers", key, value, partition=partition)
        by_partition = dict(quix.partition_transactions(frames[0]))
        assert [t is by_partition[p] for p, t in seen] == [True] * 3, (
            "the checkpoint's store transaction of the record's partition is not the one given"
        )
        driver.commit()  # a new checkpoint: what is read now was committed
        state = driver.state("p", partition=0)
        assert (state.get("a"), state.get("c"), state.get("b")) == (1, 3, None)
        assert driver.state("p", partition=2).get("b") == 2


def test_a_function_runs_before_each_prepare_of_its_transaction(probe) -> None:
    probe, driver = probe
    driver.pipe("numbers", "a", 1, partition=1)
    assert probe.prepared == 0
    driver.commit()
    assert probe.prepared == 1, "PartitionTransaction.prepare is no longer what commits call"


def test_a_store_state_is_readable_in_the_open_checkpoint(probe) -> None:
    probe, driver = probe
    driver.pipe("numbers", "a", 1, partition=0)
    state = driver.state("a", partition=0)
    state.set("seen", 1)  # through the same transaction the step's key state writes to
    assert probe.transactions[0].as_state(prefix="a").get("seen") == 1, (
        "checkpoint.get_store_transaction is not the transaction behind the steps' states"
    )


def test_periodic_tasks_run_and_produce_in_the_checkpoint(probe) -> None:
    probe, driver = probe
    driver.tick()
    assert probe.ticks == 1, "register_periodic_task's task was not run by the registry"
    records = driver.read("out")
    assert [(r.key, r.value, r.timestamp) for r in records] == [
        (f"p{p}", {"tick": p}, 7) for p in range(3)
    ], "partition_transactions or produce no longer reach every assigned partition"


def test_the_run_loop_calls_the_processing_error_handler_it_holds() -> None:
    app = Application(broker_address="127.0.0.1:1", consumer_group="contract")

    def handler(_exc: Exception, _row: Any, _logger: Any) -> bool:
        return True

    quix.set_processing_error_handler(app, handler)
    assert quix.processing_error_handler(app) is handler
    loop = inspect.getsource(Application._process_message)
    assert "self._on_processing_error(exc, row, logger)" in loop, (
        "Application._process_message no longer calls _on_processing_error per failed row"
    )


def test_the_run_loop_subscribes_with_the_lost_partitions_callback_the_app_holds() -> None:
    app = Application(broker_address="127.0.0.1:1", consumer_group="contract")
    quix_on_lost = app._on_lost
    quix.drop_checkpoint_when_partitions_are_lost(app)
    assert app._on_lost is not quix_on_lost
    loop = inspect.getsource(Application._run_dataframe)
    assert "on_lost=self._on_lost" in loop, (
        "Application._run_dataframe no longer subscribes with the app's _on_lost: the lost "
        "partitions' checkpoint would commit after a rejoin (tests/integration/"
        "test_lost_partitions.py)"
    )


@pytest.mark.parametrize(
    "path",
    [
        "_topic_manager._fetch_topic",
        "_processing_context.producer.produce_row",
        "_processing_context.init_checkpoint",
        "_dataframe_registry.compose_all",
        "_dataframe_registry.consumer_topics",
        "_dataframe_registry.run_periodic_tasks",
        "_state_manager.stores",
        "_state_manager.on_partition_assign",
        "_state_manager.close",
    ],
)
def test_what_the_test_driver_reaches_exists(path: str) -> None:
    app = Application(broker_address="127.0.0.1:1", consumer_group="contract")
    node: Any = app
    for part in path.split("."):
        assert hasattr(node, part), f"Application.{path} is gone: update streams.quix.DriverHooks"
        node = getattr(node, part)


class FakeAdmin:
    def delete_records(self, offsets: list[TopicPartition]) -> dict:
        return {}


@pytest.mark.parametrize("client, taken", [("2.12.2", 1), ("2.13.0", 0), ("3.0.1", 0)])
def test_the_delete_records_workaround_retires_on_a_fixed_client(
    monkeypatch: pytest.MonkeyPatch, client: str, taken: int
) -> None:
    monkeypatch.setattr(quix, "confluent_kafka_version", lambda: (client, 0))
    offsets = [TopicPartition("t", 0, 5)]
    before = sys.getrefcount(offsets)
    quix.delete_records(FakeAdmin(), offsets)  # type: ignore[arg-type]
    assert sys.getrefcount(offsets) - before == taken


def test_produce_each_writes_to_the_topic_partition_and_time_it_is_given() -> None:
    def setup(app: Application) -> None:
        numbers = app.topic("numbers", key_deserializer="str", value_deserializer="json")
        out = app.topic("out", key_serializer="str", value_serializer="json")
        sdf = app.dataframe(numbers).apply(lambda n: {"n": n})
        quix.produce_each(sdf, lambda value: (out, f"k{value['n']}", 100 + value["n"], 2))

    with TestDriver(setup, partitions=3) as driver:
        for n in range(3):
            driver.pipe("numbers", str(n), n, timestamp=1)
        records = driver.read("out")
    assert [(r.key, r.value, r.timestamp, r.partition, r.headers) for r in records] == [
        (f"k{n}", {"n": n}, 100 + n, 2, []) for n in range(3)
    ], "produce_each no longer produces with the partition, key and timestamp it names"


@pytest.mark.parametrize(("partitions", "expected"), [(1, False), (3, True)])
def test_group_by_repartitions_through_a_topic_unless_the_input_has_one_partition(
    partitions: int, expected: bool
) -> None:
    seen: dict[str, Any] = {}

    def setup(app: Application) -> None:
        numbers = app.topic("numbers", key_deserializer="str", value_deserializer="json")
        sdf = app.dataframe(numbers)
        seen["repartitions"] = quix.repartitions(sdf)
        seen["topic"] = sdf.group_by("n", key_serializer="str").topics[0].name

    with TestDriver(setup, partitions=partitions):
        pass
    assert seen["repartitions"] is expected
    assert seen["topic"].startswith("repartition__") is expected, (
        "group_by's choice of a repartition topic no longer follows the input's partitions"
    )


def _grouped(partitions: int, group_by: Any) -> tuple[Any, ...]:
    """What ``group_by(sdf)`` makes of six records in the driver: its topic (name, partitions,
    serializers) and what the dataframe after it sees (the driver decodes what was written to
    the topic, on the partition it was written to)."""
    from quixstreams import message_context

    seen: dict[str, Any] = {"rows": []}

    def setup(app: Application) -> None:
        views = app.topic("views", key_deserializer="str", value_deserializer="json")
        sdf = app.dataframe(views).set_headers(
            lambda value, _key, _ts, _headers: [("n", str(value["n"]).encode())]
        )
        grouped = group_by(sdf)
        seen["topic"] = grouped.topics[0]
        grouped.update(
            lambda *row: seen["rows"].append((*row, message_context().partition)),
            metadata=True,
        )

    with TestDriver(setup, partitions=partitions) as driver:
        for n in range(6):
            driver.pipe("views", f"s{n}", {"source": "abc"[n % 3], "n": n}, timestamp=100 + n)
    topic = seen["topic"]
    serdes = [type(topic._key_serializer), type(topic._value_serializer)]
    serdes += [type(topic._key_deserializer), type(topic._value_deserializer)]
    return topic.name, topic.broker_config.num_partitions, serdes, seen["rows"]


@pytest.mark.parametrize("partitions", [1, 3])
@pytest.mark.parametrize("by", ["column", "function"])
def test_our_group_by_makes_and_writes_what_quix_group_by_does(partitions: int, by: str) -> None:
    key: Any = "source" if by == "column" else (lambda value: value["source"] * 2)
    name = None if by == "column" else "doubled"
    serdes = {"key_serializer": "str", "key_deserializer": "str"}
    ours = _grouped(partitions, lambda sdf: quix.group_by(sdf, key, name, **serdes))
    theirs = _grouped(partitions, lambda sdf: sdf.group_by(key, name=name, **serdes))
    assert ours[0].startswith("repartition__") is (partitions > 1)
    assert (len({row[-1] for row in ours[3]}) > 1) is (partitions > 1)  # keyed onto partitions
    assert ours == theirs, "quix.group_by no longer makes and writes what Quix's group_by does"


def test_the_emitters_encoding_is_the_bytes_row_serialize_makes() -> None:
    from quixstreams.models import Topic
    from quixstreams.models.messagecontext import MessageContext
    from quixstreams.models.rows import Row

    topic = Topic("out", key_serializer="str", value_serializer="json")
    value = {"source": "Inbox", "n": 3, "average": 1.5, "none": None, "text": "é\u2028"}
    row = Row(value, "Inbox|1", 0, MessageContext("in", 0, 0, 0), [])
    message = topic.row_serialize(row=row, key="Inbox|1")
    encode = quix.encoder(topic)
    assert encode is not None, "the str/JSON serializers are no longer recognised"
    assert encode("Inbox|1", value) == (message.key, message.value)
    assert encode(None, value)[0] is None
    for other in (
        Topic("b", key_serializer="bytes", value_serializer="json"),
        Topic("j", key_serializer="json", value_serializer="json"),
        Topic("s", key_serializer="str", value_serializer="str"),
    ):
        assert quix.encoder(other) is None, other.name


def test_the_pass_that_commits_is_known_to_the_periodic_tasks(probe) -> None:
    probe, _driver = probe
    assert quix.committing_interval_ms(probe.sdf) is None, "a fresh checkpoint has not expired"
    checkpoint = probe.sdf.processing_context.checkpoint
    checkpoint._created_at -= DRIVER_COMMIT_INTERVAL_S  # its interval has run out
    assert quix.committing_interval_ms(probe.sdf) == DRIVER_COMMIT_INTERVAL_S * 1000, (
        "Checkpoint.expired or _commit_interval no longer say when the run loop commits"
    )


class _Recorder:
    """Stands in for the confluent-kafka producer inside Quix's: records each ``produce``,
    refusing the first ``full`` calls as a full queue does."""

    def __init__(self, full: int = 0) -> None:
        self.calls: list[dict[str, Any]] = []
        self.full = full

    def produce(self, topic: str, value: Any = None, key: Any = None, **kwargs: Any) -> None:
        if self.full:
            self.full -= 1
            raise BufferError("Local: Queue full")
        self.calls.append({"topic": topic, "value": value, "key": key, **kwargs})

    def poll(self, _timeout: float = 0) -> int:
        return 0


@pytest.mark.parametrize("transactional", [False, True])
def test_the_direct_path_produces_on_the_client_inside_the_quix_producer(
    transactional: bool,
) -> None:
    from confluent_kafka import KafkaError
    from confluent_kafka import Producer as ConfluentProducer
    from quixstreams.internal_producer import InternalProducer
    from quixstreams.kafka.exceptions import KafkaProducerDeliveryError

    owner = InternalProducer(broker_address="127.0.0.1:1", transactional=transactional)
    producer = owner._producer
    assert producer._transactional is transactional, "Producer._transactional is gone"
    if not transactional:  # a transactional client would wait for a broker to start
        assert isinstance(producer._producer, ConfluentProducer), (
            "Quix's Producer._producer is no longer the confluent-kafka client"
        )
    recorder = producer._inner_producer = _Recorder(full=1)
    context = type("Context", (), {"producer": owner})()
    direct = quix._Direct(context)

    direct("out", b"1", b"k", None, 10)  # queue full: through Quix's produce, which retries
    direct("out", b"2", b"k", 3, 20, [("h", b"v")])
    first, second = recorder.calls
    assert (first["value"], first["timestamp"], first.get("partition")) == (b"1", 10, None)
    assert "on_delivery" in first, "Quix's produce no longer tracks deliveries"
    assert (second["value"], second["partition"], second["timestamp"]) == (b"2", 3, 20)
    assert second["headers"] == [("h", b"v")]
    latch = second["on_delivery"]
    assert (latch is None) is transactional  # a transaction's commit fails on a failed record
    if not transactional:
        latch(None, None)
        owner._raise_for_error()  # a delivery is nothing to raise
        latch(KafkaError(KafkaError._PURGE_QUEUE), None)
        owner._raise_for_error()  # nor is a purge
        latch(KafkaError(KafkaError._MSG_TIMED_OUT), None)
        with pytest.raises(KafkaProducerDeliveryError):
            owner._raise_for_error()

    captured: list[Any] = []
    owner.produce = lambda **kwargs: captured.append(kwargs)  # type: ignore[method-assign]
    quix._Direct(context)("out", b"3", None, None, 30)
    assert captured == [
        {
            "topic": "out",
            "value": b"3",
            "key": None,
            "partition": None,
            "timestamp": 30,
            "headers": None,
        }
    ], "a produce replaced on the instance (the test driver's) is not called"
