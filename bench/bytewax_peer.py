"""The peer: topic6's tumbling count by source, written in Bytewax 0.21.1.

Bytewax is the other maintained pure-Python stream processor with Kafka connectors and keyed
state (its engine is Rust, the user code Python), so it answers "would another Python framework
do better?". The dataflow does what ``streams.windows`` does for topic6 with EMIT CHANGES: one
output per page view, keyed ``{source}|{window_start}`` with the same JSON value, windows
epoch-aligned [start, end), a window dropped once the stream's event time passes its end plus
the grace period (ksqlDB's default under EMIT CHANGES, as ``streams.windows``: 24 h - size),
later records logged and written as a ``late`` row, so that every page view yields exactly one
output record and the runner can tell completion by counting them.

Differences that favour the peer, stated so the comparison stays honest: it reads the record
timestamp instead of parsing ``event_timestamp``, keeps state in memory without snapshots
(Bytewax recovery is off), and produces without transactions (at-least-once).

    python -m bytewax.run "bench.bytewax_peer:build('IN', 'OUT', '127.0.0.1:9092')"
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import bytewax.operators as op
import orjson
from bytewax.connectors.kafka import KafkaSinkMessage, KafkaSourceMessage
from bytewax.connectors.kafka import operators as kop
from bytewax.dataflow import Dataflow

from contracts.records import window_key

log = logging.getLogger("bench.bytewax_peer")

WINDOW_MS = 5 * 60 * 1000
GRACE_MS = 24 * 3600 * 1000 - WINDOW_MS


@dataclass
class SourceWindows:
    """Open tumbling windows of one source: window start -> count."""

    counts: dict[int, int] = field(default_factory=dict)
    max_ts: int = 0
    late: int = 0
    #: Lowest open window start: expiry scans ``counts`` only once that window has closed.
    oldest: int | None = None


def count_view(
    state: SourceWindows | None, view: tuple[str, int]
) -> tuple[SourceWindows, tuple[int, bytes]]:
    """Count one page view into its window; returns (window start, the window's new row, or
    a late row for a view whose window has closed)."""
    source, ts = view
    if state is None:
        state = SourceWindows()
    start = ts - ts % WINDOW_MS
    if ts > state.max_ts:
        state.max_ts = ts
        if state.oldest is not None and state.oldest + WINDOW_MS + GRACE_MS <= ts:
            for closed in [s for s in state.counts if s + WINDOW_MS + GRACE_MS <= ts]:
                del state.counts[closed]
            state.oldest = min(state.counts, default=None)
    if start + WINDOW_MS + GRACE_MS <= state.max_ts:
        state.late += 1
        log.warning("late page view for %s at %d (%d late so far)", source, ts, state.late)
        late = {"source": source, "window_start": start, "event_time": ts, "late": True}
        return state, (start, orjson.dumps(late))
    count = state.counts.get(start, 0) + 1
    state.counts[start] = count
    if state.oldest is None or start < state.oldest:
        state.oldest = start
    row = {
        "source": source,
        "window_start": start,
        "window_end": start + WINDOW_MS,
        "pageview_count": count,
    }
    return state, (start, orjson.dumps(row))


def parse(msg: KafkaSourceMessage) -> tuple[str, tuple[str, int]] | None:
    try:
        source = orjson.loads(msg.value)["source"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        log.warning("skipping unparseable page view at offset %s: %s", msg.offset, exc)
        return None
    return source, (source, msg.timestamp[1])


def to_sink(item: tuple[str, tuple[int, bytes]]) -> KafkaSinkMessage:
    source, (start, row) = item
    return KafkaSinkMessage(window_key(source, start).encode(), row)


def build(input_topic: str, output_topic: str, bootstrap: str) -> Dataflow:
    flow = Dataflow("bench_bytewax_tumbling")
    consumed = kop.input("in", flow, brokers=[bootstrap], topics=[input_topic], batch_size=1000)
    op.inspect("errors", consumed.errs, lambda _step, err: log.error("consume error: %s", err))
    keyed = op.filter_map("parse", consumed.oks, parse)
    rows = op.stateful_map("count", keyed, count_view)
    out = op.map("to_sink", rows, to_sink)
    kop.output("out", out, brokers=[bootstrap], topic=output_topic)
    return flow
