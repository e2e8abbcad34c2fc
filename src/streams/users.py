"""``python -m streams.users``: the cleaned users table (topic3_Users -> topic4).

Replaces ksqlDB's::

    CREATE TABLE CLEANED_USERS AS SELECT * FROM USERS
      WHERE AGE IS NOT NULL AND GENDER IS NOT NULL AND COUNTRY IS NOT NULL
        AND SUBSCRIPTION IS NOT NULL;

topic3 is a table (the latest row per user_id, as the JDBC source wrote it: key = user_id as a
string, value = Confluent Avro with nullable columns, a tombstone when a user is deleted). The
output is a table too, keyed by user_id, JSON with lower-case fields, kept by
:mod:`streams.operators.table` (updates, and tombstones for users who leave it). Records that
are not a users row at all (NULL key, bad Avro, key not the row's user_id, wrongly typed
columns) go to the dead-letter topic with the reason.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext, SerializationError
from quixstreams import Application
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.models import Topic

from clients.logs import RateLimitedLog
from clients.retry import registry_unreachable, retry_unreachable
from clients.settings import SchemaRegistrySettings, env
from contracts import topics as topic_names
from streams.app import add_app_arguments, create_app, run
from streams.operators.deadletter import Rejected, dead_letter_topic, split_rejected
from streams.operators.table import TombstoneJSONSerializer, filtered_table, table_filter

logger = logging.getLogger("streams.users")

PROCESSOR = "streams.users"
#: The columns that must all be non-NULL, and their types (user_id is the key column).
COLUMNS: dict[str, type] = {"age": int, "gender": str, "country": str, "subscription": str}


class Deleted:
    """A tombstone on topic3: the user was deleted."""

    __slots__ = ()


DELETED = Deleted()


@dataclass(frozen=True)
class UsersConfig:
    """``registry`` decodes topic3's Avro; None means the registry of SCHEMA_REGISTRY_URL.
    An unreachable registry is retried for ``registry_retry_s`` before the app stops."""

    registry: SchemaRegistryClient | None = field(default=None, compare=False)
    registry_retry_s: float = float(env("SCHEMA_REGISTRY_RETRY_S", "60"))

    def deserializer(self) -> AvroDeserializer:
        registry = self.registry or SchemaRegistrySettings.from_env().client()
        return AvroDeserializer(registry)


def avro_parser(
    deserializer: Callable[[bytes, SerializationContext], Any],
    topic: str,
    registry_retry_s: float = 60.0,
) -> Callable[[bytes | None, bytes | None], dict[str, Any] | Deleted | Rejected]:
    """A ``parse(value, key)`` for topic3: the user row, :data:`DELETED`, or why it is rejected.

    An unreachable registry is not the record's fault: it is retried for ``registry_retry_s``,
    then the error propagates (the app stops and restarts from its last commit) instead of
    dead-lettering good records.
    """
    ctx = SerializationContext(topic, MessageField.VALUE)

    def parse(value: bytes | None, key: bytes | None) -> dict[str, Any] | Deleted | Rejected:
        if key is None:
            return Rejected("null key (expected the user_id)", "NullKey")
        try:
            user_key = key.decode()
        except UnicodeDecodeError:
            return Rejected(f"key {key!r} is not UTF-8 text", "BadKey")
        if value is None:
            return DELETED
        try:
            row = retry_unreachable(
                "Schema Registry",
                lambda: deserializer(value, ctx),
                registry_unreachable,
                registry_retry_s,
                "SCHEMA_REGISTRY_RETRY_S",
            )
        except SchemaRegistryError as exc:
            if exc.http_status_code != 404:
                raise
            return Rejected(f"schema not in the registry: {exc}", "UnknownSchema")
        # fastavro raises IndexError for a union or enum index out of range, KeyError and
        # OverflowError on other corrupt bodies.
        except (
            SerializationError,
            ValueError,
            EOFError,
            TypeError,
            IndexError,
            KeyError,
            OverflowError,
        ) as exc:
            return Rejected(f"value is not Confluent Avro: {exc}", "BadAvro")
        return check_row(row, user_key)

    return parse


def check_row(row: Any, user_key: str) -> dict[str, Any] | Rejected:
    """The row as topic4 writes it (lower-case columns), or why it is not a users row."""
    if not isinstance(row, dict):
        return Rejected(f"value is not a record: {type(row).__name__}", "WrongShape")
    fields = {name.lower(): value for name, value in row.items()}
    user_id = fields.get("user_id")
    if not isinstance(user_id, int) or isinstance(user_id, bool):
        return Rejected(f"user_id must be an integer, got {user_id!r}", "BadField")
    if str(user_id) != user_key:
        return Rejected(f"key {user_key!r} is not the row's user_id {user_id}", "KeyMismatch")
    out: dict[str, Any] = {"user_id": user_id}
    for name, kind in COLUMNS.items():
        if name not in fields:
            return Rejected(f"column {name} is missing", "MissingField")
        value = fields[name]
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            return Rejected(f"{name} must be {kind.__name__} or null, got {value!r}", "BadField")
        out[name] = value
    return out


def passes(row: dict[str, Any]) -> bool:
    """The filter: every column non-NULL."""
    return all(row[name] is not None for name in COLUMNS)


def _log_filtered(row: dict[str, Any]) -> None:
    _filtered(
        "user %s has NULL columns (%s): not in the cleaned table",
        row["user_id"],
        ", ".join(name for name in COLUMNS if row[name] is None),
    )


_filtered = RateLimitedLog("filtered user", logger)


@dataclass(frozen=True)
class UsersTopics:
    users: Topic
    cleaned: Topic
    dead_letter: Topic


def build(sdf: StreamingDataFrame, config: UsersConfig, topics: UsersTopics) -> StreamingDataFrame:
    """Validate topic3's records and keep the table of users with no NULL column."""
    rows = split_rejected(
        sdf,
        avro_parser(config.deserializer(), topics.users.name, config.registry_retry_s),
        topics.dead_letter,
        PROCESSOR,
    )
    # The key passes through as received: the user_id string.
    return filtered_table(rows, table_filter(passes, _log_filtered)).to_topic(topics.cleaned)


def declare_topics(app: Application) -> UsersTopics:
    return UsersTopics(
        users=app.topic(topic_names.USERS, key_deserializer="bytes", value_deserializer="bytes"),
        cleaned=app.topic(
            topic_names.CLEANED_USERS,
            key_serializer="bytes",
            value_serializer=TombstoneJSONSerializer(),
            key_deserializer="str",
            value_deserializer="json",
        ),
        dead_letter=dead_letter_topic(app, PROCESSOR),
    )


def setup(app: Application, config: UsersConfig) -> None:
    """Declare the topics on ``app`` and build the pipeline: what main() and the tests run."""
    topics = declare_topics(app)
    build(app.dataframe(topics.users), config, topics)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m streams.users",
        description="Keep the table of users whose columns are all non-NULL (topic3_Users, "
        "Confluent Avro -> topic4, JSON), with tombstones for users who leave it. Topic names "
        "come from the TOPIC_* environment variables, the registry from SCHEMA_REGISTRY_URL.",
    )
    add_app_arguments(parser, "users")
    args = parser.parse_args(argv)
    app = create_app(args)
    setup(app, UsersConfig())
    run(app, args)


if __name__ == "__main__":
    main()
