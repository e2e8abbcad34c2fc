"""``python -m streams.windows`` on the native stack: exact window contents, dead letters, and
exactly-once across a SIGKILL.

The input is deterministic (fixed seed): page views of three sources over 40 minutes of event
time, shuffled within a few seconds as producers do, plus bad records. With EMIT CHANGES every
valid view is exactly one update of its tumbling window and five of its hopping windows, so
the record counts prove nothing was lost or counted twice; the latest value per key (what a
compacted topic or Pinot upsert keeps) must equal the counts computed here.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter, defaultdict

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from contracts.records import SOURCES
from tests.integration.apps import (
    StreamsApp,
    committed_input,
    latest_by_key,
    read_all,
    read_to_end,
)

pytestmark = pytest.mark.integration

T0 = 1_700_000_100_000  # a multiple of 5 minutes
MINUTE = 60_000
BAD = [
    (None, json.dumps({"session_id": "x", "user_id": 1, "source": "Inbox"}).encode(), "NullKey"),
    (b"s-bad-1", b"{not json", "MalformedJson"),
    (b"s-bad-2", json.dumps({"session_id": "s-bad-2", "user_id": 1}).encode(), "BadField"),
    (
        b"s-bad-3",
        json.dumps(
            {"session_id": "s-bad-3", "user_id": 1, "source": "Inbox", "event_timestamp": 17}
        ).encode(),
        "InvalidTimestamp",
    ),
]


def make_views(count: int, seed: int = 4) -> list[dict]:
    """Views with a session gap in the middle for each source, so sessions split and merge."""
    rng = random.Random(seed)
    views = []
    for i in range(count):
        source = SOURCES[i % 3]
        ts = T0 + rng.randrange(0, 40 * MINUTE)
        if source == "External" and 15 * MINUTE <= ts - T0 < 26 * MINUTE:
            continue  # an 11-minute hole: two External sessions (gap 5 min)
        views.append(
            {"session_id": f"s{i % 50}", "user_id": i % 17, "source": source, "event_timestamp": ts}
        )
    # Sorted by time, then locally shuffled: out of order by seconds, as real producers are.
    views.sort(key=lambda v: v["event_timestamp"])
    for i in range(0, len(views) - 5, 5):
        chunk = views[i : i + 5]
        rng.shuffle(chunk)
        views[i : i + 5] = chunk
    return views


def expected_windows(views: list[dict]):
    tumbling, hopping = Counter(), Counter()
    for v in views:
        ts = v["event_timestamp"]
        tumbling[(v["source"], ts - ts % (5 * MINUTE))] += 1
        start = max(0, ts - 5 * MINUTE + MINUTE) // MINUTE * MINUTE
        while start <= ts:
            hopping[(v["source"], start)] += 1
            start += MINUTE
    sessions = {}
    by_source = defaultdict(list)
    for v in views:
        by_source[v["source"]].append(v["event_timestamp"])
    for source, times in by_source.items():
        times.sort()
        start = prev = times[0]
        count = 0
        for ts in times:
            if ts - prev > 5 * MINUTE:
                sessions[(source, start)] = (prev, count)
                start, count = ts, 0
            prev, count = ts, count + 1
        sessions[(source, start)] = (prev, count)
    return tumbling, hopping, sessions


def produce(kafka: str, topic: str, views: list[dict], bad=()) -> None:
    producer = Producer({"bootstrap.servers": kafka, "partitioner": "murmur2_random"})
    for key, value, _ in bad:
        producer.produce(topic, key=key, value=value, headers=[("origin", b"test")])
    for v in views:
        producer.produce(
            topic, key=v["session_id"], value=json.dumps(v), timestamp=v["event_timestamp"]
        )
    assert producer.flush(30) == 0


def windows_topics(make_topic) -> dict[str, str]:
    return {
        "TOPIC_PAGEVIEWS": make_topic("pageviews", 5),
        "TOPIC_TUMBLING": make_topic("tumbling", 5),
        "TOPIC_HOPPING": make_topic("hopping", 5),
        "TOPIC_SESSION": make_topic("session", 5),
        "TOPIC_LATE": make_topic("late", 1),
        "TOPIC_DEAD_LETTER": make_topic("dead-letter", 1),
    }


@pytest.fixture
def windows_env(kafka, make_topic, tmp_path):
    topics = windows_topics(make_topic)
    with StreamsApp("streams.windows", kafka, topics, tmp_path) as app:
        yield app, topics


def five_minute_rows(counts):
    """The latest output row per window key for 5-minute time windows' expected counts."""
    return {
        f"{s}|{start}": {
            "source": s,
            "window_start": start,
            "window_end": start + 5 * MINUTE,
            "pageview_count": n,
        }
        for (s, start), n in counts.items()
    }


def session_rows(sessions):
    """The output rows of the expected sessions, by window key."""
    return {
        f"{s}|{start}": {
            "source": s,
            "window_start": start,
            "window_end": end,
            "pageview_count": n,
            "deleted": False,
        }
        for (s, start), (end, n) in sessions.items()
    }


def live_sessions(records):
    """The latest row per window key of topic8, without the retracted (merged-away) ones."""
    return {k: v for k, v in latest_by_key(records).items() if not v["deleted"]}


def assert_windows(kafka, topics, views):
    tumbling, hopping, sessions = expected_windows(views)
    six = read_all(kafka, topics["TOPIC_TUMBLING"], len(views))
    seven = read_all(kafka, topics["TOPIC_HOPPING"], 5 * len(views))
    # Exactly one update per view per window it belongs to: nothing lost, nothing twice.
    assert len(six) == len(views)
    assert len(seven) == 5 * len(views)
    assert latest_by_key(six) == five_minute_rows(tumbling)
    assert latest_by_key(seven) == five_minute_rows(hopping)
    eight = read_all(kafka, topics["TOPIC_SESSION"], len(sessions))
    assert live_sessions(eight) == session_rows(sessions)
    assert len([key for key in sessions if key[0] == "External"]) == 2


def test_windows_app_writes_exact_windows_and_dead_letters(kafka, windows_env):
    app, topics = windows_env
    views = make_views(900)
    produce(kafka, topics["TOPIC_PAGEVIEWS"], views, BAD)
    app.start()
    assert_windows(kafka, topics, views)
    dead = read_all(kafka, topics["TOPIC_DEAD_LETTER"], len(BAD))
    assert Counter((m.key(), m.value()) for m in dead) == Counter((k, v) for k, v, _ in BAD)
    for message in dead:
        headers = dict(message.headers())
        assert headers["origin"] == b"test"  # original headers kept
        assert headers["error.type"].decode() == {k: t for k, _, t in BAD}[message.key()]
        assert headers["error"]
        assert headers["source.topic"].decode() == topics["TOPIC_PAGEVIEWS"]
        assert int(headers["source.partition"]) in range(5)
        assert int(headers["source.offset"]) >= 0
        assert headers["processor"] == b"streams.windows"
    assert read_to_end(kafka, topics["TOPIC_LATE"]) == []


def test_emit_cached_shows_every_final_count_once_input_stops(kafka, make_topic, tmp_path):
    """ksqlDB's record cache: fewer records than EMIT CHANGES, and every window's latest count
    reaches its topic after the input stops, flushed on the clock and committed (a checkpoint
    with no input offsets aborts its transaction unless the flush changed state)."""
    topics = windows_topics(make_topic)
    views = make_views(900)
    produce(kafka, topics["TOPIC_PAGEVIEWS"], views)
    # A cache period longer than the 1 s commit interval: the last flush comes after the
    # input's last checkpoint, so it must commit on its own.
    env = {"WINDOWS_EMIT": "cached", "WINDOWS_CACHE_MS": "3000"}
    tumbling, hopping, sessions = expected_windows(views)
    with StreamsApp("streams.windows", kafka, topics, tmp_path, env) as app:
        app.start()
        deadline = time.monotonic() + 120
        while True:
            six = read_all(kafka, topics["TOPIC_TUMBLING"], 0, timeout=30)
            if latest_by_key(six) == five_minute_rows(tumbling) or time.monotonic() > deadline:
                break
        seven = read_all(kafka, topics["TOPIC_HOPPING"], 0, timeout=30)
        eight = read_all(kafka, topics["TOPIC_SESSION"], 0, timeout=30)
    assert latest_by_key(six) == five_minute_rows(tumbling), f"see {app.log}"
    assert latest_by_key(seven) == five_minute_rows(hopping)
    assert live_sessions(eight) == session_rows(sessions)
    assert len(six) < len(views)  # coalesced: EMIT CHANGES writes one record per view


def test_windows_app_survives_sigkill_without_loss_or_duplicates(kafka, windows_env):
    app, topics = windows_env
    views = make_views(30_000, seed=9)
    produce(kafka, topics["TOPIC_PAGEVIEWS"], views)
    app.start()
    deadline = time.monotonic() + 120
    # Kill after at least one commit, so the restart must restore state from the changelog.
    # The windows stage reads Quix's repartition topic: its commit carries window outputs.
    repartition = f"repartition__{app.group}--{topics['TOPIC_PAGEVIEWS']}--source"
    while committed_input(kafka, repartition, app.group) == 0:
        assert time.monotonic() < deadline, f"no commit; see {app.log}"
        time.sleep(0.2)
    app.kill()
    before_restart = len(read_all(kafka, topics["TOPIC_TUMBLING"], 0, timeout=10))
    assert 0 < before_restart < len(views), "the kill must land mid-run"
    app.start()
    assert_windows(kafka, topics, views)


def test_repartition_records_are_kept_until_processed_then_purged(kafka, make_topic, tmp_path):
    """Events from 2023 outlive the broker's 7-day time retention only because the repartition
    topic keeps records forever; what the group committed is then deleted, as Kafka Streams
    does, so the topic does not grow without bound."""
    topics = windows_topics(make_topic)
    views = make_views(900)
    produce(kafka, topics["TOPIC_PAGEVIEWS"], views)
    purge_every_second = {"STREAMS_PURGE_INTERVAL_S": "1"}
    with StreamsApp("streams.windows", kafka, topics, tmp_path, env=purge_every_second) as app:
        app.start()
        assert_windows(kafka, topics, views)
        repartition = f"repartition__{app.group}--{topics['TOPIC_PAGEVIEWS']}--source"
        admin = AdminClient({"bootstrap.servers": kafka})
        resource = ConfigResource(ResourceType.TOPIC, repartition)
        config = admin.describe_configs([resource])[resource].result(timeout=30)
        assert config["retention.ms"].value == "-1"
        assert config["retention.bytes"].value == "-1"
        consumer = Consumer({"bootstrap.servers": kafka, "group.id": app.group})
        partitions = [TopicPartition(repartition, p) for p in range(5)]
        try:
            deadline = time.monotonic() + 60
            while True:
                lows = [consumer.get_watermark_offsets(tp, timeout=10)[0] for tp in partitions]
                committed = [max(tp.offset, 0) for tp in consumer.committed(partitions, timeout=10)]
                if lows == committed:
                    break
                assert time.monotonic() < deadline, f"not purged: {lows} {committed}"
                time.sleep(0.5)
        finally:
            consumer.close()
        assert sum(committed) >= len(views)  # the views, plus commit markers between transactions
        assert read_to_end(kafka, repartition) == []  # every processed view purged
