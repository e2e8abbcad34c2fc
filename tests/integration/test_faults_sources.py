"""The users source, and streams.users after it, through faults of the services they use.

Each test stops, restarts or kills something, so all of them run on a private stack
(:class:`PrivateStack`: Kafka, MySQL and the registry with their own STACK_HOME and ports): the
shared stack is never disturbed. Each checks topic3 against what MySQL went through, change by
change: every change exactly once, in order per user, none skipped, none repeated.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import pymysql
import pytest
from confluent_kafka import IsolationLevel, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from producers.mysql import ensure_table
from producers.users import COUNTRIES, NULLABLE, UserSpec, generate
from stack.private import PrivateStack, free_port
from tests.integration.apps import StreamsApp, create_topic, read_all

pytestmark = pytest.mark.integration

#: A row as topic3 (Avro) and topic4 (JSON) carry it; None is a tombstone.
Change = dict[str, Any] | None
SPEC = UserSpec(countries=COUNTRIES.split(","), null_share=0.2)


@pytest.fixture(scope="module")
def private_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateStack]:
    home = tmp_path_factory.mktemp("faults-stack")
    with PrivateStack(home, ["kafka", "mysql", "schema-registry"]) as stack:
        yield stack


@pytest.fixture
def stack(private_stack: PrivateStack) -> PrivateStack:
    private_stack.up()  # a test that failed mid-fault may have left a service down
    return private_stack


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"after {timeout:.0f} s: {what}"
        time.sleep(0.05)


class UsersTable:
    """A users table of the private MySQL changed in steps, with a snapshot after each.

    A polling source sees rows, not statements: a user changed twice between two polls is sent
    once, in the last state. So a step changes only *settled* users (whose last change the
    source has sent: see :meth:`settle`), each once, and the changes topic3 must hold follow
    from the snapshots exactly (:meth:`expected`).
    """

    def __init__(self, stack: PrivateStack, seed: int) -> None:
        self.stack = stack
        self.name = f"Users_fault_{uuid.uuid4().hex[:8]}"
        self.rng = random.Random(seed)
        self.conn = self.connect()
        ensure_table(self.conn, self.name)
        self.snapshots: list[dict[int, tuple[datetime, dict[str, Any]]]] = [{}]
        self.settled: set[int] = set()

    def connect(self) -> pymysql.connections.Connection:
        env = self.stack.app_env()
        return pymysql.connect(
            host=env["MYSQL_HOST"],
            port=int(env["MYSQL_PORT"]),
            user="demo",
            password=Path(env["MYSQL_PASSWORD_FILE"]).read_text().strip(),
            database="demo",
            autocommit=True,
            connect_timeout=10,
            read_timeout=60,
        )

    def step(self, inserts: int = 0, updates: int = 0, deletes: int = 0) -> None:
        chosen = self.rng.sample(sorted(self.settled), updates + deletes)
        self.settled -= set(chosen)
        with self.conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO `{self.name}` (age, gender, country, subscription) "
                f"VALUES (%s, %s, %s, %s)",
                [tuple(row[c] for c in NULLABLE) for row in generate(inserts, SPEC, self.rng)],
            )
            cur.executemany(
                f"UPDATE `{self.name}` SET age=%s, gender=%s, country=%s, subscription=%s "
                f"WHERE user_id=%s",
                [
                    (*(row[c] for c in NULLABLE), user_id)
                    for row, user_id in zip(
                        generate(updates, SPEC, self.rng), chosen[:updates], strict=True
                    )
                ],
            )
            cur.executemany(
                f"DELETE FROM `{self.name}` WHERE user_id=%s", [(i,) for i in chosen[updates:]]
            )
            cur.execute(
                f"SELECT user_id, age, gender, country, subscription, updated_at FROM `{self.name}`"
            )
            self.snapshots.append(
                {
                    row[0]: (row[5], dict(zip(("user_id", *NULLABLE), row[:5], strict=True)))
                    for row in cur
                }
            )

    def settle(self) -> None:
        """The source has sent every change so far: any user may be changed again."""
        self.settled = set(self.snapshots[-1])

    def expected(self) -> dict[str, list[Change]]:
        """Per user (topic3's key), the changes in order: a row when inserted or updated (its
        updated_at moved: MySQL leaves it alone when an UPDATE changes nothing), None when
        deleted."""
        changes: dict[str, list[Change]] = defaultdict(list)
        for before, after in pairwise(self.snapshots):
            for user_id, (updated_at, row) in after.items():
                if user_id not in before or before[user_id][0] != updated_at:
                    changes[str(user_id)].append(row)
            for user_id in before.keys() - after.keys():
                changes[str(user_id)].append(None)
        return dict(changes)


def count(changes: dict[str, list[Change]]) -> int:
    return sum(map(len, changes.values()))


def cleaned(changes: dict[str, list[Change]]) -> dict[str, list[Change]]:
    """What streams.users must write to topic4 for these topic3 changes: a complete row,
    and a tombstone when a user in the table is deleted or gets a NULL column."""
    out: dict[str, list[Change]] = {}
    for key, values in changes.items():
        rows: list[Change] = []
        for value in values:
            if value is not None and all(value[c] is not None for c in NULLABLE):
                rows.append(value)
            elif rows and rows[-1] is not None:
                rows.append(None)
        if rows:
            out[key] = rows
    return out


def topic3_changes(stack: PrivateStack, topic: str, expected: int) -> dict[str, list[Change]]:
    """topic3's committed records per key, in offset order (one key, one partition)."""
    deserialize = AvroDeserializer(SchemaRegistryClient({"url": stack.registry_url}))
    ctx = SerializationContext(topic, MessageField.VALUE)
    changes: dict[str, list[Change]] = defaultdict(list)
    for message in read_all(stack.kafka, topic, expected, timeout=120):
        value = message.value()
        changes[message.key().decode()].append(None if value is None else deserialize(value, ctx))
    return dict(changes)


def topic4_changes(stack: PrivateStack, topic: str, expected: int) -> dict[str, list[Change]]:
    changes: dict[str, list[Change]] = defaultdict(list)
    for message in read_all(stack.kafka, topic, expected, timeout=120):
        value = message.value()
        changes[message.key().decode()].append(None if value is None else json.loads(value))
    return dict(changes)


def lost_and_repeated(
    expected: dict[str, list[Change]], actual: dict[str, list[Change]]
) -> tuple[int, int]:
    def bag(changes: dict[str, list[Change]]) -> Counter[tuple[str, str]]:
        return Counter(
            (key, json.dumps(value, sort_keys=True))
            for key, values in changes.items()
            for value in values
        )

    want, got = bag(expected), bag(actual)
    return sum((want - got).values()), sum((got - want).values())


def assert_exact(expected: dict[str, list[Change]], actual: dict[str, list[Change]]) -> None:
    wrong = sorted(k for k in expected.keys() | actual.keys() if expected.get(k) != actual.get(k))
    assert not wrong, "\n".join(
        f"user {k}: expected {expected.get(k)}, got {actual.get(k)}" for k in wrong[:5]
    ) + (f"\n... {len(wrong)} users differ" if len(wrong) > 5 else "")


def catch_up(stack: PrivateStack, topic: str, table: UsersTable) -> None:
    """Wait until topic3 holds every change so far (counted: it need not be decodable)."""
    want = count(table.expected())
    got = len(read_all(stack.kafka, topic, want, timeout=120))
    assert got >= want, f"topic3 holds {got} of {want} changes after 120 s"
    table.settle()


class Source:
    """``python -m producers.users_source`` on the private stack, its output in a log file."""

    def __init__(self, stack: PrivateStack, log: Path, table: UsersTable, topic: str, batch: int):
        self.log = log
        self.env = {
            # The shared stack's password, if set, must not override the private one's file.
            **{k: v for k, v in os.environ.items() if k != "MYSQL_PASSWORD"},
            **stack.app_env(),
            "USERS_TABLE": table.name,
            "TOPIC_USERS": topic,
            "USERS_SOURCE_TRANSACTIONAL_ID": f"test-{table.name}",
            "USERS_SOURCE_BATCH": str(batch),
            "USERS_SOURCE_LAG_MS": "0",
            "USERS_SOURCE_POLL_S": "0.2",
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "producers.users_source", *args],
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def start_resumed(self) -> None:
        """Start it and wait until it has its resume point (older instances fenced by then)."""
        runs = self.text().count("resuming after") if self.log.exists() else 0
        self.start()
        wait_until(lambda: self.text().count("resuming after") > runs, 120, "no resume point")

    def running(self) -> subprocess.Popen[bytes]:
        assert self.process is not None
        assert self.process.poll() is None, f"the source exited:\n{self.text()[-3000:]}"
        return self.process

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def sent(self) -> int:
        """Changes its current run has committed, from its log."""
        totals = re.findall(r"(\d+) in all", self.text().rpartition("resuming after")[2])
        return int(totals[-1]) if totals else 0


def test_users_source_rides_out_a_mysql_restart(stack: PrivateStack, tmp_path: Path) -> None:
    topic = create_topic(stack.kafka, "users", 5)
    table = UsersTable(stack, seed=41)
    # Small batches: the restart lands in the middle of a burst of many transactions.
    source = Source(stack, tmp_path / "source.log", table, topic, batch=25)
    table.step(inserts=300)
    source.start()
    try:
        catch_up(stack, topic, table)
        table.step(inserts=100, updates=40, deletes=20)
        catch_up(stack, topic, table)
        table.step(inserts=4000, updates=40, deletes=20)
        burst_end = count(table.expected())
        started = source.sent()
        wait_until(lambda: source.sent() >= started + 100, 60, "the source is not on the burst")
        table.conn.close()
        down_at = time.monotonic()
        stack.down("mysql")
        time.sleep(5)
        stack.up("mysql")
        outage = time.monotonic() - down_at
        source.running()
        table.conn = table.connect()
        # Users the burst did not touch (they are not settled): the source may not be done.
        table.step(inserts=100, updates=40, deletes=20)
        catch_up(stack, topic, table)
        table.step(inserts=50, updates=60, deletes=30)  # the burst's users too
        catch_up(stack, topic, table)
        source.running()
    finally:
        source.stop()
    log = source.text()
    before_fault = log.partition("MySQL unreachable")[0]
    sent_at_fault = int(re.findall(r"(\d+) in all", before_fault)[-1])
    retries = log.count("MySQL unreachable")
    expected = table.expected()
    actual = topic3_changes(stack, topic, count(expected))
    lost, repeated = lost_and_repeated(expected, actual)
    print(
        f"\nusers source, MySQL restart: {count(expected)} changes; fault: MySQL down "
        f"{outage:.1f} s with {sent_at_fault} of {burst_end} sent, {retries} retries; "
        f"lost {lost}, repeated {repeated}"
    )
    assert retries >= 1 and "MySQL reachable again" in log, log[-3000:]
    assert sent_at_fault < burst_end, "the restart must land mid-burst"
    assert_exact(expected, actual)


@pytest.mark.parametrize("service", ["MySQL", "Schema Registry"])
def test_users_source_gives_up_on_a_service_that_stays_away(
    stack: PrivateStack, tmp_path: Path, service: str
) -> None:
    topic = create_topic(stack.kafka, "users", 1)
    table = UsersTable(stack, seed=44)
    table.step(inserts=10)
    source = Source(stack, tmp_path / "source.log", table, topic, batch=50)
    nowhere = f"127.0.0.1:{free_port()}"
    if service == "MySQL":
        source.env["MYSQL_PORT"] = nowhere.rpartition(":")[2]
    else:
        source.env["SCHEMA_REGISTRY_URL"] = f"http://{nowhere}/apis/ccompat/v7"
    source.env["USERS_SOURCE_RECONNECT_S"] = "3"
    started = time.monotonic()
    source.start("--once")
    assert source.process is not None
    code = source.process.wait(60)
    took = time.monotonic() - started
    log = source.text()
    sent = len(read_all(stack.kafka, topic, 0, timeout=5))
    print(
        f"\nusers source, {service} never back: 10 changes; fault: {service} at a closed "
        f"port, limit 3 s; exit {code} after {took:.1f} s, "
        f"{log.count(f'{service} unreachable (')} retries, {sent} sent"
    )
    assert code == 1, log[-3000:]
    assert f"giving up: {service} unreachable for 3 s" in log, log[-3000:]
    assert "Traceback" not in log, "a clear error, not a crash"
    assert sent == 0


def open_offsets(admin: AdminClient, topic: str, partitions: int) -> list[int]:
    """Per partition, the offsets after its last stable offset: an open transaction's."""
    spec = {TopicPartition(topic, p): OffsetSpec.latest() for p in range(partitions)}
    ends = {}
    for level in (IsolationLevel.READ_UNCOMMITTED, IsolationLevel.READ_COMMITTED):
        futures = admin.list_offsets(spec, isolation_level=level)
        ends[level] = [futures[tp].result().offset for tp in spec]
    high, stable = ends[IsolationLevel.READ_UNCOMMITTED], ends[IsolationLevel.READ_COMMITTED]
    return [h - s for h, s in zip(high, stable, strict=True)]


def kill_mid_transaction(
    source: Source, admin: AdminClient, topic: str, partitions: int, least: int
) -> list[int] | None:
    """SIGKILL the source once its open transaction holds ``least`` records on every
    partition; the records it left open (aborted when it restarts), or None if it committed
    first."""
    deadline = time.monotonic() + 120
    while min(open_offsets(admin, topic, partitions)) < least:
        assert time.monotonic() < deadline, "no transaction of the expected size in 120 s"
        source.running()
    process = source.running()
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    time.sleep(1)  # a commit already sent completes at the broker all the same
    left = open_offsets(admin, topic, partitions)
    return left if min(left) >= least else None


def test_users_source_resumes_after_batches_larger_than_the_old_window(
    stack: PrivateStack, tmp_path: Path
) -> None:
    partitions, batch = 3, 6000
    topic = create_topic(stack.kafka, "users", partitions)
    table = UsersTable(stack, seed=42)
    table.step(inserts=6 * batch)
    source = Source(stack, tmp_path / "source.log", table, topic, batch)
    admin = AdminClient({"bootstrap.servers": stack.kafka})
    # The old resume read looked at each partition's last 500 offsets only: an aborted batch
    # of 2000 records per partition hid the committed ones from it.
    least = 600
    left_open: list[list[int]] = []
    for _attempt in range(6):
        # Until it has fenced the killed one, that one's open transaction is still there.
        source.start_resumed()
        if not left_open:
            # A batch committed first: the resume point then lies behind the aborted records.
            wait_until(lambda: source.sent() >= batch, 120, "no batch committed")
        found = kill_mid_transaction(source, admin, topic, partitions, least)
        if found is not None:
            left_open.append(found)
        if len(left_open) == 2:
            break
    assert len(left_open) == 2, "the kills never landed mid-transaction"
    finish = subprocess.run(
        [sys.executable, "-m", "producers.users_source", "--once"],
        env=source.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finish.returncode == 0, finish.stderr[-3000:]
    resumes = re.findall(
        r"resuming after Position\(.*?user_id=(\d+)", source.text() + finish.stderr
    )
    expected = table.expected()
    actual = topic3_changes(stack, topic, count(expected))
    lost, repeated = lost_and_repeated(expected, actual)
    print(
        f"\nusers source, batches of {batch} on {partitions} partitions: {count(expected)} "
        f"changes; fault: SIGKILL mid-transaction twice, leaving {left_open} offsets per "
        f"partition open (old window 500), resumed after users {resumes}; "
        f"lost {lost}, repeated {repeated}"
    )
    assert_exact(expected, actual)


class Supervisor(threading.Thread):
    """Starts an app again whenever it exits, as a restart policy (systemd, compose) does."""

    def __init__(self, app: StreamsApp) -> None:
        super().__init__(daemon=True)
        self.app = app
        #: (time.monotonic(), exit code) of each exit.
        self.exits: list[tuple[float, int]] = []
        self.lock = threading.Lock()
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.5):
            with self.lock:
                assert self.app.process is not None
                code = self.app.process.poll()
                if code is not None:
                    self.exits.append((time.monotonic(), code))
                    self.app.start()

    def restart(self) -> None:
        """Stop and start the app on purpose (not counted as an exit)."""
        with self.lock:
            self.app.stop()
            self.app.start()

    def stop(self) -> None:
        self.halt.set()
        self.join()


def test_a_registry_restart_mid_stream_loses_nothing(stack: PrivateStack, tmp_path: Path) -> None:
    topics = {
        "TOPIC_USERS": create_topic(stack.kafka, "users", 5),
        "TOPIC_CLEANED_USERS": create_topic(stack.kafka, "cleaned", 5),
        "TOPIC_DEAD_LETTER": create_topic(stack.kafka, "dead-letter", 1),
    }
    topic3, topic4 = topics["TOPIC_USERS"], topics["TOPIC_CLEANED_USERS"]
    table = UsersTable(stack, seed=43)
    source = Source(stack, tmp_path / "source.log", table, topic3, batch=50)
    state = tmp_path / "state"
    state.mkdir()
    table.step(inserts=300)
    with StreamsApp("streams.users", stack.kafka, topics, state, env=stack.app_env()) as app:
        source.start()
        app.start()
        supervisor = Supervisor(app)
        supervisor.start()
        try:
            catch_up(stack, topic3, table)
            table.step(inserts=50, updates=30, deletes=15)
            catch_up(stack, topic3, table)
            down_at = time.monotonic()
            stack.down("schema-registry")
            # Both apps have the schema cached: the running source goes on, and the changes
            # pile up on topic3 for a streams.users that starts with an empty cache.
            supervisor.restart()
            table.step(inserts=50, updates=30, deletes=15)
            catch_up(stack, topic3, table)
            source.stop()
            source.start()  # a source that must register its schema first: it waits
            table.step(inserts=50, updates=30, deletes=15)
            time.sleep(10)
            stack.up("schema-registry")
            up_at = time.monotonic()
            outage = up_at - down_at
            table.step(inserts=50, updates=30, deletes=15)
            catch_up(stack, topic3, table)
            table.step(inserts=50, updates=60, deletes=30)
            catch_up(stack, topic3, table)
            source.running()
            expected4 = cleaned(table.expected())
            topic4_count = count(expected4)
            wait_until(
                lambda: (
                    len(read_all(stack.kafka, topic4, topic4_count, timeout=10)) >= topic4_count
                ),
                180,
                "streams.users did not catch up",
            )
        finally:
            supervisor.stop()
            source.stop()
    expected3 = table.expected()
    actual3 = topic3_changes(stack, topic3, count(expected3))
    actual4 = topic4_changes(stack, topic4, topic4_count)
    dead = read_all(stack.kafka, topics["TOPIC_DEAD_LETTER"], 0, timeout=10)
    lost3, repeated3 = lost_and_repeated(expected3, actual3)
    lost4, repeated4 = lost_and_repeated(expected4, actual4)
    log = source.text()
    app_log = app.log.read_text(errors="replace")
    errors = sorted(set(re.findall(r"\b(httpx\.\w+|SchemaRegistryError)\b", app_log)))
    outage_exits = [code for at, code in supervisor.exits if at < up_at]
    print(
        f"\nregistry restart under users source + streams.users: {count(expected3)} changes "
        f"to topic3, {topic4_count} to topic4; fault: registry down {outage:.1f} s, source "
        f"retried {log.count('Schema Registry unreachable')} times, streams.users exited "
        f"{len(outage_exits)} times during the outage (codes {outage_exits}, errors {errors}) "
        f"and {len(supervisor.exits) - len(outage_exits)} after, restarted by the test; "
        f"topic3 lost {lost3}, repeated {repeated3}; topic4 lost {lost4}, repeated {repeated4}; "
        f"{len(dead)} dead letters"
    )
    assert "Schema Registry reachable again" in log, log[-3000:]
    assert not dead, [dict(m.headers() or []) for m in dead[:3]]
    assert_exact(expected3, actual3)
    assert_exact(expected4, actual4)
