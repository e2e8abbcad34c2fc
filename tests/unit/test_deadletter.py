"""Dead letters: rejected records kept byte for byte with why and where from; the rest go on."""

from __future__ import annotations

import logging

import pytest
from quixstreams import Application

from pipeline import topics as topic_names
from streams.deadletter import RateLimitedLog, Rejected, dead_letter_topic, split_rejected
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
        app.dataframe(numbers), parse_number, dead_letter_topic(app), "test.numbers"
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
    ]
    assert letters[1].headers == [
        ("error", b"null value"),
        ("error.type", b"NullValue"),
        ("source.topic", b"numbers"),
        ("source.partition", b"2"),
        ("source.offset", b"0"),
        ("processor", b"test.numbers"),
    ]


def test_rejections_are_logged_with_reason_and_position(driver, caplog):
    with caplog.at_level(logging.WARNING, logger="streams.deadletter"):
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
