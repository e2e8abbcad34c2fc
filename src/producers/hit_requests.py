"""One pixel request -> a hit or a bad row (:mod:`contracts.hits`): pure, no I/O.

Everything a request carries is untrusted: sizes are bounded before anything is parsed, the
query string must parse strictly as UTF-8 ``name=value`` pairs, and the session id, user id and
URLs are checked for their shape, so that what reaches Kafka is either a well-formed hit or a
bad row that says why it is not one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from contracts import hits

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_QUERY_BYTES = 4096
MAX_PARAMS = 50
MAX_BODY_BYTES = 1024
MAX_NAME_CHARS = 64
#: Kept of a header in a hit, and of the query and each header in a bad row.
MAX_HEADER_CHARS = 1024
MAX_RAW_QUERY_CHARS = 8192
#: Headers a hit keeps, by the name it gives them.
HIT_HEADERS = {
    "user-agent": "user_agent",
    "referer": "referer",
    "accept-language": "accept_language",
}
#: Headers a bad row never copies.
SECRET_HEADERS = frozenset({"cookie", "authorization", "proxy-authorization"})
#: (method, endpoint) -> the hit kind.
ENDPOINTS = {("GET", "img"): hits.VIEW, ("HEAD", "img"): hits.VIEW, ("POST", "tick"): hits.TICK}


@dataclass(frozen=True)
class PixelRequest:
    """What the collector read of one request (header names lower-case, first value)."""

    method: str
    path: str
    endpoint: str  #: "img" or "tick"
    query: bytes
    headers: Mapping[str, str]
    peer: str | None
    body_bytes: int
    cookie_session: str | None


@dataclass(frozen=True)
class Outcome:
    """Where the request goes: a hit (``bad`` False) keyed by ``session``, or a bad row."""

    bad: bool
    session: str | None
    value: dict[str, Any]


class Invalid(Exception):
    def __init__(self, reason: str, error_type: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error_type = error_type


def parse_networks(texts: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Trusted proxies as addresses or CIDR networks; a typo is an error at start-up."""
    return tuple(ipaddress.ip_network(t.strip(), strict=False) for t in texts if t.strip())


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def client_address(
    peer: str | None, forwarded_for: str | None, trusted: tuple[IPNetwork, ...]
) -> str | None:
    """The client: the peer, unless the peer is a trusted proxy; then the nearest address in
    ``X-Forwarded-For`` (read from the right) that is not a trusted proxy. A client can write
    anything into the header, so only what trusted proxies appended is believed."""
    address = _ip(peer) if peer else None
    if address is None or not forwarded_for or not any(address in net for net in trusted):
        return peer
    for hop in reversed(forwarded_for.split(",")):
        hop_address = _ip(hop)
        if hop_address is None:
            break  # garbage in the chain: the last trusted hop is as far as we can see
        address = hop_address
        if not any(address in net for net in trusted):
            break
    return str(address)


def _params(query: bytes) -> dict[str, str]:
    if len(query) > MAX_QUERY_BYTES:
        raise Invalid(
            f"query string of {len(query)} bytes, more than {MAX_QUERY_BYTES}", "Oversized"
        )
    try:
        pairs = parse_qsl(
            query.decode("ascii"),
            keep_blank_values=True,
            strict_parsing=bool(query),
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_PARAMS,
        )
    except UnicodeDecodeError as exc:
        raise Invalid(
            f"query string is not percent-encoded UTF-8: {exc.reason}", "MalformedParameters"
        ) from None
    except ValueError as exc:
        raise Invalid(f"query string does not parse: {exc}", "MalformedParameters") from None
    params: dict[str, str] = {}
    for name, value in pairs:
        if not name or len(name) > MAX_NAME_CHARS or not name.isprintable():
            raise Invalid(f"bad parameter name {name[:MAX_NAME_CHARS]!r}", "MalformedParameters")
        if name in params:
            raise Invalid(f"parameter {name} given twice", "MalformedParameters")
        if not value.isprintable():
            raise Invalid(f"parameter {name} holds control characters", "MalformedParameters")
        params[name] = value
    return params


def _web_url(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Invalid(
            f"parameter {name} is not an http(s) URL: {value[:200]!r}", "MalformedParameters"
        )
    return value


def _session(params: Mapping[str, str], cookie: str | None) -> str:
    sid = params.get("sid")
    if sid is not None:
        if not hits.SESSION_ID.fullmatch(sid):
            raise Invalid(
                f"sid {sid[:200]!r} is not 1-128 letters, digits, - or _", "MalformedParameters"
            )
        return sid
    if cookie is not None and hits.SESSION_ID.fullmatch(cookie):
        return cookie
    raise Invalid(f"neither a sid parameter nor a {hits.SESSION_COOKIE} cookie", "NoSession")


def _check_uid(params: Mapping[str, str]) -> None:
    uid = params.get("uid")
    if uid is not None and not (uid.isascii() and uid.isdigit() and 0 < int(uid) < 2**31):
        raise Invalid(f"uid {uid[:200]!r} is not a positive 32-bit integer", "MalformedParameters")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit]


def classify(request: PixelRequest, collector: str, now_ms: int, client: str | None) -> Outcome:
    """The request's hit, or its bad row with the reason."""
    try:
        kind = ENDPOINTS.get((request.method, request.endpoint))
        if kind is None:
            want = "POST" if request.endpoint == "tick" else "GET"
            raise Invalid(f"{request.method} {request.path}: expected {want}", "WrongMethod")
        if request.body_bytes > MAX_BODY_BYTES:
            raise Invalid(
                f"body of {request.body_bytes} bytes, more than {MAX_BODY_BYTES}", "Oversized"
            )
        params = _params(request.query)
        session = _session(params, request.cookie_session)
        _check_uid(params)
        _web_url(params, "ref")
        page = _web_url(params, "url") or request.headers.get("referer") or None
        parts = urlsplit(page) if page else None
    except Invalid as exc:
        return Outcome(True, None, bad_row(request, exc, collector, now_ms, client))
    value = {
        "kind": kind,
        "timestamp": now_ms,
        "collector": collector,
        "session_id": session,
        "host": parts.netloc if parts else request.headers.get("host", ""),
        "slug": (parts.path or "/") if parts else None,
        "url": page,
        "params": params,
        "headers": {
            name: _cut(request.headers[header], MAX_HEADER_CHARS)
            for header, name in HIT_HEADERS.items()
            if header in request.headers
        },
        "client_ip": client,
    }
    return Outcome(False, session, value)


def bad_row(
    request: PixelRequest, error: Invalid, collector: str, now_ms: int, client: str | None
) -> dict[str, Any]:
    query = request.query.decode("latin-1")  # any bytes, kept as they came
    raw: dict[str, Any] = {
        "method": request.method,
        "path": request.path,
        "query": _cut(query, MAX_RAW_QUERY_CHARS),
        "headers": {
            name: _cut(value, MAX_HEADER_CHARS)
            for name, value in request.headers.items()
            if name not in SECRET_HEADERS
        },
        "client_ip": client,
        "body_bytes": request.body_bytes,
    }
    if len(query) > MAX_RAW_QUERY_CHARS:
        raw["query_truncated"] = len(query)
    return {
        "reason": error.reason,
        "error_type": error.error_type,
        "collector": collector,
        "timestamp": now_ms,
        "request": raw,
    }
