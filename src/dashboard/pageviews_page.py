"""The page-view page: page views by country, and tumbling/hopping/session counts by source.

The charts live in a fragment that re-runs every ``DASHBOARD_REFRESH_SECONDS`` (15) without
reloading the page; Pinot being down or a table being empty is reported on the page and simply
retried on the next refresh.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from contracts.records import SOURCES
from dashboard.charts import REFRESH_SECONDS, broker, show, since_ms, time_lines, time_range_picker
from dashboard.queries import MAX_POINTS, DashboardQueries
from pinot.tables import default_tables


def draw_country(frame: pd.DataFrame) -> None:
    left, right = st.columns(2)
    left.caption("Page views by country")
    left.altair_chart(time_lines(frame, "pageview_count", "country"), width="stretch")
    right.caption("Average age by country (known users only)")
    right.altair_chart(
        time_lines(frame.dropna(subset=["average_age"]), "average_age", "country"),
        width="stretch",
    )


def draw_by_source(frame: pd.DataFrame) -> None:
    st.altair_chart(time_lines(frame, "pageview_count", "source"), width="stretch")


@st.fragment(run_every=REFRESH_SECONDS)
def charts(time_range: str, sources: list[str]) -> None:
    now = datetime.now(UTC)
    since = since_ms(time_range, now)
    queries = DashboardQueries(broker(), default_tables())
    st.caption(f"Last updated {now:%Y-%m-%d %H:%M:%S} UTC · refreshes every {REFRESH_SECONDS} s")
    show("Page views and average age by country", lambda: queries.country(since), draw_country)
    if not sources:
        st.info("Select at least one source to see the source charts.")
        return
    show("Tumbling windows (5 min)", lambda: queries.tumbling(since, sources), draw_by_source)
    show(
        "Hopping windows (5 min, every 1 min)",
        lambda: queries.hopping(since, sources),
        draw_by_source,
    )
    show("Sessions (5 min gap)", lambda: queries.session(since, sources), draw_by_source)


def main() -> None:
    st.title("Page views")
    with st.sidebar:
        time_range = time_range_picker()
        sources = st.multiselect("Sources", SOURCES, default=list(SOURCES))
        st.caption(
            f"Each chart shows the latest {MAX_POINTS} points; "
            "the source filter applies to the three source charts."
        )
    charts(time_range, sources)


# Streamlit runs a page's file as __main__; importing it (tests, tools) draws nothing.
if __name__ == "__main__":
    main()
