"""``python -m producers.collector``: the tracking-pixel collector (ASGI, Starlette on uvicorn).

A page embeds a 1x1 image; the browser's request for it is the event. ``GET
/tracking/img.png`` (or ``.gif``) is a page view, ``POST /tracking/tick.png`` a heartbeat. Each
request is answered at once with the image (``Cache-Control: no-store``) and published, without
waiting for Kafka, as a hit on ``hits`` keyed by session, or, if it cannot be a hit, as a bad
row on ``hits_bad`` with the reason (:mod:`contracts.hits`). The session is a first-party cookie
(``pvs_sid``) the collector sets, or a ``sid`` parameter. ``/health`` and ``/metrics`` report
what was published, what waits in the buffer and what had to be dropped; ``/demo/`` serves a
small site whose pages embed the pixel.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import logging
import socket
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from clients.logs import setup_logging
from clients.settings import KafkaSettings, env, env_int, librdkafka_properties
from contracts import hits
from contracts import topics as topic_names
from producers.hit_publisher import HitPublisher
from producers.hit_requests import (
    MAX_BODY_BYTES,
    IPNetwork,
    PixelRequest,
    classify,
    client_address,
    parse_networks,
)

logger = logging.getLogger("producers.collector")

SITE = Path(__file__).resolve().parent / "collector_site"
#: The smallest valid 1x1 transparent images.
GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
PIXELS = ("img.png", "img.gif", "tick.png")
_NO_STORE = {"Cache-Control": "no-store"}
#: Every method reaches the pixel's handler, so a wrong one is a bad row, not a 405.
_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
_CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}


@dataclass(frozen=True)
class CollectorConfig:
    name: str
    hits_topic: str = topic_names.HITS
    bad_topic: str = topic_names.HITS_BAD
    trusted_proxies: tuple[IPNetwork, ...] = ()
    cookie_max_age_s: int = 1800  #: a session ends after 30 min without a hit
    cookie_secure: bool = False
    demo_site: bool = True


class Collector:
    """The request handlers around one :class:`HitPublisher`."""

    def __init__(self, config: CollectorConfig, publisher: HitPublisher) -> None:
        self.config = config
        self.publisher = publisher
        self.hits: Counter[str] = Counter()
        self.bad: Counter[str] = Counter()
        self._site = {p.name: p for p in SITE.iterdir()} if config.demo_site else {}

    async def pixel(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in PIXELS:
            return PlainTextResponse("not found", status_code=404)
        endpoint, _dot, extension = name.partition(".")
        body = await self._body_size(request)
        cookie = request.cookies.get(hits.SESSION_COOKIE)
        raw = PixelRequest(
            method=request.method,
            path=request.url.path,
            endpoint=endpoint,
            query=request.scope.get("query_string", b""),
            headers={k.decode("latin-1"): v.decode("latin-1") for k, v in request.scope["headers"]},
            peer=request.client.host if request.client else None,
            body_bytes=body,
            cookie_session=cookie,
        )
        client = client_address(
            raw.peer, raw.headers.get("x-forwarded-for"), self.config.trusted_proxies
        )
        now = int(time.time() * 1000)
        outcome = classify(raw, self.config.name, now, client)
        if outcome.bad:
            self.bad[outcome.value["error_type"]] += 1
            topic, key = self.config.bad_topic, None
        else:
            self.hits[outcome.value["kind"]] += 1
            topic, key = self.config.hits_topic, outcome.session.encode()  # type: ignore[union-attr]
        self.publisher.publish(topic, key, orjson.dumps(outcome.value), now)
        image, media = (GIF, "image/gif") if extension == "gif" else (PNG, "image/png")
        response = Response(image, media_type=media, headers=_NO_STORE)
        # Keep the session alive (or start one, so the browser's next hit has it).
        self._set_session(response, outcome.session or cookie)
        return response

    async def _body_size(self, request: Request) -> int:
        """The body's length, reading no more than needed to know it is too long."""
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                break
        return size

    def _set_session(self, response: Response, session: str | None) -> None:
        if session is None or not hits.SESSION_ID.fullmatch(session):
            session = uuid.uuid4().hex
        response.set_cookie(
            hits.SESSION_COOKIE,
            session,
            max_age=self.config.cookie_max_age_s,
            path="/",
            httponly=True,
            samesite="lax",
            secure=self.config.cookie_secure,
        )

    async def demo(self, request: Request) -> Response:
        name = request.path_params.get("name") or "index.html"
        path = self._site.get(name)
        if path is None:
            return PlainTextResponse("not found", status_code=404)
        media = _CONTENT_TYPES.get(path.suffix, "application/octet-stream")
        response = FileResponse(path, media_type=media, headers=_NO_STORE)
        if path.suffix == ".html":
            # A first-party session before the page's first pixel, so that one is a hit too.
            self._set_session(response, request.cookies.get(hits.SESSION_COOKIE))
        return response

    async def health(self, _request: Request) -> Response:
        return JSONResponse(
            {
                "collector": self.config.name,
                **self.publisher.health(),
                "hits": dict(self.hits),
                "bad_rows": dict(self.bad),
            }
        )

    async def metrics(self, _request: Request) -> Response:
        """Prometheus' text format."""
        p = self.publisher
        lines = ["# TYPE collector_hits_total counter"]
        lines += [f'collector_hits_total{{kind="{k}"}} {self.hits[k]}' for k in hits.KINDS]
        lines.append("# TYPE collector_bad_rows_total counter")
        lines += [
            f'collector_bad_rows_total{{error_type="{t}"}} {self.bad[t]}' for t in hits.ERROR_TYPES
        ]
        lines.append("# TYPE collector_dropped_total counter")
        lines += [
            f'collector_dropped_total{{cause="{c}"}} {p.dropped[c]}'
            for c in ("buffer_full", "delivery_failed")
        ]
        lines.append("# TYPE collector_delivered_total counter")
        lines.append(f"collector_delivered_total {sum(p.delivered.values())}")
        lines.append("# TYPE collector_queued gauge")
        lines.append(f"collector_queued {p.queued()}")
        return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")


def create_app(config: CollectorConfig, publisher: HitPublisher) -> Starlette:
    collector = Collector(config, publisher)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        publisher.start()
        logger.info(
            "collector %s: hits to %s, bad rows to %s",
            config.name,
            config.hits_topic,
            config.bad_topic,
        )
        try:
            yield
        finally:
            publisher.close()

    routes = [
        Route("/tracking/{name:str}", collector.pixel, methods=_METHODS),
        Route("/health", collector.health),
        Route("/metrics", collector.metrics),
    ]
    if config.demo_site:
        routes += [Route("/demo/", collector.demo), Route("/demo/{name:str}", collector.demo)]
    return Starlette(routes=routes, lifespan=lifespan)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m producers.collector",
        description="The tracking-pixel collector: answers GET /tracking/img.png (page views) "
        "and POST /tracking/tick.png (heartbeats) with a 1x1 image and publishes each request "
        "to the hits topic, or to the bad-rows topic with the reason. /health, /metrics, and a "
        "demo site at /demo/.",
    )
    parser.add_argument(
        "--host", default=env("COLLECTOR_HOST", "127.0.0.1"), help="env COLLECTOR_HOST"
    )
    parser.add_argument(
        "--port", type=int, default=env_int("COLLECTOR_PORT", 8090), help="env COLLECTOR_PORT"
    )
    parser.add_argument(
        "--name",
        default=env("COLLECTOR_NAME", f"collector-{socket.gethostname()}"),
        help="this collector's name in every record (env COLLECTOR_NAME; default "
        "collector-<hostname>)",
    )
    parser.add_argument(
        "--trusted-proxy",
        action="append",
        default=[p for p in env("COLLECTOR_TRUSTED_PROXIES", "").split(",") if p.strip()],
        metavar="ADDRESS[/BITS]",
        help="a proxy whose X-Forwarded-For is believed (repeatable; env "
        "COLLECTOR_TRUSTED_PROXIES, comma-separated; default none: the peer is the client)",
    )
    parser.add_argument(
        "--buffer-messages",
        type=int,
        default=env_int("COLLECTOR_BUFFER_MESSAGES", 100_000),
        help="records buffered while Kafka is slow or down; beyond, hits are dropped and "
        "counted (env COLLECTOR_BUFFER_MESSAGES; default 100000)",
    )
    parser.add_argument(
        "--delivery-timeout",
        type=float,
        default=float(env("COLLECTOR_DELIVERY_TIMEOUT_S", "300")),
        help="seconds a buffered record waits for Kafka before it is dropped and counted "
        "(env COLLECTOR_DELIVERY_TIMEOUT_S; default 300)",
    )
    parser.add_argument(
        "--cookie-secure",
        action="store_true",
        default=env("COLLECTOR_COOKIE_SECURE", "") == "1",
        help="mark the session cookie Secure, behind HTTPS (env COLLECTOR_COOKIE_SECURE=1)",
    )
    parser.add_argument(
        "--no-demo-site", action="store_true", help="do not serve the demo site at /demo/"
    )
    parser.add_argument("--hits-topic", default=topic_names.HITS, help="env TOPIC_HITS")
    parser.add_argument("--bad-topic", default=topic_names.HITS_BAD, help="env TOPIC_HITS_BAD")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    import uvicorn

    setup_logging()
    args = parse_args(argv)
    try:
        proxies = parse_networks(args.trusted_proxy)
    except ValueError as exc:
        print(f"error: --trusted-proxy: {exc}", file=sys.stderr)
        return 2
    config = CollectorConfig(
        name=args.name,
        hits_topic=args.hits_topic,
        bad_topic=args.bad_topic,
        trusted_proxies=proxies,
        cookie_secure=args.cookie_secure,
        demo_site=not args.no_demo_site,
    )
    publisher = HitPublisher(
        {
            "bootstrap.servers": KafkaSettings.from_env().bootstrap_servers,
            **librdkafka_properties("COLLECTOR_PRODUCER_CONFIG"),
        },
        buffer_messages=args.buffer_messages,
        delivery_timeout_s=args.delivery_timeout,
    )
    logger.info("listening on http://%s:%d (demo site: /demo/)", args.host, args.port)
    # No access log: a line per pixel would cost more than answering it.
    uvicorn.run(
        create_app(config, publisher),
        host=args.host,
        port=args.port,
        access_log=False,
        log_config=None,
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
