"""Key and value formats: ksqlDB's serdes for KAFKA, JSON, DELIMITED and NONE.

A :class:`Serde` turns a row's columns (a list in column order, in the runtime representation:
BOOLEAN bool, INTEGER/BIGINT int, DOUBLE float, DECIMAL ``Decimal`` at the type's scale, STRING
str, BYTES bytes, TIMESTAMP epoch ms, DATE epoch days, TIME ms of day, ARRAY list, MAP and STRUCT
dict; NULL None) into record bytes and back, reading and writing the bytes ksqlDB reads and
writes, coercions included. A record whose bytes do not fit the schema raises
:class:`SerdeError` (a ``ValueError``: the processors dead-letter the record); a schema the
format cannot carry raises :class:`~streams.ksql.errors.KsqlError` when the serde is built, in
ksqlDB's words.

Each serde also converts to and from the representation ksqlDB's query-validation tests (QTT)
write records in: the JSON value for JSON, the scalar for KAFKA, the CSV text for DELIMITED.
Windowed keys (:func:`windowed_key_serde`) are the inner key's bytes followed by the window
bounds, as Kafka Streams' ``TimeWindowedSerializer`` and ``SessionWindowedSerializer`` write
them.

Everything that depends only on the schema (column names, per-type converters) is worked out
when the serde is built, so a record costs one parse and one pass over its columns.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import struct
from collections.abc import Callable, Mapping, Sequence
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any, Literal

import orjson

from streams.ksql.ast import SqlType
from streams.ksql.errors import KsqlError, Unsupported

#: A row's columns: (name, type) in schema order.
Columns = Sequence[tuple[str, SqlType]]

#: Formats ksqlDB knows; the ones needing a schema registry (or protobuf) are not run yet.
FORMATS = frozenset(
    {"KAFKA", "JSON", "DELIMITED", "NONE", "AVRO", "PROTOBUF", "PROTOBUF_NOSR", "JSON_SR"}
)
_NOT_RUN = frozenset({"AVRO", "PROTOBUF", "PROTOBUF_NOSR", "JSON_SR"})
#: Which of WRAP_SINGLE_VALUE's settings each format accepts (ksqlDB's SerdeFeatures).
_WRAPPINGS: dict[str, frozenset[bool]] = {
    "KAFKA": frozenset({False}),
    "DELIMITED": frozenset({False}),
    "NONE": frozenset(),
    **{name: frozenset({True, False}) for name in ("JSON", *_NOT_RUN)},
}
_KAFKA_TYPES = frozenset({"INTEGER", "BIGINT", "DOUBLE", "STRING", "BYTES"})
_NESTED = frozenset({"ARRAY", "MAP", "STRUCT"})

_INT = struct.Struct(">i")
_LONG = struct.Struct(">q")
_DOUBLE = struct.Struct(">d")
_LONG_MAX = 2**63 - 1
_DAY_MS = 86_400_000
#: More digits than any DECIMAL ksqlDB allows, so quantizing never hits the context's limit.
_DECIMAL_CONTEXT = Context(prec=2000)


class SerdeError(ValueError):
    """A record's key or value that its format cannot read (or a row it cannot write):
    ``reason`` says why, in ksqlDB's words where it has them."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- the serdes -------------------------------------------------------------------------------


class Serde:
    """One format over one schema: a record key's or a record value's columns."""

    def __init__(self, fmt: str, columns: Columns) -> None:
        self.format = fmt
        self.columns = tuple(columns)

    def serialize(self, values: list[Any] | None) -> bytes | None:
        """The record bytes of ``values`` (in column order); None writes a null record."""
        raise NotImplementedError

    def deserialize(self, data: bytes | None) -> list[Any] | None:
        """The columns of a record's bytes; None for a null record. Raises SerdeError."""
        raise NotImplementedError

    def to_test(self, data: bytes | None) -> Any:
        """The record as ksqlDB's test cases write it (None for a null record)."""
        raise NotImplementedError

    def from_test(self, obj: Any) -> bytes | None:
        """The bytes a test case's record stands for."""
        raise NotImplementedError

    def normalize_test(self, obj: Any) -> Any:
        """A test case's expected record in the form :meth:`to_test` gives, for comparing
        with ``==`` (ksqlDB's test comparator is lenient where this is: a DECIMAL may be
        written as a string, field names may be lower case)."""
        return obj


class _VoidSerde(Serde):
    """No columns (NONE, a key without columns, a KAFKA value without columns): nothing is
    written, any data reads as an empty row."""

    def serialize(self, values: list[Any] | None) -> bytes | None:
        return None

    def deserialize(self, data: bytes | None) -> list[Any] | None:
        return None if data is None else []

    def to_test(self, data: bytes | None) -> Any:
        return None if data is None else data.decode("utf-8", "replace")

    def from_test(self, obj: Any) -> bytes | None:
        # The test cases put ignored data there as text (ksqlDB's runner uses a string serde).
        return None if obj is None else str(obj).encode()


class _KafkaSerde(Serde):
    """One primitive column as Kafka's own serializers write it: INT 4 bytes and BIGINT 8
    bytes big-endian, DOUBLE 8-byte IEEE 754, STRING UTF-8, BYTES as is."""

    def __init__(self, columns: Columns) -> None:
        super().__init__("KAFKA", columns)
        self._type = self.columns[0][1].name
        self._write, self._read = _KAFKA_CODECS[self._type]

    def serialize(self, values: list[Any] | None) -> bytes | None:
        if values is None:
            return None
        _check_count(1, values)
        value = values[0]
        if value is None:
            return None
        try:
            return self._write(value)
        except (struct.error, TypeError, ValueError, AttributeError) as exc:
            raise SerdeError(f"Can't write {value!r} as KAFKA {self._type}: {exc}") from None

    def deserialize(self, data: bytes | None) -> list[Any] | None:
        if data is None:
            return None
        return [self._read(data)]

    def to_test(self, data: bytes | None) -> Any:
        row = self.deserialize(data)
        if row is None:
            return None
        value = row[0]
        # ksqlDB's test runner reads KAFKA BYTES as UTF-8 text.
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else value

    def from_test(self, obj: Any) -> bytes | None:
        if obj is None:
            return None
        if self._type == "BYTES":
            return _expect(obj, str, "BYTES").encode()
        if self._type == "STRING":
            return _expect(obj, str, "STRING").encode()
        number = _expect(obj, int | float, self._type)
        # The test runner coerces a JSON number to the column's type (1 -> 1.0 for DOUBLE).
        return self._write(float(number) if self._type == "DOUBLE" else int(number))


def _kafka_fixed(codec: struct.Struct, name: str) -> Callable[[bytes], Any]:
    def read(data: bytes) -> Any:
        if len(data) != codec.size:
            raise SerdeError(f"Size of data received by {name}Deserializer is not {codec.size}")
        return codec.unpack(data)[0]

    return read


_KAFKA_CODECS: dict[str, tuple[Callable[[Any], bytes], Callable[[bytes], Any]]] = {
    "INTEGER": (_INT.pack, _kafka_fixed(_INT, "Integer")),
    "BIGINT": (_LONG.pack, _kafka_fixed(_LONG, "Long")),
    "DOUBLE": (lambda v: _DOUBLE.pack(float(v)), _kafka_fixed(_DOUBLE, "Double")),
    # Java's String decoding replaces malformed UTF-8 rather than failing.
    "STRING": (str.encode, lambda data: data.decode("utf-8", "replace")),
    "BYTES": (bytes, bytes),
}


class _JsonSerde(Serde):
    """An object of the columns (``wrapped``), or the single column's value alone.

    Reads as ksqlDB's ``KsqlJsonDeserializer``: field names match exactly or upper-cased,
    missing fields are NULL, and scalars are coerced ("302" to INTEGER, numbers to STRING,
    numbers or strings to DECIMAL). Writes as Kafka Connect's ``JsonConverter`` does for
    ksqlDB: DECIMAL as a number at its scale, BYTES base64, non-finite DOUBLEs as "NaN" /
    "Infinity" strings, temporal types as numbers."""

    def __init__(self, columns: Columns, wrapped: bool) -> None:
        super().__init__("JSON", columns)
        self._wrapped = wrapped
        self._names = [name for name, _ in self.columns]
        self._writers = [_json_writer(t) for _, t in self.columns]
        self._plain = all(w is None for w in self._writers)
        self._read_row = _struct_reader(self.columns)
        self._read_single = _json_reader(self.columns[0][1]) if not wrapped else None
        self._required = _struct_text(self.columns)
        # orjson reads a fraction as a float, whose shortest text is the number as written for
        # up to 15 significant digits: exact for a DECIMAL that holds no more. Wider DECIMALs
        # take the (five times slower) exact parser.
        exact = any(_contains(t, _wide_decimal) for _, t in self.columns)
        self._loads: Callable[[bytes], Any] = _loads_exact if exact else orjson.loads
        normalize = _struct_normalizer(self.columns)
        self._normalize = normalize if wrapped else _json_normalizer(self.columns[0][1])

    def serialize(self, values: list[Any] | None) -> bytes | None:
        if values is None:
            return None
        _check_count(len(self._names), values)
        if self._wrapped:
            if self._plain:
                obj: Any = dict(zip(self._names, values, strict=True))
            else:
                obj = {
                    name: value if write is None or value is None else write(value)
                    for name, write, value in zip(self._names, self._writers, values, strict=True)
                }
        else:
            obj = values[0]
            if obj is None:
                return None
            write = self._writers[0]
            if write is not None:
                obj = write(obj)
        try:
            return orjson.dumps(obj)
        except TypeError as exc:  # orjson's JSONEncodeError: an int beyond 64 bits, say
            raise SerdeError(f"Can't write JSON: {exc}") from None

    def deserialize(self, data: bytes | None) -> list[Any] | None:
        if data is None:
            return None
        try:
            obj = self._loads(data)
        except ValueError as exc:
            raise SerdeError(f"Failed to deserialize JSON: {exc}") from None
        if obj is None:
            return None if self._wrapped else [None]
        try:
            if not self._wrapped:
                return [self._read_single(obj)]  # type: ignore[misc]
            if type(obj) is not dict:
                raise _Coercion(_cannot_convert(obj, self._required))
            return self._read_row(obj)
        except _Coercion as exc:
            raise SerdeError(f"{exc.message}, path: ${exc.path}") from None

    def to_test(self, data: bytes | None) -> Any:
        return None if data is None else orjson.loads(data)

    def from_test(self, obj: Any) -> bytes | None:
        return None if obj is None else _dumps_test(obj)

    def normalize_test(self, obj: Any) -> Any:
        return self._normalize(obj)


class _DelimitedSerde(Serde):
    """One line of delimited text, as ksqlDB writes it with Apache commons-csv 1.4's default
    format (quotes only where needed; a NULL is an empty field) and reads it: an empty field
    is NULL, whatever the column's type."""

    def __init__(self, columns: Columns, delimiter: str) -> None:
        super().__init__("DELIMITED", columns)
        self._delimiter = delimiter
        self._parsers = [(name, _DELIMITED_PARSERS[t.name](t)) for name, t in self.columns]
        self._printers = [_DELIMITED_PRINTERS[t.name] for _, t in self.columns]

    def serialize(self, values: list[Any] | None) -> bytes | None:
        if values is None:
            return None
        _check_count(len(self._printers), values)
        delimiter = self._delimiter
        fields = []
        for value, printer in zip(values, self._printers, strict=True):
            if value is None:
                fields.append("")  # commons-csv writes a null unquoted, even first
            else:
                fields.append(_csv_field(printer(value), not fields, delimiter))
        return delimiter.join(fields).encode()

    def deserialize(self, data: bytes | None) -> list[Any] | None:
        if data is None:
            return None
        fields = _csv_record(data.decode("utf-8", "replace"), self._delimiter)
        if len(fields) != len(self._parsers):
            raise SerdeError(
                f"Column count mismatch on deserialization. expected: {len(self._parsers)}, "
                f"got: {len(fields)}"
            )
        row = []
        for text, (name, parse) in zip(fields, self._parsers, strict=True):
            try:
                row.append(parse(text) if text else None)
            except _Coercion as exc:
                raise SerdeError(
                    f"Error deserializing delimited: `{name}`: {exc.message}"
                ) from None
        return row

    def to_test(self, data: bytes | None) -> Any:
        return None if data is None else data.decode("utf-8", "replace")

    def from_test(self, obj: Any) -> bytes | None:
        if obj is None:
            return None
        if isinstance(obj, bool) or not isinstance(obj, str | int | float):
            raise SerdeError(f"A DELIMITED record is text, not {obj!r}")
        return str(obj).encode()


# --- windowed keys ----------------------------------------------------------------------------


class WindowedSerde:
    """A windowed key: the inner key's bytes, then for time windows (TUMBLING, HOPPING) the
    8-byte big-endian window start (the end is start + size, as the reader knows the size),
    for sessions the 8-byte end and then the 8-byte start."""

    def __init__(self, inner: Serde, kind: Literal["time", "session"], size_ms: int | None):
        if kind == "time" and size_ms is None:
            raise ValueError("a time-windowed key needs the window size")
        self.inner = inner
        self.kind = kind
        self.size_ms = size_ms
        self._suffix = 8 if kind == "time" else 16

    def serialize(self, values: list[Any] | None, start: int, end: int) -> bytes:
        key = self.inner.serialize(values)
        if key is None:
            raise SerdeError("A windowed key needs a non-null key")
        if self.kind == "time":
            return key + _LONG.pack(start)
        return key + _LONG.pack(end) + _LONG.pack(start)

    def split(self, data: bytes | None) -> tuple[bytes, int, int]:
        """``(inner key bytes, window start, window end)``."""
        if data is None or len(data) < self._suffix:
            raise SerdeError(f"A {self.kind}-windowed key has at least {self._suffix} bytes")
        if self.kind == "time":
            start = _LONG.unpack_from(data, len(data) - 8)[0]
            # Kafka Streams' TimeWindow end, saturating at Long.MAX_VALUE.
            return data[:-8], start, min(start + self.size_ms, _LONG_MAX)  # type: ignore[operator]
        end, start = struct.unpack_from(">qq", data, len(data) - 16)
        return data[:-16], start, end

    def deserialize(self, data: bytes | None) -> tuple[list[Any] | None, int, int]:
        """``(key columns, window start, window end)``."""
        inner, start, end = self.split(data)
        return self.inner.deserialize(inner), start, end


def windowed_key_serde(
    inner: Serde, kind: Literal["time", "session"], size_ms: int | None
) -> WindowedSerde:
    return WindowedSerde(inner, kind, size_ms)


# --- choosing a serde -------------------------------------------------------------------------


def resolve_formats(properties: Mapping[str, Any], defaults: Mapping[str, Any]) -> tuple[str, str]:
    """``(key format, value format)`` of a statement's WITH ``properties``: FORMAT sets both,
    KEY_FORMAT and VALUE_FORMAT one each; what they leave open comes from ``defaults``
    (``KEY_FORMAT``/``VALUE_FORMAT``: ksqlDB's configured defaults, KAFKA for keys, or for
    ``CREATE ... AS SELECT`` the source's formats)."""
    fmt = properties.get("FORMAT")
    key, value = properties.get("KEY_FORMAT"), properties.get("VALUE_FORMAT")
    if fmt is not None:
        for name, given in (("KEY_FORMAT", key), ("VALUE_FORMAT", value)):
            if given is not None:
                raise KsqlError(
                    f"Cannot supply both '{name}' and 'FORMAT' properties, as 'FORMAT' sets both "
                    "key and value formats. Either use just 'FORMAT', or use 'KEY_FORMAT' and "
                    "'VALUE_FORMAT'."
                )
        key = value = fmt
    key = key if key is not None else defaults.get("KEY_FORMAT")
    value = value if value is not None else defaults.get("VALUE_FORMAT")
    for name, config, given in (("KEY", "key", key), ("VALUE", "value", value)):
        if given is None:
            raise KsqlError(
                f"Statement is missing the '{name}_FORMAT' property from the WITH clause. Either "
                f"provide one or set a default via the 'ksql.persistence.default.format.{config}' "
                "config."
            )
    return _format_name(key), _format_name(value)


def key_serde(fmt: str, columns: Columns, properties: Mapping[str, Any]) -> Serde:
    """The serde of a record key: one column unwrapped (JSON too), several as the format
    writes a row (a JSON object, delimited fields)."""
    fmt = _format_name(fmt)
    columns = tuple(columns)
    delimiter = _delimiter(properties, "KEY_DELIMITER")
    _check_properties(fmt, delimiter)
    for name, sql_type in columns:
        if _contains(sql_type, lambda t: t.name == "MAP"):
            raise KsqlError(
                "Map keys, including types that contain maps, are not supported as they may lead "
                "to unexpected behavior due to inconsistent serialization. Key column name: "
                f"`{name}`. Column type: {sql_type}. See "
                "https://github.com/confluentinc/ksql/issues/6621 for more."
            )
    if not columns:
        return _VoidSerde(fmt, columns)
    # ksqlDB marks a single key UNWRAP_SINGLES where the format could do either.
    unwrap = len(columns) == 1 and True in _WRAPPINGS[fmt]
    target = _Target("Key", fmt, columns, "UNWRAP_SINGLES" if unwrap else "")
    return _build(target, delimiter, wrapped=len(columns) != 1)


def value_serde(fmt: str, columns: Columns, properties: Mapping[str, Any]) -> Serde:
    """The serde of a record value. WRAP_SINGLE_VALUE=false writes a single column's value
    alone (KAFKA and DELIMITED always do; JSON wraps by default)."""
    fmt = _format_name(fmt)
    columns = tuple(columns)
    delimiter = _delimiter(properties, "VALUE_DELIMITER")
    _check_properties(fmt, delimiter)
    wrap = properties.get("WRAP_SINGLE_VALUE")
    features = ""
    if wrap is not None:
        wrap = str(wrap).strip().lower() == "true"
        if wrap not in _WRAPPINGS[fmt]:
            raise KsqlError(
                f"Format '{fmt}' does not support 'WRAP_SINGLE_VALUE' set to '{str(wrap).lower()}'."
            )
        if len(columns) != 1:
            raise KsqlError("'WRAP_SINGLE_VALUE' is only valid for single-field value schemas")
        features = "WRAP_SINGLES" if wrap else "UNWRAP_SINGLES"
    return _build(_Target("Value", fmt, columns, features), delimiter, wrapped=wrap is not False)


class _Target:
    """What a serde is built for, to word ksqlDB's "does not support schema" errors."""

    def __init__(self, role: str, fmt: str, columns: tuple[Any, ...], features: str) -> None:
        self.role, self.format, self.columns, self.features = role, fmt, columns, features

    def columns_text(self) -> str:
        key = " KEY" if self.role == "Key" else ""
        return "[" + ", ".join(f"`{name}` {t}{key}" for name, t in self.columns) + "]"

    def error(self, reason: str) -> KsqlError:
        return KsqlError(
            f"{self.role} format does not support schema.\nformat: {self.format}\nschema: "
            f"Persistence{{columns={self.columns_text()}, features=[{self.features}]}}\n"
            f"reason: {reason}"
        )


def _build(target: _Target, delimiter: str | None, wrapped: bool) -> Serde:
    """The serde of ``target``'s format; ``wrapped``: JSON writes an object of the columns
    (else the single column's value alone)."""
    fmt, columns = target.format, target.columns
    if fmt in _NOT_RUN:
        raise Unsupported(f"format {fmt} (Schema Registry and Protobuf formats are not run yet)")
    if fmt == "NONE":
        if columns:
            raise target.error(
                "The 'NONE' format can only be used when no columns are defined. Got: "
                + target.columns_text()
            )
        return _VoidSerde(fmt, columns)
    if fmt == "KAFKA":
        if not columns:
            return _VoidSerde(fmt, columns)
        if len(columns) != 1:
            raise target.error(
                f"The 'KAFKA' format only supports a single field. Got: {target.columns_text()}"
            )
        type_name = columns[0][1].name
        if type_name not in _KAFKA_TYPES:
            raise target.error(f"The 'KAFKA' format does not support type '{type_name}'")
        return _KafkaSerde(columns)
    if fmt == "DELIMITED":
        for name, sql_type in columns:
            if sql_type.name in _NESTED:
                raise target.error(
                    f"The 'DELIMITED' format does not support type '{sql_type.name}', "
                    f"column: `{name}`"
                )
        return _DelimitedSerde(columns, delimiter or ",")
    _check_json(target)
    return _JsonSerde(columns, wrapped)


def _check_json(target: _Target) -> None:
    def bad_map(t: SqlType) -> bool:
        return t.name == "MAP" and t.key is not None and t.key.name != "STRING"

    if any(_contains(t, bad_map) for _, t in target.columns):
        raise target.error("JSON only supports MAP types with STRING keys")


def _format_name(fmt: Any) -> str:
    name = str(fmt).strip().upper()
    if name not in FORMATS:
        raise KsqlError(f"Unknown format: {name}")
    return name


def _delimiter(properties: Mapping[str, Any], name: str) -> str | None:
    """ksqlDB's ``Delimiter.parse``: one character, or TAB or SPACE."""
    text = properties.get(name)
    if text is None:
        return None
    text = str(text)
    problem = None
    if not text.strip(_JAVA_BLANK):
        problem = (
            "Delimiter cannot be empty, if you meant to have a tab or space for delimiter, "
            "please use the special values 'TAB' or 'SPACE'"
        )
    elif len(text) == 1:
        return text
    elif text in ("TAB", "SPACE"):
        return "\t" if text == "TAB" else " "
    else:
        problem = (
            f"Invalid delimiter value: '{text}'. Delimiter must be a single character or TAB,SPACE"
        )
    raise KsqlError(
        f"Failed to prepare statement: Configuration {name} is invalid: {problem}\n"
        "Example valid value: ';'"
    )


def _check_properties(fmt: str, delimiter: str | None) -> None:
    if delimiter is not None and fmt != "DELIMITED":
        raise KsqlError(f"{fmt} does not support the following configs: [delimiter]")


def _contains(sql_type: SqlType, test: Callable[[SqlType], bool]) -> bool:
    """Whether ``sql_type`` or a type nested in it passes ``test``."""
    if test(sql_type):
        return True
    children = [c for c in (sql_type.element, sql_type.key) if c is not None]
    return any(_contains(c, test) for c in children + [t for _, t in sql_type.fields])


def _wide_decimal(sql_type: SqlType) -> bool:
    return sql_type.name == "DECIMAL" and (sql_type.precision or 0) > 15


def _check_count(expected: int, values: list[Any]) -> None:
    if len(values) != expected:
        raise SerdeError(
            f"Column count mismatch on serialization. expected: {expected}, got: {len(values)}"
        )


def _expect(obj: Any, kind: Any, type_name: str) -> Any:
    if isinstance(obj, bool) or not isinstance(obj, kind):
        raise SerdeError(f"Can't serialize {obj!r} as {type_name}")
    return obj


# --- JSON: reading ----------------------------------------------------------------------------


class _Coercion(Exception):
    """A value that does not fit its type; ``path`` grows as it leaves nested values."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.path = ""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"Non-standard token '{name}'")


def _loads_exact(data: bytes) -> Any:
    # Decimals keep every digit and their scale, as Jackson's USE_BIG_DECIMAL_FOR_FLOATS does.
    return json.loads(data, parse_float=Decimal, parse_constant=_reject_constant)


def _node(value: Any) -> str:
    """The Jackson node class ksqlDB's messages name for a parsed JSON value."""
    if isinstance(value, bool):
        return "BooleanNode"
    if isinstance(value, int):
        if -(2**31) <= value < 2**31:
            return "IntNode"
        return "LongNode" if -(2**63) <= value < 2**63 else "BigIntegerNode"
    if isinstance(value, float | Decimal):
        return "DecimalNode"
    return {str: "TextNode", list: "ArrayNode", dict: "ObjectNode"}[type(value)]


def _cannot_convert(value: Any, required: str) -> str:
    return f"Can't convert type. sourceType: {_node(value)}, requiredType: {required}"


def _wrap(value: int, bits: int) -> int:
    """Java's narrowing of an integer to ``bits`` bits (what ``intValue()`` does)."""
    half = 1 << (bits - 1)
    return (value + half) % (1 << bits) - half


def _integral(value: float | Decimal, bits: int) -> int:
    """A fractional JSON number's integer part, narrowed as Jackson's ``intValue()`` and
    ``asLong()`` do (the parsers never give a non-finite number)."""
    return _wrap(int(value), bits)


_JAVA_INTEGER = re.compile(r"[+-]?[0-9]+")
_JAVA_DOUBLE = re.compile(
    r"[+-]?(?:NaN|Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[fFdD]?)"
)
_JAVA_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
#: What Java's String.trim() removes: every character up to and including the space.
_JAVA_BLANK = "".join(map(chr, range(33)))


def _parse_integer(text: str, bits: int, type_name: str) -> int:
    """Java's ``Integer.parseInt``/``Long.parseLong``: a sign and digits, in range."""
    if _JAVA_INTEGER.fullmatch(text):
        value = int(text)
        if -(1 << (bits - 1)) <= value < 1 << (bits - 1):
            return value
    raise _Coercion(f"Can't coerce string to type. targetType: {type_name}")


def _parse_double(text: str) -> float:
    """Java's ``Double.parseDouble`` (blanks trimmed, NaN, Infinity, a d/f suffix)."""
    text = text.strip(_JAVA_BLANK)
    if not _JAVA_DOUBLE.fullmatch(text):
        raise _Coercion("Can't coerce string to type. targetType: DOUBLE")
    return float(text.rstrip("fFdD"))


def _decimal_fitter(sql_type: SqlType) -> Callable[[Decimal], Decimal]:
    """ksqlDB's ``DecimalUtil.ensureFit``: the value at the type's scale, if that needs no
    rounding and the value fits the precision."""
    precision, scale = sql_type.precision or 0, sql_type.scale or 0
    digits = precision - scale
    limit = Decimal(10) ** digits
    exponent = Decimal(1).scaleb(-scale)

    def fit(value: Decimal) -> Decimal:
        if abs(value) >= limit:
            raise _Coercion(
                f"Numeric field overflow: A field with precision {precision} and scale {scale} "
                f"must round to an absolute value less than 10^{digits}. Got {value:f}"
            )
        fitted = value.quantize(exponent, context=_DECIMAL_CONTEXT)
        if fitted != value:
            shape = value.as_tuple()
            raise _Coercion(
                f"Cannot fit decimal '{value:f}' into DECIMAL({precision}, {scale}) without "
                f"rounding. (Requires {len(shape.digits)},{-shape.exponent})"  # type: ignore[operator]
            )
        # BigDecimal has no negative zero.
        return fitted if fitted else fitted.copy_abs()

    return fit


def _decimal_parser(sql_type: SqlType) -> Callable[[str], Decimal]:
    """Java's ``new BigDecimal(text)``, fitted to the type."""
    fit = _decimal_fitter(sql_type)

    def parse(text: str) -> Decimal:
        if not _JAVA_DECIMAL.fullmatch(text):
            raise _Coercion(f"Can't coerce string to type. targetType: {sql_type}")
        return fit(Decimal(text))

    return parse


def _java_decimal_text(value: float | Decimal) -> str:
    """A fractional JSON number's text as Jackson gives it (BigDecimal.toString)."""
    return str(value if isinstance(value, Decimal) else Decimal(repr(value)))


def _read_boolean(value: Any) -> Any:
    if value is None or type(value) is bool:
        return value
    raise _Coercion(_cannot_convert(value, "BOOLEAN"))


def _read_integer(value: Any) -> Any:
    kind = type(value)
    if kind is int:
        return value if -(2**31) <= value < 2**31 else _wrap(value, 32)
    if value is None:
        return None
    if kind is str:
        return _parse_integer(value, 32, "INTEGER")
    if kind is float or kind is Decimal:
        return _integral(value, 32)
    raise _Coercion(_cannot_convert(value, "INTEGER"))


def _long_reader(type_name: str, check: Callable[[int], int] | None = None) -> Callable[[Any], Any]:
    """BIGINT, and the temporal types ksqlDB reads as a long (TIMESTAMP, TIME, DATE)."""

    def read(value: Any) -> Any:
        kind = type(value)
        if value is None:
            return None
        if kind is int:
            result = value if -(2**63) <= value < 2**63 else _wrap(value, 64)
        elif kind is str:
            result = _parse_integer(value, 64, type_name)
        elif kind is float or kind is Decimal:
            result = _integral(value, 64)
        else:
            raise _Coercion(_cannot_convert(value, type_name))
        return result if check is None else check(result)

    return read


def _check_time(value: int) -> int:
    if 0 <= value <= _DAY_MS:
        return value
    raise _Coercion(
        "Time values must use number of milliseconds greater than 0 and less than 86400000."
    )


def _read_double(value: Any) -> Any:
    kind = type(value)
    if kind is float:
        return value
    if value is None:
        return None
    if kind is int or kind is Decimal:
        try:
            return float(value)
        except OverflowError:  # BigInteger.doubleValue() saturates
            return math.copysign(math.inf, value)
    if kind is str:
        return _parse_double(value)
    raise _Coercion(_cannot_convert(value, "DOUBLE"))


def _read_string(value: Any) -> Any:
    kind = type(value)
    if kind is str or value is None:
        return value
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float or kind is Decimal:
        return _java_decimal_text(value)
    if kind is dict:
        return _dumps_test(value).decode()
    # An array reads as its elements' texts, the way Java prints a list.
    return "[" + ", ".join("null" if v is None else _read_string(v) for v in value) + "]"


def _read_bytes(value: Any) -> Any:
    if value is None:
        return None
    if type(value) is not str:
        raise _Coercion(_cannot_convert(value, "BYTES"))
    return _base64(value)


def _base64(text: str) -> bytes:
    try:
        # Java's decoder takes unpadded input too.
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise _Coercion(f"Value is not a valid Base64 encoded string: {text}") from None


def _decimal_reader(sql_type: SqlType) -> Callable[[Any], Any]:
    fit, parse = _decimal_fitter(sql_type), _decimal_parser(sql_type)

    def read(value: Any) -> Any:
        kind = type(value)
        if value is None:
            return None
        if kind is Decimal or kind is int:
            return fit(Decimal(value))
        if kind is float:
            return fit(Decimal(repr(value)))
        if kind is str:
            return parse(value)
        raise _Coercion(_cannot_convert(value, str(sql_type)))

    return read


def _array_reader(sql_type: SqlType) -> Callable[[Any], Any]:
    element = _json_reader(sql_type.element)  # type: ignore[arg-type]
    required = str(sql_type)

    def read(value: Any) -> Any:
        if value is None:
            return None
        if type(value) is not list:
            raise _Coercion(_cannot_convert(value, required))
        out = []
        for index, item in enumerate(value):
            try:
                out.append(element(item))
            except _Coercion as exc:
                exc.path = f"[{index}]{exc.path}"
                raise
        return out

    return read


def _map_reader(sql_type: SqlType) -> Callable[[Any], Any]:
    element = _json_reader(sql_type.element)  # type: ignore[arg-type]
    required = str(sql_type)

    def read(value: Any) -> Any:
        if value is None:
            return None
        if type(value) is not dict:
            raise _Coercion(_cannot_convert(value, required))
        out = {}
        for key, item in value.items():
            try:
                out[key] = element(item)
            except _Coercion as exc:
                exc.path = f".{key}.value{exc.path}"
                raise
        return out

    return read


def _struct_reader(fields: Sequence[tuple[str, SqlType]]) -> Callable[[dict[str, Any]], list[Any]]:
    """An object's fields in schema order: matched by name, else by the upper-cased name
    (so unquoted, upper-case names match any case); missing fields are NULL."""
    readers = [(name, _json_reader(t)) for name, t in fields]

    def read(obj: dict[str, Any]) -> list[Any]:
        upper = None
        out = []
        for name, reader in readers:
            if name in obj:
                value = obj[name]
            else:
                if upper is None:
                    upper = {k.upper(): v for k, v in obj.items()}
                value = upper.get(name)
            try:
                out.append(reader(value))
            except _Coercion as exc:
                exc.path = f".{name}{exc.path}"
                raise
        return out

    return read


def _struct_value_reader(sql_type: SqlType) -> Callable[[Any], Any]:
    names = [name for name, _ in sql_type.fields]
    read_fields = _struct_reader(sql_type.fields)
    required = str(sql_type)

    def read(value: Any) -> Any:
        if value is None:
            return None
        if type(value) is not dict:
            raise _Coercion(_cannot_convert(value, required))
        return dict(zip(names, read_fields(value), strict=True))

    return read


def _json_reader(sql_type: SqlType) -> Callable[[Any], Any]:
    """How a parsed JSON value becomes a column value of ``sql_type`` (None stays None)."""
    name = sql_type.name
    if name == "DECIMAL":
        return _decimal_reader(sql_type)
    if name == "ARRAY":
        return _array_reader(sql_type)
    if name == "MAP":
        return _map_reader(sql_type)
    if name == "STRUCT":
        return _struct_value_reader(sql_type)
    return _JSON_SCALAR_READERS[name]


_JSON_SCALAR_READERS: dict[str, Callable[[Any], Any]] = {
    "BOOLEAN": _read_boolean,
    "INTEGER": _read_integer,
    "BIGINT": _long_reader("BIGINT"),
    "DOUBLE": _read_double,
    "STRING": _read_string,
    "BYTES": _read_bytes,
    "TIMESTAMP": _long_reader("TIMESTAMP"),
    "TIME": _long_reader("TIME", _check_time),
    "DATE": _long_reader("DATE"),
}


def _struct_text(fields: Sequence[tuple[str, SqlType]]) -> str:
    return "STRUCT<" + ", ".join(f"`{n}` {t}" for n, t in fields) + ">"


# --- JSON: writing ----------------------------------------------------------------------------


def _write_double(value: Any) -> Any:
    value = float(value)
    if math.isfinite(value):
        return value
    # Jackson writes non-finite doubles as strings.
    return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")


def _write_decimal(value: Any) -> Any:
    # A JSON number with the digits and scale the value has, which orjson cannot write itself.
    return orjson.Fragment(str(value))


def _write_bytes(value: Any) -> Any:
    return base64.b64encode(value).decode()


def _json_writer(sql_type: SqlType) -> Callable[[Any], Any] | None:
    """How a non-null column value of ``sql_type`` becomes what orjson writes (None: as is)."""
    name = sql_type.name
    if name == "DOUBLE":
        return _write_double
    if name == "DECIMAL":
        return _write_decimal
    if name == "BYTES":
        return _write_bytes
    if name in ("ARRAY", "MAP"):
        element = _json_writer(sql_type.element)  # type: ignore[arg-type]
        if element is None:
            return None
        if name == "ARRAY":
            return lambda items: [None if v is None else element(v) for v in items]
        return lambda entries: {k: None if v is None else element(v) for k, v in entries.items()}
    if name == "STRUCT":
        fields = [(field, _json_writer(t)) for field, t in sql_type.fields]

        def write_struct(obj: dict[str, Any]) -> dict[str, Any]:
            # Every field, in declaration order, as Connect writes a Struct.
            out = {}
            for field, write in fields:
                value = obj.get(field)
                out[field] = value if write is None or value is None else write(value)
            return out

        return write_struct
    return None


def _fragment(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return orjson.Fragment(str(obj))
    raise TypeError(f"Type is not JSON serializable: {type(obj).__name__}")


def _dumps_test(obj: Any) -> bytes:
    try:
        return orjson.dumps(obj, default=_fragment)
    except TypeError:
        # orjson stops at 64-bit integers; the standard library does not.
        return json.dumps(obj, default=str, separators=(",", ":")).encode()


# --- JSON: comparing test records -------------------------------------------------------------


def _json_normalizer(sql_type: SqlType) -> Callable[[Any], Any]:
    name = sql_type.name
    if name in ("DECIMAL", "DOUBLE"):
        return _normalize_number
    if name in ("ARRAY", "MAP"):
        element = _json_normalizer(sql_type.element)  # type: ignore[arg-type]
        if name == "ARRAY":
            return lambda v: [element(e) for e in v] if isinstance(v, list) else v
        return lambda v: {k: element(e) for k, e in v.items()} if isinstance(v, dict) else v
    if name == "STRUCT":
        return _struct_normalizer(sql_type.fields)
    return lambda v: v


def _normalize_number(value: Any) -> Any:
    """A DECIMAL or DOUBLE as to_test gives it: a float (a DECIMAL written as a string in the
    test case too; "NaN" and the like stay strings)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, str) and _JAVA_DECIMAL.fullmatch(value):
        return float(Decimal(value))
    return value


def _struct_normalizer(fields: Sequence[tuple[str, SqlType]]) -> Callable[[Any], Any]:
    normalizers = {name: _json_normalizer(t) for name, t in fields}

    def normalize(obj: Any) -> Any:
        if not isinstance(obj, dict):
            return obj
        out = {}
        for key, value in obj.items():
            name = key if key in normalizers else key.upper()
            if name in normalizers:
                out[name] = normalizers[name](value)
            else:
                out[key] = value
        return out

    return normalize


# --- DELIMITED --------------------------------------------------------------------------------


def _csv_record(text: str, delimiter: str) -> list[str]:
    """The fields of the first record of ``text`` (commons-csv's default format: '"' quotes,
    '""' is a quote inside quotes, line breaks end a record, leading blank lines skipped)."""
    if '"' not in text and "\n" not in text and "\r" not in text:
        if not text:
            raise SerdeError("No fields in record")
        return text.split(delimiter)
    length, i = len(text), 0
    while i < length and text[i] in "\r\n":
        i += 1
    if i == length:
        raise SerdeError("No fields in record")
    stops = "\r\n" + delimiter
    fields = []
    while True:
        if i < length and text[i] == '"':
            parts, i = [], i + 1
            while True:
                close = text.find('"', i)
                if close < 0:
                    raise SerdeError("EOF reached before encapsulated token finished")
                parts.append(text[i:close])
                if text.startswith('"', close + 1):
                    parts.append('"')
                    i = close + 2
                else:
                    i = close + 1
                    break
            while i < length and text[i] not in stops and text[i].isspace():
                i += 1
            if i < length and text[i] not in stops:
                raise SerdeError("invalid char between encapsulated token and delimiter")
            fields.append("".join(parts))
        else:
            end = i
            while end < length and text[end] not in stops:
                end += 1
            fields.append(text[i:end])
            i = end
        if i < length and text[i] == delimiter:
            i += 1
            continue
        return fields


def _csv_field(text: str, first: bool, delimiter: str) -> str:
    """A non-null field as commons-csv 1.4 prints it (QuoteMode.MINIMAL): quoted when empty
    and first, when the record's first field starts with other than an ASCII letter or digit,
    when any field starts with a character up to '#', contains a quote, delimiter or line
    break, or ends with a character up to a space."""
    if not text:
        return '""' if first else ""
    start = text[0]
    if (
        (first and not (start.isascii() and start.isalnum()))
        or start <= "#"
        or text[-1] <= " "
        or '"' in text
        or delimiter in text
        or "\n" in text
        or "\r" in text
    ):
        return '"' + text.replace('"', '""') + '"'
    return text


def _java_double(value: float) -> str:
    """Java's ``Double.toString`` (JDK 19+: the shortest digits that read back, at least two
    significant ones; plain notation for 10^-3 <= |x| < 10^7, else ``d.dddE±n``)."""
    if not math.isfinite(value):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    shortest = Decimal(repr(abs(value)))
    digits = "".join(map(str, shortest.as_tuple().digits)).rstrip("0")
    exponent = shortest.adjusted()
    if len(digits) == 1:
        # Of the two-digit decimals that read back, Java takes the one closest to the value.
        exact = Decimal(abs(value))
        top = exact.adjusted()
        two = int(exact.scaleb(1 - top).to_integral_value(ROUND_HALF_EVEN))
        if two == 100:
            two, top = 10, top + 1
        if float(Decimal(two).scaleb(top - 1)) == abs(value):
            digits, exponent = str(two).rstrip("0"), top
    sign = "-" if value < 0 else ""
    if 1e-3 <= abs(value) < 1e7:
        point = exponent + 1
        if point <= 0:
            return f"{sign}0.{'0' * -point}{digits}"
        if point >= len(digits):
            return f"{sign}{digits}{'0' * (point - len(digits))}.0"
        return f"{sign}{digits[:point]}.{digits[point:]}"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{exponent}"


def _delimited_scalar(parse: Callable[[str], Any]) -> Callable[[SqlType], Callable[[str], Any]]:
    return lambda _type: parse


def _parse_boolean(text: str) -> bool:
    # Java's Boolean.parseBoolean: anything but "true" (any case) is false.
    return text.lower() == "true"


def _parse_time(text: str) -> int:
    return _check_time(_parse_integer(text, 64, "TIME"))


_DELIMITED_PARSERS: dict[str, Callable[[SqlType], Callable[[str], Any]]] = {
    "BOOLEAN": _delimited_scalar(_parse_boolean),
    "INTEGER": _delimited_scalar(lambda s: _parse_integer(s, 32, "INTEGER")),
    "BIGINT": _delimited_scalar(lambda s: _parse_integer(s, 64, "BIGINT")),
    "DOUBLE": _delimited_scalar(_parse_double),
    "STRING": _delimited_scalar(lambda s: s),
    "BYTES": _delimited_scalar(_base64),
    "DECIMAL": _decimal_parser,
    "TIMESTAMP": _delimited_scalar(lambda s: _parse_integer(s, 64, "TIMESTAMP")),
    "TIME": _delimited_scalar(_parse_time),
    "DATE": _delimited_scalar(lambda s: _parse_integer(s, 32, "DATE")),
}

_DELIMITED_PRINTERS: dict[str, Callable[[Any], str]] = {
    "BOOLEAN": lambda v: "true" if v else "false",
    "INTEGER": str,
    "BIGINT": str,
    "DOUBLE": lambda v: _java_double(float(v)),
    "STRING": str,
    "BYTES": lambda v: base64.b64encode(v).decode(),
    "DECIMAL": lambda v: format(v, "f"),  # BigDecimal.toPlainString
    "TIMESTAMP": str,
    "TIME": str,
    "DATE": str,
}
