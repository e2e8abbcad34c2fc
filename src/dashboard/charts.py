"""What every dashboard page shares: the time-range picker, one chart's query-and-draw with its
error reporting, and time-series lines labelled in UTC."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

import altair as alt
import pandas as pd
import streamlit as st

from clients.settings import PinotSettings, env_int
from dashboard.queries import ChartData
from pinot.client import PinotBroker, PinotError, PinotUnavailable

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
DEFAULT_RANGE = "Last hour"


def since_ms(label: str, now: datetime) -> int:
    span = TIME_RANGES[label]
    return 0 if span is None else max(0, int(now.timestamp() * 1000) - span)


def time_range_picker() -> str:
    """The sidebar's time range; ``?range=Last 7 days`` in the URL preselects one, so a link
    can open a page on the range it was shared with."""
    wanted = st.query_params.get("range", DEFAULT_RANGE)
    labels = list(TIME_RANGES)
    index = labels.index(wanted) if wanted in TIME_RANGES else labels.index(DEFAULT_RANGE)
    return st.selectbox("Time range", labels, index=index)


def broker() -> PinotBroker:
    # A short timeout: every query of a page must fit in one refresh interval even if Pinot
    # hangs.
    return PinotBroker(PinotSettings.from_env().broker_url, timeout_s=QUERY_TIMEOUT_S)


def with_time(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Epoch-ms times as UTC datetimes (column ``window``), which chart axes format as times."""
    return frame.assign(window=pd.to_datetime(frame[column], unit="ms", utc=True))


def show(
    title: str,
    fetch: Callable[[], ChartData],
    draw: Callable[[pd.DataFrame], None],
    time_column: str = "window_start",
) -> None:
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
        draw(with_time(data.frame, time_column))
    st.caption(
        f"{len(data.frame)} points · query {data.latency_ms:.0f} ms "
        f"(Pinot {data.pinot_time_ms:.0f} ms)"
    )


def time_lines(
    frame: pd.DataFrame,
    y: str,
    color: str | None,
    title: str = "window start (UTC)",
    clock: str = "%H:%M",
) -> alt.Chart:
    """Lines over ``window``, labelled in 24-hour UTC whatever the browser's time zone.

    Vega-Lite's default time labels are local time on a 12-hour clock without AM/PM, so 19:15
    UTC read "07:15". Midnight is labelled with the date, so a multi-day range stays readable.
    ``clock="%H:%M:%S"`` for windows that start every few seconds.
    """
    label = (
        "utcFormat(datum.value, '%H:%M:%S') == '00:00:00' ? utcFormat(datum.value, '%d %b') "
        f": utcFormat(datum.value, '{clock}')"
    )
    x = alt.X(
        "window:T",
        title=title,
        scale=alt.Scale(type="utc"),
        axis=alt.Axis(labelExpr=label, labelOverlap=True),
    )
    tooltip = [
        alt.Tooltip("window:T", title=title, format="%Y-%m-%d %H:%M:%S", formatType="utc"),
        *([alt.Tooltip(f"{color}:N")] if color else []),
        alt.Tooltip(f"{y}:Q"),
    ]
    columns = ["window", y] if color is None else ["window", color, y]
    encoding: dict[str, object] = {"x": x, "y": alt.Y(f"{y}:Q"), "tooltip": tooltip}
    if color is not None:
        encoding["color"] = alt.Color(f"{color}:N")
    # SVG rather than canvas: the axis labels are text that a browser test can read.
    return (
        alt.Chart(frame[columns])
        .mark_line(point=True)
        .encode(**encoding)
        .properties(usermeta={"embedOptions": {"renderer": "svg"}})
    )
