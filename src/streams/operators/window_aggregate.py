"""Windowed aggregation on a Quix ``StreamingDataFrame``: the window engine as one stateful step.

:func:`window_aggregate` puts :class:`~streams.operators.window_engine.WindowEngine` on a
dataframe keyed by group: ONE stateful step per record updates every window kind in one state
entry per window on RocksDB with changelog (fault tolerant and exactly-once, without a built-in
Quix window per kind per record), writes each result to the topic of its window spec and each
record too late for a window to the late topic with the reason; under ``--emit cached`` a
periodic task flushes results on the clock. :func:`add_emit_arguments` gives every processor
that aggregates in windows the same ``--grace-ms``, ``--emit`` and ``--cache-ms`` flags.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Iterable
from typing import Any

from quixstreams.dataframe import StreamingDataFrame
from quixstreams.models import Topic
from quixstreams.state.base.state import State
from quixstreams.state.base.transaction import PartitionTransaction

from clients.logs import RateLimitedLog
from clients.settings import env, env_int
from streams import clock, quix
from streams.operators.window_engine import (
    DEFAULT_CACHE_MS,
    EMIT_MODES,
    WindowEngine,
    WindowRecord,
)

logger = logging.getLogger("streams.operators.window_aggregate")


def add_emit_arguments(
    parser: argparse.ArgumentParser, var_prefix: str, flag_prefix: str = ""
) -> None:
    """``--grace-ms``, ``--emit`` and ``--cache-ms``, defaulting to ``{var_prefix}_GRACE_MS``,
    ``_EMIT`` and ``_CACHE_MS``; ``flag_prefix`` ("country-") keeps two processors' flags apart
    in ``python -m streams``. :func:`emit_options` reads them back."""
    dest = flag_prefix.replace("-", "_")
    grace = env(f"{var_prefix}_GRACE_MS", "")
    parser.add_argument(
        f"--{flag_prefix}grace-ms",
        dest=f"{dest}grace_ms",
        type=int,
        default=int(grace) if grace else None,
        help=f"grace period for late records, ms (env {var_prefix}_GRACE_MS; default as "
        "ksqlDB: 24 h - window size under --emit changes or cached, 0 under --emit final)",
    )
    parser.add_argument(
        f"--{flag_prefix}emit",
        dest=f"{dest}emit",
        choices=EMIT_MODES,
        default=env(f"{var_prefix}_EMIT", "changes"),
        help="changes: every update (EMIT CHANGES); final: once per window when it closes "
        "(EMIT FINAL); cached: the latest update per window every --cache-ms, as ksqlDB's "
        f"record cache (env {var_prefix}_EMIT; default changes)",
    )
    parser.add_argument(
        f"--{flag_prefix}cache-ms",
        dest=f"{dest}cache_ms",
        type=int,
        default=env_int(f"{var_prefix}_CACHE_MS", DEFAULT_CACHE_MS),
        help=f"flush period of --emit cached, ms (env {var_prefix}_CACHE_MS; default "
        f"{DEFAULT_CACHE_MS}, ksqlDB's commit interval)",
    )


def emit_options(args: argparse.Namespace, flag_prefix: str = "") -> dict[str, Any]:
    """``grace_ms``, ``emit`` and ``cache_ms`` as :func:`add_emit_arguments` parsed them."""
    dest = flag_prefix.replace("-", "_")
    return {name: getattr(args, f"{dest}{name}") for name in ("grace_ms", "emit", "cache_ms")}


#: Where a Quix transaction carries this operator's cache of its state (see :func:`cached_state`).
_CACHE_ATTRIBUTE = "_pageview_streams_window_cache"


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
    late_key: Callable[[Any], Any],
) -> Callable[..., Iterable[WindowRecord]]:
    """The stateful step: one call per record -> its output records in order.

    Results of spec ``i`` get route ``i``; records too late for a window get route
    ``len(engine.specs)``, keyed by ``late_key(value)``, with the reason.
    """
    kinds = [spec.kind for spec in engine.specs]
    late_route = len(engine.specs)

    def step(view: dict, key: str, timestamp: int, _headers: Any, state: Any) -> list[WindowRecord]:
        # One WindowRecord per output (route, key, timestamp as attributes; JSON sees the
        # dict), which the caller produces to the topic of its route.
        out, late = engine.process(cached_state(quix.key_transaction(state)), key, view, timestamp)
        for index, reason in late:
            on_late(key, timestamp, reason)
            record = WindowRecord(pageview=view, window=kinds[index], reason=reason)
            record.route, record.key, record.timestamp = late_route, late_key(view), timestamp
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
        check_ms: int = 100,
    ) -> None:
        self._sdf = stateful
        self._engine = engine
        self._routes = routes
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
            records = self._engine.flush_due(state)
            if not records:
                continue
            origin = quix.origin(self._sdf.topics[0].name, partition)
            for record in records:
                topic = self._routes[record.route]
                quix.produce(self._sdf, topic, record, record.key, record.timestamp, origin)
            # Written now, not at prepare: a checkpoint with no input offsets commits only
            # if a store transaction has changed, and otherwise aborts, dropping these records.
            state.flush()


def window_aggregate(
    grouped: StreamingDataFrame,
    engine: WindowEngine,
    routes: list[Topic],
    late_key: Callable[[Any], Any],
    on_late: Callable[[str, int, str], None] | None = None,
) -> None:
    """The window step on ``grouped`` (keyed by group), its results written to ``routes``
    (one topic per spec, then the late topic) and, under ``--emit cached``, the clock flush.

    A late record is keyed by ``late_key(value)`` and reported to ``on_late`` (default:
    :func:`late_log`).
    """
    on_late = late_log(engine.group_column) if on_late is None else on_late
    step = window_step(engine, on_late, late_key)
    emit = quix.emitter(grouped)

    def step_and_produce(view: dict, key: str, timestamp: int, headers: Any, state: Any) -> None:
        # Produced here, each with its own key and timestamp and no headers (a window record
        # is not any one input's), rather than expanded into Quix stages per output record:
        # under EMIT CHANGES a page view has 8 outputs, and the stages were most of their cost.
        for record in step(view, key, timestamp, headers, state):
            emit(routes[record.route], record, record.key, record.timestamp)

    grouped.update(step_and_produce, stateful=True, metadata=True)
    if engine.cached:
        flusher = CacheFlusher(grouped, engine, routes)
        quix.register_periodic_task(grouped, flusher.tick)


def late_log(group_column: str, log: logging.Logger = logger) -> Callable[[str, int, str], None]:
    """Rate-limited warnings for records too late for a window."""
    late = RateLimitedLog("late record", log)

    def on_late(group: str, timestamp: int, reason: str) -> None:
        late("%s %s, event time %d: %s", group_column, group, timestamp, reason)

    return on_late
