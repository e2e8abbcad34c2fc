"""The in-memory test driver (``streams.testing``) on tiny pipelines with known answers.

Each test pins one promise the driver makes to people writing pipeline tests: exact outputs of
stateful steps, repartitioned records landing on the partition Java's partitioner picks,
tombstones, consuming reads, state that survives a commit (and a restart on the same state
directory), and processing in pipe order across topics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quixstreams import Application
from quixstreams.context import message_context

from contracts.partitioning import partition_for
from streams.operators.table import TombstoneJSONSerializer
from streams.testing import Record, TestDriver, to_bytes

WORDS = "words"
COUNTS = "counts"


def count_words(app: Application, value_serializer: Any = "json") -> None:
    """words (JSON, any key) -> re-keyed by word -> running count per word -> counts.

    The count records the partition its state lives on, so tests can see where it was kept.
    """
    words = app.dataframe(app.topic(WORDS, key_deserializer="str", value_deserializer="json"))
    by_word = words.group_by(
        lambda v: v["word"], name="word", key_serializer="str", key_deserializer="str"
    )

    def count(value: dict, state: Any) -> dict | None:
        if value.get("forget"):
            state.delete("n")
            return None  # a tombstone for the word
        n = state.get("n", 0) + 1
        state.set("n", n)
        return {"word": value["word"], "n": n, "partition": message_context().partition}

    counts = by_word.apply(count, stateful=True)
    counts.to_topic(app.topic(COUNTS, key_serializer="str", value_serializer=value_serializer))


def summary(records: list[Record]) -> list[tuple[Any, Any]]:
    return [(r.key, r.value) for r in records]


def test_group_by_count_gives_exact_outputs_in_order():
    with TestDriver(count_words) as driver:
        for word in ["a", "b", "a", "a"]:
            driver.pipe(WORDS, "line-1", {"word": word}, timestamp=7)
        records = driver.read(COUNTS)
    assert summary(records) == [
        ("a", {"word": "a", "n": 1, "partition": 0}),
        ("b", {"word": "b", "n": 1, "partition": 0}),
        ("a", {"word": "a", "n": 2, "partition": 0}),
        ("a", {"word": "a", "n": 3, "partition": 0}),
    ]
    assert [(r.timestamp, r.headers, r.raw_key) for r in records[:1]] == [(7, [], b"a")]


def test_repartitioned_state_lives_on_the_murmur2_partition_of_the_new_key():
    words = ["Inbox", "Homepage", "a", "abc", "Inbox"]
    with TestDriver(count_words, partitions=5) as driver:
        # Different input partitions; the repartition by word must bring each word together.
        for i, word in enumerate(words):
            driver.pipe(WORDS, f"line-{i}", {"word": word}, partition=i)
        records = driver.read(COUNTS)
    expected_partitions = [partition_for(w.encode(), 5) for w in words]
    assert [r.value["partition"] for r in records] == expected_partitions
    assert [r.partition for r in records] == expected_partitions
    # Known figures from Kafka's own murmur2 (see test_partitioning): not all on one partition.
    assert expected_partitions == [1, 3, 4, 2, 1]
    assert [r.value["n"] for r in records] == [1, 1, 1, 1, 2]


def test_pipe_without_partition_uses_the_key_murmur2_partition():
    seen: list[int] = []

    def setup(app: Application) -> None:
        sdf = app.dataframe(app.topic("in", key_deserializer="str", value_deserializer="str"))
        sdf.update(lambda _value: seen.append(message_context().partition))

    with TestDriver(setup, partitions=5) as driver:
        driver.pipe("in", "Homepage", "x")
        driver.pipe("in", None, "y")  # a null key has no hash: partition 0
    assert seen == [3, 0]


def test_tombstones_read_back_as_none():
    def setup(app: Application) -> None:
        count_words(app, TombstoneJSONSerializer())

    with TestDriver(setup) as driver:
        driver.pipe(WORDS, "k", {"word": "a"})
        driver.pipe(WORDS, "k", {"word": "a", "forget": True})
        driver.pipe(WORDS, "k", {"word": "a"})
        records = driver.read(COUNTS)
    assert summary(records) == [
        ("a", {"word": "a", "n": 1, "partition": 0}),
        ("a", None),
        ("a", {"word": "a", "n": 1, "partition": 0}),
    ]
    assert (records[1].raw_key, records[1].raw_value) == (b"a", None)


def test_quix_json_serializer_writes_none_as_json_null_not_a_tombstone():
    """The driver shows what Kafka would get: Quix's plain JSON serializer writes ``null``."""
    with TestDriver(count_words) as driver:
        driver.pipe(WORDS, "k", {"word": "a", "forget": True})
        (record,) = driver.read(COUNTS)
    assert (record.value, record.raw_value) == (None, b"null")


def test_read_consumes_and_leaves_other_topics_alone():
    def setup(app: Application) -> None:
        sdf = app.dataframe(app.topic("in", value_deserializer="json"))
        sdf.to_topic(app.topic("left", value_serializer="json"))
        sdf.to_topic(app.topic("right", value_serializer="json"))

    with TestDriver(setup) as driver:
        driver.pipe("in", "k", {"x": 1})
        assert [r.value for r in driver.read("left")] == [{"x": 1}]
        assert driver.read("left") == []
        driver.pipe("in", "k", {"x": 2})
        assert [r.value for r in driver.read("right")] == [{"x": 1}, {"x": 2}]
        assert [r.value for r in driver.read("left")] == [{"x": 2}]
        assert driver.read_all() == []


def test_state_survives_commit_and_a_restart_on_the_same_state_dir(tmp_path: Path):
    with TestDriver(count_words, state_dir=tmp_path) as driver:
        driver.pipe(WORDS, "k", {"word": "a"})
        driver.commit()
        driver.pipe(WORDS, "k", {"word": "a"})
        assert [r.value["n"] for r in driver.read(COUNTS)] == [1, 2]
        driver.commit()
        driver.pipe(WORDS, "k", {"word": "b"})  # never committed: lost with the process
    with TestDriver(count_words, state_dir=tmp_path) as driver:
        driver.pipe(WORDS, "k", {"word": "a"})
        driver.pipe(WORDS, "k", {"word": "b"})
        assert [(r.key, r.value["n"]) for r in driver.read(COUNTS)] == [("a", 3), ("b", 1)]


def test_pipe_order_across_two_topics_is_processing_order():
    def setup(app: Application) -> None:
        merged = app.topic("merged", key_serializer="str", value_serializer="str")
        a = app.dataframe(app.topic("a", key_deserializer="str", value_deserializer="str"))
        # a goes through a repartition: its output must still come before b's next record.
        a.group_by(lambda v: v, name="self", key_serializer="str", key_deserializer="str").to_topic(
            merged
        )
        b = app.dataframe(app.topic("b", key_deserializer="str", value_deserializer="str"))
        b.to_topic(merged)

    with TestDriver(setup, partitions=3) as driver:
        for topic, value in [("a", "a1"), ("b", "b1"), ("b", "b2"), ("a", "a2"), ("b", "b3")]:
            driver.pipe(topic, "k", value)
        assert [r.value for r in driver.read("merged")] == ["a1", "b1", "b2", "a2", "b3"]


def test_headers_and_timestamps_pass_through_and_bytes_stay_bytes():
    def setup(app: Application) -> None:
        sdf = app.dataframe(app.topic("raw", key_deserializer="bytes", value_deserializer="bytes"))
        sdf.to_topic(app.topic("copy", key_serializer="bytes", value_serializer="bytes"))

    with TestDriver(setup) as driver:
        driver.pipe("raw", b"\x00k", b"\xff\xfe", timestamp=42, headers=[("h", b"1")])
        (record,) = driver.read("copy")
    assert (record.key, record.value, record.timestamp, record.headers) == (
        b"\x00k",
        b"\xff\xfe",
        42,
        [("h", b"1")],
    )


def test_to_bytes_encodes_what_tests_write():
    assert to_bytes(None) is None
    assert to_bytes(b"\x01") == b"\x01"
    assert to_bytes("é") == "é".encode()
    assert to_bytes({"a": [1, 2]}) == b'{"a":[1,2]}'
    assert to_bytes(5) == b"5"
