"""The running dashboard in a real headless Chromium, fed by real Pinot tables.

Streamlit is started on a free 127.0.0.1 port against unique tables loaded through Kafka;
Debian's Chromium (no browser download) must render all charts with no error element, and
the page is saved as ``artifacts/dashboard.png``. (The clickstream page is tested on the
tutorial's real output in ``test_ksql_clickstream``.)
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from clients.settings import PinotSettings
from contracts.records import SOURCES
from dashboard.queries import DashboardQueries
from pinot.client import PinotBroker, PinotController
from pinot.kafka_load import TransactionalWriter
from pinot.provision import temporary_tables, unique_specs
from tests.integration.browser import assert_no_error_shown, chromium, dashboard, screenshot

pytestmark = pytest.mark.integration

MIN = 60_000
NOW = (int(time.time() * 1000) // MIN) * MIN


def rows(kind: str) -> list[dict[str, object]]:
    """A few windows per group over the last half hour, so every line has several points."""
    out: list[dict[str, object]] = []
    for i in range(6):
        start = NOW - (30 - 5 * i) * MIN
        end = start + 5 * MIN
        if kind == "country":
            for n, country in enumerate(("France", "Germany", "unknown")):
                age = None if country == "unknown" else 30.0 + n + i
                out.append(
                    {
                        "country": country,
                        "window_start": start,
                        "window_end": end,
                        "pageview_count": 2 + n + i,
                        "average_age": age,
                    }
                )
        else:
            for n, source in enumerate(SOURCES):
                row = {
                    "source": source,
                    "window_start": start,
                    "window_end": end,
                    "pageview_count": 1 + n + (i % 3),
                }
                if kind == "session":
                    row["deleted"] = False
                out.append(row)
    return out


@pytest.fixture
def loaded_tables(
    kafka: str, pinot: PinotSettings, make_topic: Callable[..., str]
) -> Iterator[dict[str, str]]:
    kinds = ("country", "tumbling", "hopping", "session")
    specs = unique_specs("ui", {k: make_topic(f"ui-{k}", partitions=1) for k in kinds})
    broker = PinotBroker(pinot.broker_url)
    with temporary_tables(PinotController(pinot.controller_url), broker, specs.values()):
        for kind, spec in specs.items():
            with TransactionalWriter(kafka, spec) as writer:
                writer.write(rows(kind))
        queries = DashboardQueries(broker, specs)
        deadline = time.monotonic() + 90
        for kind in kinds:
            fetch = getattr(queries, kind)
            args = (0,) if kind == "country" else (0, SOURCES)
            while len(fetch(*args).frame) < len(rows(kind)):
                assert time.monotonic() < deadline, f"{kind} rows never reached Pinot"
                time.sleep(0.5)
        yield {f"PINOT_TABLE_{k.upper()}": s.table for k, s in specs.items()}


@pytest.fixture
def dashboard_url(
    loaded_tables: dict[str, str], pinot: PinotSettings, tmp_path: Path
) -> Iterator[str]:
    env = {**loaded_tables, "PINOT_BROKER_URL": pinot.broker_url}
    with dashboard(env, tmp_path / "streamlit.log") as url:
        yield url


def test_dashboard_renders_all_charts_in_chromium(dashboard_url: str, tmp_path: Path) -> None:
    with chromium(tmp_path / "chromium-profile", height=2600) as page:
        page.goto(dashboard_url)
        page.get_by_text("Last updated").wait_for(timeout=60_000)
        charts = page.locator('[data-testid="stVegaLiteChart"]')
        # Country page views + average age, tumbling, hopping, session.
        page.wait_for_function(
            'document.querySelectorAll(\'[data-testid="stVegaLiteChart"] canvas, '
            '[data-testid="stVegaLiteChart"] svg.marks\').length >= 5',
            timeout=60_000,
        )
        assert charts.count() == 5
        for heading in (
            "Page views and average age by country",
            "Tumbling windows (5 min)",
            "Hopping windows (5 min, every 1 min)",
            "Sessions (5 min gap)",
        ):
            assert page.get_by_role("heading", name=heading).count() == 1
        assert_no_error_shown(page)
        # Every chart got all 18 rows (6 windows x 3 groups) and shows its query latency.
        assert page.get_by_text(re.compile(r"^18 points · query \d+ ms")).count() == 4
        assert_time_axes_in_utc(page)
        screenshot(page, "dashboard.png")


def assert_time_axes_in_utc(page: Any) -> None:
    """Every chart's time axis is titled UTC and labelled in 24-hour UTC (the browser runs in
    New York time): each label's hour is one the data spans in UTC."""
    axes = page.eval_on_selector_all(
        '[data-testid="stVegaLiteChart"] g.role-axis',
        """axes => axes.map(axis => ({
            aria: axis.getAttribute("aria-label") || "",
            title: [...axis.querySelectorAll(".role-axis-title text")].map(t => t.textContent),
            labels: [...axis.querySelectorAll(".role-axis-label text")].map(t => t.textContent),
        }))""",
    )
    x_axes = [axis for axis in axes if axis["aria"].startswith("X-axis")]
    assert len(x_axes) == 5, axes
    first = NOW - 30 * MIN
    hours = {
        datetime.fromtimestamp((first + m * MIN) / 1000, UTC).strftime("%H") for m in range(31)
    }
    for axis in x_axes:
        assert axis["title"] == ["window start (UTC)"], axis
        assert axis["labels"], axis
        for label in axis["labels"]:
            if re.fullmatch(r"\d\d [A-Z][a-z]{2}", label):
                continue  # midnight is labelled with the date
            assert re.fullmatch(r"\d\d:\d\d", label), axis
            assert label[:2] in hours, (label, sorted(hours), axis)
