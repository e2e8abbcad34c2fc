"""``python -m streams.windows``: page views counted by source in three kinds of window.

topic1 (page views) -> topic6 tumbling, topic7 hopping, topic8 session counts per ``source``,
with ksqlDB's semantics (see :mod:`streams.windowing`). Page views are validated (bad ones go
to the dead-letter topic with the reason), re-keyed by source once (plain-string keys, so the
repartition topic co-partitions with anything keyed by source), then ONE stateful step per
record updates all three window kinds in one state entry per window on RocksDB with changelog:
fault tolerant and exactly-once, without three built-in Quix windows per record.

Records too late for a window go to the late topic with the reason; nothing is dropped silently.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from quixstreams import Application
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.models import Topic
from quixstreams.state.base.state import State
from quixstreams.state.base.transaction import PartitionTransaction

from pipeline import topics as topic_names
from pipeline.settings import env, env_int
from streams import clock, quix
from streams.app import add_app_arguments, create_app, run
from streams.deadletter import RateLimitedLog, dead_letter_topic, split_rejected
from streams.pageviews import parse_pageview
from streams.windowing import (
    DEFAULT_CACHE_MS,
    EMIT_MODES,
    WindowEngine,
    WindowRecord,
    WindowSpec,
    count_aggregate,
)

logger = logging.getLogger("streams.windows")

PROCESSOR = "streams.windows"
MINUTE_MS = 60_000
COUNT_COLUMN = "pageview_count"


@dataclass(frozen=True)
class WindowsConfig:
    """Window sizes in ms; ``grace_ms=None`` means ksqlDB's default (see streams.windowing)."""

    tumbling_ms: int = 5 * MINUTE_MS
    hopping_ms: int = 5 * MINUTE_MS
    hop_ms: int = MINUTE_MS
    session_gap_ms: int = 5 * MINUTE_MS
    grace_ms: int | None = None
    emit: str = "changes"
    cache_ms: int = DEFAULT_CACHE_MS

    def specs(self) -> list[WindowSpec]:
        """Tumbling, hopping, session: the index is the route to topic6, topic7, topic8."""
        return [
            WindowSpec.tumbling(self.tumbling_ms, self.grace_ms),
            WindowSpec.hopping(self.hopping_ms, self.hop_ms, self.grace_ms),
            WindowSpec.session(self.session_gap_ms, self.grace_ms),
        ]

    def engine(self) -> WindowEngine:
        aggregate = count_aggregate(COUNT_COLUMN)
        return WindowEngine(self.specs(), aggregate, self.emit, cache_ms=self.cache_ms)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """CLI flags; each defaults to its environment variable, then to the built-in default."""
    grace = env("WINDOWS_GRACE_MS", "")
    for flag, var, default, what in [
        ("--tumbling-ms", "WINDOWS_TUMBLING_MS", WindowsConfig.tumbling_ms, "tumbling window size"),
        ("--hopping-ms", "WINDOWS_HOPPING_MS", WindowsConfig.hopping_ms, "hopping window size"),
        ("--hop-ms", "WINDOWS_HOP_MS", WindowsConfig.hop_ms, "hopping window advance"),
        ("--session-gap-ms", "WINDOWS_SESSION_GAP_MS", WindowsConfig.session_gap_ms, "session gap"),
    ]:
        parser.add_argument(
            flag,
            type=int,
            default=env_int(var, default),
            help=f"{what}, ms (env {var}; default {default // 60_000} min)",
        )
    parser.add_argument(
        "--grace-ms",
        type=int,
        default=int(grace) if grace else None,
        help="grace period for late records, ms (env WINDOWS_GRACE_MS; default as ksqlDB: "
        "24 h - window size under --emit changes or cached, 0 under --emit final)",
    )
    parser.add_argument(
        "--emit",
        choices=EMIT_MODES,
        default=env("WINDOWS_EMIT", "changes"),
        help="changes: every update (EMIT CHANGES); final: once per window when it closes "
        "(EMIT FINAL); cached: the latest update per window every --cache-ms, as ksqlDB's "
        "record cache (env WINDOWS_EMIT; default changes)",
    )
    parser.add_argument(
        "--cache-ms",
        type=int,
        default=env_int("WINDOWS_CACHE_MS", DEFAULT_CACHE_MS),
        help="flush period of --emit cached, ms (env WINDOWS_CACHE_MS; default 2000, "
        "ksqlDB's commit interval)",
    )


def config_from_args(args: argparse.Namespace) -> WindowsConfig:
    config = WindowsConfig(
        args.tumbling_ms,
        args.hopping_ms,
        args.hop_ms,
        args.session_gap_ms,
        args.grace_ms,
        args.emit,
        args.cache_ms,
    )
    config.specs()  # validates sizes now, with a clear message, not at the first record
    return config


@dataclass(frozen=True)
class WindowTopics:
    """Output topics by route: specs 0..2 then late; bad input goes to ``dead_letter``."""

    tumbling: Topic
    hopping: Topic
    session: Topic
    late: Topic
    dead_letter: Topic

    def by_route(self) -> list[Topic]:
        return [self.tumbling, self.hopping, self.session, self.late]


#: Where a Quix transaction carries this module's cache of its state (see :func:`cached_state`).
_CACHE_ATTRIBUTE = "_pageview_streams_windows_cache"


def cached_state(transaction: PartitionTransaction) -> CachedState:
    """The partition-scoped engine state of a Quix ``transaction``, cached for its lifetime.

    Stream time is per input partition (as ksqlDB's), so the engine needs partition scope (its
    own keys carry the group): the transaction is re-prefixed. A Quix state get/set costs
    ~25 us (key and value (de)serialisation, bookkeeping) and a page view touches 8 entries,
    which made state most of a record's cost. So values live as objects in a cache carried by
    the transaction itself, and the entries changed are written to the transaction once, just
    before Quix prepares it for commit (changelog, then RocksDB): what is committed is exactly
    what per-record writes would have committed. The cache lives and dies with its transaction
    (each checkpoint, rebalance or abort starts a new one), so it can neither outlive its state
    nor be dropped while the transaction is live.
    """
    cached: CachedState | None = getattr(transaction, _CACHE_ATTRIBUTE, None)
    if cached is None:
        cached = CachedState(transaction.as_state(prefix="windows"))
        quix.before_prepare(transaction, cached.flush)
        setattr(transaction, _CACHE_ATTRIBUTE, cached)
    return cached


class CachedState:
    """The engine's state for one transaction: reads cached, writes deferred to ``flush``."""

    __slots__ = ("_cache", "_dirty", "_state")

    _MISSING = object()

    def __init__(self, state: State) -> None:
        self._state = state
        self._cache: dict[str, Any] = {}
        self._dirty: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        value = self._cache.get(key, self._MISSING)
        if value is self._MISSING:
            value = self._cache[key] = self._state.get(key)
        return default if value is None else value

    def set(self, key: str, value: Any) -> None:
        self._cache[key] = value
        self._dirty.add(key)

    def delete(self, key: str) -> None:
        self._cache[key] = None
        self._dirty.add(key)

    def flush(self) -> None:
        """Write every changed entry (its latest value) to the transaction."""
        for key in self._dirty:
            value = self._cache[key]
            if value is None:
                self._state.delete(key)
            else:
                self._state.set(key, value)
        self._dirty.clear()


def window_step(
    engine: WindowEngine,
    on_late: Callable[[str, int, str], None],
    group_column: str = "source",
    zero: dict[str, Any] | None = None,
) -> Callable[..., Iterable[WindowRecord]]:
    """The stateful step: one call per record -> its output records in order.

    Results of spec ``i`` get route ``i``; records too late for a window get route
    ``len(engine.specs)``, keyed by their session_id, with the reason. ``zero`` is the
    aggregate of a retracted (merged-away) session.
    """
    kinds = [spec.kind for spec in engine.specs]
    late_route = len(engine.specs)
    zero = {COUNT_COLUMN: 0} if zero is None else zero

    def step(view: dict, key: str, timestamp: int, _headers: Any, state: Any) -> list[WindowRecord]:
        # One WindowRecord per output (route, key, timestamp as attributes; JSON sees the
        # dict): a single to_topic with a topic callback then replaces a filter branch per
        # output topic, and Quix's per-stage cost per output record dominates under EMIT
        # CHANGES (8 outputs per page view).
        out, late = engine.records(
            cached_state(quix.key_transaction(state)), key, view, timestamp, group_column, zero
        )
        for index, reason in late:
            on_late(key, timestamp, reason)
            record = WindowRecord(pageview=view, window=kinds[index], reason=reason)
            record.route, record.key, record.timestamp = late_route, view["session_id"], timestamp
            out.append(record)
        return out

    return step


class CacheFlusher:
    """Flushes ``--emit cached`` results on the clock, as ksqlDB's record cache does at commits.

    The window step flushes a partition's pending results when a record arrives after the
    cache period; a partition that goes quiet would keep its last updates pending until its
    next record. Registered as a Quix periodic task (the run loop calls it between records,
    on the processing thread), :meth:`tick` checks every assigned partition every
    ``check_ms`` and writes what is due through the producer, in the open checkpoint: the
    results and the state change commit together, exactly once. Quix's lookup buffer settles
    its deadlines the same way.
    """

    def __init__(
        self,
        stateful: StreamingDataFrame,
        engine: WindowEngine,
        routes: list[Topic],
        group_column: str,
        zero: dict[str, Any],
        check_ms: int = 100,
    ) -> None:
        self._sdf = stateful
        self._engine = engine
        self._routes = routes
        self._group_column = group_column
        self._zero = zero
        # Not tied to cache_ms: a tiny cache period would make the check per-loop work, and
        # records flush such caches themselves.
        self._check_s = check_ms / 1000
        self._next = 0.0

    def tick(self) -> None:
        now = clock.now()
        if now < self._next:
            return
        self._next = now + self._check_s
        for partition, transaction in quix.partition_transactions(self._sdf):
            state = cached_state(transaction)
            records = self._engine.flush_due(state, self._group_column, self._zero)
            if not records:
                continue
            origin = quix.origin(self._sdf.topics[0].name, partition)
            for record in records:
                topic = self._routes[record.route]
                quix.produce(self._sdf, topic, record, record.key, record.timestamp, origin)
            # Written now, not at prepare: a checkpoint with no input offsets commits only
            # if a store transaction has changed, and otherwise aborts, dropping these records.
            state.flush()


def build(sdf: StreamingDataFrame, config: WindowsConfig, topics: WindowTopics) -> None:
    """Wire validation, repartitioning and the window step onto ``sdf`` (raw key/value bytes)."""
    views = split_rejected(sdf, parse_pageview, topics.dead_letter, PROCESSOR)
    views = views.set_timestamp(lambda view, _key, _ts, _headers: view["event_timestamp"])
    # Plain-string keys (Quix would JSON-quote them) so the key is the bare source name.
    by_source = views.group_by("source", key_serializer="str", key_deserializer="str")
    window_outputs(by_source, config.engine(), topics.by_route(), late_log())


def window_outputs(
    grouped: StreamingDataFrame,
    engine: WindowEngine,
    routes: list[Topic],
    on_late: Callable[[str, int, str], None],
    group_column: str = "source",
    zero: dict[str, Any] | None = None,
) -> None:
    """The window step on ``grouped`` (keyed by group), its results written to ``routes``
    (one topic per spec, then the late topic) and, under ``--emit cached``, the clock flush."""
    zero = {COUNT_COLUMN: 0} if zero is None else zero
    outputs = grouped.apply(
        window_step(engine, on_late, group_column, zero), stateful=True, metadata=True, expand=True
    )
    if engine.cached:
        flusher = CacheFlusher(grouped, engine, routes, group_column, zero)
        quix.register_periodic_task(grouped, flusher.tick)
    outputs = outputs.set_timestamp(lambda out, _key, _ts, _headers: out.timestamp)
    # Window records are not any one input's: do not pass its headers on.
    outputs = outputs.set_headers(lambda _value, _key, _ts, _headers: [])
    outputs.to_topic(lambda out, _key, _ts, _headers: routes[out.route], key=lambda out: out.key)


def late_log(
    group_column: str = "source", log: logging.Logger = logger
) -> Callable[[str, int, str], None]:
    """Rate-limited warnings for records too late for a window."""
    late = RateLimitedLog("late page view", log)

    def on_late(group: str, timestamp: int, reason: str) -> None:
        late("%s %s, event time %d: %s", group_column, group, timestamp, reason)

    return on_late


def declare_topics(app: Application) -> tuple[Topic, WindowTopics]:
    """The input topic (raw bytes, for dead-lettering as received) and the outputs."""

    def output(name: str) -> Topic:
        return app.topic(name, key_serializer="str", value_serializer="json")

    pageviews = app.topic(
        topic_names.PAGEVIEWS, key_deserializer="bytes", value_deserializer="bytes"
    )
    outputs = WindowTopics(
        tumbling=output(topic_names.TUMBLING),
        hopping=output(topic_names.HOPPING),
        session=output(topic_names.SESSION),
        late=output(topic_names.LATE),
        dead_letter=dead_letter_topic(app, PROCESSOR),
    )
    return pageviews, outputs


def setup(app: Application, config: WindowsConfig) -> None:
    """Declare the topics on ``app`` and build the pipeline: what main() and the tests run."""
    pageviews, outputs = declare_topics(app)
    build(app.dataframe(pageviews), config, outputs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m streams.windows",
        description="Count page views by source in tumbling, hopping and session windows "
        "(topic1 -> topic6, topic7, topic8), with ksqlDB's semantics. Topic names come from "
        "the TOPIC_* environment variables (src/pipeline/topics.py).",
    )
    add_arguments(parser)
    add_app_arguments(parser, "windows")
    args = parser.parse_args(argv)
    config = config_from_args(args)
    app = create_app(args)
    setup(app, config)
    logger.info("windows: %s", config)
    run(app, args)


if __name__ == "__main__":
    main()
