"""A windowed-aggregation engine with ksqlDB's semantics, independent of Quix Streams.

Why not Quix's built-in windows: they cost a state transaction per window kind per record, do not
retract merged-away sessions and end sessions at last event + 1. This engine computes any number
of tumbling, hopping and session windows over one aggregate in a single call per record, on a
tiny state protocol, so it is unit-testable on a dict and runs inside a Quix stateful ``apply``
(RocksDB + changelog, hence fault tolerance and exactly-once) in the apps.

API (stable; ``streams.country`` and ``streams.windows`` use it)::

    from streams.operators.window_engine import Aggregate, WindowEngine, WindowSpec, count_aggregate

    specs = [WindowSpec.tumbling(300_000), WindowSpec.hopping(300_000, 60_000),
             WindowSpec.session(300_000)]                  # grace defaults as ksqlDB's (below)
    engine = WindowEngine(specs, count_aggregate("pageview_count"), emit="changes")
    results, late = engine.process(state, group="Homepage", value=record, timestamp=ts_ms)
    for r in results:          # WindowResult, in emission order
        key, value = r.record("source")   # "Homepage|1700000000000", {"source": ..., ...}
        r.spec_index           # which spec (index into specs) -> pick the output topic
        r.timestamp            # output record timestamp (max event time in the window)
    for spec_index, reason in late:  # the record was too late for that window kind
        ...                    # count, log, write the record to the late topic with reason

``state`` is anything with ``get(key, default=None)``, ``set(key, value)`` and ``delete(key)``
whose keys are strings and values JSON-serialisable, scoped to ONE input partition (stream time
is per partition, as in ksqlDB): a dict wrapper in tests, a partition-scoped Quix state in apps.

An :class:`Aggregate` is ``init() -> acc``, ``add(acc, value) -> acc``, ``merge(a, b) -> acc``
(sessions) and ``result(acc) -> dict`` of output columns; ``acc`` must be JSON-serialisable.

Semantics (ksqlDB / Kafka Streams):
- Windows are epoch-aligned, ``[start, end)`` with ``end = start + size``; a hopping record
  belongs to every window with ``start`` a multiple of ``advance`` in ``(ts - size, ts]``.
- Stream time = max timestamp seen on the partition. A time window is late (closed) once
  ``end <= stream_time - grace``; a session once its (merged) end
  ``< stream_time - grace - gap`` (Kafka Streams: then no record can extend it any more).
- Sessions: a record merges every session with ``end >= ts - gap`` and ``start <= ts + gap``
  (inclusive), including a late record that bridges two sessions. When anything merges, each
  old session is retracted first (``WindowResult.value is None``), then the merged one emitted.
- ``emit="changes"`` emits every update (EMIT CHANGES, record cache off); ``"final"`` emits each
  window once when it closes (EMIT FINAL), never retractions; ``"cached"`` is EMIT CHANGES with
  ksqlDB's record cache: the latest result per window every ``cache_ms`` (see ``_coalesce``).
- Default grace (``grace_ms=None``): ``max(24 h - size, 0)`` for EMIT CHANGES as ksqlDB, so
  records that repartitioning interleaves out of order are never dropped; EMIT FINAL uses 0
  unless a grace is given (ksqlDB's default), which delays results by nothing but drops more.
- Closed windows are deleted from state, so state holds only windows still within grace.

State is bounded per value whatever the input: no entry grows with the number of distinct
groups. Each window is an entry of its own; which groups have a window starting at a time (or a
session ending in a gap-wide bucket of time) is an index paged at :data:`INDEX_PAGE_CHARS`, read
only when those windows close; a group key is at most :data:`MAX_GROUP_CHARS` long (longer
raises ValueError: the record's fault); pending results of ``"cached"`` are flushed early once
:data:`MAX_PENDING` windows wait, as ksqlDB's record cache flushes when it is full.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from contracts.records import window_key
from streams import clock as wall_clock

MINUTE_MS = 60_000
DAY_MS = 24 * 60 * MINUTE_MS

EMIT_MODES: tuple[str, ...] = ("changes", "final", "cached")
#: ksqlDB's default commit interval (ksql.streams.commit.interval.ms), its record cache's period.
DEFAULT_CACHE_MS = 2000
#: Longest group key: it is part of every state key and output key of its windows.
MAX_GROUP_CHARS = 4096
#: Characters of group keys per page of the window index (a page is one state value).
INDEX_PAGE_CHARS = 32_768
#: Windows waiting in the ``"cached"`` record cache before it is flushed early.
MAX_PENDING = 1000


class WindowState(Protocol):
    """The state the engine needs: string keys, JSON-serialisable values, one input partition."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...

    def delete(self, key: str) -> None: ...


@dataclass(frozen=True)
class WindowSpec:
    """One window kind. ``advance_ms == size_ms`` is tumbling; ``gap_ms`` set means session."""

    kind: Literal["tumbling", "hopping", "session"]
    size_ms: int = 0
    advance_ms: int = 0
    gap_ms: int = 0
    grace_ms: int | None = None

    @classmethod
    def tumbling(cls, size_ms: int, grace_ms: int | None = None) -> WindowSpec:
        return cls("tumbling", size_ms, size_ms, 0, grace_ms)._validated()

    @classmethod
    def hopping(cls, size_ms: int, advance_ms: int, grace_ms: int | None = None) -> WindowSpec:
        return cls("hopping", size_ms, advance_ms, 0, grace_ms)._validated()

    @classmethod
    def session(cls, gap_ms: int, grace_ms: int | None = None) -> WindowSpec:
        return cls("session", 0, 0, gap_ms, grace_ms)._validated()

    def _validated(self) -> WindowSpec:
        if self.kind == "session":
            if self.gap_ms <= 0:
                raise ValueError(f"session gap must be > 0 ms, got {self.gap_ms}")
        elif not 0 < self.advance_ms <= self.size_ms:
            raise ValueError(
                f"need 0 < advance <= size, got size {self.size_ms}, advance {self.advance_ms} ms"
            )
        if self.grace_ms is not None and self.grace_ms < 0:
            raise ValueError(f"grace must be >= 0 ms, got {self.grace_ms}")
        return self

    def effective_grace(self, emit: str) -> int:
        """ksqlDB's default when no GRACE is given: 24 h - size for EMIT CHANGES, 0 for FINAL."""
        if self.grace_ms is not None:
            return self.grace_ms
        return 0 if emit == "final" else max(DAY_MS - self.size_ms, 0)


@dataclass(frozen=True)
class Aggregate:
    init: Callable[[], Any]
    add: Callable[[Any, Any], Any]
    merge: Callable[[Any, Any], Any]
    result: Callable[[Any], dict[str, Any]]


def count_aggregate(column: str) -> Aggregate:
    """COUNT(*) into ``column``."""
    return Aggregate(
        init=lambda: 0,
        add=lambda acc, _value: acc + 1,
        merge=lambda a, b: a + b,
        result=lambda acc: {column: acc},
    )


#: An engine result before it is shaped for its caller: (spec index, group, window start,
#: window end, aggregate result or None for a retraction, output timestamp). Plain tuples keep
#: the per-window cost of the hot loops to one small allocation.
_Raw = tuple[int, str, int, int, "dict[str, Any] | None", int]


class WindowResult:
    """One output of the engine: a window's new aggregate, or (``value is None``) its retraction."""

    __slots__ = ("end", "group", "kind", "spec_index", "start", "timestamp", "value")

    def __init__(
        self,
        spec_index: int,
        kind: str,
        group: str,
        start: int,
        end: int,
        value: dict[str, Any] | None,
        timestamp: int,
    ) -> None:
        self.spec_index = spec_index
        self.kind = kind
        self.group = group
        self.start = start
        self.end = end
        self.value = value
        self.timestamp = timestamp

    def key(self) -> str:
        """Window identity: one Pinot upsert row per window, co-partitioned by group."""
        return window_key(self.group, self.start)

    def record(self, group_column: str, zero: dict[str, Any] | None = None) -> tuple[str, dict]:
        """The output record per the shared contract.

        Sessions carry ``deleted``; a retraction becomes ``deleted: true`` with ``zero`` as the
        aggregate columns (Pinot cannot ingest the null value ksqlDB writes).
        """
        raw = (0, self.group, self.start, self.end, self.value, self.timestamp)
        (record,) = _to_records(
            [raw], [self.kind == "session"], group_column, zero or {}, WindowRecord
        )
        return record.key, dict(record)

    def __repr__(self) -> str:
        return (
            f"WindowResult({self.kind}#{self.spec_index} {self.group!r} "
            f"[{self.start},{self.end}] {self.value} @{self.timestamp})"
        )


class WindowRecord(dict):
    """An output record ready to produce: the contract's value, with route, key and timestamp.

    JSON serialisation sees only the dict. Built straight from the engine's results by
    :meth:`WindowEngine.records`, so an app makes one object per output record, not three.
    """

    __slots__ = ("key", "route", "timestamp")


def _to_records(
    raw: list[_Raw],
    sessions: Sequence[bool],
    group_column: str,
    zero: dict[str, Any],
    record_type: type[WindowRecord],
) -> list[WindowRecord]:
    """Raw results as output records per the shared contract (see :meth:`WindowResult.record`);
    ``sessions[i]``: whether spec ``i`` is a session window (its records carry ``deleted``).

    One loop over a batch with item assignment, not a function call per record: under EMIT
    CHANGES this runs 8 times per page view.
    """
    out = []
    append = out.append
    for i, group, start, end, value, timestamp in raw:
        record = record_type()
        record[group_column] = group
        record["window_start"] = start
        record["window_end"] = end
        if value is None:
            record.update(zero)
            record["deleted"] = True
        else:
            record.update(value)
            if sessions[i]:
                record["deleted"] = False
        record.route, record.key, record.timestamp = i, window_key(group, start), timestamp
        append(record)
    return out


_META = "meta"
# Positions in the meta entry (one per partition). _LEGACY_GROUPS held every group ever seen
# before the index existed; it is migrated once (see _migrate) and then always empty.
_STREAM_TIME, _LEGACY_GROUPS, _BOUNDS, _PENDING, _FLUSHED = range(5)


class _Index:
    """Which groups have windows in a bucket of time, paged so no state value grows with them.

    Entries ``"{spec}|#|{bucket}"`` -> ``[pages, characters in the last page]`` and
    ``"{spec}|#|{bucket}|{page}"`` -> ``[group, ...]``. A bucket is a time window's start, or
    ``end // gap`` for sessions. A group may be listed twice; readers tolerate it.
    """

    @staticmethod
    def add(state: WindowState, spec: int, bucket: int, group: str) -> None:
        head_key = f"{spec}|#|{bucket}"
        head = state.get(head_key)
        size = len(group) if isinstance(group, str) else 24  # harnesses group by numbers too
        if head is None or head[1] + size > INDEX_PAGE_CHARS:
            head = [0 if head is None else head[0], 0]
            head[0] += 1
            page: list[str] = []
        else:
            page = state.get(f"{head_key}|{head[0] - 1}") or []
        page.append(group)
        head[1] += size
        state.set(f"{head_key}|{head[0] - 1}", page)
        state.set(head_key, head)

    @staticmethod
    def pop(state: WindowState, spec: int, bucket: int) -> list[str]:
        """The bucket's groups (each once, in order of insertion); the bucket is deleted."""
        head_key = f"{spec}|#|{bucket}"
        head = state.get(head_key)
        if head is None:
            return []
        groups: dict[str, None] = {}
        for page in range(head[0]):
            groups.update(dict.fromkeys(state.get(f"{head_key}|{page}") or []))
            state.delete(f"{head_key}|{page}")
        state.delete(head_key)
        return list(groups)


class WindowEngine:
    """Applies records to all ``specs`` at once; see the module docstring for the contract."""

    def __init__(
        self,
        specs: list[WindowSpec],
        aggregate: Aggregate,
        emit: str = "changes",
        strict_retention: bool = False,
        cache_ms: int = DEFAULT_CACHE_MS,
        clock: Callable[[], float] = wall_clock.now,
    ):
        if emit not in EMIT_MODES:
            raise ValueError(f"emit mode must be one of {EMIT_MODES}, got {emit!r}")
        if not specs:
            raise ValueError("at least one window spec is needed")
        self.specs = list(specs)
        self.aggregate = aggregate
        self.emit = emit
        self.final = emit == "final"
        self.cached = emit == "cached"
        self.cache_ms = cache_ms
        self.clock = clock
        self.graces = [spec.effective_grace(emit) for spec in self.specs]
        # ksqlDB >= 0.29 purges a time window older than stream time - (size + grace) before
        # EMIT FINAL emits it, losing it. Off by default (we emit every window that closes); on
        # only to show in the conformance harness that this is the whole difference.
        self.strict_retention = strict_retention
        # Everything the per-record loop needs about a spec, read once here rather than through
        # attribute look-ups per record and window.
        self._plan = [
            (index, spec.size_ms, spec.advance_ms, spec.gap_ms, grace)
            for index, (spec, grace) in enumerate(zip(self.specs, self.graces, strict=True))
        ]
        self._kinds = [spec.kind for spec in self.specs]
        self._sessions = [kind == "session" for kind in self._kinds]

    def process(
        self, state: WindowState, group: str, value: Any, timestamp: int
    ) -> tuple[list[WindowResult], list[tuple[int, str]]]:
        """Add one record: (window results in emission order, [(spec index, late reason)])."""
        raw, late = self._apply(state, group, value, timestamp)
        kinds = self._kinds
        return [WindowResult(i, kinds[i], g, s, e, v, t) for i, g, s, e, v, t in raw], late

    def records(
        self,
        state: WindowState,
        group: str,
        value: Any,
        timestamp: int,
        group_column: str,
        zero: dict[str, Any],
        record_type: type[WindowRecord] = WindowRecord,
    ) -> tuple[list[WindowRecord], list[tuple[int, str]]]:
        """:meth:`process`, with each result already its output record (what an app produces).

        Equal to ``WindowResult.record(group_column, zero)`` per result, with ``route`` = spec
        index, ``key`` and ``timestamp`` set, but without the intermediate objects: under EMIT
        CHANGES a page view has 8 results, so they were a large share of its cost.
        ``record_type`` is any :class:`WindowRecord`-like dict subclass with those slots.
        """
        raw, late = self._apply(state, group, value, timestamp)
        return _to_records(raw, self._sessions, group_column, zero, record_type), late

    def _apply(
        self, state: WindowState, group: str, value: Any, timestamp: int
    ) -> tuple[list[_Raw], list[tuple[int, str]]]:
        if isinstance(group, str) and len(group) > MAX_GROUP_CHARS:
            raise ValueError(
                f"group key is {len(group)} characters long, more than {MAX_GROUP_CHARS}: it "
                f"would be part of every state key and output key of its windows"
            )
        meta = state.get(_META)
        if meta is None:
            meta = [timestamp, [], [[None, None, None] for _ in self.specs], {}, 0]
        elif meta[_LEGACY_GROUPS]:
            self._migrate(state, meta)
        stream_time = meta[_STREAM_TIME]
        if timestamp > stream_time:
            stream_time = meta[_STREAM_TIME] = timestamp
        results: list[_Raw] = []
        late: list[tuple[int, str]] = []
        all_bounds = meta[_BOUNDS]
        for index, size, advance, gap, grace in self._plan:
            close = stream_time - grace
            bounds = all_bounds[index]
            if gap:
                # Kafka Streams: a session closes at end + gap + grace: no record can extend it.
                close -= gap
                self._session(
                    state, index, gap, group, value, timestamp, close, bounds, results, late
                )
                # Checked here, not in the callee: nothing has closed on almost every record.
                # Bucket by bucket, except that EMIT FINAL emits a session as soon as it
                # closes: bounds[2] is a lower bound of the earliest live session end.
                if bounds[0] is not None and (
                    (bounds[0] + 1) * gap <= close or (self.final and bounds[2] < close)
                ):
                    self._expire_sessions(state, index, gap, bounds, close, results)
            else:
                if bounds[0] is not None and bounds[0] + size <= close:
                    self._expire_time_windows(state, index, size, advance, bounds, close, results)
                self._time(
                    state,
                    index,
                    size,
                    advance,
                    group,
                    value,
                    timestamp,
                    close,
                    bounds,
                    results,
                    late,
                )
        if self.cached:
            results = self._coalesce(meta, results)
        state.set(_META, meta)
        return results, late

    def _migrate(self, state: WindowState, meta: list) -> None:
        """Index the windows of a partition stored before the index existed, once.

        That layout kept every group ever seen in the meta entry (which grew without bound)
        and scanned all of them for each closing window; session bounds were unused.
        """
        groups = meta[_LEGACY_GROUPS]
        meta[_BOUNDS] = [[*bounds[:2], None] for bounds in meta[_BOUNDS]]
        for index, _size, advance, gap, _grace in self._plan:
            bounds = meta[_BOUNDS][index]
            if gap:
                ends = set()
                for group in groups:
                    for session in state.get(f"{index}|{group}|s") or []:
                        ends.add(session[1])
                        _Index.add(state, index, session[1] // gap, group)
                if ends:
                    bounds[:] = [min(ends) // gap, max(ends) // gap, min(ends)]
            elif bounds[0] is not None:
                for start in range(bounds[0], bounds[1] + 1, advance):
                    for group in groups:
                        if state.get(f"{index}|{group}|{start}") is not None:
                            _Index.add(state, index, start, group)
        meta[_LEGACY_GROUPS] = []

    def _coalesce(self, meta: list, results: list[_Raw]) -> list[_Raw]:
        """EMIT CHANGES through ksqlDB's record cache: the latest result per window per period.

        Pending results live in the partition's state (meta), so a crash between periods
        loses none: the restored state still holds them. They are flushed by the first
        record after the period ends, or by :meth:`flush_due` on the clock if none comes.
        """
        pending: dict[str, list] = meta[_PENDING]
        kinds = self._kinds
        for i, g, s, e, v, t in results:
            key = f"{i}|{g}|{s}|{e}"
            pending.pop(key, None)  # re-insert: flush order follows the latest update
            pending[key] = [i, kinds[i], g, s, e, v, t]
        return self._due(meta)

    def _due(self, meta: list) -> list[_Raw]:
        """Take the pending results if the cache period has ended or the cache is full (meta is
        updated in place)."""
        now_ms = int(self.clock() * 1000)
        if now_ms - meta[_FLUSHED] < self.cache_ms and len(meta[_PENDING]) < MAX_PENDING:
            return []
        pending, meta[_PENDING], meta[_FLUSHED] = meta[_PENDING], {}, now_ms
        return [(i, g, s, e, v, t) for i, _kind, g, s, e, v, t in pending.values()]

    def flush_due(
        self,
        state: WindowState,
        group_column: str,
        zero: dict[str, Any],
        record_type: type[WindowRecord] = WindowRecord,
    ) -> list[WindowRecord]:
        """EMIT cached on the clock: a partition's pending results, once their period ended.

        ksqlDB's record cache flushes at every commit whether or not input arrives; without
        this, the last updates of a burst would wait in state for the partition's next record
        (on a quiet partition, indefinitely). An app calls it periodically for each of its
        partitions; it emits exactly what that next record would have flushed.
        """
        meta = state.get(_META)
        if meta is None or not meta[_PENDING]:
            return []
        raw = self._due(meta)
        if raw:
            state.set(_META, meta)
        return _to_records(raw, self._sessions, group_column, zero, record_type)

    # -- time windows (tumbling, hopping) -------------------------------------------------------

    def _time(
        self,
        state: WindowState,
        index: int,
        size: int,
        advance: int,
        group: str,
        value: Any,
        ts: int,
        close: int,
        bounds: list,
        results: list[_Raw],
        late: list[tuple[int, str]],
    ) -> None:
        agg, final = self.aggregate, self.final
        first = ts - size + advance  # the lowest start whose window still contains ts
        start = first - first % advance if first > 0 else 0
        prefix = f"{index}|{group}|"
        skipped: list[int] = []
        while start <= ts:
            end = start + size
            if end <= close:
                skipped.append(start)
            else:
                key = prefix + str(start)
                stored = state.get(key)
                if stored is None:
                    stored = [agg.add(agg.init(), value), ts]
                    _Index.add(state, index, start, group)
                    if bounds[0] is None or start < bounds[0]:
                        bounds[0] = start
                    if bounds[1] is None or start > bounds[1]:
                        bounds[1] = start
                else:
                    # In place: the state hands out its own object, and set() marks it changed.
                    stored[0] = agg.add(stored[0], value)
                    if ts > stored[1]:
                        stored[1] = ts
                state.set(key, stored)
                if not final:
                    results.append((index, group, start, end, agg.result(stored[0]), stored[1]))
            start += advance
        if skipped:
            late.append(
                (
                    index,
                    f"{self._kinds[index]} window(s) starting at {skipped} (size {size} ms) "
                    f"closed: window end <= stream time - grace = {close}",
                )
            )

    def _expire_time_windows(
        self,
        state: WindowState,
        index: int,
        size: int,
        advance: int,
        bounds: list,
        close: int,
        results: list[_Raw],
    ) -> None:
        """Emit (EMIT FINAL) and delete windows that closed; the index names them."""
        low, high = bounds[0], bounds[1]
        purge_before = close - size  # close = stream time - grace
        start = low
        while start <= high and start + size <= close:
            for group in _Index.pop(state, index, start):
                key = f"{index}|{group}|{start}"
                stored = state.get(key)
                if stored is None:
                    continue
                state.delete(key)
                if self.final and not (self.strict_retention and start < purge_before):
                    acc, max_ts = stored
                    results.append(
                        (index, group, start, start + size, self.aggregate.result(acc), max_ts)
                    )
            start += advance
        if start > high:
            bounds[0] = bounds[1] = None
        else:
            bounds[0] = start

    # -- sessions -------------------------------------------------------------------------------

    def _session(
        self,
        state: WindowState,
        index: int,
        gap: int,
        group: str,
        value: Any,
        ts: int,
        close: int,
        bounds: list,
        results: list[_Raw],
        late: list[tuple[int, str]],
    ) -> None:
        """Merge ``ts`` into the group's sessions; ``close`` = stream time - grace - gap."""
        agg = self.aggregate
        key = f"{index}|{group}|s"
        stored: list[list] = state.get(key) or []
        # Closed sessions leave first (emitted under EMIT FINAL), as Kafka Streams' store expires
        # them before the merge lookup: a record can never reopen a closed session.
        sessions = self._drop_closed(index, group, stored, close, results)
        kept: list[list] = []
        merged: list[list] = []
        start = end = ts
        for session in sessions:
            if session[1] >= ts - gap and session[0] <= ts + gap:
                merged.append(session)
                if session[0] < start:
                    start = session[0]
                if session[1] > end:
                    end = session[1]
            else:
                kept.append(session)
        if end < close:
            late.append(
                (
                    index,
                    f"session [{start},{end}] (gap {gap} ms) closed: "
                    f"session end < stream time - grace - gap = {close}",
                )
            )
            kept = sessions
        else:
            acc = agg.init()
            for session in merged:
                acc = agg.merge(acc, session[2])
            acc = agg.add(acc, value)
            if not self.final and (start != ts or end != ts):
                # ksqlDB retracts every merged session, even one whose bounds did not change.
                for s in merged:
                    results.append((index, group, s[0], s[1], None, s[1]))
            kept.append([start, end, acc])
            if len(kept) > 1:
                kept.sort()
            bucket = end // gap
            if all(s[1] // gap != bucket for s in merged):
                _Index.add(state, index, bucket, group)
                if bounds[0] is None or bucket < bounds[0]:
                    bounds[0] = bucket
                if bounds[1] is None or bucket > bounds[1]:
                    bounds[1] = bucket
            if bounds[2] is None or end < bounds[2]:
                bounds[2] = end
            if not self.final:
                results.append((index, group, start, end, agg.result(acc), end))
        if kept:
            state.set(key, kept)
        elif stored:
            state.delete(key)

    def _drop_closed(
        self, index: int, group: str, sessions: list[list], close: int, results: list[_Raw]
    ) -> list[list]:
        """``sessions`` still open; closed ones are emitted first under EMIT FINAL."""
        for session in sessions:
            if session[1] < close:
                break
        else:
            return sessions
        live = []
        for start, end, acc in sessions:
            if end >= close:
                live.append([start, end, acc])
            elif self.final:
                results.append((index, group, start, end, self.aggregate.result(acc), end))
        return live

    def _expire_sessions(
        self,
        state: WindowState,
        index: int,
        gap: int,
        bounds: list,
        close: int,
        results: list[_Raw],
    ) -> None:
        """Drop closed sessions of every group (emitted first under EMIT FINAL).

        Stream time is per partition, so a record closes other groups' sessions too. Buckets
        whose every end is before ``close`` are done with; the bucket ``close`` falls in is
        looked at only under EMIT FINAL, where a session must be emitted as soon as it closes
        (its groups are listed again while they have a session ending in it).
        """
        low, high, _earliest = bounds
        bucket = low
        earliest = None
        while bucket <= high and bucket * gap < close:
            boundary = (bucket + 1) * gap > close
            if boundary and not self.final:
                break
            for group in _Index.pop(state, index, bucket):
                key = f"{index}|{group}|s"
                sessions = state.get(key)
                if not sessions:
                    continue
                live = self._drop_closed(index, group, sessions, close, results)
                if len(live) != len(sessions):
                    if live:
                        state.set(key, live)
                    else:
                        state.delete(key)
                ends = [s[1] for s in live if s[1] // gap == bucket]
                if boundary and ends:
                    _Index.add(state, index, bucket, group)
                    earliest = min(ends) if earliest is None else min(earliest, *ends)
            if boundary:
                break
            bucket += 1
        if bucket > high:
            bounds[:] = [None, None, None]
        else:
            # Sessions in later buckets end at (bucket + 1) * gap or after.
            bounds[0] = bucket
            bounds[2] = (bucket + 1) * gap if earliest is None else earliest


class DictState(dict):
    """:class:`WindowState` on a plain dict: one per input partition in tests and harnesses."""

    def set(self, key: str, value: Any) -> None:
        self[key] = value

    def delete(self, key: str) -> None:
        self.pop(key, None)
