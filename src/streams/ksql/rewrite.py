"""Walking and rewriting expression trees (the nodes of :mod:`streams.ksql.ast`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

from streams.ksql.ast import ColumnRef, Expr, FunctionCall


def children(expr: Expr) -> Iterator[Expr]:
    """The direct sub-expressions of ``expr``, in field order."""
    for f in dataclasses.fields(expr):  # type: ignore[arg-type]
        yield from _exprs_in(getattr(expr, f.name))


def _exprs_in(value: Any) -> Iterator[Expr]:
    if isinstance(value, Expr):
        yield value
    elif isinstance(value, tuple):
        for item in value:
            yield from _exprs_in(item)


def walk(expr: Expr) -> Iterator[Expr]:
    """``expr`` and every node below it, parents first."""
    yield expr
    for child in children(expr):
        yield from walk(child)


def transform(expr: Expr, fn: Callable[[Expr], Expr | None]) -> Expr:
    """``expr`` with each node replaced by ``fn(node)`` where that is not None (a replaced
    node's children are not visited), else rebuilt from its transformed children."""
    replaced = fn(expr)
    if replaced is not None:
        return replaced
    changes = {}
    for f in dataclasses.fields(expr):  # type: ignore[arg-type]
        value = getattr(expr, f.name)
        new = _transform_value(value, fn)
        if new is not value:
            changes[f.name] = new
    return dataclasses.replace(expr, **changes) if changes else expr  # type: ignore[type-var]


def _transform_value(value: Any, fn: Callable[[Expr], Expr | None]) -> Any:
    if isinstance(value, Expr):
        return transform(value, fn)
    if isinstance(value, tuple):
        items = tuple(_transform_value(item, fn) for item in value)
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def column_refs(expr: Expr) -> list[ColumnRef]:
    return [node for node in walk(expr) if isinstance(node, ColumnRef)]


def function_calls(expr: Expr) -> list[FunctionCall]:
    return [node for node in walk(expr) if isinstance(node, FunctionCall)]


def sql(expr: Expr) -> str:
    """ksqlDB's rendering of an expression in messages: ``SUM(VALUE)``, ``INPUT.ID``."""
    from streams.ksql import ast

    if isinstance(expr, ast.ColumnRef):
        return f"{expr.source}.{expr.name}" if expr.source else expr.name
    if isinstance(expr, ast.Literal):
        if expr.value is None:
            return "null"
        if isinstance(expr.value, str):
            return "'" + expr.value.replace("'", "''") + "'"
        if isinstance(expr.value, bool):
            return "true" if expr.value else "false"
        return str(expr.value)
    if isinstance(expr, ast.FunctionCall):
        if expr.star:
            return f"{expr.name}(*)"
        return f"{expr.name}({', '.join(sql(a) for a in expr.args)})"
    if isinstance(expr, ast.Dereference):
        return f"{sql(expr.base)}->{expr.field}"
    if isinstance(expr, ast.Subscript):
        return f"{sql(expr.base)}[{sql(expr.index)}]"
    if isinstance(expr, ast.Binary):
        return f"({sql(expr.left)} {expr.op} {sql(expr.right)})"
    if isinstance(expr, ast.Unary):
        return f"{expr.op}{' ' if expr.op == 'NOT' else ''}{sql(expr.operand)}"
    if isinstance(expr, ast.Cast):
        return f"CAST({sql(expr.operand)} AS {expr.type})"
    return type(expr).__name__
