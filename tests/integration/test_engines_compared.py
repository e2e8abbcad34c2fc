"""The two engines on the native stack, on the same input: the hand-written processors
(``python -m streams``) and sql/pageview-pipeline.sql under ``python -m streams.ksql run``
each write topics 4-8 of their own from the same users (Avro through the registry) and page
views, and the tables they hold are the same, row for row (compared by group and window start:
the key bytes differ, see docs/ksql.md)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from streams.ksql.compiler import compile_sql
from streams.ksql.runner import substitute
from tests.integration.apps import StreamsApp, read_all
from tests.integration.test_users_country_apps import MINUTE, T0, make_users, produce_users

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = ROOT / "sql" / "pageview-pipeline.sql"
OUTPUTS = (
    "TOPIC_CLEANED_USERS",
    "TOPIC_PAGEVIEWS_BY_COUNTRY",
    "TOPIC_TUMBLING",
    "TOPIC_HOPPING",
    "TOPIC_SESSION",
)


def views(count: int) -> list[dict[str, Any]]:
    """Users 1-35 (31-35 do not exist: 'unknown'), three sources, a gap that ends sessions."""
    rng = random.Random(5)
    out = []
    for i in range(count):
        ts = T0 + rng.randrange(0, 12 * MINUTE) + (20 * MINUTE if i >= count // 2 else 0)
        ts -= ts % 1000  # the text format has whole seconds
        text = datetime.fromtimestamp(ts / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        out.append(
            {
                "session_id": f"s{i}",
                "user_id": rng.randint(1, 35),
                "source": rng.choice(["Homepage", "Inbox", "External"]),
                "event_timestamp": text,
            }
        )
    return sorted(out, key=lambda v: v["event_timestamp"])


def table(records: list, key_of) -> dict:
    """The latest value of each row; a tombstone or a ``deleted`` row removes it."""
    out: dict = {}
    for record in records:
        value = None if record.value() is None else json.loads(record.value())
        key = key_of(record.key())
        if value is None or value.pop("deleted", False):
            out.pop(key, None)
        else:
            out[key] = value
    return out


def test_both_engines_write_the_same_topics_4_to_8(
    kafka: str, schema_registry_url: str, make_topic, tmp_path: Path
) -> None:
    inputs = {"TOPIC_USERS": make_topic("users", 5), "TOPIC_PAGEVIEWS": make_topic("views", 5)}
    engines = {
        engine: {
            **inputs,
            **{var: make_topic(f"{engine}-{var[6:].lower()}", 5) for var in OUTPUTS},
            "TOPIC_LATE": make_topic(f"{engine}-late", 1),
            "TOPIC_DEAD_LETTER": make_topic(f"{engine}-dead", 1),
        }
        for engine in ("python", "ksql")
    }
    users = make_users(30)
    produce_users(
        kafka,
        schema_registry_url,
        inputs["TOPIC_USERS"],
        [(u["user_id"], u) for u in users],
        T0 - MINUTE,
    )
    cleaned = sum(1 for u in users if None not in u.values())

    hand = StreamsApp("streams", kafka, engines["python"], tmp_path / "python")
    (tmp_path / "python").mkdir()
    ksql_dir = tmp_path / "ksql"
    ksql_dir.mkdir()
    defines = [f"--define={var}={name}" for var, name in engines["ksql"].items()]
    ksql_log = (ksql_dir / "run.log").open("ab")
    suffix = Path(engines["ksql"]["TOPIC_TUMBLING"]).name[-8:]
    ksql = subprocess.Popen(
        [sys.executable, "-m", "streams.ksql", "run", str(PIPELINE), *defines],
        env={
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": kafka,
            "KSQL_CONSUMER_GROUP": f"test-engines-{suffix}",
            "KSQL_CATALOG_TOPIC": f"test-engines-catalog-{suffix}",
            "STREAMS_STATE_DIR": str(ksql_dir / "state"),
            "STREAMS_COMMIT_INTERVAL_S": "1",
            "TOPIC_DEAD_LETTER": engines["ksql"]["TOPIC_DEAD_LETTER"],
        },
        stdout=ksql_log,
        stderr=subprocess.STDOUT,
    )
    try:
        hand.start()
        # Users first, so each view meets its user in both engines (one joins the row of the
        # view's event time, the other the row current when it is processed).
        for engine in engines.values():
            got = read_all(kafka, engine["TOPIC_CLEANED_USERS"], cleaned)
            # (ksqlDB's table filter also writes a tombstone for a row that never passed.)
            assert len(got) >= cleaned, (engine, len(got), (ksql_dir / "run.log").read_text())
        batch = views(600)
        producer = Producer({"bootstrap.servers": kafka, "partitioner": "murmur2_random"})
        for view in batch:
            producer.produce(
                inputs["TOPIC_PAGEVIEWS"], key=view["session_id"], value=json.dumps(view)
            )
        assert producer.flush(30) == 0

        program = compile_sql(substitute(PIPELINE.read_text(), engines["ksql"]))
        sinks = {q.sink.topic: q.sink for q in program.queries.values()}
        for var in OUTPUTS:
            # Updates per view: one per window it falls in (five hopping windows).
            expected = {"TOPIC_CLEANED_USERS": cleaned, "TOPIC_HOPPING": 5 * len(batch)}.get(
                var, len(batch)
            )
            got_hand = read_all(kafka, engines["python"][var], expected)
            got_ksql = read_all(kafka, engines["ksql"][var], expected)
            sink = sinks[engines["ksql"][var]]
            if sink.window is None:
                hand_rows, ksql_rows = table(got_hand, bytes), table(got_ksql, bytes)
            else:

                def windowed(key: bytes, sink=sink) -> tuple:
                    inner, start, _end = sink.windowed_key_serde.split(key)
                    return sink.key_serde.deserialize(inner)[0], start

                def text(key: bytes) -> tuple:
                    group, start = key.decode().rsplit("|", 1)
                    return group, int(start)

                hand_rows, ksql_rows = table(got_hand, text), table(got_ksql, windowed)
            assert len(hand_rows) >= 3, var
            assert ksql_rows == hand_rows, var
    finally:
        hand.stop()
        ksql.send_signal(signal.SIGTERM)
        try:
            ksql.wait(60)
        except subprocess.TimeoutExpired:
            ksql.kill()
        ksql_log.close()
        _delete_internal(kafka, suffix, hand.group, f"{inputs['TOPIC_PAGEVIEWS']}_enriched")


def _delete_internal(kafka: str, *names: str) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": kafka})
    internal = [t for t in admin.list_topics(timeout=10).topics if any(n in t for n in names)]
    if internal:
        for future in admin.delete_topics(internal).values():
            future.exception(timeout=30)
