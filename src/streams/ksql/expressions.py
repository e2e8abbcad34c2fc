"""ksqlDB expressions compiled, once, to nested Python closures over a row dict.

:func:`compile_expression` type-checks an :mod:`~streams.ksql.ast` expression against a
:class:`Scope` (raising :class:`~streams.ksql.errors.KsqlError` with ksqlDB's message where
ksqlDB rejects the statement) and returns a :class:`Compiled` whose ``fn(row)`` reads
``row[row_key]`` for every column the expression uses.

Evaluation follows ksqlDB's generated Java code, which is not SQL's three-valued logic:

- a comparison with a NULL side is FALSE (``IS DISTINCT FROM`` excepted), so are BETWEEN and IN
  with a NULL operand, and NOT BETWEEN / NOT IN of NULL are therefore TRUE;
- arithmetic on NULL, NOT NULL, ``NULL AND x``, ``TRUE AND NULL``, ``FALSE OR NULL``, a NULL
  CASE condition, LIKE on NULL, a failing CAST or function... are *errors*. ksqlDB logs them
  and makes the value NULL at the nearest boundary: the enclosing CAST, the function argument
  that is itself a function call or a struct field, an element of an ARRAY/MAP/STRUCT
  constructor, else the whole expression. ``fn`` does the same (``on_error`` sees the
  exception), so it never raises: a WHERE must treat the NULL it returns as false;
- INTEGER and BIGINT arithmetic wraps around as Java's int and long do; integer division
  truncates towards zero and dividing by zero is an error (NULL), while DOUBLE division by zero
  gives an infinity or NaN; DECIMAL results take ksqlDB's precision and scale (a result that
  needs rounding, or a division by zero, is an error).

ksqlDB rejects some statements only while generating code (an unsupported CAST, an IN list
whose items do not coerce to one type): those raise :class:`CodegenError`, which ksqlDB reports
as ``Invalid Select: ...`` or ``Invalid Predicate: ...``; type errors of a WHERE or HAVING it
reports as ``Error in WHERE expression: ...``. The caller adds those prefixes.
"""

from __future__ import annotations

import base64
import copy
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal, DivisionByZero, Inexact, InvalidOperation
from decimal import Overflow as DecimalOverflow
from functools import lru_cache
from typing import Any

from streams.ksql import aggregates
from streams.ksql.ast import (
    ArrayConstructor,
    Between,
    Binary,
    Case,
    Cast,
    ColumnRef,
    Dereference,
    Expr,
    FunctionCall,
    InList,
    IsDistinctFrom,
    IsNull,
    Lambda,
    LambdaVariable,
    Like,
    Literal,
    MapConstructor,
    SqlType,
    StructConstructor,
    Subscript,
    Unary,
)
from streams.ksql.errors import KsqlError, Unsupported
from streams.ksql.functions import (
    BIGINT,
    BOOLEAN,
    DOUBLE,
    INTEGER,
    REGISTRY,
    STRING,
    array_type,
    can_implicitly_cast,
    decimal_fit,
    decimal_type,
    double_to_int,
    double_to_long,
    format_date_text,
    format_time_text,
    format_timestamp_text,
    is_numeric,
    java_double_str,
    map_type,
    parse_date_text,
    parse_java_boolean,
    parse_java_decimal,
    parse_java_double,
    parse_java_int,
    parse_time_text,
    parse_timestamp_text,
    quantum,
    to_datetime,
    to_decimal,
    widen_decimal,
    wrap_int,
    wrap_long,
)

Row = Mapping[str, Any]
Fn = Callable[[Row], Any]
Term = tuple[Fn, SqlType | None]


class CodegenError(KsqlError):
    """A statement ksqlDB rejects while generating code rather than while type-checking."""


@dataclass(frozen=True)
class Compiled:
    """``fn(row)`` evaluates the expression (NULL on a processing error, never raising);
    ``type`` is its type, None only for a bare NULL literal."""

    fn: Callable[[Row], Any]
    type: SqlType | None


# --- scope -------------------------------------------------------------------------------------

ScopeEntry = tuple[str | None, str, str, SqlType]


class Scope:
    """The columns an expression sees: ``(source label, name, row key, type)`` entries. A
    qualified reference needs its source's label; an unqualified name must belong to one row key
    only. ``expressions`` binds whole expressions to row keys (an aggregate call, a GROUP BY
    expression after the aggregation). ``clause`` names the clause in the errors, as ksqlDB
    does (``SELECT column 'X' cannot be resolved.``)."""

    def __init__(
        self,
        entries: Iterable[ScopeEntry],
        *,
        expressions: Mapping[Expr, tuple[str, SqlType]] | None = None,
        clause: str | None = None,
    ) -> None:
        self._by_name: dict[str, list[ScopeEntry]] = {}
        self._qualified: dict[tuple[str, str], tuple[str, SqlType]] = {}
        for entry in entries:
            source, name, row_key, sql_type = entry
            self._by_name.setdefault(name, []).append(entry)
            if source is not None:
                self._qualified[(source, name)] = (row_key, sql_type)
        self._expressions = dict(expressions or {})
        self._clause = clause

    def in_clause(self, clause: str | None) -> Scope:
        """The same columns, named in errors as ``clause``'s."""
        scope = copy.copy(self)
        scope._clause = clause
        return scope

    def resolve(self, ref: ColumnRef) -> tuple[str, SqlType]:
        if ref.source is not None:
            found = self._qualified.get((ref.source, ref.name))
            if found is None:
                qualified = f"{ref.source}.{ref.name}"
                raise KsqlError(self._column_error(qualified, "cannot be resolved."))
            return found
        entries = self._by_name.get(ref.name, [])
        keys = {row_key: sql_type for _source, _name, row_key, sql_type in entries}
        if not keys:
            raise KsqlError(self._column_error(ref.name, "cannot be resolved."))
        if len(keys) > 1:
            options = sorted(f"{source}.{ref.name}" for source, *_ in entries)
            could_be = ", ".join(options[:-1]) + " or " + options[-1]
            raise KsqlError(self._column_error(ref.name, f"is ambiguous. Could be {could_be}."))
        return next(iter(keys.items()))

    def bound(self, expr: Expr) -> tuple[str, SqlType] | None:
        return self._expressions.get(expr) if self._expressions else None

    def _column_error(self, column: str, problem: str) -> str:
        prefix = f"{self._clause} column" if self._clause else "Column"
        return f"{prefix} '{column}' {problem}"


# --- entry points ------------------------------------------------------------------------------


def compile_expression(
    expr: Expr, scope: Scope, *, on_error: Callable[[Exception], None] | None = None
) -> Compiled:
    """Type-check ``expr`` and compile it (see the module doc for the semantics)."""
    fn, sql_type = _Compiler(scope).term(expr)

    def evaluate(row: Row) -> Any:
        try:
            return fn(row)
        except Exception as e:  # a processing error: ksqlDB logs it and the value is NULL
            if on_error is not None:
                on_error(e)
            return None

    return Compiled(evaluate, sql_type)


def infer_name(expr: Expr) -> str | None:
    """The column name ksqlDB gives an un-aliased select item: a column's name, a struct
    field's name (the planner makes it unique, ``F_1``...); None for anything else, which gets
    ``KSQL_COL_<n>``."""
    if isinstance(expr, ColumnRef):
        return expr.name
    if isinstance(expr, Dereference):
        return expr.field
    return None


_COMPARISONS = {
    "=": "EQUAL",
    "<>": "NOT_EQUAL",
    "!=": "NOT_EQUAL",
    "<": "LESS_THAN",
    "<=": "LESS_THAN_OR_EQUAL",
    ">": "GREATER_THAN",
    ">=": "GREATER_THAN_OR_EQUAL",
    "IS DISTINCT FROM": "IS_DISTINCT_FROM",
    "IS NOT DISTINCT FROM": "IS_NOT_DISTINCT_FROM",
}
_ARITHMETIC = {"+", "-", "*", "/", "%"}


def format_expression(expr: Expr) -> str:
    """``expr`` as ksqlDB prints it in its messages (ExpressionFormatter): ``(A + 1)``,
    ``'it''s'``, ``COUNT(*)``, ``S->F``..."""
    f = format_expression
    if isinstance(expr, Literal):
        return _format_literal(expr)
    if isinstance(expr, ColumnRef):
        return expr.name if expr.source is None else f"{expr.source}.{expr.name}"
    if isinstance(expr, Dereference):
        return f"{f(expr.base)}->{expr.field}"
    if isinstance(expr, Subscript):
        return f"{f(expr.base)}[{f(expr.index)}]"
    if isinstance(expr, Unary):
        if expr.op == "NOT":
            return f"(NOT {f(expr.operand)})"
        operand = f(expr.operand)
        return expr.op + (" " if operand.startswith("-") else "") + operand
    if isinstance(expr, Binary):
        op = "<>" if expr.op == "!=" else expr.op
        if op == "||":
            return f"CONCAT({f(expr.left)}, {f(expr.right)})"
        return f"({f(expr.left)} {op} {f(expr.right)})"
    if isinstance(expr, IsDistinctFrom):
        return _negate(f"({f(expr.left)} IS DISTINCT FROM {f(expr.right)})", expr.negated)
    if isinstance(expr, IsNull):
        return f"({f(expr.operand)} IS {'NOT ' if expr.negated else ''}NULL)"
    if isinstance(expr, Like):
        escape = f" ESCAPE '{expr.escape}'" if expr.escape else ""
        return _negate(f"({f(expr.operand)} LIKE {f(expr.pattern)}{escape})", expr.negated)
    if isinstance(expr, InList):
        items = ", ".join(map(f, expr.items))
        return _negate(f"({f(expr.operand)} IN ({items}))", expr.negated)
    if isinstance(expr, Between):
        text = f"({f(expr.operand)} BETWEEN {f(expr.low)} AND {f(expr.high)})"
        return _negate(text, expr.negated)
    if isinstance(expr, Case):
        parts = ["CASE"] + ([f(expr.operand)] if expr.operand is not None else [])
        parts += [f"WHEN {f(w)} THEN {f(t)}" for w, t in expr.whens]
        parts += ["ELSE", f(expr.otherwise)] if expr.otherwise is not None else []
        return "(" + " ".join([*parts, "END"]) + ")"
    if isinstance(expr, Cast):
        return f"CAST({f(expr.operand)} AS {expr.type})"
    if isinstance(expr, FunctionCall):
        args = "*" if expr.star or (not expr.args and expr.name == "COUNT") else ""
        args = args or ", ".join(map(f, expr.args))
        return f"{expr.name}({'DISTINCT ' if expr.distinct else ''}{args})"
    if isinstance(expr, ArrayConstructor):
        return "ARRAY[" + ", ".join(map(f, expr.items)) + "]"
    if isinstance(expr, MapConstructor):
        return "MAP(" + ", ".join(f"{f(k)}:={f(v)}" for k, v in expr.entries) + ")"
    if isinstance(expr, StructConstructor):
        return "STRUCT(" + ", ".join(f"{name}:={f(v)}" for name, v in expr.fields) + ")"
    if isinstance(expr, Lambda):
        return f"({', '.join(expr.params)}) => {f(expr.body)}"
    if isinstance(expr, LambdaVariable):
        return expr.name
    unit = getattr(expr, "unit", None)
    return str(unit) if unit is not None else repr(expr)


def _negate(text: str, negated: bool) -> str:
    return f"(NOT {text})" if negated else text


def _format_literal(lit: Literal) -> str:
    value = lit.value
    if value is None:
        return "null"
    if lit.type is None or lit.type.name == "STRING":
        return "'" + str(value).replace("'", "''") + "'"
    if lit.type.name == "BOOLEAN":
        return "true" if value else "false"
    if lit.type.name == "DOUBLE":
        return _scientific(float(value))
    return str(value)


def _scientific(d: float) -> str:
    """ICU's scientific notation with unlimited precision, as ksqlDB prints a DOUBLE literal:
    ``1.5E0``, ``1E2``."""
    if d == 0:
        return "0E0"
    digits, exponent = _digits(d)
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return ("-" if d < 0 else "") + f"{mantissa}E{exponent}"


def _digits(d: float) -> tuple[str, int]:
    # The shortest digits (ICU's; not Java's two-digit rule for subnormals).
    _, digits, exponent = Decimal(repr(abs(d))).as_tuple()
    assert isinstance(exponent, int)
    return "".join(map(str, digits)).rstrip("0") or "0", len(digits) - 1 + exponent


# --- the compiler ------------------------------------------------------------------------------


def _null_error(what: str) -> Exception:
    # Java's NullPointerException on unboxing a NULL.
    return TypeError(f"NULL {what}")


def _boundary(fn: Fn) -> Fn:
    """ksqlDB's ``evaluateOrReturnNull``: a processing error inside makes this value NULL."""

    def guarded(row: Row) -> Any:
        try:
            return fn(row)
        except Exception:
            return None

    return guarded


def _const(value: Any) -> Fn:
    return lambda _row: value


def _getter(key: str) -> Fn:
    return operator.itemgetter(key)


class _Compiler:
    def __init__(self, scope: Scope, lambda_types: Mapping[str, SqlType] | None = None) -> None:
        self.scope = scope
        self._lambda_types = dict(lambda_types or {})
        self._terms: dict[Expr, Term] = {}

    def term(self, expr: Expr) -> Term:
        cached = self._terms.get(expr)
        if cached is not None:
            return cached
        bound = self.scope.bound(expr)
        if bound is not None:
            term: Term = (_getter(bound[0]), bound[1])
        else:
            method = getattr(self, "_" + type(expr).__name__.lower(), None)
            if method is None:
                raise Unsupported(f"Expression not supported: {format_expression(expr)}")
            term = method(expr)
        self._terms[expr] = term
        return term

    def type_of(self, expr: Expr) -> SqlType | None:
        return self.term(expr)[1]

    # leaves --------------------------------------------------------------------------------

    def _literal(self, e: Literal) -> Term:
        return _const(e.value), e.type

    def _columnref(self, e: ColumnRef) -> Term:
        row_key, sql_type = self.scope.resolve(e)
        return _getter(row_key), sql_type

    def _lambdavariable(self, e: LambdaVariable) -> Term:
        sql_type = self._lambda_types.get(e.name)
        if sql_type is None:
            raise KsqlError(f"Unknown lambda variable {e.name}")
        return _getter(_lambda_key(e.name)), sql_type

    def _lambda(self, e: Lambda) -> Term:
        raise KsqlError(
            f"A lambda is only an argument of FILTER, TRANSFORM or REDUCE: {format_expression(e)}"
        )

    # structure -----------------------------------------------------------------------------

    def _dereference(self, e: Dereference) -> Term:
        base, base_type = self.term(e.base)
        if base_type is None or base_type.name != "STRUCT":
            raise KsqlError(f"Can only dereference Struct type, instead got {base_type}")
        field_type = dict(base_type.fields).get(e.field)
        if field_type is None:
            raise KsqlError(f"Could not find field '{e.field}' in '{format_expression(e.base)}'.")
        name = e.field

        def dereference(row: Row) -> Any:
            struct = base(row)
            return None if struct is None else struct.get(name)

        return dereference, field_type

    def _subscript(self, e: Subscript) -> Term:
        base, base_type = self.term(e.base)
        index, index_type = self.term(e.index)
        if base_type is not None and base_type.name == "MAP":

            def lookup(row: Row) -> Any:
                mapping = base(row)
                return None if mapping is None else mapping.get(index(row))

            return lookup, base_type.element
        if base_type is not None and base_type.name == "ARRAY":
            if index_type is not None and index_type.name not in ("INTEGER", "BIGINT"):
                raise KsqlError(f"Array index must be an INTEGER, got {index_type}")

            def element(row: Row) -> Any:
                values = base(row)
                if values is None:
                    return None
                i = index(row)
                if i is None:
                    raise _null_error("array index")
                j = i - 1 if i >= 0 else len(values) + i  # 1-based; negative from the end
                return values[j] if 0 <= j < len(values) else None

            return element, base_type.element
        hint = ""
        if base_type is not None and base_type.name == "STRUCT":
            hint = f" Use the dereference operator for STRUCTS: {format_expression(e.base)}->"
            hint += format_expression(e.index)
        raise KsqlError(
            f"Subscript expression ({format_expression(e)}) do not apply to {base_type}.{hint}"
        )

    def _arrayconstructor(self, e: ArrayConstructor) -> Term:
        if not e.items:
            raise KsqlError(
                "Array constructor cannot be empty. Please supply at least one element "
                "(see https://github.com/confluentinc/ksql/issues/4239)."
            )
        element_type, items = self._coerce(e.items)
        if element_type is None:
            raise KsqlError(
                "Cannot construct an array with all NULL elements "
                "(see https://github.com/confluentinc/ksql/issues/4239). As a workaround, you "
                "may cast a NULL value to the desired type."
            )
        fns = [_boundary(self.term(item)[0]) for item in items]
        return (lambda row: [f(row) for f in fns]), array_type(element_type)

    def _mapconstructor(self, e: MapConstructor) -> Term:
        if not e.entries:
            raise KsqlError(
                "Map constructor cannot be empty. Please supply at least one key value pair "
                "(see https://github.com/confluentinc/ksql/issues/4239)."
            )
        key_type, keys = self._coerce([k for k, _ in e.entries])
        value_type, values = self._coerce([v for _, v in e.entries])
        for what, found in (("keys", key_type), ("values", value_type)):
            if found is None:
                raise KsqlError(
                    f"Cannot construct a map with all NULL {what} "
                    "(see https://github.com/confluentinc/ksql/issues/4239). As a workaround, "
                    f"you may cast a NULL {what[:-1]} to the desired type."
                )
        assert key_type is not None and value_type is not None
        pairs = [
            (_boundary(self.term(k)[0]), _boundary(self.term(v)[0]))
            for k, v in zip(keys, values, strict=True)
        ]
        return (lambda row: {k(row): v(row) for k, v in pairs}), map_type(key_type, value_type)

    def _structconstructor(self, e: StructConstructor) -> Term:
        fields = []
        for name, value in e.fields:
            fn, sql_type = self.term(value)
            if sql_type is None:
                raise KsqlError(
                    "Can't infer a type of null. Please explicitly cast it to a required type, "
                    "e.g. CAST(null AS VARCHAR)."
                )
            fields.append((name, _boundary(fn), sql_type))
        getters = [(name, fn) for name, fn, _ in fields]
        struct_type = SqlType("STRUCT", fields=tuple((n, t) for n, _, t in fields))
        return (lambda row: {name: fn(row) for name, fn in getters}), struct_type

    # operators -----------------------------------------------------------------------------

    def _unary(self, e: Unary) -> Term:
        fn, sql_type = self.term(e.operand)
        if e.op == "NOT":
            if sql_type is None or sql_type.name != "BOOLEAN":
                raise KsqlError(f"Not expression expects a boolean value.  Actual {sql_type}")

            def negate(row: Row) -> bool:
                value = fn(row)
                if value is None:
                    raise _null_error("operand of NOT")
                return not value

            return negate, BOOLEAN
        if not is_numeric(sql_type):
            what = "Negation" if e.op == "-" else "Unary plus"
            raise KsqlError(f"{what} on unsupported type: {sql_type}")
        assert sql_type is not None
        if e.op == "+":

            def plus(row: Row) -> Any:
                value = fn(row)
                if value is None:
                    raise _null_error("operand of +")
                return value

            return plus, sql_type
        wrap = {"INTEGER": wrap_int, "BIGINT": wrap_long}.get(sql_type.name)
        if wrap is None:
            return (lambda row: -fn(row)), sql_type
        return (lambda row: wrap(-fn(row))), sql_type

    def _binary(self, e: Binary) -> Term:
        op = e.op.upper()
        if op in ("AND", "OR"):
            return self._logical(e, op)
        if op in _COMPARISONS:
            return self._comparison(e.left, e.right, op)
        if op in _ARITHMETIC:
            return self._arithmetic(e)
        if op == "||":
            return self.term(FunctionCall("CONCAT", (e.left, e.right)))
        raise Unsupported(f"Operator not supported: {e.op}")

    def _logical(self, e: Binary, op: str) -> Term:
        left, left_type = self.term(e.left)
        right, right_type = self.term(e.right)
        if not (left_type == BOOLEAN and right_type == BOOLEAN):
            raise KsqlError(
                f"Logical binary expects two boolean values.  Actual {left_type} and {right_type}"
            )
        # Java's && and || on Boolean objects: short-circuit (on FALSE for AND, TRUE for OR),
        # and a NULL operand that gets evaluated is an error.
        decisive = op == "OR"
        operand = f"operand of {op}"

        def logical(row: Row) -> bool:
            a = left(row)
            if a is None:
                raise _null_error(operand)
            if bool(a) == decisive:
                return decisive
            b = right(row)
            if b is None:
                raise _null_error(operand)
            return b

        return logical, BOOLEAN

    def _isdistinctfrom(self, e: IsDistinctFrom) -> Term:
        op = "IS NOT DISTINCT FROM" if e.negated else "IS DISTINCT FROM"
        return self._comparison(e.left, e.right, op)

    def _comparison(self, left_expr: Expr, right_expr: Expr, op: str) -> Term:
        left_expr, right_expr = _magic_timestamp(left_expr, right_expr)
        left, lt = self.term(left_expr)
        right, rt = self.term(right_expr)
        kind = _COMPARISONS[op]
        if lt is None or rt is None:
            shown = "IS DISTINCT FROM" if op.endswith("DISTINCT FROM") else op
            raise KsqlError(
                f"Comparison with NULL not supported: {lt.name if lt else 'NULL'} {shown} "
                f"{rt.name if rt else 'NULL'}\nUse 'IS NULL' or 'IS NOT NULL' instead."
            )
        if not _valid_comparison(lt, kind, rt):
            raise KsqlError(
                f"Cannot compare {format_expression(left_expr)} ({lt}) to "
                f"{format_expression(right_expr)} ({rt}) with {kind}."
            )
        convert_left, convert_right = _comparison_conversions(lt, rt)
        left = _then(left, convert_left)
        right = _then(right, convert_right)
        if lt.name == "BYTES":
            left, right = _then(left, _signed_bytes), _then(right, _signed_bytes)
        if kind in ("IS_DISTINCT_FROM", "IS_NOT_DISTINCT_FROM"):
            distinct = kind == "IS_DISTINCT_FROM"

            def distinct_from(row: Row) -> bool:
                a, b = left(row), right(row)
                if a is None or b is None:
                    return ((a is None) != (b is None)) == distinct
                return (a != b) == distinct

            return distinct_from, BOOLEAN
        compare = _OPERATORS[kind]

        def comparison(row: Row) -> bool:
            a = left(row)
            if a is None:
                return False
            b = right(row)
            if b is None:
                return False
            return compare(a, b)

        return comparison, BOOLEAN

    def _arithmetic(self, e: Binary) -> Term:
        left, lt = self.term(e.left)
        right, rt = self.term(e.right)
        try:
            result = _arithmetic_type(e.op, lt, rt)
        except KsqlError as error:
            raise KsqlError(
                f"Error processing expression: {format_expression(e)}. {error.message}"
            ) from None
        assert lt is not None and rt is not None
        if result.name == "DECIMAL":
            return _decimal_arithmetic(e.op, left, lt, right, rt, result), result
        if result.name == "STRING":
            return (lambda row: left(row) + right(row)), STRING
        if lt.name == "DECIMAL":
            left = _then(left, float)
        if rt.name == "DECIMAL":
            right = _then(right, float)
        if result.name == "DOUBLE":
            fn = _DOUBLE_OPS[e.op]
            return (lambda row: fn(left(row), right(row))), DOUBLE
        op = _INTEGRAL_OPS[e.op]
        if result.name == "BIGINT":

            def bigint(row: Row) -> int:
                v = op(left(row), right(row))
                return v if -(2**63) <= v < 2**63 else wrap_long(v)

            return bigint, BIGINT

        def integer(row: Row) -> int:
            v = op(left(row), right(row))
            return v if -(2**31) <= v < 2**31 else wrap_int(v)

        return integer, INTEGER

    # predicates ----------------------------------------------------------------------------

    def _isnull(self, e: IsNull) -> Term:
        fn, _ = self.term(e.operand)
        if e.negated:
            return (lambda row: fn(row) is not None), BOOLEAN
        return (lambda row: fn(row) is None), BOOLEAN

    def _like(self, e: Like) -> Term:
        value, value_type = self.term(e.operand)
        pattern, pattern_type = self.term(e.pattern)
        for t in (value_type, pattern_type):
            if t is not None and t.name != "STRING":
                raise KsqlError(f"LIKE requires STRING operands, got {t}")
        escape = e.escape
        if isinstance(e.pattern, Literal) and isinstance(e.pattern.value, str):
            try:
                compiled = _like_regex(e.pattern.value, escape)
            except ValueError:
                compiled = None  # raised again for every row, as ksqlDB does
            if compiled is not None:
                fixed = compiled

                def like_literal(row: Row) -> bool:
                    v = value(row)
                    if v is None:
                        raise _null_error("LIKE operand")
                    return fixed.fullmatch(v) is not None

                return self._maybe_not(like_literal, e.negated), BOOLEAN

        def like(row: Row) -> bool:
            v, p = value(row), pattern(row)
            if v is None or p is None:
                raise _null_error("LIKE operand")
            return _like_regex(p, escape).fullmatch(v) is not None

        return self._maybe_not(like, e.negated), BOOLEAN

    @staticmethod
    def _maybe_not(fn: Fn, negated: bool) -> Fn:
        return (lambda row: not fn(row)) if negated else fn

    def _between(self, e: Between) -> Term:
        low = self._comparison(e.operand, e.low, ">=")[0]
        high = self._comparison(e.operand, e.high, "<=")[0]
        return self._maybe_not(lambda row: low(row) and high(row), e.negated), BOOLEAN

    def _inlist(self, e: InList) -> Term:
        # ksqlDB (InListEvaluator): NULL items never match, the operand and the items are
        # coerced to one type, a NULL operand is FALSE (so NOT IN of NULL is TRUE).
        items = [i for i in e.items if not (isinstance(i, Literal) and i.value is None)]
        try:
            _, coerced = self._coerce([e.operand, *items])
        except KsqlError as error:
            raise CodegenError(error.message) from None
        value = self.term(coerced[0])[0]
        constants: list[Any] = []
        dynamic: list[Fn] = []
        for item in coerced[1:]:
            if isinstance(item, Literal):
                constants.append(item.value)
            else:
                dynamic.append(self.term(item)[0])
        # Literal items are scalars of the common type: a set finds them at once.
        fixed = frozenset(constants)

        if not dynamic:

            def in_constants(row: Row) -> bool:
                v = value(row)
                return v is not None and v in fixed

            return self._maybe_not(in_constants, e.negated), BOOLEAN

        def in_list(row: Row) -> bool:
            v = value(row)
            candidates = [f(row) for f in dynamic]
            if v is None:
                return False
            return (bool(fixed) and v in fixed) or any(c is not None and c == v for c in candidates)

        return self._maybe_not(in_list, e.negated), BOOLEAN

    def _case(self, e: Case) -> Term:
        whens = e.whens
        if e.operand is not None:
            # A simple CASE compares its operand with each WHEN value (ksqlDB itself only
            # runs the searched form).
            whens = tuple((Binary("=", e.operand, value), result) for value, result in whens)
        result_type: SqlType | None = None
        branches = []
        for condition, result in whens:
            cond, cond_type = self.term(condition)
            if cond_type != BOOLEAN:
                raise KsqlError(
                    "WHEN operand type should be boolean.\n"
                    f"Type for '{format_expression(condition)}' is {cond_type}"
                )
            fn, t = self.term(result)
            if t is not None and result_type is not None and t != result_type:
                raise KsqlError(
                    "Invalid Case expression. Type for all 'THEN' clauses should be the same.\n"
                    f"THEN expression 'WHEN {format_expression(condition)} THEN "
                    f"{format_expression(result)}' has type: {t}.\n"
                    f"Previous THEN expression(s) type: {result_type}."
                )
            result_type = result_type or t
            branches.append((cond, fn))
        otherwise: Fn = _const(None)
        if e.otherwise is not None:
            otherwise, t = self.term(e.otherwise)
            if t is not None and result_type is not None and t != result_type:
                raise KsqlError(
                    "Invalid Case expression. Type for the default clause should be the same as "
                    f"for 'THEN' clauses.\nTHEN type: {result_type}.\nDEFAULT type: {t}."
                )
            result_type = result_type or t
        if result_type is None:
            raise KsqlError("Invalid Case expression. All case branches have NULL type")

        def case(row: Row) -> Any:
            for cond, fn in branches:
                matched = cond(row)
                if matched is None:
                    raise _null_error("CASE condition")
                if matched:
                    return fn(row)
            return otherwise(row)

        return case, result_type

    def _cast(self, e: Cast) -> Term:
        fn, source = self.term(e.operand)
        if source is not None and source != e.type:
            convert = _converter(source, e.type)
            if convert is not None:
                inner = fn

                def cast(row: Row) -> Any:
                    value = inner(row)
                    return None if value is None else convert(value)

                fn = cast
        return _boundary(fn), e.type

    def _functioncall(self, e: FunctionCall) -> Term:
        if aggregates.is_aggregate(e.name):
            raise KsqlError(
                f"{e.name} is an aggregate function: use it in the SELECT or HAVING of a query "
                f"with GROUP BY ({format_expression(e)})"
            )
        if e.star:
            raise KsqlError(f"Only COUNT takes *: {format_expression(e)}")
        if any(isinstance(arg, Lambda) for arg in e.args):
            return self._higher_order(e)
        terms = [self.term(arg) for arg in e.args]
        resolved = REGISTRY.resolve(e.name, [t for _, t in terms])
        fns = []
        for arg, (fn, actual), target in zip(e.args, terms, resolved.arg_types, strict=True):
            # An argument ksqlDB converts is wrapped in a CAST; a function-call or struct-field
            # argument is evaluated on its own: either way an error there is a NULL argument.
            convert = None
            if actual is not None and target is not None and actual != target:
                convert = _converter(actual, target)
            if convert is not None:
                fn = _boundary(_then(fn, convert))
            elif isinstance(arg, (FunctionCall, Dereference)):
                fn = _boundary(fn)
            fns.append(fn)
        if len(fns) > 1 and all(isinstance(arg, Literal) for arg in e.args[1:]):
            # FORMAT_TIMESTAMP(x, 'pattern', 'zone'): the constants are evaluated once.
            fixed = [fn({}) for fn in fns[1:]]
            if all(value is not None for value in fixed):
                return _call_fixed(resolved.fn, fns[0], fixed, resolved.nulls), resolved.type
        return _call(resolved.fn, fns, resolved.nulls), resolved.type

    def _higher_order(self, e: FunctionCall) -> Term:
        """FILTER, TRANSFORM and REDUCE over an ARRAY or a MAP, as ksqlDB's lambda UDFs."""
        name, args = e.name, e.args
        collection, ct = self.term(args[0])
        is_map = ct is not None and ct.name == "MAP"
        if ct is None or ct.name not in ("ARRAY", "MAP"):
            raise KsqlError(f"{name} expects an ARRAY or a MAP, got {ct}: {format_expression(e)}")
        item_types = (ct.key, ct.element) if is_map else (ct.element,)
        if name == "FILTER" and len(args) == 2:
            keep = self._lambda_body(args[1], item_types, e)
            if keep[1] != BOOLEAN:
                raise KsqlError(f"FILTER needs a boolean lambda: {format_expression(e)}")
            return _filter(collection, keep[0], args[1], is_map), ct
        if name == "TRANSFORM" and len(args) == (3 if is_map else 2):
            bodies = [self._lambda_body(arg, item_types, e) for arg in args[1:]]
            if any(t is None for _, t in bodies):
                raise KsqlError(f"TRANSFORM cannot infer a type of null: {format_expression(e)}")
            if is_map:
                (key_fn, key_type), (value_fn, value_type) = bodies
                assert key_type is not None and value_type is not None
                fn = _transform_map(collection, key_fn, value_fn, args[1], args[2])
                return fn, map_type(key_type, value_type)
            (body, body_type) = bodies[0]
            assert body_type is not None
            return _transform_array(collection, body, args[1]), array_type(body_type)
        if name == "REDUCE" and len(args) == 3:
            initial, state_type = self.term(args[1])
            if state_type is None:
                raise KsqlError(f"REDUCE cannot infer a type of null: {format_expression(e)}")
            body, body_type = self._lambda_body(args[2], (state_type, *item_types), e)
            if body_type is not None and body_type != state_type:
                raise KsqlError(
                    f"REDUCE's lambda returns {body_type}, its initial state is {state_type}: "
                    f"{format_expression(e)}"
                )
            return _reduce(collection, initial, body, args[2], is_map), state_type
        raise KsqlError(
            f"Function '{name}' does not accept these lambda arguments: {format_expression(e)}"
        )

    def _lambda_body(
        self, arg: Expr, types: tuple[SqlType | None, ...], call: FunctionCall
    ) -> Term:
        if not isinstance(arg, Lambda) or len(arg.params) != len(types):
            raise KsqlError(
                f"{call.name} needs a lambda of {len(types)} argument(s): {format_expression(call)}"
            )
        bound = {**self._lambda_types}
        for param, t in zip(arg.params, types, strict=True):
            assert t is not None
            bound[param] = t
        return _Compiler(self.scope, bound).term(arg.body)

    def _intervalunit(self, e: Expr) -> Term:
        raise Unsupported(f"Time unit arguments are not supported: {format_expression(e)}")

    # coercion of user lists (IN, ARRAY[...], MAP(...)): ksqlDB's CoercionUtil -------------

    def _coerce(self, exprs: Iterable[Expr]) -> tuple[SqlType | None, list[Expr]]:
        typed = [(self.type_of(e), e) for e in exprs]
        common: SqlType | None = None
        for t, e in typed:
            common = self._common(t, e, common)
        if common is None:
            return None, [e for _, e in typed]
        return common, [_to_common(t, e, common) for t, e in typed]

    def _common(self, t: SqlType | None, e: Expr, common: SqlType | None) -> SqlType | None:
        if common is None:
            return t
        if t is None:
            return common
        if isinstance(e, ArrayConstructor):
            if common.name != "ARRAY":
                raise _coercion_failure(e, t, common)
            assert common.element is not None
            element = self._structured_common(common.element, list(e.items), e, t, common)
            return array_type(element)
        if isinstance(e, MapConstructor):
            if common.name != "MAP":
                raise _coercion_failure(e, t, common)
            assert common.key is not None and common.element is not None
            keys = [k for k, _ in e.entries]
            values = [v for _, v in e.entries]
            key = self._structured_common(common.key, keys, e, t, common)
            value = self._structured_common(common.element, values, e, t, common)
            return map_type(key, value)
        if isinstance(e, StructConstructor):
            if common.name != "STRUCT":
                raise _coercion_failure(e, t, common)
            return self._struct_common(e, t, common)
        if isinstance(e, Literal) and e.type == STRING and isinstance(e.value, str):
            if is_numeric(common):
                return _string_numeric_common(e.value, common)
            if common.name == "BOOLEAN":
                if parse_java_boolean(e.value.strip()) is None:
                    raise KsqlError(f'invalid input syntax for type BOOLEAN: "{e.value}".')
                return common
        lax = isinstance(e, Literal)
        found = _can_coerce(t, common, lax) or _can_coerce(common, t, lax)
        if found is None:
            raise _coercion_failure(e, t, common)
        return found

    def _structured_common(
        self,
        target: SqlType,
        items: list[Expr],
        outer: Expr,
        outer_type: SqlType,
        outer_common: SqlType,
    ) -> SqlType:
        common: SqlType | None = target
        try:
            for item in items:
                common = self._common(self.type_of(item), item, common)
        except _CoercionFailure as e:
            raise _coercion_failure(outer, outer_type, outer_common) from e
        assert common is not None
        return common

    def _struct_common(self, e: StructConstructor, t: SqlType, common: SqlType) -> SqlType:
        source = dict(e.fields)
        target = dict(common.fields)
        names = list(dict.fromkeys([n for n, _ in e.fields] + [n for n, _ in common.fields]))
        fields = []
        try:
            for name in names:
                if name not in target:
                    field_type = self.type_of(source[name])
                elif name not in source:
                    field_type = target[name]
                else:
                    value = source[name]
                    field_type = self._common(self.type_of(value), value, target[name])
                if field_type is None:
                    raise _coercion_failure(e, t, common)
                fields.append((name, field_type))
        except _CoercionFailure as error:
            raise _coercion_failure(e, t, common) from error
        return SqlType("STRUCT", fields=tuple(fields))


class _CoercionFailure(KsqlError):
    pass


def _coercion_failure(e: Expr, t: SqlType | None, common: SqlType) -> _CoercionFailure:
    return _CoercionFailure(
        f"operator does not exist: {common} = {t} ({format_expression(e)})\n"
        "Hint: You might need to add explicit type casts."
    )


def _string_numeric_common(text: str, target: SqlType) -> SqlType:
    try:
        source = _string_numeric_type(text)
    except ValueError:
        raise KsqlError(f'invalid input syntax for type {target.name}: "{text}".') from None
    if DOUBLE in (source, target) or "DOUBLE" in (source.name, target.name):
        return DOUBLE
    if source.name == "DECIMAL" or target.name == "DECIMAL":
        return widen_decimal(source, target)
    return target if can_implicitly_cast(source, target) else source


def _string_numeric_type(text: str) -> SqlType:
    value = parse_java_decimal(text.strip())
    exponent = value.as_tuple().exponent
    if not any(c in text for c in ".eE") and exponent == 0:
        if -(2**31) < value < 2**31 - 1:
            return INTEGER
        if -(2**63) < value < 2**63 - 1:
            return BIGINT
    return _decimal_of(value)


def _decimal_of(value: Decimal) -> SqlType:
    """The DECIMAL type of a literal's value (DecimalUtil.fromValue)."""
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    scale = max(-exponent, 0)
    if abs(value) < 1:
        return decimal_type(scale + 1, scale)
    precision = len(digits) + max(exponent, 0)
    return decimal_type(precision, scale)


def _can_coerce(source: SqlType, target: SqlType, lax: bool) -> SqlType | None:
    """DefaultSqlValueCoercer.canCoerce: STRICT for expressions, LAX for literals (strings
    to and from numbers and booleans)."""
    s, t = source.name, target.name
    if s == t and s in (
        "BOOLEAN",
        "INTEGER",
        "BIGINT",
        "DOUBLE",
        "STRING",
        "TIMESTAMP",
        "TIME",
        "DATE",
        "BYTES",
    ):
        return target
    if s in ("INTEGER", "BIGINT", "DECIMAL") and t == "DECIMAL":
        return widen_decimal(source, target)
    if s == "INTEGER" and t == "BIGINT":
        return target
    if s in ("INTEGER", "BIGINT", "DECIMAL") and t == "DOUBLE":
        return target
    if s == "STRING" and t in ("TIMESTAMP", "TIME", "DATE", "BYTES"):
        return target
    if s == t == "ARRAY":
        assert source.element is not None and target.element is not None
        element = _can_coerce(source.element, target.element, lax)
        return None if element is None else array_type(element)
    if s == t == "MAP":
        assert source.key is not None and source.element is not None
        assert target.key is not None and target.element is not None
        key = _can_coerce(source.key, target.key, lax)
        value = _can_coerce(source.element, target.element, lax)
        return None if key is None or value is None else map_type(key, value)
    if s == t == "STRUCT":
        source_fields, target_fields = dict(source.fields), dict(target.fields)
        fields = []
        for name in dict.fromkeys([*source_fields, *target_fields]):
            if name not in source_fields:
                fields.append((name, target_fields[name]))
            elif name not in target_fields:
                fields.append((name, source_fields[name]))
            else:
                common = _can_coerce(source_fields[name], target_fields[name], lax)
                if common is None:
                    return None
                fields.append((name, common))
        return SqlType("STRUCT", fields=tuple(fields))
    if (
        lax
        and t == "STRING"
        and s in ("BOOLEAN", "INTEGER", "BIGINT", "DECIMAL", "DOUBLE", "TIMESTAMP", "TIME", "DATE")
    ):
        return target
    if lax and s == "STRING" and t in ("BOOLEAN", "INTEGER", "BIGINT", "DECIMAL", "DOUBLE"):
        return target
    return None


def _to_common(t: SqlType | None, e: Expr, common: SqlType) -> Expr:
    if t is None or t == common:
        return e
    if isinstance(e, Literal):
        return Literal(_coerce_literal(e.value, t, common), common)
    return Cast(e, common)


def _coerce_literal(value: Any, source: SqlType, target: SqlType) -> Any:
    """A literal's value as the LAX coercer turns it into ``target``."""
    s, t = source.name, target.name
    if t == "STRING":
        if s == "BOOLEAN":
            return "true" if value else "false"
        if s == "DECIMAL":
            return format(value, "f")
        if s == "DOUBLE":
            return java_double_str(value)
        return str(value)
    if s == "STRING":
        text = value.strip()
        if t == "BOOLEAN":
            return parse_java_boolean(text)
        if t in ("INTEGER", "BIGINT"):
            return parse_java_int(text, 32 if t == "INTEGER" else 64)
        if t == "DOUBLE":
            return parse_java_double(text)
        if t == "DECIMAL":
            assert target.precision is not None and target.scale is not None
            return decimal_fit(parse_java_decimal(text), target.precision, target.scale, None)
    if t == "DOUBLE":
        return float(value)
    if t == "DECIMAL":
        assert target.precision is not None and target.scale is not None
        text = java_double_str(value) if s == "DOUBLE" else str(value)
        return decimal_fit(Decimal(text), target.precision, target.scale, None)
    return value


def _magic_timestamp(left: Expr, right: Expr) -> tuple[Expr, Expr]:
    """ksqlDB compares ROWTIME, WINDOWSTART and WINDOWEND with a string literal as a
    timestamp: ``ROWTIME > '2020-01-01T00:00:00'``."""

    def rewritten(column: Expr, other: Expr) -> Expr:
        if (
            isinstance(column, ColumnRef)
            and column.name in ("ROWTIME", "WINDOWSTART", "WINDOWEND")
            and isinstance(other, Literal)
            and isinstance(other.value, str)
        ):
            return Literal(parse_timestamp_text(other.value), BIGINT)
        return other

    return rewritten(right, left), rewritten(left, right)


# --- comparisons -------------------------------------------------------------------------------

_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "EQUAL": operator.eq,
    "NOT_EQUAL": operator.ne,
    "LESS_THAN": operator.lt,
    "LESS_THAN_OR_EQUAL": operator.le,
    "GREATER_THAN": operator.gt,
    "GREATER_THAN_OR_EQUAL": operator.ge,
}
_EQUALITY = {"EQUAL", "NOT_EQUAL", "IS_DISTINCT_FROM", "IS_NOT_DISTINCT_FROM"}
_TIME_TYPES = {"TIMESTAMP", "DATE", "TIME"}


def _valid_comparison(left: SqlType, kind: str, right: SqlType) -> bool:
    """ksqlDB's ComparisonUtil.isValidComparison, decided by the left side's type."""
    lt, rt = left.name, right.name
    if is_numeric(left):
        return is_numeric(right)
    if lt == "STRING":
        return rt == "STRING" or rt in _TIME_TYPES
    if lt in ("BOOLEAN", "ARRAY", "MAP", "STRUCT"):
        return rt == lt and kind in _EQUALITY
    if lt == "TIME":
        return rt in ("TIME", "STRING")
    if lt in ("DATE", "TIMESTAMP"):
        return rt in ("DATE", "TIMESTAMP", "STRING")
    return lt == rt == "BYTES"


_MS_PER_DAY = 86_400_000


def _comparison_conversions(
    left: SqlType, right: SqlType
) -> tuple[Callable[[Any], Any] | None, Callable[[Any], Any] | None]:
    """What each side is compared as (SqlToJavaVisitor.visitComparisonExpression)."""
    names = {left.name, right.name}
    if "DECIMAL" in names:
        return _to_big_decimal(left), _to_big_decimal(right)
    if names & _TIME_TYPES:
        if "TIME" in names:
            parse: Callable[[str], int] = parse_time_text
        elif "TIMESTAMP" in names:
            parse = parse_timestamp_text
        else:
            parse = parse_date_text

        def as_time(t: SqlType) -> Callable[[Any], Any] | None:
            if t.name == "STRING":
                return lambda s: parse(s)
            if t.name == "DATE" and "TIMESTAMP" in names:
                return lambda days: days * _MS_PER_DAY
            return None

        return as_time(left), as_time(right)
    if "DOUBLE" in names and names & {"INTEGER", "BIGINT"}:
        widen = {"INTEGER": float, "BIGINT": float}
        return widen.get(left.name), widen.get(right.name)
    return None, None


def _to_big_decimal(t: SqlType) -> Callable[[Any], Any] | None:
    if t.name == "DECIMAL":
        return None
    if t.name == "DOUBLE":
        return lambda d: Decimal(repr(d))  # BigDecimal.valueOf(double)
    return Decimal


def _signed_bytes(b: bytes) -> bytes:
    # ByteBuffer.compareTo compares Java's signed bytes.
    return b.translate(_SIGNED)


_SIGNED = bytes((i + 128) % 256 for i in range(256))


def _then(fn: Fn, convert: Callable[[Any], Any] | None) -> Fn:
    if convert is None:
        return fn

    def converted(row: Row) -> Any:
        value = fn(row)
        return None if value is None else convert(value)

    return converted


# --- arithmetic --------------------------------------------------------------------------------


def _arithmetic_type(op: str, left: SqlType | None, right: SqlType | None) -> SqlType:
    """ksqlDB's Operator.resultType."""
    if left is None or right is None:
        raise KsqlError(f"Arithmetic on types {left} and {right} are not supported.")
    if op == "+" and left.name == right.name == "STRING":
        return STRING
    if is_numeric(left) and is_numeric(right):
        if can_implicitly_cast(left, right):
            if right.name != "DECIMAL":
                return right
            return _decimal_result(op, to_decimal(left), right)
        if left.name != "DECIMAL":
            return left
        return _decimal_result(op, left, to_decimal(right))
    raise KsqlError(f"Unsupported arithmetic types. {left.name} {right.name}")


def _decimal_result(op: str, left: SqlType, right: SqlType) -> SqlType:
    """SqlDecimal.add/subtract/multiply/divide/modulus."""
    lp, ls, rp, rs = left.precision, left.scale, right.precision, right.scale
    assert lp is not None and ls is not None and rp is not None and rs is not None
    if op in "+-":
        scale = max(ls, rs)
        return decimal_type(scale + max(lp - ls, rp - rs) + 1, scale)
    if op == "*":
        return decimal_type(lp + rp + 1, ls + rs)
    if op == "/":
        scale = max(6, ls + rp + 1)
        return decimal_type(lp - ls + rs + scale, scale)
    scale = max(ls, rs)
    return decimal_type(min(lp - ls, rp - rs) + scale, scale)


_EXACT = Context(prec=1000, traps=[Inexact, InvalidOperation, DivisionByZero])


def _decimal_arithmetic(
    op: str, left: Fn, lt: SqlType, right: Fn, rt: SqlType, result: SqlType
) -> Fn:
    # BigDecimal.add(x, new MathContext(precision, UNNECESSARY)).setScale(scale): a result that
    # needs rounding to fit is an error, as is a division by zero.
    assert result.precision is not None and result.scale is not None
    context = Context(
        prec=result.precision,
        traps=[Inexact, InvalidOperation, DivisionByZero, DecimalOverflow],
    )
    compute = {
        "+": context.add,
        "-": context.subtract,
        "*": context.multiply,
        "/": context.divide,
        "%": context.remainder,
    }[op]
    scale = quantum(result.scale)
    convert_left = None if lt.name == "DECIMAL" else Decimal
    convert_right = None if rt.name == "DECIMAL" else Decimal
    left, right = _then(left, convert_left), _then(right, convert_right)

    def decimal(row: Row) -> Decimal:
        return compute(left(row), right(row)).quantize(scale, context=_EXACT)

    return decimal


def _double_divide(a: float, b: float) -> float:
    try:
        return a / b
    except ZeroDivisionError:
        if a == 0 or a != a:
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)


def _double_modulo(a: float, b: float) -> float:
    try:
        return math.fmod(a, b)
    except (ValueError, ZeroDivisionError):
        return math.nan


def _java_divide(a: int, b: int) -> int:
    q = abs(a) // abs(b)  # ZeroDivisionError: Java's ArithmeticException
    return q if (a < 0) == (b < 0) else -q


def _java_modulo(a: int, b: int) -> int:
    return a - b * _java_divide(a, b)


_DOUBLE_OPS: dict[str, Callable[[Any, Any], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": _double_divide,
    "%": _double_modulo,
}
_INTEGRAL_OPS: dict[str, Callable[[int, int], int]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": _java_divide,
    "%": _java_modulo,
}


# --- function calls ----------------------------------------------------------------------------


def _call_fixed(fn: Callable[..., Any], first: Fn, fixed: list[Any], nulls: bool) -> Fn:
    """:func:`_call` of ``fn(first, *fixed)``, the ``fixed`` arguments constant, not null."""
    if nulls:
        return lambda row: fn(first(row), *fixed)

    def call(row: Row) -> Any:
        x = first(row)
        return None if x is None else fn(x, *fixed)

    return call


def _call(fn: Callable[..., Any], args: list[Fn], nulls: bool) -> Fn:
    """The call, with its arguments evaluated first; NULL in, NULL out unless ``nulls``."""
    if not args:
        return lambda _row: fn()
    if len(args) == 1:
        (a,) = args
        if nulls:
            return lambda row: fn(a(row))

        def call1(row: Row) -> Any:
            x = a(row)
            return None if x is None else fn(x)

        return call1
    if len(args) == 2:
        a, b = args
        if nulls:
            return lambda row: fn(a(row), b(row))

        def call2(row: Row) -> Any:
            x, y = a(row), b(row)
            return None if x is None or y is None else fn(x, y)

        return call2
    if len(args) == 3 and not nulls:
        a, b, c = args

        def call3(row: Row) -> Any:
            x, y, z = a(row), b(row), c(row)
            return None if x is None or y is None or z is None else fn(x, y, z)

        return call3
    if nulls:
        return lambda row: fn(*[f(row) for f in args])

    def call(row: Row) -> Any:
        values = [f(row) for f in args]
        for v in values:
            if v is None:
                return None
        return fn(*values)

    return call


# --- lambdas -----------------------------------------------------------------------------------


def _lambda_key(name: str) -> str:
    return "\0" + name  # no column's row key


class _Frame(dict[str, Any]):
    """A row seen from a lambda's body: its variables, then the row's columns."""

    __slots__ = ("_row",)

    def __init__(self, row: Row, bindings: dict[str, Any]) -> None:
        super().__init__(bindings)
        self._row = row

    def __missing__(self, key: str) -> Any:
        return self._row[key]


def _keys(fn: Expr) -> list[str]:
    assert isinstance(fn, Lambda)
    return [_lambda_key(p) for p in fn.params]


def _filter(collection: Fn, keep: Fn, fn: Expr, is_map: bool) -> Fn:
    keys = _keys(fn)

    def kept(row: Row, *values: Any) -> bool:
        result = keep(_Frame(row, dict(zip(keys, values, strict=True))))
        if result is None:
            raise _null_error("FILTER condition")
        return result

    def filter_(row: Row) -> Any:
        values = collection(row)
        if values is None:
            return None
        if not is_map:
            return [v for v in values if kept(row, v)]
        out = {k: v for k, v in values.items() if kept(row, k, v)}
        if any(v is None for v in out.values()):
            raise _null_error("map value")  # Java's Collectors.toMap rejects NULL values
        return out

    return filter_


def _transform_array(collection: Fn, body: Fn, fn: Expr) -> Fn:
    (key,) = _keys(fn)

    def transform(row: Row) -> Any:
        values = collection(row)
        return None if values is None else [body(_Frame(row, {key: v})) for v in values]

    return transform


def _transform_map(collection: Fn, key_body: Fn, value_body: Fn, kf: Expr, vf: Expr) -> Fn:
    key_keys, value_keys = _keys(kf), _keys(vf)

    def transform(row: Row) -> Any:
        mapping = collection(row)
        if mapping is None:
            return None
        out = {}
        for k, v in mapping.items():
            new_key = key_body(_Frame(row, dict(zip(key_keys, (k, v), strict=True))))
            if new_key in out:
                raise ValueError(f"Duplicate key {new_key}")
            out[new_key] = value_body(_Frame(row, dict(zip(value_keys, (k, v), strict=True))))
        return out

    return transform


def _reduce(collection: Fn, initial: Fn, body: Fn, fn: Expr, is_map: bool) -> Fn:
    keys = _keys(fn)

    def reduce_(row: Row) -> Any:
        state = initial(row)
        if state is None:
            return None
        values = collection(row)
        if values is None:
            return state
        items = values.items() if is_map else ((v,) for v in values)
        for item in items:
            state = body(_Frame(row, dict(zip(keys, (state, *item), strict=True))))
        return state

    return reduce_


# --- casts -------------------------------------------------------------------------------------

Converter = Callable[[Any], Any]


def _converter(source: SqlType, target: SqlType) -> Converter | None:
    """CAST(value AS target) for a non-NULL ``value`` of ``source`` (CastEvaluator); None when
    nothing changes."""
    if source == target:
        return None
    s, t = source.name, target.name
    if t == "STRING":
        if s == "DECIMAL":
            return lambda d: format(d, "f")  # toPlainString
        if s == "TIMESTAMP":
            return format_timestamp_text
        if s == "DATE":
            return format_date_text
        if s == "TIME":
            return format_time_text
        if s in ("INTEGER", "BIGINT"):
            return str
        if s == "DOUBLE":
            return java_double_str
        if s in ("BOOLEAN", "ARRAY", "MAP", "STRUCT"):
            return lambda v: _java_string(v, source)
    elif t == "DECIMAL":
        assert target.precision is not None and target.scale is not None
        p, scale = target.precision, target.scale
        if s in ("INTEGER", "BIGINT"):
            rounded = Context(prec=p, rounding=ROUND_HALF_UP)
            return lambda v: decimal_fit(rounded.create_decimal(v), p, scale, None)
        if s == "DOUBLE":
            rounded = Context(prec=p, rounding=ROUND_HALF_UP)
            return lambda v: decimal_fit(
                rounded.create_decimal_from_float(v), p, scale, ROUND_HALF_UP
            )
        if s == "DECIMAL":
            return lambda d: decimal_fit(d, p, scale, ROUND_HALF_UP)
        if s == "STRING":
            return lambda v: decimal_fit(
                parse_java_decimal(v.strip(_BLANK)), p, scale, ROUND_HALF_UP
            )
    elif (converter := _SCALAR_CASTS.get((s, t))) is not None:
        return converter
    elif s == t == "ARRAY":
        assert source.element is not None and target.element is not None
        element = _nested(source.element, target.element, source, target)
        if element is None:
            return None
        return lambda values: [None if v is None else element(v) for v in values]
    elif s == t == "MAP":
        assert source.key is not None and target.key is not None
        assert source.element is not None and target.element is not None
        key = _nested(source.key, target.key, source, target) or _identity
        value = _nested(source.element, target.element, source, target) or _identity
        return lambda m: {
            None if k is None else key(k): None if v is None else value(v) for k, v in m.items()
        }
    elif s == t == "STRUCT":
        source_fields = dict(source.fields)
        plan = []
        for name, field_type in target.fields:
            if name in source_fields:
                convert = _nested(source_fields[name], field_type, source, target) or _identity
                plan.append((name, convert))
            else:
                plan.append((name, None))
        return lambda struct: {
            name: None if convert is None or (v := struct.get(name)) is None else convert(v)
            for name, convert in plan
        }
    raise CodegenError(f"Cast of {source} to {target} is not supported")


def _nested(
    source: SqlType, target: SqlType, outer_source: SqlType, outer_target: SqlType
) -> Converter | None:
    try:
        return _converter(source, target)
    except CodegenError:
        raise CodegenError(f"Cast of {outer_source} to {outer_target} is not supported") from None


def _identity(v: Any) -> Any:
    return v


# Java's String.trim strips every char up to U+0020.
_BLANK = "".join(map(chr, range(33)))


def _string_to_bytes(text: str) -> bytes:
    return base64.b64decode(text.strip(_BLANK), validate=True)


_SCALAR_CASTS: dict[tuple[str, str], Converter] = {
    ("INTEGER", "BIGINT"): _identity,
    ("INTEGER", "DOUBLE"): float,
    ("BIGINT", "INTEGER"): wrap_int,
    ("BIGINT", "DOUBLE"): float,
    ("DECIMAL", "INTEGER"): lambda d: wrap_int(int(d)),
    ("DECIMAL", "BIGINT"): lambda d: wrap_long(int(d)),
    ("DECIMAL", "DOUBLE"): float,
    ("DOUBLE", "INTEGER"): double_to_int,
    ("DOUBLE", "BIGINT"): double_to_long,
    # SqlBooleans.parseBoolean: a prefix of "true" or "yes" is TRUE, anything else FALSE.
    ("STRING", "BOOLEAN"): lambda s: parse_java_boolean(s.strip(_BLANK)) is True,
    ("STRING", "INTEGER"): lambda s: parse_java_int(s.strip(_BLANK), 32),
    ("STRING", "BIGINT"): lambda s: parse_java_int(s.strip(_BLANK), 64),
    ("STRING", "DOUBLE"): lambda s: parse_java_double(s.strip(_BLANK)),
    ("STRING", "TIMESTAMP"): lambda s: parse_timestamp_text(s.strip(_BLANK)),
    ("STRING", "TIME"): lambda s: parse_time_text(s.strip(_BLANK)),
    ("STRING", "DATE"): lambda s: parse_date_text(s.strip(_BLANK)),
    ("STRING", "BYTES"): _string_to_bytes,
    ("TIMESTAMP", "TIME"): lambda ms: ms % _MS_PER_DAY,
    ("TIMESTAMP", "DATE"): lambda ms: ms // _MS_PER_DAY,
    ("DATE", "TIMESTAMP"): lambda days: days * _MS_PER_DAY,
}


def _java_string(value: Any, sql_type: SqlType) -> str:
    """``String.valueOf`` of a value as ksqlDB holds it in Java: ``[1, 2]``, ``{k=1}``,
    ``Struct{A=1}`` (NULL fields left out), ``1.0E10``... (CAST(x AS STRING) of a collection)."""
    if value is None:
        return "null"
    name = sql_type.name
    if name == "BOOLEAN":
        return "true" if value else "false"
    if name == "DOUBLE":
        return java_double_str(value)
    if name == "ARRAY":
        assert sql_type.element is not None
        return "[" + ", ".join(_java_string(v, sql_type.element) for v in value) + "]"
    if name == "MAP":
        assert sql_type.key is not None and sql_type.element is not None
        key, element = sql_type.key, sql_type.element
        items = (f"{_java_string(k, key)}={_java_string(v, element)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if name == "STRUCT":
        types_ = dict(sql_type.fields)
        items = (
            f"{n}={_java_string(v, types_[n])}"
            for n, v in value.items()
            if v is not None and n in types_
        )
        return "Struct{" + ",".join(items) + "}"
    if name == "TIMESTAMP":
        # java.sql.Timestamp.toString: the JVM's zone (UTC), a fraction without trailing zeros.
        dt = to_datetime(value)
        fraction = f"{dt.microsecond // 1000:03}".rstrip("0") or "0"
        return dt.strftime("%Y-%m-%d %H:%M:%S") + "." + fraction
    if name == "DATE":
        return format_date_text(value)
    if name == "TIME":
        seconds = value // 1000
        return f"{seconds // 3600:02}:{seconds // 60 % 60:02}:{seconds % 60:02}"
    if name == "BYTES":
        return f"java.nio.HeapByteBuffer[pos=0 lim={len(value)} cap={len(value)}]"
    return str(value)


# --- LIKE --------------------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _like_regex(pattern: str, escape: str | None) -> re.Pattern[str]:
    """LikeEvaluator: ``%`` any run, ``_`` one char, the escape char makes the next literal."""
    parts, literal, escaped = [], [], False
    for c in pattern:
        if escaped:
            literal.append(c)
            escaped = False
        elif c == escape:
            escaped = True
        elif c in "%_":
            parts.append(re.escape("".join(literal)))
            literal = []
            parts.append(".*" if c == "%" else ".")
        else:
            literal.append(c)
    if escaped:
        raise ValueError("LIKE pattern must not end with escape character")
    parts.append(re.escape("".join(literal)))
    return re.compile("".join(parts))
