"""Dead letters: records a processor cannot use, kept with the reason, never dropped or fatal.

Two ways a record becomes a dead letter, one format for both (ksqlDB's processing log and Kafka
Streams' exception handlers are the models):

- **Rejected by validation.** Every processor parses its raw input bytes with a
  ``parse(value, key)`` function that returns the parsed value or a :class:`Rejected`.
  :func:`split_rejected` sends the rejected ones to the dead-letter topic as received (key,
  value and headers, so they can be replayed after a fix) and passes the good ones on.
- **Failed later.** Any stage of any processor (a join, a window step, encoding an output, the
  producer refusing a record that is too large) can still fail on a record that passed
  validation. :class:`ProcessingErrors`, the application's ``on_processing_error`` handler,
  turns an error caused by one record (:func:`is_record_error`) into that record's dead letter
  and lets processing go on. Errors that are not the record's fault (a broker, registry or
  disk that is unreachable) are not suppressed: the app stops and restarts from its last
  commit, so no good record is dead-lettered for them.

A dead letter always fits in a Kafka record, whatever it copies (:func:`letter`): the reason is
cut to :data:`MAX_REASON_CHARS`, and the original key, value and headers are kept in full only
when they fit in :data:`MAX_LETTER_BYTES`, else cut with a header saying how long they were.
Headers of a dead letter, after the original ones:

``error``, ``error.type`` (a short tag), ``source.topic``, ``source.partition``,
``source.offset``, ``processor``, ``stage`` (``validate``, or the function that failed), and
``key.truncated`` / ``value.truncated`` (original length) or ``headers.dropped`` (count) when
cut. Rejections are logged rate-limited, so a burst of garbage cannot flood the log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson
from confluent_kafka import KafkaError, KafkaException
from quixstreams import Application
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.models import Topic
from quixstreams.models.messagecontext import MessageContext
from quixstreams.models.rows import Row
from quixstreams.models.serializers import SerializationError

from clients.logs import RateLimitedLog
from clients.settings import env_int
from contracts import topics as topic_names
from streams import quix

logger = logging.getLogger("streams.operators.deadletter")

#: librdkafka refuses records over ``message.max.bytes`` (1,000,000 by default); a dead letter
#: stays below it with room for the record's own overhead.
MAX_LETTER_BYTES = env_int("STREAMS_MAX_DEAD_LETTER_BYTES", 900_000)
#: Copied keys and headers beyond these sizes are cut (keys) or left out (headers).
MAX_KEY_BYTES = 16_384
MAX_HEADERS_BYTES = 65_536
MAX_REASON_CHARS = 1_000

Headers = list[tuple[str, bytes]]


class Rejected:
    """Why an input record cannot be processed; ``error_type`` is a short machine-readable tag."""

    __slots__ = ("error_type", "reason")

    def __init__(self, reason: str, error_type: str) -> None:
        self.reason = reason
        self.error_type = error_type

    def __repr__(self) -> str:
        return f"Rejected({self.reason!r}, {self.error_type!r})"


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [cut: {len(text)} characters]"


def _header_bytes(value: Any) -> bytes:
    if value is None or isinstance(value, bytes):
        return value or b""
    return str(value).encode()


def letter(
    key: bytes | None,
    value: bytes | None,
    headers: Headers | None,
    *,
    reason: str,
    error_type: str,
    origin: MessageContext,
    processor: str,
    stage: str,
) -> tuple[bytes | None, bytes | None, Headers]:
    """The dead letter of one record: (key, value, headers), bounded to fit in one record."""
    out: Headers = []
    copied = [(name, _header_bytes(v)) for name, v in headers or []]
    copied_size = sum(len(name) + len(v) for name, v in copied)
    if copied_size <= MAX_HEADERS_BYTES:
        out.extend(copied)
    else:
        out.append(("headers.dropped", str(len(copied)).encode()))
    out += [
        ("error", _cut(reason, MAX_REASON_CHARS).encode(errors="replace")),
        ("error.type", error_type.encode()),
        ("source.topic", origin.topic.encode()),
        ("source.partition", str(origin.partition).encode()),
        ("source.offset", str(origin.offset).encode()),
        ("processor", processor.encode()),
        ("stage", stage.encode()),
    ]
    if key is not None and len(key) > MAX_KEY_BYTES:
        out.append(("key.truncated", str(len(key)).encode()))
        key = key[:MAX_KEY_BYTES]
    room = MAX_LETTER_BYTES - len(key or b"") - sum(len(n) + len(v) for n, v in out) - 64
    if value is not None and len(value) > room:
        out.append(("value.truncated", str(len(value)).encode()))
        value = value[: max(room - 64, 0)]
    return key, value, out


def dead_letter_topic(app: Application, processor: str) -> Topic:
    """The dead-letter topic: bytes in, bytes out, so records keep their original encoding.

    Declaring it also makes :class:`ProcessingErrors` the app's processing-error handler (once
    per app; ``processor`` is added to the names its dead letters carry), so every processor
    dead-letters a failed record as it does a rejected one.
    """
    topic = app.topic(topic_names.DEAD_LETTER, key_serializer="bytes", value_serializer="bytes")
    handler = quix.processing_error_handler(app)
    if not isinstance(handler, ProcessingErrors):
        handler = ProcessingErrors(app, topic)
        quix.set_processing_error_handler(app, handler)
    handler.add_processor(processor)
    return topic


def json_object(value: bytes) -> dict[str, Any] | Rejected:
    """A record value that must be a JSON object, or why it is not one."""
    try:
        parsed = orjson.loads(value)
    except ValueError as exc:
        return Rejected(f"value is not JSON: {exc}", "MalformedJson")
    if not isinstance(parsed, dict):
        return Rejected(f"value is not a JSON object: {type(parsed).__name__}", "WrongShape")
    return parsed


def keyed_json_object(
    value: bytes | None, key: bytes | None, key_is: str
) -> dict[str, Any] | Rejected:
    """A record that must have a key (``key_is`` says what it should be) and a JSON object
    value: the object, or why the record is not one."""
    if key is None:
        return Rejected(f"null key (expected {key_is})", "NullKey")
    if value is None:
        return Rejected("null value", "NullValue")
    return json_object(value)


class RecordRejected(Exception):
    """Raised by :func:`split_rejected` for a record its parser rejects: the app's
    :class:`ProcessingErrors` handler dead-letters it, as any other record error."""

    def __init__(self, rejected: Rejected, processor: str) -> None:
        super().__init__(rejected.reason)
        self.rejected = rejected
        self.processor = processor


def split_rejected(
    sdf: StreamingDataFrame,
    parse: Callable[[Any, Any], Any],
    dead_letter: Topic,
    processor: str,
) -> StreamingDataFrame:
    """The stream of values ``parse`` accepts; a rejected record becomes a dead letter.

    ``sdf`` must carry raw bytes (the input topic declared with bytes deserializers): that is
    what makes the dead letter byte-identical to the input. A rejection leaves the record's
    processing by raising :class:`RecordRejected`, so it costs nothing per good record (no
    filter branches) and takes the same path as a record that fails in a later stage.
    ``dead_letter`` must come from :func:`dead_letter_topic` on the same app.
    """

    def checked(value: Any, key: Any) -> Any:
        parsed = parse(value, key)
        if isinstance(parsed, Rejected):
            raise RecordRejected(parsed, processor)
        return parsed

    return sdf.apply(lambda value, key, _ts, _headers: checked(value, key), metadata=True)


# Quix's own errors and the client's are records' fault only for these codes; a full queue, a
# lost connection or a fenced producer is not.
_RECORD_KAFKA_CODES = {KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_RECORD}
_RECORD_ERRORS = (
    ArithmeticError,
    AssertionError,
    AttributeError,
    LookupError,
    RecursionError,
    SerializationError,
    TypeError,
    ValueError,
)


def is_record_error(exc: BaseException) -> bool:
    """Whether ``exc`` is caused by the record being processed (so dead-letter it), rather
    than by the world (a service unreachable, a disk full: stop and retry from the commit)."""
    if isinstance(exc, KafkaException):
        error = exc.args[0] if exc.args else None
        return isinstance(error, KafkaError) and error.code() in _RECORD_KAFKA_CODES
    if isinstance(exc, OSError):
        return False
    return isinstance(exc, (RecordRejected, *_RECORD_ERRORS))


def _stage(exc: BaseException) -> str:
    """Where the record failed: the innermost function of the traceback, as module.function."""
    tb = exc.__traceback__
    if tb is None:
        return type(exc).__name__
    while tb.tb_next is not None:
        tb = tb.tb_next
    frame = tb.tb_frame
    return f"{frame.f_globals.get('__name__', '?')}.{frame.f_code.co_qualname}"


def _as_bytes(data: Any) -> bytes | None:
    """A row's key or value as bytes: raw inputs as they are, decoded ones (a repartition
    topic's JSON) encoded again."""
    if data is None or isinstance(data, bytes):
        return data
    if isinstance(data, str):
        # surrogateescape: a key decoded leniently (see streams.country) gets its bytes back.
        return data.encode(errors="surrogateescape")
    try:
        return orjson.dumps(data, default=repr, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, ValueError):
        return repr(data).encode(errors="replace")


class ProcessingErrors:
    """The app's ``on_processing_error``: a record-caused error -> that record's dead letter.

    Quix calls it with the exception and the input row when any step of the composed pipeline
    raises (including the producer refusing an output). Returning True makes Quix go on with
    the next record and commit this one's offset; the dead letter is written through the app's
    own producer, so under exactly-once it commits in the same transaction as that offset. A
    record that fails skips the rest of its processing: in an app that runs several
    processors on one topic (``python -m streams``) it is dead-lettered once, by the first.
    """

    def __init__(self, app: Application, topic: Topic) -> None:
        self._app = app
        self._topic = topic
        self._processors: list[str] = []
        self._logs: dict[str, RateLimitedLog] = {}

    def add_processor(self, processor: str) -> None:
        if processor not in self._processors:
            self._processors.append(processor)

    def __call__(self, exc: Exception, row: Row | None, log: logging.Logger) -> bool:
        if row is None or not is_record_error(exc):
            return False
        if isinstance(exc, RecordRejected):
            processor, stage = exc.processor, "validate"
            reason, error_type = exc.rejected.reason, exc.rejected.error_type
        else:
            processor, stage = "+".join(self._processors) or "streams", _stage(exc)
            reason, error_type = f"{type(exc).__name__}: {exc} (in {stage})", type(exc).__name__
        ctx = row.context
        key, value, headers = letter(
            _as_bytes(row.key),
            _as_bytes(row.value),
            row.headers,
            reason=reason,
            error_type=error_type,
            origin=ctx,
            processor=processor,
            stage=stage,
        )
        if processor not in self._logs:
            self._logs[processor] = RateLimitedLog(f"{processor}: dead letter", logger)
        self._logs[processor](
            "%s (%s) at %s[%d]@%d",
            _cut(reason, MAX_REASON_CHARS),
            error_type,
            ctx.topic,
            ctx.partition,
            ctx.offset,
        )
        quix.produce(self._app, self._topic, value, key, row.timestamp, ctx, headers)
        return True
