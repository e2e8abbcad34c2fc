"""Record formats the processors, producers, Pinot and the dashboard share.

A window result's Kafka key is :func:`window_key`: the group and the window start, so each
window is one row of Pinot's upsert tables (their ``primaryKeyColumns`` are the same two
columns) and a group's windows are co-partitioned. A page view's ``source`` is one of
:data:`SOURCES`; topic3's value schema is :mod:`contracts.users_schema`.
"""

from __future__ import annotations

#: The page-view sources the producers emit, in the order the dashboard lists them; its source
#: filter accepts nothing else.
SOURCES: tuple[str, ...] = ("Homepage", "Inbox", "External")


def window_key(group: str, window_start: int) -> str:
    """The key of a window's results: ``"{group}|{window_start}"``."""
    return f"{group}|{window_start}"
