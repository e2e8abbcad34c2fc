"""streams.ksql.expressions: ksqlDB's expression semantics, with the values of its QTT cases."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from streams.ksql.ast import (
    Binary,
    Case,
    ColumnRef,
    Dereference,
    FunctionCall,
    Literal,
    SqlType,
    Subscript,
)
from streams.ksql.errors import KsqlError
from streams.ksql.expressions import (
    CodegenError,
    Scope,
    compile_expression,
    format_expression,
    infer_name,
)
from streams.ksql.functions import (
    BIGINT,
    BOOLEAN,
    BYTES,
    DATE,
    DOUBLE,
    INTEGER,
    STRING,
    TIME,
    TIMESTAMP,
    array_type,
    decimal_type,
    map_type,
    udf,
)
from streams.ksql.parser import parse_expression

STRUCT = SqlType("STRUCT", fields=(("X", INTEGER), ("Y", STRING)))
COLUMNS = {
    "I": INTEGER,
    "I2": INTEGER,
    "L": BIGINT,
    "D": DOUBLE,
    "S": STRING,
    "S2": STRING,
    "B": BOOLEAN,
    "E": decimal_type(4, 2),
    "E2": decimal_type(5, 3),
    "BT": BYTES,
    "A": array_type(INTEGER),
    "AL": array_type(BIGINT),
    "AA": array_type(array_type(INTEGER)),
    "M": map_type(STRING, INTEGER),
    "ST": STRUCT,
    "T": TIMESTAMP,
    "DT": DATE,
    "TM": TIME,
    "ROWTIME": BIGINT,
}
SCOPE = Scope([("T1", name, f"row.{name}", t) for name, t in COLUMNS.items()])


def compiled(text: str, scope: Scope = SCOPE, **kwargs: Any):
    return compile_expression(parse_expression(text), scope, **kwargs)


def ev(text: str, **values: Any) -> Any:
    row = {f"row.{name}": None for name in COLUMNS}
    row.update({f"row.{name.upper()}": v for name, v in values.items()})
    return compiled(text).fn(row)


def type_of(text: str) -> str:
    return str(compiled(text).type)


def error(fn: Any, *args: Any) -> str:
    with pytest.raises(KsqlError) as info:
        fn(*args)
    return info.value.message


def rejects(text: str, message: str, error: type[KsqlError] = KsqlError) -> None:
    with pytest.raises(error) as info:
        compiled(text)
    assert message in info.value.message


# --- scope -------------------------------------------------------------------------------------


def test_scope_resolves_qualified_and_unqualified_names_to_row_keys():
    scope = Scope(
        [("L", "ID", "l_id", INTEGER), ("R", "ID", "r_id", BIGINT), ("R", "NAME", "r_name", STRING)]
    )
    assert scope.resolve(ColumnRef("NAME")) == ("r_name", STRING)
    assert scope.resolve(ColumnRef("ID", "L")) == ("l_id", INTEGER)
    assert error(scope.resolve, ColumnRef("ID")) == (
        "Column 'ID' is ambiguous. Could be L.ID or R.ID."
    )
    assert error(scope.in_clause("SELECT").resolve, ColumnRef("BOB")) == (
        "SELECT column 'BOB' cannot be resolved."
    )
    assert error(scope.in_clause("WHERE").resolve, ColumnRef("BOB", "I")) == (
        "WHERE column 'I.BOB' cannot be resolved."
    )


def test_the_same_row_key_under_two_labels_is_not_ambiguous():
    scope = Scope([("A", "X", "x", INTEGER), ("B", "X", "x", INTEGER)])
    assert scope.resolve(ColumnRef("X")) == ("x", INTEGER)


def test_scope_binds_whole_expressions_such_as_aggregate_calls():
    count = FunctionCall("COUNT", star=True)
    scope = Scope([(None, "K", "k", STRING)], expressions={count: ("agg0", BIGINT)})
    expr = Binary("+", count, Literal(1, INTEGER))
    result = compile_expression(expr, scope)
    assert (result.fn({"k": "a", "agg0": 41}), result.type) == (42, BIGINT)
    with pytest.raises(KsqlError, match="SUM is an aggregate function"):
        compile_expression(FunctionCall("SUM", (ColumnRef("K"),)), scope)


def test_expressions_build_from_ast_nodes_without_the_parser():
    expr = Case(
        None,
        (
            (
                Binary(">", Subscript(ColumnRef("A"), Literal(1, INTEGER)), Literal(5, INTEGER)),
                Dereference(ColumnRef("ST"), "Y"),
            ),
        ),
        Literal("none", STRING),
    )
    fn = compile_expression(expr, SCOPE).fn
    assert fn({"row.A": [9], "row.ST": {"X": 1, "Y": "y"}}) == "y"
    assert fn({"row.A": [1], "row.ST": None}) == "none"


# --- NULL --------------------------------------------------------------------------------------


def test_comparisons_with_a_null_side_are_false_not_null():
    # null.json / null equals, decimal.json: ksqlDB's generated code checks for NULL first.
    assert ev("I = L", i=None, l=1) is False
    assert ev("I <> L", i=None, l=None) is False
    assert ev("I < L", i=1, l=None) is False
    assert ev("NULL IS NULL") is True


@pytest.mark.parametrize(
    ("i", "i2", "distinct"),
    [(1, 1, False), (2, 1, True), (3, None, True), (None, 1, True), (None, None, False)],
)
def test_is_distinct_from_treats_null_as_a_value(i, i2, distinct):
    assert ev("I IS DISTINCT FROM I2", i=i, i2=i2) is distinct
    assert ev("I IS NOT DISTINCT FROM I2", i=i, i2=i2) is not distinct


def test_logic_on_null_is_a_processing_error_as_in_ksqldbs_java():
    errors: list[Exception] = []
    fn = compiled("B AND FALSE", on_error=errors.append).fn
    assert fn({"row.B": None}) is None
    assert len(errors) == 1
    assert ev("FALSE AND B", b=None) is False  # short circuit: B is never read
    assert ev("TRUE OR B", b=None) is True
    assert ev("FALSE OR B", b=None) is None
    assert ev("NOT B", b=None) is None
    assert ev("NOT B", b=False) is True


def test_between_and_in_of_null_are_false_so_their_negations_are_true():
    assert ev("I BETWEEN 1 AND 3", i=None) is False
    assert ev("I NOT BETWEEN 1 AND 3", i=None) is True
    assert ev("I IN (1, NULL)", i=None) is False
    assert ev("I NOT IN (1, 2)", i=None) is True
    assert ev("S LIKE 'a%'", s=None) is None  # a LIKE on NULL is an error in ksqlDB


def test_comparison_with_the_null_literal_is_rejected():
    rejects("NULL <> NULL", "Comparison with NULL not supported: NULL <> NULL")
    rejects("I = NULL", "Comparison with NULL not supported: INTEGER = NULL")


# --- arithmetic --------------------------------------------------------------------------------


def test_integer_arithmetic_wraps_and_truncates_as_java():
    assert (ev("I + 1", i=2147483647), type_of("I + 1")) == (-2147483648, "INTEGER")
    assert ev("L * 2", l=2**62) == -(2**63)
    assert ev("-I", i=-2147483648) == -2147483648
    assert ev("I / 2", i=-7) == -3
    assert ev("I % 2", i=-7) == -1
    assert ev("I % -2", i=7) == 1
    assert ev("I / 0", i=1) is None  # ArithmeticException
    assert (ev("I + L", i=1, l=2), type_of("I + L")) == (3, "BIGINT")
    assert ev("2 * 3 + 4") == 10
    assert ev("6 % 4 / 2 * 6") == 6


def test_double_arithmetic_gives_infinities_and_nan():
    assert ev("D / 0", d=1.0) == float("inf")
    assert ev("D / 0", d=-1.0) == float("-inf")
    assert ev("D / 0", d=0.0) != ev("D / 0", d=0.0)  # NaN
    assert ev("D % 0", d=1.0) != ev("D % 0", d=1.0)
    assert (ev("I + D", i=1, d=0.5), type_of("I + D")) == (1.5, "DOUBLE")
    assert (ev("E + D", e=Decimal("10.01"), d=5.1), type_of("E + D")) == (15.11, "DOUBLE")


def test_decimal_arithmetic_has_ksqldbs_precision_and_scale():
    e, e2 = Decimal("10.10"), Decimal("2.000")
    assert (ev("E + E", e=e), type_of("E + E")) == (Decimal("20.20"), "DECIMAL(5, 2)")
    assert (ev("E - E2", e=e, e2=e2), type_of("E - E2")) == (Decimal("8.100"), "DECIMAL(6, 3)")
    assert (ev("E * E2", e=e, e2=e2), type_of("E * E2")) == (Decimal("20.20000"), "DECIMAL(10, 5)")
    assert (ev("E / E2", e=e, e2=e2), type_of("E / E2")) == (
        Decimal("5.05000000"),
        "DECIMAL(13, 8)",
    )
    assert (ev("E % E2", e=e, e2=e2), type_of("E % E2")) == (Decimal("0.100"), "DECIMAL(5, 3)")
    assert (ev("E + I", e=Decimal("10.01"), i=5), type_of("E + I")) == (
        Decimal("15.01"),
        "DECIMAL(13, 2)",
    )
    assert ev("E / E", e=Decimal("0.00")) is None  # division by zero
    # A quotient that does not fit the result's precision is an error (NULL), as in ksqlDB.
    assert ev("E / 3", e=Decimal("1.00")) is None
    assert (ev("-E", e=Decimal("10.12")), type_of("-E")) == (Decimal("-10.12"), "DECIMAL(4, 2)")
    assert type_of("1.5 + 1") == "DECIMAL(12, 1)"


def test_strings_concatenate_with_plus_and_pipes():
    assert ev("'prefix-' + S + '-postfix'", s="s1") == "prefix-s1-postfix"
    assert ev("S || '!'", s="a") == "a!"
    assert ev("S || NULL", s="a") == "a"  # || is CONCAT, which skips NULLs
    assert ev("S + S2", s="a", s2=None) is None


def test_arithmetic_type_errors_use_ksqldbs_message():
    rejects(
        "TRUE + 1.5",
        "Error processing expression: (true + 1.5). Unsupported arithmetic types. BOOLEAN DECIMAL",
    )
    rejects("S - S", "Unsupported arithmetic types. STRING STRING")
    rejects("-S", "Negation on unsupported type: STRING")


# --- comparisons -------------------------------------------------------------------------------


def test_comparisons_across_numeric_types():
    assert ev("E = 1.20", e=Decimal("1.20")) is True
    assert ev("D = 1.1", d=1.1) is True  # the double as BigDecimal.valueOf, i.e. 1.1
    assert ev("E < E2", e=Decimal("10.01"), e2=Decimal("10.012")) is True
    assert ev("I < D", i=1, d=1.5) is True
    assert ev("L = 2147483648", l=2147483648) is True


def test_string_comparison_is_by_code_unit():
    results = [ev("S < 'b2'", s=s) for s in ("a1", "b1", "B2", "b2", "b3", "b10", "b01")]
    assert results == [True, True, True, False, False, True, True]  # string.json


def test_time_types_compare_with_strings_and_each_other():
    assert ev("T > '1970-01-01T00:00:00.010'", t=11) is True
    assert ev("T = '1970-01-01T00:00:00.010'", t=10) is True
    assert ev("T BETWEEN '1970-01-01T00:00:00.005' AND '1970-01-01T00:00:00.010'", t=5) is True
    assert ev("DT < T", dt=1, t=86_400_001) is True
    assert ev("DT = '1970-01-02'", dt=1) is True
    assert ev("TM > '00:00:01'", tm=1001) is True


def test_rowtime_compares_with_a_timestamp_string():
    assert ev("ROWTIME >= '2020-01-01'", rowtime=1577836800000) is True
    assert ev("ROWTIME < '2020-01-01T00:00:00.001'", rowtime=1577836800001) is False


def test_bytes_compare_as_javas_signed_bytes():
    less = compiled("BT < TO_BYTES('01', 'hex')").fn
    assert less({"row.BT": b"\x80"}) is True  # 0x80 is -128
    assert less({"row.BT": b"\x00"}) is True
    assert less({"row.BT": b"\x7f"}) is False


def test_collections_compare_for_equality_only():
    assert ev("A = ARRAY[1, 2]", a=[1, 2]) is True
    assert ev("M <> MAP('a' := 1)", m={"b": 1}) is True
    assert ev("ST = STRUCT(X := 1, Y := 'y')", st={"X": 1, "Y": "y"}) is True
    rejects("A < A", "Cannot compare A (ARRAY<INTEGER>) to A (ARRAY<INTEGER>) with LESS_THAN.")
    rejects("ST > ST", "Cannot compare ST (STRUCT<`X` INTEGER, `Y` STRING>) to ST")
    rejects("B > TRUE", "Cannot compare B (BOOLEAN) to true (BOOLEAN) with GREATER_THAN.")


def test_comparison_type_errors_name_the_expressions():
    rejects(
        "I >= 'not an int'",
        "Cannot compare I (INTEGER) to 'not an int' (STRING) with GREATER_THAN_OR_EQUAL.",
    )
    rejects("SUM(L) > '100'", "SUM is an aggregate function")
    scope = Scope(
        [(None, "I", "i", INTEGER)], expressions={parse_expression("SUM(I)"): ("agg", INTEGER)}
    )
    with pytest.raises(KsqlError, match=r"Cannot compare SUM\(I\) \(INTEGER\) to '100' \(STRING\)"):
        compiled("SUM(I) > '100'", scope)


# --- IN, BETWEEN, LIKE, CASE -------------------------------------------------------------------


def test_in_coerces_literals_to_the_operands_type():
    # in.json / int - valid: the items make the common type DOUBLE; 5 is not 5.10.
    text = "I IN (1, 2.0, 3.00, '4.000', 5.10, L, D, E)"
    assert [ev(text, i=i, l=0, d=0, e=Decimal(0)) for i in (1, 2, 3, 4, 5)] == [True] * 4 + [False]
    assert ev(text, i=11, l=11, d=11.01, e=Decimal("11.01")) is True
    assert ev("I IN (1, '2147483648')", i=-2147483648) is False
    assert ev("S IN (TRUE, 10, '10.1', 10.30)", s="10.30") is True
    assert ev("S IN (TRUE, 10, '10.1', 10.30)", s="10.3") is False
    assert ev("B IN ('TrUe', 'tr', 'Y')", b=True) is True
    assert ev("I IN (I2, I2 * 2)", i=38, i2=19) is True


def test_in_matches_collections_structurally():
    text = "AL IN (ARRAY[1, 2], ARRAY[5, 123456789000], ARRAY['3', NULL])"
    assert [ev(text, al=v) for v in ([1, 2], [1], [3, None], [5, 123456789000])] == [
        True,
        False,
        True,
        True,
    ]
    struct = "ST IN (STRUCT(X := 1, Y := 'a'), STRUCT(X := '7'), STRUCT(Y := 'b', X := 4))"
    assert ev(struct, st={"X": 7, "Y": None}) is True
    assert ev(struct, st={"X": 4, "Y": "b"}) is True
    assert ev(struct, st={"X": 1, "Y": "b"}) is False


def test_in_rejections_are_codegen_errors_with_ksqldbs_words():
    rejects(
        "B IN (TRUE, 10)",
        "operator does not exist: BOOLEAN = INTEGER (10)\n"
        "Hint: You might need to add explicit type casts.",
        CodegenError,
    )
    rejects(
        "I IN (10, '10 - not a number')",
        'invalid input syntax for type INTEGER: "10 - not a number".',
        CodegenError,
    )
    rejects("E IN (10, S)", "operator does not exist: DECIMAL(12, 2) = STRING (S)", CodegenError)
    rejects(
        "B IN (TRUE, 'Not a boolean')",
        'invalid input syntax for type BOOLEAN: "Not a boolean".',
        CodegenError,
    )
    rejects(
        "AL IN (AL, ARRAY[B])",
        "operator does not exist: ARRAY<BIGINT> = ARRAY<BOOLEAN> (ARRAY[B])",
        CodegenError,
    )
    rejects(
        "AL IN (AL, ARRAY['10', 'not 10'])",
        'invalid input syntax for type BIGINT: "not 10"',
        CodegenError,
    )
    rejects(
        "M IN (M, MAP('a' := B))",
        "operator does not exist: MAP<STRING, INTEGER> = MAP<STRING, BOOLEAN> (MAP('a':=B))",
        CodegenError,
    )


def test_between_is_inclusive_on_every_comparable_type():
    assert [ev("I BETWEEN 2 AND 4", i=i) for i in (1, 2, 4, 5)] == [False, True, True, False]
    assert ev("S BETWEEN SUBSTRING('zb', 2) AND 'c'", s="ba") is True
    assert ev("D BETWEEN 2 AND 3.9", d=3.9) is True
    assert ev("I BETWEEN I2 AND 3", i=2, i2=None) is False


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("'%hi%'", "this", True),
        ("'a_c'", "abc", True),
        ("'a_c'", "abbc", False),
        ("'a.c'", "abc", False),
        ("'(x)%'", "(x)y", True),
        ("'%'", "", True),
        ("'50!%' ESCAPE '!'", "50%", True),
        ("'50!%' ESCAPE '!'", "500", False),
        ("'a!!b' ESCAPE '!'", "a!b", True),
    ],
)
def test_like_matches_percent_underscore_and_escapes(pattern, value, matches):
    assert ev(f"S LIKE {pattern}", s=value) is matches
    assert ev(f"S NOT LIKE {pattern}", s=value) is not matches


def test_like_with_a_pattern_column():
    assert ev("S LIKE S2", s="abc", s2="a%") is True
    assert ev("S LIKE S2", s="abc", s2=None) is None
    assert ev("S LIKE S2 ESCAPE '!'", s="a", s2="a!") is None  # ends with the escape


def test_searched_case_takes_the_first_true_branch():
    text = "CASE WHEN D < 2.0 THEN 'small' WHEN D < 4.0 THEN 'medium' ELSE 'large' END"
    assert [ev(text, d=d) for d in (6.0, 3.0, 1.0, None)] == ["large", "medium", "small", "large"]
    assert ev("CASE WHEN D < 2.0 THEN L + 2 END", d=2.0, l=5) is None
    assert ev("CASE WHEN D < 2.0 THEN NULL ELSE 'x' END", d=1.0) is None
    assert ev("CASE WHEN B THEN 1 ELSE 2 END", b=None) is None  # a NULL condition is an error


def test_simple_case_compares_its_operand():
    text = "CASE I WHEN 1 THEN 'one' WHEN 2 THEN 'two' ELSE 'many' END"
    assert [ev(text, i=i) for i in (1, 2, 3, None)] == ["one", "two", "many", "many"]


def test_case_evaluates_only_the_branch_it_takes():
    calls: list[int] = []

    @udf("TEST_EXPR_TRACE")
    def trace(x: int) -> int:
        calls.append(x)
        return x

    text = (
        "CASE WHEN TEST_EXPR_TRACE(1) = 1 THEN TEST_EXPR_TRACE(100) "
        "WHEN TEST_EXPR_TRACE(2) = 2 THEN TEST_EXPR_TRACE(200) ELSE TEST_EXPR_TRACE(300) END"
    )
    assert ev(text) == 100
    assert calls == [1, 100]


def test_case_type_errors():
    rejects(
        "CASE WHEN D < 2.0 THEN NULL ELSE NULL END",
        "Invalid Case expression. All case branches have NULL type",
    )
    rejects(
        "CASE WHEN I = 1 THEN 1 WHEN I = 2 THEN 'x' END",
        "Invalid Case expression. Type for all 'THEN' clauses should be the same.",
    )
    rejects(
        "CASE WHEN I = 1 THEN 1 ELSE 1.5 END",
        "Type for the default clause should be the same as for 'THEN' clauses.\n"
        "THEN type: INTEGER.\nDEFAULT type: DECIMAL(2, 1).",
    )
    rejects(
        "CASE WHEN I THEN 1 END", "WHEN operand type should be boolean.\nType for 'I' is INTEGER"
    )


# --- CAST --------------------------------------------------------------------------------------


def test_cast_between_numbers_and_strings():
    assert ev("CAST(S AS INT)", s=" 12 ") == 12
    assert ev("CAST(S AS INT)", s="12.5") is None  # Integer.parseInt fails: NULL
    assert ev("CAST(S AS BIGINT)", s="2147483648") == 2147483648
    assert ev("CAST(S AS INT)", s="2147483648") is None
    assert ev("CAST(S AS DOUBLE)", s="1e3") == 1000.0
    assert ev("CAST(S AS DOUBLE)", s="NaN") is None
    assert ev("CAST(S AS BOOLEAN)", s="ye") is True
    assert ev("CAST(S AS BOOLEAN)", s="maybe") is False
    assert ev("CAST(D AS INT)", d=3.3 - 2.1) == 1
    assert ev("CAST(D AS BIGINT)", d=-1e30) == -(2**63)
    assert ev("CAST(L AS INT)", l=2147483648) == -2147483648
    assert ev("CAST(I - I2 AS STRING)", i=1, i2=2) == "-1"
    assert ev("CAST(D AS STRING)", d=1e10) == "1.0E10"
    assert ev("CAST(D AS STRING)", d=10.3) == "10.3"
    assert ev("CAST(B AS STRING)", b=True) == "true"
    assert ev("CAST(S AS STRING)", s=None) is None


def test_cast_to_and_from_decimal():
    assert [ev("CAST(E AS DECIMAL(5,3))", e=Decimal(v)) for v in ("10.12", "1.00")] == [
        Decimal("10.120"),
        Decimal("1.000"),
    ]
    assert [ev("CAST(I AS DECIMAL(2,1))", i=i) for i in (1, -1, 10)] == [
        Decimal("1.0"),
        Decimal("-1.0"),
        None,
    ]
    doubles = [ev("CAST(D AS DECIMAL(2,1))", d=d) for d in (0.1, 1.1, 0.99, 0.01)]
    assert doubles == [Decimal("0.1"), Decimal("1.1"), Decimal("1.0"), Decimal("0.0")]
    strings = [ev("CAST(S AS DECIMAL(2,1))", s=s) for s in ("0.99", "0.10", "0.01", "x")]
    assert strings == [Decimal("1.0"), Decimal("0.1"), Decimal("0.0"), None]
    assert ev("CAST(E AS INT)", e=Decimal("10.01")) == 10
    assert ev("CAST(E AS DOUBLE)", e=Decimal("10.01")) == 10.01
    assert ev("CAST(E AS STRING)", e=Decimal("0.00")) == "0.00"


def test_cast_of_collections():
    assert ev("CAST(AL AS ARRAY<INT>)", al=[1, 3, 2147483648]) == [1, 3, -2147483648]
    assert ev("CAST(AL AS ARRAY<STRING>)", al=[1, None]) == ["1", None]
    assert ev("CAST(M AS MAP<STRING, BIGINT>)", m={"this": 1}) == {"this": 1}
    as_struct = "CAST(ST AS STRUCT<X STRING, Z STRING>)"
    assert ev(as_struct, st={"X": 1, "Y": "3"}) == {"X": "1", "Z": None}
    assert ev("CAST(A AS STRING)", a=[1, 3]) == "[1, 3]"
    assert ev("CAST(M AS STRING)", m={"this": 1}) == "{this=1}"
    assert ev("CAST(ST AS STRING)", st={"X": 1, "Y": None}) == "Struct{X=1}"
    assert ev("CAST(AA AS STRING)", aa=[[1], None]) == "[[1], null]"


def test_cast_of_time_types():
    assert ev("CAST(S AS TIMESTAMP)", s="2022-04-28T21:44:47.943") == 1651182287943
    assert ev("CAST(S AS TIMESTAMP)", s="2022-04-28T21:44:47.943Z") == 1651182287943
    assert ev("CAST(S AS TIMESTAMP)", s="2022-04-28T23:44+0200") == 1651182240000
    assert ev("CAST(S AS TIMESTAMP)", s="2022-04") == 1648771200000
    assert ev("CAST(T AS STRING)", t=10) == "1970-01-01T00:00:00.010"
    assert ev("CAST(S AS DATE)", s="2022-02-02") == 19025
    assert ev("CAST(DT AS STRING)", dt=19025) == "2022-02-02"
    assert ev("CAST(TM AS STRING)", tm=3_600_000) == "01:00"
    assert ev("CAST(T AS DATE)", t=86_400_001) == 1
    assert ev("CAST(T AS TIME)", t=86_400_001) == 1
    assert ev("CAST(DT AS TIMESTAMP)", dt=1) == 86_400_000


def test_cast_of_null_and_identity_casts():
    assert ev("CAST(NULL AS ARRAY<INT>)") is None
    assert type_of("CAST(NULL AS MAP<STRING, INT>)") == "MAP<STRING, INTEGER>"
    assert ev("CAST(I AS INT)", i=5) == 5


def test_unsupported_casts_are_codegen_errors():
    rejects(
        "CAST(S AS ARRAY<INTEGER>)",
        "Cast of STRING to ARRAY<INTEGER> is not supported",
        CodegenError,
    )
    rejects(
        "CAST(S AS STRUCT<F0 STRING, F1 INTEGER>)",
        "Cast of STRING to STRUCT<`F0` STRING, `F1` INTEGER> is not supported",
        CodegenError,
    )
    rejects("CAST(AL AS ARRAY<BOOLEAN>)", "Cast of ARRAY<BIGINT> to ARRAY<BOOLEAN>", CodegenError)


# --- structure ---------------------------------------------------------------------------------


def test_struct_fields_array_elements_and_map_values():
    assert ev("ST->X", st={"X": 5, "Y": None}) == 5
    assert ev("ST->X", st=None) is None
    assert [ev(f"A[{i}]", a=[7, 8]) for i in (1, 2, 3, 0, -1, -2, -3)] == [
        7,
        8,
        None,
        None,
        8,
        7,
        None,
    ]
    assert ev("A[1]", a=None) is None
    assert ev("AA[1][2]", aa=[[0, 1], [2]]) == 1
    assert ev("AA[1][2]", aa=[None, [2]]) is None
    assert ev("M['expected']", m={"expected": 10}) == 10
    assert ev("M['missing']", m={"expected": 10}) is None
    assert ev("IFNULL(M['missing'], -1)", m=None) == -1


def test_structure_errors():
    rejects("ST->Q", "Could not find field 'Q' in 'ST'.")
    rejects("I->X", "Can only dereference Struct type, instead got INTEGER")
    rejects("ST['X']", "Subscript expression (ST['X']) do not apply to STRUCT")


def test_constructors_coerce_their_items():
    assert (ev("ARRAY[1, 2.5]"), type_of("ARRAY[1, 2.5]")) == (
        [Decimal("1.0"), Decimal("2.5")],
        "ARRAY<DECIMAL(11, 1)>",
    )
    assert (ev("ARRAY[1, '2', L]", l=3), type_of("ARRAY[1, '2', L]")) == (
        [1, 2, 3],
        "ARRAY<BIGINT>",
    )
    assert ev("MAP('a' := 1, 'b' := I)", i=None) == {"a": 1, "b": None}
    assert ev("STRUCT(A := I, B := S)", i=1, s="x") == {"A": 1, "B": "x"}
    assert type_of("STRUCT(A := I, B := S)") == "STRUCT<`A` INTEGER, `B` STRING>"
    # An element that fails is NULL; the rest of the value stays.
    assert ev("ARRAY[I / 0, 1]", i=1) == [None, 1]
    rejects("ARRAY[]", "Array constructor cannot be empty.")
    rejects("ARRAY[NULL]", "Cannot construct an array with all NULL elements")
    rejects("MAP(NULL := 1)", "Cannot construct a map with all NULL keys")


# --- functions and error boundaries ------------------------------------------------------------


def test_a_failing_function_argument_is_null_for_the_enclosing_function():
    # null.json / coalesce - with parse_date
    text = "COALESCE(PARSE_DATE(S, 'yyyy-MM-dd'), PARSE_DATE(CONCAT(S, '-01-01'), 'yyyy-MM-dd'))"
    assert [ev(text, s=s) for s in ("2003-12-24", "2004")] == [12410, 12418]
    assert ev("PARSE_DATE(S, 'yyyy-MM-dd')", s="2004") is None
    # cast.json: the CAST turns the error into NULL, IFNULL replaces it.
    text = "IFNULL(CAST(PARSE_DATE(S, 'yyyy-MM-dd') AS STRING), '1900-01-01')"
    assert [ev(text, s=s) for s in ("2022-02-02", None, "abcd")] == [
        "2022-02-02",
        "1900-01-01",
        "1900-01-01",
    ]


def test_an_argument_error_not_at_a_boundary_fails_the_whole_expression():
    assert ev("IFNULL(I + I2, 0)", i=None, i2=1) is None  # NULL + 1 is an error, not NULL
    assert ev("IFNULL(CAST(I + I2 AS INT), 0)", i=None, i2=1) == 0


def test_function_arguments_are_widened_to_the_overload():
    assert (ev("POWER(I, 2)", i=3), type_of("POWER(I, 2)")) == (9.0, "DOUBLE")
    assert (ev("SIGN(E)", e=Decimal("-3.20")), type_of("SIGN(E)")) == (-1, "INTEGER")
    assert (ev("COALESCE(I, L, 5)", i=None, l=None), type_of("COALESCE(I, L, 5)")) == (5, "BIGINT")


def test_function_errors():
    rejects("WONT_FIND_ME(I)", "Can't find any functions with the name 'WONT_FIND_ME'")
    rejects("COALESCE()", "Function 'COALESCE' does not accept parameters ()")
    rejects("SUBSTRING(I)", "Function 'SUBSTRING' does not accept parameters (INTEGER).")


def test_higher_order_functions_take_lambdas():
    assert ev("FILTER(A, x => x > 5)", a=[3, 6, 2, 10]) == [6, 10]
    assert ev("FILTER(A, x => x > 5)", a=[5, None]) == []
    assert ev("FILTER(A, x => x > 5)", a=None) is None
    assert ev("FILTER(M, (k, v) => LEN(k) * 5 > 15 AND v % 5 = 0)", m={"ab": 6, "abcd": 15}) == {
        "abcd": 15
    }
    assert ev("FILTER(M, (k, v) => LEN(k) * 5 > 15 AND v % 5 = 0)", m={"abcd": None}) is None
    assert (ev("TRANSFORM(A, x => x * I)", a=[1, 2], i=3), type_of("TRANSFORM(A, x => x * 2)")) == (
        [3, 6],
        "ARRAY<INTEGER>",
    )
    assert ev("TRANSFORM(M, (k, v) => UCASE(k), (k, v) => v + 1)", m={"a": 1}) == {"A": 2}
    assert ev("REDUCE(A, 0, (s, x) => s + x)", a=[1, 2, 3]) == 6
    assert ev("REDUCE(A, 0, (s, x) => s + x)", a=None) == 0


# --- names and text ----------------------------------------------------------------------------


def test_infer_name_of_select_items():
    assert infer_name(parse_expression("S")) == "S"
    assert infer_name(parse_expression("T1.S")) == "S"
    assert infer_name(parse_expression("COL1->PERSON->NAME")) == "NAME"
    assert infer_name(parse_expression("AS_VALUE(S)")) is None
    assert infer_name(parse_expression("S + 'x'")) is None


@pytest.mark.parametrize(
    ("text", "formatted"),
    [
        ("(a + 1) * 2", "((A + 1) * 2)"),
        ("'it''s'", "'it''s'"),
        ("COUNT(*)", "COUNT(*)"),
        ("RANDOM() + 1.5", "(RANDOM() + 1.5)"),
        ("1.5E0", "1.5E0"),
        ("100E0", "1E2"),
        ("s->f", "S->F"),
        ("a[1]", "A[1]"),
        ("x IS NOT NULL", "(X IS NOT NULL)"),
        ("NOT a BETWEEN 1 AND 2", "(NOT (A BETWEEN 1 AND 2))"),
        ("x NOT IN (1, 2)", "(NOT (X IN (1, 2)))"),
        ("MAP('a' := v)", "MAP('a':=V)"),
        ("STRUCT(F0 := v)", "STRUCT(F0:=V)"),
        ("ARRAY[v]", "ARRAY[V]"),
        ("CAST(x AS DECIMAL(4, 2))", "CAST(X AS DECIMAL(4, 2))"),
        ("x LIKE 'a%'", "(X LIKE 'a%')"),
        ("CASE WHEN a THEN 1 ELSE 2 END", "(CASE WHEN A THEN 1 ELSE 2 END)"),
        ("true AND false", "(true AND false)"),
    ],
)
def test_format_expression_prints_as_ksqldb(text, formatted):
    assert format_expression(parse_expression(text)) == formatted
