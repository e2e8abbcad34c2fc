"""streams.ksql.formats: ksqlDB's key and value formats, byte for byte, and the test-case
representation of records (../shared/ksql-qtt)."""

from __future__ import annotations

import json
import math
import re
import struct
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from streams.ksql import formats
from streams.ksql.ast import SqlType
from streams.ksql.errors import KsqlError, Unsupported
from streams.ksql.formats import SerdeError, key_serde, value_serde

T = SqlType
INT, BIGINT, DOUBLE, STRING = T("INTEGER"), T("BIGINT"), T("DOUBLE"), T("STRING")
BOOLEAN, BYTES = T("BOOLEAN"), T("BYTES")


def dec(precision: int, scale: int) -> SqlType:
    return T("DECIMAL", precision, scale)


def reason(call: Any, *args: Any) -> str:
    with pytest.raises(SerdeError) as info:
        call(*args)
    return info.value.reason


def ksql_error(call: Any, *args: Any) -> str:
    with pytest.raises(KsqlError) as info:
        call(*args)
    return info.value.message


# --- KAFKA ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql_type", "value", "data"),
    [
        (INT, 1, b"\x00\x00\x00\x01"),
        (INT, -2, b"\xff\xff\xff\xfe"),
        (BIGINT, 2, b"\x00" * 7 + b"\x02"),
        (BIGINT, -(2**63), b"\x80" + b"\x00" * 7),
        (DOUBLE, 1.5, struct.pack(">d", 1.5)),
        (STRING, "héllo", "héllo".encode()),
        (STRING, "", b""),
        (BYTES, b"\x00\xff", b"\x00\xff"),
    ],
)
def test_kafka_bytes(sql_type: SqlType, value: Any, data: bytes) -> None:
    for serde in (
        key_serde("KAFKA", [("K", sql_type)], {}),
        value_serde("KAFKA", [("V", sql_type)], {}),
    ):
        assert serde.serialize([value]) == data
        assert serde.deserialize(data) == [value]


def test_kafka_nulls_and_sizes() -> None:
    serde = key_serde("KAFKA", [("K", INT)], {})
    assert serde.serialize(None) is None
    assert serde.serialize([None]) is None  # a null value is a null record
    assert serde.deserialize(None) is None
    assert (
        reason(serde.deserialize, b"\x00\x01")
        == "Size of data received by IntegerDeserializer is not 4"
    )
    assert "not 8" in reason(key_serde("KAFKA", [("K", BIGINT)], {}).deserialize, b"\x00")
    assert "DoubleDeserializer" in reason(key_serde("KAFKA", [("K", DOUBLE)], {}).deserialize, b"")
    assert "INTEGER" in reason(serde.serialize, [2**31])


def test_kafka_test_representation() -> None:
    ints = key_serde("KAFKA", [("K", INT)], {})
    assert ints.from_test(0) == b"\x00\x00\x00\x00"
    assert ints.to_test(ints.from_test(7)) == 7
    doubles = value_serde("KAFKA", [("V", DOUBLE)], {})
    assert doubles.from_test(1) == struct.pack(">d", 1.0)  # the runner coerces JSON numbers
    strings = key_serde("KAFKA", [("K", STRING)], {})
    assert strings.to_test(strings.from_test("0")) == "0"
    assert strings.from_test(None) is None
    assert value_serde("KAFKA", [("V", BYTES)], {}).to_test(b"abc") == "abc"
    with pytest.raises(SerdeError):
        ints.from_test("1")


@pytest.mark.parametrize("type_name", ["BOOLEAN", "TIMESTAMP", "DATE", "TIME"])
def test_kafka_unsupported_types(type_name: str) -> None:
    message = ksql_error(key_serde, "KAFKA", [("K", T(type_name))], {})  # type: ignore[arg-type]
    assert message == (
        "Key format does not support schema.\nformat: KAFKA\nschema: Persistence{columns=[`K` "
        f"{type_name} KEY], features=[]}}\nreason: The 'KAFKA' format does not support type "
        f"'{type_name}'"
    )


def test_kafka_schema_errors_are_ksqldbs() -> None:
    # kafka.json, key-schemas.json, group-by.json and partition-by.json expectedException texts
    assert "reason: The 'KAFKA' format does not support type 'DECIMAL'" in ksql_error(
        key_serde, "KAFKA", [("K", dec(21, 19))], {}
    )
    assert "schema: Persistence{columns=[`K` DECIMAL(21, 19) KEY]" in ksql_error(
        key_serde, "KAFKA", [("K", dec(21, 19))], {}
    )
    assert ksql_error(key_serde, "KAFKA", [("ID", INT), ("AGE", INT)], {}) == (
        "Key format does not support schema.\nformat: KAFKA\nschema: Persistence{columns=[`ID` "
        "INTEGER KEY, `AGE` INTEGER KEY], features=[]}\nreason: The 'KAFKA' format only supports "
        "a single field. Got: [`ID` INTEGER KEY, `AGE` INTEGER KEY]"
    )
    for name, sql_type in (
        ("ARRAY", T("ARRAY", element=INT)),
        ("STRUCT", T("STRUCT", fields=(("F1", DOUBLE),))),
        ("MAP", T("MAP", key=INT, element=DOUBLE)),
    ):
        message = ksql_error(value_serde, "KAFKA", [("FOO", sql_type)], {})
        assert f"The 'KAFKA' format does not support type '{name}'" in message
    assert "`A` INTEGER, `B` INTEGER]" in ksql_error(
        value_serde, "KAFKA", [("A", INT), ("B", INT)], {}
    )
    assert ksql_error(value_serde, "KAFKA", [("FOO", INT)], {"WRAP_SINGLE_VALUE": True}) == (
        "Format 'KAFKA' does not support 'WRAP_SINGLE_VALUE' set to 'true'."
    )
    assert value_serde("KAFKA", [("FOO", INT)], {"WRAP_SINGLE_VALUE": False}).serialize([1])


def test_map_keys_are_rejected_for_every_key_format() -> None:
    nested = T("ARRAY", element=T("MAP", key=INT, element=DOUBLE))
    for fmt in ("KAFKA", "JSON", "DELIMITED"):
        assert ksql_error(key_serde, fmt, [("K", nested)], {}) == (
            "Map keys, including types that contain maps, are not supported as they may lead to "
            "unexpected behavior due to inconsistent serialization. Key column name: `K`. Column "
            "type: ARRAY<MAP<INTEGER, DOUBLE>>. See https://github.com/confluentinc/ksql/issues/"
            "6621 for more."
        )


# --- JSON -------------------------------------------------------------------------------------


def test_json_value_is_an_object_of_the_columns() -> None:
    serde = value_serde("JSON", [("ID", BIGINT), ("NAME", STRING), ("ok", BOOLEAN)], {})
    data = serde.serialize([1, "a", None])
    assert data == b'{"ID":1,"NAME":"a","ok":null}'
    assert serde.deserialize(data) == [1, "a", None]
    # Names match exactly, else upper-cased: `ok` (quoted) needs its own case.
    assert serde.deserialize(b'{"id":2,"Name":"b","OK":true}') == [2, "b", None]
    assert serde.deserialize(b'{"ok":false}') == [None, None, False]
    assert serde.deserialize(b"null") is None
    assert serde.deserialize(None) is None
    assert serde.serialize(None) is None


def test_json_single_values() -> None:
    wrapped = value_serde("JSON", [("V", INT)], {})
    assert wrapped.serialize([1]) == b'{"V":1}'
    unwrapped = value_serde("JSON", [("V", INT)], {"WRAP_SINGLE_VALUE": "false"})
    assert unwrapped.serialize([1]) == b"1"
    assert unwrapped.serialize([None]) is None
    assert unwrapped.deserialize(b"10") == [10]
    assert unwrapped.deserialize(b"null") == [None]
    explicit = value_serde("JSON", [("V", INT)], {"WRAP_SINGLE_VALUE": True})
    assert explicit.serialize([1]) == b'{"V":1}'
    assert ksql_error(
        value_serde, "JSON", [("A", INT), ("B", INT)], {"WRAP_SINGLE_VALUE": False}
    ) == ("'WRAP_SINGLE_VALUE' is only valid for single-field value schemas")


def test_json_keys() -> None:
    single = key_serde("JSON", [("K", STRUCT_F)], {})
    assert single.serialize([{"F": 45.67}]) == b'{"F":45.67}'
    assert single.deserialize(b'{"f": 45.67}') == [{"F": 45.67}]
    multi = key_serde("JSON", [("K1", STRING), ("K2", INT)], {})
    assert multi.serialize(["foo", 1]) == b'{"K1":"foo","K2":1}'
    assert multi.deserialize(b'{"k1":"foo","K2":"2"}') == ["foo", 2]
    assert key_serde("JSON", [("K", BOOLEAN)], {}).serialize([True]) == b"true"


STRUCT_F = T("STRUCT", fields=(("F", DOUBLE),))


@pytest.mark.parametrize(
    ("sql_type", "text", "value"),
    [
        (INT, b'"302"', 302),
        (INT, b"1.9", 1),  # Jackson's intValue() truncates
        (INT, b"4294967297", 1),  # ... and narrows
        (BIGINT, b'"-12"', -12),
        (BIGINT, b"1e3", 1000),
        (DOUBLE, b"1", 1.0),
        (DOUBLE, b'"1.5"', 1.5),
        (DOUBLE, b'" 2.5d "', 2.5),  # Double.parseDouble trims and takes a suffix
        (DOUBLE, b'"NaN"', math.nan),
        (DOUBLE, b'"-Infinity"', -math.inf),
        (STRING, b"1", "1"),
        (STRING, b"1.5", "1.5"),
        (STRING, b"true", "true"),
        (STRING, b'{"a": 1}', '{"a":1}'),
        (STRING, b'[1, "x", null]', "[1, x, null]"),
        (dec(4, 2), b"10.1", Decimal("10.10")),
        (dec(4, 2), b'"10.1"', Decimal("10.10")),
        (dec(4, 2), b"7", Decimal("7.00")),
        (
            dec(33, 16),
            b"12345678987654321.2345678987654321",
            Decimal("12345678987654321.2345678987654321"),
        ),
        (BYTES, b'"dmFsdWU="', b"value"),
        (BYTES, b'"dmFsdWU"', b"value"),  # Java's decoder takes it unpadded
        (T("TIMESTAMP"), b'"1581323504000"', 1581323504000),
        (T("DATE"), b"18000", 18000),
        (T("TIME"), b"3600000", 3600000),
        (T("ARRAY", element=STRING), b"[1, 2, 3]", ["1", "2", "3"]),
        (T("MAP", key=STRING, element=INT), b'{"a": "1", "b": null}', {"a": 1, "b": None}),
        (STRUCT_F, b'{"f": 1}', {"F": 1.0}),
        (STRUCT_F, b"{}", {"F": None}),
    ],
)
def test_json_coercions(sql_type: SqlType, text: bytes, value: Any) -> None:
    got = value_serde("JSON", [("V", sql_type)], {"WRAP_SINGLE_VALUE": False}).deserialize(text)
    assert got is not None
    if isinstance(value, float) and math.isnan(value):
        assert math.isnan(got[0])
    else:
        assert got == [value]
        assert type(got[0]) is type(value)


@pytest.mark.parametrize(
    ("sql_type", "text", "message"),
    [
        (
            BOOLEAN,
            b'"true"',
            "Can't convert type. sourceType: TextNode, requiredType: BOOLEAN, path: $",
        ),
        (INT, b'"abc"', "Can't coerce string to type. targetType: INTEGER, path: $"),
        (INT, b'"2147483648"', "Can't coerce string to type. targetType: INTEGER, path: $"),
        (
            INT,
            b"true",
            "Can't convert type. sourceType: BooleanNode, requiredType: INTEGER, path: $",
        ),
        (INT, b"[1]", "Can't convert type. sourceType: ArrayNode, requiredType: INTEGER, path: $"),
        (DOUBLE, b'"1_000"', "Can't coerce string to type. targetType: DOUBLE, path: $"),
        (
            T("ARRAY", element=INT),
            b'[1, "x"]',
            "Can't coerce string to type. targetType: INTEGER, path: $[1]",
        ),
        (
            T("MAP", key=STRING, element=INT),
            b'{"k": "x"}',
            "Can't coerce string to type. targetType: INTEGER, path: $.k.value",
        ),
        (
            STRUCT_F,
            b'{"F": true}',
            "Can't convert type. sourceType: BooleanNode, requiredType: DOUBLE, path: $.F",
        ),
        (
            STRUCT_F,
            b"1",
            "Can't convert type. sourceType: IntNode, requiredType: STRUCT<`F` DOUBLE>, path: $",
        ),
        (
            dec(4, 2),
            b"1.234",
            "Cannot fit decimal '1.234' into DECIMAL(4, 2) without rounding. (Requires 4,3), "
            "path: $",
        ),
        (
            dec(4, 2),
            b"100",
            "Numeric field overflow: A field with precision 4 and scale 2 must round to an "
            "absolute value less than 10^2. Got 100, path: $",
        ),
        (BYTES, b'"***"', "Value is not a valid Base64 encoded string: ***, path: $"),
        (BYTES, b"1", "Can't convert type. sourceType: IntNode, requiredType: BYTES, path: $"),
        (
            T("TIME"),
            b"-1",
            "Time values must use number of milliseconds greater than 0 and less than 86400000., "
            "path: $",
        ),
    ],
)
def test_json_errors(sql_type: SqlType, text: bytes, message: str) -> None:
    serde = value_serde("JSON", [("V", sql_type)], {"WRAP_SINGLE_VALUE": False})
    assert reason(serde.deserialize, text) == message


def test_json_errors_name_the_column_and_reject_bad_json() -> None:
    serde = value_serde("JSON", [("ID", INT), ("S", STRUCT_F)], {})
    assert reason(serde.deserialize, b'{"ID": 1, "s": {"f": "x"}}') == (
        "Can't coerce string to type. targetType: DOUBLE, path: $.S.F"
    )
    assert reason(serde.deserialize, b"[1]").startswith(
        "Can't convert type. sourceType: ArrayNode, requiredType: STRUCT<`ID` INTEGER, `S` "
    )
    assert reason(serde.deserialize, b"{nope").startswith("Failed to deserialize JSON")
    assert reason(serde.deserialize, b"NaN").startswith("Failed to deserialize JSON")
    exact = value_serde("JSON", [("D", dec(20, 2))], {})  # the exact parser
    assert reason(exact.deserialize, b'{"D": NaN}').startswith("Failed to deserialize JSON")
    assert exact.deserialize(b'{"D": 123456789012345678.5}') == [Decimal("123456789012345678.50")]
    assert "Column count mismatch" in reason(serde.serialize, [1])


def test_json_writes_as_connect_does() -> None:
    columns = [
        ("D", dec(6, 4)),
        ("X", DOUBLE),
        ("Y", DOUBLE),
        ("B", BYTES),
        ("S", T("STRUCT", fields=(("Z", dec(3, 1)), ("A", INT)))),
        ("L", T("ARRAY", element=DOUBLE)),
        ("M", T("MAP", key=STRING, element=dec(2, 1))),
        ("TS", T("TIMESTAMP")),
    ]
    serde = value_serde("JSON", columns, {})
    row = [
        Decimal("12.3650"),
        math.inf,
        2,
        b"value",
        {"A": 1},
        [math.nan, 1.5],
        {"k": Decimal("1.0")},
        1581323504000,
    ]
    data = serde.serialize(row)
    assert data == (
        b'{"D":12.3650,"X":"Infinity","Y":2.0,"B":"dmFsdWU=","S":{"Z":null,"A":1},'
        b'"L":["NaN",1.5],"M":{"k":1.0},"TS":1581323504000}'
    )
    assert serde.deserialize(data)[:4] == [Decimal("12.3650"), math.inf, 2.0, b"value"]
    assert reason(value_serde("JSON", [("I", BIGINT)], {}).serialize, [2**64]).startswith(
        "Can't write JSON"
    )


def test_json_test_representation() -> None:
    serde = value_serde(
        "JSON",
        [("V", dec(3, 2)), ("X", DOUBLE), ("s", T("STRUCT", fields=(("F", dec(2, 1)),)))],
        {},
    )
    assert serde.from_test({"V": 3.4, "X": 1}) == b'{"V":3.4,"X":1}'
    assert serde.from_test({"V": Decimal("3.40")}) == b'{"V":3.40}'
    assert serde.from_test(None) is None
    assert serde.from_test("text") == b'"text"'
    actual = serde.to_test(serde.serialize([Decimal("3.40"), math.nan, {"F": Decimal("1.0")}]))
    assert actual == {"V": 3.4, "X": "NaN", "s": {"F": 1.0}}
    # A DECIMAL in a test case may be a string; a name may be lower case (ksqlDB's comparator
    # accepts both).
    assert serde.normalize_test({"v": "3.40", "X": "NaN", "s": {"f": "1.0"}}) == actual
    assert serde.normalize_test(None) is None
    unwrapped = value_serde("JSON", [("V", dec(3, 2))], {"WRAP_SINGLE_VALUE": False})
    assert unwrapped.normalize_test("3.40") == 3.4


def test_json_map_keys_must_be_strings() -> None:
    message = ksql_error(value_serde, "JSON", [("FOO", T("MAP", key=INT, element=DOUBLE))], {})
    assert message.endswith("reason: JSON only supports MAP types with STRING keys")
    assert message.startswith("Value format does not support schema.\nformat: JSON\n")


# --- DELIMITED --------------------------------------------------------------------------------


def test_delimited_values() -> None:
    columns = [("ID", BIGINT), ("NAME", STRING), ("VALUE", INT)]
    serde = value_serde("DELIMITED", columns, {})
    assert serde.serialize([0, "zero", 0]) == b"0,zero,0"
    assert serde.deserialize(b"0,zero,0") == [0, "zero", 0]
    assert serde.deserialize(b",,") == [None, None, None]  # an empty field is NULL, even a STRING
    assert serde.deserialize(b'"",x,""') == [None, "x", None]
    assert serde.serialize([None, None, None]) == b",,"
    assert serde.serialize([None, "", None]) == b",,"
    assert serde.deserialize(None) is None
    assert serde.serialize(None) is None
    assert reason(serde.deserialize, b"1,2") == (
        "Column count mismatch on deserialization. expected: 3, got: 2"
    )
    assert reason(serde.deserialize, b"x,a,1") == (
        "Error deserializing delimited: `ID`: Can't coerce string to type. targetType: BIGINT"
    )
    assert reason(serde.deserialize, b"") == "No fields in record"


@pytest.mark.parametrize(
    ("values", "text"),
    [
        (["-1", "a", "1"], '"-1",a,1'),  # the first field quoted unless it starts alphanumeric
        (["a", "-1", "#"], 'a,-1,"#"'),  # any field starting with a character up to '#'
        (["", "", ""], '"",,'),  # an empty first field is quoted
        (["a b ", "x,y", 'say "hi"'], '"a b ","x,y","say ""hi"""'),
        (["é", "é", "line\nbreak"], '"é",é,"line\nbreak"'),
        ([" \t with white space \t", "s", "\t wit"], '" \t with white space \t",s,"\t wit"'),
    ],
)
def test_delimited_quoting_is_commons_csv_14(values: list[str], text: str) -> None:
    serde = value_serde("DELIMITED", [("A", STRING), ("B", STRING), ("C", STRING)], {})
    assert serde.serialize(values) == text.encode()
    assert serde.deserialize(text.encode()) == [v or None for v in values]


def test_delimited_reading() -> None:
    serde = value_serde("DELIMITED", [("A", STRING), ("B", STRING)], {})
    assert serde.deserialize(b'"a""b" , c') == ['a"b', " c"]  # blanks after quotes are skipped
    assert serde.deserialize(b'a"b,c"') == ['a"b', 'c"']  # a quote inside a field is literal
    assert serde.deserialize(b"\n\r\nx,y\nz,w") == ["x", "y"]  # the first record
    assert serde.deserialize(b'"x\ny",z') == ["x\ny", "z"]
    assert reason(serde.deserialize, b'"x"y,z') == (
        "invalid char between encapsulated token and delimiter"
    )
    assert reason(serde.deserialize, b'"x,z') == "EOF reached before encapsulated token finished"
    assert reason(serde.deserialize, b"\n") == "No fields in record"


@pytest.mark.parametrize(
    ("sql_type", "value", "text"),
    [
        (BOOLEAN, True, "true"),
        (INT, -2147483648, "-2147483648"),
        (BIGINT, 998877665544332211, "998877665544332211"),
        (DOUBLE, 654.321, "654.321"),
        (DOUBLE, 1.0, "1.0"),
        (DOUBLE, 1e7, "1.0E7"),
        (DOUBLE, 0.0001, "1.0E-4"),
        (DOUBLE, 5e-324, "4.9E-324"),
        (DOUBLE, -1.7976931348623157e308, "-1.7976931348623157E308"),
        (DOUBLE, 2.2250738585072014e-308, "2.2250738585072014E-308"),
        (DOUBLE, math.nan, "NaN"),
        (DOUBLE, -0.0, "-0.0"),
        (dec(6, 4), Decimal("12.3650"), "12.3650"),
        (dec(33, 16), Decimal("0E-16"), "0.0000000000000000"),
        (dec(9, 8), Decimal("1E-8"), "0.00000001"),
        (BYTES, b"value", "dmFsdWU="),
        (T("TIMESTAMP"), 1581323504000, "1581323504000"),
        (T("DATE"), 18000, "18000"),
        (T("TIME"), 1000, "1000"),
    ],
)
def test_delimited_types(sql_type: SqlType, value: Any, text: str) -> None:
    serde = value_serde("DELIMITED", [("K", STRING), ("V", sql_type)], {})
    data = serde.serialize(["k", value])
    assert data == f"k,{text}".encode()
    got = serde.deserialize(data)
    assert got is not None
    if isinstance(value, float) and math.isnan(value):
        assert math.isnan(got[1])
    else:
        assert got == ["k", value]


def test_delimited_parsing_is_javas() -> None:
    def read(sql_type: SqlType, text: str) -> Any:
        row = key_serde("DELIMITED", [("K", sql_type)], {}).deserialize(text.encode())
        assert row is not None
        return row[0]

    assert read(BOOLEAN, "TRUE") is True
    assert read(BOOLEAN, "yes") is False  # Boolean.parseBoolean
    assert read(INT, '"22"') == 22
    assert read(DOUBLE, "1e3") == 1000.0
    assert read(dec(33, 16), ".12") == Decimal("0.1200000000000000")
    assert read(dec(6, 4), '"12.0"') == Decimal("12.0000")
    assert "DECIMAL(4, 2) without rounding" in reason(
        key_serde("DELIMITED", [("K", dec(4, 2))], {}).deserialize, b"1.234"
    )
    assert "targetType: INTEGER" in reason(
        key_serde("DELIMITED", [("K", INT)], {}).deserialize, b" 1"
    )


def test_delimiters() -> None:
    columns = [("A", STRING), ("B", INT)]
    assert value_serde("DELIMITED", columns, {"VALUE_DELIMITER": "|"}).serialize(["a", 1]) == b"a|1"
    assert value_serde("DELIMITED", columns, {"VALUE_DELIMITER": "TAB"}).deserialize(b"a\t1") == [
        "a",
        1,
    ]
    space = value_serde("DELIMITED", columns, {"VALUE_DELIMITER": "SPACE"})
    assert space.serialize(["a b", 1]) == b'"a b" 1'
    assert space.deserialize(b'"a b" 1') == ["a b", 1]
    keys = key_serde(
        "DELIMITED",
        [("K1", STRING), ("K2", STRING)],
        {"KEY_DELIMITER": ";", "VALUE_DELIMITER": "-"},
    )
    assert keys.deserialize(b"foo,bar;baz") == ["foo,bar", "baz"]
    assert ksql_error(value_serde, "DELIMITED", columns, {"VALUE_DELIMITER": "<~>"}) == (
        "Failed to prepare statement: Configuration VALUE_DELIMITER is invalid: Invalid delimiter "
        "value: '<~>'. Delimiter must be a single character or TAB,SPACE\nExample valid value: ';'"
    )
    for blank in ("", " ", "\t"):
        assert ksql_error(value_serde, "DELIMITED", [], {"VALUE_DELIMITER": blank}) == (
            "Failed to prepare statement: Configuration VALUE_DELIMITER is invalid: Delimiter "
            "cannot be empty, if you meant to have a tab or space for delimiter, please use the "
            "special values 'TAB' or 'SPACE'\nExample valid value: ';'"
        )
    # Checked before the schema: ksqlDB says so for a statement without columns.
    assert ksql_error(value_serde, "JSON", [], {"VALUE_DELIMITER": "|"}) == (
        "JSON does not support the following configs: [delimiter]"
    )
    assert ksql_error(key_serde, "KAFKA", [("K", INT)], {"KEY_DELIMITER": "|"}) == (
        "KAFKA does not support the following configs: [delimiter]"
    )


def test_delimited_schema_errors() -> None:
    assert ksql_error(key_serde, "DELIMITED", [("K", T("ARRAY", element=DOUBLE))], {}) == (
        "Key format does not support schema.\nformat: DELIMITED\nschema: Persistence{columns=[`K` "
        "ARRAY<DOUBLE> KEY], features=[]}\nreason: The 'DELIMITED' format does not support type "
        "'ARRAY', column: `K`"
    )
    assert "schema: Persistence{columns=[`K` STRUCT<`F` DOUBLE> KEY], features=[]}" in ksql_error(
        key_serde, "DELIMITED", [("K", STRUCT_F)], {}
    )
    assert "The 'DELIMITED' format does not support type 'MAP'" in ksql_error(
        value_serde, "DELIMITED", [("FOO", T("MAP", key=INT, element=DOUBLE))], {}
    )
    assert ksql_error(value_serde, "DELIMITED", [("FOO", INT)], {"WRAP_SINGLE_VALUE": "true"}) == (
        "Format 'DELIMITED' does not support 'WRAP_SINGLE_VALUE' set to 'true'."
    )


def test_delimited_test_representation() -> None:
    serde = value_serde("DELIMITED", [("A", INT)], {})
    assert serde.from_test("1") == b"1"
    assert serde.to_test(b"1") == "1"
    assert serde.from_test(None) is None and serde.to_test(None) is None
    assert serde.normalize_test("1") == "1"
    with pytest.raises(SerdeError):
        serde.from_test({"A": 1})


# --- NONE, formats and properties --------------------------------------------------------------


def test_no_columns() -> None:
    for fmt in ("KAFKA", "JSON", "DELIMITED", "NONE"):
        keys = key_serde(fmt, [], {})
        assert keys.serialize([]) is None
        assert keys.deserialize(b"anything") == []
        assert keys.deserialize(None) is None
        assert keys.from_test("ignored") == b"ignored"
    assert value_serde("JSON", [], {}).serialize([]) == b"{}"
    assert value_serde("NONE", [], {}).deserialize(b"x") == []
    assert ksql_error(key_serde, "NONE", [("K", INT)], {}).endswith(
        "reason: The 'NONE' format can only be used when no columns are defined. Got: "
        "[`K` INTEGER KEY]"
    )


@pytest.mark.parametrize("fmt", ["protobuf", "PROTOBUF_NOSR"])
def test_protobuf_formats_are_not_run(fmt: str) -> None:
    with pytest.raises(Unsupported, match=f"format {fmt.upper()}"):
        value_serde(fmt, [("V", INT)], {})
    with pytest.raises(Unsupported):
        key_serde(fmt, [("K", INT)], {})


def test_resolve_formats() -> None:
    defaults = {"KEY_FORMAT": "KAFKA"}
    assert formats.resolve_formats({"VALUE_FORMAT": "json"}, defaults) == ("KAFKA", "JSON")
    assert formats.resolve_formats({"FORMAT": "Delimited"}, defaults) == ("DELIMITED", "DELIMITED")
    assert formats.resolve_formats(
        {"KEY_FORMAT": "JSON"}, {"KEY_FORMAT": "KAFKA", "VALUE_FORMAT": "AVRO"}
    ) == ("JSON", "AVRO")
    assert ksql_error(
        formats.resolve_formats, {"FORMAT": "JSON", "KEY_FORMAT": "KAFKA"}, defaults
    ) == (
        "Cannot supply both 'KEY_FORMAT' and 'FORMAT' properties, as 'FORMAT' sets both key and "
        "value formats. Either use just 'FORMAT', or use 'KEY_FORMAT' and 'VALUE_FORMAT'."
    )
    assert "'VALUE_FORMAT' and 'FORMAT'" in ksql_error(
        formats.resolve_formats, {"FORMAT": "JSON", "VALUE_FORMAT": "JSON"}, defaults
    )
    assert ksql_error(formats.resolve_formats, {}, defaults) == (
        "Statement is missing the 'VALUE_FORMAT' property from the WITH clause. Either provide one "
        "or set a default via the 'ksql.persistence.default.format.value' config."
    )
    assert "'KEY_FORMAT'" in ksql_error(formats.resolve_formats, {"VALUE_FORMAT": "JSON"}, {})
    assert (
        ksql_error(formats.resolve_formats, {"VALUE_FORMAT": "XML"}, defaults)
        == "Unknown format: XML"
    )


# --- windowed keys ----------------------------------------------------------------------------


def test_time_windowed_keys() -> None:
    serde = formats.windowed_key_serde(key_serde("KAFKA", [("K", INT)], {}), "time", 30_000)
    data = serde.serialize([10], 30_000, 60_000)
    assert data == b"\x00\x00\x00\x0a" + struct.pack(">q", 30_000)
    assert serde.deserialize(data) == ([10], 30_000, 60_000)
    assert serde.split(data) == (b"\x00\x00\x00\x0a", 30_000, 60_000)
    assert serde.split(b"\x01" + struct.pack(">q", 2**63 - 10))[2] == 2**63 - 1
    with pytest.raises(ValueError):
        formats.windowed_key_serde(key_serde("KAFKA", [("K", INT)], {}), "time", None)


def test_session_windowed_keys() -> None:
    serde = formats.windowed_key_serde(key_serde("JSON", [("A", dec(4, 2))], {}), "session", None)
    data = serde.serialize([Decimal("12.30")], 234, 765)
    assert data == b"12.30" + struct.pack(">qq", 765, 234)  # end, then start
    assert serde.deserialize(data) == ([Decimal("12.30")], 234, 765)
    assert "at least 16 bytes" in reason(serde.deserialize, b"\x00" * 15)
    assert reason(serde.deserialize, None) == "A session-windowed key has at least 16 bytes"
    assert reason(serde.serialize, None, 0, 0) == "A windowed key needs a non-null key"


# --- the corpus -------------------------------------------------------------------------------


def qtt_dir() -> Path:
    """As tests/conformance/qtt.py finds it: KSQL_QTT_DIR, or ../shared/ksql-qtt."""
    import os

    if os.environ.get("KSQL_QTT_DIR"):
        return Path(os.environ["KSQL_QTT_DIR"])
    return (Path(__file__).resolve().parents[2].parent / "shared" / "ksql-qtt").resolve()


_TYPE_NAMES = {"INT": "INTEGER", "VARCHAR": "STRING"}
_TOKEN = re.compile(r"\s*(`[^`]*`|\"[^\"]*\"|\w+|[<>(),])")


class _Tokens:
    def __init__(self, text: str) -> None:
        self.items = _TOKEN.findall(text)
        self.pos = 0

    def peek(self) -> str | None:
        return self.items[self.pos] if self.pos < len(self.items) else None

    def take(self) -> str:
        self.pos += 1
        return self.items[self.pos - 1]

    def name(self) -> str:
        token = self.take()
        return token[1:-1] if token[0] in '`"' else token.upper()

    def sql_type(self) -> SqlType:
        name = _TYPE_NAMES.get(self.take().upper(), "")
        name = name or self.items[self.pos - 1].upper()
        if name == "DECIMAL":
            self.take()
            precision = int(self.take())
            self.take()
            scale = int(self.take())
            self.take()
            return T("DECIMAL", precision, scale)
        if name == "STRING" and self.peek() == "(":  # VARCHAR(STRING)
            self.pos += 3
        if name == "ARRAY":
            self.take()
            element = self.sql_type()
            self.take()
            return T("ARRAY", element=element)
        if name == "MAP":
            self.take()
            key = self.sql_type()
            self.take()
            element = self.sql_type()
            self.take()
            return T("MAP", key=key, element=element)
        if name == "STRUCT":
            self.take()
            fields = []
            while self.peek() != ">":
                field = self.name()
                fields.append((field, self.sql_type()))
                if self.peek() == ",":
                    self.take()
            self.take()
            return T("STRUCT", fields=tuple(fields))
        return T(name)  # type: ignore[arg-type]


_CREATE = re.compile(
    r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:STREAM|TABLE)\s+(\w+|`[^`]+`)\s*(\((?P<cols>.*)\))?\s*"
    r"WITH\s*\((?P<with>.*?)\)\s*(?P<as>AS\s+SELECT.*)?;?\s*$",
    re.I | re.S,
)
_PROPERTY = re.compile(r"(\w+)\s*=\s*('(?:[^']|'')*'|[^,\s]+)")


def _properties(text: str) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for name, value in _PROPERTY.findall(text):
        props[name.upper()] = value[1:-1].replace("''", "'") if value.startswith("'") else value
    return props


def _columns(text: str) -> tuple[list[tuple[str, SqlType]], list[tuple[str, SqlType]]]:
    tokens = _Tokens(text)
    keys, values = [], []
    while tokens.peek() is not None:
        name = tokens.name()
        sql_type = tokens.sql_type()
        role = []
        while tokens.peek() not in (",", None):
            role.append(tokens.take().upper())
        if tokens.peek() == ",":
            tokens.take()
        (keys if "KEY" in role else values).append((name, sql_type))
    return keys, values


class _Source:
    """A CREATE statement's topic, schema and serdes (``like``: the schema of that source)."""

    def __init__(
        self, statement: str, defaults: dict[str, Any] | None = None, like: _Source | None = None
    ) -> None:
        match = _CREATE.match(statement.strip())
        if not match or match["as"]:
            raise LookupError(statement)
        self.properties = _properties(match["with"])
        self.keys, self.values = (like.keys, like.values) if like else _columns(match["cols"] or "")
        self.key_format, self.value_format = formats.resolve_formats(
            self.properties, defaults or {"KEY_FORMAT": "KAFKA"}
        )
        self.topic = self.properties.get("KAFKA_TOPIC", "")
        self.key = key_serde(self.key_format, self.keys, self.properties)
        self.value = value_serde(self.value_format, self.values, self.properties)


def _corpus_cases(*files: str) -> list[tuple[str, dict[str, Any]]]:
    cases = []
    for file in files:
        for raw in json.loads((qtt_dir() / f"{file}.json").read_text())["tests"]:
            if "expectedException" in raw:
                continue
            for fmt in raw.get("formats") or raw.get("format") or [None]:
                statements = [s.replace("{FORMAT}", fmt or "") for s in raw["statements"]]
                name = raw["name"] if fmt is None else f"{raw['name']} - {fmt}"
                cases.append((f"{file}::{name}", {**raw, "statements": statements}))
    return cases


CORPUS = _corpus_cases("json", "kafka", "delimited") if qtt_dir().is_dir() else []


@pytest.mark.skipif(not CORPUS, reason="../shared/ksql-qtt is not there")
@pytest.mark.parametrize(("case_id", "case"), CORPUS, ids=[c[0] for c in CORPUS])
def test_corpus_inputs_read(case_id: str, case: dict[str, Any]) -> None:
    """Every input record of json.json, kafka.json and delimited.json reads (ksqlDB accepted
    them all: each one has its output)."""
    sources = {}
    for statement in case["statements"]:
        try:
            source = _Source(statement)
        except (LookupError, Unsupported):
            continue  # a CREATE ... AS SELECT or a format that is not run
        sources[source.topic] = source
    inputs = [r for r in case.get("inputs", []) if r["topic"] in sources]
    assert inputs or not case.get("inputs"), case_id
    for record in inputs:
        source = sources[record["topic"]]
        if source.keys:
            source.key.deserialize(source.key.from_test(record.get("key")))
        source.value.deserialize(source.value.from_test(record.get("value")))


def _pass_through(case: dict[str, Any]) -> tuple[_Source, _Source] | None:
    """A case that copies its input: ``CREATE STREAM INPUT ...; CREATE STREAM OUTPUT [WITH
    (...)] AS SELECT * FROM INPUT;`` -- the sink's formats and schema are the source's, but for
    what its WITH changes (WRAP_SINGLE_VALUE is not inherited, delimiters are)."""
    if len(case["statements"]) != 2:
        return None
    sink = re.fullmatch(
        r"CREATE STREAM OUTPUT\s*(?:WITH\s*\((?P<with>[^)]*)\))?\s*AS SELECT \* FROM INPUT;",
        case["statements"][1].strip(),
        re.I,
    )
    if not sink:
        return None
    source = _Source(case["statements"][0])
    props = _properties(sink["with"] or "")
    formats_ = formats.resolve_formats(
        props, {"KEY_FORMAT": source.key_format, "VALUE_FORMAT": source.value_format}
    )
    # A delimiter goes with its format: inherited where the sink keeps the source's format.
    for part, fmt, source_fmt in zip(
        ("KEY", "VALUE"), formats_, (source.key_format, source.value_format), strict=True
    ):
        delimiter = source.properties.get(f"{part}_DELIMITER")
        if delimiter is not None and fmt == source_fmt:
            props.setdefault(f"{part}_DELIMITER", delimiter)
    with_text = ", ".join(f"{k}='{v}'" for k, v in props.items())
    output = _Source(
        f"CREATE STREAM OUTPUT WITH ({with_text});",
        {"KEY_FORMAT": source.key_format, "VALUE_FORMAT": source.value_format},
        like=source,
    )
    return source, output


PASS_THROUGH = [(i, c) for i, c in CORPUS if c.get("outputs") and _pass_through(c)]


@pytest.mark.skipif(not PASS_THROUGH, reason="../shared/ksql-qtt is not there")
@pytest.mark.parametrize(("case_id", "case"), PASS_THROUGH, ids=[c[0] for c in PASS_THROUGH])
def test_corpus_copies_write_what_ksqldb_writes(case_id: str, case: dict[str, Any]) -> None:
    """Read each input with the source's serdes and write it with the sink's: the records are
    the expected outputs (key and value), as the runner compares them."""
    source, output = _pass_through(case)  # type: ignore[misc]
    assert len(case["inputs"]) == len(case["outputs"]), case_id
    for record, expected in zip(case["inputs"], case["outputs"], strict=True):
        if source.keys:
            keys = source.key.deserialize(source.key.from_test(record.get("key")))
            got_key = output.key.to_test(output.key.serialize(keys))
            assert got_key == output.key.normalize_test(expected.get("key")), case_id
        values = source.value.deserialize(source.value.from_test(record.get("value")))
        got = output.value.to_test(output.value.serialize(values))
        assert got == output.value.normalize_test(expected.get("value")), case_id


def test_corpus_windows_are_what_the_serdes_say() -> None:
    """Every time-window in the corpus' outputs spans its size (end = start + size, what a
    reader of the 8-byte start computes); sessions carry both bounds."""
    if not qtt_dir().is_dir():
        pytest.skip("../shared/ksql-qtt is not there")
    sizes = {"MILLISECOND": 1, "SECOND": 1000, "MINUTE": 60_000, "HOUR": 3_600_000}
    checked = 0
    for file in ("tumbling-windows", "hopping-windows", "session-windows", "window-bounds"):
        for raw in json.loads((qtt_dir() / f"{file}.json").read_text())["tests"]:
            text = " ".join(raw["statements"])
            size = re.search(r"(?:TUMBLING|HOPPING)\s*\(\s*SIZE\s+(\d+)\s+(\w+)", text, re.I)
            inner = key_serde("KAFKA", [("K", BIGINT)], {})
            for record in raw.get("outputs", []):
                window = record.get("window")
                if not window:
                    continue
                if window["type"] == "time" and size:
                    size_ms = int(size[1]) * sizes[size[2].upper().rstrip("S")]
                    serde = formats.windowed_key_serde(inner, "time", size_ms)
                else:
                    serde = formats.windowed_key_serde(inner, "session", None)
                data = serde.serialize([1], window["start"], window["end"])
                assert serde.deserialize(data) == ([1], window["start"], window["end"]), raw["name"]
                checked += 1
    assert checked > 100
