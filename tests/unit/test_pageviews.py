"""Page-view validation: every way a page view can be unusable has its reason and tag."""

from __future__ import annotations

import json
import time

import pytest

from streams.operators.deadletter import Rejected
from streams.pageviews import parse_pageview

VIEW = {"session_id": "s1", "user_id": 7, "source": "Inbox", "event_timestamp": 1_700_000_000_000}


def encode(value) -> bytes:
    return json.dumps(value).encode()


def test_a_valid_page_view_is_parsed_with_epoch_ms_time():
    parsed = parse_pageview(encode({**VIEW, "event_timestamp": "2023-11-14 22:13:20"}), b"s1")
    assert parsed == VIEW


@pytest.mark.parametrize(
    "value, key, error_type, reason",
    [
        (encode(VIEW), None, "NullKey", "null key (expected the session_id)"),
        (None, b"s1", "NullValue", "null value"),
        (b"{not json", b"s1", "MalformedJson", "value is not JSON: "),
        (encode([1, 2]), b"s1", "WrongShape", "value is not a JSON object: list"),
        (encode({**VIEW, "source": None}), b"s1", "BadField", "source must be a non-empty"),
        (encode({**VIEW, "source": ""}), b"s1", "BadField", "source must be a non-empty"),
        (encode({**VIEW, "user_id": "7"}), b"s1", "BadField", "user_id must be an integer"),
        (encode({**VIEW, "user_id": True}), b"s1", "BadField", "user_id must be an integer"),
        (encode({**VIEW, "session_id": 1}), b"s1", "BadField", "session_id must be a non-empty"),
        (
            encode({**VIEW, "source": "x" * 1025}),
            b"s1",
            "BadField",
            "source is 1025 characters long, more than 1024",
        ),
        (
            encode({**VIEW, "event_timestamp": 1_700_000_000}),
            b"s1",
            "InvalidTimestamp",
            "seconds instead of milliseconds?",
        ),
        (
            encode({k: v for k, v in VIEW.items() if k != "event_timestamp"}),
            b"s1",
            "InvalidTimestamp",
            "got NoneType None",
        ),
    ],
)
def test_bad_page_views_are_rejected_with_a_reason(value, key, error_type, reason):
    bad = parse_pageview(value, key)
    assert isinstance(bad, Rejected)
    assert bad.error_type == error_type
    assert reason in bad.reason


def test_fields_beyond_the_contract_are_ignored():
    # A field named like an internal marker, and one that would make every record too large.
    extra = {"reason": "not mine", "pageview": {}, "blob": "x" * 600_000}
    assert parse_pageview(encode({**VIEW, **extra}), b"s1") == VIEW


def test_more_than_an_hour_ahead_of_the_clock_is_rejected():
    # Computed when the test runs, not when it is collected: a suite can take many minutes.
    ahead = int(time.time() * 1000) + 3_700_000
    bad = parse_pageview(encode({**VIEW, "event_timestamp": ahead}), b"s1")
    assert isinstance(bad, Rejected)
    assert bad.error_type == "InvalidTimestamp"
    assert "ahead of the wall clock, more than STREAMS_MAX_FUTURE_MS=3600000" in bad.reason


def test_an_hour_ahead_of_the_clock_is_still_accepted():
    ahead = int(time.time() * 1000) + 3_500_000
    assert parse_pageview(encode({**VIEW, "event_timestamp": ahead}), b"s1") == {
        **VIEW,
        "event_timestamp": ahead,
    }
