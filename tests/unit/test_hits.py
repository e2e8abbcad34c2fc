"""streams.hits in the test driver: the collector's view hits become topic1 page views that
streams.windows counts; ticks are skipped; a record that is not a hit is a dead letter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from contracts import topics
from streams import hits, windows
from streams.hits import SourceRules, parse_hit, session_user
from streams.operators.deadletter import Rejected
from streams.testing import TestDriver

T0 = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC
WINDOW = 1_699_999_800_000  # 22:10: the 5-minute tumbling window of every view below
PAGE = "http://127.0.0.1:8090/demo/products.html"


def hit(session: str, ts: int, kind: str = "view", url: str = PAGE, **params: str) -> dict:
    return {
        "kind": kind,
        "timestamp": ts,
        "collector": "c1",
        "session_id": session,
        "host": "127.0.0.1:8090",
        "slug": "/demo/products.html",
        "url": url,
        "params": {"url": url, **params},
        "headers": {},
        "client_ip": "127.0.0.1",
    }


@pytest.mark.parametrize(
    ("url", "params", "source"),
    [
        (PAGE, {}, "Homepage"),  # typed in: no referrer
        (PAGE, {"ref": "http://127.0.0.1:8090/demo/"}, "Homepage"),  # within the site
        (PAGE + "?utm_source=Newsletter", {"ref": "http://x.example/"}, "Inbox"),
        (PAGE, {"utm_medium": "email"}, "Inbox"),
        (PAGE, {"ref": "https://mail.google.com/mail/u/0/"}, "Inbox"),
        (PAGE, {"ref": "https://eu.mail.yahoo.com/"}, "Inbox"),  # a subdomain
        (PAGE, {"ref": "http://localhost:8090/demo/partner.html"}, "External"),
    ],
)
def test_sources_from_utm_parameters_then_the_referrer(url: str, params: dict, source: str) -> None:
    assert SourceRules().source(hit("s", T0, url=url, **params)) == source


def test_source_rules_come_from_a_file_and_name_only_known_sources(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text(
        json.dumps({"referrer_hosts": {"partner.example": "Inbox"}, "other": "Homepage"})
    )
    rules = SourceRules.from_file(path)
    assert rules.source(hit("s", T0, ref="https://www.partner.example/")) == "Inbox"
    assert rules.source(hit("s", T0, ref="https://else.example/")) == "Homepage"
    assert rules.utm_source["newsletter"] == "Inbox"  # defaults kept
    path.write_text(json.dumps({"direct": "Search"}))
    with pytest.raises(ValueError, match=r"unknown source\(s\) \['Search'\]"):
        SourceRules.from_file(path)


@pytest.mark.parametrize(
    ("key", "value", "error_type"),
    [
        (None, b"{}", "NullKey"),
        (b"s", None, "NullValue"),
        (b"s", b"{", "MalformedJson"),
        (b"s", b"[]", "WrongShape"),
        (b"s", json.dumps({**hit("s", T0), "kind": "click"}).encode(), "BadField"),
        (b"t", json.dumps(hit("s", T0)).encode(), "KeyMismatch"),
        (b"s", json.dumps({**hit("s", T0), "timestamp": "now"}).encode(), "BadField"),
        (b"s", json.dumps(hit("s", T0, uid="x")).encode(), "BadField"),
    ],
)
def test_what_is_not_a_hit_is_rejected(key: Any, value: Any, error_type: str) -> None:
    rejected = parse_hit(value, key)
    assert isinstance(rejected, Rejected) and rejected.error_type == error_type


def pipeline(app: Any) -> None:
    hits.setup(app, SourceRules())
    windows.setup(app, windows.WindowsConfig())


def test_view_hits_become_page_views_that_windows_count() -> None:
    with TestDriver(pipeline) as driver:
        inbox = hit("s1", T0 + 1_500, uid="42", ref="https://mail.google.com/")
        for key, value in [
            ("s1", inbox),
            ("s1", hit("s1", T0 + 2_000, kind="tick")),  # a heartbeat: no page view
            ("s2", hit("s2", T0 + 61_000, ref="http://localhost:8090/demo/partner.html")),
            ("s2", hit("s2", T0 + 62_000, ref="http://127.0.0.1:8090/demo/")),
        ]:
            driver.pipe(topics.HITS, key, value, timestamp=value["timestamp"])
        driver.pipe(topics.HITS, "s3", b"not json", timestamp=T0)
        views = driver.read(topics.PAGEVIEWS)
        assert [(r.key, r.value, r.timestamp) for r in views] == [
            (
                b"s1",
                {
                    "session_id": "s1",
                    "user_id": 42,
                    "source": "Inbox",
                    "event_timestamp": "2023-11-14 22:13:21",
                },
                T0 + 1_500,
            ),
            (
                b"s2",
                {
                    "session_id": "s2",
                    "user_id": session_user("s2"),
                    "source": "External",
                    "event_timestamp": "2023-11-14 22:14:21",
                },
                T0 + 61_000,
            ),
            (
                b"s2",
                {
                    "session_id": "s2",
                    "user_id": session_user("s2"),
                    "source": "Homepage",
                    "event_timestamp": "2023-11-14 22:14:22",
                },
                T0 + 62_000,
            ),
        ]
        tumbling = {
            (r.value["source"], r.value["window_start"]): r.value["pageview_count"]
            for r in driver.read(topics.TUMBLING)
        }
        assert tumbling == {("Inbox", WINDOW): 1, ("External", WINDOW): 1, ("Homepage", WINDOW): 1}
        [letter] = driver.read(topics.DEAD_LETTER)
        assert dict(letter.headers)["processor"] == b"streams.hits"
        assert dict(letter.headers)["error.type"] == b"MalformedJson"


def test_session_users_are_stable_positive_numbers() -> None:
    assert session_user("abc") == session_user("abc") > 0
    assert session_user("abc") != session_user("abd")
