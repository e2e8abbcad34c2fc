"""Page views from a real browser, end to end: headless Chromium clicks through the
collector's demo site; the test finds the hits on ``hits``, the page views ``streams.hits``
makes of them on topic1, their counts from ``streams.windows`` on topic6-8, and those counts
on the dashboard (Pinot tables on the same topics)."""

from __future__ import annotations

import contextlib
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from clients.settings import PinotSettings
from pinot.client import PinotBroker, PinotController
from pinot.provision import temporary_tables, unique_specs
from stack.private import free_port
from tests.integration.apps import StreamsApp, latest_by_key, read_all, read_to_end
from tests.integration.browser import chromium, dashboard, http_service, screenshot

pytestmark = pytest.mark.integration

TOPICS = (
    "TOPIC_HITS",
    "TOPIC_HITS_BAD",
    "TOPIC_PAGEVIEWS",
    "TOPIC_TUMBLING",
    "TOPIC_HOPPING",
    "TOPIC_SESSION",
    "TOPIC_PAGEVIEWS_BY_COUNTRY",
    "TOPIC_DEAD_LETTER",
    "TOPIC_LATE",
)
MIN = 60_000


def collector(env: dict[str, str], log: Path) -> contextlib.AbstractContextManager[str]:
    port = free_port()
    command = [sys.executable, "-m", "producers.collector", "--port", str(port)]
    return http_service(command, env, log, f"http://127.0.0.1:{port}", "/health")


def visit(page, action: Callable[[], object]) -> None:
    """Do ``action`` (a navigation) and wait for the new page's pixel to be answered, so the
    next click cannot cancel it."""
    with page.expect_response(lambda r: "/tracking/img.png" in r.url, timeout=30_000) as pixel:
        action()
    assert pixel.value.status == 200


def windows_of(views: list[dict], size: int, advance: int) -> Counter:
    counts: Counter = Counter()
    for view in views:
        ts = view["ts"]
        first = ts - size + advance
        for start in range(first - first % advance, ts + 1, advance):
            if start + size > ts:
                counts[view["source"], start] += 1
    return counts


def test_a_browser_clicking_through_the_demo_site_is_counted_on_the_dashboard(
    kafka: str, pinot: PinotSettings, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    topics = {var: make_topic(f"pixel-{var[6:].lower()}") for var in TOPICS}
    for name in ("hits", "windows"):
        (tmp_path / name).mkdir()
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka, **topics}
    kinds = {
        "country": "TOPIC_PAGEVIEWS_BY_COUNTRY",
        "tumbling": "TOPIC_TUMBLING",
        "hopping": "TOPIC_HOPPING",
        "session": "TOPIC_SESSION",
    }
    specs = unique_specs("pixel", {kind: topics[var] for kind, var in kinds.items()})
    broker = PinotBroker(pinot.broker_url)
    with (
        temporary_tables(PinotController(pinot.controller_url), broker, specs.values()),
        collector(env, tmp_path / "collector.log") as site,
        StreamsApp("streams.hits", kafka, topics, tmp_path / "hits") as hits_app,
        StreamsApp("streams.windows", kafka, topics, tmp_path / "windows") as windows_app,
        chromium(tmp_path / "profile", height=1600) as page,
    ):
        hits_app.start()
        windows_app.start()
        # Typed in, then through the site's links; a newsletter link; a partner site's link.
        visit(page, lambda: page.goto(f"{site}/demo/"))
        visit(page, lambda: page.click("nav >> text=Products"))
        visit(page, lambda: page.click("#to-about"))
        visit(page, lambda: page.click("#to-home"))
        visit(page, lambda: page.click("nav >> text=Newsletter"))
        visit(page, lambda: page.click("#from-newsletter"))
        page.click("#to-partner")  # localhost: another site, without the pixel
        page.wait_for_url("http://localhost:*/demo/partner.html")
        visit(page, lambda: page.click("#to-demo"))
        slugs = [
            "/demo/",
            "/demo/products.html",
            "/demo/about.html",
            "/demo/",
            "/demo/newsletter.html",
            "/demo/products.html",
            "/demo/products.html",
        ]

        hit_records = read_all(kafka, topics["TOPIC_HITS"], len(slugs), timeout=60)
        views = [json.loads(r.value()) for r in hit_records]
        views = [h for h in views if h["kind"] == "view"]  # a heartbeat may have come too
        assert [h["slug"] for h in views] == slugs
        sessions = {r.key() for r in hit_records}
        assert len(sessions) == 1  # one browser, one first-party session
        assert all("Chrome" in h["headers"]["user_agent"] for h in views)
        assert read_to_end(kafka, topics["TOPIC_HITS_BAD"]) == []

        records = read_all(kafka, topics["TOPIC_PAGEVIEWS"], len(slugs), timeout=60)
        pageviews = [json.loads(r.value()) for r in records]
        assert [v["source"] for v in pageviews] == [
            "Homepage",
            "Homepage",
            "Homepage",
            "Homepage",
            "Homepage",
            "Inbox",
            "External",
        ]
        assert {r.key() for r in records} == sessions
        timed = [
            {**v, "ts": r.timestamp()[1] - r.timestamp()[1] % 1000}
            for v, r in zip(pageviews, records, strict=True)
        ]

        tumbling = windows_of(timed, 5 * MIN, 5 * MIN)
        hopping = windows_of(timed, 5 * MIN, MIN)
        for var, want in (("TOPIC_TUMBLING", tumbling), ("TOPIC_HOPPING", hopping)):
            deadline = time.monotonic() + 60
            while True:
                got = {
                    (v["source"], v["window_start"]): v["pageview_count"]
                    for v in latest_by_key(read_all(kafka, topics[var], 0, timeout=3)).values()
                }
                if got == dict(want) or time.monotonic() > deadline:
                    break
            assert got == dict(want), var

        env = {f"PINOT_TABLE_{k.upper()}": s.table for k, s in specs.items()}
        with dashboard({**env, "PINOT_BROKER_URL": pinot.broker_url}, tmp_path / "st.log") as url:
            want = [len(tumbling), len(hopping), 3]  # a session per source
            deadline = time.monotonic() + 90
            while True:
                page.goto(url)
                page.get_by_text("Last updated").wait_for(timeout=60_000)
                captions = page.get_by_text(re.compile(r"^\d+ points · query"))
                page.wait_for_timeout(2_000)
                shown = [
                    int(captions.nth(i).inner_text().split()[0]) for i in range(captions.count())
                ]
                if shown[1:] == want or time.monotonic() > deadline:
                    break
            assert shown == [0, *want]  # no country rows: streams.country is not run
            assert page.locator('[data-testid="stException"]').count() == 0
            screenshot(page, "collector-dashboard.png")
