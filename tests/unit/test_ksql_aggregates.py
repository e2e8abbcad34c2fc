"""streams.ksql.aggregates: ksqlDB's UDAFs with the values of its QTT cases (count.json,
sum.json, average-udaf.json, max/min-group-by.json, earliest-offset-udaf.json...), every
accumulator passed through JSON between steps as the state store does."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson
import pytest

from streams.ksql.aggregates import AggregateSpec, aggregate_function, is_aggregate
from streams.ksql.ast import ColumnRef, FunctionCall, Literal, SqlType
from streams.ksql.errors import KsqlError
from streams.ksql.functions import (
    BIGINT,
    BOOLEAN,
    BYTES,
    DATE,
    DOUBLE,
    INTEGER,
    STRING,
    array_type,
    decimal_type,
    map_type,
)

X = ColumnRef("X")


def spec(name: str, *args: Any, types: list[Any], star: bool = False) -> AggregateSpec:
    exprs = tuple(
        a if isinstance(a, ColumnRef) else Literal(a, t) for a, t in zip(args, types, strict=True)
    )
    return aggregate_function(FunctionCall(name, exprs, star=star), types)


def stored(acc: Any) -> Any:
    """The accumulator as the state store gives it back."""
    text = orjson.dumps(acc)
    assert json.loads(text) == orjson.loads(text)
    return orjson.loads(text)


def feed(s: AggregateSpec, values: list[Any]) -> list[Any]:
    """The result after each value, as a stream aggregation emits it."""
    acc, results = stored(s.init()), []
    for v in values:
        acc = stored(s.add(acc, (v,)))
        results.append(s.result(acc))
    return results


def table(s: AggregateSpec, changes: list[tuple[Any, Any]]) -> list[Any]:
    """A table aggregation: each change takes back the old value (None: the row is new) and
    adds the new one (None: a delete)."""
    assert s.undo is not None
    acc, results = stored(s.init()), []
    for old, new in changes:
        if old is not _NEW:
            acc = stored(s.undo(acc, (old,)))
        if new is not _GONE:
            acc = stored(s.add(acc, (new,)))
        results.append(s.result(acc))
    return results


_NEW, _GONE = object(), object()


def test_is_aggregate():
    assert is_aggregate("COUNT") and is_aggregate("latest_by_offset")
    assert not is_aggregate("SUBSTRING")


def test_count_star_counts_rows_and_count_col_non_null_values():
    star = aggregate_function(FunctionCall("COUNT", star=True), [])
    assert (star.inputs, star.result_type) == ((), BIGINT)
    acc = star.init()
    for _ in range(3):
        acc = star.add(acc, ())
    assert star.result(acc) == 3
    counted = spec("COUNT", X, types=[STRING])
    assert counted.inputs == (X,)
    assert feed(counted, ["a", None, "b"]) == [1, 1, 2]
    assert spec("COUNT", 1, types=[INTEGER]).result(spec("COUNT", 1, types=[INTEGER]).init()) == 0


def test_count_over_a_table_counts_back_to_zero():
    # count.json / count table: bob -> john for key 0, then john and a delete for key 100.
    count = spec("COUNT", X, types=[STRING])
    assert table(count, [(_NEW, "x"), ("x", _GONE)]) == [1, 0]


def test_sum_keeps_the_argument_type_and_wraps_integers():
    assert feed(spec("SUM", X, types=[INTEGER]), [0, 100, None]) == [0, 100, 100]
    assert feed(spec("SUM", X, types=[INTEGER]), [2147483647, 1]) == [2147483647, -2147483648]
    assert feed(spec("SUM", X, types=[BIGINT]), [2147483648, 100]) == [2147483648, 2147483748]
    assert feed(spec("SUM", X, types=[DOUBLE]), [5.4, 100.1]) == [5.4, 105.5]
    assert spec("SUM", X, types=[INTEGER]).result_type == INTEGER
    assert table(spec("SUM", X, types=[INTEGER]), [(_NEW, 5), (5, 20), (20, _GONE)]) == [5, 20, 0]


def test_sum_of_decimals_overflows_as_an_error():
    s = spec("SUM", X, types=[decimal_type(4, 1)])
    assert s.result_type == decimal_type(4, 1)
    sums = feed(s, [Decimal("500.9"), Decimal("300.8")])
    assert [str(v) for v in sums] == ["500.9", "801.7"]
    acc = stored(s.add(stored(s.add(s.init(), (Decimal("500.9"),))), (Decimal("300.8"),)))
    with pytest.raises(ArithmeticError, match="Numeric field overflow"):
        s.add(acc, (Decimal("400.8"),))
    assert str(s.result(s.init())) == "0.0"  # quantized to the type's scale


def test_sum_of_doubles_survives_infinity_in_json_state():
    s = spec("SUM", X, types=[DOUBLE])
    assert feed(s, [1e308, 1e308, -1.0]) == [1e308, float("inf"), float("inf")]


def test_avg_is_a_double_over_non_null_values():
    # average-udaf.json / average int and average long
    assert feed(spec("AVG", X, types=[INTEGER]), [1, 2, 2, None]) == [
        1.0,
        1.5,
        1.6666666666666667,
        1.6666666666666667,
    ]
    assert feed(spec("AVG", X, types=[BIGINT]), [-1, 9223372036854775807, 1]) == [
        -1.0,
        4.611686018427388e18,
        3.0744573456182584e18,
    ]
    assert feed(spec("AVG", X, types=[DOUBLE]), [2.3, -200000.6, 0.0]) == [
        2.3,
        -99999.15000000001,
        -66666.1,
    ]
    avg = spec("AVG", X, types=[INTEGER])
    assert avg.result(avg.init()) == 0.0
    assert avg.intermediate_type == SqlType("STRUCT", fields=(("SUM", INTEGER), ("COUNT", BIGINT)))


def test_avg_over_a_table_takes_back_replaced_rows():
    # average-udaf.json / average udaf with table: alice 1, bob 2, alice null, alice 4.
    avg = spec("AVG", X, types=[INTEGER])
    acc = stored(avg.init())
    results = []
    for old, new in ((None, 1), (None, 2), (1, None), (None, 4)):
        acc = stored(avg.add(stored(avg.undo(acc, (old,))), (new,)))
        results.append(avg.result(acc))
    assert results == [1.0, 1.5, 2.0, 3.0]


def test_sessions_merge_accumulators():
    avg = spec("AVG", X, types=[DOUBLE])
    a = avg.add(avg.add(avg.init(), (1.0,)), (2.0,))
    b = avg.add(avg.init(), (6.0,))
    assert avg.result(avg.merge(stored(a), stored(b))) == 3.0
    total = spec("SUM", X, types=[decimal_type(4, 1)])
    merged = total.merge(stored(total.add(total.init(), (Decimal("1.5"),))), stored(total.init()))
    assert total.result(merged) == Decimal("1.5")


@pytest.mark.parametrize(
    ("t", "values", "maxima", "minima"),
    [
        (
            INTEGER,
            [None, -2147483647, 5, None, 2000, 100],
            [None, -2147483647, 5, 5, 2000, 2000],
            [None, -2147483647, -2147483647, -2147483647, -2147483647, -2147483647],
        ),
        (
            decimal_type(4, 2),
            [Decimal("-10.12"), Decimal("5.10"), Decimal("0.00")],
            [Decimal("-10.12"), Decimal("5.10"), Decimal("5.10")],
            [Decimal("-10.12"), Decimal("-10.12"), Decimal("-10.12")],
        ),
        (STRING, ["b", "a", "c"], ["b", "b", "c"], ["b", "a", "a"]),
        (DATE, [-100, 5], [-100, 5], [-100, -100]),
        (
            BYTES,
            [b"\x01", b"\x80", b"\x7f"],
            [b"\x01", b"\x01", b"\x7f"],
            [b"\x01", b"\x80", b"\x80"],
        ),
    ],
)
def test_max_and_min_skip_nulls(t, values, maxima, minima):
    assert feed(spec("MAX", X, types=[t]), values) == maxima
    assert feed(spec("MIN", X, types=[t]), values) == minima
    assert spec("MAX", X, types=[t]).undo is None  # not for table sources, as in ksqlDB


def test_earliest_by_offset_single_value():
    # earliest-offset-udaf.json: nulls are ignored by default.
    assert feed(spec("EARLIEST_BY_OFFSET", X, types=[INTEGER]), [12, None, 13]) == [12, 12, 12]
    assert feed(spec("EARLIEST_BY_OFFSET", X, True, types=[INTEGER, BOOLEAN]), [None, 13]) == [
        None,
        13,
    ]
    assert feed(spec("EARLIEST_BY_OFFSET", X, False, types=[INTEGER, BOOLEAN]), [None, 13]) == [
        None,
        None,
    ]
    decimals = spec("EARLIEST_BY_OFFSET", X, True, types=[decimal_type(3, 2), BOOLEAN])
    assert feed(decimals, [Decimal("3.40"), Decimal("8.90")]) == [Decimal("3.40")] * 2
    nested = array_type(SqlType("STRUCT", fields=(("A", STRING), ("M", map_type(STRING, DOUBLE)))))
    value = [{"A": "Early0", "M": {"Early0": 1.234}}]
    assert feed(spec("EARLIEST_BY_OFFSET", X, types=[nested]), [value, []]) == [value, value]


def test_earliest_by_offset_n_values():
    n2 = spec("EARLIEST_BY_OFFSET", X, 2, types=[INTEGER, INTEGER])
    assert n2.inputs == (X,) and n2.result_type == array_type(INTEGER)
    assert feed(n2, [12, 21, 31]) == [[12], [12, 21], [12, 21]]
    assert feed(n2, [None, 13]) == [[], [13]]
    keep = spec("EARLIEST_BY_OFFSET", X, 2, False, types=[INTEGER, INTEGER, BOOLEAN])
    assert feed(keep, [12, None, 13]) == [[12], [12, None], [12, None]]


def test_latest_by_offset():
    latest = spec("LATEST_BY_OFFSET", X, types=[INTEGER])
    assert feed(latest, [12, 8367, None, 764]) == [12, 8367, 8367, 764]
    assert latest.result(latest.init()) is None
    keep = spec("LATEST_BY_OFFSET", X, False, types=[STRING, BOOLEAN])
    assert feed(keep, ["a", None]) == ["a", None]
    n2 = spec("LATEST_BY_OFFSET", X, 2, types=[STRING, INTEGER])
    assert feed(n2, ["a", "b", None, "c"]) == [["a"], ["a", "b"], ["a", "b"], ["b", "c"]]


def test_by_offset_merges_of_session_windows():
    # earliest-offset-udaf.json / merging session windows: records at 0 and 1500, then one at
    # 700 joins both sessions; the earliest value of the three wins.
    for args, types, values, merged in [
        ((), [], [1, 3, 2], 1),
        ((True,), [BOOLEAN], [None, 1, None], 1),
        ((False,), [BOOLEAN], [None, 1, None], None),
        ((2, False), [INTEGER, BOOLEAN], [None, 1, None], [None, 1]),
        ((2, True), [INTEGER, BOOLEAN], [None, 1, None], [1]),
    ]:
        s = spec("EARLIEST_BY_OFFSET", X, *args, types=[INTEGER, *types])
        first, second, third = (stored(s.add(s.init(), (v,))) for v in values)
        assert s.result(s.merge(s.merge(third, first), second)) == merged
    latest = spec("LATEST_BY_OFFSET", X, types=[INTEGER])
    old, new = (stored(latest.add(latest.init(), (v,))) for v in (1, 2))
    assert latest.result(latest.merge(new, old)) == 2
    assert latest.result(latest.merge(old, stored(latest.init()))) == 1  # a NULL entry loses


def test_by_offset_parameters_must_be_literals():
    call = FunctionCall("LATEST_BY_OFFSET", (X, ColumnRef("N")))
    with pytest.raises(
        KsqlError,
        match="Parameter 2 passed to function LATEST_BY_OFFSET must be "
        "a literal constant, but was expression: 'N'",
    ):
        aggregate_function(call, [INTEGER, INTEGER])
    with pytest.raises(KsqlError, match="earliestN must be 1 or greater"):
        spec("EARLIEST_BY_OFFSET", X, 0, types=[INTEGER, INTEGER])


def test_count_distinct_counts_non_null_values():
    distinct = spec("COUNT_DISTINCT", X, types=[STRING])
    assert feed(distinct, ["one", "two", "one", "two", None]) == [1, 2, 2, 2, 2]
    a = stored(distinct.add(distinct.init(), ("x",)))
    b = stored(distinct.add(distinct.init(), ("y",)))
    assert distinct.result(distinct.merge(a, b)) == 2
    count_distinct = aggregate_function(FunctionCall("COUNT", (X,), distinct=True), [INTEGER])
    assert count_distinct.name == "COUNT_DISTINCT"


def test_collect_list_and_set_keep_nulls():
    t = decimal_type(4, 1)
    values = [Decimal("500.9"), Decimal("300.8"), None, Decimal("300.8")]
    assert feed(spec("COLLECT_LIST", X, types=[t]), values)[-1] == values
    assert feed(spec("COLLECT_SET", X, types=[t]), values)[-1] == values[:3]
    maps = spec("COLLECT_SET", X, types=[map_type(STRING, BIGINT)])
    assert feed(maps, [{"a": 1, "b": 2}, {"b": 2, "a": 1}])[-1] == [{"a": 1, "b": 2}]
    collect = spec("COLLECT_LIST", X, types=[BYTES])
    assert table(collect, [(_NEW, b"a"), (_NEW, b"b"), (b"a", b"c")]) == [
        [b"a"],
        [b"a", b"b"],
        [b"b", b"c"],
    ]
    assert spec("COLLECT_SET", X, types=[INTEGER]).undo is None


def test_histogram_counts_each_value():
    histogram = spec("HISTOGRAM", X, types=[STRING])
    assert histogram.result_type == map_type(STRING, BIGINT)
    assert feed(histogram, ["a", "b", "a", None])[-1] == {"a": 2, "b": 1, None: 1}
    assert table(histogram, [(_NEW, "a"), ("a", "b")]) == [{"a": 1}, {"b": 1}]


def test_topk_and_topkdistinct():
    # topk-group-by.json
    top3 = spec("TOPK", X, 3, types=[INTEGER, INTEGER])
    assert top3.inputs == (X,)
    assert feed(top3, [0, 100, 99, 7, 100]) == [
        [0],
        [100, 0],
        [100, 99, 0],
        [100, 99, 7],
        [100, 100, 99],
    ]
    assert feed(spec("TOPK", X, 3, types=[STRING, INTEGER]), ["a", "b", "c", "b", "d"])[-1] == [
        "d",
        "c",
        "b",
    ]
    distinct = spec("TOPKDISTINCT", X, 2, types=[BIGINT, INTEGER])
    assert feed(distinct, [5, 9, 5, 7, 9]) == [[5], [9, 5], [9, 5], [9, 7], [9, 7]]
    a, b = (stored(top3.add(top3.init(), (v,))) for v in (3, 8))
    assert top3.result(top3.merge(a, b)) == [8, 3]


def test_topk_with_other_columns_collects_structs():
    name = ColumnRef("NAME")
    call = FunctionCall("TOPK", (X, name, Literal(3, INTEGER)))
    top = aggregate_function(call, [INTEGER, STRING, INTEGER])
    assert top.inputs == (X, name)
    acc = stored(top.init())
    results = []
    for args in ((0, "zero"), (100, "one"), (99, "two"), (None, "three"), (100, None)):
        acc = stored(top.add(acc, (*args, 3)))  # the literal k may come along, and is ignored
        results.append(top.result(acc))
    assert results[-1] == [
        {"sort_col": 100, "col0": "one"},
        {"sort_col": 100, "col0": None},
        {"sort_col": 99, "col0": "two"},
    ]


def test_sum_list_adds_every_element():
    ints = spec("SUM_LIST", X, types=[array_type(INTEGER)])
    assert ints.result_type == INTEGER
    assert feed(ints, [[1, 1], [2, 2], [100, 100, None], None]) == [2, 6, 206, 206]
    doubles = spec("SUM_LIST", X, types=[array_type(DOUBLE)])
    assert feed(doubles, [[1.0, 1.0], [922337203685.0, 1.0]]) == [2.0, 922337203688.0]


def test_arguments_ksqldb_does_not_accept():
    with pytest.raises(KsqlError, match=r"Function 'SUM' does not accept parameters \(STRING\)"):
        spec("SUM", X, types=[STRING])
    with pytest.raises(KsqlError, match="Can't find any functions with the name 'NOPE'"):
        aggregate_function(FunctionCall("NOPE", (X,)), [INTEGER])
    with pytest.raises(KsqlError):
        spec("MAX", X, types=[BOOLEAN])
