"""The local stage of two-phase (local-global) windowed aggregation, independent of Quix Streams.

Under ``--emit cached`` the window results of a cache period are coalesced anyway, so there is
no need to send every record across the repartition by group. As Flink SQL's mini-batch
local-global aggregation does, each INPUT partition first folds its records per (group, window)
for the cache period, and only those partial aggregates cross the repartition; the global step
(:meth:`~streams.operators.window_engine.WindowEngine.process_partial`) merges them. Counts and
sums add, an average carries its sum and count (whatever the aggregate's accumulator is, its
``merge`` combines two), and a session is a partial interval that the global step merges with
its sessions by the gap, retracting the ones merged away as records would have.

The final results are those of one-phase aggregation: a window's accumulator is the merge of
its records' wherever they were folded, and sessions are the same because two partial
intervals within the gap of each other always hold two records within the gap of each other.
Which records are late is judged in the global step, on partials (at their max event time):
stream time is per repartition partition in both paths, but it advances by partials here, so
records within grace of a window's close may be judged otherwise than one by one. With the
default grace (24 h - size) that does not arise.

API::

    local = LocalAggregator(engine)           # the engine of the global step: specs, aggregate
    batches = local.add(state, group, value, timestamp)   # [] until the cache period ends
    batches += local.flush_due(state, ahead_ms)  # on the clock (ahead_ms: at a commit)
    for batch in batches:                      # one per group: produce it keyed by batch.group
        batch["partials"]                      # [[spec, start, end, acc, max event time], ...]

``state`` is the engine's :class:`~streams.operators.window_engine.WindowState` of ONE input
partition; what it holds is only the current period's partials (at most
:data:`~streams.operators.window_engine.MAX_PENDING` windows, or
:data:`MAX_GROUP_CHARS_PENDING` characters of group keys, before they are sent early), and
it commits with the partials produced and the input offsets, so a crash neither loses a partial
nor sends one twice.
"""

from __future__ import annotations

from typing import Any

from streams.operators.window_engine import (
    MAX_PENDING,
    Partial,
    WindowEngine,
    WindowState,
    check_group,
    first_start,
    within_gap,
)

#: The partition's one entry: [last flush (wall-clock ms), windows pending, {group: windows},
#: characters of the groups] where a group's windows map "{spec}|{start}" -> its partial, and
#: "{spec}|s" -> the partials of its sessions.
_KEY = "local"
_FLUSHED, _COUNT, _GROUPS, _CHARS = range(4)
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
    """Folds one input partition's records per group and window until the cache period ends."""

    def __init__(self, engine: WindowEngine) -> None:
        self._aggregate = engine.aggregate
        self._cache_ms = engine.cache_ms
        self._clock = engine.clock
        self._plan = [
            (index, spec.size_ms, spec.advance_ms, spec.gap_ms)
            for index, spec in enumerate(engine.specs)
        ]

    def add(self, state: WindowState, group: str, value: Any, timestamp: int) -> list[PartialBatch]:
        """Fold a record into its windows; the period's batches once it has ended, else []."""
        check_group(group)
        entry = state.get(_KEY)
        if entry is None:
            # Sent at the first period's end, not at the first record: a partition's first
            # records are a burst (a restart, a backlog) more often than not.
            entry = [int(self._clock() * 1000), 0, {}, 0]
        windows = entry[_GROUPS].get(group)
        if windows is None:
            windows = entry[_GROUPS][group] = {}
            entry[_CHARS] += len(group)
        agg = self._aggregate
        for index, size, advance, gap in self._plan:
            if gap:
                key = f"{index}|s"
                sessions = windows.get(key)
                if sessions is None:
                    windows[key] = [_new(index, timestamp, timestamp, agg, value, timestamp)]
                    entry[_COUNT] += 1
                else:
                    entry[_COUNT] += _merge_session(sessions, index, timestamp, gap, value, agg)
                continue
            start = first_start(timestamp, size, advance)
            while start <= timestamp:
                key = f"{index}|{start}"
                partial = windows.get(key)
                if partial is None:
                    windows[key] = _new(index, start, start + size, agg, value, timestamp)
                    entry[_COUNT] += 1
                else:
                    partial[_ACC] = agg.add(partial[_ACC], value)
                    if timestamp > partial[_MAX_TS]:
                        partial[_MAX_TS] = timestamp
                start += advance
        state.set(_KEY, entry)
        return self._due(state, entry)

    def flush_due(self, state: WindowState, ahead_ms: int = 0) -> list[PartialBatch]:
        """On the clock: the batches of a period that has ended (or ends within ``ahead_ms``:
        see :meth:`WindowEngine.flush_due`), for a partition gone quiet."""
        entry = state.get(_KEY)
        if entry is None or not entry[_COUNT]:
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
        batches = []
        for group, windows in entry[_GROUPS].items():
            partials: list[Partial] = []
            for key, window in windows.items():
                if key.endswith("|s"):
                    partials.extend(window)
                else:
                    partials.append(window)
            batch = PartialBatch(group=group, partials=partials)
            batch.group = group
            batch.timestamp = max(p[_MAX_TS] for p in partials)
            batches.append(batch)
        state.set(_KEY, [now_ms, 0, {}, 0])
        return batches


def _new(index: int, start: int, end: int, agg: Any, value: Any, timestamp: int) -> Partial:
    return [index, start, end, agg.add(agg.init(), value), timestamp]


def _merge_session(
    sessions: list[list], index: int, timestamp: int, gap: int, value: Any, agg: Any
) -> int:
    """Fold a record into a group's partial sessions by the gap (a session's max event time is
    its end); returns the change in their number."""
    merged = [s for s in sessions if within_gap(s[_START], s[_END], timestamp, timestamp, gap)]
    if not merged:
        sessions.append(_new(index, timestamp, timestamp, agg, value, timestamp))
        return 1
    head = merged[0]
    for other in merged[1:]:
        head[_START] = min(head[_START], other[_START])
        head[_END] = max(head[_END], other[_END])
        head[_ACC] = agg.merge(head[_ACC], other[_ACC])
        sessions.remove(other)
    head[_START] = min(head[_START], timestamp)
    head[_END] = head[_MAX_TS] = max(head[_END], timestamp)
    head[_ACC] = agg.add(head[_ACC], value)
    return 1 - len(merged)
