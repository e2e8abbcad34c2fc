"""Faults the processors survive with nothing lost and nothing counted twice.

Each test runs the real apps as subprocesses on a deterministic input (event times in 2023),
causes one fault mid-stream and compares what was committed (read_committed) with results
computed here by brute force:

- topic6 (tumbling 5 min per source) and topic7 (hopping 5 min / 1 min): under the default EMIT
  CHANGES (no cache) every valid view is exactly one update of its tumbling window and one of
  each of its five hopping windows. All updates of a window key land on one partition, in the
  order they were made, so the committed counts of a key must read exactly 1, 2, ..., n: a
  lost view leaves the last count short of n, a view processed twice repeats a count (or
  counts past n), and the records number exactly one (five) per view.
- topic8: the live sessions (the latest row per key, retractions left out) are the expected
  ones.
- topic4 (the users table): the exact sequence of rows and tombstones per user.
- topic5 (country): as topic6, with the average age.

Each check prints a one-line figure (``pytest -s`` shows it): records, fault, lost, duplicated,
and how many records the fault's aborted transactions left in topic6 (what read_committed must
never show). A fault that stops the broker runs on a broker of its own (:class:`PrivateStack`),
never on the shared stack; the other tests use the shared broker with topics of their own.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import shutil
import signal
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import (
    Consumer,
    ConsumerGroupState,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from contracts.users_schema import SCHEMA
from stack.private import PrivateStack
from tests.integration.apps import (
    StreamsApp,
    committed_input,
    create_topic,
    expected_country,
    latest_by_key,
    read_all,
    read_to_end,
)

pytestmark = pytest.mark.integration

T0 = 1_700_000_100_000  # 2023-11-14 22:15 UTC, a multiple of 5 minutes
MINUTE = 60_000
WINDOW = 5 * MINUTE
SPAN = 40 * MINUTE  # 8 tumbling windows per source
SOURCES = ("Homepage", "Inbox", "External", "Search")
#: No External view in this stretch (longer than the 5-minute session gap): two sessions.
HOLE = (15 * MINUTE, 26 * MINUTE)
COUNTRIES = ("Thailand", "Singapore", "Vietnam")
#: Users 1..30 of the table (every 5th has a NULL country, so is not in it) and 99, who never
#: exists: views of 99 and of the NULL users count under country "unknown".
VIEWED_USERS = (*range(1, 31), 99)

WINDOWS_TOPICS = {
    "TOPIC_PAGEVIEWS": 5,
    "TOPIC_TUMBLING": 5,
    "TOPIC_HOPPING": 5,
    "TOPIC_SESSION": 5,
    "TOPIC_LATE": 1,
    "TOPIC_DEAD_LETTER": 1,
}
USERS_TOPICS = {"TOPIC_USERS": 5, "TOPIC_CLEANED_USERS": 5, "TOPIC_DEAD_LETTER": 1}
ALL_TOPICS = {**WINDOWS_TOPICS, **USERS_TOPICS, "TOPIC_PAGEVIEWS_BY_COUNTRY": 5}
#: A member that stops heartbeating (killed, paused) leaves the group after this, not after
#: librdkafka's default 45 s (until then a restarted or surviving instance waits for its
#: partitions); 6 s is the broker's minimum (group.min.session.timeout.ms).
FAST_GROUP = {"STREAMS_CONSUMER_CONFIG": "session.timeout.ms=6000,heartbeat.interval.ms=1000"}
#: And the transaction a SIGKILL leaves open is aborted by the broker after this, not after
#: librdkafka's 60 s; until then it hides the outputs and changelogs it wrote to from
#: read_committed readers, state recovery included. The same paths, in seconds (a restart may
#: now meet the dead transaction still open). Not for a broker outage longer than this, nor
#: for the pause test, where the stale group generation must fence the transaction, not its
#: timeout.
FAST_FAILOVER = {**FAST_GROUP, "STREAMS_PRODUCER_CONFIG": "transaction.timeout.ms=10000"}
#: What the broker answers a fenced instance's commit, as its log shows it.
FENCING_ERRORS = (
    r"\b(UNKNOWN_MEMBER_ID|ILLEGAL_GENERATION|FENCED_INSTANCE_ID|PRODUCER_FENCED"
    r"|INVALID_PRODUCER_EPOCH)\b"
)


# --- input and brute force ---------------------------------------------------------------------


def make_views(count: int, seed: int) -> list[dict[str, Any]]:
    """Views of four sources at random times over 40 minutes, in random time order: every part
    of the input updates every window, and no view is late (the default grace is 24 h - size)."""
    rng = random.Random(seed)
    views = []
    for i in range(count):
        source = SOURCES[i % len(SOURCES)]
        ts = T0 + rng.randrange(SPAN)
        while source == "External" and HOLE[0] <= ts - T0 < HOLE[1]:
            ts = T0 + rng.randrange(SPAN)
        views.append(
            {
                "session_id": f"s{i % 97}",
                "user_id": rng.choice(VIEWED_USERS),
                "source": source,
                "event_timestamp": ts,
            }
        )
    return views


@dataclass(frozen=True)
class Windows:
    """Expected counts by window key ``source|window_start``; sessions as (end, count)."""

    tumbling: dict[str, int]
    hopping: dict[str, int]
    sessions: dict[str, tuple[int, int]]


def expected_windows(views: list[dict[str, Any]]) -> Windows:
    tumbling: Counter[str] = Counter()
    hopping: Counter[str] = Counter()
    times: dict[str, list[int]] = defaultdict(list)
    for view in views:
        source, ts = view["source"], view["event_timestamp"]
        tumbling[f"{source}|{ts - ts % WINDOW}"] += 1
        # Every window [start, start + 5 min) with start a whole minute holds ts.
        for start in range(ts - ts % MINUTE, ts - WINDOW, -MINUTE):
            hopping[f"{source}|{start}"] += 1
        times[source].append(ts)
    sessions = {}
    for source, stamps in times.items():
        stamps.sort()
        start = prev = stamps[0]
        count = 0
        for ts in stamps:
            if ts - prev > WINDOW:  # gap 5 min, inclusive: a view 5 min later still joins
                sessions[f"{source}|{start}"] = (prev, count)
                start, count = ts, 0
            prev, count = ts, count + 1
        sessions[f"{source}|{start}"] = (prev, count)
    return Windows(dict(tumbling), dict(hopping), sessions)


def make_users(first: int, count: int) -> list[dict[str, Any]]:
    """Users first..first+count-1; every 5th has a NULL country (never in the cleaned table)."""
    return [
        {
            "user_id": user_id,
            "age": 20 + user_id % 50,
            "gender": "Female" if user_id % 2 else "Male",
            "country": None if user_id % 5 == 0 else COUNTRIES[user_id % 3],
            "subscription": "Gold",
        }
        for user_id in range(first, first + count)
    ]


def make_user_changes(users: list[dict[str, Any]], updates: int, seed: int) -> list[tuple]:
    """Every user inserted, then ``updates`` random changes: an update, a NULL column (leaves
    the table), a complete row again (rejoins it), a deletion (a tombstone on topic3)."""
    rng = random.Random(seed)
    changes: list[tuple] = [(u["user_id"], u) for u in users]
    for _ in range(updates):
        user = rng.choice(users)
        change = rng.randrange(4)
        if change == 0:
            row = {**user, "age": rng.randrange(18, 90)}
        elif change == 1:
            row = {**user, "gender": None}
        elif change == 2:
            row = {**user, "country": rng.choice(COUNTRIES)}
        else:
            row = None
        changes.append((user["user_id"], row))
    return changes


def expected_table(changes: list[tuple]) -> dict[str, list[dict[str, Any] | None]]:
    """topic4's records per user: every complete row; a tombstone when a user in the table gets
    a NULL column or is deleted; nothing for a user not in the table."""
    out: dict[str, list[dict[str, Any] | None]] = defaultdict(list)
    in_table: set[int] = set()
    for user_id, row in changes:
        if row is not None and all(v is not None for v in row.values()):
            out[str(user_id)].append(row)
            in_table.add(user_id)
        elif user_id in in_table:
            out[str(user_id)].append(None)
            in_table.discard(user_id)
    return dict(out)


# --- Kafka -------------------------------------------------------------------------------------


def views_sender(kafka: str, topic: str) -> Callable[[list[dict[str, Any]]], None]:
    """Writes views as the events generator does: keyed by session_id, timestamp = event time."""
    producer = Producer({"bootstrap.servers": kafka, "partitioner": "murmur2_random"})

    def send(views: list[dict[str, Any]]) -> None:
        for view in views:
            producer.produce(
                topic,
                key=view["session_id"],
                value=json.dumps(view),
                timestamp=view["event_timestamp"],
            )
        assert producer.flush(30) == 0

    return send


def produce_views(kafka: str, topic: str, views: list[dict[str, Any]]) -> None:
    views_sender(kafka, topic)(views)


def users_sender(kafka: str, registry_url: str, topic: str) -> Callable[[list[tuple]], None]:
    """Writes users changes as the users source writes topic3: key user_id, Confluent Avro,
    None = deleted. A change ``(user_id, row)`` is stamped before every view, so a join sees
    the table as it is before the first view; ``(user_id, row, timestamp)`` at that time."""
    serialize = AvroSerializer(SchemaRegistryClient({"url": registry_url}), SCHEMA)
    ctx = SerializationContext(topic, MessageField.VALUE)
    producer = Producer({"bootstrap.servers": kafka, "partitioner": "murmur2_random"})

    def send(changes: list[tuple]) -> None:
        for user_id, row, *stamp in changes:
            value = None if row is None else serialize(row, ctx)
            ts = stamp[0] if stamp else T0 - MINUTE
            producer.produce(topic, key=str(user_id), value=value, timestamp=ts)
        assert producer.flush(30) == 0

    return send


def produce_users(kafka: str, registry_url: str, topic: str, changes: list[tuple]) -> None:
    users_sender(kafka, registry_url, topic)(changes)


class Feeder(threading.Thread):
    """Sends ``items`` in chunks of ``chunk`` every ``period`` seconds, in the background: input
    that is still arriving when the fault strikes, however fast the app is. As a context
    manager it stops feeding however the test ends."""

    def __init__(
        self, send: Callable[[list], None], items: list, chunk: int, period: float
    ) -> None:
        super().__init__(daemon=True)
        self.send, self.items, self.chunk, self.period = send, items, chunk, period
        self.error: BaseException | None = None
        self._stop_feeding = threading.Event()

    def run(self) -> None:
        try:
            for i in range(0, len(self.items), self.chunk):
                if self._stop_feeding.is_set():
                    return
                self.send(self.items[i : i + self.chunk])
                self._stop_feeding.wait(self.period)  # the input's pace, not a synchronisation
        except BaseException as exc:
            self.error = exc

    def finish(self) -> None:
        """Wait until everything is sent; raise what sending raised."""
        self.join(120)
        assert not self.is_alive(), "the feeder did not finish"
        if self.error is not None:
            raise self.error

    def __enter__(self) -> Feeder:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop_feeding.set()
        if self.is_alive():
            self.join(60)


def admin_client(kafka: str) -> AdminClient:
    # Quiet: each of the many short-lived clients of the polls below logs its teardown.
    return AdminClient({"bootstrap.servers": kafka, "log_level": 3})


def create_topics(kafka: str, partitions: dict[str, int]) -> dict[str, str]:
    """Topics on a private broker (``make_topic`` only knows the shared one), by variable."""
    return {
        var: create_topic(kafka, var.removeprefix("TOPIC_").lower(), n)
        for var, n in partitions.items()
    }


def shared_topics(make_topic: Callable[..., str], partitions: dict[str, int]) -> dict[str, str]:
    return {var: make_topic(var.removeprefix("TOPIC_").lower(), n) for var, n in partitions.items()}


def total_records(kafka: str, topic: str) -> int:
    """Every record in ``topic``, aborted ones included (read_uncommitted, up to the end)."""
    return len(read_to_end(kafka, topic, isolation="read_uncommitted"))


def caught_up(kafka: str, records: list[Message], group: str) -> bool:
    """Whether ``group`` has committed past each of ``records`` (all of one topic)."""
    last: dict[int, int] = {}
    for message in records:
        last[message.partition()] = max(last.get(message.partition(), -1), message.offset())
    topic = records[0].topic()
    consumer = Consumer({"bootstrap.servers": kafka, "group.id": group})
    try:
        committed = consumer.committed([TopicPartition(topic, p) for p in last], timeout=10)
        return all(tp.offset > last[tp.partition] for tp in committed)
    finally:
        consumer.close()


def assignment(kafka: str, group: str) -> list[int]:
    """Partitions per member of ``group``, sorted, once it is stable; [] while it rebalances."""
    admin = admin_client(kafka)
    description = admin.describe_consumer_groups([group])[group].result(timeout=10)
    if description.state != ConsumerGroupState.STABLE:
        return []
    return sorted(len(m.assignment.topic_partitions) for m in description.members)


def both_assigned(
    kafka: str, a: StreamsApp, b: StreamsApp, repartition: str, at_least: int
) -> tuple[int, int]:
    """Wait until ``a`` and ``b`` (one group) both hold partitions and the window step has
    committed ``at_least`` input offsets; returns (partitions held in all, offsets committed)."""
    seen: list[int] = []
    progress = [0]

    def ready() -> bool:
        seen[:] = assignment(kafka, a.group)
        progress[0] = committed_input(kafka, repartition, a.group)
        return len(seen) == 2 and min(seen) > 0 and progress[0] >= at_least

    wait_until(ready, f"two instances, both assigned partitions, {at_least} committed", [a, b])
    return sum(seen), progress[0]


def wait_for_progress(
    kafka: str, topic: str, app: StreamsApp, at_least: int, what: str = "the window step"
) -> int:
    """Wait until ``app``'s group has committed ``at_least`` offsets of ``topic``; returns
    how many. Offsets include transaction markers, so fewer than the input's records means
    some of them were not committed yet."""
    progress = [0]

    def ready() -> bool:
        progress[0] = committed_input(kafka, topic, app.group)
        return progress[0] >= at_least

    wait_until(ready, f"{at_least} input offsets committed by {what}", [app])
    return progress[0]


def repartition_topic(app: StreamsApp, topics: dict[str, str], field: str = "source") -> str:
    """Quix's repartition topic of a group_by: the window step reads (and commits) it."""
    return f"repartition__{app.group}--{topics['TOPIC_PAGEVIEWS']}--{field}"


# --- processes ---------------------------------------------------------------------------------


def wait_until(
    condition: Callable[[], bool], what: str, apps: list[StreamsApp], timeout: float = 90
) -> float:
    """Poll ``condition``; fail at once, with the log, if one of ``apps`` exits meanwhile.
    Returns the seconds it took."""
    started = time.monotonic()
    while not condition():
        for app in apps:
            if not alive(app):
                pytest.fail(f"{app.module} exited waiting for {what}: {log_tail(app)}")
        if time.monotonic() - started > timeout:
            pytest.fail(f"no {what} after {timeout:.0f} s")
        time.sleep(0.2)
    return time.monotonic() - started


def log_tail(app: StreamsApp, lines: int = 5) -> str:
    rc = app.process.returncode if app.process else None
    tail = app.log.read_text(errors="replace").splitlines()[-lines:] if app.log.exists() else []
    return f"rc {rc}, {app.log}:\n" + "\n".join(tail)


def alive(app: StreamsApp) -> bool:
    return app.process is not None and app.process.poll() is None


@contextlib.contextmanager
def stopped_at_exit(*apps: StreamsApp, private: bool = False) -> Iterator[None]:
    """Stop ``apps`` however the test ends; a paused one is resumed first, as a stopped process
    acts on no SIGTERM. On the shared broker their internal topics are deleted as well; a
    private broker goes away as a whole."""
    try:
        yield
    finally:
        for app in apps:
            if alive(app):
                assert app.process is not None
                app.process.send_signal(signal.SIGCONT)
        # All stopped before any internal topic goes: a live instance would log their loss.
        for app in apps:
            app.stop()
        if not private:
            for app in apps:
                app.__exit__(None, None, None)


def same_group(app: StreamsApp, other: StreamsApp) -> StreamsApp:
    """``app`` joins ``other``'s consumer group: a second instance of one deployment."""
    app.env = {k: other.group if v == app.group else v for k, v in app.env.items()}
    app.group = other.group
    return app


# --- checks ------------------------------------------------------------------------------------


def count_updates(records: list[Message], column: str = "pageview_count") -> dict[str, list[int]]:
    """Committed counts per window key, in offset order (a key's records share a partition)."""
    updates: dict[str, list[int]] = defaultdict(list)
    for message in records:
        updates[message.key().decode()].append(json.loads(message.value())[column])
    return dict(updates)


def losses(updates: dict[str, list[int]], expected: dict[str, int]) -> tuple[int, int]:
    """(views lost, views counted twice): the final counts' shortfall; repeated counts and
    counts past the expected ones."""
    lost = sum(max(0, n - max(updates.get(key, [0]))) for key, n in expected.items())
    duplicated = sum(
        len(counts) - len(set(counts)) + max(0, max(counts) - expected.get(key, 0))
        for key, counts in updates.items()
    )
    return lost, duplicated


def one_by_one(expected: dict[str, int]) -> dict[str, list[int]]:
    return {key: list(range(1, n + 1)) for key, n in expected.items()}


def window_rows(expected: dict[str, int]) -> dict[str, dict[str, Any]]:
    rows = {}
    for key, n in expected.items():
        source, start = key.split("|")
        rows[key] = {
            "source": source,
            "window_start": int(start),
            "window_end": int(start) + WINDOW,
            "pageview_count": n,
        }
    return rows


def check_windows(
    kafka: str, topics: dict[str, str], views: list[dict[str, Any]], fault: str
) -> tuple[int, int]:
    """topic6, 7 and 8 against the brute force; prints the figure line; (lost, duplicated)."""
    expected = expected_windows(views)
    six = read_all(kafka, topics["TOPIC_TUMBLING"], len(views))
    seven = read_all(kafka, topics["TOPIC_HOPPING"], 5 * len(views))
    eight = read_all(kafka, topics["TOPIC_SESSION"], len(expected.sessions))
    lost, duplicated = losses(count_updates(six), expected.tumbling)
    lost7, duplicated7 = losses(count_updates(seven), expected.hopping)
    aborted = total_records(kafka, topics["TOPIC_TUMBLING"]) - len(six)
    print(
        f"\nfaults: {fault}: {len(views)} views, {len(six)} topic6 records, {lost} lost, "
        f"{duplicated} duplicated (topic7: {len(seven)} records, {lost7} lost, {duplicated7} "
        f"duplicated; {aborted} topic6 records aborted)"
    )
    assert (lost, duplicated, lost7, duplicated7) == (0, 0, 0, 0)
    # The exact proof: each window's committed counts are 1..n, one record per view.
    assert count_updates(six) == one_by_one(expected.tumbling)
    assert len(six) == len(views)
    assert latest_by_key(six) == window_rows(expected.tumbling)
    assert count_updates(seven) == one_by_one(expected.hopping)
    assert len(seven) == 5 * len(views)
    live = {k: v for k, v in latest_by_key(eight).items() if not v["deleted"]}
    assert live == {
        key: {
            "source": key.split("|")[0],
            "window_start": int(key.split("|")[1]),
            "window_end": end,
            "pageview_count": n,
            "deleted": False,
        }
        for key, (end, n) in expected.sessions.items()
    }
    return lost, duplicated


def table_records(records: list[Message]) -> dict[str, list[dict[str, Any] | None]]:
    out: dict[str, list[dict[str, Any] | None]] = defaultdict(list)
    for message in records:
        value = message.value()
        out[message.key().decode()].append(None if value is None else json.loads(value))
    return dict(out)


def table_losses(
    got: dict[str, list[dict[str, Any] | None]], expected: dict[str, list[dict[str, Any] | None]]
) -> tuple[int, int]:
    """(missing, extra) table records, as multisets of (user, row)."""

    def bag(table: dict[str, list[dict[str, Any] | None]]) -> Counter[tuple[str, str]]:
        return Counter((k, json.dumps(v, sort_keys=True)) for k, vs in table.items() for v in vs)

    return sum((bag(expected) - bag(got)).values()), sum((bag(got) - bag(expected)).values())


@contextlib.contextmanager
def private_kafka(home: Path) -> Iterator[PrivateStack]:
    """A broker of the test's own, stopped however the test ends (even if it failed to start)."""
    stack = PrivateStack(home, ["kafka"])
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


# --- the faults --------------------------------------------------------------------------------


def test_broker_stopped_for_20_s_while_windows_runs(tmp_path: Path) -> None:
    views = make_views(12_000, seed=1)
    half = len(views) // 2
    with private_kafka(tmp_path / "stack") as stack:
        topics = create_topics(stack.kafka, WINDOWS_TOPICS)
        app = StreamsApp("streams.windows", stack.kafka, topics, tmp_path, env=stack.app_env())
        with stopped_at_exit(app, private=True):
            produce_views(stack.kafka, topics["TOPIC_PAGEVIEWS"], views[:half])
            app.start()
            # The broker goes while the app is busy with the first half.
            progress = wait_for_progress(
                stack.kafka, repartition_topic(app, topics), app, half // 5
            )
            stack.down("kafka")
            time.sleep(20)  # the fault itself: the broker is away for 20 s
            stack.up("kafka")
            assert alive(app), f"streams.windows exited during the outage: {log_tail(app)}"
            produce_views(stack.kafka, topics["TOPIC_PAGEVIEWS"], views[half:])
            check_windows(
                stack.kafka,
                topics,
                views,
                f"broker stopped 20 s (at {progress} of {half} first-half offsets committed)",
            )
            assert alive(app), f"streams.windows exited after the outage: {log_tail(app)}"


def two_instances(
    kafka: str, topics: dict[str, str], tmp_path: Path, env: dict[str, str]
) -> tuple[StreamsApp, StreamsApp]:
    """Two instances of streams.windows in one consumer group, each with its own state."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = StreamsApp("streams.windows", kafka, topics, tmp_path / "a", env=env)
    b = StreamsApp("streams.windows", kafka, topics, tmp_path / "b", env=env)
    return a, same_group(b, a)


BACKLOG = 2000


def view_feeder(kafka: str, topics: dict[str, str], views: list[dict[str, Any]]) -> Feeder:
    """The first BACKLOG views written now, the rest to feed (about 9 s of them)."""
    send = views_sender(kafka, topics["TOPIC_PAGEVIEWS"])
    send(views[:BACKLOG])
    return Feeder(send, views[BACKLOG:], chunk=200, period=0.1)


def feed_two(
    kafka: str, topics: dict[str, str], feeder: Feeder, a: StreamsApp, b: StreamsApp
) -> tuple[int, int]:
    """Start ``a`` and ``b`` on the backlog, then feed them the rest and wait until a fifth of
    it is committed, both instances holding partitions: the fault then lands in the thick of
    the run, however fast they are. Returns (partitions the group holds, input offsets
    committed)."""
    a.start()
    b.start()
    repartition = repartition_topic(a, topics)
    both_assigned(kafka, a, b, repartition, 1)
    feeder.start()
    return both_assigned(kafka, a, b, repartition, BACKLOG + len(feeder.items) // 5)


def test_one_of_two_instances_sigkilled_the_other_takes_over(
    kafka: str, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    topics = shared_topics(make_topic, WINDOWS_TOPICS)
    views = make_views(20_000, seed=2)
    a, b = two_instances(kafka, topics, tmp_path, FAST_FAILOVER)
    with stopped_at_exit(a, b), view_feeder(kafka, topics, views) as feeder:
        held, progress = feed_two(kafka, topics, feeder, a, b)
        a.kill()
        assert feeder.is_alive(), "the kill must land mid-stream"
        took = wait_until(
            lambda: assignment(kafka, a.group) == [held],
            "the survivor holding every partition",
            [b],
        )
        feeder.finish()
        check_windows(
            kafka,
            topics,
            views,
            f"1 of 2 instances SIGKILLed (at {progress} of {len(views)} offsets committed; "
            f"taken over in {took:.0f} s)",
        )
        assert alive(b), f"the surviving instance exited: {log_tail(b)}"


def test_a_paused_instance_is_fenced(
    kafka: str, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    """SIGSTOP freezes the whole process, heartbeats included: the group drops the member after
    session.timeout.ms (lowered to 6 s; the stop lasts longer) and the other instance takes its
    partitions from the last commit. On SIGCONT the paused one still holds an open transaction
    and the records it was processing: whatever it writes then must never commit, as its
    transaction carries a stale group generation."""
    topics = shared_topics(make_topic, WINDOWS_TOPICS)
    views = make_views(20_000, seed=3)
    a, b = two_instances(kafka, topics, tmp_path, FAST_GROUP)
    with stopped_at_exit(a, b), view_feeder(kafka, topics, views) as feeder:
        held, progress = feed_two(kafka, topics, feeder, a, b)
        assert a.process is not None
        a.process.send_signal(signal.SIGSTOP)
        paused_at = time.monotonic()
        assert feeder.is_alive(), "the pause must land mid-stream"
        wait_until(
            lambda: assignment(kafka, a.group) == [held],
            "the other instance holding every partition",
            [b],
        )
        # The survivor commits on the partitions it took over before the paused one resumes.
        repartition = repartition_topic(a, topics)
        taken = committed_input(kafka, repartition, a.group)
        wait_until(
            lambda: committed_input(kafka, repartition, a.group) > taken,
            "a commit by the survivor",
            [b],
        )
        a.process.send_signal(signal.SIGCONT)
        paused = time.monotonic() - paused_at
        # Settled: the resumed instance has rejoined (or exited); either way its late writes
        # have met the broker before the output is read.
        wait_until(
            lambda: not alive(a) or len(assignment(kafka, a.group)) == 2,
            "the resumed instance rejoining the group",
            [b],
        )
        feeder.finish()
        refused = re.search(FENCING_ERRORS, a.log.read_text(errors="replace"))
        check_windows(
            kafka,
            topics,
            views,
            f"1 of 2 instances SIGSTOPped {paused:.0f} s (at {progress} of {len(views)} offsets "
            f"committed), then SIGCONT (its commit refused: "
            f"{refused and refused.group()}; then "
            f"{'rejoined' if alive(a) else f'exited rc {a.process.returncode}'})",
        )
        assert alive(b), f"the other instance exited: {log_tail(b)}"
        assert total_records(kafka, topics["TOPIC_TUMBLING"]) > len(views), (
            "no aborted write in topic6: the pause caught nothing in flight"
        )


def test_state_directory_deleted_while_down(
    kafka: str, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    topics = shared_topics(make_topic, WINDOWS_TOPICS)
    views = make_views(12_000, seed=4)
    half = len(views) // 2
    state = tmp_path / "state"
    app = StreamsApp(
        "streams.windows",
        kafka,
        topics,
        tmp_path,
        env={**FAST_FAILOVER, "STREAMS_STATE_DIR": str(state)},
    )
    produce_views(kafka, topics["TOPIC_PAGEVIEWS"], views[:half])
    with stopped_at_exit(app):
        app.start()
        # Killed once half the first half is committed: the restart resumes after the
        # committed offsets, so those counts must come back from the changelog. Mid-run or
        # not (one commit may hold all of it), as it happens.
        progress = wait_for_progress(kafka, repartition_topic(app, topics), app, half // 2)
        app.kill()
        assert any(p.is_file() for p in state.rglob("*")), "no state to lose"
        shutil.rmtree(state)
        app.start()
        # The rest updates the same windows: their counts must go on from the restored ones.
        produce_views(kafka, topics["TOPIC_PAGEVIEWS"], views[half:])
        check_windows(
            kafka,
            topics,
            views,
            f"SIGKILL (at {progress} of {half} offsets committed), state directory deleted, "
            "restart",
        )
        assert alive(app), f"streams.windows exited: {log_tail(app)}"


def check_cached_windows(
    kafka: str, topics: dict[str, str], views: list[dict[str, Any]], fault: str
) -> None:
    """topic6, 7 and 8 of ``--emit cached`` against the brute force: each window's latest
    count is its expected one, and its committed counts only rise (a partial counted twice
    would overshoot or repeat a count; one lost would leave the last short)."""
    expected = expected_windows(views)
    deadline = time.monotonic() + 120
    while True:  # the last periods' flushes come on the clock, after the last input
        six = read_all(kafka, topics["TOPIC_TUMBLING"], len(expected.tumbling), timeout=60)
        if latest_by_key(six) == window_rows(expected.tumbling) or time.monotonic() > deadline:
            break
    seven = read_all(kafka, topics["TOPIC_HOPPING"], len(expected.hopping), timeout=60)
    eight = read_all(kafka, topics["TOPIC_SESSION"], len(expected.sessions), timeout=60)
    updates, updates7 = count_updates(six), count_updates(seven)
    lost, duplicated = losses(updates, expected.tumbling)
    lost7, duplicated7 = losses(updates7, expected.hopping)
    print(
        f"\nfaults: {fault}: {len(views)} views, {len(six)} topic6 records, {lost} lost, "
        f"{duplicated} duplicated (topic7: {len(seven)} records, {lost7} lost, {duplicated7} "
        "duplicated)"
    )
    assert (lost, duplicated, lost7, duplicated7) == (0, 0, 0, 0)
    assert all(counts == sorted(counts) for counts in [*updates.values(), *updates7.values()])
    assert latest_by_key(six) == window_rows(expected.tumbling)
    assert {k: v["pageview_count"] for k, v in latest_by_key(seven).items()} == expected.hopping
    live = {k: v for k, v in latest_by_key(eight).items() if not v["deleted"]}
    assert {k: (v["window_end"], v["pageview_count"]) for k, v in live.items()} == (
        expected.sessions
    )


def test_two_phase_cached_windows_sigkilled_mid_stream(
    kafka: str, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    """--emit cached aggregates in two phases: the local stage's state, the partials it sent
    and the input offsets commit in one transaction, so a SIGKILL neither loses a partial nor
    sends one twice."""
    topics = shared_topics(make_topic, WINDOWS_TOPICS)
    views = make_views(20_000, seed=6)
    env = {**FAST_FAILOVER, "WINDOWS_EMIT": "cached", "WINDOWS_CACHE_MS": "500"}
    app = StreamsApp("streams.windows", kafka, topics, tmp_path, env=env)
    with stopped_at_exit(app), view_feeder(kafka, topics, views) as feeder:
        app.start()
        # The local stage commits topic1's offsets; the kill lands while views still arrive.
        wait_for_progress(kafka, topics["TOPIC_PAGEVIEWS"], app, BACKLOG, "the local stage")
        feeder.start()
        at = BACKLOG + len(feeder.items) // 5
        progress = wait_for_progress(kafka, topics["TOPIC_PAGEVIEWS"], app, at, "the local stage")
        app.kill()
        assert feeder.is_alive(), "the kill must land mid-stream"
        app.start()
        feeder.finish()
        check_cached_windows(
            kafka,
            topics,
            views,
            f"--emit cached (two-phase) SIGKILLed at {progress} of {len(views)} input offsets "
            "committed, restarted",
        )
        partials = repartition_topic(app, topics, "source-partials")
        crossed = total_records(kafka, partials)
        print(f"faults: {crossed} partial batches crossed the repartition for {len(views)} views")
        assert 0 < crossed < len(views) / 10
        assert alive(app), f"streams.windows exited: {log_tail(app)}"


def test_users_sigkilled_mid_stream(
    kafka: str, schema_registry_url: str, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    topics = shared_topics(make_topic, USERS_TOPICS)
    changes = make_user_changes(make_users(1, 2000), updates=10_000, seed=5)
    expected = expected_table(changes)
    count = sum(map(len, expected.values()))
    send = users_sender(kafka, schema_registry_url, topics["TOPIC_USERS"])
    # streams.users takes thousands of rows in one commit: the changes keep arriving (about 4 s
    # of them) while it runs, as from the users source, so that the kill lands mid-stream.
    first = 1000
    send(changes[:first])
    app = StreamsApp("streams.users", kafka, topics, tmp_path, env=FAST_FAILOVER)
    with stopped_at_exit(app), Feeder(send, changes[first:], chunk=250, period=0.1) as feeder:
        app.start()
        wait_for_progress(kafka, topics["TOPIC_USERS"], app, 1, "streams.users")
        feeder.start()
        progress = wait_for_progress(
            kafka, topics["TOPIC_USERS"], app, len(changes) // 5, "streams.users"
        )
        app.kill()
        assert feeder.is_alive(), "the kill must land mid-stream"
        app.start()
        feeder.finish()
        out = read_all(kafka, topics["TOPIC_CLEANED_USERS"], count)
        aborted = total_records(kafka, topics["TOPIC_CLEANED_USERS"]) - len(out)
        assert alive(app), f"streams.users exited: {log_tail(app)}"
    missing, extra = table_losses(table_records(out), expected)
    print(
        f"\nfaults: streams.users SIGKILLed (at {progress} of {len(changes)} offsets "
        f"committed): {len(changes)} users changes, {len(out)} topic4 records, {missing} lost, "
        f"{extra} duplicated ({aborted} topic4 records aborted)"
    )
    assert (missing, extra) == (0, 0)
    assert table_records(out) == expected
    assert len(out) == count


def test_all_processors_in_one_process_sigkilled_mid_stream(
    kafka: str, schema_registry_url: str, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    topics = shared_topics(make_topic, ALL_TOPICS)
    base = make_users(1, 30)
    table = {u["user_id"]: u for u in base if u["country"] is not None}
    # Users no view refers to: half of their changes before the kill, half while the app is
    # down, so that the tombstones after the restart depend on the users state restored
    # from the changelog, without changing what any view joins.
    more = make_user_changes(make_users(1001, 500), updates=2500, seed=6)
    views = make_views(12_000, seed=6)
    app = StreamsApp(
        "streams",
        kafka,
        topics,
        tmp_path,
        env={**FAST_FAILOVER, "SCHEMA_REGISTRY_URL": schema_registry_url},
    )
    send_views = views_sender(kafka, topics["TOPIC_PAGEVIEWS"])
    send_users = users_sender(kafka, schema_registry_url, topics["TOPIC_USERS"])
    with stopped_at_exit(app):
        send_users([(u["user_id"], u) for u in base])
        app.start()
        cleaned = topics["TOPIC_CLEANED_USERS"]
        # The table is in the join's state before the first view: every view joins the same
        # users, whatever the timing.
        rows = read_all(kafka, cleaned, len(table))
        assert len(rows) == len(table), f"see {app.log}"
        wait_until(lambda: caught_up(kafka, rows, app.group), "the join reading the table", [app])
        # A backlog, not fed while the app runs as in the users test: the app reads its topics
        # aligned by timestamp (one step joins two of them), and with users changes streaming
        # in among the views it crawled (measured here: a few hundred views/s, against
        # thousands from a backlog).
        send_users(more[: len(more) // 2])
        send_views(views)
        progress = wait_for_progress(kafka, repartition_topic(app, topics), app, len(views) // 5)
        app.kill()
        assert progress < len(views), "the kill must land mid-run"
        send_users(more[len(more) // 2 :])
        app.start()
        check_windows(
            kafka,
            topics,
            views,
            f"python -m streams SIGKILLed (at {progress} of {len(views)} offsets committed)",
        )
        expected_users = expected_table([(u["user_id"], u) for u in base] + more)
        count = sum(map(len, expected_users.values()))
        four = read_all(kafka, cleaned, count)
        five = read_all(kafka, topics["TOPIC_PAGEVIEWS_BY_COUNTRY"], len(views))
        aborted4 = total_records(kafka, cleaned) - len(four)
        aborted5 = total_records(kafka, topics["TOPIC_PAGEVIEWS_BY_COUNTRY"]) - len(five)
        assert alive(app), f"python -m streams exited: {log_tail(app)}"
    missing, extra = table_losses(table_records(four), expected_users)
    country = expected_country(views, table)
    lost, duplicated = losses(
        count_updates(five), {k: v["pageview_count"] for k, v in country.items()}
    )
    print(
        f"faults: python -m streams SIGKILLed: topic4 {len(four)} records, {missing} lost, "
        f"{extra} duplicated ({aborted4} aborted); topic5 {len(five)} records, {lost} lost, "
        f"{duplicated} duplicated ({aborted5} aborted)"
    )
    assert (missing, extra, lost, duplicated) == (0, 0, 0, 0)
    assert table_records(four) == expected_users
    assert count_updates(five) == one_by_one({k: v["pageview_count"] for k, v in country.items()})
    assert len(five) == len(views)
    assert latest_by_key(five) == country


def test_consumer_config_can_lower_max_poll_interval(
    kafka: str, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    """STREAMS_CONSUMER_CONFIG passes librdkafka properties: max.poll.interval.ms is one, and
    the one a deployment lowers to have a stuck instance replaced sooner."""
    topics = shared_topics(make_topic, WINDOWS_TOPICS)
    views = make_views(600, seed=7)
    produce_views(kafka, topics["TOPIC_PAGEVIEWS"], views)
    config = {"STREAMS_CONSUMER_CONFIG": "max.poll.interval.ms=10000,session.timeout.ms=6000"}
    app = StreamsApp("streams.windows", kafka, topics, tmp_path, env=config)
    with stopped_at_exit(app):
        app.start()
        # Fails at once if the app exits at start-up, instead of in read_all's timeout.
        wait_for_progress(kafka, repartition_topic(app, topics), app, 1)
        check_windows(kafka, topics, views, "max.poll.interval.ms=10000 (no fault)")
