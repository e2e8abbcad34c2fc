"""Bind type-checked values into Pinot SQL.

Pinot 0.11's broker has no prepared statements, so the dashboard renders literals itself; this
module is the only place that does it. Every value is checked for its type before it becomes a
literal (an int stays an int, a string is quoted with quotes doubled), identifiers go through
an allow-list pattern, and a placeholder without a value is an error rather than left in.
"""

from __future__ import annotations

import math
import re

from pinot.tables import checked_identifier

_PLACEHOLDER = re.compile(r"(?<![:\w]):([a-z_]+)\b")
_IDENT_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")

SqlValue = int | float | str | tuple[str, ...] | list[str]


def literal(value: SqlValue) -> str:
    """Render one value as a SQL literal, refusing anything whose type is not expected."""
    if isinstance(value, bool):
        # bool is an int subclass; a stray True must not become 1 silently.
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"non-finite number {value!r} cannot be a SQL literal")
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if (
        isinstance(value, tuple | list | set | frozenset)
        and value
        and all(isinstance(v, str) for v in value)
    ):
        return ", ".join(literal(v) for v in value)
    raise TypeError(f"unsupported SQL parameter {value!r} ({type(value).__name__})")


def bind(template: str, identifiers: dict[str, str], params: dict[str, SqlValue]) -> str:
    """Fill ``{name}`` identifiers and ``:name`` literals in ``template``."""

    def ident(match: re.Match[str]) -> str:
        return checked_identifier(identifiers[match.group(1)])

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in params:
            raise KeyError(f"no value for SQL parameter :{name}")
        return literal(params[name])

    return _PLACEHOLDER.sub(value, _IDENT_PLACEHOLDER.sub(ident, template))
