"""ksqlDB SQL text -> :mod:`streams.ksql.ast` statements.

The grammar is ``grammar.lark`` beside this module, run by Lark (pinned) as an **LALR(1)**
parser with Lark's contextual lexer, and the syntax tree is built by a transformer called during
the parse (no intermediate parse tree). Why LALR rather than Earley:

- speed: one pass, no ambiguity bookkeeping; ksqlDB's whole query-validation corpus (about 2,600
  statements) parses in about a second, and Lark's Earley parser with the same grammar took 60
  times as long on the corpus's statements;
- errors: an LALR parser stops at the first token that cannot continue the statement and knows
  exactly which tokens could have, so ``KsqlSyntaxError`` says "at or near X, expected Y" with
  its line and column (Earley reports far less precisely);
- checked grammar: Lark reports every conflict of an LALR grammar when it is built (the tests
  build it in debug mode and fail on any), so there is no silent ambiguity.

What LALR(1) needed: ksqlDB's grammar (ANTLR, SqlBase.g4) is followed in statements, clause
order, precedence and literal forms, reshaped where one token of lookahead is not enough; see
the comments in the grammar. The contextual lexer lexes a word as a keyword only where the
parser can accept that keyword, so ksqlDB's non-reserved keywords (KEY, SOURCE, SESSION, MAP,
...) remain usable as names; its reserved words are turned into a token no rule accepts, which
makes them syntax errors as names, as in ksqlDB.

The text is first split into statements at top-level ``;`` (outside strings, quoted names and
comments), then each statement is parsed on its own, so every statement carries its own text
and position and an error names the statement it is in.

The Lark parser is built once per process, and Lark's analysis is cached on disk (under the
user's cache directory) so a new process loads it in tens of milliseconds instead of a second.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, NoReturn

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from streams.ksql import ast
from streams.ksql.errors import KsqlSyntaxError

__all__ = ["parse", "parse_expression"]

_GRAMMAR = Path(__file__).with_name("grammar.lark")

#: ksqlDB's keywords that are not in its ``nonReserved`` rule (SqlBase.g4): never a name unless
#: quoted. Words the grammar uses are keywords where it expects them anyway; this makes the rest
#: of ksqlDB's reserved words fail as names too (``SELECT SIZE FROM s`` is an error there).
RESERVED_WORDS = frozenset(
    """
    ADVANCE ALL AND AS AT BEGINNING BETWEEN BY CASE CAST CATALOG CONNECTOR CONNECTORS CREATE
    DAYS DECIMAL DELETE DESCRIBE DISTINCT DROP ELSE END EXISTS EXPORT EXTENDED FALSE FROM FULL
    GROUP HAVING HOPPING HOURS IN INNER INSERT INTO IS JOIN LEFT LIKE LIMIT LIST LOAD
    MATERIALIZED MILLISECOND MILLISECONDS MINUTES MONTHS NAMESPACE NOT NULL ON OR OUTER PRINT
    PROPERTIES QUERIES QUERY RENAME RETENTION RIGHT RUN SAMPLE SCRIPT SECONDS SELECT SIZE STREAM
    STREAMS TABLE TERMINATE THEN TO TOPIC TOPICS TRUE TUMBLING UNSET VALUES VIEW WHEN WHERE
    WINDOW WITH WITHIN YEARS
    """.split()  # noqa: SIM905 - a block of words reads better than 86 quoted strings
)

_RESERVED_TOKEN = "RESERVED_WORD"

# --- types and literals ------------------------------------------------------------------------

_INTEGER = ast.SqlType("INTEGER")
_BIGINT = ast.SqlType("BIGINT")
_DOUBLE = ast.SqlType("DOUBLE")
_STRING = ast.SqlType("STRING")
_BOOLEAN = ast.SqlType("BOOLEAN")

#: Base type names as written -> the type (ksqlDB's aliases: INT, VARCHAR).
_BASE_TYPES: dict[str, ast.SqlType] = {
    "BOOLEAN": _BOOLEAN,
    "INT": _INTEGER,
    "INTEGER": _INTEGER,
    "BIGINT": _BIGINT,
    "DOUBLE": _DOUBLE,
    "STRING": _STRING,
    "VARCHAR": _STRING,
    "BYTES": ast.SqlType("BYTES"),
    "TIMESTAMP": ast.SqlType("TIMESTAMP"),
    "DATE": ast.SqlType("DATE"),
    "TIME": ast.SqlType("TIME"),
}

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)

#: A time unit, singular or plural, -> (milliseconds, the plural ksqlDB's IntervalUnit names).
_UNITS: dict[str, tuple[int, str]] = {
    "MILLISECOND": (1, "MILLISECONDS"),
    "SECOND": (1_000, "SECONDS"),
    "MINUTE": (60_000, "MINUTES"),
    "HOUR": (3_600_000, "HOURS"),
    "DAY": (86_400_000, "DAYS"),
}


def _unit(word: str) -> tuple[int, str]:
    word = word.upper()
    return _UNITS[word[:-1] if word.endswith("S") else word]


def _error(message: str, token: Token) -> NoReturn:
    raise KsqlSyntaxError(message, token.line or 1, token.column or 1)


def _number(text: str, token: Token) -> ast.Literal:
    """A numeric literal typed as ksqlDB types it (ParserUtil, DecimalUtil.fromValue)."""
    if "e" in text or "E" in text:
        value = float(text)
        if value in (float("inf"), float("-inf")):
            _error(f"Number overflows DOUBLE: {text}", token)
        return ast.Literal(value, _DOUBLE)
    if "." in text:
        decimal = Decimal(text)
        exponent = decimal.as_tuple().exponent
        assert isinstance(exponent, int)  # a finite literal
        scale = max(-exponent, 0)
        # ksqlDB: a value strictly between -1 and 1 has precision scale + 1 (0.05 is
        # DECIMAL(3, 2), not BigDecimal's precision 1); otherwise the digits' count.
        precision = scale + 1 if -1 < decimal < 1 else len(decimal.as_tuple().digits)
        return ast.Literal(decimal, ast.SqlType("DECIMAL", precision=precision, scale=scale))
    value = int(text)
    if not _INT64[0] <= value <= _INT64[1]:
        _error(f"Invalid numeric literal: {text}", token)
    return ast.Literal(value, _INTEGER if _INT32[0] <= value <= _INT32[1] else _BIGINT)


def _unquote(token: Token) -> str:
    """The text of a 'string', "quoted" or `backquoted` token, its doubled quotes undone."""
    quote = token[0]
    return token[1:-1].replace(quote * 2, quote)


def _name(token: Token) -> str:
    """A plain ``str`` from a name token (the AST holds no Lark tokens)."""
    return str(token)


def _property_value(token: Token, negative: bool = False) -> int | float:
    literal = _number(("-" if negative else "") + token, token)
    value = literal.value
    return float(value) if isinstance(value, Decimal) else value


# --- lambdas -----------------------------------------------------------------------------------


def _bind_lambda_variables(node: Any, names: frozenset[str]) -> Any:
    """``node`` with each unqualified ColumnRef to one of ``names`` made a LambdaVariable.

    ksqlDB resolves a lambda's parameters when it builds the tree; the body was built bottom-up
    before its lambda was known, so the references are rewritten here."""
    if isinstance(node, ast.ColumnRef):
        if node.source is None and node.name in names:
            return ast.LambdaVariable(node.name)
        return node
    if isinstance(node, ast.Lambda):
        # An inner lambda's own parameters shadow the outer ones.
        names = names - set(node.params)
        if not names:
            return node
    if isinstance(node, tuple):
        return tuple(_bind_lambda_variables(item, names) for item in node)
    if is_dataclass(node) and isinstance(node, ast.Expr):
        changes = {}
        for f in fields(node):
            value = getattr(node, f.name)
            new = _bind_lambda_variables(value, names)
            if new is not value:
                changes[f.name] = new
        return replace(node, **changes) if changes else node
    return node


# --- the tree builder --------------------------------------------------------------------------


@dataclass(frozen=True)
class _EmptyParens:
    """``GROUP BY ()`` / ``PARTITION BY ()``, rejected by the clause with its own message."""

    token: Token


@dataclass(frozen=True)
class _Constraint:
    key: bool = False
    primary_key: bool = False
    headers: bool = False
    header: str | None = None


def _binary(op: str) -> Callable[[Any, ast.Expr, ast.Expr], ast.Expr]:
    """The rule method of an operator: ``left op right``."""

    def build(self: Any, left: ast.Expr, right: ast.Expr) -> ast.Expr:
        return ast.Binary(op, left, right)

    return build


def _unary(op: Literal["-", "+", "NOT"]) -> Callable[[Any, ast.Expr], ast.Expr]:
    """The rule method of a prefix operator: ``op operand``."""

    def build(self: Any, operand: ast.Expr) -> ast.Expr:
        return ast.Unary(op, operand)

    return build


@v_args(inline=True)
class _Builder(Transformer[Token, Any]):
    """Called by the LALR parser on each reduction; returns AST nodes (children first).

    Stateless: one instance serves every parse. Method names are the grammar's rule names and
    aliases; optional parts arrive as None."""

    # --- names ---------------------------------------------------------------------------------

    def unquoted_identifier(self, token: Token) -> Token:
        # ksqlDB upper-cases unquoted names.
        return token.update(value=token.upper())

    def quoted_identifier(self, token: Token) -> Token:
        return token.update(value=_unquote(token))

    backquoted_identifier = quoted_identifier

    def keyword_name(self, token: Token) -> Token:
        return token.update(type="IDENT", value=token.upper())

    def column_name(self, token: Token) -> Token:
        return token

    def function_name(self, token: Token) -> Token:
        # Function names are case-insensitive in ksqlDB, quoted or not.
        return token.update(value=token.upper())

    def alias(self, token: Token) -> Token:
        return token

    # --- statements ----------------------------------------------------------------------------

    def statement(self, node: ast.AnyStatement) -> ast.AnyStatement:
        return node

    def expression(self, node: ast.Expr) -> ast.Expr:
        return node

    def or_replace(self) -> bool:
        return True

    source_flag = if_not_exists = if_exists = delete_topic = or_replace

    def kind(self, token: Token) -> str:
        return token.upper()

    def create_source(
        self,
        or_replace: bool | None,
        source: bool | None,
        kind: str,
        if_not_exists: bool | None,
        name: Token,
        columns: tuple[ast.ColumnDef, ...] | None,
        properties: ast.Properties | None,
    ) -> ast.CreateSource:
        return ast.CreateSource(
            kind=kind,  # type: ignore[arg-type]
            name=_name(name),
            columns=columns or (),
            properties=properties or {},
            or_replace=bool(or_replace),
            if_not_exists=bool(if_not_exists),
            source=bool(source),
        )

    def create_as(
        self,
        or_replace: bool | None,
        kind: str,
        if_not_exists: bool | None,
        name: Token,
        properties: ast.Properties | None,
        query: ast.Select,
    ) -> ast.CreateAs:
        return ast.CreateAs(
            kind=kind,  # type: ignore[arg-type]
            name=_name(name),
            properties=properties or {},
            query=query,
            or_replace=bool(or_replace),
            if_not_exists=bool(if_not_exists),
        )

    def table_elements(self, *columns: ast.ColumnDef) -> tuple[ast.ColumnDef, ...]:
        return columns

    def table_element(
        self, name: Token, type_: ast.SqlType, constraint: _Constraint | None
    ) -> ast.ColumnDef:
        constraint = constraint or _Constraint()
        return ast.ColumnDef(
            name=_name(name),
            type=type_,
            key=constraint.key,
            primary_key=constraint.primary_key,
            headers=constraint.headers,
            header=constraint.header,
        )

    def key_constraint(self) -> _Constraint:
        return _Constraint(key=True)

    def primary_key_constraint(self) -> _Constraint:
        return _Constraint(key=True, primary_key=True)

    def headers_constraint(self) -> _Constraint:
        return _Constraint(headers=True)

    def header_constraint(self, header: Token) -> _Constraint:
        return _Constraint(headers=True, header=_unquote(header))

    def with_props(self, *properties: tuple[str, Any]) -> ast.Properties:
        return dict(properties)

    def property(self, name: Token, value: Any) -> tuple[str, Any]:
        text = _unquote(name) if name.type == "STRING" else _name(name)
        return text.upper(), value

    def prop_string(self, token: Token) -> str:
        return _unquote(token)

    def prop_number(self, token: Token) -> int | float:
        return _property_value(token)

    def prop_negative_number(self, token: Token) -> int | float:
        return _property_value(token, negative=True)

    def prop_true(self) -> bool:
        return True

    def prop_false(self) -> bool:
        return False

    def prop_null(self) -> None:
        return None

    def drop(
        self, kind: str, if_exists: bool | None, name: Token, delete_topic: bool | None
    ) -> ast.Drop:
        return ast.Drop(
            kind=kind,  # type: ignore[arg-type]
            name=_name(name),
            if_exists=bool(if_exists),
            delete_topic=bool(delete_topic),
        )

    def alter(self, kind: str, name: Token, *columns: ast.ColumnDef) -> ast.AlterSource:
        return ast.AlterSource(kind=kind, name=_name(name), columns=columns)  # type: ignore[arg-type]

    def alter_option(self, name: Token, type_: ast.SqlType) -> ast.ColumnDef:
        return ast.ColumnDef(name=_name(name), type=type_)

    def insert_select(
        self, target: Token, properties: ast.Properties | None, query: ast.Select
    ) -> ast.InsertInto:
        return ast.InsertInto(target=_name(target), query=query, properties=properties or {})

    def insert_values(
        self,
        target: Token,
        columns: tuple[str, ...] | None,
        values: tuple[ast.Expr, ...] | None,
    ) -> ast.InsertValues:
        return ast.InsertValues(target=_name(target), columns=columns or (), values=values or ())

    def column_list(self, *names: Token) -> tuple[str, ...]:
        return tuple(_name(n) for n in names)

    def set_property(self, name: Token, value: Token) -> ast.SetProperty:
        return ast.SetProperty(name=_unquote(name), value=_unquote(value))

    def unset_property(self, name: Token) -> ast.UnsetProperty:
        return ast.UnsetProperty(name=_unquote(name))

    def terminate(self, query_id: Token) -> ast.Terminate:
        return ast.Terminate(query_id=_name(query_id))

    def terminate_all(self) -> ast.Terminate:
        return ast.Terminate(query_id=None)

    # --- types ---------------------------------------------------------------------------------

    def array_type(self, element: ast.SqlType) -> ast.SqlType:
        return ast.SqlType("ARRAY", element=element)

    def map_type(self, key: ast.SqlType, value: ast.SqlType) -> ast.SqlType:
        return ast.SqlType("MAP", key=key, element=value)

    def struct_type(self, struct_fields: tuple[tuple[str, ast.SqlType], ...] | None) -> ast.SqlType:
        return ast.SqlType("STRUCT", fields=struct_fields or ())

    def struct_fields(self, *items: tuple[str, ast.SqlType]) -> tuple[tuple[str, ast.SqlType], ...]:
        return items

    def struct_field(self, name: Token, type_: ast.SqlType) -> tuple[str, ast.SqlType]:
        return _name(name), type_

    def decimal_type(self, precision_token: Token, scale_token: Token) -> ast.SqlType:
        if not (precision_token.isdigit() and scale_token.isdigit()):
            _error("DECIMAL precision and scale must be integers", precision_token)
        precision, scale = int(precision_token), int(scale_token)
        # ksqlDB's DecimalUtil.validateParameters.
        if precision < 1:
            _error(f"DECIMAL precision must be >= 1: DECIMAL({precision},{scale})", precision_token)
        if scale > precision:
            _error(f"DECIMAL precision must be >= scale: DECIMAL({precision},{scale})", scale_token)
        return ast.SqlType("DECIMAL", precision=precision, scale=scale)

    def base_type(self, name: Token, params: Any) -> ast.SqlType:
        # Parameters (VARCHAR(STRING)) are accepted and ignored, as ksqlDB does.
        found = _BASE_TYPES.get(str(name).upper())
        if found is None:
            _error(f"Unknown type: {name}", name)
        return found

    def type_params(self, *params: Token) -> tuple[Token, ...]:
        return params

    def type_param(self, token: Token) -> Token:
        return token

    # --- queries -------------------------------------------------------------------------------

    def query(
        self,
        items: tuple[ast.SelectItem | ast.Star, ...],
        source: ast.Relation,
        joins: tuple[ast.Join, ...],
        window: ast.Window | None,
        where: ast.Expr | None,
        group_by: tuple[ast.Expr, ...] | None,
        partition_by: tuple[ast.Expr, ...] | None,
        having: ast.Expr | None,
        emit: str | None,
        limit: int | None,
    ) -> ast.Select:
        return ast.Select(
            items=items,
            source=source,
            joins=joins,
            window=window,
            where=where,
            group_by=group_by or (),
            partition_by=partition_by or (),
            having=having,
            emit=emit,  # type: ignore[arg-type]
            limit=limit,
        )

    def select_items(
        self, *items: ast.SelectItem | ast.Star
    ) -> tuple[ast.SelectItem | ast.Star, ...]:
        return items

    def select_single(self, expr: ast.Expr, alias: Token | None = None) -> ast.SelectItem:
        return ast.SelectItem(expr, _name(alias) if alias is not None else None)

    def select_source_star(self, source: Token) -> ast.Star:
        return ast.Star(_name(source))

    def select_star(self) -> ast.Star:
        return ast.Star()

    def aliased_relation(self, name: Token, alias: Token | None = None) -> ast.Relation:
        return ast.Relation(_name(name), _name(alias) if alias is not None else None)

    def joins(self, *joins: ast.Join) -> tuple[ast.Join, ...]:
        return joins

    def join(
        self, kind: str | None, right: ast.Relation, within: ast.Within | None, on: ast.Expr
    ) -> ast.Join:
        return ast.Join(kind=kind or "INNER", right=right, on=on, within=within)  # type: ignore[arg-type]

    def join_kind(self, kind: Token, outer: Token | None = None) -> str:
        return kind.upper()

    def within_single(self, size_ms: int, grace_ms: int | None) -> ast.Within:
        return ast.Within(before_ms=size_ms, after_ms=size_ms, grace_ms=grace_ms)

    def within_before_after(
        self, before_ms: int, after_ms: int, grace_ms: int | None
    ) -> ast.Within:
        return ast.Within(before_ms=before_ms, after_ms=after_ms, grace_ms=grace_ms)

    def window(self, name: Token | None, window: ast.Window) -> ast.Window:
        return window

    def tumbling(self, size_ms: int, options: tuple[int | None, int | None]) -> ast.Window:
        return ast.Window("TUMBLING", size_ms, None, *options)

    def hopping(
        self, size_ms: int, advance_ms: int, options: tuple[int | None, int | None]
    ) -> ast.Window:
        return ast.Window("HOPPING", size_ms, advance_ms, *options)

    def session(self, gap_ms: int, options: tuple[int | None, int | None]) -> ast.Window:
        return ast.Window("SESSION", gap_ms, None, *options)

    def window_options(
        self, retention_ms: int | None, grace_ms: int | None
    ) -> tuple[int | None, int | None]:
        return retention_ms, grace_ms

    def retention(self, ms: int) -> int:
        return ms

    grace = retention

    def duration(self, amount: Token, unit: str) -> int:
        if not amount.isdigit():
            _error(f"A duration needs a whole number, not {amount}", amount)
        return int(amount) * _unit(unit)[0]

    def time_unit(self, token: Token) -> str:
        return token.upper()

    def where(self, expr: ast.Expr) -> ast.Expr:
        return expr

    having = where

    def group_by(self, grouping: tuple[ast.Expr, ...] | _EmptyParens) -> tuple[ast.Expr, ...]:
        if isinstance(grouping, _EmptyParens):
            _error("GROUP BY requires at least one expression", grouping.token)
        return grouping

    def partition_by(self, grouping: tuple[ast.Expr, ...] | _EmptyParens) -> tuple[ast.Expr, ...]:
        if isinstance(grouping, _EmptyParens):
            # ksqlDB's words for the same query.
            _error("PARTITION BY requires at least one expression", grouping.token)
        return grouping

    def grouping_list(self, exprs: tuple[ast.Expr, ...]) -> tuple[ast.Expr, ...]:
        return exprs

    def grouping_parenthesised(self, *exprs: ast.Expr) -> tuple[ast.Expr, ...]:
        return exprs

    def grouping_empty(self, parens: Token) -> _EmptyParens:
        return _EmptyParens(parens)

    def empty_parens(self, open_: Token, close: Token) -> Token:
        return open_

    def emit(self, _emit: Token, mode: Token) -> str:
        return mode.upper()

    def limit(self, count: Token) -> int:
        if not count.isdigit():
            _error(f"LIMIT needs a whole number, not {count}", count)
        return int(count)

    # --- expressions ---------------------------------------------------------------------------

    or_op = _binary("OR")
    and_op = _binary("AND")
    not_op = _unary("NOT")

    def negated(self) -> bool:
        return True

    def comparison(self, left: ast.Expr, op: str, right: ast.Expr) -> ast.Expr:
        return ast.Binary(op, left, right)

    def comparison_op(self, token: Token) -> str:
        return "<>" if token == "!=" else str(token)

    def between(
        self, operand: ast.Expr, negated: bool | None, low: ast.Expr, high: ast.Expr
    ) -> ast.Expr:
        return ast.Between(operand, low, high, negated=bool(negated))

    def in_list(
        self, operand: ast.Expr, negated: bool | None, items: tuple[ast.Expr, ...]
    ) -> ast.Expr:
        return ast.InList(operand, items, negated=bool(negated))

    def like(
        self, operand: ast.Expr, negated: bool | None, pattern: ast.Expr, escape: Token | None
    ) -> ast.Expr:
        return ast.Like(
            operand,
            pattern,
            escape=_unquote(escape) if escape is not None else None,
            negated=bool(negated),
        )

    def is_null(self, operand: ast.Expr, negated: bool | None) -> ast.Expr:
        return ast.IsNull(operand, negated=bool(negated))

    def distinct_from(self, left: ast.Expr, negated: bool | None, right: ast.Expr) -> ast.Expr:
        return ast.IsDistinctFrom(left, right, negated=bool(negated))

    concat = _binary("||")
    add = _binary("+")
    subtract = _binary("-")
    multiply = _binary("*")
    divide = _binary("/")
    modulo = _binary("%")
    negate = _unary("-")
    plus = _unary("+")

    def negative_number(self, minus: Token, token: Token) -> ast.Literal:
        return _number("-" + token, minus)

    def subscript(self, base: ast.Expr, index: ast.Expr) -> ast.Expr:
        return ast.Subscript(base, index)

    def dereference(self, base: ast.Expr, name: Token) -> ast.Expr:
        return ast.Dereference(base, _name(name))

    def number(self, token: Token) -> ast.Literal:
        return _number(str(token), token)

    def string(self, token: Token) -> ast.Literal:
        return ast.Literal(_unquote(token), _STRING)

    def true(self) -> ast.Literal:
        return ast.Literal(True, _BOOLEAN)

    def false(self) -> ast.Literal:
        return ast.Literal(False, _BOOLEAN)

    def null(self) -> ast.Literal:
        return ast.Literal(None, None)

    def column_ref(self, name: Token) -> ast.Expr:
        return ast.ColumnRef(_name(name))

    def qualified_column_ref(self, source: Token, name: Token) -> ast.Expr:
        return ast.ColumnRef(_name(name), _name(source))

    def function_call(self, name: Token, args: tuple[ast.Expr, ...] | None) -> ast.Expr:
        return ast.FunctionCall(_name(name), args or ())

    def function_call_star(self, name: Token) -> ast.Expr:
        return ast.FunctionCall(_name(name), star=True)

    def function_call_distinct(self, name: Token, arg: ast.Expr) -> ast.Expr:
        return ast.FunctionCall(_name(name), (arg,), distinct=True)

    def function_args(self, *args: ast.Expr) -> tuple[ast.Expr, ...]:
        return args

    def lambda_single(self, param: ast.Expr, arrow: Token, body: ast.Expr) -> ast.Expr:
        # `x => ...` and `(x) => ...` parse their parameter as an expression (one token of
        # lookahead cannot tell them from a column); only a bare name is a parameter.
        if not isinstance(param, ast.ColumnRef) or param.source is not None:
            _error("Syntax error at or near '=>': a lambda's parameter must be a name", arrow)
        return self._lambda((param.name,), body, arrow)

    def lambda_multi(self, *parts: Any) -> ast.Expr:
        *names, arrow, body = parts
        return self._lambda(tuple(_name(n) for n in names), body, arrow)

    def _lambda(self, params: tuple[str, ...], body: ast.Expr, arrow: Token) -> ast.Expr:
        if len(set(params)) != len(params):
            _error(f"Duplicate lambda parameter in {', '.join(params)}", arrow)
        return ast.Lambda(params, _bind_lambda_variables(body, frozenset(params)))

    def interval_unit(self, unit: str) -> ast.Expr:
        return ast.IntervalUnit(_unit(unit)[1])

    def searched_case(self, *parts: Any) -> ast.Expr:
        *whens, otherwise = parts
        return ast.Case(None, tuple(whens), otherwise)

    def simple_case(self, operand: ast.Expr, *parts: Any) -> ast.Expr:
        *whens, otherwise = parts
        return ast.Case(operand, tuple(whens), otherwise)

    def when_clause(self, condition: ast.Expr, result: ast.Expr) -> tuple[ast.Expr, ast.Expr]:
        return condition, result

    def else_clause(self, result: ast.Expr) -> ast.Expr:
        return result

    def cast(self, operand: ast.Expr, type_: ast.SqlType) -> ast.Expr:
        return ast.Cast(operand, type_)

    def array_constructor(self, items: tuple[ast.Expr, ...] | None) -> ast.Expr:
        return ast.ArrayConstructor(items or ())

    def map_constructor(self, entries: tuple[tuple[ast.Expr, ast.Expr], ...] | None) -> ast.Expr:
        return ast.MapConstructor(entries or ())

    def struct_constructor(self, entries: tuple[tuple[str, ast.Expr], ...] | None) -> ast.Expr:
        return ast.StructConstructor(entries or ())

    def expr_list(self, *items: ast.Expr) -> tuple[ast.Expr, ...]:
        return items

    value_list = map_entries = struct_entries = expr_list

    def map_entry(self, key: ast.Expr, value: ast.Expr) -> tuple[ast.Expr, ast.Expr]:
        return key, value

    def struct_entry(self, name: Token, value: ast.Expr) -> tuple[str, ast.Expr]:
        return _name(name), value


# --- building the parser -----------------------------------------------------------------------


def _mark_reserved(token: Token) -> Token:
    # Only IDENTs reach here (a keyword the parser accepts at this point was already typed as
    # that keyword); a reserved word becomes a token type no rule accepts.
    if token.upper() in RESERVED_WORDS:
        return token.update(type=_RESERVED_TOKEN)
    return token


def _cache_file() -> str | bool:
    """Where Lark keeps its grammar analysis between processes (it checks the grammar's hash on
    load and rebuilds when the grammar changed); False when there is nowhere to write.

    A per-user directory rather than Lark's default, a predictable name in the shared temporary
    directory: the cache is a pickle, and loading one somebody else wrote runs their code."""
    try:
        folder = Path.home() / ".cache" / "pageview-streams"
        folder.mkdir(parents=True, exist_ok=True)
    except (OSError, RuntimeError):  # no home directory, or not writable
        return False
    return str(folder / "ksql-grammar.lark-cache")


@functools.cache
def _parser() -> Lark:
    return Lark(
        _GRAMMAR.read_text(encoding="utf-8"),
        parser="lalr",
        lexer="contextual",
        start=["statement", "expression"],
        maybe_placeholders=True,
        transformer=_Builder(),
        lexer_callbacks={"IDENT": _mark_reserved},
        cache=_cache_file(),
    )


# --- errors ------------------------------------------------------------------------------------

#: Terminals named by what they are rather than spelled out.
_TERMINAL_WORDS = {
    "IDENT": "a name",
    "DIGIT_IDENT": "a name",
    "QUOTED_IDENT": "a name",
    "BACKQUOTED_IDENT": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
    "$END": "the end of the statement",
}

#: The tokens that can start an expression; listed as "an expression" when all are expected.
_EXPRESSION_START = frozenset(
    {
        "IDENT",
        "DIGIT_IDENT",
        "QUOTED_IDENT",
        "BACKQUOTED_IDENT",
        "NUMBER",
        "STRING",
        "LPAR",
        "MINUS",
        "PLUS",
        "NOT",
        "TRUE",
        "FALSE",
        "NULL",
        "CASE",
        "CAST",
        "ARRAY",
        "MAP",
        "STRUCT",
    }
)
_VALUE_START = _EXPRESSION_START - {"NOT"}
#: The tokens that can start a type.
_TYPE_START = frozenset(
    {
        "IDENT",
        "DIGIT_IDENT",
        "QUOTED_IDENT",
        "BACKQUOTED_IDENT",
        "ARRAY",
        "MAP",
        "STRUCT",
        "DECIMAL",
    }
)

#: The time units, listed as one word when all are expected.
_TIME_UNITS = frozenset(
    {f"{unit}{s}" for unit in ("MILLISECOND", "SECOND", "MINUTE", "HOUR", "DAY") for s in ("", "S")}
)


@functools.cache
def _terminal_text() -> dict[str, str]:
    texts = {}
    for terminal in _parser().terminals:
        if terminal.pattern.type == "str":
            texts[terminal.name] = f"'{terminal.pattern.value.upper()}'"
    return texts


def _describe_expected(names: set[str]) -> str:
    names = set(names) - {_RESERVED_TOKEN}
    words: list[str] = []
    # The first of these groups that the expected names cover is said in a word.
    for group, word in (
        (_EXPRESSION_START, "an expression"),
        (_VALUE_START, "a value"),
        (_TYPE_START, "a type"),
    ):
        if names >= group:
            words.append(word)
            names -= group
            break
    if names >= _TIME_UNITS:
        words.append("a time unit (MILLISECONDS, SECONDS, MINUTES, HOURS or DAYS)")
        names -= _TIME_UNITS
    texts = _terminal_text()
    described = {_TERMINAL_WORDS.get(n) or texts.get(n) or n for n in names}
    end = _TERMINAL_WORDS["$END"]
    # Symbols and keywords alphabetically, then words ("a name"), the end last.
    words += sorted(d for d in described if d.startswith("'"))
    words += sorted(d for d in described if not d.startswith("'") and d != end)
    if end in described:
        words.append(end)
    if not words:
        return ""
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def _syntax_error(
    exc: UnexpectedInput, statement: str, end_line: int, end_column: int
) -> KsqlSyntaxError:
    """A Lark error as the user should read it: where, at which token, what could come there."""
    if isinstance(exc, UnexpectedToken):
        token = exc.token
        if token.type == "$END":
            near, line, column = "at the end of the statement", end_line, end_column
        else:
            near, line, column = f"at or near '{token}'", token.line, token.column
        try:
            expected = set(exc.accepts or exc.expected)
        except Exception:  # accepts replays the parse; the plain set is good enough
            expected = set(exc.expected)
        message = f"Syntax error {near}"
        described = _describe_expected(expected)
        if described:
            message += f": expected {described}"
        if (
            token.type == _RESERVED_TOKEN
            and "IDENT" in expected
            and not expected >= _TYPE_START  # where a type is due, a name is not the point
        ):
            word = token.upper()
            message += f" ({word} is a reserved word: write `{word}` to use it as a name)"
        elif token.upper() == "SELECT" and "CREATE" in expected:
            # A push or pull query on its own: ksqlDB runs those interactively; here queries
            # run as persistent ones.
            message += (
                " (a query runs here as CREATE STREAM|TABLE name AS SELECT ... or INSERT INTO)"
            )
        return KsqlSyntaxError(message, line or 1, column or 1, statement)
    if isinstance(exc, UnexpectedCharacters):
        char = exc.char
        message = f"Syntax error at or near '{char}': not valid here"
        return KsqlSyntaxError(message, exc.line, exc.column, statement)
    if isinstance(exc, UnexpectedEOF):
        return KsqlSyntaxError(
            "Syntax error at the end of the statement: it is incomplete",
            end_line,
            end_column,
            statement,
        )
    return KsqlSyntaxError(f"Syntax error: {exc}", end_line, end_column, statement)


# --- splitting into statements -----------------------------------------------------------------

# Quoted text and comments are skipped whole (a ';' inside them does not end a statement);
# anything else runs up to the next character that might start one of them.
_SCAN = re.compile(
    r"""
      (?P<quoted>'(?:[^']|'')*'|"(?:[^"]|"")*"|`(?:[^`]|``)*`)
    | (?P<comment>--[^\n]*|/\*.*?\*/)
    | (?P<semicolon>;)
    | (?P<space>\s+)
    | (?P<text>[^'"`;\s/-]+|[/-])
    """,
    re.VERBOSE | re.DOTALL,
)

_UNTERMINATED = {"'": "string", '"': "quoted name", "`": "quoted name", "/": "comment"}


@dataclass(frozen=True)
class Span:
    start: int  # the statement's first token
    end: int  # just after its last token (before the ';')
    stop: int  # just after its ';', or ``end`` when there is none


def _line_column(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def split_statements(text: str) -> list[Span]:
    """Where each statement of ``text`` is (comments and strings skipped); raises
    KsqlSyntaxError for an unterminated string, identifier or comment."""
    spans: list[Span] = []
    start: int | None = None
    end = 0
    pos = 0
    while pos < len(text):
        match = _SCAN.match(text, pos)
        if match is None or (text.startswith("/*", pos) and match.lastgroup != "comment"):
            kind = _UNTERMINATED[text[pos]]
            line, column = _line_column(text, pos)
            raise KsqlSyntaxError(
                f"Syntax error: unterminated {kind} starting here",
                line,
                column,
                text[start if start is not None else pos :].strip(),
            )
        group = match.lastgroup
        if group == "semicolon":
            if start is not None:
                spans.append(Span(start, end, match.end()))
            start = None
        elif group in ("quoted", "text"):
            if start is None:
                start = pos
            end = match.end()
        pos = match.end()
    if start is not None:
        spans.append(Span(start, end, end))
    return spans


# --- entry points ------------------------------------------------------------------------------


def _parse_span(text: str, span: Span, start: str) -> Any:
    line, column = _line_column(text, span.start)
    statement = text[span.start : span.stop]
    # Padding the statement to its place in the text makes Lark's own line and column numbers
    # those of the whole text, in the parse and in every error.
    padded = "\n" * (line - 1) + " " * (column - 1) + text[span.start : span.end]
    try:
        node = _parser().parse(padded, start=start)
    except UnexpectedInput as exc:
        end_line, end_column = _line_column(text, span.end)
        raise _syntax_error(exc, statement, end_line, end_column) from None
    except KsqlSyntaxError as exc:
        # Raised by the builder, which knows the token but not the statement.
        exc.statement = statement
        raise
    if start == "statement":
        return replace(node, position=ast.Position(line, column, statement))
    return node


def parse(text: str) -> list[ast.AnyStatement]:
    """Every statement of ``text`` (separated by ``;``, the last one's optional), in order.

    Each carries ``position``: its line and column in ``text`` (1-based) and its text (with
    its ``;``). Raises :class:`KsqlSyntaxError` at the first statement that is not ksqlDB SQL.
    """
    return [_parse_span(text, span, "statement") for span in split_statements(text)]


def parse_expression(text: str) -> ast.Expr:
    """One expression (``A + 1``, ``CAST(X AS BIGINT)``), as it would be parsed in a query."""
    spans = split_statements(text)
    if len(spans) != 1:
        line, column = _line_column(text, spans[1].start if len(spans) > 1 else len(text))
        raise KsqlSyntaxError("Syntax error: expected one expression", line, column, text)
    return _parse_span(text, spans[0], "expression")
