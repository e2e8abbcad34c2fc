"""The clickstream page: the panels of Confluent's clickstream tutorial dashboard, over the
Pinot tables on its ksqlDB sinks (``python -m pinot.setup --family clickstream``).

Refreshed like the page-view page: a fragment re-runs every ``DASHBOARD_REFRESH_SECONDS``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

import altair as alt
import pandas as pd
import streamlit as st

from dashboard.charts import REFRESH_SECONDS, broker, show, since_ms, time_lines, time_range_picker
from dashboard.clickstream_queries import ClickstreamQueries
from dashboard.queries import MAX_POINTS, ChartData
from pinot.tables import CLICKSTREAM, default_tables

_TIME = "event_ts"


Draw = Callable[[pd.DataFrame], None]


def line(y: str, color: str | None = None) -> Draw:
    def draw(frame: pd.DataFrame) -> None:
        # Windows start every 5 s here: minutes alone would label several ticks alike.
        st.altair_chart(time_lines(frame, y, color, clock="%H:%M:%S"), width="stretch")

    return draw


def newest_first(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """A table's rows, newest window first, its time shown as a UTC timestamp."""
    shown = frame.sort_values(_TIME, ascending=False, kind="stable")
    return shown.assign(window=shown["window"].dt.strftime("%Y-%m-%d %H:%M:%S"))[
        ["window", *columns]
    ].rename(columns={"window": "window start (UTC)"})


def table(columns: list[str]) -> Draw:
    def draw(frame: pd.DataFrame) -> None:
        st.dataframe(newest_first(frame, columns), hide_index=True, width="stretch")

    return draw


def draw_sessions(frame: pd.DataFrame) -> None:
    """Events in each user's latest session, as bars, with when the session last saw a click."""
    chart = (
        alt.Chart(frame[["username", "events", "window"]])
        .mark_bar()
        .encode(
            x=alt.X("events:Q", title="events in the latest session"),
            y=alt.Y("username:N", sort="-x", title=None),
            tooltip=[
                alt.Tooltip("username:N"),
                alt.Tooltip("events:Q"),
                alt.Tooltip(
                    "window:T", title="last click (UTC)", format="%H:%M:%S", formatType="utc"
                ),
            ],
        )
        .properties(usermeta={"embedOptions": {"renderer": "svg"}})
    )
    st.altair_chart(chart, width="stretch")


Query = Callable[[ClickstreamQueries, int], ChartData]

#: The page, row by row: each panel's title, query and drawing.
PANELS: tuple[tuple[tuple[str, Query, Draw], ...], ...] = (
    (
        ("Events per minute", ClickstreamQueries.events_per_min, line("events")),
        ("Pages per minute", ClickstreamQueries.pages_per_min, line("pages")),
    ),
    (
        (
            "Errors per minute by status",
            ClickstreamQueries.errors_per_min,
            line("errors", "status"),
        ),
    ),
    (
        (
            "Error alerts (more than 5 a minute)",
            ClickstreamQueries.error_alerts,
            table(["status", "errors"]),
        ),
        (
            "Enriched error codes (per 30 s)",
            ClickstreamQueries.error_codes,
            line("count", "definition"),
        ),
    ),
    (
        (
            "User sessions (30 s of inactivity ends one)",
            ClickstreamQueries.user_sessions,
            draw_sessions,
        ),
        (
            "User IP activity (more than once a minute)",
            ClickstreamQueries.user_ip_activity,
            table(["username", "ip", "city", "count"]),
        ),
    ),
)
TITLES = [title for row in PANELS for title, _query, _draw in row]


@st.fragment(run_every=REFRESH_SECONDS)
def panels(time_range: str) -> None:
    now = datetime.now(UTC)
    since = since_ms(time_range, now)
    queries = ClickstreamQueries(broker(), default_tables(CLICKSTREAM))
    st.caption(f"Last updated {now:%Y-%m-%d %H:%M:%S} UTC · refreshes every {REFRESH_SECONDS} s")
    for row in PANELS:
        for place, (title, query, draw) in zip(st.columns(len(row)), row, strict=True):
            with place:
                show(title, partial(query, queries, since), draw, _TIME)


def main() -> None:
    st.title("Clickstream")
    with st.sidebar:
        time_range = time_range_picker()
        st.caption(
            f"The clickstream tutorial's tables; each panel shows the latest {MAX_POINTS} rows. "
            "User sessions: each user's latest session."
        )
    panels(time_range)


# Streamlit runs a page's file as __main__; importing it (tests, tools) draws nothing.
if __name__ == "__main__":
    main()
