"""Event-time parsing for page views: the one place that decides what a valid timestamp is.

The original producers wrote ``event_timestamp`` as a UTC string ``yyyy-MM-dd HH:mm:ss``; newer
ones may write epoch milliseconds. Both are accepted, anything else is rejected with a reason the
caller puts on the dead-letter record. "Absurd" means outside [``MIN_EVENT_MS``, ``MAX_EVENT_MS``):
the lower bound catches the classic seconds-instead-of-milliseconds bug (1.7e9 "ms" is January
1970) and negative values; the upper bound catches microseconds and garbage. Both bounds are
overridable (``EVENT_TIME_MIN_MS`` / ``EVENT_TIME_MAX_MS``) for replaying unusual data.

Event times further than ``STREAMS_MAX_FUTURE_MS`` (default 1 h) ahead of the wall clock are
rejected too (:func:`check_not_future`). Such a record cannot be written on: outputs carry
event time as their record timestamp, and Kafka refuses timestamps more than
``log.message.timestamp.after.max.ms`` (1 h by default in Kafka 4) ahead of the broker's
clock, which aborts the whole transaction and, on every restart, again. Nor should it be
counted: it would advance stream time and close every window for everyone after it. Keep the
setting at or below the broker's.

Usage::

    from streams.timestamps import InvalidTimestamp, parse_event_timestamp
    try:
        ts_ms = parse_event_timestamp(value["event_timestamp"])
    except InvalidTimestamp as exc:
        ...  # dead-letter with str(exc)
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

from clients.settings import env_int

#: 2000-01-01T00:00:00Z: earlier page views cannot exist in this system.
MIN_EVENT_MS = env_int("EVENT_TIME_MIN_MS", 946_684_800_000)
#: 2100-01-01T00:00:00Z.
MAX_EVENT_MS = env_int("EVENT_TIME_MAX_MS", 4_102_444_800_000)
#: How far ahead of the wall clock an event time may be.
MAX_FUTURE_MS = env_int("STREAMS_MAX_FUTURE_MS", 3_600_000)

_STRING_FORMAT = "yyyy-MM-dd HH:mm:ss"


class InvalidTimestamp(ValueError):
    """The event timestamp is missing, mistyped, malformed or out of range."""


def parse_event_timestamp(raw: object) -> int:
    """Return ``raw`` as epoch milliseconds (UTC), or raise :class:`InvalidTimestamp`."""
    # bool is an int subclass; True is never a timestamp.
    if isinstance(raw, int) and not isinstance(raw, bool):
        return _check_range(raw, raw)
    if isinstance(raw, str):
        return _parse_string(raw)
    raise InvalidTimestamp(
        f"event_timestamp must be a '{_STRING_FORMAT}' UTC string or epoch-ms integer, "
        f"got {type(raw).__name__} {raw!r}"
    )


# Generators emit many events per second with the same string, so a small cache saves the parse.
@lru_cache(maxsize=4096)
def _parse_string(raw: str) -> int:
    # fromisoformat is C-fast but lenient (dates alone, offsets, 'T'): pin the exact shape first.
    if len(raw) != 19 or raw[4] != "-" or raw[7] != "-" or raw[10] != " " or raw[13] != ":":
        raise InvalidTimestamp(f"event_timestamp {raw!r} is not in the format '{_STRING_FORMAT}'")
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise InvalidTimestamp(f"event_timestamp {raw!r} is not a valid date-time: {exc}") from None
    return _check_range(int(parsed.replace(tzinfo=UTC).timestamp()) * 1000, raw)


def _check_range(ms: int, raw: object) -> int:
    if not MIN_EVENT_MS <= ms < MAX_EVENT_MS:
        raise InvalidTimestamp(
            f"event_timestamp {raw!r} ({ms} ms) is outside the plausible range "
            f"[{MIN_EVENT_MS}, {MAX_EVENT_MS}) ms; seconds instead of milliseconds?"
        )
    return ms


def check_not_future(ms: int, now_ms: int) -> None:
    """Raise :class:`InvalidTimestamp` if ``ms`` is more than MAX_FUTURE_MS after ``now_ms``."""
    if ms > now_ms + MAX_FUTURE_MS:
        raise InvalidTimestamp(
            f"event_timestamp {ms} ms is {ms - now_ms} ms ahead of the wall clock, more than "
            f"STREAMS_MAX_FUTURE_MS={MAX_FUTURE_MS}: Kafka would refuse the records written "
            f"with it, and it would close every open window"
        )
