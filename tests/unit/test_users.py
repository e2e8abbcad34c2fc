"""streams.users through the in-memory driver: the cleaned users table with ksqlDB's filter
semantics on a table (tombstones for users who leave it, nothing for users never in it).

topic3's Avro is written with the users source's schema and confluent_kafka's own
AvroSerializer against its in-memory ``mock://`` registry client, injected through
``UsersConfig.registry``; tests/integration/test_users_country_apps.py does the same through
the real registry.
"""

from __future__ import annotations

import httpx
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from clients.retry import Unreachable
from contracts.users_schema import SCHEMA
from streams.testing import TestDriver
from streams.users import UsersConfig, avro_parser, setup

USERS, CLEANED, DLQ = "topic3_Users", "topic4", "pageview_streams_dead_letter"


class Users:
    """The driver plus an Avro writer for topic3, as the users source writes it."""

    def __init__(self, driver: TestDriver, registry: SchemaRegistryClient) -> None:
        self.driver = driver
        self._serialize = AvroSerializer(registry, SCHEMA)

    def put(self, user_id: int, age=30, gender="Female", country="Thailand", sub="Gold") -> None:
        row = {
            "user_id": user_id,
            "age": age,
            "gender": gender,
            "country": country,
            "subscription": sub,
        }
        ctx = SerializationContext(USERS, MessageField.VALUE)
        self.driver.pipe(USERS, str(user_id), self._serialize(row, ctx), timestamp=1000)

    def delete(self, user_id: int) -> None:
        self.driver.pipe(USERS, str(user_id), None, timestamp=1000)

    def table(self) -> list[tuple]:
        return [(r.raw_key.decode(), r.value) for r in self.driver.read(CLEANED)]


@pytest.fixture
def users():
    registry = SchemaRegistryClient.new_client({"url": "mock://users"})
    with TestDriver(lambda app: setup(app, UsersConfig(registry)), partitions=5) as driver:
        yield Users(driver, registry)


def row(user_id, age=30, gender="Female", country="Thailand", sub="Gold") -> dict:
    return {
        "user_id": user_id,
        "age": age,
        "gender": gender,
        "country": country,
        "subscription": sub,
    }


def test_complete_rows_enter_the_table_and_updates_replace_them(users):
    users.put(1)
    users.put(2, country="Vietnam")
    users.put(1, age=31)
    assert users.table() == [("1", row(1)), ("2", row(2, country="Vietnam")), ("1", row(1, 31))]


def test_a_row_that_gains_a_null_leaves_the_table_with_a_tombstone(users):
    users.put(1)
    users.put(1, country=None)
    users.put(1, country=None, sub=None)  # already out: nothing more
    users.put(1, country="Singapore")  # back in
    assert users.table() == [("1", row(1)), ("1", None), ("1", row(1, country="Singapore"))]


def test_a_deleted_user_leaves_the_table_with_a_tombstone(users):
    users.put(7)
    users.delete(7)
    users.delete(7)
    assert users.table() == [("7", row(7)), ("7", None)]


def test_a_user_never_in_the_table_emits_nothing(users):
    users.put(3, age=None)
    users.put(3, gender=None)
    users.delete(3)
    assert users.table() == []
    assert users.driver.read(DLQ) == []


def test_tombstones_are_real_kafka_tombstones(users):
    users.put(5)
    users.delete(5)
    records = users.driver.read(CLEANED)
    assert records[1].raw_value is None
    assert records[1].raw_key == b"5"


def test_state_survives_a_commit(users):
    users.put(9)
    users.driver.commit()
    users.delete(9)
    assert users.table() == [("9", row(9)), ("9", None)]


@pytest.mark.parametrize(
    ("key", "value", "error_type", "reason"),
    [
        (None, b"\x00\x00\x00\x00\x01\x02", "NullKey", "null key (expected the user_id)"),
        ("4", b"not avro at all", "BadAvro", "value is not Confluent Avro"),
        ("4", b"\x00\x00\x00\x03\xe7\x02", "UnknownSchema", "schema not in the registry"),
    ],
)
def test_bad_records_go_to_the_dead_letter_topic(users, key, value, error_type, reason):
    users.driver.pipe(USERS, key, value, headers=[("origin", b"jdbc")])
    users.put(1)  # processing goes on
    [dead] = users.driver.read(DLQ)
    headers = dict(dead.headers)
    assert (dead.raw_key, dead.raw_value) == (None if key is None else key.encode(), value)
    assert headers["error.type"] == error_type.encode()
    assert headers["error"].decode().startswith(reason)
    assert headers["origin"] == b"jdbc"
    assert users.table() == [("1", row(1))]


def test_a_key_that_is_not_the_rows_user_id_is_rejected(users):
    ctx = SerializationContext(USERS, MessageField.VALUE)
    users.driver.pipe(USERS, "2", users._serialize(row(3), ctx))
    [dead] = users.driver.read(DLQ)
    assert dict(dead.headers)["error"] == b"key '2' is not the row's user_id 3"
    assert users.table() == []


def test_an_unreachable_registry_is_waited_out_then_stops_the_app():
    """Not the record's fault: never a dead letter; retried, then an error that stops the app."""
    calls = []

    def flaky(value: bytes, _ctx: object) -> dict:
        calls.append(value)
        if len(calls) < 3:
            raise httpx.ConnectError("connection refused")
        return {"user_id": 1, "age": 3, "gender": "F", "country": "FR", "subscription": "Gold"}

    parse = avro_parser(flaky, "topic3_Users", registry_retry_s=5)
    assert parse(b"avro", b"1") == {
        "user_id": 1,
        "age": 3,
        "gender": "F",
        "country": "FR",
        "subscription": "Gold",
    }
    assert len(calls) == 3

    def down(_value: bytes, _ctx: object) -> dict:
        raise httpx.ConnectError("connection refused")

    with pytest.raises(Unreachable, match=r"Schema Registry unreachable .*SCHEMA_REGISTRY_RETRY_S"):
        avro_parser(down, "topic3_Users", registry_retry_s=0.05)(b"avro", b"1")
