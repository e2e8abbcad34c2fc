"""Page-view validation: every way a page view can be unusable has its reason and tag."""

from __future__ import annotations

import json

import pytest

from streams.deadletter import Rejected
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
        (encode({**VIEW, "session_id": 1}), b"s1", "BadField", "session_id must be a string"),
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
