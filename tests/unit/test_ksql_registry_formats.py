"""streams.ksql.formats' Schema Registry formats (AVRO, JSON_SR), against confluent-kafka's
in-memory registry (``mock://``): the schemas ksqlDB generates, the wire format, reading records
other writers wrote, the test-case representation, and columns inferred from registered
schemas."""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import fastavro
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from streams.ksql import formats
from streams.ksql.ast import SqlType
from streams.ksql.compiler import compile_sql
from streams.ksql.errors import KsqlError
from streams.ksql.formats import SerdeError, key_serde, registry_columns, value_serde

T = SqlType
INT, BIGINT, DOUBLE, STRING = T("INTEGER"), T("BIGINT"), T("DOUBLE"), T("STRING")
BOOLEAN, BYTES = T("BOOLEAN"), T("BYTES")
TIMESTAMP, DATE, TIME = T("TIMESTAMP"), T("DATE"), T("TIME")


def dec(precision: int, scale: int) -> SqlType:
    return T("DECIMAL", precision, scale)


def struct_of(*fields: tuple[str, SqlType]) -> SqlType:
    return T("STRUCT", fields=fields)


def map_of(value: SqlType) -> SqlType:
    return T("MAP", key=STRING, element=value)


def array_of(element: SqlType) -> SqlType:
    return T("ARRAY", element=element)


@pytest.fixture(autouse=True)
def registry() -> Iterator[SchemaRegistryClient]:
    """A fresh in-memory registry per test, restored afterwards."""
    client = SchemaRegistryClient.new_client({"url": "mock://test_ksql_registry_formats"})
    previous = formats.use_registry(client)
    yield client
    formats.use_registry(previous)


def register(registry: SchemaRegistryClient, subject: str, schema: Any) -> int:
    return registry.register_schema(subject, Schema(json.dumps(schema), "AVRO"))


def confluent_avro(schema_id: int, schema: Any, datum: Any) -> bytes:
    """A record as another writer (Confluent's AvroSerializer) writes it."""
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), datum)
    return b"\x00" + struct.pack(">I", schema_id) + out.getvalue()


def reason(call: Any, *args: Any) -> str:
    with pytest.raises(SerdeError) as info:
        call(*args)
    return info.value.reason


def _nullable(avro_type: Any) -> list[Any]:
    return ["null", avro_type]


def _field(name: str, avro_type: Any) -> dict[str, Any]:
    return {"name": name, "type": _nullable(avro_type), "default": None}


NAMESPACE = "io.confluent.ksql.avro_schemas"


# --- the schemas ksqlDB generates ---------------------------------------------------------


def test_value_schema_is_ksqldb_s() -> None:
    serde = value_serde(
        "AVRO",
        [
            ("I", INT),
            ("D", dec(4, 2)),
            ("TS", TIMESTAMP),
            ("DT", DATE),
            ("TM", TIME),
            ("A", array_of(struct_of(("X", DOUBLE)))),
            ("M", map_of(BIGINT)),
            ("S", struct_of(("F", STRING), ("N", map_of(BOOLEAN)))),
        ],
        {},
        topic="t",
    )
    temporal = {"connect.version": 1}
    assert json.loads(serde.schema.schema_str) == {
        "type": "record",
        "name": "KsqlDataSourceSchema",
        "namespace": NAMESPACE,
        "fields": [
            _field("I", "int"),
            _field(
                "D",
                {
                    "type": "bytes",
                    "scale": 2,
                    "precision": 4,
                    "connect.version": 1,
                    "connect.parameters": {"scale": "2", "connect.decimal.precision": "4"},
                    "connect.name": "org.apache.kafka.connect.data.Decimal",
                    "logicalType": "decimal",
                },
            ),
            _field(
                "TS",
                {
                    "type": "long",
                    **temporal,
                    "connect.name": "org.apache.kafka.connect.data.Timestamp",
                    "logicalType": "timestamp-millis",
                },
            ),
            _field(
                "DT",
                {
                    "type": "int",
                    **temporal,
                    "connect.name": "org.apache.kafka.connect.data.Date",
                    "logicalType": "date",
                },
            ),
            _field(
                "TM",
                {
                    "type": "int",
                    **temporal,
                    "connect.name": "org.apache.kafka.connect.data.Time",
                    "logicalType": "time-millis",
                },
            ),
            _field(
                "A",
                {
                    "type": "array",
                    "items": _nullable(
                        {
                            "type": "record",
                            "name": "KsqlDataSourceSchema_A",
                            "fields": [_field("X", "double")],
                            "connect.name": f"{NAMESPACE}.KsqlDataSourceSchema_A",
                        }
                    ),
                },
            ),
            _field(
                "M",
                {
                    "type": "array",
                    "items": {
                        "type": "record",
                        "name": "KsqlDataSourceSchema_M",
                        "fields": [_field("key", "string"), _field("value", "long")],
                        "connect.internal.type": "MapEntry",
                    },
                    "connect.name": f"{NAMESPACE}.KsqlDataSourceSchema_M",
                },
            ),
            _field(
                "S",
                {
                    "type": "record",
                    "name": "KsqlDataSourceSchema_S",
                    "fields": [
                        _field("F", "string"),
                        _field(
                            "N",
                            {
                                "type": "array",
                                "items": {
                                    "type": "record",
                                    "name": "KsqlDataSourceSchema_S_N",
                                    "fields": [
                                        _field("key", "string"),
                                        _field("value", "boolean"),
                                    ],
                                    "connect.internal.type": "MapEntry",
                                },
                                "connect.name": f"{NAMESPACE}.KsqlDataSourceSchema_S_N",
                            },
                        ),
                    ],
                    "connect.name": f"{NAMESPACE}.KsqlDataSourceSchema_S",
                },
            ),
        ],
        "connect.name": f"{NAMESPACE}.KsqlDataSourceSchema",
    }


def test_schema_text_is_compact_and_in_avro_s_key_order() -> None:
    serde = value_serde("AVRO", [("V", INT)], {}, topic="t")
    assert serde.schema.schema_type == "AVRO"
    assert serde.schema.schema_str == (
        '{"type":"record","name":"KsqlDataSourceSchema","namespace":'
        '"io.confluent.ksql.avro_schemas","fields":[{"name":"V","type":["null","int"],'
        '"default":null}],"connect.name":"io.confluent.ksql.avro_schemas.KsqlDataSourceSchema"}'
    )


def test_key_schemas() -> None:
    # A single key column is unwrapped, and not nullable at the root.
    assert key_serde("AVRO", [("K", INT)], {}, topic="t").schema.schema_str == '"int"'
    struct_key = key_serde("AVRO", [("K", struct_of(("A", INT)))], {}, topic="t", source="OUTPUT")
    assert json.loads(struct_key.schema.schema_str) == {
        "type": "record",
        "name": "OutputKey",
        "namespace": NAMESPACE,
        "fields": [_field("A", "int")],
        "connect.name": f"{NAMESPACE}.OutputKey",
    }
    # Several key columns are a record named after the source (upper underscore to camel).
    keys = key_serde("AVRO", [("A", INT), ("B", STRING)], {}, topic="t", source="MY_SOURCE")
    assert json.loads(keys.schema.schema_str)["name"] == "MySourceKey"
    named = key_serde("AVRO", [("A", INT), ("B", STRING)], {"KEY_SCHEMA_FULL_NAME": "x.y.K"})
    assert json.loads(named.schema.schema_str)["namespace"] == "x.y"
    assert formats.key_schema_name("OUTPUT") == f"{NAMESPACE}.OutputKey"


def test_unwrapped_value_schemas() -> None:
    unwrapped = {"WRAP_SINGLE_VALUE": False}
    assert value_serde("AVRO", [("V", dec(3, 1))], unwrapped).schema.schema_str.startswith(
        '{"type":"bytes","scale":1,"precision":3'
    )
    anonymous_map = value_serde("AVRO", [("V", map_of(INT))], unwrapped)
    assert json.loads(anonymous_map.schema.schema_str) == {
        "type": "array",
        "items": {
            "type": "record",
            "name": "KsqlDataSourceSchema",
            "namespace": NAMESPACE,
            "fields": [_field("key", "string"), _field("value", "int")],
            "connect.internal.type": "MapEntry",
        },
        "connect.name": f"{NAMESPACE}.KsqlDataSourceSchema",
    }
    named = value_serde("AVRO", [("V", INT)], {"VALUE_SCHEMA_FULL_NAME": "com.acme.Row"})
    assert json.loads(named.schema.schema_str)["name"] == "Row"


def test_schemas_avro_cannot_carry() -> None:
    with pytest.raises(KsqlError, match="Avro only supports MAPs with STRING keys"):
        value_serde("AVRO", [("M", T("MAP", key=INT, element=INT))], {})
    with pytest.raises(KsqlError, match="Illegal character in: MY COL"):
        value_serde("AVRO", [("MY COL", INT)], {})
    with pytest.raises(KsqlError, match="Illegal initial character: 1A"):
        value_serde("AVRO", [("S", struct_of(("1A", INT)))], {})
    # A single unwrapped column's name is in no record; dots become underscores.
    value_serde("AVRO", [("MY COL", INT)], {"WRAP_SINGLE_VALUE": False})
    assert '"name":"T_A"' in value_serde("AVRO", [("T.A", INT)], {}).schema.schema_str


# --- the wire format ----------------------------------------------------------------------


def test_wire_bytes(registry: SchemaRegistryClient) -> None:
    serde = value_serde("AVRO", [("A", INT), ("B", STRING)], {}, topic="t")
    data = serde.serialize([1, "a"])
    schema_id = registry.get_latest_version("t-value").schema_id
    # Magic byte 0, the schema id in 4 bytes big-endian, then the Avro binary: each field a
    # union (branch 1 as zig-zag 2), 1 as zig-zag 2, "a" as length 1 (2) and the byte.
    assert data == b"\x00" + struct.pack(">I", schema_id) + b"\x02\x02\x02\x02a"
    assert registry.get_schema(schema_id).schema_str == serde.schema.schema_str
    assert serde.serialize([None, None]) == b"\x00" + struct.pack(">I", schema_id) + b"\x00\x00"
    assert serde.serialize(None) is None


def test_subjects_are_topic_key_and_topic_value(registry: SchemaRegistryClient) -> None:
    key_serde("AVRO", [("K", STRING)], {}, topic="orders").serialize(["k"])
    value_serde("AVRO", [("V", STRING)], {}, topic="orders").serialize(["v"])
    assert sorted(registry.get_subjects()) == ["orders-key", "orders-value"]


@pytest.mark.parametrize(
    ("columns", "row"),
    [
        ([("B", BOOLEAN), ("I", INT), ("L", BIGINT)], [True, -(2**31), 2**63 - 1]),
        ([("D", DOUBLE), ("S", STRING), ("Y", BYTES)], [-1.5, "héllo", b"\x00\xff"]),
        ([("D", dec(10, 3)), ("N", dec(2, 0))], [Decimal("-1234567.890"), Decimal("-9")]),
        ([("TS", TIMESTAMP), ("DT", DATE), ("TM", TIME)], [-1, -719162, 86_399_999]),
        ([("A", array_of(INT)), ("E", array_of(STRING))], [[1, None, 3], []]),
        ([("M", map_of(map_of(DOUBLE)))], [{"a": {"x": 1.0, "y": None}, "b": None, "c": {}}]),
        (
            [("S", struct_of(("F", INT), ("G", struct_of(("H", array_of(dec(3, 2)))))))],
            [{"F": None, "G": {"H": [Decimal("1.50"), None]}}],
        ),
        ([("X", INT), ("Y", STRING)], [None, None]),
    ],
)
def test_round_trips(columns: list[tuple[str, SqlType]], row: list[Any]) -> None:
    serde = value_serde("AVRO", columns, {}, topic="t")
    assert serde.deserialize(serde.serialize(row)) == row


def test_decimals_keep_their_scale() -> None:
    serde = value_serde("AVRO", [("D", dec(4, 2))], {}, topic="t")
    read = serde.deserialize(serde.serialize([Decimal("1.50")]))
    assert read is not None and str(read[0]) == "1.50"
    assert "Numeric field overflow" in reason(serde.serialize, [Decimal("100.00")])


def test_unwrapped_round_trips() -> None:
    keys = key_serde("AVRO", [("K", struct_of(("A", INT)))], {}, topic="t", source="S")
    assert keys.deserialize(keys.serialize([{"A": 1}])) == [{"A": 1}]
    assert keys.serialize([None]) is None
    values = value_serde("AVRO", [("V", array_of(STRING))], {"WRAP_SINGLE_VALUE": False}, "t")
    assert values.deserialize(values.serialize([["a", None]])) == [["a", None]]
    several = key_serde("AVRO", [("A", INT), ("B", STRING)], {}, topic="t", source="S")
    assert several.deserialize(several.serialize([1, "b"])) == [1, "b"]


# --- reading what other writers wrote ------------------------------------------------------


def test_reads_a_compatible_schema_by_its_id(registry: SchemaRegistryClient) -> None:
    """ksqlDB reads with the writer's schema: fields in any order, matched by name or
    upper-cased name, extra ones ignored, missing ones NULL, numbers widened, any primitive
    read as STRING, Avro maps and enums as ksqlDB's types."""
    writer = {
        "type": "record",
        "name": "Other",
        "namespace": "com.acme",
        "fields": [
            {"name": "extra", "type": "string"},
            {"name": "name", "type": {"type": "enum", "name": "Suit", "symbols": ["SPADES"]}},
            {"name": "id", "type": "int"},
            {"name": "score", "type": "float"},
            {"name": "tags", "type": {"type": "map", "values": "long"}},
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "price", "type": "double"},
            {"name": "flag", "type": "boolean"},
        ],
    }
    schema_id = register(registry, "elsewhere-value", writer)
    datum = {
        "extra": "x",
        "name": "SPADES",
        "id": 7,
        "score": 1.5,
        "tags": {"a": 1},
        "at": 1_600_000_000_000,
        "price": 2.5,
        "flag": True,
    }
    serde = value_serde(
        "AVRO",
        [
            ("ID", BIGINT),
            ("NAME", STRING),
            ("SCORE", DOUBLE),
            ("TAGS", map_of(BIGINT)),
            ("AT", TIMESTAMP),
            ("PRICE", STRING),
            ("FLAG", STRING),
            ("MISSING", INT),
        ],
        {},
        topic="t",
    )
    assert serde.deserialize(confluent_avro(schema_id, writer, datum)) == [
        7,
        "SPADES",
        1.5,
        {"a": 1},
        1_600_000_000_000,
        "2.5",
        "true",
        None,
    ]


def test_reads_an_unwrapped_primitive_with_coercion(registry: SchemaRegistryClient) -> None:
    schema_id = register(registry, "t-value", "int")
    serde = value_serde("AVRO", [("V", BIGINT)], {"WRAP_SINGLE_VALUE": False}, topic="t")
    assert serde.deserialize(confluent_avro(schema_id, "int", 12)) == [12]
    text = value_serde("AVRO", [("V", STRING)], {"WRAP_SINGLE_VALUE": False}, topic="t")
    assert text.deserialize(confluent_avro(schema_id, "int", 12)) == ["12"]


def test_reads_a_float_as_java_prints_it(registry: SchemaRegistryClient) -> None:
    schema_id = register(registry, "t-value", "float")
    serde = value_serde("AVRO", [("V", STRING)], {"WRAP_SINGLE_VALUE": False}, topic="t")
    assert serde.deserialize(confluent_avro(schema_id, "float", 1.1)) == ["1.1"]


# --- errors -------------------------------------------------------------------------------


def test_unknown_schema_id_is_the_record_s_fault() -> None:
    serde = value_serde("AVRO", [("V", INT)], {}, topic="t")
    assert reason(serde.deserialize, b"\x00\x00\x00\x00\x63\x02\x02") == (
        "Error retrieving AVRO value schema for id 99: Schema Not Found"
    )


def test_undecodable_records() -> None:
    serde = value_serde("AVRO", [("V", STRING)], {}, topic="t")
    assert reason(serde.deserialize, b"\x01\x00\x00\x00\x01").endswith("Unknown magic byte!")
    assert reason(serde.deserialize, b"\x00\x00").endswith("Unknown magic byte!")
    data = serde.serialize(["abc"])
    assert data is not None
    assert "Failed to deserialize AVRO data with schema id" in reason(serde.deserialize, data[:-1])


def test_a_writer_type_the_column_cannot_read(registry: SchemaRegistryClient) -> None:
    writer = {"type": "record", "name": "R", "fields": [{"name": "A", "type": "string"}]}
    schema_id = register(registry, "t-value", writer)
    serde = value_serde("AVRO", [("A", INT)], {}, topic="t")
    assert reason(serde.deserialize, confluent_avro(schema_id, writer, {"A": "x"})).endswith(
        "Cannot deserialize type string as type int32 for path: ->A"
    )
    # ksqlDB checks an array's elements only when there are some.
    arrays = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "A", "type": {"type": "array", "items": "string"}}],
    }
    array_id = register(registry, "u-value", arrays)
    serde = value_serde("AVRO", [("A", array_of(INT))], {}, topic="t")
    assert serde.deserialize(confluent_avro(array_id, arrays, {"A": []})) == [[]]
    assert reason(serde.deserialize, confluent_avro(array_id, arrays, {"A": ["x"]})).endswith(
        "for path: ->A->ARRAY"
    )


def test_a_serde_without_its_topic_reads_but_does_not_write() -> None:
    writer = value_serde("AVRO", [("V", INT)], {}, topic="t")
    reader = value_serde("AVRO", [("V", INT)], {})
    assert reader.deserialize(writer.serialize([5])) == [5]
    with pytest.raises(KsqlError, match="no Schema Registry subject"):
        reader.serialize([5])


def test_building_a_serde_needs_no_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable() -> Any:
        raise AssertionError("the registry was asked")

    formats.use_registry(unreachable)
    program = compile_sql(
        "CREATE STREAM S (K INT KEY, V STRING) WITH (kafka_topic='s', format='AVRO');"
        "CREATE STREAM O AS SELECT K, V FROM S;"
    )
    assert [c.name for c in program.catalog.get("O").columns] == ["K", "V"]


def test_an_unreachable_registry_is_not_the_record_s_fault() -> None:
    def unreachable() -> Any:
        raise ConnectionError("registry down")

    formats.use_registry(unreachable)
    serde = value_serde("AVRO", [("V", INT)], {}, topic="t")
    with pytest.raises(ConnectionError):
        serde.deserialize(b"\x00\x00\x00\x00\x01\x00")


def test_each_registry_has_its_own_ids(registry: SchemaRegistryClient) -> None:
    serde = value_serde("AVRO", [("V", INT)], {}, topic="t")
    register(registry, "other-value", "string")  # takes id 1 in this registry
    first = serde.serialize([1])
    fresh = SchemaRegistryClient.new_client({"url": "mock://another"})
    formats.use_registry(fresh)
    second = serde.serialize([1])
    assert first is not None and second is not None and first[1:5] != second[1:5]
    assert fresh.get_latest_version("t-value").schema_id == struct.unpack(">I", second[1:5])[0]


# --- writing with a schema the WITH clause names -------------------------------------------


def test_writes_with_the_schema_of_value_schema_id(registry: SchemaRegistryClient) -> None:
    writer = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "a", "type": "long"},
            {"name": "b", "type": "int", "default": 100},
            {"name": "c", "type": ["null", "string"], "default": None},
        ],
    }
    schema_id = register(registry, "t-value", writer)
    serde = value_serde("AVRO", [("A", BIGINT)], {"VALUE_SCHEMA_ID": schema_id}, topic="t")
    data = serde.serialize([5])
    assert data is not None and data[:5] == b"\x00" + struct.pack(">I", schema_id)
    assert fastavro.schemaless_reader(io.BytesIO(data[5:]), fastavro.parse_schema(writer)) == {
        "a": 5,
        "b": 100,
        "c": None,
    }
    assert registry.get_versions("t-value") == [1]  # nothing registered


# --- test records -------------------------------------------------------------------------


def test_test_records(registry: SchemaRegistryClient) -> None:
    """As ksqlDB's test runner: a test record is written with the subject's latest schema
    (numbers from their text, fields matched case-insensitively, decimals from numbers or
    text, bytes from base64), and read back as JSON (decimals as numbers, bytes base64)."""
    columns = [
        ("I", INT),
        ("D", dec(4, 1)),
        ("Y", BYTES),
        ("M", map_of(TIMESTAMP)),
        ("S", struct_of(("F", BIGINT))),
    ]
    serde = value_serde("AVRO", columns, {}, topic="t")
    data = serde.from_test({"i": "3", "D": "5.45", "y": "QQ==", "M": {"a": "1"}, "s": {"f": 2}})
    assert serde.deserialize(data) == [3, Decimal("5.5"), b"A", {"a": 1}, {"F": 2}]
    assert serde.to_test(data) == {"I": 3, "D": 5.5, "Y": "QQ==", "M": {"a": 1}, "S": {"F": 2}}
    assert serde.to_test(None) is None and serde.from_test(None) is None
    assert serde.normalize_test({"d": "005.5", "I": 3}) == {"D": 5.5, "I": 3}


def test_test_records_use_the_registered_schema(registry: SchemaRegistryClient) -> None:
    writer = {"name": "ignored", "type": "record", "fields": [{"name": "VAL", "type": "boolean"}]}
    schema_id = register(registry, "t-value", writer)
    serde = value_serde("AVRO", [("VAL", BOOLEAN)], {}, topic="t")
    data = serde.from_test({"VAL": "true"})
    assert data == b"\x00" + struct.pack(">I", schema_id) + b"\x01"
    assert serde.to_test(data) == {"VAL": True}
    assert serde.deserialize(data) == [True]


# --- columns from the registry -------------------------------------------------------------


def test_value_columns_from_the_latest_schema(registry: SchemaRegistryClient) -> None:
    register(registry, "t-value", {"type": "record", "name": "Old", "fields": []})
    register(
        registry,
        "t-value",
        {
            "type": "record",
            "name": "R",
            "fields": [
                {"name": "id", "type": "long"},
                {"name": "suit", "type": {"type": "enum", "name": "E", "symbols": ["A"]}},
                {"name": "f", "type": ["null", "float"]},
                {"name": "m", "type": {"type": "map", "values": "int"}},
                {
                    "name": "d",
                    "type": {"type": "bytes", "logicalType": "decimal", "precision": 5, "scale": 2},
                },
                {"name": "t", "type": {"type": "int", "logicalType": "date"}},
                {
                    "name": "s",
                    "type": {
                        "type": "record",
                        "name": "S",
                        "fields": [{"name": "inner", "type": {"type": "array", "items": "string"}}],
                    },
                },
            ],
        },
    )
    assert registry_columns("AVRO", "t", "value", {}) == [
        ("ID", BIGINT),
        ("SUIT", STRING),
        ("F", DOUBLE),
        ("M", map_of(INT)),
        ("D", dec(5, 2)),
        ("T", DATE),
        ("S", struct_of(("INNER", array_of(STRING)))),
    ]


def test_key_and_unwrapped_columns(registry: SchemaRegistryClient) -> None:
    register(
        registry,
        "t-key",
        {"type": "record", "name": "K", "fields": [{"name": "f1", "type": "string"}]},
    )
    register(registry, "t-value", "int")
    assert registry_columns("AVRO", "t", "key", {}) == [("ROWKEY", struct_of(("F1", STRING)))]
    unwrapped = {"WRAP_SINGLE_VALUE": "false"}
    assert registry_columns("AVRO", "t", "value", unwrapped) == [("ROWVAL", INT)]
    with pytest.raises(KsqlError, match="anonymous type"):
        registry_columns("AVRO", "t", "value", {})


def test_a_schema_id_picks_the_schema_and_keeps_its_names(
    registry: SchemaRegistryClient,
) -> None:
    chosen = register(
        registry,
        "x-value",
        {"type": "record", "name": "R", "fields": [{"name": "lower", "type": "int"}]},
    )
    register(registry, "t-value", "string")
    assert registry_columns("AVRO", "t", "value", {"VALUE_SCHEMA_ID": chosen}) == [("lower", INT)]


def test_columns_ksqldb_cannot_infer(registry: SchemaRegistryClient) -> None:
    with pytest.raises(KsqlError) as info:
        registry_columns("AVRO", "nowhere", "value", {})
    assert info.value.message.startswith(
        "Schema for message values on topic 'nowhere' does not exist in the Schema Registry."
        "\nSubject: nowhere-value\n"
    )
    registry.register_schema("j-value", Schema('{"type": "object"}', "JSON"))
    with pytest.raises(KsqlError, match="You may want to set VALUE_FORMAT to 'JSON'"):
        registry_columns("AVRO", "j", "value", {})
    register(
        registry,
        "u-value",
        {"type": "record", "name": "R", "fields": [{"name": "a", "type": ["int", "string"]}]},
    )
    with pytest.raises(KsqlError, match="Unsupported Avro union"):
        registry_columns("AVRO", "u", "value", {})


def test_a_source_without_columns_takes_the_registry_s(registry: SchemaRegistryClient) -> None:
    register(registry, "users-key", "long")
    register(
        registry,
        "users-value",
        {"type": "record", "name": "U", "fields": [{"name": "name", "type": "string"}]},
    )
    program = compile_sql("CREATE TABLE USERS WITH (kafka_topic='users', format='AVRO');")
    users = program.catalog.get("USERS")
    assert [(c.name, str(c.type), c.key) for c in users.columns] == [
        ("ROWKEY", "BIGINT", True),
        ("NAME", "STRING", False),
    ]
    with pytest.raises(KsqlError, match="does not define any columns"):
        compile_sql("CREATE STREAM S WITH (kafka_topic='s', value_format='JSON');")


# --- JSON_SR ------------------------------------------------------------------------------


def _optional(schema: dict[str, Any], index: int | None = None) -> dict[str, Any]:
    nullable = {"oneOf": [{"type": "null"}, schema]}
    return nullable if index is None else {"connect.index": index, **nullable}


def test_json_sr_schemas_are_ksqldb_s() -> None:
    serde = value_serde(
        "JSON_SR",
        [("I", INT), ("D", dec(6, 4)), ("TS", TIMESTAMP), ("M", map_of(BYTES))],
        {},
        topic="t",
    )
    assert json.loads(serde.schema.schema_str) == {
        "type": "object",
        "properties": {
            "I": _optional({"type": "integer", "connect.type": "int32"}, 0),
            "D": _optional(
                {
                    "type": "number",
                    "title": "org.apache.kafka.connect.data.Decimal",
                    "connect.version": 1,
                    "connect.type": "bytes",
                    "connect.parameters": {"scale": "4", "connect.decimal.precision": "6"},
                },
                1,
            ),
            "TS": _optional(
                {
                    "type": "integer",
                    "title": "org.apache.kafka.connect.data.Timestamp",
                    "connect.version": 1,
                    "connect.type": "int64",
                },
                2,
            ),
            "M": _optional(
                {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "key": _optional({"type": "string"}, 0),
                            "value": _optional({"type": "string", "connect.type": "bytes"}, 1),
                        },
                    },
                    "connect.type": "map",
                },
                3,
            ),
        },
    }
    assert serde.schema.schema_type == "JSON"
    # A single key column is unwrapped and, unlike AVRO's, nullable.
    key = key_serde("JSON_SR", [("K", INT)], {}, topic="t")
    assert json.loads(key.schema.schema_str) == _optional(
        {"type": "integer", "connect.type": "int32"}
    )


def test_json_sr_wire_bytes_and_round_trips(registry: SchemaRegistryClient) -> None:
    columns = [
        ("I", INT),
        ("D", dec(4, 2)),
        ("Y", BYTES),
        ("M", map_of(DOUBLE)),
        ("S", struct_of(("F", STRING), ("A", array_of(BIGINT)))),
    ]
    serde = value_serde("JSON_SR", columns, {}, topic="t")
    row = [1, Decimal("1.50"), b"\x01", {"a": 1.5, "b": None}, {"F": None, "A": [2, None]}]
    data = serde.serialize(row)
    schema_id = registry.get_latest_version("t-value").schema_id
    assert data == b"\x00" + struct.pack(">I", schema_id) + (
        b'{"I":1,"D":1.50,"Y":"AQ==","M":[{"key":"a","value":1.5},{"key":"b","value":null}],'
        b'"S":{"F":null,"A":[2,null]}}'
    )
    assert serde.deserialize(data) == row
    keys = key_serde("JSON_SR", [("K", STRING)], {}, topic="t")
    assert keys.deserialize(keys.serialize(["k"])) == ["k"]


def test_json_sr_reads_another_writer_s_schema(registry: SchemaRegistryClient) -> None:
    writer = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "connect.index": 1},
            "id": {"type": "integer", "connect.index": 0},
            "tags": {
                "type": "object",
                "additionalProperties": {"type": "number"},
                "connect.type": "map",
            },
        },
    }
    schema_id = registry.register_schema("other-value", Schema(json.dumps(writer), "JSON"))
    payload = b'{"id": 7, "name": "x", "tags": {"a": 2}, "extra": true}'
    data = b"\x00" + struct.pack(">I", schema_id) + payload
    serde = value_serde(
        "JSON_SR", [("ID", BIGINT), ("NAME", STRING), ("TAGS", map_of(DOUBLE))], {}, topic="t"
    )
    assert serde.deserialize(data) == [7, "x", {"a": 2.0}]
    assert serde.to_test(data) == {"id": 7, "name": "x", "tags": {"a": 2.0}}
    wrong = value_serde("JSON_SR", [("ID", STRING), ("NAME", INT)], {}, topic="t")
    assert reason(wrong.deserialize, data).endswith(
        "Cannot deserialize type string as type int32 for path: ->NAME"
    )


def test_json_sr_columns_from_the_registry(registry: SchemaRegistryClient) -> None:
    writer = {
        "type": "object",
        "properties": {
            "b": {"type": "integer", "connect.index": 1, "connect.type": "int32"},
            "a": {"oneOf": [{"type": "null"}, {"type": "number"}], "connect.index": 0},
            "c": {"type": "array", "items": {"type": "string"}, "connect.index": 2},
        },
    }
    registry.register_schema("j-value", Schema(json.dumps(writer), "JSON"))
    registry.register_schema("j-key", Schema('{"type": "integer"}', "JSON"))
    assert registry_columns("JSON_SR", "j", "value", {}) == [
        ("A", DOUBLE),
        ("B", INT),
        ("C", array_of(STRING)),
    ]
    assert registry_columns("JSON_SR", "j", "key", {}) == [("ROWKEY", BIGINT)]
    with pytest.raises(KsqlError, match="You may want to set VALUE_FORMAT to 'JSON'"):
        registry_columns("AVRO", "j", "value", {})


def test_json_sr_test_records(registry: SchemaRegistryClient) -> None:
    serde = value_serde("JSON_SR", [("V", dec(4, 1)), ("T", TIME)], {}, topic="t")
    data = serde.from_test({"v": "5.45", "t": 10})
    assert data is not None and data.endswith(b'{"V":5.5,"T":10}')
    assert serde.to_test(data) == {"V": 5.5, "T": 10}
