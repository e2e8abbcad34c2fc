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
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from pipeline import topics as topic_names
from pipeline.settings import KafkaSettings, SchemaRegistrySettings, env, env_int
from producers.kafka import CheckedProducer
from producers.mysql import DEFAULT_TABLE, connect, ensure_table, table_name

logger = logging.getLogger("producers.users_source")

POSITION_HEADER = "source.position"
SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Users",
        "namespace": "pageview_streams",
        "fields": [
            {"name": "user_id", "type": "long"},
            {"name": "age", "type": ["null", "int"], "default": None},
            {"name": "gender", "type": ["null", "string"], "default": None},
            {"name": "country", "type": ["null", "string"], "default": None},
            {"name": "subscription", "type": ["null", "string"], "default": None},
        ],
    }
)


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


def committed_position(topic: str) -> Position:
    """The highest position in the committed tail of ``topic`` (the start if none)."""
    consumer = Consumer(
        {
            "bootstrap.servers": KafkaSettings.from_env().bootstrap_servers,
            "group.id": f"users-source-resume-{uuid.uuid4().hex[:8]}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    best = Position()
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        for partition in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
            if high <= low:
                continue
            # Transaction markers take offsets too: the last few hundred hold the last batch's
            # records of this partition.
            start = max(low, high - 500)
            consumer.assign([TopicPartition(topic, partition, start)])
            while True:
                messages = consumer.consume(500, timeout=2.0)
                if not messages:
                    break
                for message in messages:
                    if message.error():
                        continue
                    raw = dict(message.headers() or []).get(POSITION_HEADER)
                    if raw is not None:
                        position = Position.decode(raw)
                        if position.key() > best.key():
                            best = position
                if messages[-1].offset() >= high - 1:
                    break
    finally:
        consumer.close()
    return best


def _epoch_ms(value: datetime) -> int:
    return int(value.replace(tzinfo=UTC).timestamp() * 1000)


class UsersSource:
    def __init__(self, table: str, topic: str, batch: int, lag_ms: int) -> None:
        self.table = table_name(table)
        self.topic = topic
        self.batch = batch
        self.lag_ms = lag_ms
        self.conn = connect()
        with self.conn.cursor() as cur:
            cur.execute("SET time_zone = '+00:00'")  # updated_at read and compared in UTC
        ensure_table(self.conn, self.table)
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

    def _changes(self) -> tuple[list[tuple], list[tuple]]:
        p = self.position
        with self.conn.cursor() as cur:
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

    def poll_once(self) -> int:
        """Send one batch of changes in one transaction; return how many records."""
        rows, deletions = self._changes()
        if not rows and not deletions:
            return 0
        self.kafka.producer.begin_transaction()
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
            self.kafka.produce(
                self.topic,
                str(user_id),
                self.serialize(value, self.ctx),
                timestamp=_epoch_ms(updated_at),
                headers=[(POSITION_HEADER, position.encode())],
            )
        for deleted_id, user_id, deleted_at in deletions:
            position = Position(position.updated_at, position.user_id, deleted_id)
            self.kafka.produce(
                self.topic,
                str(user_id),
                None,
                timestamp=_epoch_ms(deleted_at),
                headers=[(POSITION_HEADER, position.encode())],
            )
        self.kafka.producer.flush(60)
        self.kafka.check()
        self.kafka.producer.commit_transaction(60)
        self.position = position
        return len(rows) + len(deletions)

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
        "--table", default=DEFAULT_TABLE, help="MySQL table (env USERS_TABLE; default Users)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=env("LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    source = UsersSource(args.table, topic_names.USERS, args.batch, args.lag_ms)
    total = source.run(args.once, args.poll_interval)
    logger.info("done: %d change(s) sent", total)


if __name__ == "__main__":
    main()
