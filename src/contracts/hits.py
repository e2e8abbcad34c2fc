"""Hits: what the tracking-pixel collector (``producers.collector``) publishes and
``streams.hits`` reads.

A **hit** (topic ``hits``, key: the session id, record timestamp: the collector's clock) is one
request for the pixel, as JSON::

    {"kind": "view" | "tick", "timestamp": 1764760000000, "collector": "collector-host",
     "session_id": "...", "host": "shop.example", "slug": "/products.html",
     "url": "https://shop.example/products.html?utm_source=newsletter",
     "params": {"url": "...", "ref": "...", "uid": "42", ...},
     "headers": {"user_agent": "...", "referer": "...", "accept_language": "..."},
     "client_ip": "203.0.113.7"}

``view`` is a page view (``GET /tracking/img.png``), ``tick`` a heartbeat while the page stays
open (``POST /tracking/tick.png``). ``url`` is the page's address (the ``url`` parameter, else
the request's ``Referer``), ``slug`` its path, and ``params`` every query parameter as text.

A **bad row** (topic ``hits_bad``, no key) is a request that cannot be a hit, kept whole so
that nothing is lost, as Snowplow keeps its bad rows::

    {"reason": "neither a sid parameter nor a pvs_sid cookie", "error_type": "NoSession",
     "collector": "collector-host", "timestamp": 1764760000000,
     "request": {"method": "GET", "path": "/tracking/img.png", "query": "url=...",
                 "headers": {"user-agent": "...", ...}, "client_ip": "203.0.113.7",
                 "body_bytes": 0}}

The request's headers are kept except the cookies and credentials (``cookie``,
``authorization``, ``proxy-authorization``); the query and each header are cut to a bound,
with ``query_truncated`` giving the original length.
"""

from __future__ import annotations

import re

VIEW = "view"
TICK = "tick"
KINDS = (VIEW, TICK)

#: The first-party cookie that carries the session id.
SESSION_COOKIE = "pvs_sid"
#: A session id, from the cookie or a ``sid`` parameter: it becomes a Kafka and state key.
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")

#: Why a request is a bad row: the ``error_type`` of its record.
ERROR_TYPES = ("Oversized", "NoSession", "MalformedParameters", "WrongMethod")
