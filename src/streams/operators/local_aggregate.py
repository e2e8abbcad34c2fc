"""The local stage of two-phase (local-global) windowed aggregation, independent of Quix Streams.

Under ``--emit cached`` the window results of a cache period are coalesced anyway, so there is
no need to send every record across the repartition by group. As Flink SQL's mini-batch
local-global aggregation does, each INPUT partition first folds its records per (group, window)
for the cache period, and only those partial aggregates cross the repartition; the global step
(:meth:`~streams.operators.window_engine.WindowEngine.process_partial`) merges them. Counts and
sums add, an average carries its sum and count (whatever the aggregate's accumulator is, its
``merge`` combines two), and a session is a partial interval that the global step merges with
its sessions by the gap, retracting the ones merged away as records would have.

A record is folded into one *slice* of time, not into each of its windows: slices are
``gcd`` of every window size, advance and session gap wide and aligned on the epoch, so every
record of a slice falls in the same time windows, and all of them in one session (they are
less than a gap apart). A page view in five hopping windows, a tumbling one and a session
costs one ``add`` instead of seven; at the end of the period each slice's accumulator is
merged into its windows, and the slices' intervals into sessions by the gap (two intervals
within the gap of each other hold two records within the gap of each other, so the sessions
are the records' own). Slicing is exact because a splittable aggregate's ``merge`` of folded
records is their fold (see :class:`~streams.operators.window_engine.Aggregate`).

The final results are those of one-phase aggregation: a window's accumulator is the merge of
its records' wherever they were folded. Which records are late is judged in the global step,
on partials (at their max event time): stream time is per repartition partition in both
paths, but it advances by partials here, so records within grace of a window's close may be
judged otherwise than one by one. With the default grace (24 h - size) that does not arise.

API::

    local = LocalAggregator(engine)           # the engine of the global step: specs, aggregate
    batches = local.add(state, group, value, timestamp)   # [] until the cache period ends
    batches += local.flush_due(state, ahead_ms)  # on the clock (ahead_ms: at a commit)
    for batch in batches:                      # one per group: produce it keyed by batch.group
        batch["partials"]                      # [[spec, start, end, acc, max event time], ...]

``state`` is the engine's :class:`~streams.operators.window_engine.WindowState` of ONE input
partition; what it holds is only the current period's slices (as many as make at most
:data:`~streams.operators.window_engine.MAX_PENDING` windows, or
:data:`MAX_GROUP_CHARS_PENDING` characters of group keys, before they are sent early), and
it commits with the partials produced and the input offsets, so a crash neither loses a partial
nor sends one twice.
"""

from __future__ import annotations

import math
from copy import deepcopy
from operator import itemgetter
from typing import Any

from streams.operators.window_engine import (
    MAX_PENDING,
    Partial,
    WindowEngine,
    WindowState,
    check_group,
    first_start,
)

#: The partition's one entry: [last flush (wall-clock ms), windows pending (at most), {group:
#: slices}, characters of the groups], where a group's slices map "{slice start}" ->
#: [accumulator, min event time, max event time].
_KEY = "slices"
_FLUSHED, _COUNT, _GROUPS, _CHARS = range(4)
_S_ACC, _S_LOW, _S_HIGH = range(3)
#: The entry before slices held the partials themselves, {group: {"{spec}|{start}": partial,
#: "{spec}|s": [partials]}} in the same layout; a partition's first record or flush after an
#: upgrade sends what it held as it is.
_LEGACY_KEY = "local"
#: Characters of group keys pending before the partials are sent early: the entry is one state
#: value (one changelog record), which must stay far below Kafka's 1 MB message limit however
#: long the keys (up to MAX_GROUP_CHARS each).
MAX_GROUP_CHARS_PENDING = 256 * 1024
_START, _END, _ACC, _MAX_TS = range(1, 5)  # in a Partial, after its spec


class PartialBatch(dict):
    """A group's partials of one period, as produced: ``{"group": ..., "partials": [...]}``,
    with ``group`` (the record key) and ``timestamp`` (its latest event time) as slots."""

    __slots__ = ("group", "timestamp")


class LocalAggregator:
    """Folds one input partition's records per group and slice until the cache period ends."""

    def __init__(self, engine: WindowEngine) -> None:
        self._aggregate = engine.aggregate
        self._cache_ms = engine.cache_ms
        self._clock = engine.clock
        specs = list(enumerate(engine.specs))
        self._slice_ms = math.gcd(
            *(ms for _i, s in specs for ms in (s.size_ms, s.advance_ms, s.gap_ms) if ms)
        )
        self._time_plan = [(i, s.size_ms, s.advance_ms) for i, s in specs if not s.gap_ms]
        self._session_plan = [(i, s.gap_ms) for i, s in specs if s.gap_ms]
        #: The most windows a new slice can add: what counts toward MAX_PENDING.
        self._windows_per_slice = len(self._session_plan) + sum(
            -(-size // advance) for _i, size, advance in self._time_plan
        )

    def add(self, state: WindowState, group: str, value: Any, timestamp: int) -> list[PartialBatch]:
        """Fold a record into its slice; the period's batches once it has ended, else []."""
        check_group(group)
        entry = state.get(_KEY)
        slices = None if entry is None else entry[_GROUPS].get(group)
        key = str(timestamp - timestamp % self._slice_ms)
        folded = None if slices is None else slices.get(key)
        agg = self._aggregate
        # Folded before the entry changes: a record the aggregate refuses is dead-lettered
        # and its transaction commits, which must then hold the state as it was.
        acc = agg.add(agg.init() if folded is None else folded[_S_ACC], value)
        legacy: list[PartialBatch] = []
        if entry is None:
            # Sent at the first period's end, not at the first record: a partition's first
            # records are a burst (a restart, a backlog) more often than not.
            entry = [int(self._clock() * 1000), 0, {}, 0]
            legacy = _legacy_batches(state)
        if slices is None:
            slices = entry[_GROUPS][group] = {}
            entry[_CHARS] += len(group)
        if folded is None:
            slices[key] = [acc, timestamp, timestamp]
            entry[_COUNT] += self._windows_per_slice
        else:
            folded[_S_ACC] = acc
            if timestamp < folded[_S_LOW]:
                folded[_S_LOW] = timestamp
            elif timestamp > folded[_S_HIGH]:
                folded[_S_HIGH] = timestamp
        state.set(_KEY, entry)
        due = self._due(state, entry)
        return legacy + due if legacy else due

    def flush_due(self, state: WindowState, ahead_ms: int = 0) -> list[PartialBatch]:
        """On the clock: the batches of a period that has ended (or ends within ``ahead_ms``:
        see :meth:`WindowEngine.flush_due`), for a partition gone quiet."""
        entry = state.get(_KEY)
        if entry is None:
            return _legacy_batches(state)
        if not entry[_COUNT]:
            return []
        return self._due(state, entry, ahead_ms)

    def _due(self, state: WindowState, entry: list, ahead_ms: int = 0) -> list[PartialBatch]:
        now_ms = int(self._clock() * 1000)
        if (
            now_ms + ahead_ms - entry[_FLUSHED] < self._cache_ms
            and entry[_COUNT] < MAX_PENDING
            and entry[_CHARS] < MAX_GROUP_CHARS_PENDING
        ):
            return []
        # A group may have no partial: records before the epoch are in no time window.
        batches = [
            _batch(group, partials)
            for group, slices in entry[_GROUPS].items()
            if (partials := self._partials(slices))
        ]
        state.set(_KEY, [now_ms, 0, {}, 0])
        return batches

    def _partials(self, slices: dict[str, list]) -> list[Partial]:
        """A group's slices merged into the partials of their windows and sessions. Each
        partial gets a copy of an accumulator: ``add`` and ``merge`` may change the one they
        are given, and a slice's goes into several windows."""
        merge = self._aggregate.merge
        windows: dict[tuple[int, int], Partial] = {}
        for acc, low, high in slices.values():
            for index, size, advance in self._time_plan:
                start = first_start(low, size, advance)  # the same for the whole slice
                while start <= low:
                    window = windows.get((index, start))
                    if window is None:
                        windows[index, start] = [index, start, start + size, deepcopy(acc), high]
                    else:
                        window[_ACC] = merge(window[_ACC], deepcopy(acc))
                        window[_MAX_TS] = max(window[_MAX_TS], high)
                    start += advance
        partials = list(windows.values())
        if self._session_plan:
            ordered = sorted(slices.values(), key=itemgetter(_S_LOW))
            for index, gap in self._session_plan:
                session: Partial | None = None
                for acc, low, high in ordered:  # disjoint slices: ends ascend with starts
                    if session is not None and low - session[_END] <= gap:
                        session[_ACC] = merge(session[_ACC], deepcopy(acc))
                        session[_END] = session[_MAX_TS] = high
                    else:
                        session = [index, low, high, deepcopy(acc), high]
                        partials.append(session)
        # In event time, as the records would have come in order: stream time in the global
        # step then advances by each partial as little as it can.
        partials.sort(key=itemgetter(_MAX_TS))
        return partials


def _batch(group: str, partials: list[Partial]) -> PartialBatch:
    batch = PartialBatch(group=group, partials=partials)
    batch.group = group
    batch.timestamp = max(p[_MAX_TS] for p in partials)
    return batch


def _legacy_batches(state: WindowState) -> list[PartialBatch]:
    """What a partition held in the layout before slices, as it is, once."""
    entry = state.get(_LEGACY_KEY)
    if entry is None:
        return []
    state.delete(_LEGACY_KEY)
    return [
        _batch(group, [p for key, w in windows.items() for p in (w if key.endswith("|s") else [w])])
        for group, windows in entry[_GROUPS].items()
    ]
