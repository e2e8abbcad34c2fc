"""``python -m producers.users_source``: MySQL ``Users`` -> topic3_Users, as Confluent Avro.

Replaces the JDBC source connector: key = user_id as a string, value = Confluent Avro (magic
byte, schema id, body) through the Schema Registry, with nullable columns. Beyond the
connector's incrementing mode it picks up updated rows (``updated_at``, as its
timestamp+incrementing mode) and deletions (a trigger's log, see :mod:`producers.mysql`) as
tombstones, so that topic3 is a true table.

Resumable without a local file: each batch of rows is written in ONE Kafka transaction, and
every record carries the source position after it (``source.position`` header). On start the
source reads the committed tail of the topic and resumes after the highest position found. A
kill before a commit aborts the batch (invisible to read_committed readers) and it is sent
again; after a commit it is never sent again: each row change exactly once.

Rows are read up to ``now - --lag-ms`` only: a MySQL transaction still in flight may commit a
row with an earlier ``updated_at`` than rows already read; the lag gives it time to land, as
the JDBC connector's ``timestamp.delay.interval.ms`` does.

MySQL or the Schema Registry restarting is not fatal: a lost connection (or a registry that
does not answer) is retried with a growing pause, each retry logged, for up to
``--reconnect-timeout`` seconds, after which the process exits with an error for its
supervisor. Both are used before a batch's Kafka transaction begins and the position only
moves on a commit, so a retried read can neither skip nor repeat a change.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pymysql
from confluent_kafka import Message
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from clients.kafka import read_offsets, tail_consumer, watermarks
from clients.logs import setup_logging
from clients.retry import T, Unreachable, registry_unreachable, retry_unreachable
from clients.settings import KafkaSettings, SchemaRegistrySettings, env, env_int
from contracts import topics as topic_names
from contracts.users_schema import SCHEMA
from producers.kafka import CheckedProducer
from producers.mysql import DEFAULT_TABLE, connect, ensure_table, table_name

logger = logging.getLogger("producers.users_source")

POSITION_HEADER = "source.position"
RECONNECT_SETTING = "--reconnect-timeout / USERS_SOURCE_RECONNECT_S"


@dataclass(frozen=True)
class Position:
    """Where the source is: last (updated_at, user_id) sent, last deletion-log id sent."""

    updated_at: str = "1970-01-01 00:00:01.000000"
    user_id: int = 0
    deleted_id: int = 0

    def encode(self) -> bytes:
        return json.dumps([self.updated_at, self.user_id, self.deleted_id]).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Position:
        updated_at, user_id, deleted_id = json.loads(raw)
        return cls(updated_at, user_id, deleted_id)

    def key(self) -> tuple[str, int, int]:
        return self.updated_at, self.user_id, self.deleted_id


#: Offsets read back from a partition's end at first when looking for the resume point; the
#: window doubles until it holds a committed record with a position.
TAIL_WINDOW = 1024


def committed_position(topic: str) -> Position:
    """The position after the last committed batch in ``topic`` (the start if none).

    Positions grow from record to record, so the last committed record with a position of
    each partition holds that partition's highest, and the highest of those is where the last
    committed batch ended. That record is not always among a partition's last offsets: each
    source killed mid-batch leaves up to ``--batch`` aborted records there (read_committed
    skips them) and transaction markers take an offset each, so each partition is read back
    from its end in doubling windows until one holds a positioned record, or the partition's
    start is reached.
    """
    consumer = tail_consumer(
        KafkaSettings.from_env().bootstrap_servers, f"users-source-resume-{uuid.uuid4().hex[:8]}"
    )
    best = Position()
    try:
        for partition, offsets in watermarks(consumer, topic).items():
            end, window = offsets.stop, TAIL_WINDOW
            while end > offsets.start:
                start = max(offsets.start, end - window)
                found = _highest_position(
                    read_offsets(consumer, topic, {partition: range(start, end)})
                )
                if found is not None:
                    best = max(best, found, key=Position.key)
                    break
                end, window = start, window * 2
    finally:
        consumer.close()
    return best


def _highest_position(records: Iterable[Message]) -> Position | None:
    """The highest position among ``records``' position headers, None if none has one."""
    positions = (
        Position.decode(raw)
        for message in records
        if (raw := dict(message.headers() or []).get(POSITION_HEADER)) is not None
    )
    return max(positions, key=Position.key, default=None)


def _mysql_lost(exc: Exception) -> bool:
    """A lost or refused connection, a timeout or a server shutting down (not bad SQL)."""
    return isinstance(exc, pymysql.err.OperationalError | pymysql.err.InterfaceError)


def _epoch_ms(value: datetime) -> int:
    return int(value.replace(tzinfo=UTC).timestamp() * 1000)


class UsersSource:
    def __init__(self, table: str, topic: str, batch: int, lag_ms: int, reconnect_s: float) -> None:
        self.table = table_name(table)
        self.topic = topic
        self.batch = batch
        self.lag_ms = lag_ms
        self.reconnect_s = reconnect_s
        self.conn: pymysql.connections.Connection | None = None
        self._mysql(lambda conn: ensure_table(conn, self.table))
        registry = SchemaRegistrySettings.from_env().client()
        self.serialize = AvroSerializer(registry, SCHEMA)
        self.ctx = SerializationContext(topic, MessageField.VALUE)
        self.kafka = CheckedProducer(
            **{
                "transactional.id": env(
                    "USERS_SOURCE_TRANSACTIONAL_ID", f"pageview-streams-users-source-{self.table}"
                )
            }
        )
        # Fences an older instance with the same id, and aborts what it left open.
        self.kafka.producer.init_transactions(30)
        self.position = committed_position(topic)
        logger.info("resuming after %s", self.position)

    def _connection(self) -> pymysql.connections.Connection:
        if self.conn is None:
            conn = connect()
            with conn.cursor() as cur:
                cur.execute("SET time_zone = '+00:00'")  # updated_at read and compared in UTC
            self.conn = conn
        return self.conn

    def _mysql(self, work: Callable[[pymysql.connections.Connection], T]) -> T:
        """``work(connection)`` on a live connection: a lost one is dropped and made again."""

        def attempt() -> T:
            try:
                return work(self._connection())
            except Exception as exc:
                if _mysql_lost(exc) and self.conn is not None:
                    # Already closed by PyMySQL after most losses; closing again is harmless.
                    with contextlib.suppress(pymysql.err.Error, OSError):
                        self.conn.close()
                    self.conn = None
                raise

        return retry_unreachable("MySQL", attempt, _mysql_lost, self.reconnect_s, RECONNECT_SETTING)

    def _changes(self, conn: pymysql.connections.Connection) -> tuple[list[tuple], list[tuple]]:
        p = self.position
        with conn.cursor() as cur:
            cur.execute(
                f"SELECT user_id, age, gender, country, subscription, updated_at "
                f"FROM `{self.table}` WHERE (updated_at, user_id) > (%s, %s) "
                f"AND updated_at < NOW(6) - INTERVAL %s MICROSECOND "
                f"ORDER BY updated_at, user_id LIMIT %s",
                (p.updated_at, p.user_id, self.lag_ms * 1000, self.batch),
            )
            rows = list(cur.fetchall())
            cur.execute(
                f"SELECT id, user_id, deleted_at FROM `{self.table}_deleted` WHERE id > %s "
                f"AND deleted_at < NOW(6) - INTERVAL %s MICROSECOND ORDER BY id LIMIT %s",
                (p.deleted_id, self.lag_ms * 1000, self.batch),
            )
            deletions = list(cur.fetchall())
        return rows, deletions

    def _records(
        self, rows: list[tuple], deletions: list[tuple]
    ) -> list[tuple[str, bytes | None, int, Position]]:
        """(key, value, timestamp, position after it) of each change, values serialized."""
        changes: list[tuple[str, dict[str, Any] | None, int, Position]] = []
        position = self.position
        for user_id, age, gender, country, subscription, updated_at in rows:
            position = Position(
                updated_at.strftime("%Y-%m-%d %H:%M:%S.%f"), user_id, position.deleted_id
            )
            value = {
                "user_id": user_id,
                "age": age,
                "gender": gender,
                "country": country,
                "subscription": subscription,
            }
            changes.append((str(user_id), value, _epoch_ms(updated_at), position))
        for deleted_id, user_id, deleted_at in deletions:
            position = Position(position.updated_at, position.user_id, deleted_id)
            changes.append((str(user_id), None, _epoch_ms(deleted_at), position))
        # The registry is asked once (registering the schema) and the answer cached: only a
        # source started while it is down waits here.
        values = retry_unreachable(
            "Schema Registry",
            lambda: [None if v is None else self.serialize(v, self.ctx) for _, v, _, _ in changes],
            registry_unreachable,
            self.reconnect_s,
            RECONNECT_SETTING,
        )
        return [
            (key, value, ts, position)
            for (key, _, ts, position), value in zip(changes, values, strict=True)
        ]

    def poll_once(self) -> int:
        """Send one batch of changes in one transaction; return how many records."""
        rows, deletions = self._mysql(self._changes)
        if not rows and not deletions:
            return 0
        # Everything that may wait on MySQL or the registry is done: the transaction only
        # ever holds a whole batch.
        records = self._records(rows, deletions)
        self.kafka.producer.begin_transaction()
        for key, value, timestamp, position in records:
            self.kafka.produce(
                self.topic,
                key,
                value,
                timestamp=timestamp,
                headers=[(POSITION_HEADER, position.encode())],
            )
        self.kafka.producer.flush(60)
        self.kafka.check()
        self.kafka.producer.commit_transaction(60)
        self.position = records[-1][3]
        return len(records)

    def run(self, once: bool, interval: float) -> int:
        total = 0
        while True:
            sent = self.poll_once()
            total += sent
            if sent:
                logger.info("sent %d change(s), %d in all; at %s", sent, total, self.position)
                continue
            if once:
                return total
            time.sleep(interval)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m producers.users_source",
        description="Copy MySQL's users table to topic3_Users as Confluent Avro (key user_id): "
        "new and updated rows, and tombstones for deleted users; exactly once per change, "
        "resuming from the position stored in the topic itself.",
    )
    parser.add_argument(
        "--once", action="store_true", help="send what there is, then exit (default: poll forever)"
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=float(env("USERS_SOURCE_POLL_S", "1")),
        help="seconds between polls when idle (env USERS_SOURCE_POLL_S)",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=env_int("USERS_SOURCE_BATCH", 1000),
        help="rows per poll and per Kafka transaction (env USERS_SOURCE_BATCH)",
    )
    parser.add_argument(
        "--lag-ms",
        type=int,
        default=env_int("USERS_SOURCE_LAG_MS", 1000),
        help="read only rows changed at least this long ago, so that MySQL "
        "transactions in flight cannot be skipped (env USERS_SOURCE_LAG_MS)",
    )
    parser.add_argument(
        "--reconnect-timeout",
        type=float,
        default=float(env("USERS_SOURCE_RECONNECT_S", "120")),
        help="seconds MySQL or the Schema Registry may stay unreachable (retried meanwhile) "
        "before the source exits with an error (env USERS_SOURCE_RECONNECT_S; default 120)",
    )
    parser.add_argument(
        "--table", default=DEFAULT_TABLE, help="MySQL table (env USERS_TABLE; default Users)"
    )
    args = parser.parse_args(argv)
    setup_logging()
    try:
        source = UsersSource(
            args.table, topic_names.USERS, args.batch, args.lag_ms, args.reconnect_timeout
        )
        total = source.run(args.once, args.poll_interval)
    except Unreachable as exc:
        logger.error("giving up: %s", exc)
        raise SystemExit(1) from None
    logger.info("done: %d change(s) sent", total)


if __name__ == "__main__":
    main()
