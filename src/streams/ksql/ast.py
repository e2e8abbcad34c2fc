"""The typed syntax tree of ksqlDB statements: what :mod:`streams.ksql.parser` produces and the
planner reads.

Identifiers are as ksqlDB resolves them: an unquoted name is upper-cased by the parser, a
back-quoted (or double-quoted) one keeps its case; nothing downstream changes case again.
Durations are milliseconds. Every statement carries the position and text it was parsed from,
so the planner's errors can point at it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from typing import Literal as TypingLiteral

# --- types -------------------------------------------------------------------------------------

#: ksqlDB's type names; VARCHAR is STRING, INT is INTEGER (the parser normalises both).
TypeName = TypingLiteral[
    "BOOLEAN",
    "INTEGER",
    "BIGINT",
    "DOUBLE",
    "DECIMAL",
    "STRING",
    "BYTES",
    "TIMESTAMP",
    "DATE",
    "TIME",
    "ARRAY",
    "MAP",
    "STRUCT",
]


@dataclass(frozen=True)
class SqlType:
    """A column type. DECIMAL has ``precision`` and ``scale``; ARRAY has ``element``; MAP has
    ``key`` and ``element`` (the value type); STRUCT has ``fields`` in declaration order."""

    name: TypeName
    precision: int | None = None
    scale: int | None = None
    element: SqlType | None = None
    key: SqlType | None = None
    fields: tuple[tuple[str, SqlType], ...] = ()

    def __str__(self) -> str:
        if self.name == "DECIMAL":
            return f"DECIMAL({self.precision}, {self.scale})"
        if self.name == "ARRAY":
            return f"ARRAY<{self.element}>"
        if self.name == "MAP":
            return f"MAP<{self.key}, {self.element}>"
        if self.name == "STRUCT":
            return "STRUCT<" + ", ".join(f"`{n}` {t}" for n, t in self.fields) + ">"
        return self.name


# --- expressions -------------------------------------------------------------------------------


class Expr:
    """Base of every expression node."""

    __slots__ = ()


@dataclass(frozen=True)
class Literal(Expr):
    """A constant. ``type`` is None for NULL; integers that fit 32 bits are INTEGER, other
    integers BIGINT, ``1.5`` is DECIMAL as ksqlDB reads it (precision and scale from the digits),
    ``1.5E0`` DOUBLE, ``'x'`` STRING, TRUE/FALSE BOOLEAN. ``value`` is the Python value
    (``decimal.Decimal`` for DECIMAL)."""

    value: Any
    type: SqlType | None


@dataclass(frozen=True)
class ColumnRef(Expr):
    """``NAME`` or ``SOURCE.NAME`` (``source`` is the relation's name or alias). System
    columns (ROWTIME, ROWPARTITION, ROWOFFSET, WINDOWSTART, WINDOWEND) are column references
    too; the planner knows them."""

    name: str
    source: str | None = None


@dataclass(frozen=True)
class Dereference(Expr):
    """``base->FIELD``: a struct field."""

    base: Expr
    field: str


@dataclass(frozen=True)
class Subscript(Expr):
    """``base[index]``: an array element (1-based; negative counts from the end) or a map
    value."""

    base: Expr
    index: Expr


@dataclass(frozen=True)
class Unary(Expr):
    op: TypingLiteral["-", "+", "NOT"]
    operand: Expr


@dataclass(frozen=True)
class Binary(Expr):
    """Arithmetic (``+ - * / %``), comparison (``= <> < <= > >=``; ``!=`` is read as ``<>``),
    logic (``AND``, ``OR``) and string concatenation (``||``)."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class IsNull(Expr):
    operand: Expr
    negated: bool = False  # IS NOT NULL


@dataclass(frozen=True)
class Like(Expr):
    operand: Expr
    pattern: Expr
    escape: str | None = None
    negated: bool = False


@dataclass(frozen=True)
class InList(Expr):
    operand: Expr
    items: tuple[Expr, ...]
    negated: bool = False


@dataclass(frozen=True)
class Between(Expr):
    operand: Expr
    low: Expr
    high: Expr
    negated: bool = False


@dataclass(frozen=True)
class Case(Expr):
    """Searched (``operand`` None: each ``when`` is a condition) or simple (``CASE x WHEN
    1 ...``: each ``when`` is compared with ``operand``)."""

    operand: Expr | None
    whens: tuple[tuple[Expr, Expr], ...]
    otherwise: Expr | None = None


@dataclass(frozen=True)
class Cast(Expr):
    operand: Expr
    type: SqlType


@dataclass(frozen=True)
class FunctionCall(Expr):
    """``NAME(args)``; ``COUNT(*)`` is ``star=True`` with no args. Names are upper-case."""

    name: str
    args: tuple[Expr, ...] = ()
    star: bool = False
    distinct: bool = False


@dataclass(frozen=True)
class StructConstructor(Expr):
    """``STRUCT(A := expr, ...)``."""

    fields: tuple[tuple[str, Expr], ...]


@dataclass(frozen=True)
class ArrayConstructor(Expr):
    """``ARRAY[expr, ...]``."""

    items: tuple[Expr, ...]


@dataclass(frozen=True)
class MapConstructor(Expr):
    """``MAP(key := value, ...)``."""

    entries: tuple[tuple[Expr, Expr], ...]


@dataclass(frozen=True)
class IntervalUnit(Expr):
    """A bare time unit as a function argument (``TIMESTAMPADD(SECONDS, 3, ts)``)."""

    unit: str


@dataclass(frozen=True)
class IsDistinctFrom(Expr):
    """``left IS [NOT] DISTINCT FROM right``: comparison in which NULL is a value (two NULLs are
    not distinct, NULL and 1 are); never NULL itself."""

    left: Expr
    right: Expr
    negated: bool = False  # IS NOT DISTINCT FROM


@dataclass(frozen=True)
class Lambda(Expr):
    """``x => body`` or ``(x, y) => body``: an argument of a higher-order function (``FILTER``,
    ``TRANSFORM``, ``REDUCE``). Parameters are identifiers (upper-cased unless quoted); inside
    ``body`` each use of one is a :class:`LambdaVariable`, not a column."""

    params: tuple[str, ...]
    body: Expr


@dataclass(frozen=True)
class LambdaVariable(Expr):
    """A lambda's parameter used in its body."""

    name: str


# --- queries -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Star:
    """``*`` or ``SOURCE.*`` in a projection."""

    source: str | None = None


@dataclass(frozen=True)
class SelectItem:
    """One projected expression; ``alias`` is None when the query gave none (the planner
    names it as ksqlDB does: the column's name, or ``KSQL_COL_<n>``)."""

    expr: Expr
    alias: str | None = None


@dataclass(frozen=True)
class Relation:
    """A source in FROM or JOIN, with its alias (None: the name is the alias)."""

    name: str
    alias: str | None = None

    @property
    def label(self) -> str:
        return self.alias or self.name


@dataclass(frozen=True)
class Within:
    """A stream-stream join's ``WITHIN``: ``before_ms``/``after_ms`` (equal for one value)."""

    before_ms: int
    after_ms: int
    grace_ms: int | None = None


@dataclass(frozen=True)
class Join:
    kind: TypingLiteral["INNER", "LEFT", "RIGHT", "FULL"]
    right: Relation
    on: Expr
    within: Within | None = None


@dataclass(frozen=True)
class Window:
    """``WINDOW TUMBLING (SIZE ...)``, ``HOPPING (SIZE ..., ADVANCE BY ...)`` or ``SESSION
    (...)``, with optional ``RETENTION`` and ``GRACE PERIOD``."""

    kind: TypingLiteral["TUMBLING", "HOPPING", "SESSION"]
    size_ms: int  # the gap, for SESSION
    advance_ms: int | None = None
    retention_ms: int | None = None
    grace_ms: int | None = None


@dataclass(frozen=True)
class Select:
    items: tuple[SelectItem | Star, ...]
    source: Relation
    joins: tuple[Join, ...] = ()
    window: Window | None = None
    where: Expr | None = None
    group_by: tuple[Expr, ...] = ()
    partition_by: tuple[Expr, ...] = ()
    having: Expr | None = None
    emit: TypingLiteral["CHANGES", "FINAL"] | None = None
    limit: int | None = None


# --- statements --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Position:
    """Where a statement starts in the parsed text (1-based), and its text."""

    line: int
    column: int
    text: str


@dataclass(frozen=True)
class Statement:
    """Base of every statement; ``position`` is set by the parser."""

    position: Position | None = field(default=None, kw_only=True, compare=False, repr=False)


@dataclass(frozen=True)
class ColumnDef:
    """A declared column. ``key`` for ``KEY`` (streams) and ``PRIMARY KEY`` (tables);
    ``headers`` for ``HEADERS`` / ``HEADER('name')`` columns (``header`` names the one)."""

    name: str
    type: SqlType
    key: bool = False
    primary_key: bool = False
    headers: bool = False
    header: str | None = None


#: WITH (...) properties: upper-case names, values as written (str, int, float or bool).
Properties = dict[str, Any]


@dataclass(frozen=True)
class CreateSource(Statement):
    """``CREATE [OR REPLACE] [SOURCE] STREAM|TABLE [IF NOT EXISTS] name (cols) WITH (...)``;
    ``columns`` is empty when the schema comes from the registry."""

    kind: TypingLiteral["STREAM", "TABLE"]
    name: str
    columns: tuple[ColumnDef, ...]
    properties: Properties
    or_replace: bool = False
    if_not_exists: bool = False
    source: bool = False


@dataclass(frozen=True)
class CreateAs(Statement):
    """``CREATE [OR REPLACE] STREAM|TABLE [IF NOT EXISTS] name [WITH (...)] AS SELECT ...``."""

    kind: TypingLiteral["STREAM", "TABLE"]
    name: str
    properties: Properties
    query: Select
    or_replace: bool = False
    if_not_exists: bool = False


@dataclass(frozen=True)
class InsertInto(Statement):
    """``INSERT INTO target [WITH (...)] SELECT ...``."""

    target: str
    query: Select
    properties: Properties = field(default_factory=dict)


@dataclass(frozen=True)
class InsertValues(Statement):
    """``INSERT INTO target [(cols)] VALUES (...)``."""

    target: str
    columns: tuple[str, ...]
    values: tuple[Expr, ...]


@dataclass(frozen=True)
class SetProperty(Statement):
    """``SET 'name' = 'value'`` (names and values as written, unquoted)."""

    name: str
    value: str


@dataclass(frozen=True)
class UnsetProperty(Statement):
    name: str


@dataclass(frozen=True)
class Drop(Statement):
    """``DROP STREAM|TABLE [IF EXISTS] name [DELETE TOPIC]``."""

    kind: TypingLiteral["STREAM", "TABLE"]
    name: str
    if_exists: bool = False
    delete_topic: bool = False


@dataclass(frozen=True)
class Terminate(Statement):
    """``TERMINATE query_id`` or ``TERMINATE ALL`` (``query_id`` None)."""

    query_id: str | None


@dataclass(frozen=True)
class AlterSource(Statement):
    """``ALTER STREAM|TABLE name ADD [COLUMN] col type [, ADD [COLUMN] col type ...]``."""

    kind: TypingLiteral["STREAM", "TABLE"]
    name: str
    columns: tuple[ColumnDef, ...]


#: What the parser returns, one per statement of the text.
AnyStatement = (
    CreateSource
    | CreateAs
    | InsertInto
    | InsertValues
    | SetProperty
    | UnsetProperty
    | Drop
    | Terminate
    | AlterSource
)
