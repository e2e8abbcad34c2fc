"""The generators without services: exact NULL shares, seeds, timestamps, late events."""

from __future__ import annotations

import itertools
import random

import orjson

from producers.events import Generator, event_time_ms, format_timestamp
from producers.users import NULLABLE, UserSpec, generate

SPEC = UserSpec(countries=["Thailand", "Vietnam"], null_share=0.1)


def test_each_nullable_column_has_exactly_the_null_share():
    rows = generate(1000, SPEC, random.Random(1))
    for column in NULLABLE:
        assert sum(row[column] is None for row in rows) == 100
    assert generate(7, UserSpec(["X"], null_share=0.0), random.Random(1))[0]["country"] == "X"


def test_a_seed_reproduces_the_users_and_another_does_not():
    assert generate(200, SPEC, random.Random(5)) == generate(200, SPEC, random.Random(5))
    assert generate(200, SPEC, random.Random(5)) != generate(200, SPEC, random.Random(6))


def test_values_come_from_the_configured_sets():
    rows = generate(500, SPEC, random.Random(2))
    assert {r["country"] for r in rows} == {"Thailand", "Vietnam", None}
    assert {r["subscription"] for r in rows} == {"Platinum", "Gold", "Silver", "Standard", None}
    assert min(r["age"] for r in rows if r["age"] is not None) >= 20
    assert max(r["age"] for r in rows if r["age"] is not None) <= 60


def test_timestamps_in_the_originals_string_form_or_epoch_ms():
    ms = 1_700_000_123_456
    assert format_timestamp(ms, "string") == "2023-11-14 22:15:23"
    assert event_time_ms(ms, "string") == 1_700_000_123_000
    assert format_timestamp(ms, "epoch-ms") == ms == event_time_ms(ms, "epoch-ms")


def sessions(seed: int, late_share: float = 0.0, count: int = 200):
    gen = Generator([1, 2, 3], random.Random(seed), 5, late_share, 600_000, "epoch-ms")
    return [gen.session(1_700_000_000_000 + i * 5_000) for i in range(count)]


def test_a_seed_reproduces_the_events():
    assert sessions(3) == sessions(3)
    assert sessions(3) != sessions(4)


def test_views_follow_their_login_and_carry_its_session():
    for (key, login, login_ts), views in sessions(8):
        assert 1 <= len(views) <= 5
        assert orjson.loads(login)["session_id"] == key
        for view_key, value, ts in views:
            view = orjson.loads(value)
            assert view_key == key == view["session_id"]
            assert ts == view["event_timestamp"] > login_ts
            assert view["source"] in {"Homepage", "Inbox", "External"}


def test_a_late_share_makes_views_out_of_order():
    def late_views(all_sessions) -> int:
        """Views earlier than the view before them in their own session."""
        count = 0
        for _login, views in all_sessions:
            times = [ts for _k, _v, ts in views]
            count += sum(1 for a, b in itertools.pairwise(times) if b < a)
        return count

    assert late_views(sessions(9, count=400)) == 0
    assert late_views(sessions(9, late_share=0.3, count=400)) > 100
