"""Page-view validation, shared by every processor that reads ``topic1_PageView``."""

from __future__ import annotations

from typing import Any

import orjson

from streams.deadletter import Rejected
from streams.timestamps import InvalidTimestamp, parse_event_timestamp


def parse_pageview(value: bytes | None, key: bytes | None) -> dict[str, Any] | Rejected:
    """The page view with ``event_timestamp`` as epoch ms, or why it is rejected."""
    if key is None:
        return Rejected("null key (expected the session_id)", "NullKey")
    if value is None:
        return Rejected("null value", "NullValue")
    try:
        view = orjson.loads(value)
    except ValueError as exc:
        return Rejected(f"value is not JSON: {exc}", "MalformedJson")
    if not isinstance(view, dict):
        return Rejected(f"value is not a JSON object: {type(view).__name__}", "WrongShape")
    source = view.get("source")
    if not isinstance(source, str) or not source:
        return Rejected(f"source must be a non-empty string, got {source!r}", "BadField")
    user_id = view.get("user_id")
    if not isinstance(user_id, int) or isinstance(user_id, bool):
        return Rejected(f"user_id must be an integer, got {user_id!r}", "BadField")
    if not isinstance(view.get("session_id"), str):
        return Rejected(f"session_id must be a string, got {view.get('session_id')!r}", "BadField")
    try:
        view["event_timestamp"] = parse_event_timestamp(view.get("event_timestamp"))
    except InvalidTimestamp as exc:
        return Rejected(str(exc), "InvalidTimestamp")
    return view
