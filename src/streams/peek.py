"""``python -m streams.peek``: the latest rows of each output topic, as a table.

What the original deployment's "testing correctness" script did with ksqlDB's ``SELECT ...
EMIT CHANGES LIMIT n``: a quick look at what the processors are writing. It reads only committed
records (the processors write transactionally) and never commits offsets.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from confluent_kafka import Consumer
from rich.console import Console
from rich.table import Table

from clients.kafka import last_records, tail_consumer
from clients.settings import KafkaSettings
from contracts import topics

OUTPUTS = [
    topics.CLEANED_USERS,
    topics.PAGEVIEWS_BY_COUNTRY,
    topics.TUMBLING,
    topics.HOPPING,
    topics.SESSION,
]


def latest(consumer: Consumer, topic: str, count: int, timeout: float = 5.0) -> list[Any]:
    """The last ``count`` records of ``topic`` (by timestamp), read from each partition's end.

    Each partition contributes at most ``count`` records, so the whole topic is never scanned.
    Any consumer will do: one that does not report partition ends is done after a quiet second.
    """
    # A missing topic is the user's typo here, so it is said rather than shown as empty.
    meta = consumer.list_topics(topic, timeout=timeout).topics[topic]
    if meta.error is not None:
        raise RuntimeError(f"topic {topic}: {meta.error}")
    records = last_records(consumer, topic, count, quiet_s=1.0, idle_s=timeout)
    records.sort(key=lambda m: m.timestamp()[1])
    return records[-count:]


#: Headers of a dead letter shown as columns (see streams.operators.deadletter), in this order.
LETTER_HEADERS = ("error.type", "error", "stage", "processor")


def _row(message: Any) -> dict[str, Any] | None:
    """A record as columns: a JSON object's fields; a dead letter's reason and origin, with the
    original value as text (it may not be JSON at all)."""
    value = message.value()
    headers = {name: raw.decode(errors="replace") for name, raw in message.headers() or []}
    if "error.type" in headers:
        row = {name: headers.get(name, "") for name in LETTER_HEADERS}
        row["from"] = (
            f"{headers.get('source.topic')}[{headers.get('source.partition')}]"
            f"@{headers.get('source.offset')}"
        )
        shown = "(null)" if value is None else value[:80].decode(errors="replace")
        return {**row, "value": shown + ("..." if value and len(value) > 80 else "")}
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    return parsed if isinstance(parsed, dict) else {"value": repr(value[:80])}


def render(topic: str, records: list[Any]) -> Table:
    table = Table(title=f"{topic} (latest {len(records)})", title_justify="left")
    rows = [(m.key().decode(errors="replace") if m.key() else "", _row(m)) for m in records]
    columns: list[str] = []
    for _, value in rows:
        for column in value or {}:
            if column not in columns:
                columns.append(column)
    table.add_column("key")
    for column in columns:
        table.add_column(column)
    for key, value in rows:
        if value is None:
            table.add_row(key, *(["(tombstone)"] + [""] * (len(columns) - 1) if columns else []))
        else:
            table.add_row(key, *(str(value.get(c, "")) for c in columns))
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m streams.peek", description=__doc__)
    parser.add_argument("-n", "--rows", type=int, default=5, help="rows per topic (default 5)")
    parser.add_argument(
        "topics",
        nargs="*",
        default=OUTPUTS,
        help="topics to show (default: topics 4-8); the dead-letter topic "
        f"({topics.DEAD_LETTER}) shows each record's reason, stage and origin",
    )
    parser.add_argument(
        "--bootstrap-servers",
        default=KafkaSettings.from_env().bootstrap_servers,
        help="Kafka (env KAFKA_BOOTSTRAP_SERVERS)",
    )
    args = parser.parse_args(argv)
    consumer = tail_consumer(args.bootstrap_servers, "pageview-streams-peek")
    console = Console()
    try:
        for topic in args.topics:
            console.print(render(topic, latest(consumer, topic, args.rows)))
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
