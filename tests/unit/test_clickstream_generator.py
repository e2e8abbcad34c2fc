"""``producers.clickstream``: the tutorial's input as datagen writes it (the shapes ksqlDB's
statements read: 4-byte integer table keys, status and bytes as JSON strings)."""

from __future__ import annotations

import struct
from pathlib import Path

import orjson

from producers import clickstream
from streams.ksql.compiler import compile_sql

STATEMENTS = (
    Path(__file__).resolve().parents[2].parent / "shared/ksql-statements/seed-002-clickstream.sql"
)


def test_clicks_have_the_definitions_fields_and_the_event_time_as_timestamp() -> None:
    plan = clickstream.ClickPlan(count=50, start_ms=1_700_000_000_000, step_ms=250, seed=2)
    records = list(clickstream.clicks(plan))
    assert records == list(clickstream.clicks(plan))  # deterministic for a seed
    key, value, ts = records[3]
    row = orjson.loads(value)
    assert key is None and ts == 1_700_000_000_750 == row["_time"]
    assert row["time"] == "14/Nov/2023:22:13:20 +0000"
    assert set(row) == {
        "ip", "userid", "remote_user", "time", "_time", "request", "status", "bytes",
        "referrer", "agent",
    }  # fmt: skip
    assert row["status"] in clickstream.STATUSES and isinstance(row["status"], str)
    assert row["bytes"] in clickstream.BYTES and isinstance(row["bytes"], str)
    # A session's ip stands for one user id, in datagen's range.
    for _key, click, _ts in records:
        parsed = orjson.loads(click)
        assert parsed["userid"] == clickstream.userid_of(parsed["ip"])
        assert -1 <= parsed["userid"] <= 40


def test_pauses_leave_gaps_in_event_time() -> None:
    plan = clickstream.ClickPlan(count=6, start_ms=0, step_ms=100, pause_every=3, pause_ms=40_000)
    assert [ts for _k, _v, ts in clickstream.clicks(plan)] == [
        0, 100, 200, 40_300, 40_400, 40_500,
    ]  # fmt: skip


def test_tables_are_keyed_by_four_byte_integers_and_read_by_the_statements() -> None:
    program = compile_sql(STATEMENTS.read_text())
    users = program.catalog.get("WEB_USERS")
    codes = program.catalog.get("CLICKSTREAM_CODES")
    key, value, _ts = clickstream.users(3, seed=1)[2]
    assert key == struct.pack(">i", 3)
    assert users.key_serde.deserialize(key) == [3]
    row = dict(
        zip(
            [c.name for c in users.value_columns], users.value_serde.deserialize(value), strict=True
        )
    )
    assert row["USERNAME"] in clickstream.USERNAMES and row["CITY"] in clickstream.CITIES
    assert {codes.key_serde.deserialize(k)[0] for k, _v, _t in clickstream.codes()} == set(
        clickstream.CODES
    )
