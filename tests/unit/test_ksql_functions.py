"""streams.ksql.functions: the registry, ksqlDB's scalar functions (values from its QTT cases
math.json, substring.json, concat.json...) and the Java date-pattern translator."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any, TypeVar

import pytest

from streams.ksql.errors import KsqlError
from streams.ksql.functions import (
    BIGINT,
    BOOLEAN,
    BYTES,
    DATE,
    DOUBLE,
    INTEGER,
    REGISTRY,
    STRING,
    TIME,
    TIMESTAMP,
    FunctionRegistry,
    Int,
    array_type,
    decimal_type,
    java_date_format,
    java_double_str,
    java_round,
    java_zone,
    map_type,
    parse_timestamp_text,
    string_to_timestamp,
    udf,
    wrap_int,
)

T = TypeVar("T")


def types_of(*values: Any) -> list[Any]:
    kinds = {bool: BOOLEAN, int: BIGINT, float: DOUBLE, str: STRING, bytes: BYTES}
    out = []
    for v in values:
        if isinstance(v, Decimal):
            _, digits, exponent = v.as_tuple()
            assert isinstance(exponent, int)
            out.append(decimal_type(max(len(digits), -exponent + 1), -exponent))
        else:
            out.append(None if v is None else kinds[type(v)])
    return out


def call(name: str, *args: Any, types: list[Any] | None = None) -> Any:
    """Call ``name`` as an expression would: the overload for the argument types, NULL in NULL
    out unless the function takes NULLs."""
    resolved = REGISTRY.resolve(name, types if types is not None else types_of(*args))
    if not resolved.nulls and any(a is None for a in args):
        return None
    return resolved.fn(*args)


def result_type(name: str, *types: Any) -> str:
    return str(REGISTRY.resolve(name, list(types)).type)


# --- the registry ------------------------------------------------------------------------------


def test_a_python_function_registers_in_one_line_with_types_from_its_annotations():
    registry = FunctionRegistry()

    @udf("MY_FN", registry=registry)
    def my_fn(x: int, suffix: str) -> str:
        return f"{x}{suffix}"

    resolved = registry.resolve("my_fn", [INTEGER, STRING])  # INTEGER widens to BIGINT
    assert resolved.type == STRING and resolved.arg_types == (BIGINT, STRING)
    assert resolved.fn(3, "!") == "3!"
    assert my_fn(1, "x") == "1x"  # the decorator returns the function


def test_overloads_pick_the_exact_match_then_the_fewest_widenings():
    registry = FunctionRegistry()

    @udf("PICK", registry=registry)
    def pick_int(x: Int) -> str:
        return "int"

    @udf("PICK", registry=registry)
    def pick_double(x: float) -> str:
        return "double"

    @udf("PICK", registry=registry)
    def pick_string(x: str) -> str:
        return "string"

    def picked(*types: Any) -> str:
        return registry.resolve("PICK", list(types)).fn(None)

    assert picked(INTEGER) == "int"
    assert picked(BIGINT) == "double"  # no BIGINT overload: BIGINT widens to DOUBLE
    assert picked(decimal_type(4, 2)) == "double"
    assert picked(STRING) == "string"
    with pytest.raises(KsqlError, match=r"Function 'PICK' does not accept parameters \(BOOLEAN\)"):
        registry.resolve("PICK", [BOOLEAN])


def test_generic_variadic_and_schema_provider_signatures():
    registry = FunctionRegistry()

    @udf("FIRST_OF", registry=registry, nulls=True)
    def first_of(*values: T) -> T:
        return next(v for v in values if v is not None)

    @udf("SCALED", registry=registry, returns=lambda types: decimal_type(10, (types[1] and 2) or 0))
    def scaled(x: Decimal, places: Int) -> Decimal:
        return x

    assert registry.resolve("FIRST_OF", [INTEGER, BIGINT]).type == BIGINT  # widest number
    assert registry.resolve("FIRST_OF", [array_type(STRING)] * 2).type == array_type(STRING)
    with pytest.raises(KsqlError):
        registry.resolve("FIRST_OF", [STRING, INTEGER])
    assert registry.resolve("FIRST_OF", [None, STRING]).fn(None, "x") == "x"
    resolved = registry.resolve("SCALED", [INTEGER, INTEGER])
    assert resolved.arg_types == (decimal_type(10, 0), INTEGER)
    assert resolved.type == decimal_type(10, 2)


def test_list_and_dict_annotations_are_arrays_and_maps():
    registry = FunctionRegistry()

    @udf("KEYS_OF", registry=registry)
    def keys_of(m: dict[str, int]) -> list[str]:
        return list(m)

    resolved = registry.resolve("KEYS_OF", [map_type(STRING, BIGINT)])
    assert resolved.type == array_type(STRING)
    with pytest.raises(KsqlError, match="give its result type"):

        @udf("NO_RESULT", registry=registry)
        def no_result(x: int):
            return x


def test_unknown_functions_and_arguments_are_rejected_with_ksqldbs_words():
    with pytest.raises(KsqlError) as unknown:
        REGISTRY.resolve("WONT_FIND_ME", [INTEGER])
    assert unknown.value.message == "Can't find any functions with the name 'WONT_FIND_ME'"
    with pytest.raises(KsqlError) as info:
        REGISTRY.resolve("COALESCE", [])
    assert info.value.message.startswith("Function 'COALESCE' does not accept parameters ()")


# --- math --------------------------------------------------------------------------------------

ROUND_CASES = [
    # v, ROUND(v), ROUND(v, 0), ROUND(v, 1), ROUND(v, 2), ROUND(v, -1), ROUND(v, -2): math.json
    (1.2, 1, 1.0, 1.2, 1.2, 0.0, 0.0),
    (1.5, 2, 2.0, 1.5, 1.5, 0.0, 0.0),
    (1.234567, 1, 1.0, 1.2, 1.23, 0.0, 0.0),
    (111.0, 111, 111.0, 111.0, 111.0, 110.0, 100.0),
    (-1.5, -1, -1.0, -1.5, -1.5, 0.0, 0.0),
    (-1.7, -2, -2.0, -1.7, -1.7, 0.0, 0.0),
    (12345.678, 12346, 12346.0, 12345.7, 12345.68, 12350.0, 12300.0),
    (-12345.678, -12346, -12346.0, -12345.7, -12345.68, -12350.0, -12300.0),
]


@pytest.mark.parametrize("case", ROUND_CASES)
def test_round_of_doubles_goes_half_towards_positive_infinity(case):
    v, r0, *with_places = case
    assert call("ROUND", v) == r0
    assert [call("ROUND", v, p, types=[DOUBLE, INTEGER]) for p in (0, 1, 2, -1, -2)] == with_places
    assert result_type("ROUND", DOUBLE) == "BIGINT"
    assert result_type("ROUND", DOUBLE, INTEGER) == "DOUBLE"


def test_round_and_trunc_of_decimals_keep_ksqldbs_types():
    v = Decimal("12345678987654321.2345678987654321")
    t = decimal_type(33, 16)
    assert result_type("ROUND", t) == "DECIMAL(17, 0)"
    assert call("ROUND", v, types=[t]) == Decimal("12345678987654321")
    assert result_type("ROUND", t, INTEGER) == "DECIMAL(33, 16)"
    rounded = [call("ROUND", v, p, types=[t, INTEGER]) for p in (1, 10, -1)]
    assert [str(r) for r in rounded] == [
        "12345678987654321.2000000000000000",
        "12345678987654321.2345678988000000",
        "12345678987654320.0000000000000000",
    ]
    assert call("TRUNC", Decimal("-12345.6780000"), 2, types=[decimal_type(12, 7), INTEGER]) == (
        Decimal("-12345.6700000")
    )
    assert call("ROUND", Decimal("-2.50"), types=[decimal_type(4, 2)]) == Decimal("-2")


def test_trunc_floor_ceil_abs_sign():
    assert [call("TRUNC", v) for v in (1.7, -1.7, 12345.678)] == [1, -1, 12345]
    assert [call("TRUNC", -12345.678, p, types=[DOUBLE, INTEGER]) for p in (1, -2)] == [
        -12345.6,
        -12300.0,
    ]
    assert result_type("TRUNC", INTEGER) == "BIGINT"
    assert [call("FLOOR", v) for v in (1.5, -1.1, -2.0)] == [1.0, -2.0, -2.0]
    assert [call("CEIL", v) for v in (1.1, -1.7)] == [2.0, -1.0]
    assert math.copysign(1, call("CEIL", -0.5)) == -1  # Java keeps -0.0
    dec = decimal_type(2, 1)
    assert call("FLOOR", Decimal("-1.5"), types=[dec]) == Decimal("-2.0")
    assert str(call("CEIL", Decimal("1.1"), types=[dec])) == "2.0"
    assert (
        result_type("FLOOR", INTEGER) == "INTEGER" and result_type("CEIL", dec) == "DECIMAL(2, 1)"
    )
    assert call("ABS", -2147483648, types=[INTEGER]) == -2147483648  # Math.abs overflows
    assert str(call("ABS", Decimal("-3.2"), types=[dec])) == "3.2"
    assert [call("SIGN", v) for v in (-3.0, 0.0, 2.5)] == [-1, 0, 1]
    assert result_type("SIGN", decimal_type(4, 2)) == "INTEGER"


def test_math_functions_return_javas_nan_and_infinities():
    assert math.isnan(call("SQRT", -1.0))
    assert call("LN", 0.0) == -math.inf
    assert math.isnan(call("LN", -3.0))
    assert call("LOG", 13.0) == 2.5649493574615367  # LOG(x) is the natural logarithm
    assert call("LOG", 15.0, 13.0) == 0.9471572411831843
    assert math.isnan(call("LOG", 1.0, 13.0)) and math.isnan(call("LOG", -15.0, 13.0))
    assert call("LOG", 15.0, 0.0) == -math.inf
    assert call("EXP", -1.0) == 0.36787944117144233
    assert call("EXP", 1000.0) == math.inf
    assert call("POWER", 15.0, -1.0) == 0.06666666666666667
    assert call("POWER", 0.0, -1.0) == math.inf
    assert math.isnan(call("POWER", -8.0, 1 / 3))
    assert call("COT", 0.0) == math.inf
    assert math.isnan(call("ACOS", 1.1))
    assert call("CBRT", -8.0) == -2.0
    assert round(call("ATAN2", -2.0, -3.0), 13) == -2.5535900500422
    assert round(call("DEGREES", 1.2345), 12) == 70.7316398089
    assert call("SINH", -1000.0) == -math.inf
    assert call("PI") == math.pi
    assert result_type("SQRT", INTEGER) == "DOUBLE"


def test_java_numbers():
    assert wrap_int(2**31) == -(2**31)
    assert [java_round(v) for v in (0.49999999999999994, 2.5, -2.5, math.nan)] == [0, 3, -2, 0]
    assert [java_double_str(v) for v in (1e10, 1.234e-5, 123.0, 0.001, 1e7, 4.9e-324, -0.0)] == [
        "1.0E10",
        "1.234E-5",
        "123.0",
        "0.001",
        "1.0E7",
        "4.9E-324",
        "-0.0",
    ]
    assert java_double_str(1.7976931348623157e308) == "1.7976931348623157E308"


# --- strings -----------------------------------------------------------------------------------


def test_substring_is_one_based_and_counts_negative_positions_from_the_end():
    assert [
        call("SUBSTRING", s, 6, types=[STRING, INTEGER])
        for s in ("some_string", "another", "short")
    ] == ["string", "er", ""]
    three = [
        call("SUBSTRING", s, 6, 3, types=[STRING, INTEGER, INTEGER])
        for s in ("some_string", "another", "short")
    ]
    assert three == ["str", "er", ""]
    assert call("SUBSTRING", "abcdef", -3, types=[STRING, INTEGER]) == "def"
    assert call("SUBSTRING", "abcdef", -10, 2, types=[STRING, INTEGER, INTEGER]) == "ab"
    assert call("SUBSTRING", "some string", 0, 2, types=[STRING, INTEGER, INTEGER]) == "so"
    assert call("SUBSTRING", b"some_string", 6, types=[BYTES, INTEGER]) == b"string"
    assert call("SUBSTRING", "abc", None, types=[STRING, None]) is None


def test_concat_and_concat_ws_skip_nulls():
    assert call(
        "CONCAT", "prefix-", "s1", None, "-postfix", types=[STRING, STRING, None, STRING]
    ) == ("prefix-s1-postfix")
    assert call("CONCAT", b"yes", None, b"no", types=[BYTES, None, BYTES]) == b"yesno"
    ws = [STRING, STRING, STRING, STRING, None, STRING]
    assert call("CONCAT_WS", "SEP", "foo", None, "baz", None, "literal", types=ws) == (
        "fooSEPbazSEPliteral"
    )
    assert call("CONCAT_WS", "SEP", None, None, None, None, "literal", types=ws) == "literal"
    assert call("CONCAT_WS", None, "foo", "bar", "baz", None, "literal", types=ws) is None
    assert call("CONCAT_WS", b"a", b"b", b"", None, b"no", types=[BYTES] * 3 + [None, BYTES]) == (
        b"baano"
    )


def test_string_case_trim_length_and_friends():
    assert call("UCASE", " \t with white space \t") == " \t WITH WHITE SPACE \t"
    assert call("LCASE", "MiXeD") == "mixed"
    assert call("TRIM", " \t with white space \t") == "with white space"
    assert call("INITCAP", "the   quick bROWN fox") == "The   Quick Brown Fox"
    assert [call("LEN", v) for v in ("ABC", "", b"abc", "\U0001f600")] == [3, 0, 3, 2]
    assert call("REPLACE", "a-b-c", "-", "+") == "a+b+c"
    assert call("INSTR", "CORPORATE FLOOR", "OR") == 2
    assert call("INSTR", "CORPORATE FLOOR", "OR", 3, types=[STRING, STRING, INTEGER]) == 5
    assert (
        call("INSTR", "CORPORATE FLOOR", "OR", 3, 2, types=[STRING, STRING, INTEGER, INTEGER]) == 14
    )
    assert call("INSTR", "CORPORATE FLOOR", "OR", -3, types=[STRING, STRING, INTEGER]) == 5
    assert call("LPAD", "Foo", 7, "Bar", types=[STRING, INTEGER, STRING]) == "BarBFoo"
    assert call("RPAD", "Foo", 2, "Bar", types=[STRING, INTEGER, STRING]) == "Fo"
    assert call("SPLIT", "a,b,,c", ",") == ["a", "b", "", "c"]
    assert call("REGEXP_REPLACE", "foobar", "(o+)", "[$1]") == "f[oo]bar"
    assert call("REGEXP_EXTRACT", "e.*", "hello hey") == "ello hey"


def test_null_functions():
    assert call("COALESCE", None, None, 3, types=[None, None, INTEGER]) == 3
    assert call("IFNULL", None, "x", types=[None, STRING]) == "x"
    assert call("NULLIF", 10, 10, types=[INTEGER, INTEGER]) is None
    assert call("NULLIF", "X", "x", types=[STRING, STRING]) == "X"
    assert call("NULLIF", [1, 2, 3], [1, 2, 3], types=[array_type(INTEGER)] * 2) is None
    assert result_type("AS_VALUE", decimal_type(4, 2)) == "DECIMAL(4, 2)"
    assert result_type("IFNULL", array_type(INTEGER), array_type(INTEGER)) == "ARRAY<INTEGER>"


# --- dates and times ---------------------------------------------------------------------------

MS = 1526075913000  # 2018-05-11T21:58:33Z


@pytest.mark.parametrize(
    ("pattern", "zone", "text"),
    [
        ("yyyy-MM-dd HH:mm:ss zzz", "America/Los_Angeles", "2018-05-11 14:58:33 PDT"),
        ("yyyy-MM-dd HH:mm:ss zzz", "Europe/London", "2018-05-11 22:58:33 BST"),
        ("yyyy-MM-dd'T'HH:mm:ss.SSSX", "UTC", "2018-05-11T21:58:33.000Z"),
        ("yyyy-MM-dd'T'HH:mm:ssXXX", "+05:30", "2018-05-12T03:28:33+05:30"),
        ("yyyy-MM-dd'T'HH:mm:ssZ", "-08:00", "2018-05-11T13:58:33-0800"),
        ("yyyy-MM-dd'T'HH:mm:ssx", "UTC", "2018-05-11T21:58:33+00"),
        ("EEE, d MMM yyyy h:mm a", "UTC", "Fri, 11 May 2018 9:58 PM"),
        ("EEEE MMMM dd yy", "UTC", "Friday May 11 18"),
        ("D 'day' w 'week' Q", "UTC", "131 day 19 week 2"),
        ("'It''s' HH 'o''clock'", "UTC", "It's 21 o'clock"),
        ("HH:mm:ss.SSSSSS", "UTC", "21:58:33.000000"),
        ("yyyy[ 'at' HH]", "UTC", "2018 at 21"),
        ("VV O", "Asia/Kolkata", "Asia/Kolkata GMT+5:30"),
        ("kk KK hh", "UTC", "21 09 09"),
    ],
)
def test_java_patterns_format_timestamps(pattern, zone, text):
    assert java_date_format(pattern).format(MS, java_zone(zone)) == text


@pytest.mark.parametrize(
    ("text", "pattern", "ms"),
    [
        ("2018-05-11 21:58:33", "yyyy-MM-dd HH:mm:ss", MS),
        ("2018-05-11T14:58:33.000-0700", "yyyy-MM-dd'T'HH:mm:ss.SSSZ", MS),
        ("2018-05-11T23:58:33+02:00", "yyyy-MM-dd'T'HH:mm:ssXXX", MS),
        ("2018-05-11T21:58:33Z", "yyyy-MM-dd'T'HH:mm:ssX", MS),
        ("11-MAY-2018 09:58:33 pm", "dd-MMM-yyyy hh:mm:ss a", MS),
        ("20180511215833", "yyyyMMddHHmmss", MS),
        ("2018", "yyyy", 1514764800000),
        ("10:00", "HH:mm", 36_000_000),
        ("2018-05-11 14:58:33 America/Los_Angeles", "yyyy-MM-dd HH:mm:ss VV", MS),
    ],
)
def test_java_patterns_parse_with_defaults_from_the_epoch(text, pattern, ms):
    assert string_to_timestamp(text, pattern) == ms


def test_parsing_uses_the_zone_given_unless_the_text_has_one():
    assert (
        string_to_timestamp("2018-05-11 14:58:33", "yyyy-MM-dd HH:mm:ss", "America/Los_Angeles")
        == MS
    )
    with pytest.raises(ValueError):
        string_to_timestamp("2018-05-11", "yyyy-MM-dd HH:mm")
    with pytest.raises(ValueError):
        string_to_timestamp("2018", "yyyy", "Not/AZone")


def test_bad_patterns_are_errors():
    for pattern in ("yyyy-MM-dd'T", "bbb", "ddd", "yyyy]"):
        with pytest.raises(ValueError):
            java_date_format(pattern).format(MS, java_zone("UTC"))


def test_timestamp_functions():
    assert call("TIMESTAMPTOSTRING", MS, "yyyy-MM-dd HH:mm:ss zzz", "America/Los_Angeles") == (
        "2018-05-11 14:58:33 PDT"
    )
    assert call("TIMESTAMPTOSTRING", 0, "yyyy-MM-dd HH:mm:ss") == "1970-01-01 00:00:00"
    ts = [TIMESTAMP, STRING]
    assert call("FORMAT_TIMESTAMP", MS, "yyyy-MM-dd HH:mm:ss", types=ts) == "2018-05-11 21:58:33"
    assert call("FORMAT_TIMESTAMP", MS, "HH:mm", "UTC", types=[*ts, STRING]) == "21:58"
    assert result_type("FROM_UNIXTIME", BIGINT) == "TIMESTAMP"
    assert call("FROM_UNIXTIME", MS) == MS
    assert call("STRINGTOTIMESTAMP", "2018-05-11", "yyyy-MM-dd") == 1525996800000
    assert call("PARSE_TIMESTAMP", "2018-05-11", "yyyy-MM-dd") == 1525996800000
    assert result_type("PARSE_TIMESTAMP", STRING, STRING) == "TIMESTAMP"
    assert call("UNIX_TIMESTAMP", MS, types=[TIMESTAMP]) == MS
    assert call(
        "CONVERT_TZ", 0, "UTC", "America/Los_Angeles", types=[TIMESTAMP, STRING, STRING]
    ) == (-8 * 3_600_000)


def test_date_functions():
    # format-date.json
    formatted = [
        call("FORMAT_DATE", days, pattern, types=[DATE, STRING])
        for days, pattern in (
            (17662, "yyyy-MM-dd"),
            (18027, "dd/MM/yyyy"),
            (18993, "dd-MMM-yyyy"),
            (-1, "dd-MM-yyyy'Sophia'"),
        )
    ]
    assert formatted == ["2018-05-11", "11/05/2019", "01-Jan-2022", "31-12-1969Sophia"]
    with pytest.raises(ValueError):
        call("FORMAT_DATE", 1, "yyyy HH", types=[DATE, STRING])
    assert call("PARSE_DATE", "2003-12-24", "yyyy-MM-dd") == 12410
    assert call("PARSE_DATE", "2004-01-01-01-01", "yyyy-MM-dd") == 12418  # a prefix is enough
    with pytest.raises(ValueError):
        call("PARSE_DATE", "2004", "yyyy-MM-dd")
    with pytest.raises(ValueError, match="time field"):
        call("PARSE_DATE", "2004-01-01 10", "yyyy-MM-dd HH")
    assert call("PARSE_TIME", "10:15:30", "HH:mm:ss") == 36_930_000
    assert call("FORMAT_TIME", 36_930_000, "hh:mm a", types=[TIME, STRING]) == "10:15 AM"


def test_strings_read_as_timestamps_complete_what_is_missing():
    assert parse_timestamp_text("2022-04-28T21:44:47.943") == 1651182287943
    assert parse_timestamp_text("2022-04-28T21:44:47.943Z") == 1651182287943
    assert parse_timestamp_text("2022-04-28T23:44:47.943+0200") == 1651182287943
    assert parse_timestamp_text("2022-04-28T21:44") == 1651182240000
    assert parse_timestamp_text("2022-04-28") == 1651104000000
    assert parse_timestamp_text("2022") == 1640995200000
    with pytest.raises(ValueError):
        parse_timestamp_text("not a time")


def test_java_zone_ids():
    assert java_zone("Z").utcoffset(None).total_seconds() == 0
    assert java_zone("+01:30").utcoffset(None).total_seconds() == 5400
    assert java_zone("-0800").utcoffset(None).total_seconds() == -28800
    assert java_zone("GMT+1").utcoffset(None).total_seconds() == 3600
    with pytest.raises(ValueError):
        java_zone("+25:00")
    with pytest.raises(KeyError):
        java_zone("Nowhere/Land")
