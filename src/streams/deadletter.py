"""Dead letters: input records a processor cannot use, kept with the reason, never dropped.

Every processor parses its raw input bytes with a ``parse(value, key)`` function that returns
the parsed value or a :class:`Rejected`. :func:`split_rejected` sends the rejected ones to the
dead-letter topic exactly as received (key, value and headers untouched, so they can be
replayed after a fix) with headers saying why and where from, logs them (rate-limited, so a
burst of garbage cannot flood the log), and passes the good ones on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from quixstreams import Application
from quixstreams.context import message_context
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.models import Topic

from pipeline import topics as topic_names

logger = logging.getLogger("streams.deadletter")


class Rejected:
    """Why an input record cannot be processed; ``error_type`` is a short machine-readable tag."""

    __slots__ = ("error_type", "reason")

    def __init__(self, reason: str, error_type: str) -> None:
        self.reason = reason
        self.error_type = error_type

    def __repr__(self) -> str:
        return f"Rejected({self.reason!r}, {self.error_type!r})"


class RateLimitedLog:
    """Counts events; logs the first 10 in full, then every 1000th, with the running count."""

    def __init__(self, what: str, log: logging.Logger = logger) -> None:
        self.what = what
        self.count = 0
        self._log = log

    def __call__(self, message: str, *args: Any) -> None:
        self.count += 1
        if self.count <= 10 or self.count % 1000 == 0:
            self._log.warning(f"{self.what} #%d: {message}", self.count, *args)


def dead_letter_topic(app: Application) -> Topic:
    """The dead-letter topic: bytes in, bytes out, so records keep their original encoding."""
    return app.topic(topic_names.DEAD_LETTER, key_serializer="bytes", value_serializer="bytes")


def split_rejected(
    sdf: StreamingDataFrame,
    parse: Callable[[Any, Any], Any],
    dead_letter: Topic,
    processor: str,
) -> StreamingDataFrame:
    """Route records ``parse`` rejects to ``dead_letter``; return the stream of parsed values.

    ``sdf`` must carry raw bytes (the input topic declared with bytes deserializers): that is
    what makes the dead letter byte-identical to the input.
    """
    log = RateLimitedLog(f"{processor}: dead letter")

    def checked(value: Any, key: Any, _ts: int, _headers: Any) -> tuple[Any, Any]:
        parsed = parse(value, key)
        if isinstance(parsed, Rejected):
            ctx = message_context()
            log(
                "%s (%s) at %s[%d]@%d",
                parsed.reason,
                parsed.error_type,
                ctx.topic,
                ctx.partition,
                ctx.offset,
            )
        return parsed, value

    def headers(pair: tuple[Rejected, Any], _key: Any, _ts: int, original: Any) -> list:
        rejected = pair[0]
        ctx = message_context()
        return [
            *(original or []),
            ("error", rejected.reason.encode()),
            ("error.type", rejected.error_type.encode()),
            ("source.topic", ctx.topic.encode()),
            ("source.partition", str(ctx.partition).encode()),
            ("source.offset", str(ctx.offset).encode()),
            ("processor", processor.encode()),
        ]

    pairs = sdf.apply(checked, metadata=True)
    bad = pairs.filter(lambda pair: isinstance(pair[0], Rejected))
    bad.set_headers(headers).apply(lambda pair: pair[1]).to_topic(dead_letter)
    good = pairs.filter(lambda pair: not isinstance(pair[0], Rejected))
    return good.apply(lambda pair: pair[0])
