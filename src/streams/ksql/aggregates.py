"""ksqlDB's aggregate functions, as the GROUP BY operators run them.

:func:`aggregate_function` turns a call such as ``SUM(x)`` or ``LATEST_BY_OFFSET(x, 2, false)``
into an :class:`AggregateSpec`: the expressions to evaluate per record (``inputs``; literal
parameters such as the ``2`` and ``false`` are read once), the accumulator's life cycle, and the
result type. An accumulator is plain JSON (lists, dicts, str, int, float, bool, None): it lives
in RocksDB state as JSON, so DECIMAL values are kept as strings, BYTES as base64 and
non-finite doubles as ``"NaN"``/``"Infinity"``. ``add``, ``undo`` and ``merge`` may change the
accumulator they are given and return the new one: callers keep only the returned value.

Semantics follow ksqlDB's UDAFs (``io.confluent.ksql.function.udaf``): SUM of INTEGER is an
INTEGER that wraps around, SUM of nothing is 0, AVG is a DOUBLE (0.0 for no values), NULL inputs
are skipped except by COLLECT_LIST/COLLECT_SET (which keep them) and the ``*_BY_OFFSET``
functions called with ``ignoreNulls`` false. ``undo`` (None for functions ksqlDB cannot apply
to a TABLE) takes back a row that a table update or delete replaced; ``merge`` combines the
accumulators of two session windows.
"""

from __future__ import annotations

import base64
import functools
import itertools
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Any

from streams.ksql.ast import Expr, FunctionCall, Literal, SqlType, Unary
from streams.ksql.errors import KsqlError
from streams.ksql.functions import (
    BIGINT,
    BOOLEAN,
    DOUBLE,
    INTEGER,
    STRING,
    array_type,
    map_type,
    quantum,
    wrap_int,
    wrap_long,
)

Acc = Any
Args = tuple[Any, ...]


@dataclass(frozen=True)
class AggregateSpec:
    """One aggregate call: evaluate ``inputs`` per record and pass their values as ``args``.

    ``intermediate_type`` is ksqlDB's type for the accumulator: a value format that cannot hold
    it (DELIMITED and a STRUCT, for AVG) makes ksqlDB reject the statement."""

    name: str
    inputs: tuple[Expr, ...]
    result_type: SqlType
    intermediate_type: SqlType
    init: Callable[[], Acc]
    add: Callable[[Acc, Args], Acc]
    merge: Callable[[Acc, Acc], Acc]
    result: Callable[[Acc], Any]
    undo: Callable[[Acc, Args], Acc] | None
    #: Whether ``merge`` of accumulators folded apart (on different input partitions) gives
    #: exactly what ``add`` of all their records would (a DOUBLE sum up to the order of its
    #: terms, which the arrival order at ksqlDB's repartition leaves open too): what two-phase
    #: aggregation needs.
    #: Not LATEST_BY_OFFSET (offsets of two partitions are not ordered), nor a DECIMAL SUM
    #: (``add`` fails a record at the overflow, ``merge`` could not say which).
    splittable: bool = False


_Factory = Callable[[FunctionCall, Sequence[SqlType | None]], AggregateSpec]
_FACTORIES: dict[str, _Factory] = {}


def is_aggregate(name: str) -> bool:
    return name.upper() in _FACTORIES


def aggregate_function(call: FunctionCall, arg_types: Sequence[SqlType | None]) -> AggregateSpec:
    """The aggregate ``call`` with the types of its arguments (``call.args``, in order)."""
    factory = _FACTORIES.get(call.name.upper())
    if factory is None:
        raise KsqlError(f"Can't find any functions with the name '{call.name}'")
    if call.distinct and call.name.upper() == "COUNT":
        factory = _FACTORIES["COUNT_DISTINCT"]
    return factory(call, arg_types)


def _aggregate(name: str) -> Callable[[_Factory], _Factory]:
    def register(factory: _Factory) -> _Factory:
        _FACTORIES[name] = factory
        return factory

    return register


def _no_match(call: FunctionCall, arg_types: Sequence[SqlType | None]) -> KsqlError:
    shown = ", ".join("null" if t is None else str(t) for t in arg_types)
    return KsqlError(f"Function '{call.name.upper()}' does not accept parameters ({shown}).")


def _value_type(call: FunctionCall, arg_types: Sequence[SqlType | None]) -> SqlType:
    if not arg_types or arg_types[0] is None:
        raise _no_match(call, arg_types)
    return arg_types[0]


def _constant(call: FunctionCall, index: int) -> Any:
    """A literal parameter (``TOPK(x, 3)``'s 3): ksqlDB requires a literal there."""
    arg = call.args[index]
    if isinstance(arg, Unary) and arg.op == "-" and isinstance(arg.operand, Literal):
        return -arg.operand.value
    if not isinstance(arg, Literal):
        # expressions imports this module: the formatter is imported when needed.
        from streams.ksql.expressions import format_expression

        raise KsqlError(
            f"Parameter {index + 1} passed to function {call.name.upper()} must be a literal "
            f"constant, but was expression: '{format_expression(arg)}'"
        )
    return arg.value


# --- JSON codecs -------------------------------------------------------------------------------

Codec = tuple[Callable[[Any], Any], Callable[[Any], Any]]


def _identity(v: Any) -> Any:
    return v


def _encode_double(d: float) -> Any:
    return d if math.isfinite(d) else repr(d).replace("inf", "Infinity").replace("nan", "NaN")


def _decode_double(v: Any) -> float:
    return float(v) if isinstance(v, str) else v


def codec(sql_type: SqlType) -> Codec:
    """(encode, decode) between a value of ``sql_type`` and its JSON form; NULL stays None."""
    name = sql_type.name
    if name == "DECIMAL":
        return _nullable(str, Decimal)
    if name == "BYTES":
        return _nullable(lambda b: base64.b64encode(b).decode(), base64.b64decode)
    if name == "DOUBLE":
        return _nullable(_encode_double, _decode_double)
    if name == "ARRAY":
        assert sql_type.element is not None
        enc, dec = codec(sql_type.element)
        if enc is _identity:
            return _identity, _identity
        return _nullable(lambda a: [enc(v) for v in a], lambda a: [dec(v) for v in a])
    if name == "MAP":
        assert sql_type.key is not None and sql_type.element is not None
        (ek, dk), (ev, dv) = codec(sql_type.key), codec(sql_type.element)
        if sql_type.key == STRING:
            if ev is _identity:
                return _identity, _identity
            return _nullable(
                lambda m: {k: ev(v) for k, v in m.items()},
                lambda m: {k: dv(v) for k, v in m.items()},
            )
        # JSON keys are strings only: another map is kept as [key, value] pairs.
        return _nullable(
            lambda m: [[ek(k), ev(v)] for k, v in m.items()],
            lambda pairs: {dk(k): dv(v) for k, v in pairs},
        )
    if name == "STRUCT":
        fields = [(n, *codec(t)) for n, t in sql_type.fields]
        if all(enc is _identity for _, enc, _ in fields):
            return _identity, _identity
        return _nullable(
            lambda s: {n: enc(s.get(n)) for n, enc, _ in fields},
            lambda s: {n: dec(s.get(n)) for n, _, dec in fields},
        )
    return _identity, _identity


def _nullable(encode: Callable[[Any], Any], decode: Callable[[Any], Any]) -> Codec:
    return (
        lambda v: None if v is None else encode(v),
        lambda v: None if v is None else decode(v),
    )


# --- COUNT, SUM, AVG ---------------------------------------------------------------------------


@_aggregate("COUNT")
def _count(call: FunctionCall, arg_types: Sequence[SqlType | None]) -> AggregateSpec:
    if call.star or not call.args:
        # COUNT(*) and COUNT(): every row.
        return AggregateSpec(
            "COUNT",
            (),
            BIGINT,
            BIGINT,
            init=lambda: 0,
            add=lambda acc, _args: acc + 1,
            merge=lambda a, b: a + b,
            result=_identity,
            undo=lambda acc, _args: acc - 1,
            splittable=True,
        )
    if len(call.args) != 1:
        raise _no_match(call, arg_types)
    return AggregateSpec(
        "COUNT",
        call.args[:1],
        BIGINT,
        BIGINT,
        init=lambda: 0,
        add=lambda acc, args: acc if args[0] is None else acc + 1,
        merge=lambda a, b: a + b,
        result=_identity,
        undo=lambda acc, args: acc if args[0] is None else acc - 1,
        splittable=True,
    )


@_aggregate("SUM")
def _sum(call: FunctionCall, arg_types: Sequence[SqlType | None]) -> AggregateSpec:
    t = _value_type(call, arg_types)
    if len(call.args) != 1 or t.name not in ("INTEGER", "BIGINT", "DOUBLE", "DECIMAL"):
        raise _no_match(call, arg_types)
    inputs = call.args[:1]
    if t.name == "DECIMAL":
        return _decimal_sum(inputs, t)
    if t.name == "DOUBLE":
        return AggregateSpec(
            "SUM",
            inputs,
            DOUBLE,
            DOUBLE,
            init=lambda: 0.0,
            add=lambda acc, args: acc if args[0] is None else _double_plus(acc, args[0]),
            merge=lambda a, b: _double_plus(a, _decode_double(b)),
            result=_decode_double,
            undo=lambda acc, args: acc if args[0] is None else _double_plus(acc, -args[0]),
            splittable=True,
        )
    wrap = wrap_int if t.name == "INTEGER" else wrap_long
    return AggregateSpec(
        "SUM",
        inputs,
        t,
        t,
        init=lambda: 0,
        add=lambda acc, args: acc if args[0] is None else wrap(acc + args[0]),
        merge=lambda a, b: wrap(a + b),
        result=_identity,
        undo=lambda acc, args: acc if args[0] is None else wrap(acc - args[0]),
        splittable=True,
    )


def _double_plus(acc: Any, value: float) -> Any:
    return _encode_double(_decode_double(acc) + value)


def _decimal_sum(inputs: tuple[Expr, ...], t: SqlType) -> AggregateSpec:
    # DecimalSumKudaf: the sum has the argument's type; reaching 10^(precision - scale) is an
    # error (ksqlDB's query fails), not a NULL.
    assert t.precision is not None and t.scale is not None
    precision, scale = t.precision, t.scale
    context = Context(prec=precision, rounding=ROUND_HALF_UP)
    limit = Decimal(10) ** (precision - scale)

    def add(acc: str, args: Args) -> str:
        if args[0] is None:
            return acc
        total = context.add(Decimal(acc), args[0])
        if total.copy_abs() >= limit:
            raise ArithmeticError(
                f"Numeric field overflow: A field with precision {precision} and scale {scale} "
                f"must round to an absolute value less than 10^{precision - scale}. "
                f"Got {format(total, 'f')}"
            )
        return str(total)

    def undo(acc: str, args: Args) -> str:
        return acc if args[0] is None else str(context.subtract(Decimal(acc), args[0]))

    return AggregateSpec(
        "SUM",
        inputs,
        t,
        t,
        init=lambda: "0",
        add=add,
        merge=lambda a, b: str(context.add(Decimal(a), Decimal(b))),
        result=lambda acc: Decimal(acc).quantize(quantum(scale), context=_WIDE),
        undo=undo,
    )


_WIDE = Context(prec=1000)


@_aggregate("SUM_LIST")
def _sum_list(call: FunctionCall, arg_types: Sequence[SqlType | None]) -> AggregateSpec:
    """The sum of every element of every array (ListSumUdaf): NULL elements are skipped."""
    t = _value_type(call, arg_types)
    element = t.element
    if (
        len(call.args) != 1
        or element is None
        or element.name not in ("INTEGER", "BIGINT", "DOUBLE")
    ):
        raise _no_match(call, arg_types)
    if element == DOUBLE:
        plus: Callable[[Any, float], Any] = _double_plus
        decode: Callable[[Any], Any] = _decode_double
        zero: Any = 0.0
    else:
        wrap = wrap_int if element == INTEGER else wrap_long
        plus, decode, zero = (lambda acc, v: wrap(acc + v)), _identity, 0

    def total(values: list[Any] | None, sign: int) -> Any:
        result = zero
        for v in values or ():
            if v is not None:
                result = plus(result, sign * v)
        return result

    return AggregateSpec(
        "SUM_LIST",
        call.args[:1],
        element,
        element,
        init=lambda: zero,
        add=lambda acc, args: plus(acc, decode(total(args[0], 1))),
        merge=lambda a, b: plus(a, decode(b)),
        result=decode,
        undo=lambda acc, args: plus(acc, decode(total(args[0], -1))),
    )


@_aggregate("AVG")
def _avg(call: FunctionCall, arg_types: Sequence[SqlType | None]) -> AggregateSpec:
    t = _value_type(call, arg_types)
    if len(call.args) != 1 or t.name not in ("INTEGER", "BIGINT", "DOUBLE", "DECIMAL"):
        raise _no_match(call, arg_types)
    # AverageUdaf keeps STRUCT<SUM, COUNT>; the INTEGER sum is a Java int and wraps around.
    sum_type = DOUBLE if t.name in ("DOUBLE", "DECIMAL") else t
    wrap = wrap_int if t.name == "INTEGER" else wrap_long

    def plus(total: Any, value: Any) -> Any:
        if sum_type == DOUBLE:
            return _double_plus(total, float(value))
        return wrap(total + value)

    def minus(total: Any, value: Any) -> Any:
        return plus(total, -value)

    def add(acc: list[Any], args: Args) -> list[Any]:
        return acc if args[0] is None else [plus(acc[0], args[0]), acc[1] + 1]

    def undo(acc: list[Any], args: Args) -> list[Any]:
        return acc if args[0] is None else [minus(acc[0], args[0]), acc[1] - 1]

    def result(acc: list[Any]) -> float:
        total, count = acc
        return 0.0 if count == 0 else _decode_double(total) / count

    return AggregateSpec(
        "AVG",
        call.args[:1],
        DOUBLE,
        SqlType("STRUCT", fields=(("SUM", sum_type), ("COUNT", BIGINT))),
        init=lambda: [0.0 if sum_type == DOUBLE else 0, 0],
        add=add,
        merge=lambda a, b: [plus(a[0], _decode_double(b[0])), a[1] + b[1]],
        result=result,
        undo=undo,
        splittable=True,
    )


# --- MIN, MAX ----------------------------------------------------------------------------------

_COMPARABLE = {
    "INTEGER",
    "BIGINT",
    "DOUBLE",
    "DECIMAL",
    "STRING",
    "BYTES",
    "DATE",
    "TIME",
    "TIMESTAMP",
}
_SIGNED = bytes((i + 128) % 256 for i in range(256))


def _sort_key(sql_type: SqlType) -> Callable[[Any], Any]:
    # ByteBuffer.compareTo compares Java's signed bytes.
    return (lambda b: b.translate(_SIGNED)) if sql_type.name == "BYTES" else _identity


def _extreme(
    call: FunctionCall, arg_types: Sequence[SqlType | None], larger: bool
) -> AggregateSpec:
    t = _value_type(call, arg_types)
    if len(call.args) != 1 or t.name not in _COMPARABLE:
        raise _no_match(call, arg_types)
    encode, decode = codec(t)
    key = _sort_key(t)

    def pick(current: Any, acc: Any) -> Any:
        # BaseComparableKudaf: a NULL value is skipped; a tie keeps the accumulated one.
        if current is None:
            return acc
        if acc is None:
            return encode(current)
        a, c = key(decode(acc)), key(current)
        return encode(current) if (c > a if larger else c < a) else acc

    return AggregateSpec(
        call.name.upper(),
        call.args[:1],
        t,
        t,
        init=lambda: None,
        add=lambda acc, args: pick(args[0], acc),
        merge=lambda a, b: pick(decode(a), b),
        result=decode,
        undo=None,
        # Not DOUBLE: a NaN compares false both ways, so which value wins depends on the order
        # the values meet, and merging partials meets them in another order.
        splittable=t.name != "DOUBLE",
    )


_aggregate("MIN")(functools.partial(_extreme, larger=False))
_aggregate("MAX")(functools.partial(_extreme, larger=True))


# --- LATEST_BY_OFFSET, EARLIEST_BY_OFFSET ------------------------------------------------------

# ksqlDB orders the values by a process-wide counter, not by the records' offsets. Starting it
# at the clock keeps accumulators restored from state older than the values added after a
# restart.
_SEQUENCE = itertools.count(time.time_ns())


def _offset_args(
    call: FunctionCall, arg_types: Sequence[SqlType | None]
) -> tuple[int | None, bool]:
    """(N or None for the single-value form, ignoreNulls) of ``F(col[, N][, ignoreNulls])``."""
    rest = list(arg_types[1:])
    n, ignore_nulls = None, True
    if rest and rest[0] is not None and rest[0].name == "INTEGER":
        n = _constant(call, 1)
        rest.pop(0)
    if rest and rest[0] == BOOLEAN:
        ignore_nulls = bool(_constant(call, len(arg_types) - 1))
        rest.pop(0)
    if rest:
        raise _no_match(call, arg_types)
    if n is not None and n <= 0:
        kind = "latestN" if call.name.upper().startswith("LATEST") else "earliestN"
        raise KsqlError(f"{kind} must be 1 or greater")
    return n, ignore_nulls


def _by_offset(
    call: FunctionCall, arg_types: Sequence[SqlType | None], latest: bool
) -> AggregateSpec:
    t = _value_type(call, arg_types)
    n, ignore_nulls = _offset_args(call, arg_types)
    encode, decode = codec(t)
    entry_type = SqlType("STRUCT", fields=(("SEQ", BIGINT), ("VAL", t)))
    name = call.name.upper()
    inputs = call.args[:1]
    if n is not None:
        return _by_offset_n(name, inputs, t, entry_type, n, ignore_nulls, latest)

    def seq_of(acc: list[Any] | None, null_loses: bool) -> float:
        if acc is None or (null_loses and acc[1] is None):
            return -math.inf
        return acc[0]

    if latest:

        def add(acc: list[Any], args: Args) -> list[Any]:
            if args[0] is None and ignore_nulls:
                return acc
            return [next(_SEQUENCE), encode(args[0])]

        def merge(a: list[Any], b: list[Any]) -> list[Any]:
            # The later entry wins; ignoring nulls, an entry holding NULL always loses.
            return a if seq_of(a, ignore_nulls) >= seq_of(b, ignore_nulls) else b

        return AggregateSpec(
            name,
            inputs,
            t,
            entry_type,
            init=lambda: [next(_SEQUENCE), None],
            add=add,
            merge=merge,
            result=lambda acc: decode(acc[1]),
            undo=None,
        )

    def add_first(acc: list[Any] | None, args: Args) -> list[Any] | None:
        if acc is not None or (args[0] is None and ignore_nulls):
            return acc
        return [next(_SEQUENCE), encode(args[0])]

    def merge_first(a: list[Any] | None, b: list[Any] | None) -> list[Any] | None:
        if a is None or b is None:
            return b if a is None else a
        return a if a[0] < b[0] else b

    return AggregateSpec(
        name,
        inputs,
        t,
        entry_type,
        init=lambda: None,
        add=add_first,
        merge=merge_first,
        result=lambda acc: None if acc is None else decode(acc[1]),
        undo=None,
    )


def _by_offset_n(
    name: str,
    inputs: tuple[Expr, ...],
    t: SqlType,
    entry_type: SqlType,
    n: int,
    ignore_nulls: bool,
    latest: bool,
) -> AggregateSpec:
    encode, decode = codec(t)

    def add(acc: list[list[Any]], args: Args) -> list[list[Any]]:
        if args[0] is None and ignore_nulls:
            return acc
        if latest:
            acc.append([next(_SEQUENCE), encode(args[0])])
            return acc[-n:]
        if len(acc) < n:
            acc.append([next(_SEQUENCE), encode(args[0])])
        return acc

    def merge(a: list[list[Any]], b: list[list[Any]]) -> list[list[Any]]:
        # ksqlDB's LATEST_BY_OFFSET(x, n) merge keeps the n *earliest* entries (a bug); we keep
        # the n latest, as its non-session aggregation does.
        merged = sorted(a + b, key=lambda entry: entry[0])
        return merged[-n:] if latest else merged[:n]

    return AggregateSpec(
        name,
        inputs,
        array_type(t),
        array_type(entry_type),
        init=list,
        add=add,
        merge=merge,
        result=lambda acc: [decode(v) for _, v in acc],
        undo=None,
    )


_aggregate("LATEST_BY_OFFSET")(functools.partial(_by_offset, latest=True))
_aggregate("EARLIEST_BY_OFFSET")(functools.partial(_by_offset, latest=False))


# --- COUNT_DISTINCT, COLLECT_LIST, COLLECT_SET, HISTOGRAM --------------------------------------


def _canonical(encoded: Any) -> str:
    return json.dumps(encoded, sort_keys=True, separators=(",", ":"))


@_aggregate("COUNT_DISTINCT")
def _count_distinct(call: FunctionCall, arg_types: Sequence[SqlType | None]) -> AggregateSpec:
    # ksqlDB estimates with a HyperLogLog (exact for small counts); this keeps the distinct
    # values themselves, so it is exact and its state grows with the count.
    t = _value_type(call, arg_types)
    if len(call.args) != 1:
        raise _no_match(call, arg_types)
    encode, _ = codec(t)

    def add(acc: dict[str, int], args: Args) -> dict[str, int]:
        if args[0] is not None:
            acc[_canonical(encode(args[0]))] = 1
        return acc

    return AggregateSpec(
        "COUNT_DISTINCT",
        call.args[:1],
        BIGINT,
        array_type(INTEGER),
        init=dict,
        add=add,
        merge=lambda a, b: {**a, **b},
        result=len,
        undo=None,
    )


@_aggregate("COLLECT_LIST")
def _collect_list(call: FunctionCall, arg_types: Sequence[SqlType | None]) -> AggregateSpec:
    t = _value_type(call, arg_types)
    if len(call.args) != 1:
        raise _no_match(call, arg_types)
    encode, decode = codec(t)

    def add(acc: list[Any], args: Args) -> list[Any]:
        acc.append(encode(args[0]))  # NULLs are collected too
        return acc

    def undo(acc: list[Any], args: Args) -> list[Any]:
        # CollectListUdaf removes the last occurrence of the old value.
        target = encode(args[0])
        for i in range(len(acc) - 1, -1, -1):
            if acc[i] == target:
                del acc[i]
                break
        return acc

    return AggregateSpec(
        "COLLECT_LIST",
        call.args[:1],
        array_type(t),
        array_type(t),
        init=list,
        add=add,
        merge=lambda a, b: a + b,
        result=lambda acc: [decode(v) for v in acc],
        undo=undo,
    )


@_aggregate("COLLECT_SET")
def _collect_set(call: FunctionCall, arg_types: Sequence[SqlType | None]) -> AggregateSpec:
    t = _value_type(call, arg_types)
    if len(call.args) != 1:
        raise _no_match(call, arg_types)
    encode, decode = codec(t)

    def add(acc: list[Any], args: Args) -> list[Any]:
        value = encode(args[0])
        if value not in acc:
            acc.append(value)
        return acc

    def merge(a: list[Any], b: list[Any]) -> list[Any]:
        return a + [v for v in b if v not in a]

    return AggregateSpec(
        "COLLECT_SET",
        call.args[:1],
        array_type(t),
        array_type(t),
        init=list,
        add=add,
        merge=merge,
        result=lambda acc: [decode(v) for v in acc],
        undo=None,
    )


_HISTOGRAM_LIMIT = 1000


@_aggregate("HISTOGRAM")
def _histogram(call: FunctionCall, arg_types: Sequence[SqlType | None]) -> AggregateSpec:
    t = _value_type(call, arg_types)
    if len(call.args) != 1 or t != STRING:
        raise _no_match(call, arg_types)
    # The accumulator is [value, count] pairs, as a NULL value is counted too (JSON keys
    # cannot be NULL).

    def add(acc: list[list[Any]], args: Args) -> list[list[Any]]:
        for pair in acc:
            if pair[0] == args[0]:
                pair[1] += 1
                return acc
        if len(acc) < _HISTOGRAM_LIMIT:
            acc.append([args[0], 1])
        return acc

    def undo(acc: list[list[Any]], args: Args) -> list[list[Any]]:
        for i, pair in enumerate(acc):
            if pair[0] == args[0]:
                pair[1] -= 1
                if pair[1] < 1:
                    del acc[i]
                break
        return acc

    def merge(a: list[list[Any]], b: list[list[Any]]) -> list[list[Any]]:
        for value, count in b:
            for _ in range(count):
                a = add(a, (value,))
        return a

    histogram = map_type(STRING, BIGINT)
    return AggregateSpec(
        "HISTOGRAM",
        call.args[:1],
        histogram,
        histogram,
        init=list,
        add=add,
        merge=merge,
        result=lambda acc: dict(map(tuple, acc)),
        undo=undo,
    )


# --- TOPK, TOPKDISTINCT ------------------------------------------------------------------------

_TOPK_TYPES = {"INTEGER", "BIGINT", "DOUBLE", "STRING"}


@_aggregate("TOPK")
def _topk(call: FunctionCall, arg_types: Sequence[SqlType | None]) -> AggregateSpec:
    """TOPK(col, k): the k largest values, largest first; TOPK(col, other..., k): STRUCTs of
    ``sort_col`` and ``col0``... for the k largest."""
    t = _value_type(call, arg_types)
    if len(call.args) < 2 or t.name not in _TOPK_TYPES or arg_types[-1] != INTEGER:
        raise _no_match(call, arg_types)
    k = _constant(call, len(call.args) - 1)
    others = list(arg_types[1:-1])
    if any(o is None for o in others):
        raise _no_match(call, arg_types)
    if others:
        fields = (("sort_col", t), *((f"col{i}", o) for i, o in enumerate(others)))
        entry_type = SqlType("STRUCT", fields=tuple((n, ft) for n, ft in fields if ft))
    else:
        entry_type = t
    encode, decode = codec(entry_type)
    key = _sort_key(t)
    sort_value = (lambda e: e["sort_col"]) if others else _identity

    names = ("sort_col", *(f"col{i}" for i in range(len(others))))

    def entry(args: Args) -> Any:
        # ``args`` may carry the literal k after the inputs: only the inputs are read.
        return dict(zip(names, args, strict=False)) if others else args[0]

    def add(acc: list[Any], args: Args) -> list[Any]:
        if args[0] is None:
            return acc
        values = [decode(e) for e in acc]
        if len(values) == k and key(args[0]) <= key(sort_value(values[-1])):
            return acc
        if len(values) == k:
            values[-1] = entry(args)
        else:
            values.append(entry(args))
        values.sort(key=lambda e: key(sort_value(e)), reverse=True)  # stable, as Java's
        return [encode(e) for e in values]

    def merge(a: list[Any], b: list[Any]) -> list[Any]:
        both = [decode(e) for e in a] + [decode(e) for e in b]
        both.sort(key=lambda e: key(sort_value(e)), reverse=True)
        return [encode(e) for e in both[:k]]

    return AggregateSpec(
        "TOPK",
        tuple(call.args[:-1]),
        array_type(entry_type),
        array_type(entry_type),
        init=list,
        add=add,
        merge=merge,
        result=lambda acc: [decode(e) for e in acc],
        undo=None,
    )


@_aggregate("TOPKDISTINCT")
def _topk_distinct(call: FunctionCall, arg_types: Sequence[SqlType | None]) -> AggregateSpec:
    t = _value_type(call, arg_types)
    if len(call.args) != 2 or arg_types[1] != INTEGER or t.name not in _COMPARABLE:
        raise _no_match(call, arg_types)
    k = _constant(call, 1)
    encode, decode = codec(t)
    key = _sort_key(t)

    def top(values: list[Any]) -> list[Any]:
        distinct = list(dict.fromkeys(values))
        distinct.sort(key=key, reverse=True)
        return [encode(v) for v in distinct[:k]]

    def add(acc: list[Any], args: Args) -> list[Any]:
        if args[0] is None:
            return acc
        return top([decode(v) for v in acc] + [args[0]])

    return AggregateSpec(
        "TOPKDISTINCT",
        call.args[:1],
        array_type(t),
        array_type(t),
        init=list,
        add=add,
        merge=lambda a, b: top([decode(v) for v in a + b]),
        result=lambda acc: [decode(v) for v in acc],
        undo=None,
    )
