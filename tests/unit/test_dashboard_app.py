"""The page's logic under Streamlit's AppTest, with Pinot's broker faked at the HTTP boundary.

The fake is a real HTTP server on 127.0.0.1 that answers ``POST /query/sql`` like Pinot's broker,
so everything from the query builder through ``requests`` to the page is the real code.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[2] / "src" / "dashboard" / "app.py"
T0 = 1_800_000_000_000  # a fixed window start (ms); the page is set to "All" time

Responder = Callable[[str], dict[str, Any]]


def result(columns: list[str], rows: list[list[Any]]) -> dict[str, Any]:
    return {
        "resultTable": {"dataSchema": {"columnNames": columns}, "rows": rows},
        "exceptions": [],
        "timeUsedMs": 3,
    }


def full_tables(sql: str) -> dict[str, Any]:
    if "FROM pageview_country" in sql:
        return result(
            ["window_start", "country", "pageview_count", "average_age"],
            [[T0, "France", 4, 31.5], [T0, "unknown", 2, -1.0]],
        )
    return result(
        ["window_start", "source", "pageview_count"],
        [[T0 + 60_000, "Inbox", 7], [T0, "Homepage", 3]],
    )


class FakeBroker:
    def __init__(self) -> None:
        self.queries: list[str] = []
        self.respond: Responder = full_tables


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBroker]:
    fake = FakeBroker()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            fake.queries.append(body["sql"])
            payload = json.dumps(fake.respond(body["sql"])).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("PINOT_BROKER_URL", f"http://127.0.0.1:{server.server_port}")
    for kind in ("country", "tumbling", "hopping", "session"):
        monkeypatch.delenv(f"PINOT_TABLE_{kind.upper()}", raising=False)
    yield fake
    server.shutdown()
    server.server_close()


def run_app() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.run()
    at.sidebar.selectbox[0].select("All").run()
    return at


def charts(at: AppTest) -> list[Any]:
    return at.get("vega_lite_chart")


def chart_rows(chart: Any) -> list[dict[str, Any]]:
    """The rows a Vega-Lite chart was sent, decoded from its Arrow payload."""
    dataset = chart.proto.datasets[0].data.data if chart.proto.datasets else chart.proto.data.data
    frame = pa.ipc.open_stream(dataset).read_all().to_pandas()
    frame["window"] = frame["window"].map(lambda t: int(t.timestamp() * 1000))
    return frame.to_dict("records")


def texts(elements: Any) -> list[str]:
    return [e.value for e in elements]


def test_renders_five_charts_with_latency_and_last_updated(broker: FakeBroker) -> None:
    at = run_app()
    assert not at.exception
    assert not at.error
    assert not at.warning
    # country: page views + average age; then tumbling, hopping, session.
    rendered = [chart_rows(chart) for chart in charts(at)]
    assert rendered == [
        [
            {"window": T0, "country": "France", "pageview_count": 4},
            {"window": T0, "country": "unknown", "pageview_count": 2},
        ],
        # The unknown country has no age (stored as -1): left out, not plotted as -1.
        [{"window": T0, "country": "France", "average_age": 31.5}],
        *[
            [
                {"window": T0, "source": "Homepage", "pageview_count": 3},
                {"window": T0 + 60_000, "source": "Inbox", "pageview_count": 7},
            ]
        ]
        * 3,
    ]
    assert texts(at.subheader) == [
        "Page views and average age by country",
        "Tumbling windows (5 min)",
        "Hopping windows (5 min, every 1 min)",
        "Sessions (5 min gap)",
    ]
    captions = texts(at.caption)
    assert any(re.match(r"Last updated \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", c) for c in captions)
    assert sum(bool(re.match(r"2 points · query \d+ ms \(Pinot 3 ms\)", c)) for c in captions) == 4


def test_queries_read_upserted_rows_with_validated_filters(broker: FakeBroker) -> None:
    at = run_app()
    broker.queries.clear()
    at.sidebar.multiselect[0].unselect("Inbox").run()
    assert not at.exception
    by_table = {re.search(r"FROM (\w+)", q).group(1): q for q in broker.queries}
    assert by_table["pageview_country"] == (
        "SELECT window_start, country, pageview_count, average_age FROM pageview_country "
        "WHERE window_start >= 0 ORDER BY window_start DESC, country LIMIT 100"
    )
    assert by_table["pageview_tumbling"] == (
        "SELECT window_start, source, pageview_count FROM pageview_tumbling "
        "WHERE window_start >= 0 AND source IN ('Homepage', 'External') "
        "ORDER BY window_start DESC, source LIMIT 100"
    )
    assert (
        "FROM pageview_hopping WHERE window_start >= 0 AND source IN"
        in by_table["pageview_hopping"]
    )
    assert by_table["pageview_session"].endswith(
        "source IN ('Homepage', 'External') AND deleted = false "
        "ORDER BY window_start DESC, source LIMIT 100"
    )
    # No SUM(): one upserted row per window is read as it is.
    assert not any("SUM(" in q.upper() for q in broker.queries)


def test_time_range_reaches_sql_as_a_number(broker: FakeBroker) -> None:
    at = run_app()
    broker.queries.clear()
    at.sidebar.selectbox[0].select("Last hour").run()
    since = {int(m) for q in broker.queries for m in re.findall(r"window_start >= (\d+)", q)}
    assert len(since) == 1 and since.pop() > T0 - 10**12  # a real "now - 1 h" in epoch ms


def test_no_sources_selected_says_so(broker: FakeBroker) -> None:
    at = run_app()
    for source in ("Homepage", "Inbox", "External"):
        at.sidebar.multiselect[0].unselect(source)
    at.run()
    assert not at.exception
    assert len(charts(at)) == 2  # the country section only
    assert texts(at.info) == ["Select at least one source to see the source charts."]


def test_empty_tables_say_no_data(broker: FakeBroker) -> None:
    broker.respond = lambda sql: result(["window_start", "source", "pageview_count"], [])
    at = run_app()
    assert not at.exception
    assert not charts(at)
    assert texts(at.info) == ["No data in this time range yet; retrying every 15 s."] * 4


def test_pinot_query_error_is_reported_with_pinots_message(broker: FakeBroker) -> None:
    def missing_table(sql: str) -> dict[str, Any]:
        return {"exceptions": [{"errorCode": 190, "message": "TableDoesNotExistError"}]}

    broker.respond = missing_table
    at = run_app()
    assert not at.exception
    assert len(at.warning) == 4
    assert all("TableDoesNotExistError" in w.value for w in at.warning)


def test_pinot_down_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("PINOT_BROKER_URL", f"http://127.0.0.1:{port}")
    at = run_app()
    assert not at.exception
    assert not charts(at)
    assert len(at.warning) == 4
    assert all(w.value.startswith("Pinot is unreachable; retrying every 15 s.") for w in at.warning)
