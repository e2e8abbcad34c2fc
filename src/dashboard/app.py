"""Streamlit page: page views by country, and tumbling/hopping/session counts by source.

Run with ``streamlit run src/dashboard/app.py``. The charts live in a fragment that re-runs every
``DASHBOARD_REFRESH_SECONDS`` (15) without reloading the page; Pinot being down or a table being
empty is reported on the page and simply retried on the next refresh.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import altair as alt
import pandas as pd
import streamlit as st

from clients.settings import PinotSettings, env_int
from contracts.records import SOURCES
from dashboard.queries import MAX_POINTS, ChartData, DashboardQueries
from pinot.client import PinotBroker, PinotError, PinotUnavailable
from pinot.tables import default_tables

log = logging.getLogger("dashboard")

REFRESH_SECONDS = env_int("DASHBOARD_REFRESH_SECONDS", 15)
QUERY_TIMEOUT_S = 3.0
#: Label -> how far back from now; None = no lower bound.
TIME_RANGES: dict[str, int | None] = {
    "Last 15 minutes": 15 * 60_000,
    "Last hour": 3_600_000,
    "Last 6 hours": 6 * 3_600_000,
    "Last 24 hours": 24 * 3_600_000,
    "Last 7 days": 7 * 24 * 3_600_000,
    "All": None,
}


def since_ms(label: str, now: datetime) -> int:
    span = TIME_RANGES[label]
    return 0 if span is None else max(0, int(now.timestamp() * 1000) - span)


def with_time(frame: pd.DataFrame) -> pd.DataFrame:
    """Epoch-ms window starts as UTC datetimes, which the chart axes format as times."""
    return frame.assign(window=pd.to_datetime(frame["window_start"], unit="ms", utc=True))


def show(title: str, fetch: Callable[[], ChartData], draw: Callable[[pd.DataFrame], None]) -> None:
    """Run one chart's query and draw it, or say clearly why there is nothing to draw."""
    st.subheader(title)
    try:
        data = fetch()
    except PinotUnavailable as exc:
        log.warning("%s: %s", title, exc)
        st.warning(f"Pinot is unreachable; retrying every {REFRESH_SECONDS} s. ({exc})")
        return
    except (PinotError, ValueError) as exc:
        log.warning("%s: %s", title, exc)
        st.warning(f"Query failed; retrying every {REFRESH_SECONDS} s. ({exc})")
        return
    except Exception as exc:  # the page must never show a traceback
        log.exception("%s: unexpected error", title)
        st.warning(f"Unexpected error; retrying every {REFRESH_SECONDS} s. ({exc})")
        return
    if data.frame.empty:
        st.info(f"No data in this time range yet; retrying every {REFRESH_SECONDS} s.")
    else:
        draw(with_time(data.frame))
    st.caption(
        f"{len(data.frame)} points · query {data.latency_ms:.0f} ms "
        f"(Pinot {data.pinot_time_ms:.0f} ms)"
    )


def time_lines(frame: pd.DataFrame, y: str, color: str) -> alt.Chart:
    """Lines over window start, labelled in 24-hour UTC whatever the browser's time zone.

    Vega-Lite's default time labels are local time on a 12-hour clock without AM/PM, so 19:15
    UTC read "07:15". Midnight is labelled with the date, so a multi-day range stays readable.
    """
    label = (
        "utcFormat(datum.value, '%H:%M') == '00:00' ? utcFormat(datum.value, '%d %b') "
        ": utcFormat(datum.value, '%H:%M')"
    )
    x = alt.X(
        "window:T",
        title="window start (UTC)",
        scale=alt.Scale(type="utc"),
        axis=alt.Axis(labelExpr=label, labelOverlap=True),
    )
    tooltip = [
        alt.Tooltip(
            "window:T", title="window start (UTC)", format="%Y-%m-%d %H:%M", formatType="utc"
        ),
        alt.Tooltip(f"{color}:N"),
        alt.Tooltip(f"{y}:Q"),
    ]
    # SVG rather than canvas: the axis labels are text that a browser test can read.
    return (
        alt.Chart(frame[["window", color, y]])
        .mark_line(point=True)
        .encode(x=x, y=alt.Y(f"{y}:Q"), color=alt.Color(f"{color}:N"), tooltip=tooltip)
        .properties(usermeta={"embedOptions": {"renderer": "svg"}})
    )


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
    # A short timeout: four queries must fit in one refresh interval even if Pinot hangs.
    broker = PinotBroker(PinotSettings.from_env().broker_url, timeout_s=QUERY_TIMEOUT_S)
    queries = DashboardQueries(broker, default_tables())
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
    st.set_page_config(page_title="Page views", layout="wide")
    st.title("Page views")
    with st.sidebar:
        time_range = st.selectbox("Time range", list(TIME_RANGES), index=1)
        sources = st.multiselect("Sources", SOURCES, default=list(SOURCES))
        st.caption(
            f"Each chart shows the latest {MAX_POINTS} points; "
            "the source filter applies to the three source charts."
        )
    charts(time_range, sources)


# Streamlit runs this file as __main__; importing it (tests, tools) draws nothing.
if __name__ == "__main__":
    main()
