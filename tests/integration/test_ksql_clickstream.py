"""Confluent's clickstream tutorial end to end on the native stack, as-is: the generator
(``producers.clickstream``) writes the tutorial's three topics, ``python -m streams.ksql run
../shared/ksql-statements/seed-002-clickstream.sql`` runs its 9 persistent queries, and every
query's output is checked exactly against a brute-force computation of what the generator
wrote (the latest row per key and window; a stream's records as a multiset).

The statements name their input topics (``clickstream``, ``clickstream_codes``,
``clickstream_users``): the test recreates those; its sink topics get a prefix of their own
through ksqlDB's ``ksql.output.topic.name.prefix``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from clients.settings import PinotSettings
from dashboard.clickstream_page import TITLES
from dashboard.queries import MAX_POINTS
from pinot.client import PinotBroker, PinotController
from pinot.provision import temporary_tables, unique_specs
from pinot.tables import CLICKSTREAM, default_tables
from producers import clickstream
from streams.ksql import runner
from tests.integration.apps import committed_input, read_all, recent_start
from tests.integration.browser import assert_no_error_shown, chromium, dashboard, screenshot

pytestmark = pytest.mark.integration

SEED = Path(__file__).resolve().parents[2].parent / "shared" / "ksql-statements"
STATEMENTS = SEED / "seed-002-clickstream.sql"
INPUTS = ("clickstream", "clickstream_codes", "clickstream_users")
T0 = recent_start(60_000)  # in the topics' time retention, a multiple of 60 s
GAP = 30_000
PLAN = clickstream.ClickPlan(
    count=600, start_ms=T0, step_ms=500, seed=3, pause_every=250, pause_ms=45_000
)

Latest = dict[tuple[tuple, int | None, int | None], Any]


def recreate_inputs(admin: AdminClient) -> None:
    """The tutorial's input topics, empty, 2 partitions each (a join needs co-partitioning)."""
    present = [t for t in INPUTS if t in admin.list_topics(timeout=10).topics]
    for future in admin.delete_topics(present).values() if present else []:
        future.result(timeout=30)
    missing, deadline = list(INPUTS), time.monotonic() + 60
    while missing:
        futures = admin.create_topics([NewTopic(t, 2, 1) for t in missing])
        # A deleted topic lingers a moment (TOPIC_ALREADY_EXISTS): try those again.
        missing = [t for t, f in futures.items() if f.exception(timeout=30) is not None]
        assert time.monotonic() < deadline, f"could not recreate {missing}"
        time.sleep(1 if missing else 0)


def produce(kafka: str, topic: str, records: list, timestamp: int | None = None) -> None:
    producer = Producer({"bootstrap.servers": kafka, "partitioner": "murmur2_random"})
    for key, value, ts in records:
        producer.produce(topic, value, key, timestamp=ts if timestamp is None else timestamp)
    assert producer.flush(30) == 0


def hopping(ts: int, size: int, advance: int) -> list[int]:
    first = ts - size + advance
    start = max(0, first - first % advance)
    return list(range(start, ts + 1, advance))


def expected(users: dict[int, dict], codes: dict[int, str], clicks: list[dict]) -> dict:
    """Every sink's latest rows, by brute force from the statements' definitions."""
    out: dict[str, Any] = {}
    enriched = []  # USER_CLICKSTREAM: LEFT JOIN on userid
    for c in clicks:
        user = users.get(c["userid"], {})
        enriched.append({**c, "username": user.get("username"), "city": user.get("city")})
    out["USER_CLICKSTREAM"] = Counter(
        (
            (c["userid"],),
            json.dumps(
                {
                    "USERNAME": c["username"],
                    "IP": c["ip"],
                    "CITY": c["city"],
                    "REQUEST": c["request"],
                    "STATUS": c["status"],
                    "BYTES": c["bytes"],
                },
                sort_keys=True,
            ),
        )
        for c in enriched
    )
    out["ENRICHED_ERROR_CODES"] = Counter(
        ((c["status"],), json.dumps({"DEFINITION": codes.get(c["status"])})) for c in clicks
    )

    def windows(
        rows: list[dict],
        group: Any,
        starts: Any,
        size: int,
        value: Any,
        having: int = 0,
    ) -> Latest:
        counts: Counter = Counter()
        for row in rows:
            g = group(row)
            if any(v is None for v in g):
                continue
            for start in starts(row["ts"]):
                counts[g, start] += 1
        return {(g, s, s + size): value(g, s, n) for (g, s), n in counts.items() if n > having}

    minute = 60_000
    out["EVENTS_PER_MIN"] = windows(
        clicks,
        lambda c: (c["userid"],),
        lambda ts: [ts - ts % minute],
        minute,
        lambda g, s, n: {"USERID": g[0], "EVENT_TS": s, "EVENTS": n},
    )
    out["PAGES_PER_MIN"] = windows(
        [c for c in clicks if "html" in c["request"]],
        lambda c: (c["userid"],),
        lambda ts: hopping(ts, minute, 5_000),
        minute,
        lambda g, s, n: {"USERID": g[0], "EVENT_TS": s, "PAGES": n},
    )
    errors = [c for c in clicks if c["status"] > 400]
    out["ERRORS_PER_MIN_ALERT"] = windows(
        errors,
        lambda c: (c["status"],),
        lambda ts: hopping(ts, minute, 20_000),
        minute,
        lambda g, s, n: {"STATUS": g[0], "EVENT_TS": s, "ERRORS": n},
        having=5,
    )
    out["ERRORS_PER_MIN"] = windows(
        errors,
        lambda c: (c["status"],),
        lambda ts: hopping(ts, minute, 5_000),
        minute,
        lambda g, s, n: {"STATUS": g[0], "EVENT_TS": s, "ERRORS": n},
    )
    out["ENRICHED_ERROR_CODES_COUNT"] = windows(
        [{**c, "definition": codes.get(c["status"])} for c in clicks],
        lambda c: (c["status"], c["definition"]),
        lambda ts: [ts - ts % 30_000],
        30_000,
        lambda g, s, n: {"CODE": g[0], "EVENT_TS": s, "DEFINITION": g[1], "COUNT": n},
        having=1,
    )
    out["USER_IP_ACTIVITY"] = windows(
        enriched,
        lambda c: (c["username"], c["ip"], c["city"]),
        lambda ts: [ts - ts % minute],
        minute,
        lambda g, s, n: {"USERNAME": g[0], "EVENT_TS": s, "IP": g[1], "CITY": g[2], "COUNT": n},
        having=1,
    )
    # Sessions of 30 s of inactivity per username; merged-away sessions end as tombstones,
    # so only the final ones hold a value.
    sessions: Latest = {}
    by_user: dict[str, list[int]] = defaultdict(list)
    for c in enriched:
        if c["username"] is not None:
            by_user[c["username"]].append(c["ts"])
    for name, times in by_user.items():
        times.sort()
        start = end = times[0]
        n = 0
        for ts in times:
            if ts - end > GAP:
                sessions[(name,), start, end] = {"USERNAME": name, "EVENT_TS": end, "EVENTS": n}
                start, n = ts, 0
            end, n = ts, n + 1
        sessions[(name,), start, end] = {"USERNAME": name, "EVENT_TS": end, "EVENTS": n}
    out["CLICK_USER_SESSIONS"] = sessions
    return out


def decode(sink: Any, records: list) -> tuple[Latest, Counter]:
    """(the latest value per key and window, the multiset of (key, value) records)."""
    latest: Latest = {}
    seen: Counter = Counter()
    names = [c.name for c in sink.value_columns]
    for record in records:
        raw, start, end = record.key(), None, None
        if sink.window is not None:
            raw, start, end = sink.windowed_key_serde.split(raw)
        key = tuple(sink.key_serde.deserialize(raw) or ())
        value = sink.value_serde.deserialize(record.value())
        row = None if value is None else dict(zip(names, value, strict=True))
        latest[key, start, end] = row
        seen[key, json.dumps(row, sort_keys=True)] += 1
    return latest, seen


@dataclass
class Tutorial:
    """The tutorial's run: its sinks, what each must hold, and what each held."""

    sinks: dict[str, Any]
    want: dict[str, Any]
    minimum: dict[str, int]
    records: dict[str, list] = field(default_factory=dict)


@pytest.fixture(scope="module")
def tutorial(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tutorial]:
    """The generator's three topics and ``streams.ksql run`` of the statements, as-is, until
    every sink holds at least what it must; the run is stopped (and must exit 0) at the end."""
    tmp_path = tmp_path_factory.mktemp("clickstream")
    admin = AdminClient({"bootstrap.servers": kafka})
    suffix = uuid.uuid4().hex[:8]
    prefix, group = f"test-cs-{suffix}-", f"test-cs-{suffix}"
    recreate_inputs(admin)
    users = clickstream.users(30, seed=3)  # user ids 31..40 (and -1, 0) have no user row
    produce(kafka, "clickstream_codes", clickstream.codes(), timestamp=T0 - 60_000)
    produce(kafka, "clickstream_users", users, timestamp=T0 - 60_000)
    program = runner.load([STATEMENTS], {"ksql.output.topic.name.prefix": prefix})
    log = (tmp_path / "run.log").open("ab")
    command = [sys.executable, "-m", "streams.ksql", "run", str(STATEMENTS)]
    command += ["--property", f"ksql.output.topic.name.prefix={prefix}"]
    command += ["--consumer-group", group, "--state-dir", str(tmp_path / "state")]
    process = subprocess.Popen(
        command,
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka, "STREAMS_COMMIT_INTERVAL_S": "1"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        # The joins have read both tables before the first click: each click meets its row.
        deadline = time.monotonic() + 120
        for topic, count, query in (
            ("clickstream_users", len(users), "CSAS_USER_CLICKSTREAM_0"),
            ("clickstream_codes", len(clickstream.CODES), "CSAS_ENRICHED_ERROR_CODES_1"),
        ):
            while committed_input(kafka, topic, f"{group}-{query}") < count:
                assert process.poll() is None, (tmp_path / "run.log").read_text()
                if time.monotonic() >= deadline:
                    process.send_signal(signal.SIGUSR1)  # each query's process: its stacks
                    time.sleep(2)
                    raise AssertionError(
                        f"{query} did not read {topic}:\n{(tmp_path / 'run.log').read_text()}"
                    )
                time.sleep(0.5)
        clicks = list(clickstream.clicks(PLAN))
        produce(kafka, "clickstream", clicks)

        rows = []
        for _key, value, ts in clicks:
            row = json.loads(value)
            # datagen's strings, as ksqlDB reads them into INT and BIGINT columns.
            rows.append({**row, "status": int(row["status"]), "bytes": int(row["bytes"]), "ts": ts})
        user_rows = {json.loads(v)["user_id"]: json.loads(v) for _k, v, _t in users}
        want = expected(user_rows, clickstream.CODES, rows)
        assert all(want.values())  # every query has rows to check, HAVING ones included
        assert any(c["userid"] not in user_rows for c in rows)  # LEFT JOIN misses happen
        # The pauses end sessions: some users have several.
        session_users = [key[0] for key, _start, _end in want["CLICK_USER_SESSIONS"]]
        assert len(session_users) > len(set(session_users))

        run = Tutorial(
            sinks={q.sink.name: q.sink for q in program.queries.values()},
            want=want,
            minimum={
                "USER_CLICKSTREAM": len(rows),
                "ENRICHED_ERROR_CODES": len(rows),
                "EVENTS_PER_MIN": len(rows),
                "PAGES_PER_MIN": sum(v["PAGES"] for v in want["PAGES_PER_MIN"].values()),
                "ERRORS_PER_MIN": sum(v["ERRORS"] for v in want["ERRORS_PER_MIN"].values()),
            },
        )
        for name, sink in run.sinks.items():
            assert sink.topic == f"{prefix}{name}"
            least = run.minimum.get(name, len(want[name]))
            run.records[name] = read_all(kafka, sink.topic, least, timeout=300)
        yield run
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(120)
        internal = [t for t in admin.list_topics(timeout=10).topics if suffix in t]
        for future in admin.delete_topics([*internal, *INPUTS]).values():
            future.exception(timeout=30)
    assert process.returncode == 0, (tmp_path / "run.log").read_text()


def test_the_clickstream_tutorial_runs_as_is_and_every_query_is_exact(
    tutorial: Tutorial,
) -> None:
    for name, sink in tutorial.sinks.items():
        records, want = tutorial.records[name], tutorial.want[name]
        latest, seen = decode(sink, records)
        if sink.kind == "STREAM":
            assert seen == want, name
        elif name == "CLICK_USER_SESSIONS":
            assert {k: v for k, v in latest.items() if v is not None} == want
        else:
            assert latest == want, name
        if name in ("EVENTS_PER_MIN", "ERRORS_PER_MIN"):
            assert len(records) == tutorial.minimum[name], name  # one update per row: none twice


def pinot_rows(broker: PinotBroker, table: str, columns: list[str]) -> list[tuple]:
    quoted = ", ".join(f'"{c}"' for c in columns)
    return sorted(tuple(r) for r in broker.query(f"SELECT {quoted} FROM {table} LIMIT 100000").rows)


def in_pinot(name: str, want: Latest, columns: list[str]) -> list[tuple]:
    """The rows a sink's Pinot table must hold: its live rows, one per primary key."""
    rows = [v for v in want.values() if v is not None]
    if name == "CLICK_USER_SESSIONS":  # one row per user: the latest session
        latest: dict[str, dict] = {}
        for row in sorted(rows, key=lambda r: r["EVENT_TS"]):
            latest[row["USERNAME"]] = row
        rows = list(latest.values())
    return sorted(tuple(row[c] for c in columns) for row in rows)


def test_the_tutorials_tables_reach_pinot_and_its_dashboard_page(
    tutorial: Tutorial, pinot: PinotSettings, tmp_path: Path
) -> None:
    """Pinot tables on the sinks hold exactly the latest rows (tombstones and updates applied as
    upserts); the dashboard's clickstream page draws all seven panels from them in Chromium."""
    tables = default_tables(CLICKSTREAM)
    topics = {kind: tutorial.sinks[spec.topic].topic for kind, spec in tables.items()}
    specs = unique_specs("cs", topics)
    broker = PinotBroker(pinot.broker_url)
    with temporary_tables(PinotController(pinot.controller_url), broker, specs.values()):
        for kind, spec in specs.items():
            name = tables[kind].topic
            columns = [c.name for c in tutorial.sinks[name].value_columns]
            want = in_pinot(name, tutorial.want[name], columns)
            deadline = time.monotonic() + 120
            while (got := pinot_rows(broker, spec.table, columns)) != want:
                assert time.monotonic() < deadline, (name, len(got), len(want))
                time.sleep(1)

        env = {f"PINOT_TABLE_{k.upper()}": s.table for k, s in specs.items()}
        with (
            dashboard({**env, "PINOT_BROKER_URL": pinot.broker_url}, tmp_path / "st.log") as url,
            chromium(tmp_path / "chromium-profile", height=2400) as page,
        ):
            # The run's event times are a day old.
            page.goto(f"{url}/clickstream?range=Last%207%20days")
            page.get_by_text("Last updated").wait_for(timeout=60_000)
            page.wait_for_function(
                "document.querySelectorAll('[data-testid=\"stVegaLiteChart\"] svg.marks')"
                ".length >= 5",
                timeout=60_000,
            )
            assert page.locator('[data-testid="stVegaLiteChart"]').count() == 5
            tables = page.locator('[data-testid="stDataFrame"]')
            tables.nth(1).wait_for(timeout=30_000)  # its component loads on first use
            assert tables.count() == 2
            for heading in TITLES:
                assert page.get_by_role("heading", name=heading).count() == 1, heading
            assert_no_error_shown(page)
            want = tutorial.want

            def points(name: str, per_window: bool = False) -> int:
                rows = [v for v in want[name].values() if v is not None]
                return min(MAX_POINTS, len({r["EVENT_TS"] for r in rows} if per_window else rows))

            counts = [
                points("EVENTS_PER_MIN", per_window=True),
                points("PAGES_PER_MIN", per_window=True),
                points("ERRORS_PER_MIN"),
                points("ERRORS_PER_MIN_ALERT"),
                points("ENRICHED_ERROR_CODES_COUNT"),
                len({r["USERNAME"] for r in want["CLICK_USER_SESSIONS"].values()}),
                points("USER_IP_ACTIVITY"),
            ]
            captions = page.get_by_text(re.compile(r"^\d+ points · query \d+ ms"))
            shown = [int(captions.nth(i).inner_text().split()[0]) for i in range(captions.count())]
            assert shown == counts
            screenshot(page, "clickstream-dashboard.png")
