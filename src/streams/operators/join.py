"""The stream-table join, as ksqlDB's: each stream record meets the table row current then.

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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quixstreams.dataframe import StreamingDataFrame

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
