"""``python -m streams.ksql run`` on the native stack: it creates the topics the statements
declare, runs each persistent query exactly-once in a consumer group of its own, dead-letters a
bad record and goes on, resumes after a stop and after a SIGKILL of a query's process without
reprocessing or losing anything, and two instances share the work. Every output is checked
against a brute-force count.
"""

from __future__ import annotations

import json
import os
import random
import signal
import struct
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from tests.integration.apps import create_topic, read_all, recent_start

pytestmark = pytest.mark.integration

T0 = recent_start(300_000)  # in the sinks' time retention, a multiple of 5 minutes
WINDOW = 300_000
SOURCES = ("Homepage", "Inbox", "External")
STATEMENTS = """
CREATE STREAM pv (session_id STRING, user_id INT, source STRING, event_timestamp STRING)
  WITH (KAFKA_TOPIC='{pv}', VALUE_FORMAT='JSON', PARTITIONS=3,
        TIMESTAMP='event_timestamp', TIMESTAMP_FORMAT='yyyy-MM-dd HH:mm:ss');

CREATE TABLE per_source WITH (KAFKA_TOPIC='{counts}') AS
  SELECT source, COUNT(*) AS views FROM pv
  WINDOW TUMBLING (SIZE 5 MINUTES) GROUP BY source EMIT CHANGES;

CREATE STREAM inbox WITH (KAFKA_TOPIC='{inbox}', PARTITIONS=2, RETENTION_MS=2592000000) AS
  SELECT session_id, user_id FROM pv WHERE source = 'Inbox' EMIT CHANGES;
"""


def views(count: int, seed: int, start: int) -> list[dict]:
    """Page views in event-time order (whole seconds: the text format), from ``start``."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        ts = start + i * 2_000
        out.append(
            {
                "session_id": f"s{seed}-{i}",
                "user_id": rng.randrange(20),
                "source": rng.choice(SOURCES),
                "event_timestamp": datetime.fromtimestamp(ts / 1000, UTC).strftime(
                    "%Y-%m-%d %H:%M:%S"
                ),
                "ts": ts,
            }
        )
    return out


def produce(kafka: str, topic: str, rows: list[dict], bad: bytes | None = None) -> None:
    producer = Producer({"bootstrap.servers": kafka, "partitioner": "murmur2_random"})
    for row in rows:
        value = {k: v for k, v in row.items() if k != "ts"}
        producer.produce(topic, json.dumps(value).encode(), row["session_id"].encode())
    if bad is not None:
        producer.produce(topic, bad, b"bad")
    assert producer.flush(30) == 0


class KsqlRun:
    """``python -m streams.ksql run FILE`` as a subprocess."""

    def __init__(self, kafka: str, file: Path, group: str, state: Path, env: dict) -> None:
        self.args = [sys.executable, "-m", "streams.ksql", "run", str(file)]
        self.args += ["--consumer-group", group, "--state-dir", str(state)]
        self.env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka, **env}
        self.log = state.with_suffix(".log")
        self.process: subprocess.Popen | None = None

    def start(self) -> KsqlRun:
        self.process = subprocess.Popen(
            self.args, env=self.env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT
        )
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(90)
        assert self.process is None or self.process.returncode == 0, self.log.read_text()


def kill_pass(run: KsqlRun, name: str) -> None:
    """SIGKILL the process ``run`` started for the pass ``name``."""
    assert run.process is not None
    found = subprocess.run(
        ["pgrep", "-P", str(run.process.pid), "-f", "--", f"--pass {name}"],
        capture_output=True,
        text=True,
        check=True,
    )
    (pid,) = found.stdout.split()
    os.kill(int(pid), signal.SIGKILL)


def diagnosis(kafka: str, sink: str, group: str, source: str) -> str:
    """What a stalled query's group and topics look like, for the failure message."""
    consumer = Consumer({"bootstrap.servers": kafka, "group.id": group})
    try:
        lines = []
        for topic in (source, sink):
            partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            tps = [TopicPartition(topic, p) for p in partitions]
            for tp in consumer.committed(tps, timeout=10):
                low, high = consumer.get_watermark_offsets(tp, timeout=10)
                lines.append(f"{topic}[{tp.partition}] committed {tp.offset}, {low}..{high}")
    finally:
        consumer.close()
    described = AdminClient({"bootstrap.servers": kafka}).describe_consumer_groups([group])
    state = described[group].result(timeout=30)
    for member in state.members:
        assigned = sorted(tp.partition for tp in member.assignment.topic_partitions)
        lines.append(f"member {member.member_id}: partitions {assigned}")
    return f"group {group} {state.state}:\n" + "\n".join(lines)


def ksql(kafka: str, env: dict, *args: str) -> str:
    """``python -m streams.ksql ARGS``'s output (it must succeed)."""
    done = subprocess.run(
        [sys.executable, "-m", "streams.ksql", *args],
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def wait_for_topics(admin: AdminClient, topics: list[str], timeout: float = 60) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        listed = admin.list_topics(timeout=10).topics
        if all(t in listed for t in topics):
            return {t: len(listed[t].partitions) for t in topics}
        assert time.monotonic() < deadline, f"run created none of {topics} in {timeout} s"
        time.sleep(0.5)


def retention(admin: AdminClient, topic: str) -> str:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    return admin.describe_configs([resource])[resource].result(timeout=30)["retention.ms"].value


def window_counts(records) -> tuple[int, dict[tuple[str, int], int]]:
    """(how many updates, the latest count per (source, window start))."""
    latest = {}
    for record in records:
        key = record.key()
        source, start = key[:-8].decode(), struct.unpack(">q", key[-8:])[0]
        latest[source, start] = json.loads(record.value())["VIEWS"]
    return len(records), latest


def expected_counts(rows: list[dict]) -> dict[tuple[str, int], int]:
    return dict(Counter((r["source"], r["ts"] - r["ts"] % WINDOW) for r in rows))


def inbox_of(rows: list[dict]) -> Counter:
    return Counter((r["session_id"], r["user_id"]) for r in rows if r["source"] == "Inbox")


@dataclass
class Pipeline:
    """STATEMENTS on unique topics, with what a ``run`` of them needs."""

    names: dict[str, str]
    file: Path
    group: str
    env: dict[str, str]
    dead: str

    def run(self, kafka: str, state: Path) -> KsqlRun:
        return KsqlRun(kafka, self.file, self.group, state, self.env)


@pytest.fixture
def pipeline(kafka: str, tmp_path: Path) -> Iterator[Pipeline]:
    suffix = uuid.uuid4().hex[:8]
    names = {
        "pv": f"test-ksql-pv-{suffix}",
        "counts": f"test-ksql-counts-{suffix}",
        "inbox": f"test-ksql-inbox-{suffix}",
    }
    file = tmp_path / "pipeline.sql"
    file.write_text(STATEMENTS.format(**names))
    dead = create_topic(kafka, "ksql-dead", partitions=1)
    env = {
        "TOPIC_DEAD_LETTER": dead,
        "STREAMS_COMMIT_INTERVAL_S": "1",
        # A killed member's partitions move on after its session times out: 10 s, not 45.
        "STREAMS_CONSUMER_CONFIG": "session.timeout.ms=10000",
        "KSQL_CATALOG_TOPIC": f"_test-ksql-catalog-{suffix}",
    }
    group = f"test-ksql-{suffix}"
    yield Pipeline(names, file, group, env, dead)
    admin = AdminClient({"bootstrap.servers": kafka})
    internal = [t for t in admin.list_topics(timeout=10).topics if group in t]
    catalog = env["KSQL_CATALOG_TOPIC"]
    for future in admin.delete_topics([*internal, *names.values(), dead, catalog]).values():
        future.exception(timeout=30)


def test_run_creates_topics_runs_each_query_and_resumes_exactly(
    kafka: str, tmp_path: Path, pipeline: Pipeline
):
    admin = AdminClient({"bootstrap.servers": kafka})
    names, group, env, dead = pipeline.names, pipeline.group, pipeline.env, pipeline.dead
    first = pipeline.run(kafka, tmp_path / "a")
    try:
        first.start()
        # The source declares PARTITIONS: created; the sinks: the source's count, or their own.
        partitions = wait_for_topics(admin, list(names.values()))
        assert partitions == {names["pv"]: 3, names["counts"]: 3, names["inbox"]: 2}
        assert retention(admin, names["inbox"]) == "2592000000"  # RETENTION_MS, 30 days

        batch1 = views(300, seed=1, start=T0)
        produce(kafka, names["pv"], batch1, bad=b"{not json")
        updates, latest = window_counts(read_all(kafka, names["counts"], len(batch1)))
        assert updates == len(batch1)  # EMIT CHANGES: one update per view, none twice
        assert latest == expected_counts(batch1)
        inbox = read_all(kafka, names["inbox"], sum(inbox_of(batch1).values()))
        got = Counter(
            (json.loads(m.value())["SESSION_ID"], json.loads(m.value())["USER_ID"]) for m in inbox
        )
        assert got == inbox_of(batch1)
        # Each query reads the source itself, and dead-letters the bad record, naming itself.
        # What runs, seen from another process: SHOW and DESCRIBE read the catalog topic.
        streams = ksql(kafka, env, "show", "streams")
        assert "PV" in streams and names["pv"] in streams and "INBOX" in streams
        assert "PER_SOURCE" in ksql(kafka, env, "show", "tables")
        queries = ksql(kafka, env, "show", "queries")
        for query in ("CTAS_PER_SOURCE_0", "CSAS_INBOX_1"):
            assert any(query in line and "RUNNING:1" in line for line in queries.splitlines())
        assert names["counts"] in ksql(kafka, env, "show", "topics")
        fields = ksql(kafka, env, "describe", "per_source")
        assert "SOURCE" in fields and "STRING PRIMARY KEY" in fields

        dead_letters = read_all(kafka, dead, 2)
        assert sorted(dict(m.headers())["processor"] for m in dead_letters) == [
            b"streams.ksql CSAS_INBOX_1",
            b"streams.ksql CTAS_PER_SOURCE_0",
        ]
        assert [m.key() for m in dead_letters] == [b"bad", b"bad"]

        # Stopped and started again, resuming its state and offsets: nothing is read twice,
        # nothing is lost.
        first.stop()
        first.start()
        batch2 = views(200, seed=2, start=T0 + 300 * 2_000)
        produce(kafka, names["pv"], batch2)
        both = batch1 + batch2
        updates, latest = window_counts(read_all(kafka, names["counts"], len(both)))
        assert updates == len(both)
        assert latest == expected_counts(both)
        inbox = read_all(kafka, names["inbox"], sum(inbox_of(both).values()))
        assert len(inbox) == sum(inbox_of(both).values()), diagnosis(
            kafka, names["inbox"], f"{group}-CSAS_INBOX_1", names["pv"]
        )
        assert ksql(kafka, env, "show", "queries").count("RUNNING:1") == 2

        # A query's process killed mid-stream: its supervisor starts it again, and its
        # transactions make that invisible: every view still counted exactly once.
        batch3 = views(300, seed=3, start=T0 + 500 * 2_000)
        produce(kafka, names["pv"], batch3[:150])
        kill_pass(first, "CTAS_PER_SOURCE_0")
        produce(kafka, names["pv"], batch3[150:])
        every = both + batch3
        # Within 50 s: the restarted pass has the killed one's transactional.id and aborts its
        # open transaction at once; with a new id, everything would wait for the broker to time
        # it out (60 s and its sweep).
        updates, latest = window_counts(read_all(kafka, names["counts"], len(every), timeout=50))
        assert updates == len(every)
        assert latest == expected_counts(every)
        assert "exited with -9; restarting" in first.log.read_text()
    finally:
        first.stop()


def test_a_source_over_a_missing_topic_stops_run_before_it_creates_anything(
    kafka: str, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:8]
    missing, sink = f"test-ksql-missing-{suffix}", f"test-ksql-sink-{suffix}"
    file = tmp_path / "missing.sql"
    file.write_text(
        f"CREATE STREAM s (a INT) WITH (KAFKA_TOPIC='{missing}', VALUE_FORMAT='JSON');\n"
        f"CREATE STREAM t WITH (KAFKA_TOPIC='{sink}') AS SELECT a FROM s;\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "streams.ksql", "run", str(file)],
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert f"Kafka topic does not exist: {missing}" in done.stderr
    topics = AdminClient({"bootstrap.servers": kafka}).list_topics(timeout=10).topics
    assert missing not in topics and sink not in topics


def test_two_runs_share_each_querys_partitions_and_lose_nothing(
    kafka: str, tmp_path: Path, pipeline: Pipeline
):
    """Scale-out: a second ``run`` joins every query's group and takes partitions; when the
    first stops, the second goes on with its state. Every update is counted exactly once."""
    admin = AdminClient({"bootstrap.servers": kafka})
    names, group = pipeline.names, pipeline.group
    first = pipeline.run(kafka, tmp_path / "a")
    second = pipeline.run(kafka, tmp_path / "b")
    try:
        first.start()
        wait_for_topics(admin, list(names.values()))
        batch1 = views(300, seed=1, start=T0)
        produce(kafka, names["pv"], batch1)
        assert window_counts(read_all(kafka, names["counts"], len(batch1)))[0] == len(batch1)

        second.start()
        for query in ("CTAS_PER_SOURCE_0", "CSAS_INBOX_1"):
            members = members_of(admin, f"{group}-{query}", want=2)
            assert len(members) == 2, members
        batch2 = views(200, seed=2, start=T0 + 300 * 2_000)
        produce(kafka, names["pv"], batch2)
        both = batch1 + batch2
        updates, latest = window_counts(read_all(kafka, names["counts"], len(both)))
        assert (updates, latest) == (len(both), expected_counts(both)), diagnosis(
            kafka, names["counts"], f"{group}-CTAS_PER_SOURCE_0", names["pv"]
        )
        inbox = read_all(kafka, names["inbox"], sum(inbox_of(both).values()))
        assert len(inbox) == sum(inbox_of(both).values()), diagnosis(
            kafka, names["inbox"], f"{group}-CSAS_INBOX_1", names["pv"]
        )

        first.stop()
        batch3 = views(300, seed=3, start=T0 + 500 * 2_000)
        produce(kafka, names["pv"], batch3)
        every = both + batch3
        updates, latest = window_counts(read_all(kafka, names["counts"], len(every)))
        assert (updates, latest) == (len(every), expected_counts(every))
    finally:
        first.stop()
        second.stop()


def members_of(admin: AdminClient, group: str, want: int, timeout: float = 60) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        state = admin.describe_consumer_groups([group])[group].result(timeout=30)
        members = [m.member_id for m in state.members if m.assignment.topic_partitions]
        if len(members) >= want or time.monotonic() > deadline:
            return members
        time.sleep(0.5)


def test_the_record_cache_counts_each_view_once_in_two_phases_across_a_sigkill(
    kafka: str, tmp_path: Path, pipeline: Pipeline
):
    """ksqlDB's record cache on (SET 'cache.max.bytes.buffering'): the window counts come
    coalesced, computed in two phases (partials cross the repartition, not views), and a
    SIGKILL of the pass mid-stream neither loses a partial nor counts one twice."""
    admin = AdminClient({"bootstrap.servers": kafka})
    names, group = pipeline.names, pipeline.group
    pipeline.file.write_text(
        "SET 'cache.max.bytes.buffering'='10000000';\nSET 'commit.interval.ms'='500';\n"
        + STATEMENTS.format(**names)
    )
    run = pipeline.run(kafka, tmp_path / "a")
    try:
        run.start()
        wait_for_topics(admin, list(names.values()))
        rows = views(3_000, seed=4, start=T0)
        produce(kafka, names["pv"], rows[:1_500])
        read_all(kafka, names["counts"], 1, timeout=60)  # the pass is processing
        kill_pass(run, "CTAS_PER_SOURCE_0-cached")
        produce(kafka, names["pv"], rows[1_500:])
        expected = expected_counts(rows)
        deadline = time.monotonic() + 120
        while True:  # the last periods' partials and results flush on the clock
            records = read_all(kafka, names["counts"], len(expected), timeout=60)
            updates, latest = window_counts(records)
            if latest == expected or time.monotonic() > deadline:
                break
        # Cached, the query is a pass of its own: another consumer group.
        assert latest == expected, diagnosis(
            kafka, names["counts"], f"{group}-CTAS_PER_SOURCE_0-cached", names["pv"]
        )
        assert updates < len(rows) / 2  # coalesced: not one update per view
        # Each window's committed counts only rise: a partial counted twice would repeat or
        # overshoot one.
        by_window: dict[bytes, list[int]] = {}
        for record in records:
            by_window.setdefault(record.key(), []).append(json.loads(record.value())["VIEWS"])
        assert all(counts == sorted(set(counts)) for counts in by_window.values())
        topics = admin.list_topics(timeout=10).topics
        assert [t for t in topics if group in t and t.endswith("-partials")]
        assert "exited with -9; restarting" in run.log.read_text()
    finally:
        run.stop()
