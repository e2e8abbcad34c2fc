"""Key and value formats: ksqlDB's serdes for KAFKA, JSON, DELIMITED, NONE, AVRO and JSON_SR.

A :class:`Serde` turns a row's columns (a list in column order, in the runtime representation:
BOOLEAN bool, INTEGER/BIGINT int, DOUBLE float, DECIMAL ``Decimal`` at the type's scale, STRING
str, BYTES bytes, TIMESTAMP epoch ms, DATE epoch days, TIME ms of day, ARRAY list, MAP and STRUCT
dict; NULL None) into record bytes and back, reading and writing the bytes ksqlDB reads and
writes, coercions included. A record whose bytes do not fit the schema raises
:class:`SerdeError` (a ``ValueError``: the processors dead-letter the record); a schema the
format cannot carry raises :class:`~streams.ksql.errors.KsqlError` when the serde is built, in
ksqlDB's words.

Each serde also converts to and from the representation ksqlDB's query-validation tests (QTT)
write records in: the JSON value for JSON (and for AVRO and JSON_SR), the scalar for KAFKA, the
CSV text for DELIMITED.
Windowed keys (:func:`windowed_key_serde`) are the inner key's bytes followed by the window
bounds, as Kafka Streams' ``TimeWindowedSerializer`` and ``SessionWindowedSerializer`` write
them.

AVRO and JSON_SR are Schema Registry formats: a record is Confluent's wire format (magic byte
0, the writer's schema id, the Avro binary or the JSON text), read with the writer's schema as
Kafka Connect reads it (ksqlDB's serdes are Connect converters). Their serdes register and look
schemas up in the registry of :func:`use_registry` (by default the one of
``SchemaRegistrySettings.from_env()``, made on first use: building a serde never needs a
registry), under the subjects ``<topic>-key`` and ``<topic>-value``; :func:`registry_columns`
infers a source's columns from a registered schema.

Everything that depends only on the schema (column names, per-type converters) is worked out
when the serde is built (for a registry format: when it first meets a schema id), so a record
costs one parse and one pass over its columns.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import re
import struct
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Context, Decimal
from typing import TYPE_CHECKING, Any, Literal, Protocol

import fastavro
import orjson

from clients.settings import SchemaRegistrySettings
from streams.ksql.ast import SqlType
from streams.ksql.errors import KsqlError, Unsupported

if TYPE_CHECKING:  # the registry client is imported when a serde first talks to a registry
    from confluent_kafka.schema_registry import RegisteredSchema, Schema

#: A row's columns: (name, type) in schema order.
Columns = Sequence[tuple[str, SqlType]]

#: Formats ksqlDB knows; the Protobuf ones are not run yet.
FORMATS = frozenset(
    {"KAFKA", "JSON", "DELIMITED", "NONE", "AVRO", "PROTOBUF", "PROTOBUF_NOSR", "JSON_SR"}
)
_NOT_RUN = frozenset({"PROTOBUF", "PROTOBUF_NOSR"})
#: The Schema Registry formats that are run: their records name their schema by id, and
#: ksqlDB infers the columns a source leaves out from the registry (see registry_columns).
REGISTRY_FORMATS = frozenset({"AVRO", "JSON_SR"})
#: Which of WRAP_SINGLE_VALUE's settings each format accepts (ksqlDB's SerdeFeatures).
_WRAPPINGS: dict[str, frozenset[bool]] = {
    "KAFKA": frozenset({False}),
    "DELIMITED": frozenset({False}),
    "NONE": frozenset(),
    **{
        name: frozenset({True, False})
        for name in ("JSON", "AVRO", "PROTOBUF", "PROTOBUF_NOSR", "JSON_SR")
    },
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

    def row_writer(self) -> Callable[[dict[str, Any]], bytes | None]:
        """:meth:`serialize` of a dict of the columns by name, in column order: how a query
        that writes many records builds them (a format may write the dict as it is)."""
        serialize = self.serialize
        return lambda row: serialize(list(row.values()))

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

    def row_writer(self) -> Callable[[dict[str, Any]], bytes | None]:
        if not (self._wrapped and self._plain):
            return super().row_writer()
        serialize = self.serialize

        def write(row: dict[str, Any]) -> bytes | None:
            # The object serialize() would write; it gives the error message if this fails.
            try:
                return orjson.dumps(row)
            except TypeError:
                return serialize(list(row.values()))

        return write

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
        return self.windowed(key, start, end)

    def windowed(self, key: bytes, start: int, end: int) -> bytes:
        """The inner key's bytes (``inner.serialize``'s, not null) with the window."""
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


def key_serde(
    fmt: str,
    columns: Columns,
    properties: Mapping[str, Any],
    topic: str | None = None,
    source: str | None = None,
) -> Serde:
    """The serde of a record key: one column unwrapped (JSON and AVRO too), several as the
    format writes a row (a JSON object, delimited fields, an Avro record). A Schema Registry
    format writes under the subject ``<topic>-key`` (without ``topic`` it can only read), its
    record named after the ``source`` (ksqlDB's ``<Source>Key``) unless KEY_SCHEMA_FULL_NAME
    names it; KEY_SCHEMA_ID makes it write with that registered schema."""
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
    full_name = properties.get("KEY_SCHEMA_FULL_NAME")
    if full_name is None:
        full_name = AVRO_VALUE_SCHEMA_NAME if source is None else key_schema_name(source)
    subject = _Subject(topic, "key", str(full_name).strip(), _schema_id(properties, "key"))
    return _build(target, delimiter, wrapped=len(columns) != 1, subject=subject)


def value_serde(
    fmt: str, columns: Columns, properties: Mapping[str, Any], topic: str | None = None
) -> Serde:
    """The serde of a record value. WRAP_SINGLE_VALUE=false writes a single column's value
    alone (KAFKA and DELIMITED always do; JSON and AVRO wrap by default). A Schema Registry
    format writes under the subject ``<topic>-value`` (without ``topic`` it can only read),
    its record named by VALUE_AVRO_SCHEMA_FULL_NAME or VALUE_SCHEMA_FULL_NAME (default
    ksqlDB's ``KsqlDataSourceSchema``); VALUE_SCHEMA_ID makes it write with that schema."""
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
    full_name = properties.get("VALUE_AVRO_SCHEMA_FULL_NAME")
    if full_name is None:
        full_name = properties.get("VALUE_SCHEMA_FULL_NAME", AVRO_VALUE_SCHEMA_NAME)
    subject = _Subject(topic, "value", str(full_name).strip(), _schema_id(properties, "value"))
    target = _Target("Value", fmt, columns, features)
    return _build(target, delimiter, wrapped=wrap is not False, subject=subject)


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


def _build(target: _Target, delimiter: str | None, wrapped: bool, subject: _Subject) -> Serde:
    """The serde of ``target``'s format; ``wrapped``: JSON and AVRO write an object (a
    record) of the columns, else the single column's value alone."""
    fmt, columns = target.format, target.columns
    if fmt in _NOT_RUN:
        raise Unsupported(f"format {fmt} (the Protobuf formats are not run yet)")
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
    if fmt == "AVRO":
        _check_avro(target, wrapped)
        return _AvroSerde(columns, wrapped, subject)
    _check_json(target)
    if fmt == "JSON_SR":
        return _JsonSchemaSerde(columns, wrapped, subject)
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


# --- the Schema Registry ----------------------------------------------------------------------


class Registry(Protocol):
    """What the serdes ask of a Schema Registry: the calls of confluent-kafka's
    ``SchemaRegistryClient`` they make (which it, and its mock, provide), raising its
    ``SchemaRegistryError`` (status 404 for an unknown id or subject)."""

    def register_schema(
        self, subject_name: str, schema: Schema, normalize_schemas: bool = False
    ) -> int: ...

    def get_schema(
        self, schema_id: int, subject_name: str | None = None, fmt: str | None = None
    ) -> Schema: ...

    def get_latest_version(self, subject_name: str, fmt: str | None = None) -> RegisteredSchema: ...


#: The registry in use, or what makes it on first use (see use_registry).
_registry: Registry | Callable[[], Registry] | None = None
_registry_lock = threading.Lock()


def use_registry(
    client: Registry | Callable[[], Registry] | None,
) -> Registry | Callable[[], Registry] | None:
    """Make ``client`` the registry every Schema Registry serde registers and looks schemas up
    in, from their next record on: a client, or a function that makes one when a serde first
    needs it; None goes back to the default, the registry of
    ``SchemaRegistrySettings.from_env()``, made on first use. Returns what was in use before,
    to restore it with."""
    global _registry
    with _registry_lock:
        previous, _registry = _registry, client
    return previous


def registry() -> Registry:
    """The registry in use (see :func:`use_registry`)."""
    global _registry
    client = _registry
    if client is None or callable(client):
        with _registry_lock:
            if _registry is None:
                _registry = SchemaRegistrySettings.from_env().client()
            elif callable(_registry):
                _registry = _registry()
            client = _registry
    return client  # type: ignore[return-value]


def registry_columns(
    fmt: str, topic: str, role: Literal["key", "value"], properties: Mapping[str, Any]
) -> list[tuple[str, SqlType]]:
    """The columns ksqlDB infers for a source that declares none of its ``role``'s: from the
    schema that ``KEY_SCHEMA_ID`` / ``VALUE_SCHEMA_ID`` names, else from the latest schema of
    the subject ``<topic>-<role>``. A key is always one column, ``ROWKEY``; a value is its
    record's fields (names upper-cased, as written when a schema id picks the schema), or
    ``ROWVAL`` with ``WRAP_SINGLE_VALUE=false``. Raises KsqlError in ksqlDB's words."""
    fmt = _format_name(fmt)
    schema_id = _schema_id(properties, role)
    kind = "keys" if role == "key" else "values"
    source = f"topic: {topic}" + ("" if schema_id is None else f", schema id: {schema_id}")
    try:
        if schema_id is None:
            registered = registry().get_latest_version(f"{topic}-{role}")
            schema = registered.schema
        else:
            schema = registry().get_schema(schema_id)
    except Exception as exc:  # whatever the client raises, ksqlDB reports a failed fetch
        if getattr(exc, "http_status_code", None) in (401, 403, 404):
            id_line = "" if schema_id is None else f"Schema Id: {schema_id}\n"
            raise KsqlError(
                f"Schema for message {kind} on topic '{topic}' does not exist in the Schema "
                f"Registry.\nSubject: {topic}-{role}\n{id_line}Possible causes include:\n"
                "- The topic itself does not exist\n\t-> Use SHOW TOPICS; to check\n"
                "- Messages on the topic are not serialized using a format Schema Registry "
                f"supports\n\t-> Use PRINT '{topic}' FROM BEGINNING; to verify\n"
                "- Messages on the topic have not been serialized using a Confluent Schema "
                "Registry supported serializer\n"
                "- The schema is registered on a different instance of the Schema Registry\n"
                "- You do not have permissions to access the Schema Registry."
            ) from None
        raise KsqlError(
            f"Schema registry fetch for topic {role} request failed for {source}"
        ) from exc
    expected = _SCHEMA_TYPES[fmt]
    actual = schema.schema_type or "AVRO"
    if actual != expected:
        config = "KEY_FORMAT" if role == "key" else "VALUE_FORMAT"
        raise KsqlError(
            f"{role.capitalize()} schema is not in the expected format. You may want to set "
            f"{config} to '{actual}'.\n{source}\nexpected format: {expected}\n"
            f"actual format from Schema Registry: {actual}"
        )
    try:
        row = _infer_row(fmt, schema.schema_str, role, properties)
    except _Coercion as exc:
        raise KsqlError(
            f"Unable to verify if the {role} schema for {source} is compatible with ksqlDB.\n"
            f"Reason: {exc.message}\n\nSchema:{schema.schema_str}"
        ) from None
    # ksqlDB keeps the registered names when a schema id picks the schema, else upper-cases
    # them (so that unquoted identifiers reach them).
    names = (lambda n: n) if schema_id is not None else str.upper
    columns = [(names(name), _renamed(t, names)) for name, t in row]
    if not columns:
        raise KsqlError(
            "Schema does not include any columns with types that ksqlDB supports.\n"
            f"schema: {schema.schema_str}"
        )
    return columns


def _infer_row(
    fmt: str, schema_str: str, role: str, properties: Mapping[str, Any]
) -> list[tuple[str, SqlType]]:
    """The (name, type) columns of a registered schema, as written; raises _Coercion."""
    sql_type = _SCHEMA_SQL_TYPES[fmt](schema_str)
    if sql_type is None:
        raise _Coercion("Unsupported type at root of schema")
    unwrapped = role == "key" or _wrap_single(properties) is False
    if unwrapped:
        return [("ROWKEY" if role == "key" else "ROWVAL", sql_type)]
    if sql_type.name != "STRUCT":
        raise _Coercion(
            "Schema returned from schema registry is anonymous type. To use this schema with "
            "ksqlDB, set 'WRAP_SINGLE_VALUE=false' in the WITH clause properties."
        )
    return list(sql_type.fields)


def _renamed(sql_type: SqlType, names: Callable[[str], str]) -> SqlType:
    """``sql_type`` with its struct fields renamed, at any depth."""
    if sql_type.name == "STRUCT":
        fields = tuple((names(n), _renamed(t, names)) for n, t in sql_type.fields)
        return SqlType("STRUCT", fields=fields)
    if sql_type.name in ("ARRAY", "MAP"):
        element = _renamed(sql_type.element, names)  # type: ignore[arg-type]
        return SqlType(sql_type.name, element=element, key=sql_type.key)
    return sql_type


def _schema_id(properties: Mapping[str, Any], role: str) -> int | None:
    value = properties.get("KEY_SCHEMA_ID" if role == "key" else "VALUE_SCHEMA_ID")
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise KsqlError(f"Invalid schema id: {value!r}") from None


def _wrap_single(properties: Mapping[str, Any]) -> bool | None:
    wrap = properties.get("WRAP_SINGLE_VALUE")
    return None if wrap is None else str(wrap).strip().lower() == "true"


@dataclass(frozen=True)
class _Subject:
    """Where a Schema Registry serde's schemas live: its topic (None: not known -- it can read
    records, which name their schema, but not write any), key or value, the full name of the
    schema it generates, and the schema id the WITH clause fixes for writing, if any."""

    topic: str | None
    role: Literal["key", "value"]
    full_name: str
    schema_id: int | None


class _Cache:
    """What a serde learnt from one registry: the schema it writes with and a reader per schema
    id it has read. A serde keeps the one of the registry in use, so a new registry (a test
    case's) starts afresh."""

    __slots__ = ("client", "readers", "test_readers", "test_writers", "writer")

    def __init__(self, client: Registry) -> None:
        self.client = client
        self.writer: tuple[int, Schema, Callable[[Any], bytes]] | None = None
        self.readers: dict[int, Callable[[bytes], Any]] = {}
        self.test_readers: dict[int, Callable[[bytes], Any]] = {}
        self.test_writers: dict[int, Callable[[Any], bytes]] = {}


#: What the registry calls each format's schema language.
_SCHEMA_TYPES = {"AVRO": "AVRO", "JSON_SR": "JSON", "PROTOBUF": "PROTOBUF"}
#: Confluent's wire format: magic byte 0, then the schema id in 4 bytes big-endian.
_HEADER = struct.Struct(">bI")
#: What a payload that does not fit its schema makes the decoders raise.
_DECODE_ERRORS = (EOFError, IndexError, KeyError, ValueError, TypeError, OverflowError)


class _RegistrySerde(Serde):
    """A Schema Registry format over the registry in use (:func:`use_registry`): a record is
    the header (magic byte 0, the writer's schema id) and the payload, written with the schema
    the serde registers under ``<topic>-key`` / ``<topic>-value`` (or the one the WITH clause's
    schema id names) and read with the schema its id names.

    A format says what schema it generates and how a schema reads as Kafka Connect's data
    (``_generated``, ``_codec``); between Connect data and the columns, and the test cases'
    records, all formats are alike (ksqlDB's ConnectDataTranslator, its test runner's
    SpecToConnectConverter). An unknown schema id is the record's fault (SerdeError); an
    unreachable registry is not, and its error propagates."""

    def __init__(self, fmt: str, columns: Columns, wrapped: bool, where: _Subject) -> None:
        super().__init__(fmt, columns)
        self.wrapped = wrapped
        self.topic, self.role, self.schema_id = where.topic, where.role, where.schema_id
        #: What a record holds: the row (a struct of the columns), or the single column.
        self._type = SqlType("STRUCT", fields=self.columns) if wrapped else self.columns[0][1]
        self._normalize = (
            _struct_normalizer(self.columns) if wrapped else _json_normalizer(self._type)
        )
        #: The schema ksqlDB generates for the columns: the one written with (and registered)
        #: unless the WITH clause names a schema id.
        self.schema: Schema = self._generated(where.full_name)
        self._cache: _Cache | None = None

    def normalize_test(self, obj: Any) -> Any:
        # A test case's record is JSON as for the JSON format.
        return self._normalize(obj)

    @property
    def subject(self) -> str:
        if self.topic is None:
            raise KsqlError(
                f"A {self.format} {self.role} serde built without its topic has no Schema "
                "Registry subject to write with: pass the topic to key_serde/value_serde"
            )
        return f"{self.topic}-{self.role}"

    # --- what a format says --------------------------------------------------------------

    def _generated(self, full_name: str) -> Schema:
        raise NotImplementedError

    def _codec(
        self, schema: Schema
    ) -> tuple[_ConnectType, Callable[[bytes], Any], Callable[[Any], bytes]]:
        """The writer's schema as Connect reads it, how a payload reads into Connect data and
        how Connect data is written. Raises _Coercion for a schema the format reads in a way
        streams.ksql does not, SerdeError for one that is not valid."""
        raise NotImplementedError

    def _reader(self, schema: Schema) -> Callable[[bytes], Any]:
        """payload -> the row (wrapped) or the single column's value."""
        return self._reading(
            schema, lambda t: _connect_decoder(t, self._type, "", as_row=self.wrapped)
        )

    def _writer(self, schema: Schema) -> Callable[[Any], bytes]:
        return self._writing(
            schema, lambda t: _connect_encoder(t, self._type, from_row=self.wrapped)
        )

    def _test_reader(self, schema: Schema) -> Callable[[bytes], Any]:
        return self._reading(schema, _spec_reader)

    def _test_writer(self, schema: Schema) -> Callable[[Any], bytes]:
        return self._writing(schema, _spec_writer)

    def _reading(
        self, schema: Schema, convert: Callable[[_ConnectType], Callable[[Any], Any]]
    ) -> Callable[[bytes], Any]:
        def build() -> Callable[[bytes], Any]:
            connect, read, _write = self._codec(schema)
            then = convert(connect)
            return lambda payload: then(read(payload))

        return _or_failing(build)

    def _writing(
        self, schema: Schema, convert: Callable[[_ConnectType], Callable[[Any], Any]]
    ) -> Callable[[Any], bytes]:
        def build() -> Callable[[Any], bytes]:
            connect, _read, write = self._codec(schema)
            first = convert(connect)
            return lambda value: write(first(value))

        return _or_failing(build)

    # --- records -------------------------------------------------------------------------

    def serialize(self, values: list[Any] | None) -> bytes | None:
        if values is None:
            return None
        _check_count(len(self.columns), values)
        value = values if self.wrapped else values[0]
        if value is None:
            return None
        schema_id, _schema, write = self._current_writer()
        try:
            return _HEADER.pack(0, schema_id) + write(value)
        except _Coercion as exc:
            raise SerdeError(
                f"Error serializing message to topic: {self.topic}. {exc.message}"
            ) from None
        except (ValueError, TypeError, OverflowError) as exc:
            raise SerdeError(f"Error serializing message to topic: {self.topic}. {exc}") from None

    def deserialize(self, data: bytes | None) -> list[Any] | None:
        if data is None:
            return None
        value = self._decode(data, self._current_cache().readers, self._reader)
        return value if self.wrapped else [value]

    def to_test(self, data: bytes | None) -> Any:
        if data is None:
            return None
        return self._decode(data, self._current_cache().test_readers, self._test_reader)

    def from_test(self, obj: Any) -> bytes | None:
        if obj is None:
            return None
        cache = self._current_cache()
        schema_id, schema = self._test_schema(cache)
        write = cache.test_writers.get(schema_id)
        if write is None:
            write = cache.test_writers[schema_id] = self._test_writer(schema)
        try:
            return _HEADER.pack(0, schema_id) + write(obj)
        except _Coercion as exc:
            raise SerdeError(f"Can't write {obj!r} as {self.format}: {exc.message}") from None
        except (ValueError, TypeError, OverflowError) as exc:
            raise SerdeError(f"Can't write {obj!r} as {self.format}: {exc}") from None

    # --- the registry --------------------------------------------------------------------

    def _current_cache(self) -> _Cache:
        client = registry()
        cache = self._cache
        if cache is None or cache.client is not client:
            cache = self._cache = _Cache(client)
        return cache

    def _decode(
        self,
        data: bytes,
        readers: dict[int, Callable[[bytes], Any]],
        build: Callable[[Schema], Callable[[bytes], Any]],
    ) -> Any:
        if len(data) < _HEADER.size or data[0] != 0:
            raise SerdeError(
                f"Error deserializing message from topic: {self.topic}. Unknown magic byte!"
            )
        schema_id = _HEADER.unpack_from(data)[1]
        read = readers.get(schema_id)
        if read is None:
            schema = self._fetch(schema_id)
            read = readers[schema_id] = build(schema)
        try:
            return read(data[_HEADER.size :])
        except _Coercion as exc:
            raise SerdeError(
                f"Error deserializing message from topic: {self.topic}. {exc.message}"
            ) from None
        except _DECODE_ERRORS as exc:
            raise SerdeError(
                f"Error deserializing message from topic: {self.topic}. Failed to deserialize "
                f"{self.format} data with schema id {schema_id}: {exc}"
            ) from None

    def _fetch(self, schema_id: int) -> Schema:
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            schema = self._current_cache().client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code != 404:
                raise
            raise SerdeError(
                f"Error retrieving {self.format} {self.role} schema for id {schema_id}: "
                f"{exc.error_message}"
            ) from None
        schema_type = schema.schema_type or "AVRO"
        if schema_type != _SCHEMA_TYPES[self.format]:
            raise SerdeError(
                f"Schema id {schema_id} is a {schema_type} schema, not one {self.format} reads"
            )
        return schema

    def _current_writer(self) -> tuple[int, Schema, Callable[[Any], bytes]]:
        cache = self._current_cache()
        if cache.writer is None:
            if self.schema_id is not None:
                # As ksqlDB with a schema id: write with it, register nothing.
                schema_id, schema = self.schema_id, self._fetch(self.schema_id)
            else:
                schema_id = cache.client.register_schema(self.subject, self.schema)
                schema = self.schema
            cache.writer = (schema_id, schema, self._writer(schema))
        return cache.writer

    def _test_schema(self, cache: _Cache) -> tuple[int, Schema]:
        """The schema ksqlDB's test runner writes a test record with: the subject's latest, or
        (nothing registered yet) the one the serde writes with."""
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            latest = cache.client.get_latest_version(self.subject)
        except SchemaRegistryError as exc:
            if exc.http_status_code != 404:
                raise
            schema_id, schema, _write = self._current_writer()
            return schema_id, schema
        return latest.schema_id, latest.schema


# --- Kafka Connect's data model: what the Schema Registry formats share --------------------
#
# ksqlDB's registry serdes are Kafka Connect converters: a record becomes Connect data (typed
# by the writer's schema as Connect reads it) and ksqlDB's ConnectDataTranslator turns that into
# the columns. Here a format turns its writer schema into a _ConnectType and its payload into
# Connect data in Python: a struct a dict by field name, a map a dict (or, ``entries``, a list
# of key/value dicts), a decimal a Decimal, bytes bytes, temporal types integers.

_NO_DEFAULT = object()


@dataclass(frozen=True)
class _ConnectField:
    name: str
    type: _ConnectType
    default: Any = _NO_DEFAULT


@dataclass(frozen=True)
class _ConnectType:
    """A writer's schema as Kafka Connect reads it: ``kind`` is the Connect type -- BOOLEAN,
    INT32 (and the narrower ones), INT64, FLOAT32, FLOAT64, STRING, BYTES, ARRAY, MAP (its data
    a list of key/value entries when ``entries``: Connect's encoding of maps whose keys may be
    null), STRUCT -- or a logical one: DECIMAL, TIMESTAMP, DATE, TIME. ``optional``: null is a
    value too. A field's default is what a writer puts in a field the columns do not have."""

    kind: str
    optional: bool = False
    element: _ConnectType | None = None
    key: _ConnectType | None = None
    entries: bool = False
    fields: tuple[_ConnectField, ...] = ()
    precision: int = 0
    scale: int = 0

    @property
    def connect_name(self) -> str:
        """Connect's name of the type (what ksqlDB's messages say)."""
        return _CONNECT_TYPE_NAMES[self.kind]


_CONNECT_TYPE_NAMES = {
    "BOOLEAN": "boolean",
    "INT32": "int32",
    "INT64": "int64",
    "FLOAT32": "float32",
    "FLOAT64": "float64",
    "STRING": "string",
    "BYTES": "bytes",
    "DECIMAL": "bytes",
    "TIMESTAMP": "int64",
    "DATE": "int32",
    "TIME": "int32",
    "ARRAY": "array",
    "MAP": "map",
    "STRUCT": "struct",
}


def _connect_sql_type(connect: _ConnectType) -> SqlType | None:
    """ksqlDB's column type for a Connect type (ConnectKsqlSchemaTranslator): integers of 32
    bits and fewer are INTEGER, floats DOUBLE, map keys STRING; a struct keeps the fields whose
    types ksqlDB supports (None: a type it does not)."""
    kind = connect.kind
    simple = _SQL_OF_CONNECT.get(kind)
    if simple is not None:
        return SqlType(simple)  # type: ignore[arg-type]
    if kind == "DECIMAL":
        return SqlType("DECIMAL", connect.precision, connect.scale)
    if kind == "ARRAY":
        element = _connect_sql_type(connect.element)  # type: ignore[arg-type]
        return None if element is None else SqlType("ARRAY", element=element)
    if kind == "MAP":
        key = _connect_sql_type(connect.key)  # type: ignore[arg-type]
        value = _connect_sql_type(connect.element)  # type: ignore[arg-type]
        if key is None or value is None or key.name not in _MAP_KEY_TYPES:
            return None
        return SqlType("MAP", element=value, key=SqlType("STRING"))
    fields = []
    for field in connect.fields:
        field_type = _connect_sql_type(field.type)
        if field_type is not None:
            fields.append((field.name, field_type))
    return SqlType("STRUCT", fields=tuple(fields))


_SQL_OF_CONNECT = {
    "BOOLEAN": "BOOLEAN",
    "INT32": "INTEGER",
    "INT64": "BIGINT",
    "FLOAT32": "DOUBLE",
    "FLOAT64": "DOUBLE",
    "STRING": "STRING",
    "BYTES": "BYTES",
    "TIMESTAMP": "TIMESTAMP",
    "DATE": "DATE",
    "TIME": "TIME",
}
#: The key types ksqlDB reads a map with (as STRING keys).
_MAP_KEY_TYPES = frozenset({"INTEGER", "BIGINT", "BOOLEAN", "STRING"})


# --- Connect data -> columns ------------------------------------------------------------------

#: The Connect types each column type reads from (ConnectDataTranslator.validateSchema).
_READS_FROM: dict[str, frozenset[str]] = {
    "BOOLEAN": frozenset({"BOOLEAN"}),
    "INTEGER": frozenset({"INT32", "DATE", "TIME"}),
    "DATE": frozenset({"INT32", "DATE", "TIME"}),
    "TIME": frozenset({"INT32", "DATE", "TIME"}),
    "BIGINT": frozenset({"INT32", "INT64", "DATE", "TIME", "TIMESTAMP"}),
    "TIMESTAMP": frozenset({"INT32", "INT64", "DATE", "TIME", "TIMESTAMP"}),
    "DOUBLE": frozenset({"FLOAT32", "FLOAT64"}),
    "STRING": frozenset(
        {"BOOLEAN", "INT32", "INT64", "FLOAT32", "FLOAT64", "STRING", "DATE", "TIME", "TIMESTAMP"}
    ),
    "BYTES": frozenset({"BYTES"}),
    "DECIMAL": frozenset({"DECIMAL"}),
    "ARRAY": frozenset({"ARRAY"}),
    "MAP": frozenset({"MAP"}),
    "STRUCT": frozenset({"STRUCT"}),
}
_CONNECT_OF_SQL = {
    "BOOLEAN": "boolean",
    "INTEGER": "int32",
    "DATE": "int32",
    "TIME": "int32",
    "BIGINT": "int64",
    "TIMESTAMP": "int64",
    "DOUBLE": "float64",
    "STRING": "string",
    "BYTES": "bytes",
    "DECIMAL": "bytes",
    "ARRAY": "array",
    "MAP": "map",
    "STRUCT": "struct",
}


def _connect_decoder(
    connect: _ConnectType, sql_type: SqlType, path: str, as_row: bool = False
) -> Callable[[Any], Any]:
    """How Connect data of the writer's type becomes a value of ``sql_type``, as ksqlDB's
    ConnectDataTranslator makes it: a writer type the column cannot read from fails (raises
    _Coercion now), struct fields match by name or upper-cased name, numbers widen, STRING takes
    any primitive's text. ``as_row``: a struct read as the row (a list in field order)."""
    name = sql_type.name
    if connect.kind not in _READS_FROM[name]:
        raise _Coercion(
            f"Cannot deserialize type {connect.connect_name} as type {_CONNECT_OF_SQL[name]} "
            f"for path: {path}"
        )
    if name in ("INTEGER", "DATE", "TIME", "BIGINT", "TIMESTAMP", "BOOLEAN", "BYTES"):
        return lambda value: value
    if name == "DOUBLE":
        return lambda value: None if value is None else float(value)
    if name == "STRING":
        return _connect_text(connect.kind)
    if name == "DECIMAL":
        fit = _decimal_fitter(sql_type)
        return lambda value: None if value is None else fit(value)
    if name == "ARRAY":
        element = _deferred(connect.element, sql_type.element, f"{path}->ARRAY")  # type: ignore[arg-type]
        return lambda items: None if items is None else [element(item) for item in items]
    if name == "MAP":
        return _connect_map_decoder(connect, sql_type, path)
    return _connect_struct_decoder(connect, sql_type, path, as_row)


def _deferred(connect: _ConnectType, sql_type: SqlType, path: str) -> Callable[[Any], Any]:
    """The decoder of an array's elements or a map's entries: ksqlDB checks their types only
    when there is one to read, so an empty array of another type reads."""
    decode = _or_failing(lambda: _connect_decoder(connect, sql_type, path))
    return lambda value: None if value is None else decode(value)


def _connect_map_decoder(
    connect: _ConnectType, sql_type: SqlType, path: str
) -> Callable[[Any], Any]:
    key = _deferred(connect.key, sql_type.key, f"{path}->MAP_KEY")  # type: ignore[arg-type]
    value = _deferred(connect.element, sql_type.element, f"{path}->MAP_VAL")  # type: ignore[arg-type]
    if connect.entries:
        return lambda entries: (
            None
            if entries is None
            else {key(entry["key"]): value(entry["value"]) for entry in entries}
        )
    return lambda items: None if items is None else {key(k): value(v) for k, v in items.items()}


def _connect_struct_decoder(
    connect: _ConnectType, sql_type: SqlType, path: str, as_row: bool
) -> Callable[[Any], Any]:
    names = [name for name, _ in sql_type.fields]
    index = {name: i for i, name in enumerate(names)}
    readers = []
    for field in connect.fields:
        # ksqlDB's case insensitivity: a field named as the column, or as its upper case.
        position = index.get(field.name, index.get(field.name.upper()))
        if position is not None:
            field_type = sql_type.fields[position][1]
            decode = _connect_decoder(field.type, field_type, f"{path}->{names[position]}")
            readers.append((field.name, position, decode))
    width = len(names)

    def read(record: Any) -> Any:
        if record is None:
            return None
        out: list[Any] = [None] * width
        for field, position, decode in readers:
            value = record[field]
            out[position] = None if value is None else decode(value)
        return out if as_row else dict(zip(names, out, strict=True))

    return read


def _connect_text(kind: str) -> Callable[[Any], Any]:
    """A primitive as ksqlDB's STRING reads it (Java's String.valueOf)."""
    if kind == "BOOLEAN":
        return lambda value: None if value is None else ("true" if value else "false")
    if kind == "FLOAT64":
        return lambda value: None if value is None else _java_double(value)
    if kind == "FLOAT32":
        return lambda value: None if value is None else _java_float(value)
    if kind == "STRING":
        return lambda value: value
    return lambda value: None if value is None else str(value)


def _java_float(value: float) -> str:
    """Java's ``Float.toString``: the shortest digits that read back as the same float."""
    if math.isfinite(value):
        for digits in range(1, 10):
            text = f"{value:.{digits - 1}e}"
            if struct.unpack(">f", struct.pack(">f", float(text)))[0] == value:
                return _java_double(float(text))
    return _java_double(value)


# --- columns -> Connect data ------------------------------------------------------------------


def _connect_encoder(
    connect: _ConnectType, sql_type: SqlType, from_row: bool = False
) -> Callable[..., Any]:
    """How a non-null value of ``sql_type`` becomes a datum of the writer's type: struct fields
    by name (a field the columns do not have takes its default, else null), maps as the writer
    keeps them, decimals at the writer's scale, other scalars as they are (the format's
    writer checks them). ``from_row``: the struct is the row (a list in column order)."""
    kind = connect.kind
    if (kind in _NESTED or sql_type.name in _NESTED) and kind != sql_type.name:
        raise _Coercion(
            f"Cannot serialize type {_CONNECT_OF_SQL[sql_type.name]} as type {connect.connect_name}"
        )
    if kind == "STRUCT":
        return _connect_struct_encoder(connect, sql_type, from_row)
    if kind == "MAP":
        value = _nullable(_connect_encoder(connect.element, sql_type.element))  # type: ignore[arg-type]
        if connect.entries:
            return lambda items: [{"key": k, "value": value(v)} for k, v in items.items()]
        return lambda items: {k: value(v) for k, v in items.items()}
    if kind == "ARRAY":
        element = _nullable(_connect_encoder(connect.element, sql_type.element))  # type: ignore[arg-type]
        return lambda items: [element(item) for item in items]
    if kind == "DECIMAL":
        fit = _decimal_fitter(SqlType("DECIMAL", connect.precision, connect.scale))
        return lambda value: fit(value if isinstance(value, Decimal) else Decimal(str(value)))
    if kind in ("FLOAT32", "FLOAT64"):
        return float
    return lambda value: value


def _nullable(encode: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else encode(value)


def _connect_struct_encoder(
    connect: _ConnectType, sql_type: SqlType, from_row: bool
) -> Callable[..., Any]:
    names = [name for name, _ in sql_type.fields]
    # A field named as the column, as the generated schema writes it (dots as underscores),
    # or as its upper case.
    index = {name.replace(".", "_"): i for i, name in enumerate(names)}
    index.update({name: i for i, name in enumerate(names)})
    upper = {name.upper(): i for i, name in enumerate(names)}
    writers: list[tuple[str, int | None, Any]] = []
    for field in connect.fields:
        position = index.get(field.name, upper.get(field.name.upper()))
        if position is None:
            default = None if field.default is _NO_DEFAULT else field.default
            writers.append((field.name, None, default))
        else:
            encode = _nullable(_connect_encoder(field.type, sql_type.fields[position][1]))
            writers.append((field.name, position, encode))

    def write(value: Any) -> dict[str, Any]:
        values = value if from_row else [value.get(name) for name in names]
        return {
            field: extra if position is None else extra(values[position])
            for field, position, extra in writers
        }

    return write


# --- Connect data <-> test records ------------------------------------------------------------


def _spec_reader(connect: _ConnectType) -> Callable[[Any], Any]:
    """A datum as ksqlDB's test runner writes it (SpecToConnectConverter.connectToSpec): the
    writer's own field names, every field; map keys as text; decimals as numbers (floats, as
    the JSON format's test records), bytes as base64."""
    kind = connect.kind
    if kind == "STRUCT":
        fields = [(f.name, _spec_reader(f.type)) for f in connect.fields]
        return lambda record: (
            None if record is None else {name: read(record[name]) for name, read in fields}
        )
    if kind == "ARRAY":
        element = _spec_reader(connect.element)  # type: ignore[arg-type]
        return lambda items: None if items is None else [element(item) for item in items]
    if kind == "MAP":
        value = _spec_reader(connect.element)  # type: ignore[arg-type]
        if connect.entries:
            return lambda entries: (
                None
                if entries is None
                else {_java_text(e["key"]): value(e["value"]) for e in entries}
            )
        return lambda items: None if items is None else {k: value(v) for k, v in items.items()}
    if kind == "DECIMAL":
        return lambda value: None if value is None else float(value)
    if kind == "BYTES":
        return lambda value: None if value is None else base64.b64encode(value).decode()
    return lambda value: value


def _java_text(value: Any) -> str:
    """Java's ``toString`` of a test record's scalar."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _spec_writer(connect: _ConnectType) -> Callable[[Any], Any]:
    """A test record's value as ksqlDB's test runner writes it with a schema
    (SpecToConnectConverter.specToConnect): numbers and booleans from their text, struct fields
    matched case-insensitively (missing ones null, or their default), decimals fitted (text
    rounded half up to the scale), bytes from base64."""
    kind = connect.kind

    def nullable(write: Callable[[Any], Any]) -> Callable[[Any], Any]:
        return lambda spec: None if spec is None else write(spec)

    if kind in ("INT32", "INT64", "DATE", "TIME", "TIMESTAMP"):
        return nullable(lambda spec: _spec_number(int, spec))
    if kind in ("FLOAT32", "FLOAT64"):
        return nullable(lambda spec: _spec_number(float, spec))
    if kind == "BOOLEAN":
        return nullable(lambda spec: _java_text(spec).lower() == "true")
    if kind == "STRING":
        return nullable(_java_text)
    if kind == "DECIMAL":
        return nullable(_spec_decimal(connect))
    if kind == "BYTES":
        return nullable(lambda spec: _base64(spec) if isinstance(spec, str) else spec)
    if kind == "ARRAY":
        element = _spec_writer(connect.element)  # type: ignore[arg-type]
        return nullable(lambda spec: [element(item) for item in _expect(spec, list, "ARRAY")])
    if kind == "MAP":
        key = _spec_writer(connect.key)  # type: ignore[arg-type]
        value = _spec_writer(connect.element)  # type: ignore[arg-type]
        if connect.entries:
            return nullable(
                lambda spec: [
                    {"key": key(k), "value": value(v)}
                    for k, v in _expect(spec, dict, "MAP").items()
                ]
            )
        return nullable(lambda spec: {k: value(v) for k, v in _expect(spec, dict, "MAP").items()})
    fields = {f.name.upper(): (f.name, _spec_writer(f.type)) for f in connect.fields}
    defaults = {f.name: None if f.default is _NO_DEFAULT else f.default for f in connect.fields}

    def write_struct(spec: Any) -> dict[str, Any]:
        out = dict(defaults)
        for key, item in _expect(spec, dict, "STRUCT").items():
            field = fields.get(str(key).upper())
            if field is not None:
                out[field[0]] = field[1](item)
        return out

    return nullable(write_struct)


def _spec_number(kind: Callable[[str], Any], spec: Any) -> Any:
    try:
        return kind(_java_text(spec))
    except ValueError:
        raise _Coercion(f'For input string: "{_java_text(spec)}"') from None


def _spec_decimal(connect: _ConnectType) -> Callable[[Any], Decimal]:
    sql_type = SqlType("DECIMAL", connect.precision, connect.scale)
    fit, exponent = _decimal_fitter(sql_type), Decimal(1).scaleb(-connect.scale)

    def write(spec: Any) -> Decimal:
        if isinstance(spec, str):
            # ksqlDB's DecimalUtil.cast: the text rounded half up to the scale.
            if not _JAVA_DECIMAL.fullmatch(spec):
                raise _Coercion(f"Can't coerce string to type. targetType: {sql_type}")
            return fit(Decimal(spec).quantize(exponent, ROUND_HALF_UP, _DECIMAL_CONTEXT))
        if isinstance(spec, bool) or not isinstance(spec, int | float | Decimal):
            raise _Coercion("DECIMAL type requires JSON number in test data")
        return fit(Decimal(repr(spec)) if isinstance(spec, float) else Decimal(spec))

    return write


def _or_failing(build: Callable[[], Callable[[Any], Any]]) -> Callable[[Any], Any]:
    """What ``build`` makes, or for a schema it cannot do (it raises _Coercion) a function
    that fails each record with the reason."""
    try:
        return build()
    except _Coercion as exc:
        message = exc.message

    def fail(_value: Any) -> Any:
        raise _Coercion(message)

    return fail


# --- AVRO -------------------------------------------------------------------------------------

#: The full name of the value schemas ksqlDB generates (keys: :func:`key_schema_name`).
AVRO_VALUE_SCHEMA_NAME = "io.confluent.ksql.avro_schemas.KsqlDataSourceSchema"


def key_schema_name(source: str) -> str:
    """ksqlDB's full name for an AVRO key schema: the source's name in upper camel case (from
    upper underscore, as Guava converts it) + ``Key``, so every sink's key record is distinct."""
    camel = "".join(word[:1].upper() + word[1:].lower() for word in source.split("_"))
    return f"io.confluent.ksql.avro_schemas.{camel}Key"


class _AvroSerde(_RegistrySerde):
    """Confluent Avro, as ksqlDB's AvroConverter-based serde: written with the schema
    :func:`_avro_schema` generates (nullable fields, Connect's logical types), read with the
    writer's schema as Connect's AvroData reads it."""

    def __init__(self, columns: Columns, wrapped: bool, where: _Subject) -> None:
        super().__init__("AVRO", columns, wrapped, where)

    def _generated(self, full_name: str) -> Schema:
        from confluent_kafka.schema_registry import Schema

        text = json.dumps(_avro_schema(self._type, full_name), separators=(",", ":"))
        return Schema(text, "AVRO")

    def _codec(
        self, schema: Schema
    ) -> tuple[_ConnectType, Callable[[bytes], Any], Callable[[Any], bytes]]:
        try:
            parsed, expanded = _avro_parse(schema.schema_str)
        except _Coercion as exc:
            raise SerdeError(f"Invalid Avro schema: {exc.message}") from None
        return (
            _avro_model(expanded),
            lambda payload: _avro_read(parsed, payload),
            lambda datum: _avro_write(parsed, datum),
        )


def _avro_read(parsed: Any, payload: bytes) -> Any:
    return fastavro.schemaless_reader(io.BytesIO(payload), parsed)


def _avro_write(parsed: Any, datum: Any) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, parsed, datum)
    return out.getvalue()


def _avro_parse(schema_str: str) -> tuple[Any, Any]:
    """``(fastavro's parsed schema, the expanded schema)`` of an Avro schema's text. The parsed
    one has the temporal logical types taken off, so that timestamps, dates and times read and
    write as the integers the columns hold (decimals stay: they read as Decimal)."""
    try:
        raw = json.loads(schema_str)
        return fastavro.parse_schema(_plain_avro(raw)), fastavro.parse_schema(raw, expand=True)
    except (ValueError, TypeError, KeyError, fastavro.schema.SchemaParseException) as exc:
        raise _Coercion(str(exc)) from None


def _plain_avro(node: Any) -> Any:
    if isinstance(node, list):
        return [_plain_avro(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _plain_avro(v) for k, v in node.items() if k != "logicalType"}
    if node.get("logicalType") == "decimal":
        out["logicalType"] = "decimal"
    return out


#: How ksqlDB's primitive types are written in Avro.
_AVRO_PRIMITIVES = {
    "BOOLEAN": "boolean",
    "INTEGER": "int",
    "BIGINT": "long",
    "DOUBLE": "double",
    "STRING": "string",
    "BYTES": "bytes",
}
#: Connect's temporal logical types: (Avro type, Connect name, Avro logical type).
_AVRO_TEMPORAL = {
    "TIMESTAMP": ("long", "org.apache.kafka.connect.data.Timestamp", "timestamp-millis"),
    "DATE": ("int", "org.apache.kafka.connect.data.Date", "date"),
    "TIME": ("int", "org.apache.kafka.connect.data.Time", "time-millis"),
}
_CONNECT_DECIMAL = "org.apache.kafka.connect.data.Decimal"
_AVRO_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _avro_schema(sql_type: SqlType, full_name: str) -> Any:
    """The Avro schema ksqlDB generates (AvroSchemas, then Connect's AvroData with its metadata
    on): the root is not nullable, every value within it is (a union with null first, fields
    defaulting to null); records and maps are named after their path from the root
    (``Root_FIELD``, ``Root_MAP_MapValue``); maps are arrays of key/value records (Connect's
    MapEntry: their keys may be null); decimals are bytes with Connect's parameters."""
    return _avro_node(sql_type, full_name, None)


def _avro_node(sql_type: SqlType, name: str, namespace: str | None) -> Any:
    kind = sql_type.name
    if kind in _AVRO_PRIMITIVES:
        return _AVRO_PRIMITIVES[kind]
    if kind == "DECIMAL":
        scale, precision = sql_type.scale or 0, sql_type.precision or 0
        return {
            "type": "bytes",
            "scale": scale,
            "precision": precision,
            "connect.version": 1,
            "connect.parameters": {
                "scale": str(scale),
                "connect.decimal.precision": str(precision),
            },
            "connect.name": _CONNECT_DECIMAL,
            "logicalType": "decimal",
        }
    if kind in _AVRO_TEMPORAL:
        base, connect_name, logical = _AVRO_TEMPORAL[kind]
        return {
            "type": base,
            "connect.version": 1,
            "connect.name": connect_name,
            "logicalType": logical,
        }
    if kind == "ARRAY":
        return {"type": "array", "items": _avro_nullable(sql_type.element, name, namespace)}  # type: ignore[arg-type]
    own = _avro_namespace(name)
    fields: list[tuple[str, SqlType]]
    if kind == "MAP":
        fields = [("key", sql_type.key), ("value", sql_type.element)]  # type: ignore[list-item]
        names = [f"{name}_MapKey", f"{name}_MapValue"]
    else:
        fields = list(sql_type.fields)
        names = [f"{name}_{field}" for field, _ in fields]
    record: dict[str, Any] = {"type": "record", "name": name.rpartition(".")[2]}
    if own != namespace:
        record["namespace"] = own
    record["fields"] = [
        {
            "name": field.replace(".", "_"),
            "type": _avro_nullable(field_type, field_name, own),
            "default": None,
        }
        for (field, field_type), field_name in zip(fields, names, strict=True)
    ]
    if kind == "MAP":
        record["connect.internal.type"] = "MapEntry"
        return {"type": "array", "items": record, "connect.name": name}
    record["connect.name"] = name
    return record


def _avro_nullable(sql_type: SqlType, name: str, namespace: str | None) -> list[Any]:
    return ["null", _avro_node(sql_type, name, namespace)]


def _avro_namespace(full_name: str) -> str | None:
    return full_name.rpartition(".")[0] or None


def _check_avro(target: _Target, wrapped: bool) -> None:
    """What ksqlDB's AVRO format rejects in a schema: maps with other than STRING keys, and
    field names Avro does not allow (once dots are underscores)."""

    def bad_map(t: SqlType) -> bool:
        return t.name == "MAP" and t.key is not None and t.key.name != "STRING"

    if any(_contains(t, bad_map) for _, t in target.columns):
        raise target.error("Avro only supports MAPs with STRING keys")
    names = [name for name, _ in target.columns] if wrapped else []
    for _, sql_type in target.columns:
        _struct_names(sql_type, names)
    for name in names:
        avro_name = name.replace(".", "_")
        if not _AVRO_NAME.fullmatch(avro_name):
            problem = (
                f"Illegal initial character: {avro_name}"
                if not _AVRO_NAME.fullmatch(avro_name[:1])
                else f"Illegal character in: {avro_name}"
            )
            raise KsqlError(f"Schema is not compatible with Avro: {problem}")


def _struct_names(sql_type: SqlType, out: list[str]) -> None:
    for name, field_type in sql_type.fields:
        out.append(name)
        _struct_names(field_type, out)
    for child in (sql_type.element, sql_type.key):
        if child is not None:
            _struct_names(child, out)


# --- AVRO: the writer's schema as Kafka Connect reads it (AvroData) --------------------------

_AVRO_KINDS = {
    "boolean": "BOOLEAN",
    "int": "INT32",
    "long": "INT64",
    "float": "FLOAT32",
    "double": "FLOAT64",
    "string": "STRING",
    "enum": "STRING",
    "bytes": "BYTES",
    "fixed": "BYTES",
}
_AVRO_LOGICAL = {
    ("long", "timestamp-millis"): "TIMESTAMP",
    ("long", "org.apache.kafka.connect.data.Timestamp"): "TIMESTAMP",
    ("int", "date"): "DATE",
    ("int", "org.apache.kafka.connect.data.Date"): "DATE",
    ("int", "time-millis"): "TIME",
    ("int", "org.apache.kafka.connect.data.Time"): "TIME",
}


def _avro_model(node: Any) -> _ConnectType:
    """The Connect view of an expanded Avro schema (fastavro's ``expand=True``); raises
    _Coercion for what Connect reads in a way streams.ksql does not (a union of several
    types, which AvroData reads as a struct of its branches)."""
    if isinstance(node, list):
        branches = [branch for branch in node if branch != "null"]
        if len(branches) != 1:
            raise _Coercion(f"Unsupported Avro union: {json.dumps(node)}")
        inner = _avro_model(branches[0])
        return replace(inner, optional=True) if len(branches) < len(node) else inner
    if isinstance(node, str):
        node = {"type": node}
    avro_type = node["type"]
    if isinstance(avro_type, dict | list):
        return _avro_model(avro_type)
    if avro_type in ("bytes", "fixed") and node.get("logicalType") == "decimal":
        return _ConnectType("DECIMAL", precision=node["precision"], scale=node.get("scale", 0))
    logical = _AVRO_LOGICAL.get((avro_type, node.get("logicalType"))) or _AVRO_LOGICAL.get(
        (avro_type, node.get("connect.name"))
    )
    if logical is not None:
        return _ConnectType(logical)
    if avro_type in _AVRO_KINDS:
        return _ConnectType(_AVRO_KINDS[avro_type])
    if avro_type == "array":
        items = node["items"]
        if _is_map_entry(items):
            key, value = (_avro_model(f["type"]) for f in items["fields"])
            return _ConnectType("MAP", element=value, key=key, entries=True)
        return _ConnectType("ARRAY", element=_avro_model(items))
    if avro_type == "map":
        return _ConnectType("MAP", element=_avro_model(node["values"]), key=_ConnectType("STRING"))
    if avro_type == "record":
        fields = tuple(
            _ConnectField(f["name"], _avro_model(f["type"]), f.get("default", _NO_DEFAULT))
            for f in node["fields"]
        )
        return _ConnectType("STRUCT", fields=fields)
    raise _Coercion(f"Unsupported Avro type: {avro_type}")


def _is_map_entry(items: Any) -> bool:
    """Connect's map with keys that may be null: an array of key/value records marked so."""
    return (
        isinstance(items, dict)
        and items.get("type") == "record"
        and (
            items.get("connect.internal.type") == "MapEntry"
            or items.get("name") == "io.confluent.connect.avro.MapEntry"
        )
        and [f["name"] for f in items.get("fields", [])] == ["key", "value"]
    )


def _avro_row_type(schema_str: str) -> SqlType | None:
    return _connect_sql_type(_avro_model(_avro_parse(schema_str)[1]))


# --- JSON_SR ----------------------------------------------------------------------------------


class _JsonSchemaSerde(_RegistrySerde):
    """JSON with a JSON Schema in the registry, as ksqlDB's JsonSchemaConverter-based serde:
    written as Connect's JsonSchemaData writes the schema :func:`_json_schema` generates
    (decimals as numbers, bytes base64, maps as arrays of key/value objects), read with the
    writer's schema as JsonSchemaData reads it."""

    def __init__(self, columns: Columns, wrapped: bool, where: _Subject) -> None:
        super().__init__("JSON_SR", columns, wrapped, where)

    def _generated(self, full_name: str) -> Schema:
        from confluent_kafka.schema_registry import Schema

        # A JSON schema has no name; the row is the one value that is not nullable.
        root = _json_schema(self._type, optional=not self.wrapped)
        return Schema(json.dumps(root, separators=(",", ":")), "JSON")

    def _codec(
        self, schema: Schema
    ) -> tuple[_ConnectType, Callable[[bytes], Any], Callable[[Any], bytes]]:
        try:
            raw = json.loads(schema.schema_str)
        except ValueError as exc:
            raise SerdeError(f"Invalid JSON schema: {exc}") from None
        connect = _json_model(raw)
        to_connect, from_connect = _json_to_connect(connect), _json_from_connect(connect)
        # Decimals keep every digit only through the exact (slower) parser.
        loads = _loads_exact if _has_decimal(connect) else orjson.loads
        return (
            connect,
            lambda payload: to_connect(loads(payload)),
            lambda datum: orjson.dumps(from_connect(datum)),
        )


def _json_schema(sql_type: SqlType, optional: bool, index: int | None = None) -> dict[str, Any]:
    """The JSON schema ksqlDB generates (Connect's JsonSchemaData of ksqlDB's Connect schema):
    every value but the row nullable (``oneOf`` null and the type), fields numbered by
    ``connect.index``, Connect's types in ``connect.type`` and logical types in ``title``,
    maps as arrays of key/value objects (Connect's encoding for keys that may be null, as all
    of ksqlDB's may)."""
    base = _json_schema_base(sql_type)
    schema = {"oneOf": [{"type": "null"}, base]} if optional else base
    return schema if index is None else {"connect.index": index, **schema}


#: JsonSchemaData's schemas of ksqlDB's scalar types.
_JSON_SCHEMA_SCALARS: dict[str, dict[str, Any]] = {
    "BOOLEAN": {"type": "boolean"},
    "INTEGER": {"type": "integer", "connect.type": "int32"},
    "BIGINT": {"type": "integer", "connect.type": "int64"},
    "DOUBLE": {"type": "number", "connect.type": "float64"},
    "STRING": {"type": "string"},
    "BYTES": {"type": "string", "connect.type": "bytes"},
    "TIMESTAMP": {
        "type": "integer",
        "title": "org.apache.kafka.connect.data.Timestamp",
        "connect.version": 1,
        "connect.type": "int64",
    },
    "DATE": {
        "type": "integer",
        "title": "org.apache.kafka.connect.data.Date",
        "connect.version": 1,
        "connect.type": "int32",
    },
    "TIME": {
        "type": "integer",
        "title": "org.apache.kafka.connect.data.Time",
        "connect.version": 1,
        "connect.type": "int32",
    },
}


def _json_schema_base(sql_type: SqlType) -> dict[str, Any]:
    kind = sql_type.name
    if kind in _JSON_SCHEMA_SCALARS:
        return dict(_JSON_SCHEMA_SCALARS[kind])
    if kind == "DECIMAL":
        return {
            "type": "number",
            "title": _CONNECT_DECIMAL,
            "connect.version": 1,
            "connect.type": "bytes",
            "connect.parameters": {
                "scale": str(sql_type.scale or 0),
                "connect.decimal.precision": str(sql_type.precision or 0),
            },
        }
    if kind == "ARRAY":
        return {"type": "array", "items": _json_schema(sql_type.element, True)}  # type: ignore[arg-type]
    if kind == "MAP":
        entry = {
            "type": "object",
            "properties": {
                "key": _json_schema(SqlType("STRING"), True, 0),
                "value": _json_schema(sql_type.element, True, 1),  # type: ignore[arg-type]
            },
        }
        return {"type": "array", "items": entry, "connect.type": "map"}
    properties = {name: _json_schema(t, True, i) for i, (name, t) in enumerate(sql_type.fields)}
    return {"type": "object", "properties": properties}


def _has_decimal(connect: _ConnectType) -> bool:
    children = [c for c in (connect.element, connect.key) if c is not None]
    children += [f.type for f in connect.fields]
    return connect.kind == "DECIMAL" or any(_has_decimal(c) for c in children)


# --- JSON_SR: the writer's schema as Kafka Connect reads it (JsonSchemaData) -----------------

_JSON_INTEGERS = {"int8": "INT32", "int16": "INT32", "int32": "INT32", "int64": "INT64"}
_JSON_NUMBERS = {**_JSON_INTEGERS, "float32": "FLOAT32", "float64": "FLOAT64"}
#: Connect's temporal logical types by name (a JSON schema's title).
_CONNECT_TEMPORAL = {_JSON_SCHEMA_SCALARS[name]["title"]: name for name in _AVRO_TEMPORAL}


def _json_model(node: Any) -> _ConnectType:
    """The Connect view of a JSON schema (JsonSchemaData.toConnectSchema); raises _Coercion for
    what streams.ksql does not read (references, a ``oneOf`` of several types, which Connect
    reads as a struct of its branches, ``allOf``)."""
    if not isinstance(node, dict):
        raise _Coercion(f"Unsupported JSON schema: {json.dumps(node)}")
    branches = node.get("oneOf", node.get("anyOf"))
    if branches is not None:
        others = [b for b in branches if b != {"type": "null"}]
        if len(branches) != 2 or len(others) != 1:
            raise _Coercion(f"Unsupported JSON schema: {json.dumps(node)}")
        return replace(_json_model(others[0]), optional=True)
    json_type = node.get("type")
    if isinstance(json_type, list):  # {"type": ["null", "integer"]}, as everit reads it
        types = [t for t in json_type if t != "null"]
        if len(types) != 1:
            raise _Coercion(f"Unsupported JSON schema: {json.dumps(node)}")
        inner = _json_model({**node, "type": types[0]})
        return replace(inner, optional=inner.optional or len(types) < len(json_type))
    connect_type, title = node.get("connect.type"), node.get("title")
    if json_type in ("integer", "number"):
        if title == _CONNECT_DECIMAL or connect_type == "bytes":
            parameters = node.get("connect.parameters") or {}
            precision = int(parameters.get("connect.decimal.precision", 64))
            return _ConnectType("DECIMAL", precision=precision, scale=int(parameters["scale"]))
        if title in _CONNECT_TEMPORAL:
            return _ConnectType(_CONNECT_TEMPORAL[title])
        numbers = _JSON_INTEGERS if json_type == "integer" else _JSON_NUMBERS
        default = "INT64" if json_type == "integer" else "FLOAT64"
        return _ConnectType(numbers.get(connect_type, default))
    if json_type == "string" or (json_type is None and "enum" in node):
        return _ConnectType("BYTES" if connect_type == "bytes" else "STRING")
    if json_type == "boolean":
        return _ConnectType("BOOLEAN")
    if json_type == "array":
        items = node.get("items")
        if not isinstance(items, dict):
            raise _Coercion("Array schema did not specify the items type")
        if connect_type == "map" and items.get("type") == "object":
            entry = items.get("properties", {})
            key, value = _json_model(entry["key"]), _json_model(entry["value"])
            return _ConnectType("MAP", element=value, key=key, entries=True)
        return _ConnectType("ARRAY", element=_json_model(items))
    if json_type == "object":
        if connect_type == "map":
            values = _json_model(node.get("additionalProperties", {}))
            return _ConnectType("MAP", element=values, key=_ConnectType("STRING"))
        # Fields in connect.index order (a field without one goes where it comes); a field
        # the object does not require may be null.
        ordered: dict[int, tuple[str, Any]] = {}
        for name, sub in node.get("properties", {}).items():
            position = sub.get("connect.index") if isinstance(sub, dict) else None
            ordered[len(ordered) if position is None else position] = (name, sub)
        required = set(node.get("required", ()))
        fields = []
        for _, (name, sub) in sorted(ordered.items()):
            field_type = _json_model(sub)
            if name not in required:
                field_type = replace(field_type, optional=True)
            fields.append(_ConnectField(name, field_type, sub.get("default", _NO_DEFAULT)))
        return _ConnectType("STRUCT", fields=tuple(fields))
    raise _Coercion(f"Unsupported JSON schema: {json.dumps(node)}")


def _json_row_type(schema_str: str) -> SqlType | None:
    try:
        raw = json.loads(schema_str)
    except ValueError as exc:
        raise _Coercion(str(exc)) from None
    return _connect_sql_type(_json_model(raw))


def _json_node_type(value: Any) -> str:
    """The Jackson node type JsonSchemaData's messages name."""
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int | float | Decimal):
        return "NUMBER"
    return {str: "STRING", list: "ARRAY", dict: "OBJECT"}.get(type(value), "NULL")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _json_to_connect(connect: _ConnectType) -> Callable[[Any], Any]:
    """How parsed JSON becomes Connect data of the writer's type, as JsonSchemaData reads it
    (Jackson's lenient accessors included: a number read where a boolean belongs is false, a
    non-number where an integer belongs 0, a non-string where a string belongs null)."""
    convert = _json_to_connect_value(connect)
    kind = _CONNECT_TYPE_NAMES[connect.kind].upper()

    def read(value: Any) -> Any:
        if value is None:
            if connect.optional:
                return None
            raise _Coercion(f"Invalid null value for required {kind} field")
        return convert(value)

    return read


def _json_to_connect_value(connect: _ConnectType) -> Callable[[Any], Any]:
    kind = connect.kind
    if kind == "BOOLEAN":
        return lambda value: value is True
    if kind in ("INT32", "INT64"):
        bits = 32 if kind == "INT32" else 64
        return lambda value: _wrap(int(value), bits) if _is_number(value) else 0
    if kind == "FLOAT64":
        return lambda value: float(value) if _is_number(value) else 0.0
    if kind == "FLOAT32":
        # Connect holds a Float: the value rounded to 32 bits.
        return lambda value: (
            struct.unpack(">f", struct.pack(">f", float(value)))[0] if _is_number(value) else 0.0
        )
    if kind == "STRING":
        return lambda value: value if isinstance(value, str) else None
    if kind == "BYTES":
        return _json_bytes
    if kind == "DECIMAL":
        return _json_decimal(connect.scale)
    if kind == "TIMESTAMP":
        return _json_integral("Timestamp", "integral", 64)
    if kind in ("DATE", "TIME"):
        return _json_integral(kind.capitalize(), "integer", 32)
    if kind == "ARRAY":
        element = _json_to_connect(connect.element)  # type: ignore[arg-type]
        # Jackson iterates an object's values, and nothing of a scalar.
        return lambda value: [
            element(item) for item in (value if isinstance(value, list) else _json_items(value))
        ]
    if kind == "MAP":
        return _json_map_to_connect(connect)
    fields = [(f.name, _json_to_connect(f.type), f.default) for f in connect.fields]

    def read_struct(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _Coercion(
                f"Structs should be encoded as JSON objects, but found {_json_node_type(value)}"
            )
        out = {}
        for name, read, default in fields:
            item = value.get(name)
            out[name] = read(default if item is None and default is not _NO_DEFAULT else item)
        return out

    return read_struct


def _json_items(value: Any) -> list[Any]:
    return list(value.values()) if isinstance(value, dict) else []


def _json_bytes(value: Any) -> bytes:
    if not isinstance(value, str):
        raise _Coercion("Invalid bytes field")
    return _base64(value)


def _json_decimal(scale: int) -> Callable[[Any], Decimal]:
    def read(value: Any) -> Decimal:
        if _is_number(value):
            return value if isinstance(value, Decimal) else Decimal(repr(value))
        if isinstance(value, str):  # Connect's bytes encoding: the unscaled value, base64
            unscaled = int.from_bytes(_base64(value), "big", signed=True)
            return Decimal(unscaled).scaleb(-scale)
        raise _Coercion(
            "Invalid type for Decimal, underlying representation should be numeric or bytes "
            f"but was {_json_node_type(value)}"
        )

    return read


def _json_integral(name: str, what: str, bits: int) -> Callable[[Any], int]:
    def read(value: Any) -> int:
        if type(value) is int and -(1 << (bits - 1)) <= value < 1 << (bits - 1):
            return value
        raise _Coercion(
            f"Invalid type for {name}, underlying representation should be {what} but was "
            f"{_json_node_type(value)}"
        )

    return read


def _json_map_to_connect(connect: _ConnectType) -> Callable[[Any], Any]:
    key = _json_to_connect(connect.key)  # type: ignore[arg-type]
    value = _json_to_connect(connect.element)  # type: ignore[arg-type]
    if not connect.entries:

        def read_object(obj: Any) -> dict[str, Any]:
            if not isinstance(obj, dict):
                raise _Coercion(
                    "Maps with string fields should be encoded as JSON objects, but found "
                    f"{_json_node_type(obj)}"
                )
            return {k: value(v) for k, v in obj.items()}

        return read_object

    def read_entries(entries: Any) -> list[dict[str, Any]]:
        if not isinstance(entries, list):
            raise _Coercion(
                "Maps with non-string fields should be encoded as JSON array of objects, but "
                f"found {_json_node_type(entries)}"
            )
        out = []
        for entry in entries:
            if not isinstance(entry, dict):
                raise _Coercion(
                    f"Found invalid map entry instead of object: {_json_node_type(entry)}"
                )
            if len(entry) != 2:
                raise _Coercion(
                    f"Found invalid map entry, expected length 2 but found :{len(entry)}"
                )
            out.append({"key": key(entry.get("key")), "value": value(entry.get("value"))})
        return out

    return read_entries


def _json_from_connect(connect: _ConnectType) -> Callable[[Any], Any]:
    """How Connect data of the writer's type is written as JSON (JsonSchemaData, decimals as
    numbers): what orjson then writes."""
    write = _json_from_connect_value(connect)

    def convert(value: Any) -> Any:
        if value is None:
            if connect.optional:
                return None
            raise _Coercion(
                "Conversion error: null value for field that is required and has no default value"
            )
        return write(value)

    return convert


def _json_checked(kind: str, python: type) -> Callable[[Any], Any]:
    """A scalar as it is, if it has the Python type Connect's does (JsonSchemaData fails with
    a ClassCastException otherwise)."""

    def check(value: Any) -> Any:
        if type(value) is not python:
            raise _Coercion(f"Invalid type for {kind}: {type(value).__name__}")
        return value

    return check


def _json_from_connect_value(connect: _ConnectType) -> Callable[[Any], Any]:
    kind = connect.kind
    name = _CONNECT_TYPE_NAMES[kind].upper()
    if kind in ("INT32", "INT64", "TIMESTAMP", "DATE", "TIME"):
        return _json_checked(name, int)
    if kind == "BOOLEAN":
        return _json_checked(name, bool)
    if kind == "STRING":
        return _json_checked(name, str)
    if kind in ("FLOAT32", "FLOAT64"):
        return _write_double
    if kind == "DECIMAL":
        return _write_decimal
    if kind == "BYTES":
        return _write_bytes
    if kind == "ARRAY":
        element = _json_from_connect(connect.element)  # type: ignore[arg-type]
        return lambda items: [element(item) for item in items]
    if kind == "MAP":
        key = _json_from_connect(connect.key)  # type: ignore[arg-type]
        value = _json_from_connect(connect.element)  # type: ignore[arg-type]
        if connect.entries:
            return lambda entries: [
                {"key": key(e["key"]), "value": value(e["value"])} for e in entries
            ]
        return lambda items: {k: value(v) for k, v in items.items()}
    fields = [(f.name, _json_from_connect(f.type)) for f in connect.fields]
    return lambda record: {name: write(record.get(name)) for name, write in fields}


#: Per format, the column type of a registered schema's text (None: one ksqlDB does not read).
_SCHEMA_SQL_TYPES: dict[str, Callable[[str], SqlType | None]] = {
    "AVRO": _avro_row_type,
    "JSON_SR": _json_row_type,
}
