"""The page-view page's four chart queries against the Pinot upsert tables.

Each table holds one current row per (group, window) thanks to upserts, so the queries read
counts as they are; summing them would count a window once per update, the original bug.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import pandas as pd

from contracts.records import SOURCES
from dashboard.sql import bind
from pinot.client import PinotBroker
from pinot.tables import TableSpec

log = logging.getLogger("dashboard.queries")

#: Each chart shows the most recent points only, as the original dashboard did.
MAX_POINTS = 100

_COUNTRY_SQL = (
    "SELECT window_start, country, pageview_count, average_age FROM {table} "
    "WHERE window_start >= :since ORDER BY window_start DESC, country LIMIT :limit"
)
_SOURCE_SQL = (
    "SELECT window_start, source, pageview_count FROM {table} "
    "WHERE window_start >= :since AND source IN (:sources){extra} "
    "ORDER BY window_start DESC, source LIMIT :limit"
)
#: Sessions merged away are retracted with deleted=true (Pinot 0.11 has no upsert deletes).
_LIVE_SESSIONS = " AND deleted = false"


@dataclass(frozen=True)
class ChartData:
    frame: pd.DataFrame  #: oldest first; window_start in epoch ms
    latency_ms: float
    pinot_time_ms: float
    sql: str


def checked_sources(sources: Collection[str]) -> tuple[str, ...]:
    """Keep the allow-listed order; reject unknown or empty selections."""
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise ValueError(f"unknown source(s) {unknown}; allowed: {', '.join(SOURCES)}")
    if not sources:
        raise ValueError("select at least one source")
    return tuple(s for s in SOURCES if s in sources)


def checked_since(since_ms: int) -> int:
    if isinstance(since_ms, bool) or not isinstance(since_ms, int) or since_ms < 0:
        raise ValueError(f"time range start must be a non-negative integer (ms): {since_ms!r}")
    return since_ms


class DashboardQueries:
    """Runs the chart queries for one set of tables (tests pass their own unique tables)."""

    def __init__(self, broker: PinotBroker, tables: Mapping[str, TableSpec]) -> None:
        self._broker = broker
        self._tables = tables

    def country(self, since_ms: int) -> ChartData:
        """Page views and average age per country and window; no known user -> NaN age."""
        sql = bind(
            _COUNTRY_SQL,
            {"table": self._tables["country"].table},
            {"since": checked_since(since_ms), "limit": MAX_POINTS},
        )
        data = self._run(
            sql, ["window_start", "country", "pageview_count", "average_age"], "country"
        )
        # The schema stores a null average as -1 (0.11 queries are not null-aware by default).
        ages = data.frame["average_age"]
        data.frame["average_age"] = ages.where(ages >= 0).astype("float64")
        return data

    def tumbling(self, since_ms: int, sources: Collection[str]) -> ChartData:
        return self._by_source("tumbling", since_ms, sources)

    def hopping(self, since_ms: int, sources: Collection[str]) -> ChartData:
        return self._by_source("hopping", since_ms, sources)

    def session(self, since_ms: int, sources: Collection[str]) -> ChartData:
        return self._by_source("session", since_ms, sources, extra=_LIVE_SESSIONS)

    def _by_source(
        self, kind: str, since_ms: int, sources: Collection[str], extra: str = ""
    ) -> ChartData:
        template = _SOURCE_SQL.replace("{extra}", extra)
        sql = bind(
            template,
            {"table": self._tables[kind].table},
            {
                "since": checked_since(since_ms),
                "sources": checked_sources(sources),
                "limit": MAX_POINTS,
            },
        )
        return self._run(sql, ["window_start", "source", "pageview_count"], "source")

    def _run(self, sql: str, columns: list[str], group: str) -> ChartData:
        return run_query(self._broker, sql, columns, ["window_start", group])


def run_query(broker: PinotBroker, sql: str, columns: list[str], order: list[str]) -> ChartData:
    """Run ``sql``, name its result's columns ``columns`` and sort them by ``order``."""
    result = broker.query(sql)
    log.info(
        "query took %.1f ms (Pinot %.0f ms), %d rows: %s",
        result.latency_ms,
        result.pinot_time_ms,
        len(result.rows),
        sql,
    )
    frame = pd.DataFrame(result.rows, columns=columns)
    # The queries take the newest points; charts and callers want them oldest first.
    frame = frame.sort_values(order, ignore_index=True)
    return ChartData(frame, result.latency_ms, result.pinot_time_ms, sql)
