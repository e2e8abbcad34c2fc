"""Confluent's clickstream tutorial (../shared/ksql-statements/seed-002-clickstream.sql, 12
statements) compiled by streams.ksql and run in the test driver on a small input whose results
are worked out by hand below (the latest row of each key and window of every query)."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.ksql.compiler import Program, compile_sql
from streams.testing import TestDriver

SEED = Path(__file__).resolve().parents[2].parent / "shared" / "ksql-statements"

USERS = {1: ("alice", "Paris"), 2: ("bob", "Oslo")}
CODES = {200: "Successful", 404: "Page not found"}
#: (time ms, user, ip, request, status, bytes)
CLICKS = [
    (1_000, 1, "10.0.0.1", "GET /index.html", 200, 100),
    (2_000, 1, "10.0.0.1", "GET /logo.png", 404, 10),
    (3_000, 2, "10.0.0.2", "GET /about.html", 404, 50),
    (4_000, 2, "10.0.0.2", "GET /x", 404, 5),
    (40_000, 1, "10.0.0.1", "GET /index.html", 200, 70),
]


def int_key(value: int) -> bytes:
    return struct.pack(">i", value)


@pytest.fixture(scope="module")
def latest() -> dict[str, dict[Any, Any]]:
    """Per sink topic: (key, window start, window end) -> its latest value (None: deleted)."""
    program = compile_sql((SEED / "seed-002-clickstream.sql").read_text())
    with TestDriver(program.setup, partitions=1) as driver:
        for user, (name, city) in USERS.items():
            row = {"username": name, "city": city, "first_name": name.title()}
            driver.pipe("clickstream_users", int_key(user), orjson.dumps(row), timestamp=0)
        for code, definition in CODES.items():
            driver.pipe(
                "clickstream_codes", int_key(code), orjson.dumps({"definition": definition})
            )
        for ts, user, ip, request, status, size in CLICKS:
            click = {
                "_time": ts,
                "ip": ip,
                "request": request,
                "status": status,
                "userid": user,
                "bytes": size,
                "agent": "test",
            }
            driver.pipe("clickstream", None, orjson.dumps(click), timestamp=ts)
        return decode(program, driver.read_all())


def decode(program: Program, records: list[Any]) -> dict[str, dict[Any, Any]]:
    sinks = {query.sink.topic: query.sink for query in program.queries.values()}
    out: dict[str, dict[Any, Any]] = {topic: {} for topic in sinks}
    for record in records:
        sink = sinks.get(record.topic)
        if sink is None:
            continue
        start = end = None
        raw_key = record.raw_key
        if sink.window is not None:
            raw_key, start, end = sink.windowed_key_serde.split(record.raw_key)
        key = tuple(sink.key_serde.deserialize(raw_key) or ())
        value = sink.value_serde.deserialize(record.raw_value)
        names = [c.name for c in sink.value_columns]
        out[record.topic][key, start, end] = (
            None if value is None else dict(zip(names, value, strict=True))
        )
    return out


def test_the_twelve_statements_compile_to_nine_queries() -> None:
    program = compile_sql((SEED / "seed-002-clickstream.sql").read_text())
    assert len(program.catalog.sources) == 12
    assert [q.sink.name for q in program.queries.values()] == [
        "USER_CLICKSTREAM",
        "ENRICHED_ERROR_CODES",
        "EVENTS_PER_MIN",
        "PAGES_PER_MIN",
        "CLICK_USER_SESSIONS",
        "ERRORS_PER_MIN_ALERT",
        "ERRORS_PER_MIN",
        "ENRICHED_ERROR_CODES_COUNT",
        "USER_IP_ACTIVITY",
    ]


def test_clicks_are_enriched_with_their_user_and_error_code(latest) -> None:
    # A stream: one record per click, keyed by the join column; the latest per user here.
    assert latest["USER_CLICKSTREAM"][(1,), None, None] == {
        "USERNAME": "alice",
        "IP": "10.0.0.1",
        "CITY": "Paris",
        "REQUEST": "GET /index.html",
        "STATUS": 200,
        "BYTES": 70,
    }
    assert latest["USER_CLICKSTREAM"][(2,), None, None]["REQUEST"] == "GET /x"
    assert latest["ENRICHED_ERROR_CODES"] == {
        ((200,), None, None): {"DEFINITION": "Successful"},
        ((404,), None, None): {"DEFINITION": "Page not found"},
    }


def test_events_and_pages_per_minute(latest) -> None:
    assert latest["EVENTS_PER_MIN"] == {
        ((1,), 0, 60_000): {"USERID": 1, "EVENT_TS": 0, "EVENTS": 3},
        ((2,), 0, 60_000): {"USERID": 2, "EVENT_TS": 0, "EVENTS": 2},
    }
    # Hopping 60 s by 5 s, html requests only: alice's at 1 s and 40 s, bob's at 3 s.
    pages = latest["PAGES_PER_MIN"]
    assert pages[(1,), 0, 60_000] == {"USERID": 1, "EVENT_TS": 0, "PAGES": 2}
    assert pages[(1,), 5_000, 65_000] == {"USERID": 1, "EVENT_TS": 5_000, "PAGES": 1}
    assert pages[(2,), 0, 60_000] == {"USERID": 2, "EVENT_TS": 0, "PAGES": 1}
    assert ((2,), 5_000, 65_000) not in pages  # bob's only page was at 3 s
    assert len(pages) == 9 + 1  # alice: the 9 windows holding 40 s ([0, 60 s) also 1 s); bob: 1


def test_sessions_by_username(latest) -> None:
    # 30 s of inactivity ends a session: alice's clicks at 1 s and 2 s, then 40 s apart.
    assert latest["CLICK_USER_SESSIONS"] == {
        (("alice",), 1_000, 2_000): {"USERNAME": "alice", "EVENT_TS": 2_000, "EVENTS": 2},
        (("alice",), 40_000, 40_000): {"USERNAME": "alice", "EVENT_TS": 40_000, "EVENTS": 1},
        (("bob",), 3_000, 4_000): {"USERNAME": "bob", "EVENT_TS": 4_000, "EVENTS": 2},
        # The one-click sessions merged into longer ones were retracted (tombstones).
        (("alice",), 1_000, 1_000): None,
        (("bob",), 3_000, 3_000): None,
    }


def test_errors_per_minute_and_the_alert_that_needs_more_than_five(latest) -> None:
    errors = latest["ERRORS_PER_MIN"]
    assert errors[(404,), 0, 60_000] == {"STATUS": 404, "EVENT_TS": 0, "ERRORS": 3}
    assert {key[0] for key in errors} == {(404,)}
    assert latest["ERRORS_PER_MIN_ALERT"] == {}  # three errors never pass HAVING COUNT(*) > 5


def test_error_codes_and_user_ip_activity_with_having(latest) -> None:
    # 30 s tumbling windows, HAVING COUNT(*) > 1: the 404s of [0, 30 s) only.
    assert latest["ENRICHED_ERROR_CODES_COUNT"] == {
        ((404, "Page not found"), 0, 30_000): {
            "CODE": 404,
            "EVENT_TS": 0,
            "DEFINITION": "Page not found",
            "COUNT": 3,
        }
    }
    assert latest["USER_IP_ACTIVITY"] == {
        (("alice", "10.0.0.1", "Paris"), 0, 60_000): {
            "USERNAME": "alice",
            "EVENT_TS": 0,
            "IP": "10.0.0.1",
            "CITY": "Paris",
            "COUNT": 3,
        },
        (("bob", "10.0.0.2", "Oslo"), 0, 60_000): {
            "USERNAME": "bob",
            "EVENT_TS": 0,
            "IP": "10.0.0.2",
            "CITY": "Oslo",
            "COUNT": 2,
        },
    }
