"""ksqlDB's joins: stream-table, stream-stream (windowed) and table-table (on the primary key).

The stream-table join (:func:`join_step`, :func:`stream_table_join`): each stream record meets
the table row current then.

Both sides must be keyed alike and co-partitioned (the stream re-keyed by the join column, as
ksqlDB's repartition topic is). They are merged into ONE stateful step keyed by that key: a
table record sets (or, as a tombstone, removes) the row in state and emits nothing; a stream
record reads the row the state holds at that moment, so a later change of the row never
rewrites earlier results. Quix Streams processes merged topics in timestamp order per
partition (as Kafka Streams does), so the result depends on the records' timestamps, not on
arrival races: a stream record sees the table rows whose record time is <= its own.

A stream record whose key is not in the table: a LEFT join gives it the ``missing`` values; an
INNER join leaves it out and returns it as :class:`Excluded`, with the reason, for the
processor's late topic. Either way it is reported and never lost.

:func:`stream_stream_join` and :func:`table_table_join` (see their docstrings for the exact
semantics) have Kafka Streams' ``KStream#join`` over ``JoinWindows`` and ``KTable#join``
semantics as ksqlDB builds them (``StreamStreamJoinBuilder``, ``TableTableJoinBuilder``); their
results are :class:`Joined` and, for tables, :class:`JoinedDeletion`. As for the stream-table
join, both inputs must be keyed by the join key and co-partitioned; they are merged into one
stateful step.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from quixstreams.dataframe import StreamingDataFrame

from streams import quix
from streams.operators.window_aggregate import CachedState
from streams.operators.window_engine import DAY_MS, WindowState

JOINS = ("left", "inner")
TABLE, STREAM = 0, 1  # sides of the merged stream, for join_step


class Excluded(dict):
    """A stream record an INNER join leaves out: ``{<stream_name>: record, "reason": ...}``. A
    type of its own, so no field of a record can be taken for it."""


def join_step(
    join: str,
    missing: dict[str, Any],
    on_missing: Callable[[str, Any], None] | None = None,
    stream_name: str = "record",
    table_name: str = "row",
    state_key: str = "row",
) -> Callable[..., list[Any]]:
    """One call per merged ``(side, value)`` record -> the joined records (0 or 1).

    ``missing`` names the table columns a stream record takes, with the values a LEFT join
    gives one whose key is not in the table; ``on_missing(key, value)`` hears of each such
    record. ``stream_name`` and ``table_name`` word an INNER join's :class:`Excluded`;
    ``state_key`` names the row's entry in state (part of the stored layout).
    """
    if join not in JOINS:
        raise ValueError(f"join must be one of {JOINS}, got {join!r}")

    def step(tagged: tuple[int, Any], key: str, _ts: int, _headers: Any, state: Any) -> list:
        side, value = tagged
        if side == TABLE:
            if value is None:
                state.delete(state_key)
            else:
                state.set(state_key, {column: value.get(column) for column in missing})
            return []
        row = state.get(state_key)
        if row is None:
            if on_missing is not None:
                on_missing(key, value)
            if join == "inner":
                reason = f"no {table_name} {key} (INNER join)"
                return [Excluded({stream_name: value, "reason": reason})]
            row = missing
        return [{**value, **row}]

    return step


def stream_table_join(
    stream: StreamingDataFrame,
    table: StreamingDataFrame,
    step: Callable[..., list[Any]],
) -> tuple[StreamingDataFrame, StreamingDataFrame]:
    """``stream`` joined with ``table`` by ``step`` (from :func:`join_step`): the joined
    records, and the stream records an INNER join excluded (:class:`Excluded`)."""
    merged = stream.apply(lambda value: (STREAM, value)).concat(
        table.apply(lambda row: (TABLE, row))
    )
    joined = merged.apply(step, stateful=True, metadata=True, expand=True)
    excluded = joined.filter(lambda value: isinstance(value, Excluded))
    return joined.filter(lambda value: not isinstance(value, Excluded)), excluded


# --- stream-stream and table-table joins -------------------------------------------------------

KINDS = ("inner", "left", "right", "outer")


@dataclass(frozen=True, slots=True)
class Joined:
    """A join result: each side's row (None: that side did not match), the output record's
    timestamp, and its key (the join key: produce with it, see :func:`stream_stream_join`)."""

    left: dict[str, Any] | None
    right: dict[str, Any] | None
    timestamp: int
    key: Any


@dataclass(frozen=True, slots=True)
class JoinedDeletion:
    """A table-table join's tombstone for ``key``: the joined row is gone."""

    timestamp: int
    key: Any


def _as_is(row: Any) -> Any:
    return row


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"join kind must be one of {KINDS}, got {kind!r}")


# Kafka Streams' sides of a join: "this" (the stream ``join`` is called on) and "other". ksqlDB
# builds a RIGHT join as ``right.leftJoin(left)``, so there "this" is the right input.
_THIS, _OTHER = 0, 1


def _sides(kind: str) -> tuple[int, int]:
    """The Kafka Streams sides of (left input, right input)."""
    return (_OTHER, _THIS) if kind == "right" else (_THIS, _OTHER)


def _merged(left: StreamingDataFrame, right: StreamingDataFrame, kind: str) -> StreamingDataFrame:
    """Both inputs as one dataframe of ``(side, value)``, sides as Kafka Streams has them."""
    left_side, right_side = _sides(kind)
    return left.apply(lambda value: (left_side, value)).concat(
        right.apply(lambda value: (right_side, value))
    )


#: Where a Quix transaction carries the joins' partition-scoped state (see _partition_state).
_STATES_ATTRIBUTE = "_pageview_streams_join_states"


def _partition_state(state: Any, name: str) -> CachedState:
    """Join ``name``'s partition-scoped state behind a stateful step's key-scoped ``state``.

    Stream time is per partition and an arriving record emits other keys' expired results, so
    the join needs partition scope, as the window engine does (and, for the same reason,
    caches it for the transaction's lifetime: see
    :func:`~streams.operators.window_aggregate.cached_state`). Each join has a prefix of its
    own, so two joins, or a join and a window aggregation, on one dataframe never share it.
    """
    transaction = quix.key_transaction(state)
    states: dict[str, CachedState] | None = getattr(transaction, _STATES_ATTRIBUTE, None)
    if states is None:
        states = {}
        setattr(transaction, _STATES_ATTRIBUTE, states)
    cached = states.get(name)
    if cached is None:
        cached = states[name] = CachedState(transaction.as_state(prefix=f"join|{name}"))
        quix.before_prepare(transaction, cached.flush)
    return cached


def _token(key: Any) -> str:
    """A join key as text for state keys, ordered as Kafka orders the key's bytes."""
    if isinstance(key, bytes):
        return "b" + key.hex()  # hex keeps byte order
    if isinstance(key, str):
        return "s" + key  # code point order is UTF-8 byte order
    raise TypeError(f"join keys must be bytes or str, got {type(key).__name__}")


def _untoken(token: str) -> bytes | str:
    return bytes.fromhex(token[1:]) if token[0] == "b" else token[1:]


#: Characters of items per page of a paged list in state (a page is one state value).
PAGE_CHARS = 32_768


class _Pages:
    """A list in state, paged so that no state value grows with it: a head ``name`` ->
    ``[pages, characters in the last page]`` and pages ``name|{n}``."""

    @staticmethod
    def add(state: WindowState, name: str, item: Any, size: int) -> None:
        head = state.get(name)
        if head is None or head[1] + size > PAGE_CHARS:
            head = [1 if head is None else head[0] + 1, 0]
            page: list[Any] = []
        else:
            page = state.get(f"{name}|{head[0] - 1}") or []
        page.append(item)
        head[1] += size
        state.set(f"{name}|{head[0] - 1}", page)
        state.set(name, head)

    @staticmethod
    def pop(state: WindowState, name: str) -> list[Any]:
        """Every item, in order of insertion; the list is deleted."""
        head = state.get(name)
        if head is None:
            return []
        items = []
        for number in range(head[0]):
            items.extend(state.get(f"{name}|{number}") or [])
            state.delete(f"{name}|{number}")
        state.delete(name)
        return items


#: Bucket width of the outer-join store's index: the bucket that closes only in part is read
#: again by each emission pass, so it is kept small.
OUTER_BUCKET_MS = 1000
#: Narrowest bucket of the window stores, so that tiny windows do not make a bucket per ms.
MIN_WINDOW_BUCKET_MS = 1000

# Stored layout of the stream-stream join (JSON lists, positional; the names are only here):
#: The partition's entry "m": stream time (both sides), per side the side's own stream time,
#: per side the [low, high] bucket of its window store, per side a lower bound of the earliest
#: timestamp in the outer-join store, and the [low, high] bucket of that store's index.
_TIME, _SIDE_TIMES, _WINDOW_BOUNDS, _OUTER_MINS, _OUTER_BOUNDS = range(5)
#: A record in a window store is [timestamp, dump(row)], in entry "w{side}|{token}|{bucket}"
#: (sorted by timestamp; the token is the key's, see _token); which keys have an entry in a
#: bucket is the paged list "w{side}#{bucket}". A table join's row is [timestamp, dump(row)] too.
_TS, _ROW = 0, 1
#: The outer-join store orders its entries as Kafka Streams' does: timestamp, then the other
#: side before this side, then the key's bytes. Entry "o|{ts}|{rank}|{token}" -> [dump(row),
#: ...]; the paged list "o#{bucket}" has an item [ts, rank, token] per entry.
_RANK = {_OTHER: 0, _THIS: 1}
_SIDE_OF_RANK = {0: _OTHER, 1: _THIS}


class _StreamJoin:
    """Kafka Streams' ``KStreamKStreamJoin`` (both sides' processors, their window stores and
    the outer-join store) on a partition-scoped :class:`WindowState`; sides as :data:`_THIS`,
    :data:`_OTHER`. See :func:`stream_stream_join` for the semantics."""

    def __init__(
        self,
        kind: str,
        before_ms: int,
        after_ms: int,
        grace_ms: int | None,
        dump: Callable[[Any], Any],
        load: Callable[[Any], Any],
    ) -> None:
        _check_kind(kind)
        for what, ms in (("before", before_ms), ("after", after_ms), ("grace", grace_ms)):
            if ms is not None and ms < 0:
                raise ValueError(f"{what} must be >= 0 ms, got {ms}")
        self.swapped = kind == "right"
        #: Which sides emit a record that matches nothing (Kafka Streams' leftOuter, rightOuter).
        self.outer = (kind != "inner", kind == "outer")
        # JoinWindows.of (no GRACE PERIOD) keeps the old default grace and the old behaviour
        # (no outer-join store: an unmatched record is emitted at once); ofTimeDifferenceAndGrace
        # enables the store (KAFKA-10847), which INNER joins never have.
        self.grace = max(DAY_MS - 2 * before_ms, 0) if grace_ms is None else grace_ms
        self.held = grace_ms is not None and kind != "inner"
        self.retention = before_ms + after_ms + self.grace
        #: Per side: how far back and ahead of its timestamp a record looks for the other side's.
        self.reach = ((before_ms, after_ms), (after_ms, before_ms))
        self.width = max(before_ms + after_ms, MIN_WINDOW_BUCKET_MS)
        self.dump, self.load = dump, load

    def process(self, state: WindowState, side: int, key: Any, value: Any, ts: int) -> list[Joined]:
        """One record of ``side`` -> the join results, in Kafka Streams' order."""
        meta = state.get("m") or [-1, [-1, -1], [[None, None], [None, None]], [None, None], None]
        if ts > meta[_TIME]:
            meta[_TIME] = ts  # advanced before anything is skipped, as Kafka Streams does
        out: list[Joined] = []
        if key is None or value is None:
            # KIP-962: an outer side's record without a key cannot join, but is not lost.
            if key is None and value is not None and self.outer[side]:
                out.append(self._joined(side, value, None, ts, None))
            state.set("m", meta)
            return out
        token = _token(key)
        if self.held and ts == meta[_TIME]:
            self._emit_closed(state, meta, out)
        before, after = self.reach[side]
        other = 1 - side
        end = ts + after
        # Kafka Streams' window stores hide what is older than their own stream time - retention.
        start = max(ts - before, meta[_SIDE_TIMES][other] - self.retention + 1)
        matched = False
        for other_ts, row in self._fetch(state, other, token, start, end):
            matched = True
            if self.held:
                entry = f"o|{other_ts}|{_RANK[other]}|{token}"
                if state.get(entry) is not None:
                    state.delete(entry)  # it has a match: no null-padded result for it
            out.append(self._joined(side, value, self.load(row), max(ts, other_ts), key))
        if not matched and self.outer[side]:
            if not self.held or end < meta[_TIME]:
                out.append(self._joined(side, value, None, ts, key))
            else:
                self._hold(state, meta, side, token, ts, value)
        self._store(state, meta, side, token, ts, value)
        state.set("m", meta)
        return out

    def _joined(self, side: int, this: Any, other: Any, ts: int, key: Any) -> Joined:
        first, second = (this, other) if side == _THIS else (other, this)
        return Joined(second, first, ts, key) if self.swapped else Joined(first, second, ts, key)

    # -- window stores ----------------------------------------------------------------------

    def _fetch(
        self, state: WindowState, side: int, token: str, start: int, end: int
    ) -> Iterator[list]:
        """``side``'s records of the key with ``start <= ts <= end``, in timestamp order (ties in
        arrival order)."""
        for bucket in range(start // self.width, end // self.width + 1):
            for record in state.get(f"w{side}|{token}|{bucket}") or []:
                if start <= record[_TS] <= end:
                    yield record

    def _store(
        self, state: WindowState, meta: list, side: int, token: str, ts: int, value: Any
    ) -> None:
        """Keep the record for the other side, unless it is already older than retention."""
        times = meta[_SIDE_TIMES]
        if ts > times[side]:
            times[side] = ts
        horizon = times[side] - self.retention  # records at or before it are gone
        if ts > horizon:
            bucket = ts // self.width
            name = f"w{side}|{token}|{bucket}"
            records = state.get(name)
            if records is None:
                records = []
                _Pages.add(state, f"w{side}#{bucket}", token, len(token) + 4)
                bounds = meta[_WINDOW_BOUNDS][side]
                if bounds[0] is None or bucket < bounds[0]:
                    bounds[0] = bucket
                if bounds[1] is None or bucket > bounds[1]:
                    bounds[1] = bucket
            bisect.insort_right(records, [ts, self.dump(value)], key=lambda r: r[_TS])
            state.set(name, records)
        self._purge(state, meta, side, horizon)

    def _purge(self, state: WindowState, meta: list, side: int, horizon: int) -> None:
        """Delete the buckets of ``side``'s window store whose every record is expired."""
        bounds = meta[_WINDOW_BOUNDS][side]
        bucket, high = bounds
        if bucket is None or (bucket + 1) * self.width - 1 > horizon:
            return
        while bucket <= high and (bucket + 1) * self.width - 1 <= horizon:
            for token in _Pages.pop(state, f"w{side}#{bucket}"):
                state.delete(f"w{side}|{token}|{bucket}")
            bucket += 1
        bounds[:] = [None, None] if bucket > high else [bucket, high]

    # -- the outer-join store (GRACE PERIOD given) ------------------------------------------

    def _hold(
        self, state: WindowState, meta: list, side: int, token: str, ts: int, value: Any
    ) -> None:
        """Keep an unmatched record until its window closes (or a match deletes it)."""
        rank = _RANK[side]
        name = f"o|{ts}|{rank}|{token}"
        rows = state.get(name)
        if rows is None:
            rows = []
            bucket = ts // OUTER_BUCKET_MS
            _Pages.add(state, f"o#{bucket}", [ts, rank, token], len(token) + 24)
            bounds = meta[_OUTER_BOUNDS]
            if bounds is None:
                meta[_OUTER_BOUNDS] = [bucket, bucket]
            else:
                bounds[0], bounds[1] = min(bounds[0], bucket), max(bounds[1], bucket)
        rows.append(self.dump(value))
        state.set(name, rows)
        mins = meta[_OUTER_MINS]
        if mins[side] is None or ts < mins[side]:
            mins[side] = ts

    def _emit_closed(self, state: WindowState, meta: list, out: list[Joined]) -> None:
        """Emit (null-padded, with their own key and timestamp) and delete the held records
        whose window has closed, in the outer-join store's order.

        A record of a side closes once ``ts + (its look-ahead) + grace < stream time``: no
        record of the other side can still match it.
        """
        time = meta[_TIME]
        close = [time - self.reach[side][1] - self.grace for side in (_THIS, _OTHER)]
        mins = meta[_OUTER_MINS]
        bounds = meta[_OUTER_BOUNDS]
        if bounds is None or all(m is None or m >= c for m, c in zip(mins, close, strict=True)):
            return
        low, high = bounds
        limit = max(close)
        kept_mins: list[int | None] = [None, None]
        first_kept = None
        bucket = low
        while bucket <= high and bucket * OUTER_BUCKET_MS < limit:
            name = f"o#{bucket}"
            kept = []
            for ts, rank, token in sorted({tuple(item) for item in _Pages.pop(state, name)}):
                entry = f"o|{ts}|{rank}|{token}"
                rows = state.get(entry)
                if rows is None:
                    continue  # matched since
                side = _SIDE_OF_RANK[rank]
                if ts < close[side]:
                    state.delete(entry)
                    key = _untoken(token)
                    for row in rows:
                        out.append(self._joined(side, self.load(row), None, ts, key))
                else:
                    kept.append([ts, rank, token])
                    if kept_mins[side] is None:
                        kept_mins[side] = ts  # items are sorted: the first is the earliest
            for item in kept:
                _Pages.add(state, name, item, len(item[2]) + 24)
            if kept and first_kept is None:
                first_kept = bucket
            bucket += 1
        # Buckets not read may hold records of either side from their start on.
        rest = bucket * OUTER_BUCKET_MS if bucket <= high else None
        for side in (_THIS, _OTHER):
            mins[side] = kept_mins[side] if kept_mins[side] is not None else rest
        low = bucket if first_kept is None else first_kept
        meta[_OUTER_BOUNDS] = None if low > high else [low, high]


def stream_stream_join(
    left: StreamingDataFrame,
    right: StreamingDataFrame,
    *,
    kind: str,
    before_ms: int,
    after_ms: int,
    grace_ms: int | None,
    name: str,
    dump: Callable[[Any], Any] = _as_is,
    load: Callable[[Any], Any] = _as_is,
) -> StreamingDataFrame:
    """ksqlDB's ``left [kind] JOIN right WITHIN (before, after) [GRACE PERIOD grace]``:
    a dataframe of :class:`Joined`, each record's timestamp its ``timestamp``.

    Both inputs keyed by the join key (bytes or str; None: see below) and co-partitioned; values
    are row dicts. Rows are kept in state as ``dump(row)`` (JSON-serialisable) and read back
    with ``load``; the default keeps them as they are, for rows that are JSON already.

    - Window: ``WITHIN n`` is ``before = after = n``. A left record at ``ts`` joins the right
      records with a timestamp in ``[ts - before, ts + after]``, a right record the left ones in
      ``[ts - after, ts + before]``; a RIGHT join is ksqlDB's ``right.leftJoin(left)`` over the
      same window, so there the RIGHT record at ``ts`` joins the left ones in
      ``[ts - before, ts + after]``. A result's timestamp is the later of the two; a record's
      results come in the other side's timestamp order (ties in arrival order).
    - Retention: each side keeps its records for ``before + after + grace`` behind its own
      stream time (the latest timestamp of that side on the partition); an older record no
      longer joins, and one that old on arrival is not kept.
    - ``grace_ms=None`` (no GRACE PERIOD: Kafka Streams' ``JoinWindows.of``): grace is
      ``max(24 h - 2 * before, 0)`` and an outer side's record that matches nothing is emitted
      null-padded at once (and again with each later match).
    - ``grace_ms`` given: that record is held until its window closes (a left record once
      ``ts + after + grace < stream time``, a right one ``ts + before + grace``; stream time is
      the partition's, both sides), then emitted null-padded with its own key and timestamp,
      unless a match came first. Closed records are emitted when a record at or past stream
      time arrives, before its own results, in Kafka Streams' order: timestamp, then the right
      side's before the left's, then key bytes. A record whose window closed before it arrived
      is emitted null-padded at once.
    - A record without a key is emitted null-padded at once on an outer side (KIP-962), and
      dropped on the others; one without a value is dropped.

    The output record's key is the triggering record's (Quix cannot re-key without a
    repartition), and a held record's result is triggered by another key: produce with
    ``key=lambda joined: joined.key``. ``name`` names the join's state (unique per dataframe).
    """
    join = _StreamJoin(kind, before_ms, after_ms, grace_ms, dump, load)

    def step(tagged: tuple[int, Any], key: Any, ts: int, _headers: Any, state: Any) -> list:
        side, value = tagged
        return join.process(_partition_state(state, name), side, key, value, ts)

    joined = _merged(left, right, kind).apply(step, stateful=True, metadata=True, expand=True)
    return joined.set_timestamp(lambda out, _key, _ts, _headers: out.timestamp)


class _TableJoin:
    """Kafka Streams' ``KTableKTable{Inner,Left,Right,Outer}Join`` processors of both sides on
    a key-scoped state (entries ``"{name}|this"``, ``"{name}|other"``: each side's row);
    sides as :data:`_THIS`, :data:`_OTHER`. See :func:`table_table_join`."""

    def __init__(
        self, kind: str, name: str, dump: Callable[[Any], Any], load: Callable[[Any], Any]
    ) -> None:
        _check_kind(kind)
        self.swapped = kind == "right"
        self.kind = "left" if self.swapped else kind  # ksqlDB: right.leftJoin(left)
        self.names = (f"{name}|this", f"{name}|other")
        self.dump, self.load = dump, load

    def process(
        self, state: Any, side: int, key: Any, row: Any, ts: int
    ) -> list[Joined | JoinedDeletion]:
        """One update of ``side`` (a row, or None for a tombstone) -> 0 or 1 results."""
        if key is None:
            return []  # Kafka Streams drops table records without a key
        mine = self.names[side]
        old = state.get(mine)
        if row is None:
            if old is not None:
                state.delete(mine)
        else:
            state.set(mine, [ts, self.dump(row)])
        stored = state.get(self.names[1 - side])
        other = None if stored is None else self.load(stored[_ROW])
        if stored is None:
            # Inner joins, and the right side of a left join, need the other row; a left or
            # outer side emits without it unless nothing was there and nothing is now.
            if self.kind == "inner" or (self.kind == "left" and side == _OTHER):
                return []
            if row is None and old is None:
                return []
            ts_out = ts
        else:
            ts_out = max(ts, stored[_TS])
        if row is None:
            # A tombstone deletes the joined row, except where the result keeps a row: the
            # right side of a left join (the left row), or an outer join's other row.
            keeps = (self.kind == "left" and side == _OTHER) or (
                self.kind == "outer" and other is not None
            )
            if not keeps:
                return [JoinedDeletion(ts_out, key)]
        first, second = (row, other) if side == _THIS else (other, row)
        if self.swapped:
            first, second = second, first
        return [Joined(first, second, ts_out, key)]


def table_table_join(
    left: StreamingDataFrame,
    right: StreamingDataFrame,
    *,
    kind: str,
    name: str,
    dump: Callable[[Any], Any] = _as_is,
    load: Callable[[Any], Any] = _as_is,
) -> StreamingDataFrame:
    """ksqlDB's ``left [kind] JOIN right ON left.pk = right.pk`` of two tables: a dataframe of
    :class:`Joined` and :class:`JoinedDeletion`, each record's timestamp its ``timestamp``.

    Both inputs keyed by the primary key and co-partitioned; a value is the row (a dict) or None
    (a tombstone). Each update replaces (a tombstone: deletes) its side's row in state and
    meets the other side's current row, as Kafka Streams' KTable-KTable join processors:

    - inner: a result when the other row exists: joined, or a deletion if the update is a
      tombstone;
    - left: a left update gives (left, right or None), or a deletion if it is a tombstone;
      a right update gives (left, right or None) when the left row exists;
    - right: the mirror (ksqlDB builds it as ``right.leftJoin(left)``);
    - outer: either side's update gives the joined row while either row exists, and a
      deletion when the last one goes;
    - a tombstone of a row that did not exist, with no other row, gives nothing.

    A result's timestamp is the later of the update's and the other row's (the timestamp of
    the update that wrote it), or the update's without one. Rows are kept as ``dump(row)``,
    read back with ``load`` (see :func:`stream_stream_join`); ``name`` names the join's state
    (unique per dataframe). Records without a key are dropped.
    """
    join = _TableJoin(kind, name, dump, load)

    def step(tagged: tuple[int, Any], key: Any, ts: int, _headers: Any, state: Any) -> list:
        side, row = tagged
        return join.process(state, side, key, row, ts)

    joined = _merged(left, right, kind).apply(step, stateful=True, metadata=True, expand=True)
    return joined.set_timestamp(lambda out, _key, _ts, _headers: out.timestamp)
