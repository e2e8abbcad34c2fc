"""Dead letters: rejected records kept byte for byte with why and where from; the rest go on."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import KafkaError, KafkaException
from quixstreams import Application
from quixstreams.models.messagecontext import MessageContext

from clients.logs import RateLimitedLog
from contracts import topics as topic_names
from streams.operators.deadletter import (
    MAX_KEY_BYTES,
    MAX_LETTER_BYTES,
    Rejected,
    dead_letter_topic,
    is_record_error,
    letter,
    split_rejected,
)
from streams.testing import TestDriver


def parse_number(value: bytes | None, key: bytes | None) -> int | Rejected:
    if value is None:
        return Rejected("null value", "NullValue")
    if not value.isdigit():
        return Rejected(f"not a number: {value!r}", "NotANumber")
    return int(value)


def setup(app: Application) -> None:
    numbers = app.topic("numbers", key_deserializer="bytes", value_deserializer="bytes")
    parsed = split_rejected(
        app.dataframe(numbers), parse_number, dead_letter_topic(app, "test.numbers"), "test.numbers"
    )
    parsed.apply(lambda n: n * 2).to_topic(app.topic("doubled", value_serializer="json"))


@pytest.fixture
def driver():
    with TestDriver(setup, partitions=3) as d:
        yield d


def test_good_records_pass_parsed_and_bad_ones_keep_their_bytes_and_headers(driver):
    driver.pipe("numbers", b"k1", b"21", timestamp=5, partition=0)
    driver.pipe(
        "numbers", b"\xffk2", b"\x00garbage", timestamp=6, headers=[("trace", b"t-1")], partition=1
    )
    driver.pipe("numbers", b"k3", None, timestamp=7, partition=2)
    driver.pipe("numbers", b"k4", b"4", timestamp=8, partition=0)
    assert [(r.raw_key, r.value, r.timestamp) for r in driver.read("doubled")] == [
        (b"k1", 42, 5),
        (b"k4", 8, 8),
    ]
    # The dead-letter topic is bytes both ways: read back exactly as piped in.
    letters = driver.read(topic_names.DEAD_LETTER)
    assert [(r.key, r.value, r.timestamp) for r in letters] == [
        (b"\xffk2", b"\x00garbage", 6),
        (b"k3", None, 7),
    ]
    assert letters[0].headers == [
        ("trace", b"t-1"),
        ("error", b"not a number: b'\\x00garbage'"),
        ("error.type", b"NotANumber"),
        ("source.topic", b"numbers"),
        ("source.partition", b"1"),
        ("source.offset", b"0"),
        ("processor", b"test.numbers"),
        ("stage", b"validate"),
    ]
    assert letters[1].headers == [
        ("error", b"null value"),
        ("error.type", b"NullValue"),
        ("source.topic", b"numbers"),
        ("source.partition", b"2"),
        ("source.offset", b"0"),
        ("processor", b"test.numbers"),
        ("stage", b"validate"),
    ]


def test_rejections_are_logged_with_reason_and_position(driver, caplog):
    with caplog.at_level(logging.WARNING, logger="streams.operators.deadletter"):
        driver.pipe("numbers", b"k", b"x", partition=1)
        driver.pipe("numbers", b"k", b"y", partition=1)
    assert caplog.messages == [
        "test.numbers: dead letter #1: not a number: b'x' (NotANumber) at numbers[1]@0",
        "test.numbers: dead letter #2: not a number: b'y' (NotANumber) at numbers[1]@1",
    ]


def test_rate_limited_log_logs_the_first_ten_then_every_thousandth(caplog):
    log = RateLimitedLog("thing", logging.getLogger("test.ratelimit"))
    with caplog.at_level(logging.WARNING, logger="test.ratelimit"):
        for i in range(1, 2001):
            log("item %d", i)
    assert log.count == 2000
    assert caplog.messages == [
        *(f"thing #{i}: item {i}" for i in range(1, 11)),
        "thing #1000: item 1000",
        "thing #2000: item 2000",
    ]


# --- records that fail after validation --------------------------------------------------------


def check_divisible(n: int) -> int:
    if n == 7:
        raise OSError("disk unreachable")  # not the record's fault
    return 100 % n  # 0 fails


def setup_failing_stages(app: Application) -> None:
    """Numbers are validated, checked (0 fails), then written as n kilobytes."""
    numbers = app.topic("numbers", key_deserializer="bytes", value_deserializer="bytes")
    parsed = split_rejected(
        app.dataframe(numbers), parse_number, dead_letter_topic(app, "test.numbers"), "test.numbers"
    )
    out = parsed.apply(lambda n: (check_divisible(n), n)[1])
    out = out.apply(lambda n: "x" * (n * 1000))
    out.to_topic(app.topic("padded", value_serializer="str"))


@pytest.fixture
def failing():
    with TestDriver(setup_failing_stages) as d:
        yield d


def test_a_record_that_fails_in_a_later_stage_becomes_its_dead_letter(failing):
    failing.pipe("numbers", b"k1", b"0", timestamp=5, headers=[("trace", b"t")])
    failing.pipe("numbers", b"k2", b"4", timestamp=6)
    assert [len(r.value) for r in failing.read("padded")] == [4000]
    (letter,) = failing.read(topic_names.DEAD_LETTER)
    assert (letter.key, letter.value, letter.timestamp) == (b"k1", b"0", 5)
    headers = dict(letter.headers)
    assert headers["trace"] == b"t"
    stage = f"{__name__}.check_divisible".encode()
    assert headers["error"] == b"ZeroDivisionError: integer modulo by zero (in " + (stage + b")")
    assert headers["error.type"] == b"ZeroDivisionError"
    assert headers["stage"] == stage
    assert (headers["source.topic"], headers["source.offset"]) == (b"numbers", b"0")
    assert headers["processor"] == b"test.numbers"


def test_a_record_the_producer_refuses_becomes_its_dead_letter(failing):
    failing.pipe("numbers", b"big", b"1000")  # a 1,000,000-byte output: over the limit
    failing.pipe("numbers", b"ok", b"10")
    assert [len(r.value) for r in failing.read("padded")] == [10_000]
    (letter,) = failing.read(topic_names.DEAD_LETTER)
    assert letter.value == b"1000"
    headers = dict(letter.headers)
    assert headers["error.type"] == b"KafkaException"
    assert b"MSG_SIZE_TOO_LARGE" in headers["error"]


def test_an_error_that_is_not_the_records_fault_stops_the_app(failing):
    with pytest.raises(OSError, match="disk unreachable"):
        failing.pipe("numbers", b"k", b"7")
    assert failing.read(topic_names.DEAD_LETTER) == []


def test_a_dead_letter_always_fits_in_a_record():
    origin = MessageContext("t", 3, 42, 0)
    huge_headers = [(f"h{i}", b"v" * 1000) for i in range(100)]
    key, value, headers = letter(
        b"k" * 100_000,
        b"v" * 2_000_000,
        huge_headers,
        reason="r" * 50_000,
        error_type="BadField",
        origin=origin,
        processor="p",
        stage="validate",
    )
    size = len(key) + len(value) + sum(len(n) + len(v) for n, v in headers)
    assert size <= MAX_LETTER_BYTES
    named = dict(headers)
    assert named["key.truncated"] == b"100000"
    assert named["value.truncated"] == b"2000000"
    assert named["headers.dropped"] == b"100"
    assert named["error"].endswith(b"... [cut: 50000 characters]")
    assert len(named["error"]) < 1100
    assert key == b"k" * MAX_KEY_BYTES and value == b"v" * len(value)
    # What fits is kept whole, with no truncation headers.
    key, value, headers = letter(
        b"k",
        b"v" * 500_000,
        [("a", b"b")],
        reason="r",
        error_type="T",
        origin=origin,
        processor="p",
        stage="s",
    )
    assert (key, value) == (b"k", b"v" * 500_000)
    assert [name for name, _ in headers] == [
        "a",
        "error",
        "error.type",
        "source.topic",
        "source.partition",
        "source.offset",
        "processor",
        "stage",
    ]


@pytest.mark.parametrize(
    "exc, expected",
    [
        (ValueError("x"), True),
        (KeyError("x"), True),
        (IndexError("x"), True),
        (ZeroDivisionError(), True),
        (RecursionError(), True),
        (KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)), True),
        (KafkaException(KafkaError(KafkaError._TRANSPORT)), False),
        (KafkaException(KafkaError(KafkaError._FENCED)), False),
        (ConnectionError("registry down"), False),
        (TimeoutError(), False),
        (OSError("disk"), False),
        (MemoryError(), False),
        (RuntimeError("?"), False),
    ],
)
def test_which_errors_are_the_records_fault(exc: Exception, expected: bool) -> None:
    assert is_record_error(exc) is expected
