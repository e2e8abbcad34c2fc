"""The clickstream page's queries against the tutorial's Pinot upsert tables.

The tables hold ksqlDB's sink columns under their upper-case names, quoted here. Each holds one
current row per group and window, so a window's count is read as it is; the sums below add up
*different* users' rows of one window, never one row's updates.
"""

from __future__ import annotations

from collections.abc import Mapping

from dashboard.queries import MAX_POINTS, ChartData, checked_since, run_query
from dashboard.sql import bind
from pinot.client import PinotBroker
from pinot.tables import TableSpec

_TOTAL_PER_WINDOW_SQL = (
    'SELECT "EVENT_TS", SUM("{column}") FROM {table} WHERE "EVENT_TS" >= :since '
    'GROUP BY "EVENT_TS" ORDER BY "EVENT_TS" DESC LIMIT :limit'
)
_ROWS_SQL = (
    'SELECT {columns} FROM {table} WHERE "EVENT_TS" >= :since '
    'ORDER BY "EVENT_TS" DESC, {order} LIMIT :limit'
)


class ClickstreamQueries:
    """One query per panel; ``tables`` by kind, as :func:`pinot.tables.default_tables`."""

    def __init__(self, broker: PinotBroker, tables: Mapping[str, TableSpec]) -> None:
        self._broker = broker
        self._tables = tables

    def events_per_min(self, since_ms: int) -> ChartData:
        """All users' events per one-minute window."""
        return self._total("events_per_min", "EVENTS", "events", since_ms)

    def pages_per_min(self, since_ms: int) -> ChartData:
        """All users' html pages per one-minute window, every 5 s."""
        return self._total("pages_per_min", "PAGES", "pages", since_ms)

    def error_alerts(self, since_ms: int) -> ChartData:
        """Statuses above 400 seen more than 5 times in a minute (the HAVING table)."""
        return self._rows("errors_per_min_alert", ["STATUS", "ERRORS"], since_ms, "STATUS")

    def errors_per_min(self, since_ms: int) -> ChartData:
        return self._rows("errors_per_min", ["STATUS", "ERRORS"], since_ms, "STATUS")

    def error_codes(self, since_ms: int) -> ChartData:
        """Codes with their definitions, counted per 30 s window when seen more than once."""
        return self._rows(
            "enriched_error_codes_count", ["CODE", "DEFINITION", "COUNT"], since_ms, "CODE"
        )

    def user_sessions(self, since_ms: int) -> ChartData:
        """Each user's latest session (30 s of inactivity ends one): its events and end."""
        return self._rows("click_user_sessions", ["USERNAME", "EVENTS"], since_ms, "USERNAME")

    def user_ip_activity(self, since_ms: int) -> ChartData:
        """(user, IP, city) seen more than once in a minute."""
        return self._rows(
            "user_ip_activity", ["USERNAME", "IP", "CITY", "COUNT"], since_ms, "USERNAME"
        )

    def _total(self, kind: str, column: str, name: str, since_ms: int) -> ChartData:
        # The column name comes from this module, never from the page: a fixed allow-list.
        sql = bind(
            _TOTAL_PER_WINDOW_SQL.replace("{column}", column),
            {"table": self._tables[kind].table},
            {"since": checked_since(since_ms), "limit": MAX_POINTS},
        )
        return run_query(self._broker, sql, ["event_ts", name], ["event_ts"])

    def _rows(self, kind: str, columns: list[str], since_ms: int, order: str) -> ChartData:
        quoted = ", ".join(f'"{c}"' for c in ["EVENT_TS", *columns])
        sql = bind(
            _ROWS_SQL.replace("{columns}", quoted).replace("{order}", f'"{order}"'),
            {"table": self._tables[kind].table},
            {"since": checked_since(since_ms), "limit": MAX_POINTS},
        )
        names = ["event_ts", *(c.lower() for c in columns)]
        return run_query(self._broker, sql, names, ["event_ts", order.lower()])
