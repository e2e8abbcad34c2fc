"""The collector: every request answered with the image, each one a hit or a bad row with the
reason; publishing never blocks, and what cannot be buffered is counted."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from producers.collector import GIF, PNG, CollectorConfig, create_app
from producers.hit_publisher import HitPublisher
from producers.hit_requests import (
    MAX_QUERY_BYTES,
    PixelRequest,
    classify,
    client_address,
    parse_networks,
)

NOW = 1_764_760_000_000
PAGE = "https://shop.example/products.html?utm_source=newsletter"


class RecordingPublisher:
    """Stands in for Kafka at the publisher boundary: what the handlers publish, in order."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, dict[str, Any], int]] = []
        self.dropped: Counter[str] = Counter()
        self.delivered: Counter[str] = Counter()

    def start(self) -> None: ...

    def close(self) -> int:
        return 0

    def publish(self, topic: str, key: bytes | None, value: bytes, timestamp_ms: int) -> bool:
        self.records.append((topic, key, orjson.loads(value), timestamp_ms))
        return True

    def queued(self) -> int:
        return 0

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "queued": 0}


@pytest.fixture
def collector() -> tuple[TestClient, RecordingPublisher]:
    publisher = RecordingPublisher()
    app = create_app(CollectorConfig(name="c1"), publisher)  # type: ignore[arg-type]
    with TestClient(app, base_url="http://shop.example") as client:
        yield client, publisher


def request(**overrides: Any) -> PixelRequest:
    fields: dict[str, Any] = {
        "method": "GET",
        "path": "/tracking/img.png",
        "endpoint": "img",
        "query": b"",
        "headers": {"user-agent": "UA", "referer": PAGE, "cookie": "pvs_sid=s1"},
        "peer": "127.0.0.1",
        "body_bytes": 0,
        "cookie_session": "s1",
    }
    return PixelRequest(**{**fields, **overrides})


def test_a_page_view_is_a_hit_keyed_by_the_cookies_session(collector) -> None:
    client, publisher = collector
    client.cookies.set("pvs_sid", "sess-1")
    reply = client.get(
        "/tracking/img.png",
        params={"url": PAGE, "ref": "https://mail.google.com/", "uid": "42"},
        headers={"User-Agent": "Firefox", "Accept-Language": "fr", "Authorization": "x"},
    )
    assert reply.status_code == 200
    assert reply.content == PNG and reply.headers["content-type"] == "image/png"
    assert reply.headers["cache-control"] == "no-store"
    assert "pvs_sid=sess-1" in reply.headers["set-cookie"]
    [(topic, key, value, stamp)] = publisher.records
    assert (topic, key) == ("hits", b"sess-1")
    assert value == {
        "kind": "view",
        "timestamp": stamp,
        "collector": "c1",
        "session_id": "sess-1",
        "host": "shop.example",
        "slug": "/products.html",
        "url": PAGE,
        "params": {"url": PAGE, "ref": "https://mail.google.com/", "uid": "42"},
        "headers": {"user_agent": "Firefox", "accept_language": "fr"},
        "client_ip": "testclient",
    }
    assert abs(stamp - time.time() * 1000) < 5_000


def test_a_heartbeat_is_a_post_and_a_sid_parameter_is_a_session(collector) -> None:
    client, publisher = collector
    reply = client.post("/tracking/tick.png?sid=abc", headers={"Referer": "https://a.example/x"})
    assert reply.status_code == 200 and reply.content == PNG
    [(topic, key, value, _)] = publisher.records
    assert (topic, key, value["kind"], value["slug"], value["host"]) == (
        "hits",
        b"abc",
        "tick",
        "/x",
        "a.example",
    )
    assert client.get("/tracking/img.gif?sid=abc").content == GIF


@pytest.mark.parametrize(
    ("method", "url", "error_type", "reason"),
    [
        ("GET", "/tracking/img.png?url=x", "NoSession", "neither a sid parameter nor a pvs_sid"),
        ("POST", "/tracking/img.png?sid=a", "WrongMethod", "POST /tracking/img.png: expected GET"),
        ("GET", "/tracking/tick.png?sid=a", "WrongMethod", "GET /tracking/tick.png: expected POST"),
        ("GET", "/tracking/img.png?sid=a&sid=b", "MalformedParameters", "sid given twice"),
        ("GET", "/tracking/img.png?sid=a&x=%FF", "MalformedParameters", "not percent-encoded"),
        ("GET", "/tracking/img.png?sid=a&&b=1", "MalformedParameters", "does not parse"),
        ("GET", "/tracking/img.png?sid=a&%01=1", "MalformedParameters", "bad parameter name"),
        ("GET", "/tracking/img.png?sid=a&uid=-3", "MalformedParameters", "uid '-3' is not"),
        ("GET", "/tracking/img.png?sid=a&url=javascript:1", "MalformedParameters", "not an http"),
        ("GET", "/tracking/img.png?sid=a%20b", "MalformedParameters", "sid 'a b' is not"),
        ("GET", "/tracking/img.png?sid=a&x=" + "y" * MAX_QUERY_BYTES, "Oversized", "query string"),
    ],
)
def test_a_request_that_cannot_be_a_hit_is_a_bad_row_and_still_gets_the_image(
    collector, method: str, url: str, error_type: str, reason: str
) -> None:
    client, publisher = collector
    reply = client.request(method, url, headers={"Cookie": "other=1", "Authorization": "secret"})
    assert reply.status_code == 200 and reply.content == PNG
    assert "pvs_sid=" in reply.headers["set-cookie"]  # the next hit has a session
    [(topic, key, value, stamp)] = publisher.records
    assert (topic, key, value["error_type"]) == ("hits_bad", None, error_type)
    assert reason in value["reason"]
    raw = value["request"]
    assert (raw["method"], raw["path"], value["collector"], value["timestamp"]) == (
        method,
        url.split("?")[0],
        "c1",
        stamp,
    )
    assert raw["query"] == url.split("?", 1)[1]
    # Cookies and credentials never reach a bad row.
    assert "cookie" not in raw["headers"] and "authorization" not in raw["headers"]


def test_an_oversized_body_is_a_bad_row(collector) -> None:
    client, publisher = collector
    client.post("/tracking/tick.png?sid=a", content=b"x" * 5000)
    [(_, _, value, _)] = publisher.records
    assert value["error_type"] == "Oversized" and "body of" in value["reason"]


def test_a_huge_query_is_kept_cut_with_its_length() -> None:
    outcome = classify(request(query=b"sid=a&x=" + b"y" * 20_000), "c1", NOW, "1.2.3.4")
    raw = outcome.value["request"]
    assert outcome.bad and len(raw["query"]) == 8192 and raw["query_truncated"] == 20_008


def test_unknown_paths_are_not_hits(collector) -> None:
    client, publisher = collector
    assert client.get("/tracking/other.png?sid=a").status_code == 404
    assert publisher.records == []


def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    proxies = parse_networks(["10.0.0.0/8", "192.168.1.1"])
    chain = "203.0.113.9, 198.51.100.2, 10.1.1.1"
    assert client_address("192.168.1.1", chain, proxies) == "198.51.100.2"
    assert client_address("198.51.100.7", chain, proxies) == "198.51.100.7"  # not a proxy
    assert client_address("10.0.0.5", "10.0.0.6, 10.0.0.7", proxies) == "10.0.0.6"
    assert client_address("10.0.0.5", "garbage, 10.0.0.7", proxies) == "10.0.0.7"
    assert client_address("10.0.0.5", None, proxies) == "10.0.0.5"
    with pytest.raises(ValueError):
        parse_networks(["10.0.0.0/33"])
    outcome = classify(request(query=b"sid=a"), "c1", NOW, "198.51.100.2")
    assert outcome.value["client_ip"] == "198.51.100.2"


def test_demo_pages_start_a_session_and_embed_the_pixel(collector) -> None:
    client, _ = collector
    page = client.get("/demo/")
    assert page.status_code == 200 and "/demo/pixel.js" in page.text
    assert "pvs_sid=" in page.headers["set-cookie"]
    assert client.get("/demo/pixel.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/demo/../collector.py").status_code == 404


def test_health_and_metrics_report_counts(collector) -> None:
    client, _ = collector
    client.get("/tracking/img.png?sid=a")
    client.cookies.clear()  # the first reply set one
    client.get("/tracking/img.png")
    health = client.get("/health").json()
    assert (health["hits"], health["bad_rows"]) == ({"view": 1}, {"NoSession": 1})
    metrics = client.get("/metrics").text
    assert 'collector_hits_total{kind="view"} 1' in metrics
    assert 'collector_bad_rows_total{error_type="NoSession"} 1' in metrics


def test_an_unreachable_broker_neither_blocks_nor_loses_silently() -> None:
    """A real producer with nowhere to deliver: a full buffer drops at once, and what waited
    past the delivery timeout is dropped too; both are counted and make health degraded."""
    publisher = HitPublisher(
        {"bootstrap.servers": "127.0.0.1:9"}, buffer_messages=5, delivery_timeout_s=1.0
    )
    publisher.start()
    try:
        started = time.monotonic()
        accepted = [publisher.publish("hits", b"s", b"{}", NOW) for _ in range(8)]
        assert time.monotonic() - started < 0.1  # nothing waited for the broker
        assert accepted == [True] * 5 + [False] * 3
        health = publisher.health()
        assert health["status"] == "degraded" and health["dropped"]["buffer_full"] == 3
        deadline = time.monotonic() + 10
        while publisher.dropped["delivery_failed"] < 5:
            assert time.monotonic() < deadline, publisher.health()
            time.sleep(0.1)
        assert publisher.queued() == 0 and publisher.health()["last_delivery_error"]
    finally:
        publisher.close(timeout_s=1)
