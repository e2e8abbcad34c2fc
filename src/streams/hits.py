"""``python -m streams.hits``: the collector's hits become page views (hits -> topic1_PageView).

A ``view`` hit (:mod:`contracts.hits`) becomes a page view keyed by its session, so everything
downstream works unchanged: ``session_id``; ``user_id`` from the ``uid`` parameter, else a
stable number derived from the session (a visitor the site does not know); ``source`` from
:class:`SourceRules`; ``event_timestamp`` the collector's clock. Heartbeats (``tick``) are not
page views and are skipped. A record that is not a hit goes to the dead-letter topic with the
reason.
"""

from __future__ import annotations

import argparse
import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from quixstreams import Application
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.models import Topic

from clients.settings import env
from contracts import hits
from contracts import topics as topic_names
from contracts.records import SOURCES, event_timestamp_text
from streams.app import add_app_arguments, create_app, run
from streams.operators.deadletter import (
    Rejected,
    dead_letter_topic,
    keyed_json_object,
    split_rejected,
)

PROCESSOR = "streams.hits"


@dataclass(frozen=True)
class SourceRules:
    """How a page view's ``source`` is read off its hit, first match wins: the page address's
    (or the pixel's) ``utm_source`` / ``utm_medium``; then the visitor's referrer (the pixel's
    ``ref`` parameter): none, or the same site, is ``direct``; a host in ``referrer_hosts`` (or
    a subdomain of one) its source; any other ``other``."""

    utm_source: Mapping[str, str] = field(
        default_factory=lambda: {"newsletter": "Inbox", "email": "Inbox"}
    )
    utm_medium: Mapping[str, str] = field(default_factory=lambda: {"email": "Inbox"})
    referrer_hosts: Mapping[str, str] = field(
        default_factory=lambda: {
            "mail.google.com": "Inbox",
            "outlook.live.com": "Inbox",
            "outlook.office.com": "Inbox",
            "mail.yahoo.com": "Inbox",
        }
    )
    direct: str = "Homepage"
    other: str = "External"

    def __post_init__(self) -> None:
        named = [
            *self.utm_source.values(),
            *self.utm_medium.values(),
            *self.referrer_hosts.values(),
            self.direct,
            self.other,
        ]
        wrong = sorted({s for s in named if s not in SOURCES})
        if wrong:
            raise ValueError(f"unknown source(s) {wrong}: a source is one of {', '.join(SOURCES)}")

    @classmethod
    def from_file(cls, path: Path) -> SourceRules:
        """``{"utm_source": {...}, "utm_medium": {...}, "referrer_hosts": {...}, "direct":
        ..., "other": ...}``; what the file leaves out keeps its default."""
        data = json.loads(path.read_text(encoding="utf-8"))
        known = {"utm_source", "utm_medium", "referrer_hosts", "direct", "other"}
        if not isinstance(data, dict) or not set(data) <= known:
            raise ValueError(f"{path}: an object with keys among {sorted(known)}")
        return cls(**data)

    def source(self, hit: Mapping[str, Any]) -> str:
        params = hit["params"]
        page = hit.get("url") or ""
        utm = {**dict(parse_qsl(urlsplit(page).query)), **params}
        for name, table in (("utm_source", self.utm_source), ("utm_medium", self.utm_medium)):
            value = utm.get(name, "").lower()
            if value in table:
                return table[value]
        referrer = urlsplit(params.get("ref") or "").hostname
        if not referrer or referrer == urlsplit(page).hostname:
            return self.direct
        for host, source in self.referrer_hosts.items():
            if referrer == host or referrer.endswith("." + host):
                return source
        return self.other


def parse_hit(value: bytes | None, key: bytes | None) -> dict[str, Any] | Rejected:
    """The hit, or why the record is not one the collector writes."""
    hit = keyed_json_object(value, key, "the session id")
    if isinstance(hit, Rejected):
        return hit
    if hit.get("kind") not in hits.KINDS:
        return Rejected(f"kind must be one of {hits.KINDS}, got {hit.get('kind')!r}", "BadField")
    session = hit.get("session_id")
    if not isinstance(session, str) or not hits.SESSION_ID.fullmatch(session):
        return Rejected(f"session_id {str(session)[:100]!r} is not a session id", "BadField")
    if key != session.encode():
        return Rejected(f"key {key[:100]!r} is not the hit's session_id", "KeyMismatch")
    stamp = hit.get("timestamp")
    if not isinstance(stamp, int) or isinstance(stamp, bool) or stamp <= 0:
        return Rejected(f"timestamp must be epoch ms, got {stamp!r}", "BadField")
    params = hit.get("params")
    if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
        return Rejected("params must be an object of strings", "BadField")
    uid = params.get("uid")
    if uid is not None and not (uid.isascii() and uid.isdigit() and 0 < int(uid) < 2**31):
        return Rejected(f"uid {uid[:100]!r} is not a positive 32-bit integer", "BadField")
    if not isinstance(hit.get("url") or "", str):
        return Rejected("url must be a string or null", "BadField")
    return hit


def session_user(session: str) -> int:
    """A visitor without ``uid``: a positive number fixed by the session (CRC-32)."""
    return zlib.crc32(session.encode()) & 0x7FFFFFFF or 1


def to_pageview(hit: Mapping[str, Any], rules: SourceRules) -> dict[str, Any]:
    uid = hit["params"].get("uid")
    return {
        "session_id": hit["session_id"],
        "user_id": int(uid) if uid is not None else session_user(hit["session_id"]),
        "source": rules.source(hit),
        "event_timestamp": event_timestamp_text(hit["timestamp"]),
    }


@dataclass(frozen=True)
class HitsTopics:
    hits: Topic
    pageviews: Topic
    dead_letter: Topic


def build(sdf: StreamingDataFrame, rules: SourceRules, topics: HitsTopics) -> StreamingDataFrame:
    checked = split_rejected(sdf, parse_hit, topics.dead_letter, PROCESSOR)
    views = checked.filter(lambda hit: hit["kind"] == hits.VIEW)
    views = views.apply(lambda hit: to_pageview(hit, rules))
    return views.to_topic(topics.pageviews, key=lambda view: view["session_id"])


def declare_topics(app: Application) -> HitsTopics:
    return HitsTopics(
        hits=app.topic(topic_names.HITS, key_deserializer="bytes", value_deserializer="bytes"),
        pageviews=app.topic(topic_names.PAGEVIEWS, key_serializer="str", value_serializer="json"),
        dead_letter=dead_letter_topic(app, PROCESSOR),
    )


def setup(app: Application, rules: SourceRules) -> None:
    """Declare the topics on ``app`` and build the pipeline: what main() and the tests run."""
    topics = declare_topics(app)
    build(app.dataframe(topics.hits), rules, topics)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m streams.hits",
        description="Turn the collector's page-view hits into page views (hits -> "
        "topic1_PageView; heartbeats are skipped). Topic names come from the TOPIC_* "
        "environment variables.",
    )
    parser.add_argument(
        "--sources",
        type=Path,
        default=env("HITS_SOURCES_FILE", "") or None,
        help="a JSON file of source rules (utm_source, utm_medium, referrer_hosts, direct, "
        "other; env HITS_SOURCES_FILE; default: newsletter/e-mail links and webmail referrers "
        "are Inbox, none or the same site Homepage, the rest External)",
    )
    add_app_arguments(parser, "hits")
    args = parser.parse_args(argv)
    try:
        rules = SourceRules.from_file(args.sources) if args.sources else SourceRules()
    except (OSError, ValueError, TypeError) as exc:
        raise SystemExit(f"error: --sources: {exc}") from None
    app = create_app(args)
    setup(app, rules)
    run(app, args)


if __name__ == "__main__":
    main()
