"""No single record stops a processor: each kind of odd input, through the real ``setup()`` in
the test driver, is dead-lettered (or counted, where it is a valid page view) and every good
record after it is counted exactly."""

from __future__ import annotations

import io
import json
import struct
import time

import fastavro
import pytest
from quixstreams import Application

from contracts import topics as topic_names
from contracts.users_schema import SCHEMA
from streams import country, users, windows
from streams.__main__ import setup as setup_all
from streams.testing import TestDriver

T0 = 1_700_000_100_000  # a multiple of 5 minutes
PAGEVIEWS, DLQ = topic_names.PAGEVIEWS, topic_names.DEAD_LETTER


def view(session: str, ts: int, source: str = "Inbox", **extra: object) -> bytes:
    body = {"session_id": session, "user_id": 1, "source": source, "event_timestamp": ts}
    return json.dumps({**body, **extra}).encode()


def tumbling_counts(driver: TestDriver) -> dict[str, int]:
    """Latest topic6 count per window key."""
    return {r.key: r.value["pageview_count"] for r in driver.read(topic_names.TUMBLING)}


def letters(driver: TestDriver) -> list[dict[str, bytes]]:
    return [dict(r.headers) for r in driver.read(DLQ)]


@pytest.fixture
def all_three():
    """users + country + windows in one app, as ``python -m streams`` runs them."""

    def setup(app: Application) -> None:
        registry = FakeRegistry()
        setup_all(
            app,
            users.UsersConfig(registry=registry),  # type: ignore[arg-type]
            country.CountryConfig(),
            windows.WindowsConfig(),
        )

    with TestDriver(setup, partitions=5) as driver:
        yield driver


class FakeRegistry:
    """The one schema topic3 uses, by id 1 (the registry itself is tested on the native stack;
    here the Avro bodies are what is under test)."""

    def get_schema(self, schema_id: int, *args: object, **kwargs: object) -> object:
        from confluent_kafka.schema_registry import Schema

        assert schema_id == 1
        return Schema(SCHEMA, "AVRO")


def avro(body: bytes) -> bytes:
    return struct.pack(">bI", 0, 1) + body


def good_user(user_id: int) -> bytes:
    out = io.BytesIO()
    row = {"user_id": user_id, "age": 30, "gender": "F", "country": "FR", "subscription": "Gold"}
    fastavro.schemaless_writer(out, fastavro.parse_schema(json.loads(SCHEMA)), row)
    return avro(out.getvalue())


def test_a_view_hours_ahead_of_the_clock_is_dead_lettered_and_closes_no_window(all_three):
    future = int(time.time() * 1000) + 2 * 3_600_000
    all_three.pipe(PAGEVIEWS, "bad", view("bad", future))
    for i in range(100):
        all_three.pipe(PAGEVIEWS, f"s{i}", view(f"s{i}", T0 + i))
    # One dead letter: the record fails in the first processor that reads it.
    (letter,) = letters(all_three)
    assert letter["error.type"] == b"InvalidTimestamp"
    assert b"ahead of the wall clock" in letter["error"]
    assert letter["stage"] == b"validate"
    assert tumbling_counts(all_three) == {f"Inbox|{T0}": 100}
    assert all_three.read(topic_names.LATE) == []


def test_a_field_named_like_an_internal_marker_is_just_ignored(all_three):
    all_three.pipe(PAGEVIEWS, "odd", view("odd", T0, reason="mine", pageview={"x": 1}))
    for i in range(100):
        all_three.pipe(PAGEVIEWS, f"s{i}", view(f"s{i}", T0 + i))
    assert letters(all_three) == []
    assert tumbling_counts(all_three) == {f"Inbox|{T0}": 101}
    country_counts = {
        r.key: r.value["pageview_count"] for r in all_three.read(topic_names.PAGEVIEWS_BY_COUNTRY)
    }
    assert country_counts == {f"unknown|{T0}": 101}


def test_a_600_kb_field_is_ignored_and_a_600_kb_source_is_dead_lettered(all_three):
    all_three.pipe(PAGEVIEWS, "wide", view("wide", T0, blob="x" * 600_000))
    all_three.pipe(PAGEVIEWS, "long", view("long", T0, source="y" * 600_000))
    for i in range(100):
        all_three.pipe(PAGEVIEWS, f"s{i}", view(f"s{i}", T0 + i))
    (letter,) = [r for r in all_three.read(DLQ)]
    assert letter.key == b"long"
    assert len(letter.raw_value) == len(view("long", T0, source="y" * 600_000))
    assert dict(letter.headers)["error"] == b"source is 600000 characters long, more than 1024"
    assert tumbling_counts(all_three) == {f"Inbox|{T0}": 101}


@pytest.mark.parametrize(
    "body, why",
    [
        (b"\x02\x0a", "union index 5 of age (two branches)"),
        (b"\x02\x00\x00\x00\x7f", "union index out of range, later column"),
        (b"\x02", "truncated"),
        (b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", "varint overflow"),
    ],
)
def test_a_corrupt_avro_user_is_dead_lettered_and_the_table_goes_on(all_three, body, why):
    all_three.pipe(topic_names.USERS, "1", avro(body))
    all_three.pipe(topic_names.USERS, "2", good_user(2))
    (letter,) = letters(all_three)
    assert letter["error.type"] == b"BadAvro", why
    assert letter["processor"] == b"streams.users"
    assert [r.raw_key for r in all_three.read(topic_names.CLEANED_USERS)] == [b"2"]


@pytest.mark.parametrize(
    "key, value, error_type",
    [
        (b"\xff\xfe", b'{"country": "FR", "age": 3}', b"BadKey"),
        (b"3", b"{not json", b"MalformedJson"),
        (b"3", b"[1, 2]", b"WrongShape"),
        (b"3", b'{"country": 5}', b"BadField"),
        (b"3", b'{"country": "FR", "age": "old"}', b"BadField"),
        (b"3", b'{"country": "' + b"F" * 1025 + b'"}', b"BadField"),
    ],
)
def test_a_bad_cleaned_user_is_dead_lettered_by_the_join(all_three, key, value, error_type):
    all_three.pipe(topic_names.CLEANED_USERS, key, value)
    (record,) = all_three.read(DLQ)
    assert (record.raw_key, record.raw_value) == (key, value)
    headers = dict(record.headers)
    assert headers["error.type"] == error_type
    assert (headers["processor"], headers["source.topic"]) == (b"streams.country", b"topic4")
