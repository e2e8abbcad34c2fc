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

from pinot.tables import default_tables

APP = Path(__file__).resolve().parents[2] / "src" / "dashboard" / "app.py"
T0 = 1_800_000_000_000  # a fixed window start (ms); the page is set to "All" time

Responder = Callable[[str], dict[str, Any]]


def result(columns: list[str], rows: list[list[Any]]) -> dict[str, Any]:
    return {
        "resultTable": {"dataSchema": {"columnNames": columns}, "rows": rows},
        "exceptions": [],
        "timeUsedMs": 3,
    }


#: The clickstream tables' rows as Pinot returns them for the page's queries, by table.
CLICKSTREAM_ROWS: dict[str, tuple[list[str], list[list[Any]]]] = {
    "clickstream_events_per_min": (["EVENT_TS", "sum(EVENTS)"], [[T0 + 60_000, 9], [T0, 5]]),
    "clickstream_pages_per_min": (["EVENT_TS", "sum(PAGES)"], [[T0 + 5_000, 2], [T0, 1]]),
    "clickstream_errors_per_min": (
        ["EVENT_TS", "STATUS", "ERRORS"],
        [[T0 + 5_000, 404, 2], [T0, 404, 1], [T0, 500, 3]],
    ),
    "clickstream_errors_per_min_alert": (
        ["EVENT_TS", "STATUS", "ERRORS"],
        [[T0 + 20_000, 500, 7], [T0, 500, 6]],
    ),
    "clickstream_enriched_error_codes_count": (
        ["EVENT_TS", "CODE", "DEFINITION", "COUNT"],
        [[T0, 404, "Page not found", 4]],
    ),
    "clickstream_click_user_sessions": (
        ["EVENT_TS", "USERNAME", "EVENTS"],
        [[T0 + 90_000, "Ferd88", 12], [T0 + 30_000, "Reeva43", 3]],
    ),
    "clickstream_user_ip_activity": (
        ["EVENT_TS", "USERNAME", "IP", "CITY", "COUNT"],
        [
            [T0 + 60_000, "Ferd88", "10.0.0.1", "Palo Alto", 5],
            [T0, "Reeva43", "10.0.0.2", "London", 2],
        ],
    ),
}


def full_tables(sql: str) -> dict[str, Any]:
    table = re.search(r"FROM (\w+)", sql).group(1)
    if table in CLICKSTREAM_ROWS:
        return result(*CLICKSTREAM_ROWS[table])
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
    for kind in default_tables(None):
        monkeypatch.delenv(f"PINOT_TABLE_{kind.upper()}", raising=False)
    yield fake
    server.shutdown()
    server.server_close()


def run_app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.run()
    if page is not None:
        at.switch_page(page).run()
    at.sidebar.selectbox[0].select("All").run()
    return at


def charts(at: AppTest) -> list[Any]:
    return at.get("vega_lite_chart")


def chart_rows(chart: Any) -> list[dict[str, Any]]:
    """The rows a Vega-Lite chart was sent, decoded from its Arrow payload."""
    dataset = chart.proto.datasets[0].data.data if chart.proto.datasets else chart.proto.data.data
    frame = pa.ipc.open_stream(dataset).read_all().to_pandas()
    if "window" in frame:
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


def test_clickstream_page_draws_the_tutorials_panels(broker: FakeBroker) -> None:
    at = run_app("clickstream_page.py")
    assert not at.exception
    assert not at.error
    assert not at.warning
    assert texts(at.subheader) == [
        "Events per minute",
        "Pages per minute",
        "Errors per minute by status",
        "Error alerts (more than 5 a minute)",
        "Enriched error codes (per 30 s)",
        "User sessions (30 s of inactivity ends one)",
        "User IP activity (more than once a minute)",
    ]
    assert [chart_rows(chart) for chart in charts(at)] == [
        [{"window": T0, "events": 5}, {"window": T0 + 60_000, "events": 9}],
        [{"window": T0, "pages": 1}, {"window": T0 + 5_000, "pages": 2}],
        [
            {"window": T0, "status": 404, "errors": 1},
            {"window": T0, "status": 500, "errors": 3},
            {"window": T0 + 5_000, "status": 404, "errors": 2},
        ],
        [{"window": T0, "definition": "Page not found", "count": 4}],
        [
            {"window": T0 + 30_000, "username": "Reeva43", "events": 3},
            {"window": T0 + 90_000, "username": "Ferd88", "events": 12},
        ],
    ]
    alerts, activity = (frame.value for frame in at.dataframe)
    start = "2027-01-15 08:00:00"  # T0 in UTC
    assert alerts.to_dict("records") == [
        {"window start (UTC)": "2027-01-15 08:00:20", "status": 500, "errors": 7},
        {"window start (UTC)": start, "status": 500, "errors": 6},
    ]
    assert activity.to_dict("records") == [
        {
            "window start (UTC)": "2027-01-15 08:01:00",
            "username": "Ferd88",
            "ip": "10.0.0.1",
            "city": "Palo Alto",
            "count": 5,
        },
        {
            "window start (UTC)": start,
            "username": "Reeva43",
            "ip": "10.0.0.2",
            "city": "London",
            "count": 2,
        },
    ]
    captions = texts(at.caption)
    assert (
        sum(bool(re.match(r"\d+ points · query \d+ ms \(Pinot 3 ms\)", c)) for c in captions) == 7
    )


def test_clickstream_queries_quote_ksqldb_columns_and_sum_only_across_users(
    broker: FakeBroker,
) -> None:
    at = run_app("clickstream_page.py")
    broker.queries.clear()
    at.run()
    by_table = {re.search(r"FROM (\w+)", q).group(1): q for q in broker.queries}
    assert by_table["clickstream_events_per_min"] == (
        'SELECT "EVENT_TS", SUM("EVENTS") FROM clickstream_events_per_min '
        'WHERE "EVENT_TS" >= 0 GROUP BY "EVENT_TS" ORDER BY "EVENT_TS" DESC LIMIT 100'
    )
    assert by_table["clickstream_user_ip_activity"] == (
        'SELECT "EVENT_TS", "USERNAME", "IP", "CITY", "COUNT" FROM clickstream_user_ip_activity '
        'WHERE "EVENT_TS" >= 0 ORDER BY "EVENT_TS" DESC, "USERNAME" LIMIT 100'
    )
    # Sums group by the window: they add different users' rows, never one row's updates.
    sums = [q for q in broker.queries if "SUM(" in q]
    assert sums and all('GROUP BY "EVENT_TS"' in q for q in sums)
    assert len(by_table) == 7


def test_time_range_comes_from_the_url(broker: FakeBroker) -> None:
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.query_params["range"] = "Last 7 days"
    at.run()
    assert at.sidebar.selectbox[0].value == "Last 7 days"
