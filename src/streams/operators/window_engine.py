"""A windowed-aggregation engine with ksqlDB's semantics, independent of Quix Streams.

Why not Quix's built-in windows: they cost a state transaction per window kind per record, do not
retract merged-away sessions and end sessions at last event + 1. This engine computes any number
of tumbling, hopping and session windows over one aggregate in a single call per record, on a
tiny state protocol, so it is unit-testable on a dict and runs inside a Quix stateful ``apply``
(RocksDB + changelog, hence fault tolerance and exactly-once) in the apps.

API (``streams.operators.window_aggregate`` runs it on Quix)::

    from streams.operators.window_engine import WindowEngine, WindowSpec, count_aggregate

    specs = [WindowSpec.tumbling(300_000), WindowSpec.hopping(300_000, 60_000),
             WindowSpec.session(300_000)]                  # grace defaults as ksqlDB's (below)
    engine = WindowEngine(specs, count_aggregate("pageview_count"), emit="changes",
                          group_column="source", zero={"pageview_count": 0})
    records, late = engine.process(state, group="Homepage", value=view, timestamp=ts_ms)
    for r in records:          # WindowRecord, in emission order: the output record's value
        r.key                  # "Homepage|1700000000000" (contracts.records.window_key)
        r.route                # which spec (index into specs) -> pick the output topic
        r.timestamp            # output record timestamp (max event time in the window)
    for spec_index, reason in late:  # the record was too late for that window kind
        ...                    # count, log, write the record to the late topic with reason
    engine.meta(state).stream_time  # inspection: the partition's bookkeeping (PartitionMeta)

A record's value: ``{group_column: group, "window_start", "window_end", **aggregate columns}``;
session windows add ``deleted``, and a retracted session is ``deleted: true`` with ``zero`` as
its aggregate columns (Pinot cannot ingest the null value ksqlDB writes).

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
from typing import Any, Literal, NamedTuple, Protocol

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
    #: Whether ``merge`` of accumulators folded on different input partitions is exact, so the
    #: aggregate may be computed in two phases (COUNT, SUM, AVG, MIN, MAX are; LATEST_BY_OFFSET
    #: is not: offsets of different partitions are not ordered).
    splittable: bool = False


def count_aggregate(column: str) -> Aggregate:
    """COUNT(*) into ``column``."""
    return Aggregate(
        init=lambda: 0,
        add=lambda acc, _value: acc + 1,
        merge=lambda a, b: a + b,
        result=lambda acc: {column: acc},
        splittable=True,
    )


#: An engine result before it is shaped as a record: (spec index, group, window start, window
#: end, aggregate result or None for a retraction, output timestamp). Plain tuples keep the
#: per-window cost of the hot loops to one small allocation.
_Raw = tuple[int, str, int, int, "dict[str, Any] | None", int]

# Stored layout (JSON lists, positional to keep state small; the names are only here):
#: A time window's entry ``"{spec}|{group}|{start}"``: [aggregate, max event time].
_ACC, _MAX_TS = 0, 1
#: A session in a group's entry ``"{spec}|{group}|s"`` (sorted list of sessions).
_START, _END, _SESSION_ACC = 0, 1, 2
#: The partition's entry ``"meta"``. _LEGACY_GROUPS held every group ever seen before the index
#: existed; it is migrated once (see _migrate) and then always empty. _PENDING maps a window to
#: its latest unflushed result under "cached"; _FLUSHED is the last flush, wall-clock ms.
_STREAM_TIME, _LEGACY_GROUPS, _BOUNDS, _PENDING, _FLUSHED = range(5)
#: Per spec in meta's _BOUNDS: the lowest and highest live bucket (window start, or end // gap
#: for sessions) and, for sessions, a lower bound of the earliest live session end.
_LOW, _HIGH, _EARLIEST = range(3)
#: An index head ``"{spec}|#|{bucket}"`` (see _Index): [pages, characters in the last page].
_PAGES, _CHARS = 0, 1

#: A partial aggregate of two-phase aggregation: [spec, window start, window end, accumulator,
#: max event time] (a session's end is its max event time).
Partial = list
_P_SPEC, _P_START, _P_END, _P_ACC, _P_MAX_TS = range(5)


class WindowRecord(dict):
    """An output record ready to produce: the contract's value (the dict: all that JSON
    serialisation sees), with ``route`` (spec index), ``key`` and ``timestamp`` as slots."""

    __slots__ = ("key", "route", "timestamp")


def _to_records(
    raw: list[_Raw], sessions: Sequence[bool], group_column: str, zero: dict[str, Any]
) -> list[WindowRecord]:
    """Raw results as output records (the module docstring has their shape); ``sessions[i]``:
    whether spec ``i`` is a session window (its records carry ``deleted``).

    One loop over a batch with item assignment, not a function call per record: under EMIT
    CHANGES this runs 8 times per page view.
    """
    out = []
    append = out.append
    for spec, group, start, end, value, timestamp in raw:
        record = WindowRecord()
        record[group_column] = group
        record["window_start"] = start
        record["window_end"] = end
        if value is None:
            record.update(zero)
            record["deleted"] = True
        else:
            record.update(value)
            if sessions[spec]:
                record["deleted"] = False
        record.route, record.key, record.timestamp = spec, window_key(group, start), timestamp
        append(record)
    return out


_META = "meta"


class PartitionMeta(NamedTuple):
    """The partition's ``"meta"`` entry by name (see :meth:`WindowEngine.meta`)."""

    stream_time: int
    legacy_groups: list[str]
    bounds: list[list[int | None]]  #: per spec: [low bucket, high bucket, earliest session end]
    pending: dict[str, list]  #: window -> its latest unflushed result, under "cached"
    flushed_ms: int  #: the last flush of "cached", wall-clock ms


class _Index:
    """Which groups have windows in a bucket of time, paged so no state value grows with them.

    Entries ``"{spec}|#|{bucket}"`` -> ``[pages, characters in the last page]`` (a head) and
    ``"{spec}|#|{bucket}|{page}"`` -> ``[group, ...]``. A bucket is a time window's start, or
    ``end // gap`` for sessions. A group may be listed twice; readers tolerate it.
    """

    @staticmethod
    def add(state: WindowState, spec: int, bucket: int, group: str) -> None:
        head_key = f"{spec}|#|{bucket}"
        head = state.get(head_key)
        size = len(group) if isinstance(group, str) else 24  # harnesses group by numbers too
        if head is None or head[_CHARS] + size > INDEX_PAGE_CHARS:
            head = [0 if head is None else head[_PAGES], 0]
            head[_PAGES] += 1
            page: list[str] = []
        else:
            page = state.get(f"{head_key}|{head[_PAGES] - 1}") or []
        page.append(group)
        head[_CHARS] += size
        state.set(f"{head_key}|{head[_PAGES] - 1}", page)
        state.set(head_key, head)

    @staticmethod
    def pop(state: WindowState, spec: int, bucket: int) -> list[str]:
        """The bucket's groups (each once, in order of insertion); the bucket is deleted."""
        head_key = f"{spec}|#|{bucket}"
        head = state.get(head_key)
        if head is None:
            return []
        groups: dict[str, None] = {}
        for page in range(head[_PAGES]):
            groups.update(dict.fromkeys(state.get(f"{head_key}|{page}") or []))
            state.delete(f"{head_key}|{page}")
        state.delete(head_key)
        return list(groups)


def first_start(timestamp: int, size: int, advance: int) -> int:
    """The earliest start of a time window (``size``, ``advance``) holding ``timestamp``; the
    others follow every ``advance`` up to ``timestamp``."""
    first = timestamp - size + advance
    return first - first % advance if first > 0 else 0


def within_gap(start: int, end: int, low: int, high: int, gap: int) -> bool:
    """Whether a session ``[start, end]`` merges with records spanning ``[low, high]``: their
    distance is at most the gap, inclusive (Kafka Streams)."""
    return end >= low - gap and start <= high + gap


def check_group(group: Any) -> None:
    """Raise ValueError (the record's fault) for a group key too long to be part of keys."""
    if isinstance(group, str) and len(group) > MAX_GROUP_CHARS:
        raise ValueError(
            f"group key is {len(group)} characters long, more than {MAX_GROUP_CHARS}: it "
            f"would be part of every state key and output key of its windows"
        )


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
        group_column: str = "group",
        zero: dict[str, Any] | None = None,
    ):
        """``group_column`` names the group in output records; ``zero`` is the aggregate
        columns of a retracted session (default: none)."""
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
        self.group_column = group_column
        self.zero = {} if zero is None else dict(zero)
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
    ) -> tuple[list[WindowRecord], list[tuple[int, str]]]:
        """Add one record: (output records in emission order, [(spec index, late reason)])."""
        raw, late = self._apply(state, group, value, timestamp)
        return _to_records(raw, self._sessions, self.group_column, self.zero), late

    def process_partial(
        self, state: WindowState, group: str, partial: Partial
    ) -> tuple[list[WindowRecord], list[tuple[int, str]]]:
        """Merge one partial aggregate of two-phase aggregation (the global step; see
        :mod:`streams.operators.local_aggregate`): ``[spec, start, end, acc, max event time]``
        is one time window's accumulator, or a session's, from one input partition. It counts
        as a record at its max event time for stream time and lateness, and merges with
        ``aggregate.merge`` where a record would ``add``: a session interval merges every
        session within the gap of either end, as its records would have one by one."""
        raw, late = self._apply(state, group, None, partial[_P_MAX_TS], partial)
        return _to_records(raw, self._sessions, self.group_column, self.zero), late

    def meta(self, state: WindowState) -> PartitionMeta | None:
        """Inspection (tests, tools): the partition's bookkeeping, None before any record."""
        meta = state.get(_META)
        if meta is None:
            return None
        return PartitionMeta(
            meta[_STREAM_TIME], meta[_LEGACY_GROUPS], meta[_BOUNDS], meta[_PENDING], meta[_FLUSHED]
        )

    def _apply(
        self,
        state: WindowState,
        group: str,
        value: Any,
        timestamp: int,
        partial: Partial | None = None,
    ) -> tuple[list[_Raw], list[tuple[int, str]]]:
        """A record (``value``) or a ``partial`` of one spec: every spec expires what closed,
        then the record goes into each spec's windows, the partial into its own spec's."""
        check_group(group)
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
        if partial is None:
            only = window = None  # every spec; each finds the windows of ``timestamp``
            low = high = timestamp
            merge = False
        else:
            only, value, merge = partial[_P_SPEC], partial[_P_ACC], True
            window = low = partial[_P_START]
            high = partial[_P_END]
        for index, size, advance, gap, grace in self._plan:
            close = stream_time - grace
            bounds = all_bounds[index]  # [_LOW, _HIGH, _EARLIEST]
            if gap:
                # Kafka Streams: a session closes at end + gap + grace: no record can extend it.
                close -= gap
                if only is None or only == index:
                    self._session(
                        state, index, gap, group, value, low, high, close, bounds, results,
                        late, merge,
                    )  # fmt: skip
                # Checked here, not in the callee: nothing has closed on almost every record.
                # Bucket by bucket, except that EMIT FINAL emits a session as soon as it closes.
                if bounds[_LOW] is not None and (
                    (bounds[_LOW] + 1) * gap <= close or (self.final and bounds[_EARLIEST] < close)
                ):
                    self._expire_sessions(state, index, gap, bounds, close, results)
            else:
                if bounds[_LOW] is not None and bounds[_LOW] + size <= close:
                    self._expire_time_windows(state, index, size, advance, bounds, close, results)
                if only is None or only == index:
                    self._time(
                        state, index, size, advance, group, value, timestamp, close, bounds,
                        results, late, window,
                    )  # fmt: skip
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
        meta[_BOUNDS] = [[bounds[_LOW], bounds[_HIGH], None] for bounds in meta[_BOUNDS]]
        for index, _size, advance, gap, _grace in self._plan:
            bounds = meta[_BOUNDS][index]
            if gap:
                ends = set()
                for group in groups:
                    for session in state.get(f"{index}|{group}|s") or []:
                        ends.add(session[_END])
                        _Index.add(state, index, session[_END] // gap, group)
                if ends:
                    bounds[:] = [min(ends) // gap, max(ends) // gap, min(ends)]
            elif bounds[_LOW] is not None:
                for start in range(bounds[_LOW], bounds[_HIGH] + 1, advance):
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
        for spec, group, start, end, value, timestamp in results:
            key = f"{spec}|{group}|{start}|{end}"
            pending.pop(key, None)  # re-insert: flush order follows the latest update
            # The kind is no longer read, but stays: the stored layout does not change.
            pending[key] = [spec, kinds[spec], group, start, end, value, timestamp]
        return self._due(meta)

    def _due(self, meta: list, ahead_ms: int = 0) -> list[_Raw]:
        """Take the pending results if the cache period has ended (or ends within ``ahead_ms``)
        or the cache is full (meta is updated in place)."""
        now_ms = int(self.clock() * 1000)
        if now_ms + ahead_ms - meta[_FLUSHED] < self.cache_ms and len(meta[_PENDING]) < MAX_PENDING:
            return []
        pending, meta[_PENDING], meta[_FLUSHED] = meta[_PENDING], {}, now_ms
        return [(spec, *rest) for spec, _kind, *rest in pending.values()]

    def flush_due(self, state: WindowState, ahead_ms: int = 0) -> list[WindowRecord]:
        """EMIT cached on the clock: a partition's pending results, once their period ended.

        ksqlDB's record cache flushes at every commit whether or not input arrives; without
        this, the last updates of a burst would wait in state for the partition's next record
        (on a quiet partition, indefinitely). An app calls it periodically for each of its
        partitions; it emits exactly what that next record would have flushed. Just before a
        commit it passes the commit interval as ``ahead_ms``: a period that ends before the
        next commit is flushed into this one, rather than wait a whole interval for the next.
        """
        meta = state.get(_META)
        if meta is None or not meta[_PENDING]:
            return []
        raw = self._due(meta, ahead_ms)
        if raw:
            state.set(_META, meta)
        return _to_records(raw, self._sessions, self.group_column, self.zero)

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
        window: int | None = None,
    ) -> None:
        """``value`` into every window containing ``ts``; or, given the ``window`` (start) of a
        partial, ``value`` is that window's partial accumulator, merged into it."""
        agg, final = self.aggregate, self.final
        if window is None:
            start = first_start(ts, size, advance)
            last = ts
            fold = agg.add
        else:
            start = last = window
            fold = agg.merge
        prefix = f"{index}|{group}|"
        skipped: list[int] = []
        while start <= last:
            end = start + size
            if end <= close:
                skipped.append(start)
            else:
                key = prefix + str(start)
                stored = state.get(key)
                if stored is None:
                    stored = [fold(agg.init(), value), ts]  # [_ACC, _MAX_TS]
                    _Index.add(state, index, start, group)
                    if bounds[_LOW] is None or start < bounds[_LOW]:
                        bounds[_LOW] = start
                    if bounds[_HIGH] is None or start > bounds[_HIGH]:
                        bounds[_HIGH] = start
                else:
                    # In place: the state hands out its own object, and set() marks it changed.
                    stored[_ACC] = fold(stored[_ACC], value)
                    if ts > stored[_MAX_TS]:
                        stored[_MAX_TS] = ts
                state.set(key, stored)
                if not final:
                    result = agg.result(stored[_ACC])
                    results.append((index, group, start, end, result, stored[_MAX_TS]))
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
        low, high = bounds[_LOW], bounds[_HIGH]
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
                    result = self.aggregate.result(stored[_ACC])
                    results.append((index, group, start, start + size, result, stored[_MAX_TS]))
            start += advance
        if start > high:
            bounds[_LOW] = bounds[_HIGH] = None
        else:
            bounds[_LOW] = start

    # -- sessions -------------------------------------------------------------------------------

    def _session(
        self,
        state: WindowState,
        index: int,
        gap: int,
        group: str,
        value: Any,
        low: int,
        high: int,
        close: int,
        bounds: list,
        results: list[_Raw],
        late: list[tuple[int, str]],
        merge: bool = False,
    ) -> None:
        """Merge a record at ``low == high`` into the group's sessions; or with ``merge``, a
        partial session ``[low, high]`` whose accumulator is ``value``. ``close`` = stream
        time - grace - gap."""
        agg = self.aggregate
        key = f"{index}|{group}|s"
        stored: list[list] = state.get(key) or []
        # Closed sessions leave first (emitted under EMIT FINAL), as Kafka Streams' store expires
        # them before the merge lookup: a record can never reopen a closed session.
        sessions = self._drop_closed(index, group, stored, close, results)
        kept: list[list] = []
        merged: list[list] = []
        start, end = low, high
        for session in sessions:
            if within_gap(session[_START], session[_END], low, high, gap):
                merged.append(session)
                if session[_START] < start:
                    start = session[_START]
                if session[_END] > end:
                    end = session[_END]
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
                acc = agg.merge(acc, session[_SESSION_ACC])
            acc = agg.merge(acc, value) if merge else agg.add(acc, value)
            if not self.final:
                # ksqlDB retracts every merged session once the record extends anything, even
                # one whose bounds did not change; a session with the new bounds is otherwise
                # simply updated (its key is the same).
                grown = start != low or end != high
                for old in merged:
                    if grown or old[_START] != start or old[_END] != end:
                        results.append((index, group, old[_START], old[_END], None, old[_END]))
            kept.append([start, end, acc])  # [_START, _END, _SESSION_ACC]
            if len(kept) > 1:
                kept.sort()
            bucket = end // gap
            if all(old[_END] // gap != bucket for old in merged):
                _Index.add(state, index, bucket, group)
                if bounds[_LOW] is None or bucket < bounds[_LOW]:
                    bounds[_LOW] = bucket
                if bounds[_HIGH] is None or bucket > bounds[_HIGH]:
                    bounds[_HIGH] = bucket
            if bounds[_EARLIEST] is None or end < bounds[_EARLIEST]:
                bounds[_EARLIEST] = end
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
            if session[_END] < close:
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
        low, high = bounds[_LOW], bounds[_HIGH]
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
                ends = [s[_END] for s in live if s[_END] // gap == bucket]
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
            bounds[_LOW] = bucket
            bounds[_EARLIEST] = (bucket + 1) * gap if earliest is None else earliest


class DictState(dict):
    """:class:`WindowState` on a plain dict: one per input partition in tests and harnesses."""

    def set(self, key: str, value: Any) -> None:
        self[key] = value

    def delete(self, key: str) -> None:
        self.pop(key, None)
