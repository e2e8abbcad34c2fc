"""Record formats the processors, producers, Pinot and the dashboard share.

A window result's Kafka key is :func:`window_key`: the group and the window start, so each
window is one row of Pinot's upsert tables (their ``primaryKeyColumns`` are the same two
columns) and a group's windows are co-partitioned. A page view's ``source`` is one of
:data:`SOURCES`; topic3's value schema is :mod:`contracts.users_schema`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

#: The page-view sources the producers emit, in the order the dashboard lists them; its source
#: filter accepts nothing else.
SOURCES: tuple[str, ...] = ("Homepage", "Inbox", "External")


def event_timestamp_text(ms: int) -> str:
    """A page view's ``event_timestamp`` as the original wrote it: UTC ``yyyy-MM-dd HH:mm:ss``
    (whole seconds)."""
    return _seconds_text(ms // 1000)


# Page views come many to a second: one format per second is enough.
@lru_cache(maxsize=65536)
def _seconds_text(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


def window_key(group: str, window_start: int) -> str:
    """The key of a window's results: ``"{group}|{window_start}"``."""
    return f"{group}|{window_start}"
