"""Windowed aggregation on a Quix ``StreamingDataFrame``: the window engine as one stateful step.

:func:`window_aggregate` groups a dataframe (:class:`Grouping`: by a column, or by a function)
and puts :class:`~streams.operators.window_engine.WindowEngine` on it: ONE stateful step per
record updates every window kind in one state entry per window on RocksDB with changelog (fault
tolerant and exactly-once, without a built-in Quix window per kind per record), and produces
each result as an :data:`Output` says (:func:`to_routes`: to the topic of its window spec, and
each record too late for a window to the late topic with the reason; the ksqlDB compiler's:
through each query's HAVING and projection to its sink); under ``--emit cached`` a periodic
task flushes results on the clock, and a splittable aggregate is computed in two phases
(:mod:`~streams.operators.local_aggregate` before the repartition,
:meth:`~streams.operators.window_engine.WindowEngine.process_partial` after it), so that
partial aggregates, not records, cross the repartition.
:func:`add_emit_arguments` gives every processor that aggregates in windows the same
``--grace-ms``, ``--emit`` and ``--cache-ms`` flags.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from quixstreams.dataframe import StreamingDataFrame
from quixstreams.models import Topic
from quixstreams.state.base.state import State
from quixstreams.state.base.transaction import PartitionTransaction

from clients.logs import RateLimitedLog
from clients.settings import env, env_int
from streams import clock, quix
from streams.operators.local_aggregate import LocalAggregator
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
        "record cache, aggregated in two phases under the default grace (partial aggregates "
        f"cross the repartition, not records) (env {var_prefix}_EMIT; default changes)",
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


def cached_state(transaction: PartitionTransaction, prefix: str = "windows") -> CachedState:
    """The partition-scoped state ``prefix`` of a Quix ``transaction``, cached for its lifetime.

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
    attribute = f"_pageview_streams_cache_{prefix}"
    cached: CachedState | None = getattr(transaction, attribute, None)
    if cached is None:
        cached = CachedState(transaction.as_state(prefix=prefix))
        quix.before_prepare(transaction, cached.flush)
        setattr(transaction, attribute, cached)
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

    def step(view: dict, key: str, timestamp: int, windows: CachedState) -> list[WindowRecord]:
        # One WindowRecord per output (route, key, timestamp as attributes; JSON sees the
        # dict), which the caller produces to the topic of its route.
        out, late = engine.process(windows, key, view, timestamp)
        for index, reason in late:
            on_late(key, timestamp, reason)
            record = WindowRecord(pageview=view, window=kinds[index], reason=reason)
            record.route, record.key, record.timestamp = late_route, late_key(view), timestamp
            out.append(record)
        return out

    return step


#: What a window result is produced as: (topic, value, key, timestamp, partition), partition
#: None for the producer's partitioner on the key bytes.
Emitted = tuple[Topic, Any, Any, int, "int | None"]

#: ``output(record, state)``: where and as what a window result (or late record) of the engine
#: is produced, or None for nothing; ``state`` is the partition's engine state (a query's
#: HAVING keeps what passed in it).
Output = Callable[[WindowRecord, "CachedState"], "Emitted | None"]


def to_routes(routes: list[Topic]) -> Output:
    """Each record, as it is, to ``routes[record.route]`` (one topic per window spec, then the
    late topic), keyed and timestamped as the engine says."""

    def output(record: WindowRecord, _state: CachedState) -> Emitted:
        return routes[record.route], record, record.key, record.timestamp, None

    return output


@dataclass(frozen=True)
class Grouping:
    """How records are grouped: ``key`` gives a record's group (text), ``name`` names the
    repartition by group (Quix's ``group_by`` name), ``partials`` the repartition of two-phase
    aggregation's partial batches; ``serializer``/``deserializer`` are the records'.
    ``bytes_key`` keys the repartition by the group's UTF-8 bytes as bytes, not as a string:
    the same bytes on the wire, but Quix prefixes key-scoped state by a bytes key as it is and
    by a string key as JSON, so it keeps where a key's state was."""

    key: Callable[[Any], str]
    name: str
    partials: str
    serializer: Any = "json"
    deserializer: Any = "json"
    bytes_key: bool = False

    @classmethod
    def column(cls, column: str) -> Grouping:
        """By a text column: the repartition Quix's ``group_by(column)`` would make."""
        return cls(itemgetter(column), column, f"{column}-partials")

    def group(self, records: StreamingDataFrame) -> StreamingDataFrame:
        """``records`` repartitioned by group, keyed by its text (its bytes if
        ``bytes_key``)."""
        text, serde = self.key, "bytes" if self.bytes_key else "str"
        return quix.group_by(
            records,
            (lambda value: text(value).encode()) if self.bytes_key else text,
            name=self.name,
            key_serializer=serde,
            key_deserializer=serde,
            value_serializer=self.serializer,
            value_deserializer=self.deserializer,
        )

    @property
    def local_prefix(self) -> str:
        """The local stage's state on the input's store, one per grouping: two passes over
        the same input must not share it."""
        return f"local|{self.partials}"


def two_phase(records: StreamingDataFrame, engine: WindowEngine) -> bool:
    """Whether to aggregate in two phases: under ``--emit cached``, with a splittable
    aggregate, under ksqlDB's default grace for every window, and with a repartition to save
    (more than one input partition). An explicit grace is a statement about which records
    are late, and partials cannot keep it: the global step judges a partial whole, at its
    latest event time, where one at a time its earliest records might have been too late."""
    return (
        engine.cached
        and engine.aggregate.splittable
        and all(spec.grace_ms is None for spec in engine.specs)
        and quix.repartitions(records)
    )


class CacheFlusher:
    """Flushes what ``--emit cached`` holds on the clock, as ksqlDB's record cache does at
    commits: the window results, or the local stage's partials, of a period that has ended.

    A record arriving after the cache period flushes its partition's pending results itself;
    a partition that goes quiet would keep its last updates pending until its next record.
    Registered as a Quix periodic task (the run loop calls it between records, on the
    processing thread), :meth:`tick` checks every assigned partition of ``stateful``'s store
    every ``check_ms`` and writes what ``due(state, ahead_ms)`` returns through the producer, in
    the open checkpoint: the records and the state change commit together, exactly once. Quix's
    lookup buffer settles its deadlines the same way.

    The run loop commits right after its periodic tasks, so on the pass that commits, the check
    runs whatever ``check_ms`` says, with the commit interval as ``ahead_ms``: what would come
    due before the next commit goes into this one. Otherwise a period's results (and, in two
    phases, the partials the global step waits for) would miss the commit by a moment and wait
    a whole interval; ksqlDB's cache flushes at commits for the same reason.
    """

    def __init__(
        self,
        stateful: StreamingDataFrame,
        prefix: str,
        due: Callable[[CachedState, int], list[Emitted]],
        check_ms: int = 100,
    ) -> None:
        self._sdf = stateful
        self._prefix = prefix
        self._due = due
        # Not tied to cache_ms: a tiny cache period would make the check per-loop work, and
        # records flush such caches themselves.
        self._check_s = check_ms / 1000
        self._next = 0.0

    def tick(self) -> None:
        now = clock.now()
        ahead_ms = quix.committing_interval_ms(self._sdf)
        if now < self._next and ahead_ms is None:
            return
        self._next = now + self._check_s
        for partition, transaction in quix.partition_transactions(self._sdf):
            state = cached_state(transaction, self._prefix)
            records = self._due(state, ahead_ms or 0)
            if not records:
                continue
            origin = quix.origin(self._sdf.topics[0].name, partition)
            for topic, value, key, timestamp, to_partition in records:
                quix.produce(
                    self._sdf, topic, value, key, timestamp, origin, partition=to_partition
                )
            # Written now, not at prepare: a checkpoint with no input offsets commits only
            # if a store transaction has changed, and otherwise aborts, dropping these records.
            state.flush()


def window_aggregate(
    records: StreamingDataFrame,
    engine: WindowEngine,
    output: Output,
    grouping: Grouping,
    late_key: Callable[[Any], Any] = lambda _value: None,
    on_late: Callable[[str, int, str], None] | None = None,
) -> None:
    """``records`` grouped as ``grouping`` says and aggregated by the window step, each result
    produced as ``output`` says and, under ``--emit cached``, flushed on the clock.

    Under ``--emit cached`` with a splittable aggregate and the default grace, in two phases
    (:func:`two_phase`, :mod:`~streams.operators.local_aggregate`): each input partition folds
    its records for the cache period and only the partials cross the repartition. Otherwise
    every record is repartitioned by group (on one input partition, only re-keyed: there is no
    repartition to save). A late record is keyed by ``late_key(value)`` (a late partial by
    its group) and reported to ``on_late`` (default: :func:`late_log`).
    """
    on_late = late_log(engine.group_column) if on_late is None else on_late
    if two_phase(records, engine):
        grouped = _local_phase(records, engine, grouping)
        step = partial_step(engine, on_late)
        decode = False  # the partials' repartition is keyed by the group's text
    else:
        grouped = grouping.group(records)
        step = window_step(engine, on_late, late_key)
        decode = grouping.bytes_key
    emit = quix.emitter(grouped)
    transaction = quix.record_transaction(grouped)

    def step_and_produce(value: Any, key: Any, timestamp: int, _headers: Any) -> None:
        # Produced here, each with its own key and timestamp and no headers (a window record
        # is not any one input's), rather than expanded into Quix stages per output record:
        # under EMIT CHANGES a page view has 8 outputs, and the stages were most of their cost.
        windows = cached_state(transaction())
        group = key.decode() if decode else key
        for record in step(value, group, timestamp, windows):
            emitted = output(record, windows)
            if emitted is not None:
                emit(*emitted)

    grouped.update(step_and_produce, metadata=True)
    if engine.cached:

        def due(state: CachedState, ahead_ms: int) -> list[Emitted]:
            flushed = (output(record, state) for record in engine.flush_due(state, ahead_ms))
            return [emitted for emitted in flushed if emitted is not None]

        flusher = CacheFlusher(grouped, "windows", due)
        quix.register_periodic_task(grouped, flusher.tick)


def _local_phase(
    records: StreamingDataFrame, engine: WindowEngine, grouping: Grouping
) -> StreamingDataFrame:
    """The local stage on ``records``' own partitions, then the repartition of its partial
    batches by group: the dataframe of batches the global step reads."""
    local = LocalAggregator(engine)
    group_of, prefix = grouping.key, grouping.local_prefix
    transaction = quix.record_transaction(records)

    def fold(value: Any, _key: Any, timestamp: int, _headers: Any) -> list:
        return local.add(cached_state(transaction(), prefix), group_of(value), value, timestamp)

    batches = records.apply(fold, metadata=True, expand=True)
    batches = batches.set_timestamp(lambda batch, _key, _ts, _headers: batch.timestamp)
    # Its own repartition topic (and state): the partials are not the records that a
    # one-phase run of the same processor repartitions by group. A partial is plain JSON
    # (accumulators are), whatever the records' serialisation.
    grouped = quix.group_by(
        batches, "group", name=grouping.partials, key_serializer="str", key_deserializer="str"
    )
    partials = grouped.topics[0]

    def due(state: CachedState, ahead_ms: int) -> list[Emitted]:
        return [(partials, b, b.group, b.timestamp, None) for b in local.flush_due(state, ahead_ms)]

    flusher = CacheFlusher(batches, prefix, due)
    quix.register_periodic_task(batches, flusher.tick)
    return grouped


def partial_step(
    engine: WindowEngine, on_late: Callable[[str, int, str], None]
) -> Callable[..., Iterable[WindowRecord]]:
    """The global step of two-phase aggregation: one call per batch of a group's partials ->
    the output records in order. A partial too late for its window goes to the late route
    (``len(engine.specs)``) keyed by its group, as the window and aggregate it held."""
    kinds = [spec.kind for spec in engine.specs]
    late_route = len(engine.specs)
    result = engine.aggregate.result

    def step(batch: dict, key: str, _ts: int, windows: CachedState) -> list[WindowRecord]:
        out: list[WindowRecord] = []
        for partial in batch["partials"]:
            spec, start, end, acc, timestamp = partial
            records, late = engine.process_partial(windows, key, partial)
            out.extend(records)
            for _index, reason in late:
                on_late(key, timestamp, reason)
                held = {engine.group_column: key, "window_start": start, "window_end": end}
                record = WindowRecord(partial={**held, **result(acc)}, window=kinds[spec])
                record["reason"] = reason
                record.route, record.key, record.timestamp = late_route, key, timestamp
                out.append(record)
        return out

    return step


def late_log(group_column: str, log: logging.Logger = logger) -> Callable[[str, int, str], None]:
    """Rate-limited warnings for records too late for a window."""
    late = RateLimitedLog("late record", log)

    def on_late(group: str, timestamp: int, reason: str) -> None:
        late("%s %s, event time %d: %s", group_column, group, timestamp, reason)

    return on_late
