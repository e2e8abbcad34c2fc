"""Waiting out a service that is briefly unreachable, then giving up with a clear error.

A lost connection is not a record's fault: the caller neither skips nor dead-letters anything,
it retries the same call with a doubling pause and, once a time limit has passed, raises
:class:`Unreachable`, which the app reports and exits on (a supervisor restarts it from its
last commit).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import httpx
from confluent_kafka.schema_registry.error import SchemaRegistryError

logger = logging.getLogger("clients.retry")

T = TypeVar("T")


class Unreachable(RuntimeError):
    """A service stayed unreachable for longer than the caller may wait."""


def registry_unreachable(exc: Exception) -> bool:
    """No answer from the Schema Registry (refused, reset, timed out), or an answer its client
    itself would retry (408, 429, 5xx)."""
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, SchemaRegistryError) and (
        exc.http_status_code in (408, 429) or exc.http_status_code >= 500
    )


def retry_unreachable(
    service: str,
    call: Callable[[], T],
    transient: Callable[[Exception], bool],
    limit_s: float,
    limit_setting: str,
    first_pause_s: float = 0.5,
    max_pause_s: float = 5.0,
) -> T:
    """``call()``, retried with a doubling pause while it fails with a ``transient`` error.

    Raises :class:`Unreachable` once ``limit_s`` seconds have passed since the first failure;
    ``limit_setting`` names the flag or variable that sets the limit, for the message.
    """
    failed_at: float | None = None
    attempt = 0
    while True:
        try:
            result = call()
        except Exception as exc:
            if not transient(exc):
                raise
            now = time.monotonic()
            failed_at = now if failed_at is None else failed_at
            left = limit_s - (now - failed_at)
            if left <= 0:
                raise Unreachable(
                    f"{service} unreachable for {now - failed_at:.0f} s (the limit, "
                    f"{limit_setting}, is {limit_s:g} s); "
                    f"last error: {type(exc).__name__}: {exc}"
                ) from exc
            attempt += 1
            pause = min(first_pause_s * 2 ** (attempt - 1), max_pause_s, left)
            logger.warning(
                "%s unreachable (%s: %s); retry %d in %.1f s, giving up in %.0f s",
                service,
                type(exc).__name__,
                exc,
                attempt,
                pause,
                left,
            )
            time.sleep(pause)
            continue
        if failed_at is not None:
            logger.info(
                "%s reachable again after %d retr%s (%.1f s)",
                service,
                attempt,
                "y" if attempt == 1 else "ies",
                time.monotonic() - failed_at,
            )
        return result
