"""A filtered table: ksqlDB's ``CREATE TABLE ... AS SELECT * FROM t WHERE ...``.

The input is a table's changelog (the latest row per key; a deletion as a marker), the output
is a table too, per key. Per key the operator remembers (in changelogged state) whether the
key is in the output table:

- a row that passes the filter is emitted (insert or update);
- a row that fails it, or a deletion, emits a tombstone if the key was in the table, so
  downstream joins forget it, and nothing if it never was (no tombstone for a key the output
  table never had).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quixstreams.dataframe import StreamingDataFrame
from quixstreams.models.serializers import JSONSerializer
from quixstreams.models.serializers.base import SerializationContext


class _Skip:
    """The step's "emit nothing" (None would be a tombstone)."""


SKIP = _Skip()


def table_filter(
    passes: Callable[[dict[str, Any]], bool],
    on_filtered: Callable[[dict[str, Any]], None] | None = None,
) -> Callable[..., dict[str, Any] | _Skip | None]:
    """The stateful step: a row (a dict, or anything else for a deletion) -> the output row,
    a tombstone (None), or :data:`SKIP`. ``on_filtered`` hears of each row the filter keeps
    out of a table it was never in."""

    def step(
        row: Any, _key: Any, _ts: int, _headers: Any, state: Any
    ) -> dict[str, Any] | _Skip | None:
        if isinstance(row, dict) and passes(row):
            state.set("in_table", True)
            return row
        if state.get("in_table"):
            state.delete("in_table")
            return None
        if isinstance(row, dict) and on_filtered is not None:
            on_filtered(row)
        return SKIP

    return step


def filtered_table(rows: StreamingDataFrame, step: Callable[..., Any]) -> StreamingDataFrame:
    """``rows`` through ``step`` (:func:`table_filter`): the output table's records, key as
    received. Table rows are no one record's, so the input's headers are not passed on."""
    out = rows.apply(step, stateful=True, metadata=True)
    out = out.filter(lambda value: value is not SKIP)
    return out.set_headers(lambda _value, _key, _ts, _headers: [])


class TombstoneJSONSerializer(JSONSerializer):
    """JSON, except that None is a real tombstone (no value), not the text ``null``."""

    def __call__(self, value: Any, ctx: SerializationContext) -> bytes | None:
        return None if value is None else super().__call__(value, ctx)
