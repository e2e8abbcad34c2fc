"""The catalog ``run`` keeps in Kafka, as ksqlDB keeps its command topic: ``SHOW`` and
``DESCRIBE`` in another terminal, or on another machine, see what runs.

``run`` writes one record per source and per persistent query to a compacted topic
(``KSQL_CATALOG_TOPIC``, default ``_streams_ksql_catalog``), keyed ``source:<name>`` and
``query:<id>``, each naming the ``run``'s consumer-group prefix; the entries a previous ``run``
with the same prefix wrote and this one no longer has are deleted (tombstones). A query's state
is not stored: ``SHOW QUERIES`` asks its consumer group, so a query shows as running exactly
when instances of it are in its group.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from rich import box
from rich.console import Console
from rich.table import Table

from clients.settings import env
from streams.ksql.catalog import Source
from streams.ksql.compiler import Program

TOPIC = env("KSQL_CATALOG_TOPIC", "_streams_ksql_catalog")
KINDS = ("streams", "tables", "queries", "topics")


def entries(program: Program, group_prefix: str, passes: dict[str, str]) -> dict[str, dict]:
    """The catalog records of ``program`` run under ``group_prefix``; ``passes`` maps each
    query id to the pass (process, consumer group) it runs in."""
    out: dict[str, dict] = {}
    for source in program.catalog.sources.values():
        out[f"source:{source.name}"] = {**describe_source(source), "group_prefix": group_prefix}
    for query_id, query in program.queries.items():
        out[f"query:{query_id}"] = {
            "id": query_id,
            "sink": query.sink.name,
            "sink_topic": query.sink.topic,
            "sources": [source.name for source in query.inputs],
            "statement": program.texts.get(query_id, ""),
            "group": f"{group_prefix}-{passes[query_id]}",
            "group_prefix": group_prefix,
        }
    return out


def describe_source(source: Source) -> dict[str, Any]:
    return {
        "name": source.name,
        "kind": source.kind,
        "topic": source.topic,
        "key_format": source.key_format,
        "value_format": source.value_format,
        "window": None if source.window is None else source.window.kind,
        "columns": [{"name": c.name, "type": str(c.type), "key": c.key} for c in source.columns],
        "query": source.query_id,
    }


def publish(bootstrap: str, records: dict[str, dict], group_prefix: str) -> None:
    """Write ``records``, and delete what this group prefix wrote before and no longer has."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    if TOPIC not in admin.list_topics(timeout=30).topics:
        future = admin.create_topics(
            [NewTopic(TOPIC, 1, -1, config={"cleanup.policy": "compact"})]
        )[TOPIC]
        try:
            future.result(timeout=30)
        except KafkaException as exc:  # another run created it meanwhile
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    stale = [
        key
        for key, value in read(bootstrap).items()
        if value.get("group_prefix") == group_prefix and key not in records
    ]
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for key, value in records.items():
        producer.produce(TOPIC, orjson.dumps(value), key.encode())
    for key in stale:
        producer.produce(TOPIC, None, key.encode())
    if producer.flush(30):
        raise KafkaException(f"the catalog was not written to {TOPIC}")


def read(bootstrap: str, timeout: float = 30.0) -> dict[str, dict]:
    """The catalog as it is now: the latest record per key, deleted ones left out."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "streams-ksql-catalog-reader",  # never subscribes nor commits
            "enable.auto.commit": False,
        }
    )
    try:
        metadata = consumer.list_topics(TOPIC, timeout=10).topics.get(TOPIC)
        if metadata is None or metadata.error is not None:
            return {}
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)[1]
            for p in metadata.partitions
        }
        todo = {p for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(TOPIC, p, 0) for p in todo])
        out: dict[str, dict] = {}
        deadline = time.monotonic() + timeout
        while todo and time.monotonic() < deadline:
            for message in consumer.consume(500, 1.0):
                if message.error() is not None:
                    continue
                key = message.key().decode()
                value = message.value()
                if value is None:
                    out.pop(key, None)
                else:
                    out[key] = orjson.loads(value)
                if message.offset() + 1 >= ends[message.partition()]:
                    todo.discard(message.partition())
        return out
    finally:
        consumer.close()


def group_members(bootstrap: str, groups: Iterable[str]) -> dict[str, int]:
    """How many instances each consumer group has now."""
    groups = list(groups)
    if not groups:
        return {}
    admin = AdminClient({"bootstrap.servers": bootstrap})
    out = {}
    for group, future in admin.describe_consumer_groups(groups).items():
        try:
            out[group] = len(future.result(timeout=30).members)
        except KafkaException:
            out[group] = 0
    return out


def show(
    kind: str, catalog: dict[str, dict], members: dict[str, int], topics: dict[str, int]
) -> Table:
    """``SHOW STREAMS | TABLES | QUERIES | TOPICS`` as ksqlDB's CLI lays them out."""
    table = Table(box=box.SIMPLE_HEAD)
    if kind == "topics":
        for column in ("Kafka Topic", "Partitions"):
            table.add_column(column)
        for name, partitions in sorted(topics.items()):
            table.add_row(name, str(partitions))
        return table
    if kind == "queries":
        for column in ("Query ID", "Status", "Sink Name", "Sink Kafka Topic", "Query String"):
            table.add_column(column)
        for value in _of(catalog, "query:"):
            instances = members.get(value["group"], 0)
            status = f"RUNNING:{instances}" if instances else "NOT RUNNING"
            table.add_row(
                value["id"], status, value["sink"], value["sink_topic"], value["statement"]
            )
        return table
    wanted = "STREAM" if kind == "streams" else "TABLE"
    name = "Stream Name" if kind == "streams" else "Table Name"
    for column in (name, "Kafka Topic", "Key Format", "Value Format", "Windowed"):
        table.add_column(column)
    for value in _of(catalog, "source:"):
        if value["kind"] == wanted:
            table.add_row(
                value["name"],
                value["topic"],
                value["key_format"],
                value["value_format"],
                "true" if value["window"] else "false",
            )
    return table


def describe(name: str, catalog: dict[str, dict]) -> Table | None:
    """``DESCRIBE name``: its columns (None if no source has that name)."""
    value = catalog.get(f"source:{name.upper()}")
    if value is None:
        return None
    table = Table(title=f"{value['kind']} {value['name']} (topic {value['topic']})")
    table.add_column("Field")
    table.add_column("Type")
    for column in value["columns"]:
        key = (" PRIMARY KEY" if value["kind"] == "TABLE" else " KEY") if column["key"] else ""
        table.add_row(column["name"], f"{column['type']}{key}")
    return table


def _of(catalog: dict[str, dict], prefix: str) -> list[dict]:
    return [value for key, value in sorted(catalog.items()) if key.startswith(prefix)]


def print_table(table: Table) -> None:
    Console(width=200).print(table)
