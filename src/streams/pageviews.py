"""Page-view validation, shared by every processor that reads ``topic1_PageView``.

A page view is the contract's four fields; like ksqlDB reading JSON with a declared schema,
fields beyond them are ignored (not carried into repartition topics, state or outputs), so what
a producer adds cannot change how a view is processed or how large its records get.
"""

from __future__ import annotations

import time
from typing import Any

from streams.operators.deadletter import Rejected, keyed_json_object
from streams.timestamps import InvalidTimestamp, check_not_future, parse_event_timestamp

#: Longest ``session_id`` / ``source`` accepted: they become record keys and state keys.
MAX_TEXT_CHARS = 1024


def _text(view: dict[str, Any], name: str) -> str | Rejected:
    value = view.get(name)
    if not isinstance(value, str) or not value:
        shown = repr(value)[:100]
        return Rejected(f"{name} must be a non-empty string, got {shown}", "BadField")
    if len(value) > MAX_TEXT_CHARS:
        return Rejected(
            f"{name} is {len(value)} characters long, more than {MAX_TEXT_CHARS}", "BadField"
        )
    return value


def parse_pageview(value: bytes | None, key: bytes | None) -> dict[str, Any] | Rejected:
    """The page view with ``event_timestamp`` as epoch ms, or why it is rejected."""
    view = keyed_json_object(value, key, "the session_id")
    if isinstance(view, Rejected):
        return view
    source = _text(view, "source")
    if isinstance(source, Rejected):
        return source
    user_id = view.get("user_id")
    if not isinstance(user_id, int) or isinstance(user_id, bool):
        return Rejected(f"user_id must be an integer, got {repr(user_id)[:100]}", "BadField")
    session_id = _text(view, "session_id")
    if isinstance(session_id, Rejected):
        return session_id
    try:
        ts = parse_event_timestamp(view.get("event_timestamp"))
        check_not_future(ts, int(time.time() * 1000))
    except InvalidTimestamp as exc:
        return Rejected(str(exc), "InvalidTimestamp")
    return {"session_id": session_id, "user_id": user_id, "source": source, "event_timestamp": ts}
