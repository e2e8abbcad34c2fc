"""``python -m streams.ksql query`` and ``print`` on the native stack: a push query prints
exactly its rows, stops at its LIMIT or on Ctrl-C with exit code 0, reads only new records
unless ``--from-beginning``, and leaves neither its consumer group nor its repartition topics
behind; ``print`` shows a topic's records as ksqlDB's PRINT does.

``WRITE_DOCS_ARTIFACTS=1`` also saves the first query's table to docs/images/ksql-query.txt.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

pytestmark = pytest.mark.integration

T0 = 1_700_000_100_000  # 2023-11-14 22:15:00 UTC, a multiple of 5 minutes
WINDOW = 300_000
ARTIFACT = Path(__file__).parents[2] / "docs" / "images" / "ksql-query.txt"
GROUP = re.compile(r"streams-ksql-query-[0-9a-f]{12}")


def pv(topic: str) -> str:
    return (
        "CREATE STREAM pv (session_id STRING KEY, source STRING, user_id INT) "
        f"WITH (KAFKA_TOPIC='{topic}', VALUE_FORMAT='JSON');"
    )


def produce(kafka: str, topic: str, records: list[tuple[bytes | None, bytes, int, int]]) -> None:
    """(key, value, timestamp, partition) each, in order."""
    producer = Producer({"bootstrap.servers": kafka})
    for key, value, ts, partition in records:
        producer.produce(topic, value, key, partition=partition, timestamp=ts)
    assert producer.flush(30) == 0


def views(rows: list[tuple[str, str, int]], partitions: int = 1, start: int = T0) -> list:
    """Page views (session, source, user), a second apart, spread over ``partitions``."""
    return [
        (
            s.encode(),
            json.dumps({"source": src, "user_id": u}).encode(),
            start + i * 1000,
            i % partitions,
        )
        for i, (s, src, u) in enumerate(rows)
    ]


def env(kafka: str) -> dict[str, str]:
    # A fixed width (rich reads COLUMNS when stdout is no terminal) and UTF-8 box characters.
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        "COLUMNS": "80",
        "PYTHONIOENCODING": "utf-8",
    }


def ksql(kafka: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "streams.ksql", *args],
        env=env(kafka),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.split("│")]


def table(stdout: str) -> tuple[list[str], list[list[str]]]:
    """The header and the rows of a query's table."""
    lines = [line for line in stdout.splitlines() if "│" in line]
    return cells(lines[0]), [cells(line) for line in lines[1:]]


def group_of(stderr: str) -> str:
    match = GROUP.search(stderr)
    assert match, stderr
    return match.group(0)


def assert_left_nothing(kafka: str, group: str, timeout: float = 30) -> None:
    """No topic is named after the query's group, and the group is gone."""
    admin = AdminClient({"bootstrap.servers": kafka})
    deadline = time.monotonic() + timeout
    while True:
        topics = [t for t in admin.list_topics(timeout=10).topics if group in t]
        groups = [g.group_id for g in admin.list_consumer_groups().result(timeout=30).valid]
        if not topics and group not in groups:
            return
        assert time.monotonic() < deadline, f"left behind: {topics} {group in groups}"
        time.sleep(0.5)


def test_a_push_query_prints_exactly_its_rows_to_its_limit_and_leaves_nothing(
    kafka: str, make_topic: Callable[..., str]
):
    topic = make_topic("ksql-query", partitions=1)
    produce(
        kafka,
        topic,
        views(
            [
                ("s1", "Inbox", 1),
                ("s2", "Homepage", 2),
                ("s3", "Inbox", 3),
                ("s4", "External", 4),
                ("s5", "Inbox", 5),
                ("s6", "Inbox", 6),
            ]
        ),
    )
    statement = (
        f"{pv(topic)} SELECT session_id, user_id, user_id * 10 AS score FROM pv "
        "WHERE source = 'Inbox' EMIT CHANGES LIMIT 3;"
    )
    done = ksql(kafka, "query", statement, "--from-beginning")
    assert done.returncode == 0, done.stderr
    header, rows = table(done.stdout)
    assert header == ["SESSION_ID", "USER_ID", "SCORE"]
    assert rows == [["s1", "1", "10"], ["s3", "3", "30"], ["s5", "5", "50"]]
    assert done.stdout.splitlines()[-2:] == ["Limit Reached", "Query terminated"]
    assert_left_nothing(kafka, group_of(done.stderr))
    if os.environ.get("WRITE_DOCS_ARTIFACTS") == "1":
        ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
        ARTIFACT.write_text(f"ksql> {statement.split('; ', 1)[1]}\n{done.stdout}")


def test_a_windowed_aggregation_counts_exactly_and_its_repartition_topic_is_deleted(
    kafka: str, make_topic: Callable[..., str]
):
    topic = make_topic("ksql-query-windows", partitions=3)
    produce(
        kafka,
        topic,
        views(
            [
                ("s1", "Inbox", 1),
                ("s2", "Homepage", 2),
                ("s3", "Inbox", 3),
                ("s4", "Inbox", 4),
                ("s5", "Homepage", 5),
                ("s6", "External", 6),
            ],
            partitions=3,
        ),
    )
    done = ksql(
        kafka,
        "query",
        f"{pv(topic)} SELECT source, COUNT(*) AS views FROM pv "
        "WINDOW TUMBLING (SIZE 5 MINUTES) GROUP BY source EMIT CHANGES LIMIT 6;",
        "--from-beginning",
    )
    assert done.returncode == 0, done.stderr
    header, rows = table(done.stdout)
    assert header == ["SOURCE", "WINDOWSTART", "WINDOWEND", "VIEWS"]
    # Three partitions: the groups' updates interleave in any order, each group's in order.
    window = [str(T0), str(T0 + WINDOW)]
    assert sorted(rows) == sorted(
        [
            ["Inbox", *window, "1"],
            ["Inbox", *window, "2"],
            ["Inbox", *window, "3"],
            ["Homepage", *window, "1"],
            ["Homepage", *window, "2"],
            ["External", *window, "1"],
        ]
    )
    inbox = [row[3] for row in rows if row[0] == "Inbox"]
    assert inbox == ["1", "2", "3"]
    group = group_of(done.stderr)
    assert f"deleted topics repartition__{group}--" in done.stderr  # there was one, and it went
    assert_left_nothing(kafka, group)


def test_without_from_beginning_only_new_records_count_and_ctrl_c_cleans_up(
    kafka: str, make_topic: Callable[..., str], tmp_path: Path
):
    topic = make_topic("ksql-query-latest", partitions=2)
    produce(kafka, topic, views([("old1", "Inbox", 1), ("old2", "Inbox", 2)], partitions=2))
    log = tmp_path / "query.log"
    with log.open("w") as errors:  # the child's stderr: it names the query's group
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streams.ksql",
                "query",
                f"{pv(topic)} SELECT source, COUNT(*) AS views FROM pv "
                "WINDOW TUMBLING (SIZE 5 MINUTES) GROUP BY source EMIT CHANGES;",
            ],
            env=env(kafka),
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
    lines: queue.Queue[str] = queue.Queue()

    def read_lines() -> None:
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=read_lines, daemon=True).start()

    def next_row(timeout: float = 60) -> list[str]:
        while True:
            line = lines.get(timeout=timeout)
            if "│" in line:
                return cells(line)

    try:
        assert next_row() == ["SOURCE", "WINDOWSTART", "WINDOWEND", "VIEWS"]  # it has started
        new = [("new1", "Inbox", 3), ("new2", "Inbox", 4), ("new3", "Inbox", 5)]
        produce(kafka, topic, views(new, partitions=2, start=T0 + 10_000))
        window = [str(T0), str(T0 + WINDOW)]
        assert [next_row() for _ in new] == [["Inbox", *window, str(n)] for n in (1, 2, 3)]
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert_left_nothing(kafka, group_of(log.read_text()))


def test_print_shows_the_first_records_decoded_or_guessed(
    kafka: str, make_topic: Callable[..., str], tmp_path: Path
):
    topic = make_topic("ksql-print", partitions=1)
    produce(
        kafka,
        topic,
        [
            (b"s1", b'{"source": "Inbox", "user_id": 1}', T0, 0),
            (None, b"plain text", T0 + 1, 0),
            (b"s3", b"never shown", T0 + 2, 0),
        ],
    )
    done = ksql(kafka, "print", topic, "--from-beginning", "--limit", "2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "rowtime: 2023/11/14 22:15:00.000 Z, partition: 0, offset: 0, key: s1, "
        'value: {"source":"Inbox","user_id":1}',
        "rowtime: 2023/11/14 22:15:00.001 Z, partition: 0, offset: 1, key: <null>, "
        "value: plain text",
    ]
    statements = tmp_path / "pv.sql"
    statements.write_text(pv(topic))
    done = ksql(
        kafka, "print", topic, "--from-beginning", "--limit", "1", "--statements", str(statements)
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        'rowtime: 2023/11/14 22:15:00.000 Z, partition: 0, offset: 0, key: {"SESSION_ID":"s1"}, '
        'value: {"SOURCE":"Inbox","USER_ID":1}'
    ]


def test_the_shell_declares_a_source_then_prints_and_queries_it(
    kafka: str, make_topic: Callable[..., str]
) -> None:
    """``python -m streams.ksql`` with statements on its input, as a person types them."""
    topic = make_topic("ksql-shell", partitions=1)
    produce(kafka, topic, views([("s1", "Inbox", 1), ("s2", "Homepage", 2)]))
    typed = "\n".join(
        [
            f"PRINT '{topic}' FROM BEGINNING",
            "  LIMIT 2;",
            pv(topic),
            "SET 'auto.offset.reset' = 'earliest';",
            "SELECT session_id, source FROM pv EMIT CHANGES LIMIT 2;",
            "CREATE TABLE t AS SELECT * FROM pv;",
            "exit",
        ]
    )
    done = subprocess.run(
        [sys.executable, "-m", "streams.ksql"],
        input=typed,
        env=env(kafka),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.count('"source":"Inbox"') + out.count('"source": "Inbox"') == 1, out  # PRINT
    assert "Stream created." in out
    assert "Successfully changed local property 'auto.offset.reset' to 'earliest'." in out
    header, rows = table(out)
    assert header == ["SESSION_ID", "SOURCE"] and rows == [["s1", "Inbox"], ["s2", "Homepage"]]
    assert "persistent queries run with `python -m streams.ksql run FILE.sql`" in out
