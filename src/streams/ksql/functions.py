"""ksqlDB's scalar functions, and the registry a user adds a Python function to in one line.

::

    from streams.ksql.functions import udf

    @udf("MY_FN")
    def my_fn(x: int, suffix: str) -> str:
        return f"{x}{suffix}"

Argument and result types come from the annotations (``bool`` BOOLEAN, ``int`` BIGINT, ``float``
DOUBLE, ``str`` STRING, ``bytes`` BYTES, ``Decimal`` any DECIMAL, ``list[X]`` ARRAY, ``dict[K, V]``
MAP, ``Any`` or a ``TypeVar`` a generic type; :data:`Int`, :data:`Timestamp`, :data:`Date` and
:data:`Time` say INTEGER, TIMESTAMP, DATE and TIME) or from ``params=``/``returns=``; a
``returns`` callable computes the result type from the argument types, as ksqlDB's schema
providers do. Registering the same name again adds an overload: calls pick the one whose
parameters match the arguments exactly, else the one needing the fewest implicit widenings
(INTEGER -> BIGINT -> DECIMAL -> DOUBLE, STRING -> TIMESTAMP/DATE/TIME/BYTES). A NULL argument
makes the result NULL without calling the function unless it is registered with
``nulls=True`` (COALESCE, IFNULL, CONCAT...). An exception raised by a function is a processing
error: ksqlDB turns the expression (or the enclosing CAST or function argument) into NULL, and so
does :mod:`streams.ksql.expressions`.

Values are the runtime representation shared with the formats: TIMESTAMP epoch ms, DATE days,
TIME ms of day, DECIMAL ``decimal.Decimal``, BYTES ``bytes``, ARRAY list, MAP and STRUCT dict.
Results follow the Java implementations in ksqlDB (``io.confluent.ksql.function.udf``), including
Java's arithmetic (32/64-bit wrap, NaN and infinities instead of domain errors) and
``java.time`` date patterns (:class:`JavaDateFormat`).
"""

from __future__ import annotations

import base64
import inspect
import math
import operator
import random
import re
import types
import typing
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from decimal import (
    ROUND_CEILING,
    ROUND_DOWN,
    ROUND_FLOOR,
    ROUND_HALF_DOWN,
    ROUND_HALF_UP,
    Context,
    Decimal,
    Inexact,
)
from functools import lru_cache
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

from streams.ksql.ast import SqlType
from streams.ksql.errors import KsqlError

# --- types -------------------------------------------------------------------------------------

BOOLEAN = SqlType("BOOLEAN")
INTEGER = SqlType("INTEGER")
BIGINT = SqlType("BIGINT")
DOUBLE = SqlType("DOUBLE")
STRING = SqlType("STRING")
BYTES = SqlType("BYTES")
TIMESTAMP = SqlType("TIMESTAMP")
DATE = SqlType("DATE")
TIME = SqlType("TIME")
#: A DECIMAL parameter of any precision and scale (never a value's type).
ANY_DECIMAL = SqlType("DECIMAL")

#: Annotations for the types a Python annotation alone cannot say.
Int = Annotated[int, INTEGER]
Timestamp = Annotated[int, TIMESTAMP]
Date = Annotated[int, DATE]
Time = Annotated[int, TIME]


def decimal_type(precision: int, scale: int) -> SqlType:
    if precision < 1 or scale < 0 or scale > precision:
        raise KsqlError(f"DECIMAL precision must be >= scale >= 0: DECIMAL({precision},{scale})")
    return SqlType("DECIMAL", precision=precision, scale=scale)


def array_type(element: SqlType) -> SqlType:
    return SqlType("ARRAY", element=element)


def map_type(key: SqlType, value: SqlType) -> SqlType:
    return SqlType("MAP", key=key, element=value)


# SqlBaseType order: a number widens to any number after it.
_NUMERIC_RANK = {"INTEGER": 0, "BIGINT": 1, "DECIMAL": 2, "DOUBLE": 3}


def is_numeric(t: SqlType | None) -> bool:
    return t is not None and t.name in _NUMERIC_RANK


def can_implicitly_cast(src: SqlType, dst: SqlType) -> bool:
    """ksqlDB's ``SqlBaseType.canImplicitlyCast`` (on base types)."""
    if src.name == dst.name:
        return True
    if src.name in _NUMERIC_RANK and dst.name in _NUMERIC_RANK:
        return _NUMERIC_RANK[src.name] <= _NUMERIC_RANK[dst.name]
    return src.name == "STRING" and dst.name in ("TIMESTAMP", "DATE", "TIME", "BYTES")


def to_decimal(t: SqlType) -> SqlType:
    """The DECIMAL that holds every value of ``t`` (DecimalUtil.toSqlDecimal)."""
    if t.name == "DECIMAL":
        return t
    if t.name == "INTEGER":
        return decimal_type(10, 0)
    if t.name == "BIGINT":
        return decimal_type(19, 0)
    raise KsqlError(f"Cannot convert {t.name} to DECIMAL.")


def widen_decimal(a: SqlType, b: SqlType) -> SqlType:
    """A DECIMAL wide enough for either type (DecimalUtil.widen)."""
    da, db = to_decimal(a), to_decimal(b)
    assert da.precision is not None and da.scale is not None
    assert db.precision is not None and db.scale is not None
    scale = max(da.scale, db.scale)
    whole = max(da.precision - da.scale, db.precision - db.scale)
    return decimal_type(whole + scale, scale)


def widest_numeric(a: SqlType, b: SqlType) -> SqlType:
    if a.name == "DOUBLE" or b.name == "DOUBLE":
        return DOUBLE
    if a.name == "DECIMAL" or b.name == "DECIMAL":
        return widen_decimal(a, b)
    return a if _NUMERIC_RANK[a.name] >= _NUMERIC_RANK[b.name] else b


# --- Java value semantics ----------------------------------------------------------------------

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1


def wrap_int(v: int) -> int:
    """Java ``int`` overflow: ksqlDB's INTEGER arithmetic wraps around."""
    return ((v - _INT_MIN) & 0xFFFFFFFF) + _INT_MIN


def wrap_long(v: int) -> int:
    return ((v - _LONG_MIN) & 0xFFFFFFFFFFFFFFFF) + _LONG_MIN


def double_to_long(d: float) -> int:
    """Java's ``(long) d``: truncation, saturating at the range, NaN is 0."""
    if d != d:
        return 0
    if d >= 9.223372036854775807e18:
        return _LONG_MAX
    if d <= -9.223372036854775808e18:
        return _LONG_MIN
    return int(d)


def double_to_int(d: float) -> int:
    return max(_INT_MIN, min(_INT_MAX, double_to_long(d)))


def java_double_str(d: float) -> str:
    """Java's ``Double.toString``: shortest digits, plain between 10^-3 and 10^7, else
    ``1.0E10`` notation."""
    if d != d:
        return "NaN"
    if d in (math.inf, -math.inf):
        return "Infinity" if d > 0 else "-Infinity"
    if d == 0:
        return "-0.0" if math.copysign(1.0, d) < 0 else "0.0"
    if 1e-3 <= abs(d) < 1e7:
        text = repr(d)
        return text if "." in text or "e" in text else text + ".0"
    digits, exponent = _shortest_digits(d)
    mantissa = digits[0] + "." + (digits[1:] or "0")
    return ("-" if d < 0 else "") + f"{mantissa}E{exponent}"


def _shortest_digits(d: float) -> tuple[str, int]:
    """The shortest digits that read back as ``abs(d)`` (Python's repr, as Java's since JDK 19),
    and the power of ten of the first."""
    _, digits, exponent = Decimal(repr(abs(d))).as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits)).rstrip("0") or "0"
    first = len(digits) - 1 + exponent
    if len(text) == 1:
        # Java picks, among two-digit decimals, the one closest to the value: 4.9E-324 where
        # the shortest is 5E-324 (only subnormals differ).
        two = Context(prec=2).create_decimal(Decimal(abs(d)))
        _, digits, exponent = two.as_tuple()
        assert isinstance(exponent, int)
        text = "".join(map(str, digits)).rstrip("0") or "0"
        first = len(digits) - 1 + exponent
    return text, first


def java_round(d: float) -> int:
    """``Math.round(double)``: the closest long, halves rounded up (towards +infinity)."""
    if d != d:
        return 0
    if d in (math.inf, -math.inf):
        return _LONG_MAX if d > 0 else _LONG_MIN
    floor = math.floor(d)
    return double_to_long(floor + 1 if d - floor >= 0.5 else floor)


def parse_java_boolean(text: str) -> bool | None:
    """``SqlBooleans.parseBooleanExact``: a non-empty prefix of true/yes or false/no, any case."""
    lowered = text.lower()
    if lowered and ("true".startswith(lowered) or "yes".startswith(lowered)):
        return True
    if lowered and ("false".startswith(lowered) or "no".startswith(lowered)):
        return False
    return None


_JAVA_INT = re.compile(r"[+-]?[0-9]+")
_JAVA_DOUBLE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[fFdD]?")
_JAVA_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def parse_java_int(text: str, bits: int) -> int:
    """``Integer.parseInt`` / ``Long.parseLong`` (after ksqlDB's ``trim``)."""
    if not _JAVA_INT.fullmatch(text):
        raise ValueError(f'For input string: "{text}"')
    value = int(text)
    if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
        raise ValueError(f'For input string: "{text}"')
    return value


def parse_java_double(text: str) -> float:
    """``SqlDoubles.parseDouble``: Java's syntax, and NaN or an infinity is rejected."""
    if not _JAVA_DOUBLE.fullmatch(text):
        raise ValueError(f'For input string: "{text}"')
    value = float(text.rstrip("fFdD"))
    if value != value or value in (math.inf, -math.inf):
        raise ValueError(f"Invalid double value: {text}")
    return value


def parse_java_decimal(text: str) -> Decimal:
    """``new BigDecimal(text)``."""
    if not _JAVA_DECIMAL.fullmatch(text):
        raise ValueError(f"Character array is missing exponent or digits: {text}")
    return Decimal(text)


_EXACT = Context(prec=1000, traps=[Inexact])
_WIDE = Context(prec=1000)


def quantum(scale: int) -> Decimal:
    return Decimal(1).scaleb(-scale)


def decimal_fit(value: Decimal, precision: int, scale: int, rounding: str | None) -> Decimal:
    """``DecimalUtil.ensureMax`` then ``setScale``: an absolute value of 10^(p-s) or more
    overflows; ``rounding`` None demands an exact fit (RoundingMode.UNNECESSARY)."""
    if abs(value) >= Decimal(10) ** (precision - scale):
        raise ArithmeticError(
            f"Numeric field overflow: A field with precision {precision} and scale {scale} "
            f"must round to an absolute value less than 10^{precision - scale}. "
            f"Got {format(value, 'f')}"
        )
    if rounding is None:
        return value.quantize(quantum(scale), context=_EXACT)
    return value.quantize(quantum(scale), rounding=rounding, context=_WIDE)


# --- java.time patterns ------------------------------------------------------------------------

_UTC = UTC
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_OFFSET_ID = re.compile(r"([+-])(\d{1,2})(?::?(\d{2}))?(?::?(\d{2}))?")


@lru_cache(maxsize=256)
def java_zone(zone_id: str) -> tzinfo:
    """``ZoneId.of``: Z, an offset (+01, +01:00, +0100), UTC/GMT/UT with an offset, or a
    region id; anything else raises."""
    if zone_id == "Z":
        return _UTC
    for prefix in ("UTC", "GMT", "UT"):
        if zone_id.startswith(prefix) and zone_id[len(prefix) : len(prefix) + 1] in "+-":
            if zone_id == prefix:
                return ZoneInfo(prefix if prefix != "UT" else "UTC")
            offset = _offset(zone_id[len(prefix) :])
            return timezone(offset, prefix + _offset_id(offset)) if offset else ZoneInfo("UTC")
    if zone_id[:1] in "+-":
        offset = _offset(zone_id)
        return timezone(offset, _offset_id(offset)) if offset else _UTC
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9~/._+-]+", zone_id):
        raise ValueError(f"Invalid ID for region-based ZoneId, invalid format: {zone_id}")
    return ZoneInfo(zone_id)


def _offset(text: str) -> timedelta:
    m = _OFFSET_ID.fullmatch(text)
    if not m or int(m[2]) > 18:
        raise ValueError(f"Invalid ID for ZoneOffset, invalid format: {text}")
    seconds = int(m[2]) * 3600 + int(m[3] or 0) * 60 + int(m[4] or 0)
    return timedelta(seconds=-seconds if m[1] == "-" else seconds)


def _offset_id(offset: timedelta) -> str:
    total = int(offset.total_seconds())
    sign = "-" if total < 0 else "+"
    hours, rest = divmod(abs(total), 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{sign}{hours:02}:{minutes:02}" + (f":{seconds:02}" if seconds else "")


def to_datetime(ms: int, zone: tzinfo = _UTC) -> datetime:
    try:
        seconds, millis = divmod(ms, 1000)
        return datetime.fromtimestamp(seconds, zone).replace(microsecond=millis * 1000)
    except (OverflowError, OSError, ValueError):  # beyond the platform's time_t
        return (_EPOCH + timedelta(milliseconds=ms)).astimezone(zone)


def to_epoch_ms(dt: datetime) -> int:
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


@dataclass(frozen=True)
class _Field:
    letter: str
    count: int


_Token = _Field | str | bool  # a field, literal text, True/False opening/closing an optional part
_TIME_LETTERS = set("aBhKkHmsSAnN")
_DATE_LETTERS = set("GuyYDMLdQqwWEecF")
_ZONE_LETTERS = set("VvzOXxZ")
_MAX_COUNT = {
    **dict.fromkeys("dhHkKms", 2),
    "D": 3,
    "a": 1,
    "F": 1,
    "W": 1,
    "w": 2,
    "G": 5,
    "E": 5,
    "e": 5,
    "c": 5,
    "M": 5,
    "L": 5,
    "Q": 5,
    "q": 5,
    "S": 9,
    "X": 5,
    "x": 5,
    "Z": 5,
    "O": 4,
    "V": 2,
    "z": 4,
    "v": 4,
    **dict.fromkeys("uyYAnN", 19),
}


class JavaDateFormat:
    """A ``java.time.format.DateTimeFormatter`` pattern (``yyyy-MM-dd'T'HH:mm:ss.SSSX``), or with
    ``legacy=True`` a ``java.text.SimpleDateFormat`` one (PARSE_DATE's), for formatting and for
    parsing as ksqlDB's ``StringToTimestampParser`` does: case-insensitively, every field not in
    the text taken from 1970-01-01T00:00:00.000 in the zone given (or the one parsed). English
    names; week fields follow the US rules (weeks start on Sunday, week 1 holds January 1)."""

    def __init__(self, pattern: str, *, legacy: bool = False) -> None:
        self.pattern = pattern
        self.legacy = legacy
        self._tokens = _tokenize(pattern)
        self._printers = [_printer(t) for t in self._tokens if not isinstance(t, bool)]
        self._template = _template(self._tokens)
        self._recent: dict[tuple[int, tzinfo], str] = {}
        self._parsed: dict[tuple[str, tzinfo], int] = {}
        self._regex: re.Pattern[str] | None = None
        self._groups: list[_Field] = []

    # formatting ---------------------------------------------------------------------------

    def format(self, ms: int, zone: tzinfo) -> str:
        # Window bounds and event times repeat: the last texts are kept.
        key = (ms, zone)
        text = self._recent.get(key)
        if text is None:
            if len(self._recent) >= 1024:
                self._recent.clear()
            text = self._recent[key] = self._format_ms(ms, zone)
        return text

    def _format_ms(self, ms: int, zone: tzinfo) -> str:
        if self._template is not None:
            seconds, millis = divmod(ms, 1000)
            try:
                dt = datetime.fromtimestamp(seconds, zone)
            except (OverflowError, OSError, ValueError):
                dt = None
            if dt is not None and 0 < dt.year <= 9999:
                return self._template(dt, millis)
        return self._format(to_datetime(ms, zone), "timestamp")

    def format_date(self, days: int) -> str:
        return self._format(datetime(1970, 1, 1) + timedelta(days=days), "date")

    def format_time(self, ms_of_day: int) -> str:
        return self._format(datetime(1970, 1, 1) + timedelta(milliseconds=ms_of_day), "time")

    def _format(self, dt: datetime, kind: str) -> str:
        if kind != "timestamp":
            excluded = _TIME_LETTERS if kind == "date" else _DATE_LETTERS
            for token in self._tokens:
                if isinstance(token, _Field) and token.letter in excluded | _ZONE_LETTERS:
                    raise ValueError(f"Unsupported field: {token.letter} for a {kind}")
        if self._template is not None and 0 < dt.year <= 9999:
            return self._template(dt, dt.microsecond // 1000)
        return "".join([p if isinstance(p, str) else p(dt) for p in self._printers])

    # parsing ------------------------------------------------------------------------------

    def parse(self, text: str, zone: tzinfo) -> int:
        """Epoch ms of ``text``."""
        # A source's event times repeat (many records a second): the last ones are kept.
        key = (text, zone)
        ms = self._parsed.get(key)
        if ms is None:
            if len(self._parsed) >= 1024:
                self._parsed.clear()
            fields = self._match(text)
            tz = _parsed_zone(fields) or zone
            ms = to_epoch_ms(_resolve_datetime(fields, self.legacy).replace(tzinfo=tz))
            self._parsed[key] = ms
        return ms

    def parse_time(self, text: str) -> int:
        """Ms of day of ``text``."""
        dt = _resolve_datetime(self._match(text), self.legacy)
        return ((dt.hour * 60 + dt.minute) * 60 + dt.second) * 1000 + dt.microsecond // 1000

    def _match(self, text: str) -> dict[str, Any]:
        if self._regex is None:
            self._regex = re.compile(self._parse_regex(), re.IGNORECASE)
        # SimpleDateFormat.parse reads a prefix of the text; DateTimeFormatter all of it.
        m = self._regex.match(text) if self.legacy else self._regex.fullmatch(text)
        if not m:
            raise ValueError(f"Text '{text}' could not be parsed with pattern '{self.pattern}'")
        fields: dict[str, Any] = {}
        for i, spec in enumerate(self._groups):
            raw = m.group(i + 1)
            if raw is not None:
                fields[spec.letter] = (spec.count, raw)
        return fields

    def _parse_regex(self) -> str:
        parts = []
        tokens = self._tokens
        for i, token in enumerate(tokens):
            if token is True:
                parts.append("(?:")
            elif token is False:
                parts.append(")?")
            elif isinstance(token, str):
                parts.append(re.escape(token))
            else:
                following = tokens[i + 1] if i + 1 < len(tokens) else None
                adjacent = isinstance(following, _Field) and following.letter in "yuMdHhKkmsSD"
                parts.append(f"({self._field_regex(token, adjacent)})")
                self._groups.append(token)
        return "".join(parts)

    def _field_regex(self, f: _Field, adjacent: bool) -> str:
        letter, count = f.letter, f.count
        if letter in "MLQq" and count >= 3:
            names = (
                _MONTHS
                if letter in "ML"
                else ["1st quarter", "2nd quarter", "3rd quarter", "4th quarter"]
            )
            if letter in "Qq" and count == 3:
                names = ["Q1", "Q2", "Q3", "Q4"]
            options = names if count == 4 else [n[:3] if letter in "ML" else n for n in names]
            return "|".join(sorted(map(re.escape, options), key=len, reverse=True))
        if letter in "Eec" and (letter == "E" or count >= 3):
            return "|".join(sorted(_DAYS + [d[:3] for d in _DAYS], key=len, reverse=True))
        if letter == "a":
            return "AM|PM"
        if letter == "G":
            return "AD|BC|Anno Domini|Before Christ|A|B"
        if letter in "XxZO":
            return r"Z|(?:GMT|UTC)?(?:[+-]\d{1,2}(?::?\d{2}(?::?\d{2})?)?)?"
        if letter in "Vvz":
            return r"[A-Za-z][A-Za-z0-9_/+-]*"
        if letter == "S" and not self.legacy:
            return rf"\d{{{count}}}"
        if self.legacy:
            return rf"\d{{{count}}}" if adjacent else r"[+-]?\d+"
        if letter in "uyY" and count == 2:
            return r"\d{2}"
        if letter in "uyY":
            return rf"[+-]?\d{{{count},19}}"
        if count >= 2 or adjacent:
            return rf"\d{{{count}}}" if count >= 2 else r"\d{1,2}"
        return r"\d+"


def _tokenize(pattern: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n, depth = 0, len(pattern), 0
    while i < n:
        c = pattern[i]
        if c.isascii() and c.isalpha():
            j = i
            while j < n and pattern[j] == c:
                j += 1
            count = j - i
            if c not in _MAX_COUNT:
                raise ValueError(f"Unknown pattern letter: {c}")
            if count > _MAX_COUNT[c] or (c == "V" and count != 2):
                raise ValueError(f"Too many pattern letters: {c}")
            tokens.append(_Field(c, count))
            i = j
        elif c == "'":
            j = pattern.find("'", i + 1)
            while j != -1 and pattern[j + 1 : j + 2] == "'":
                j = pattern.find("'", j + 2)
            if j == -1:
                raise ValueError(f"Pattern ends with an incomplete string literal: {pattern}")
            tokens.append("'" if j == i + 1 else pattern[i + 1 : j].replace("''", "'"))
            i = j + 1
        elif c == "[":
            depth += 1
            tokens.append(True)
            i += 1
        elif c == "]":
            if depth == 0:
                raise ValueError("Pattern invalid as it contains ] without previous [")
            depth -= 1
            tokens.append(False)
            i += 1
        elif c in "{}#":
            raise ValueError(f"Pattern includes reserved character: '{c}'")
        else:
            tokens.append(c)
            i += 1
    tokens.extend([False] * depth)
    return tokens


_CLOCK = {"M": "month", "d": "day", "H": "hour", "m": "minute", "s": "second"}


def _printer(token: str | _Field) -> str | Callable[[datetime], str]:
    """The text of a literal, or a function printing a field (the usual ones directly)."""
    if isinstance(token, str):
        return token
    letter, count = token.letter, token.count
    if letter in _CLOCK and count <= 2:
        attribute, width = _CLOCK[letter], count
        return lambda dt: f"{getattr(dt, attribute):0{width}}"
    if letter in "uy" and count == 4:
        return lambda dt: f"{dt.year:04}" if 0 < dt.year <= 9999 else _format_field(dt, token)
    if letter == "S" and count <= 6:
        return lambda dt: f"{dt.microsecond:06}"[:count]
    return lambda dt: _format_field(dt, token)


def _template(tokens: list[_Token]) -> Callable[[datetime, int], str] | None:
    """A ``%`` template for a pattern of literals and plain numbers (the usual
    ``yyyy-MM-dd HH:mm:ss.SSS``), as ``print(datetime, millis)``; None for any other pattern."""
    parts, names, millis = [], [], False
    for token in tokens:
        if isinstance(token, bool):
            return None
        if isinstance(token, str):
            parts.append(token.replace("%", "%%"))
            continue
        if millis:
            return None  # a field after the fraction: the millis must come last
        if token.letter in _CLOCK and token.count <= 2:
            names.append(_CLOCK[token.letter])
            parts.append(f"%0{token.count}d")
        elif token.letter in "uy" and token.count == 4:
            names.append("year")
            parts.append("%04d")
        elif token.letter == "S" and token.count == 3:
            millis = True
            parts.append("%03d")
        else:
            return None
    text = "".join(parts)
    if not names:
        return None
    getter = operator.attrgetter(*names)
    if len(names) == 1:
        return lambda dt, ms: text % ((getter(dt), ms) if millis else (getter(dt),))
    if millis:
        return lambda dt, ms: text % (*getter(dt), ms)
    return lambda dt, _ms: text % getter(dt)


def _pad(value: int, width: int) -> str:
    return ("-" if value < 0 else "") + str(abs(value)).rjust(width, "0")


def _us_week(d: date) -> tuple[int, int]:
    """(week-based year, week of year) under WeekFields.SUNDAY_START: week 1 is the Sunday to
    Saturday week holding January 1."""

    def week1(year: int) -> date:
        jan1 = date(year, 1, 1)
        return jan1 - timedelta(days=(jan1.weekday() + 1) % 7)

    year = d.year + 1 if d >= week1(d.year + 1) else d.year
    return year, (d - week1(year)).days // 7 + 1


def _format_field(dt: datetime, f: _Field) -> str:
    letter, count = f.letter, f.count
    if letter in "uy":
        year = dt.year if letter == "u" else (dt.year if dt.year > 0 else 1 - dt.year)
        if count == 2:
            return f"{year % 100:02}"
        text = _pad(year, count)
        return "+" + text if count >= 4 and year > 9999 else text
    if letter == "Y":
        year = _us_week(dt.date())[0]
        return f"{year % 100:02}" if count == 2 else _pad(year, count)
    if letter == "w":
        return _pad(_us_week(dt.date())[1], count)
    if letter == "W":
        first = dt.replace(day=1)
        return str((dt.day + (first.weekday() + 1) % 7 - 1) // 7 + 1)
    if letter == "F":
        return str((dt.day - 1) // 7 + 1)
    if letter == "G":
        return {4: "Anno Domini", 5: "A"}.get(count, "AD")
    if letter in "ML":
        if count <= 2:
            return _pad(dt.month, count)
        name = _MONTHS[dt.month - 1]
        return {3: name[:3], 4: name, 5: name[0]}[count]
    if letter in "Qq":
        quarter = (dt.month - 1) // 3 + 1
        if count <= 2:
            return _pad(quarter, count)
        return {
            3: f"Q{quarter}",
            4: f"{quarter}{['st', 'nd', 'rd', 'th'][quarter - 1]} quarter",
            5: str(quarter),
        }[count]
    if letter == "d":
        return _pad(dt.day, count)
    if letter == "D":
        return _pad(dt.timetuple().tm_yday, count)
    if letter in "Eec":
        if letter != "E" and count <= 2:
            return _pad((dt.weekday() + 1) % 7 + 1, count)
        name = _DAYS[dt.weekday()]
        return {4: name, 5: name[0]}.get(count, name[:3])
    if letter == "a":
        return "AM" if dt.hour < 12 else "PM"
    if letter in "hKkH":
        hour = {"H": dt.hour, "k": dt.hour or 24, "K": dt.hour % 12, "h": dt.hour % 12 or 12}
        return _pad(hour[letter], count)
    if letter == "m":
        return _pad(dt.minute, count)
    if letter == "s":
        return _pad(dt.second, count)
    nano = dt.microsecond * 1000
    if letter == "S":
        return f"{nano:09}"[:count]
    if letter in "AN":
        of_day = (dt.hour * 3600 + dt.minute * 60 + dt.second) * 10**9 + nano
        return _pad(of_day // 10**6 if letter == "A" else of_day, count)
    if letter == "n":
        return _pad(nano, count)
    return _format_zone(dt, f)


def _format_zone(dt: datetime, f: _Field) -> str:
    letter, count = f.letter, f.count
    tz = dt.tzinfo
    offset = dt.utcoffset() or timedelta(0)
    if letter == "V":
        return getattr(tz, "key", None) or (tz.tzname(dt) if tz else "") or "Z"
    if letter in "zv":
        return tz.tzname(dt) or "" if tz else ""
    total = int(offset.total_seconds())
    sign = "-" if total < 0 else "+"
    hours, rest = divmod(abs(total), 3600)
    minutes, seconds = divmod(rest, 60)
    if letter == "O":
        if not total:
            return "GMT"
        if count == 1:
            return f"GMT{sign}{hours}" + (f":{minutes:02}" if minutes or seconds else "")
        return f"GMT{sign}{hours:02}:{minutes:02}" + (f":{seconds:02}" if seconds else "")
    if letter == "Z" and count == 4:
        return "GMT" if not total else f"GMT{sign}{hours:02}:{minutes:02}"
    if letter == "X" and not total:
        return "Z"
    if letter == "Z" and count == 5 and not total:
        return "Z"
    colon = ":" if (letter in "Xx" and count in (3, 5)) or (letter == "Z" and count == 5) else ""
    text = f"{sign}{hours:02}"
    if letter in "Xx" and count == 1:
        return text + (f"{minutes:02}" if minutes else "")
    text += f"{colon}{minutes:02}"
    if (letter in "Xx" and count >= 4) or (letter == "Z" and count == 5):
        text += f"{colon}{seconds:02}" if seconds or count == 4 else ""
    return text


def _parsed_zone(fields: dict[str, Any]) -> tzinfo | None:
    for letter in "XxZOVvz":
        if letter in fields:
            raw: str = fields[letter][1]
            if raw.upper() in ("Z", "GMT", "UTC"):
                return _UTC
            if raw[:3].upper() in ("GMT", "UTC"):
                raw = raw[3:]
            if raw[:1] in "+-":
                m = re.fullmatch(r"([+-])(\d{1,2}):?(\d{2})?:?(\d{2})?", raw)
                if not m:
                    raise ValueError(f"Invalid offset: {raw}")
                return java_zone(f"{m[1]}{int(m[2]):02}:{m[3] or '00'}:{m[4] or '00'}")
            return java_zone(raw)
    return None


def _resolve_datetime(fields: dict[str, Any], legacy: bool) -> datetime:
    """A naive datetime from parsed fields, defaults from 1970-01-01T00:00 (ksqlDB's
    StringToTimestampParser)."""

    def num(letter: str) -> int | None:
        return int(fields[letter][1]) if letter in fields else None

    year = 1970
    for letter in "uyY":
        if letter in fields:
            count, raw = fields[letter]
            year = 2000 + int(raw) if count == 2 else int(raw)
            if letter == "y" and fields.get("G", (0, "A"))[1][:1].upper() == "B":
                year = 1 - year
            break
    month = 1
    for letter in "ML":
        if letter in fields:
            count, raw = fields[letter]
            month = int(raw) if count <= 2 else _text_month(raw)
    day = num("d") or 1
    base = date(year, month, 1)
    if "D" in fields:
        base = date(year, 1, 1) + timedelta(days=int(fields["D"][1]) - 1)
    else:
        last = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
        base = base.replace(day=min(day, last)) if day >= 1 else base.replace(day=day)
    hour = num("H")
    if hour is None and "k" in fields:
        hour = (num("k") or 0) % 24
    if hour is None:
        half = num("h") if "h" in fields else num("K")
        half = 0 if half is None else half % 12
        hour = half + (12 if fields.get("a", (1, "AM"))[1].upper() == "PM" else 0)
    minute, second = num("m") or 0, num("s") or 0
    nano = 0
    if "S" in fields:
        # SimpleDateFormat's S is a number of milliseconds, DateTimeFormatter's a fraction.
        raw = fields["S"][1]
        nano = int(raw) * 10**6 if legacy else int(raw.ljust(9, "0")[:9])
    if "n" in fields:
        nano = int(fields["n"][1])
    result = datetime(base.year, base.month, base.day, hour, minute, second, nano // 1000)
    if "A" in fields:
        result = datetime(base.year, base.month, base.day) + timedelta(milliseconds=num("A") or 0)
    return result


def _text_month(raw: str) -> int:
    lowered = raw.lower()
    for i, name in enumerate(_MONTHS):
        if name.lower() == lowered or name[:3].lower() == lowered:
            return i + 1
    raise ValueError(f"Unknown month: {raw}")


@lru_cache(maxsize=1024)
def java_date_format(pattern: str, legacy: bool = False) -> JavaDateFormat:
    return JavaDateFormat(pattern, legacy=legacy)


_TIMESTAMP_PATTERN = "yyyy-MM-dd'T'HH:mm:ss.SSS"
_TIME_PATTERN = "HH:mm:ss.SSS"


def parse_timestamp_text(text: str) -> int:
    """A STRING read as a TIMESTAMP (CAST, comparisons): ksqlDB's
    PartialStringToTimestampParser, ``2020-05-26T23:59:58.000+0200`` or any prefix of it."""
    if "T" in text:
        day, rest = text.split("T", 1)
        sign = "+" if "+" in rest else "-" if "-" in rest else ""
        zone_text = rest[rest.index(sign) :] if sign else ""
        clock = rest[: len(rest) - len(zone_text)]
        clock = clock[:-1] if clock.endswith("Z") else clock
    else:
        day, clock, zone_text = complete_date(text), "", ""
    if len(clock) < len(_TIME_PATTERN):
        clock += re.sub("[a-zA-Z]", "0", _TIME_PATTERN[len(clock) :])
    zone = java_zone(zone_text) if zone_text.strip() else _UTC
    return java_date_format(_TIMESTAMP_PATTERN).parse(f"{day}T{clock}", zone)


def complete_date(text: str) -> str:
    parts = text.split("-")
    return text + ("-01-01" if len(parts) == 1 else "-01" if len(parts) == 2 else "")


def parse_date_text(text: str) -> int:
    """A STRING read as a DATE: ISO ``yyyy-MM-dd``, or ``yyyy-MM`` / ``yyyy``."""
    full = complete_date(text)
    if not re.fullmatch(r"[+-]?\d{4,}-\d{2}-\d{2}", full):
        raise ValueError(f"Failed to parse date '{text}'")
    return date.fromisoformat(full).toordinal() - _EPOCH_ORDINAL


def parse_time_text(text: str) -> int:
    """A STRING read as a TIME: ISO ``HH:mm[:ss[.fraction]]``."""
    m = re.fullmatch(r"(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?", text)
    if not m or int(m[1]) > 23 or int(m[2]) > 59 or int(m[3] or 0) > 59:
        raise ValueError(f"Failed to parse time '{text}'")
    return (int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3] or 0)) * 1000 + int(
        (m[4] or "0").ljust(3, "0")[:3]
    )


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def format_timestamp_text(ms: int) -> str:
    """A TIMESTAMP as a STRING (CAST): ``yyyy-MM-dd'T'HH:mm:ss.SSS`` in UTC."""
    return java_date_format(_TIMESTAMP_PATTERN).format(ms, _UTC)


def format_date_text(days: int) -> str:
    return date.fromordinal(days + _EPOCH_ORDINAL).isoformat()


def format_time_text(ms_of_day: int) -> str:
    """``LocalTime.ofSecondOfDay(ms / 1000).toString()``: seconds only when not zero."""
    minutes, second = divmod(ms_of_day // 1000, 60)
    hour, minute = divmod(minutes, 60)
    return f"{hour:02}:{minute:02}" + (f":{second:02}" if second else "")


# --- the registry ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Generic:
    """A type variable: every argument bound to the same name takes one type (numbers widen to
    the widest)."""

    name: str = "T"


@dataclass(frozen=True)
class ArrayOf:
    element: Param


@dataclass(frozen=True)
class MapOf:
    key: Param
    value: Param


Param = SqlType | Generic | ArrayOf | MapOf
ReturnType = Param | Callable[[tuple[SqlType | None, ...]], SqlType]


@dataclass(frozen=True)
class Overload:
    name: str
    fn: Callable[..., Any]
    params: tuple[Param, ...]
    variadic: bool
    returns: ReturnType
    nulls: bool

    def signature(self) -> str:
        shown = [_param_str(p) for p in self.params]
        if self.variadic:
            shown[-1] += "..."
        return f"{self.name}({', '.join(shown)})"


@dataclass(frozen=True)
class ResolvedFunction:
    """A call's overload: ``arg_types`` is what each argument is converted to before the call
    (None for a NULL literal), ``type`` the result's."""

    name: str
    fn: Callable[..., Any]
    arg_types: tuple[SqlType | None, ...]
    type: SqlType
    nulls: bool


def _param_str(p: Param) -> str:
    if isinstance(p, Generic):
        return p.name
    if isinstance(p, ArrayOf):
        return f"ARRAY<{_param_str(p.element)}>"
    if isinstance(p, MapOf):
        return f"MAP<{_param_str(p.key)}, {_param_str(p.value)}>"
    return str(p) if p.precision is not None or p.name != "DECIMAL" else "DECIMAL"


@dataclass
class FunctionRegistry:
    """Scalar functions by upper-case name, each a list of overloads."""

    _functions: dict[str, list[Overload]] = field(default_factory=dict)

    def __contains__(self, name: str) -> bool:
        return name.upper() in self._functions

    def register(
        self,
        name: str,
        fn: Callable[..., Any],
        *,
        params: Sequence[Param] | None = None,
        returns: ReturnType | None = None,
        nulls: bool = False,
    ) -> None:
        signature = inspect.signature(fn)
        variadic = any(p.kind is p.VAR_POSITIONAL for p in signature.parameters.values())
        hints = typing.get_type_hints(fn, include_extras=True)
        if params is None:
            params = [_annotation_param(hints.get(p, Any)) for p in signature.parameters]
        if returns is None:
            if "return" not in hints:
                raise KsqlError(f"Function {name}: give its result type (returns=...)")
            returns = _annotation_param(hints["return"])
        if returns == ANY_DECIMAL:
            raise KsqlError(f"Function {name}: a DECIMAL result needs returns=<a type function>")
        overload = Overload(name.upper(), fn, tuple(params), variadic, returns, nulls)
        self._functions.setdefault(name.upper(), []).append(overload)

    def resolve(self, name: str, args: Sequence[SqlType | None]) -> ResolvedFunction:
        overloads = self._functions.get(name.upper())
        if not overloads:
            raise KsqlError(f"Can't find any functions with the name '{name}'")
        for allow_casts in (False, True):
            best: tuple[tuple[bool, int, int], ResolvedFunction] | None = None
            for order, overload in enumerate(overloads):
                match = _match(overload, args, allow_casts)
                if match is None:
                    continue
                rank = (overload.variadic, match[0], order)
                if best is None or rank < best[0]:
                    best = (rank, match[1])
            if best is not None:
                return best[1]
        shown = ", ".join("null" if a is None else str(a) for a in args)
        alternatives = "\n".join(o.signature() for o in overloads)
        raise KsqlError(
            f"Function '{name.upper()}' does not accept parameters ({shown}).\n"
            f"Valid alternatives are:\n{alternatives}"
        )


#: The functions expressions call; :func:`udf` adds to it.
REGISTRY = FunctionRegistry()

F = TypeVar("F", bound=Callable[..., Any])


def udf(
    name: str,
    *,
    params: Sequence[Param] | None = None,
    returns: ReturnType | None = None,
    nulls: bool = False,
    registry: FunctionRegistry | None = None,
) -> Callable[[F], F]:
    """Register the decorated function as the scalar function ``name`` (see the module doc)."""

    def register(fn: F) -> F:
        (registry or REGISTRY).register(name, fn, params=params, returns=returns, nulls=nulls)
        return fn

    return register


_PY_TYPES: dict[Any, SqlType] = {
    bool: BOOLEAN,
    int: BIGINT,
    float: DOUBLE,
    str: STRING,
    bytes: BYTES,
    Decimal: ANY_DECIMAL,
}


def _annotation_param(a: Any) -> Param:
    if isinstance(a, (SqlType, Generic, ArrayOf, MapOf)):
        return a
    if a is Any:
        return Generic()
    if isinstance(a, TypeVar):
        return Generic(a.__name__)
    origin, args = typing.get_origin(a), typing.get_args(a)
    if origin is Annotated:
        declared = [m for m in a.__metadata__ if isinstance(m, (SqlType, Generic, ArrayOf, MapOf))]
        return declared[0] if declared else _annotation_param(args[0])
    if origin in (typing.Union, types.UnionType):
        kept = [x for x in args if x is not type(None)]
        if len(kept) == 1:
            return _annotation_param(kept[0])
    if origin is list and len(args) == 1:
        element = _annotation_param(args[0])
        return array_type(element) if isinstance(element, SqlType) else ArrayOf(element)
    if origin is dict and len(args) == 2:
        key, value = _annotation_param(args[0]), _annotation_param(args[1])
        if isinstance(key, SqlType) and isinstance(value, SqlType):
            return map_type(key, value)
        return MapOf(key, value)
    if a in _PY_TYPES:
        return _PY_TYPES[a]
    raise KsqlError(f"No SQL type for the annotation {a!r}; give params= or returns=")


def _match(
    overload: Overload, args: Sequence[SqlType | None], allow_casts: bool
) -> tuple[int, ResolvedFunction] | None:
    """(cost, resolution) of calling ``overload`` with ``args``: the number of implicit casts."""
    params = list(overload.params)
    if overload.variadic:
        if len(args) < len(params) - 1:
            return None
        params = params[:-1] + [params[-1]] * (len(args) - len(params) + 1)
    elif len(args) != len(params):
        return None
    bindings = _bind_generics(params, args, allow_casts)
    if bindings is None:
        return None
    cost, targets = 0, []
    for param, arg in zip(params, args, strict=True):
        target = _target(param, arg, bindings, allow_casts)
        if target is None:
            return None
        targets.append(target[0])
        cost += target[1]
    arg_types = tuple(targets)
    returns = overload.returns
    if callable(returns) and not isinstance(returns, (SqlType, Generic, ArrayOf, MapOf)):
        result = returns(arg_types)
    else:
        result = _concrete(returns, bindings)
    if result is None:
        return None  # a generic result bound to nothing: COALESCE() or COALESCE(NULL)
    return cost, ResolvedFunction(overload.name, overload.fn, arg_types, result, overload.nulls)


def _bind_generics(
    params: list[Param], args: Sequence[SqlType | None], allow_casts: bool
) -> dict[str, SqlType] | None:
    seen: dict[str, list[SqlType]] = {}

    def collect(p: Param, a: SqlType | None) -> bool:
        if a is None:
            return True
        if isinstance(p, Generic):
            seen.setdefault(p.name, []).append(a)
            return True
        if isinstance(p, ArrayOf):
            return a.name == "ARRAY" and collect(p.element, a.element)
        if isinstance(p, MapOf):
            return a.name == "MAP" and collect(p.key, a.key) and collect(p.value, a.element)
        return True

    if not all(collect(p, a) for p, a in zip(params, args, strict=True)):
        return None
    bindings = {}
    for name, found in seen.items():
        bound = found[0]
        for t in found[1:]:
            if t == bound:
                continue
            if not (allow_casts and is_numeric(t) and is_numeric(bound)):
                return None
            bound = widest_numeric(bound, t)
        bindings[name] = bound
    return bindings


def _target(
    p: Param, a: SqlType | None, bindings: dict[str, SqlType], allow_casts: bool
) -> tuple[SqlType | None, int] | None:
    if a is None:
        return _concrete(p, bindings), 0
    if isinstance(p, Generic):
        bound = bindings[p.name]
        return (bound, 0) if a == bound else (bound, 1)
    if isinstance(p, ArrayOf):
        inner = _target(p.element, a.element, bindings, allow_casts) if a.name == "ARRAY" else None
        return None if inner is None or inner[0] is None else (array_type(inner[0]), inner[1])
    if isinstance(p, MapOf):
        if a.name != "MAP":
            return None
        k = _target(p.key, a.key, bindings, allow_casts)
        v = _target(p.value, a.element, bindings, allow_casts)
        if k is None or v is None or k[0] is None or v[0] is None:
            return None
        return map_type(k[0], v[0]), k[1] + v[1]
    if p.name == "DECIMAL" and p.precision is None:
        if a.name == "DECIMAL":
            return a, 0
        return (to_decimal(a), 1) if allow_casts and a.name in ("INTEGER", "BIGINT") else None
    if a == p or (a.name == p.name and a.name in ("ARRAY", "MAP", "STRUCT") and _open(p)):
        return a, 0
    if allow_casts and a.name != p.name and can_implicitly_cast(a, p):
        return p, 1
    return None


def _open(p: SqlType) -> bool:
    """An ARRAY, MAP or STRUCT parameter that says nothing of its content accepts any."""
    return p.element is None and p.key is None and not p.fields


def _concrete(p: Param, bindings: dict[str, SqlType]) -> SqlType | None:
    if isinstance(p, Generic):
        return bindings.get(p.name)
    if isinstance(p, ArrayOf):
        element = _concrete(p.element, bindings)
        return None if element is None else array_type(element)
    if isinstance(p, MapOf):
        key, value = _concrete(p.key, bindings), _concrete(p.value, bindings)
        return None if key is None or value is None else map_type(key, value)
    return None if p.name == "DECIMAL" and p.precision is None else p


def _first(arg_types: tuple[SqlType | None, ...]) -> SqlType:
    """Schema provider: the result has the first argument's type (ABS, FLOOR... on DECIMAL)."""
    assert arg_types[0] is not None
    return arg_types[0]


def _whole(arg_types: tuple[SqlType | None, ...]) -> SqlType:
    """Schema provider of ROUND/TRUNC(DECIMAL): DECIMAL(precision - scale, 0)."""
    t = _first(arg_types)
    assert t.precision is not None and t.scale is not None
    return decimal_type(max(t.precision - t.scale, 1), 0)


def _widest(arg_types: tuple[SqlType | None, ...]) -> SqlType:
    known = [t for t in arg_types if t is not None]
    result = known[0]
    for t in known[1:]:
        result = widest_numeric(result, t)
    return result


# --- math --------------------------------------------------------------------------------------


@udf("ABS")
def _abs_int(x: Int) -> Int:
    return wrap_int(abs(x))


@udf("ABS")
def _abs_long(x: int) -> int:
    return wrap_long(abs(x))


@udf("ABS")
def _abs_double(x: float) -> float:
    return abs(x)


@udf("ABS", returns=_first)
def _abs_decimal(x: Decimal) -> Decimal:
    return abs(x)


@udf("FLOOR")
@udf("CEIL")
def _int_identity(x: Int) -> Int:
    return x


@udf("FLOOR")
@udf("CEIL")
def _long_identity(x: int) -> int:
    return x


def _to_integral(x: float, fn: Callable[[float], int]) -> float:
    if x != x or x in (math.inf, -math.inf):
        return x
    # Java keeps the sign of zero: CEIL(-0.5) is -0.0.
    return math.copysign(float(fn(x)), x)


@udf("FLOOR")
def _floor_double(x: float) -> float:
    return _to_integral(x, math.floor)


@udf("CEIL")
def _ceil_double(x: float) -> float:
    return _to_integral(x, math.ceil)


# ksqlDB keeps the argument's scale: FLOOR of 1.5 as a DECIMAL(2,1) is 1.0.
@udf("FLOOR", returns=_first)
def _floor_decimal(x: Decimal) -> Decimal:
    return x.quantize(Decimal(1), rounding=ROUND_FLOOR).quantize(x, context=_WIDE)


@udf("CEIL", returns=_first)
def _ceil_decimal(x: Decimal) -> Decimal:
    return x.quantize(Decimal(1), rounding=ROUND_CEILING).quantize(x, context=_WIDE)


def _half_up_towards_positive(x: Decimal, places: int) -> Decimal:
    """ksqlDB's ROUND: BigDecimal HALF_UP for positive values and HALF_DOWN otherwise, so a half
    goes towards +infinity as Math.round does."""
    rounding = ROUND_HALF_UP if x > 0 else ROUND_HALF_DOWN
    return x.quantize(quantum(places), rounding=rounding, context=_WIDE)


def _whole_number(x: int) -> int:
    """ROUND and TRUNC of a whole number: the number itself, as a BIGINT."""
    return x


for _name in ("ROUND", "TRUNC"):
    udf(_name)(_whole_number)
    udf(_name, params=[INTEGER], returns=BIGINT)(_whole_number)


@udf("ROUND")
def _round_double(x: float) -> int:
    return java_round(x)


@udf("ROUND")
def _round_double_places(x: float, places: Int) -> float:
    return float(_half_up_towards_positive(Decimal(repr(x)), places))


@udf("ROUND", returns=_whole)
def _round_decimal(x: Decimal) -> Decimal:
    return _half_up_towards_positive(x, 0)


@udf("ROUND", returns=_first)
def _round_decimal_places(x: Decimal, places: Int) -> Decimal:
    return _half_up_towards_positive(x, places).quantize(x, context=_EXACT)


@udf("TRUNC")
def _trunc_double(x: float) -> int:
    return double_to_long(x)


@udf("TRUNC")
def _trunc_double_places(x: float, places: Int) -> float:
    return float(Decimal(repr(x)).quantize(quantum(places), rounding=ROUND_DOWN, context=_WIDE))


@udf("TRUNC", returns=_whole)
def _trunc_decimal(x: Decimal) -> Decimal:
    return x.quantize(Decimal(1), rounding=ROUND_DOWN, context=_WIDE)


@udf("TRUNC", returns=_first)
def _trunc_decimal_places(x: Decimal, places: Int) -> Decimal:
    return x.quantize(quantum(places), rounding=ROUND_DOWN, context=_WIDE).quantize(
        x, context=_EXACT
    )


@udf("SIGN", params=[INTEGER], returns=INTEGER)
def _sign_int(x: int) -> int:
    return (x > 0) - (x < 0)


@udf("SIGN", params=[BIGINT], returns=INTEGER)
def _sign_long(x: int) -> int:
    return (x > 0) - (x < 0)


@udf("SIGN", params=[DOUBLE], returns=INTEGER)
def _sign_double(x: float) -> int:
    return (x > 0) - (x < 0)


def _java_math(fn: Callable[..., float]) -> Callable[..., float]:
    """A ``math`` function with Java's results where Python raises: NaN for a domain error,
    an infinity for an overflow or a pole."""

    def java(*args: float) -> float:
        try:
            return fn(*args)
        except OverflowError:
            return math.copysign(math.inf, args[0]) if fn is math.sinh else math.inf
        except (ValueError, ZeroDivisionError):
            return _java_special(fn, *args)

    return java


def _java_special(fn: Callable[..., float], *args: float) -> float:
    x = args[0]
    if fn is math.log:
        return -math.inf if x == 0 else math.nan
    if fn is _cot:
        return math.copysign(math.inf, x)
    return math.nan


def _cot(x: float) -> float:
    return 1 / math.tan(x)


def _pow(base: float, exponent: float) -> float:
    try:
        return math.pow(base, exponent)
    except OverflowError:
        return math.inf if base > 0 or exponent % 2 != 1 else -math.inf
    except (ValueError, ZeroDivisionError):
        # Math.pow: 0 to a negative power is an infinity; a negative base to a fraction NaN.
        if base == 0:
            return -math.inf if math.copysign(1, base) < 0 and exponent % 2 == 1 else math.inf
        return math.nan


_UNARY_MATH: dict[str, Callable[[float], float]] = {
    "EXP": math.exp,
    "LN": math.log,
    "SQRT": math.sqrt,
    "CBRT": math.cbrt,
    "SIN": math.sin,
    "COS": math.cos,
    "TAN": math.tan,
    "COT": _cot,
    "ASIN": math.asin,
    "ACOS": math.acos,
    "ATAN": math.atan,
    "SINH": math.sinh,
    "COSH": math.cosh,
    "TANH": math.tanh,
    "DEGREES": math.degrees,
    "RADIANS": math.radians,
    "LOG": math.log,
}

for _name, _fn in _UNARY_MATH.items():
    # ksqlDB has INTEGER, BIGINT and DOUBLE overloads, all computing on the double value.
    udf(_name, params=[DOUBLE], returns=DOUBLE)(_java_math(_fn))


@udf("ATAN2")
def _atan2(y: float, x: float) -> float:
    return math.atan2(y, x)


@udf("POWER")
def _power(base: float, exponent: float) -> float:
    return _pow(base, exponent)


@udf("LOG")
def _log_base(base: float, value: float) -> float:
    if base <= 0 or base == 1:
        return math.nan
    return _java_math(math.log)(value) / math.log(base)


@udf("PI")
def _pi() -> float:
    return math.pi


@udf("RANDOM")
def _random() -> float:
    return random.random()


def _greatest_or_least(pick: Callable[..., Any]) -> Callable[..., Any]:
    def choose(*values: Any) -> Any:
        present = [v for v in values if v is not None]
        return pick(present) if present else None

    return choose


for _name, _pick in (("GREATEST", max), ("LEAST", min)):
    udf(_name, params=[Generic()], returns=Generic(), nulls=True)(_greatest_or_least(_pick))


# --- strings -----------------------------------------------------------------------------------

# Java's String.trim removes every char up to U+0020, not Unicode whitespace.
_JAVA_BLANK = "".join(map(chr, range(33)))


def _start(length: int, pos: int) -> int:
    return max(length + pos, 0) if pos < 0 else max(min(pos - 1, length), 0)


@udf("SUBSTRING", params=[STRING, INTEGER], returns=STRING)
@udf("SUBSTRING", params=[BYTES, INTEGER], returns=BYTES)
def _substring(s: Any, pos: int) -> Any:
    """1-based; a negative position counts from the end; out of range clamps."""
    return s[_start(len(s), pos) :]


@udf("SUBSTRING", params=[STRING, INTEGER, INTEGER], returns=STRING)
@udf("SUBSTRING", params=[BYTES, INTEGER, INTEGER], returns=BYTES)
def _substring_length(s: Any, pos: int, length: int) -> Any:
    start = _start(len(s), pos)
    return s[start : max(min(start + length, len(s)), start)]


@udf("LEN", params=[STRING], returns=INTEGER)
@udf("LEN", params=[BYTES], returns=INTEGER)
def _len(s: Any) -> int:
    # Java String.length counts UTF-16 code units.
    return len(s) if isinstance(s, bytes) else len(s.encode("utf-16-le")) // 2


@udf("CONCAT", params=[STRING], nulls=True, returns=STRING)
def _concat(*parts: str | None) -> str:
    return "".join(p for p in parts if p is not None)


@udf("CONCAT", params=[BYTES], nulls=True, returns=BYTES)
def _concat_bytes(*parts: bytes | None) -> bytes:
    return b"".join(p for p in parts if p is not None)


@udf("CONCAT_WS", params=[STRING], nulls=True, returns=STRING)
@udf("CONCAT_WS", params=[BYTES], nulls=True, returns=BYTES)
def _concat_ws(*parts: Any) -> Any:
    if len(parts) < 2:
        raise ValueError("Function Concat_WS expects at least two input arguments.")
    separator = parts[0]
    if separator is None:
        return None
    return separator.join(p for p in parts[1:] if p is not None)


@udf("UCASE")
def _ucase(s: str) -> str:
    return s.upper()


@udf("LCASE")
def _lcase(s: str) -> str:
    return s.lower()


@udf("TRIM")
def _trim(s: str) -> str:
    return s.strip(_JAVA_BLANK)


@udf("INITCAP")
def _initcap(s: str) -> str:
    return "".join(w[:1].upper() + w[1:] for w in re.findall(r"\S+\s*", s.lower()))


@udf("REPLACE")
def _replace(s: str, old: str, new: str) -> str:
    return s.replace(old, new)


@udf("INSTR")
def _instr(s: str, sub: str) -> Int:
    return s.find(sub) + 1


@udf("INSTR")
def _instr_from(s: str, sub: str, position: Int) -> Int:
    return _instr_nth(s, sub, position, 1)


@udf("INSTR")
def _instr_nth(s: str, sub: str, position: Int, occurrence: Int) -> Int:
    """1-based; a negative position searches backwards from that far from the end."""
    if position > 0:
        index = position - 2
        for _ in range(occurrence):
            index = s.find(sub, index + 1)
            if index < 0:
                return 0
        return index + 1
    index = len(s) + position + 1
    for _ in range(occurrence):
        index = s.rfind(sub, 0, index - 1 + len(sub)) if index > 0 else -1
        if index < 0:
            return 0
    return index + 1


@udf("LPAD")
def _lpad(s: str, length: Int, padding: str) -> str | None:
    if length < 0 or (not padding and length > len(s)):
        return None
    fill = (padding * length)[: max(length - len(s), 0)]
    return (fill + s)[:length]


@udf("RPAD")
def _rpad(s: str, length: Int, padding: str) -> str | None:
    if length < 0 or (not padding and length > len(s)):
        return None
    return (s + padding * length)[:length]


@udf("SPLIT")
def _split(s: str, delimiter: str) -> list[str]:
    return list(s) if delimiter == "" else s.split(delimiter)


@udf("REGEXP_REPLACE")
def _regexp_replace(s: str, pattern: str, replacement: str) -> str:
    return _java_regex(pattern).sub(_java_replacement(replacement), s)


@udf("REGEXP_EXTRACT")
def _regexp_extract(pattern: str, s: str) -> str | None:
    m = _java_regex(pattern).search(s)
    return m.group(0) if m else None


@udf("REGEXP_EXTRACT")
def _regexp_extract_group(pattern: str, s: str, group: Int) -> str | None:
    m = _java_regex(pattern).search(s)
    return m.group(group) if m and group <= (m.re.groups or 0) else None


@lru_cache(maxsize=256)
def _java_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _java_replacement(replacement: str) -> str:
    # Java writes group references as $1, Python as \1.
    return re.sub(r"\$(\d+)", r"\\\1", replacement.replace("\\", "\\\\"))


@udf("CHR", params=[INTEGER], returns=STRING)
def _chr(code: int) -> str | None:
    return chr(code) if 0 <= code <= 0x10FFFF else None


@udf("UUID")
def _uuid() -> str:
    return str(uuid.uuid4())


_ENCODINGS = {"hex", "utf8", "ascii", "base64"}


@udf("TO_BYTES")
def _to_bytes(s: str, encoding: str) -> bytes:
    return _decode_text(s, encoding.lower())


@udf("FROM_BYTES")
def _from_bytes(b: bytes, encoding: str) -> str:
    encoding = encoding.lower()
    if encoding == "hex":
        return b.hex().upper()
    if encoding == "base64":
        return base64.b64encode(b).decode()
    if encoding in ("utf8", "ascii"):
        return b.decode("utf-8" if encoding == "utf8" else "ascii")
    raise ValueError(f"Supported input encodings are: {', '.join(sorted(_ENCODINGS))}")


def _decode_text(s: str, encoding: str) -> bytes:
    if encoding == "hex":
        return bytes.fromhex(s)
    if encoding == "base64":
        return base64.b64decode(s, validate=True)
    if encoding in ("utf8", "ascii"):
        return s.encode("utf-8" if encoding == "utf8" else "ascii")
    raise ValueError(f"Supported input encodings are: {', '.join(sorted(_ENCODINGS))}")


# --- nulls -------------------------------------------------------------------------------------


@udf("COALESCE", params=[Generic()], returns=Generic(), nulls=True)
def _coalesce(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


@udf("IFNULL", params=[Generic(), Generic()], returns=Generic(), nulls=True)
def _ifnull(value: Any, alternative: Any) -> Any:
    return alternative if value is None else value


@udf("NULLIF", params=[Generic(), Generic()], returns=Generic(), nulls=True)
def _nullif(value: Any, other: Any) -> Any:
    return None if value is None or value == other else value


# AS_VALUE copies a key column into the value; as an expression it is the identity.
@udf("AS_VALUE", params=[Generic()], returns=Generic(), nulls=True)
def _as_value(value: Any) -> Any:
    return value


# --- collections -------------------------------------------------------------------------------


@udf("ARRAY_LENGTH", params=[ArrayOf(Generic())], returns=INTEGER)
def _array_length(values: list[Any]) -> int:
    return len(values)


@udf("ARRAY_CONTAINS", params=[ArrayOf(Generic()), Generic()], returns=BOOLEAN, nulls=True)
def _array_contains(values: list[Any] | None, value: Any) -> bool:
    return values is not None and value in values


@udf("ARRAY_MIN", params=[ArrayOf(Generic())], returns=Generic())
def _array_min(values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    return min(present) if present else None


@udf("ARRAY_MAX", params=[ArrayOf(Generic())], returns=Generic())
def _array_max(values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    return max(present) if present else None


# --- date and time -----------------------------------------------------------------------------


@udf("FORMAT_TIMESTAMP")
def _format_timestamp(ts: Timestamp, pattern: str) -> str:
    return java_date_format(pattern).format(ts, java_zone("GMT"))


@udf("FORMAT_TIMESTAMP")
def _format_timestamp_zone(ts: Timestamp, pattern: str, zone: str) -> str:
    return java_date_format(pattern).format(ts, java_zone(zone))


@udf("TIMESTAMPTOSTRING")
def _timestamptostring(ms: int, pattern: str) -> str:
    # ksqlDB formats in the JVM's default zone; a server runs in UTC (as the QTT cases do).
    return java_date_format(pattern).format(ms, _UTC)


@udf("TIMESTAMPTOSTRING")
def _timestamptostring_zone(ms: int, pattern: str, zone: str) -> str:
    return java_date_format(pattern).format(ms, java_zone(zone))


@udf("STRINGTOTIMESTAMP", params=[STRING, STRING], returns=BIGINT)
@udf("STRINGTOTIMESTAMP")
def string_to_timestamp(text: str, pattern: str, zone: str = "UTC") -> int:
    """Epoch ms of ``text`` read with a java.time ``pattern`` in ``zone`` unless the text has
    one (STRINGTOTIMESTAMP; a source's TIMESTAMP_FORMAT); ValueError if it does not match."""
    try:
        return java_date_format(pattern).parse(text, java_zone(zone))
    except (KeyError, OverflowError) as e:  # an unknown zone; a year out of range
        raise ValueError(str(e)) from e


@udf("PARSE_TIMESTAMP")
def _parse_timestamp(text: str, pattern: str) -> Timestamp:
    return java_date_format(pattern).parse(text, java_zone("GMT"))


@udf("PARSE_TIMESTAMP")
def _parse_timestamp_zone(text: str, pattern: str, zone: str) -> Timestamp:
    return java_date_format(pattern).parse(text, java_zone(zone))


@udf("FROM_UNIXTIME")
def _from_unixtime(ms: int) -> Timestamp:
    return ms


@udf("UNIX_TIMESTAMP")
def _unix_timestamp_now() -> int:
    return to_epoch_ms(datetime.now(_UTC))


@udf("UNIX_TIMESTAMP")
def _unix_timestamp(ts: Timestamp) -> int:
    return ts


@udf("UNIX_DATE")
def _unix_date_today() -> Int:
    return datetime.now(_UTC).date().toordinal() - _EPOCH_ORDINAL


@udf("UNIX_DATE")
def _unix_date(days: Date) -> Int:
    return days


@udf("FROM_DAYS")
def _from_days(days: Int) -> Date:
    return days


@udf("PARSE_DATE")
def _parse_date(text: str, pattern: str) -> Date:
    # ksqlDB parses with SimpleDateFormat in GMT and rejects a result that is not midnight.
    ms = java_date_format(pattern, legacy=True).parse(text, _UTC)
    days, rest = divmod(ms, 86_400_000)
    if rest:
        raise ValueError("Date format contains time field.")
    return days


@udf("FORMAT_DATE")
def _format_date(days: Date, pattern: str) -> str:
    return java_date_format(pattern).format_date(days)


@udf("PARSE_TIME")
def _parse_time(text: str, pattern: str) -> Time:
    return java_date_format(pattern).parse_time(text)


@udf("FORMAT_TIME")
def _format_time(ms_of_day: Time, pattern: str) -> str:
    return java_date_format(pattern).format_time(ms_of_day)


@udf("CONVERT_TZ")
def _convert_tz(ts: Timestamp, from_zone: str, to_zone: str) -> Timestamp:
    """Shifts a timestamp by the difference of the two zones' offsets at that instant."""
    instant = to_datetime(ts)
    source = instant.astimezone(java_zone(from_zone)).utcoffset() or timedelta(0)
    target = instant.astimezone(java_zone(to_zone)).utcoffset() or timedelta(0)
    return ts + int((target - source).total_seconds() * 1000)


#: Built-in functions whose result is not a function of their arguments.
NONDETERMINISTIC = frozenset({"RANDOM", "UUID", "UNIX_TIMESTAMP", "UNIX_DATE"})
#: The built-in functions (a UDF registered later is not known to be deterministic).
BUILTIN = frozenset(REGISTRY._functions)


def deterministic(name: str) -> bool:
    """Whether the function ``name`` returns the same value for the same arguments."""
    return name.upper() in BUILTIN and name.upper() not in NONDETERMINISTIC
