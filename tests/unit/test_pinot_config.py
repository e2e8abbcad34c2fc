"""The generated Pinot configs: upsert keyed by window identity, read_committed, 0.11 classes."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts import topics
from pinot.client import PinotController, PinotUnavailable
from pinot.setup import main, parse_args, selected_specs
from pinot.tables import CLICKSTREAM, default_tables, schema_config, table_config
from streams.ksql.compiler import compile_sql

SEED = Path(__file__).resolve().parents[2].parent / "shared" / "ksql-statements"

EXPECTED = {
    "country": ("pageview_country", topics.PAGEVIEWS_BY_COUNTRY, "country"),
    "tumbling": ("pageview_tumbling", topics.TUMBLING, "source"),
    "hopping": ("pageview_hopping", topics.HOPPING, "source"),
    "session": ("pageview_session", topics.SESSION, "source"),
}


@pytest.fixture(autouse=True)
def _default_names(monkeypatch: pytest.MonkeyPatch) -> None:
    for kind in default_tables(None):
        monkeypatch.delenv(f"PINOT_TABLE_{kind.upper()}", raising=False)
    for var in ("PINOT_KAFKA_BROKER_LIST", "PINOT_REPLICAS", "PINOT_RETENTION_DAYS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_table_is_an_upsert_table_on_its_topic(kind: str) -> None:
    table, topic, group = EXPECTED[kind]
    spec = default_tables()[kind]
    schema = schema_config(spec)
    config = table_config(spec)

    assert schema["schemaName"] == table == config["tableName"]
    # The primary key is the Kafka key "{group}|{window_start}", so upsert partitioning holds.
    assert schema["primaryKeyColumns"] == [group, "window_start"]
    assert schema["dateTimeFieldSpecs"][0]["name"] == "window_start"
    assert config["tableType"] == "REALTIME"
    assert config["segmentsConfig"]["timeColumnName"] == "window_start"
    assert config["segmentsConfig"]["retentionTimeValue"] == "7"
    assert config["upsertConfig"] == {"mode": "FULL", "comparisonColumn": "window_start"}
    assert config["routing"]["instanceSelectorType"] == "strictReplicaGroup"
    stream = config["tableIndexConfig"]["streamConfigs"]
    assert stream["stream.kafka.topic.name"] == topic
    assert stream["stream.kafka.broker.list"] == "127.0.0.1:9092"
    assert stream["stream.kafka.isolation.level"] == "read_committed"
    assert stream["stream.kafka.consumer.type"] == "lowlevel"
    assert (
        stream["stream.kafka.consumer.factory.class.name"]
        == "org.apache.pinot.plugin.stream.kafka20.KafkaConsumerFactory"
    )
    assert (
        stream["stream.kafka.decoder.class.name"]
        == "org.apache.pinot.plugin.inputformat.json.JSONMessageDecoder"
    )
    columns = {
        f["name"]
        for part in ("dimensionFieldSpecs", "metricFieldSpecs", "dateTimeFieldSpecs")
        for f in schema[part]
    }
    assert {group, "window_start", "window_end", "pageview_count"} <= columns


def test_session_and_country_carry_their_extra_columns() -> None:
    tables = default_tables()
    session_dims = {f["name"]: f for f in schema_config(tables["session"])["dimensionFieldSpecs"]}
    assert session_dims["deleted"]["dataType"] == "BOOLEAN"
    metrics = {f["name"]: f for f in schema_config(tables["country"])["metricFieldSpecs"]}
    assert metrics["average_age"] == {
        "name": "average_age",
        "dataType": "DOUBLE",
        "defaultNullValue": -1.0,
    }


def test_pinot_kafka_address_and_names_are_overridable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PINOT_KAFKA_BROKER_LIST", "kafka:29092")
    monkeypatch.setenv("PINOT_TABLE_SESSION", "my_sessions")
    spec = default_tables()["session"]
    assert spec.table == "my_sessions"
    assert table_config(spec)["tableIndexConfig"]["streamConfigs"]["stream.kafka.broker.list"] == (
        "kafka:29092"
    )
    args = parse_args(["--only", "tumbling", "--table", "tumbling=t1", "--topic", "tumbling=x1"])
    [only] = selected_specs(args)
    assert (only.table, only.topic, only.group_column) == ("t1", "x1", "source")
    with pytest.raises(ValueError, match="not a valid table identifier"):
        selected_specs(parse_args(["--table", "tumbling=bad name"]))


def test_unreachable_controller_is_a_clear_error(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(PinotUnavailable, match=r"controller at http://127.0.0.1:9 is unreachable"):
        PinotController("http://127.0.0.1:9").get_schema("x")
    assert main(["--controller", "http://127.0.0.1:9", "--only", "country"]) == 1
    assert "Pinot controller at http://127.0.0.1:9 is unreachable" in caplog.text


def columns_of(schema: dict) -> dict[str, str]:
    return {
        f["name"]: f["dataType"]
        for part in ("dimensionFieldSpecs", "metricFieldSpecs", "dateTimeFieldSpecs")
        for f in schema[part]
    }


def test_clickstream_tables_hold_the_tutorials_sinks_as_ksqldb_writes_them() -> None:
    """Each table reads one sink of the tutorial's statements, with the sink's value columns
    under their names and types, and is keyed by group and window start (EVENT_TS)."""
    program = compile_sql((SEED / "seed-002-clickstream.sql").read_text())
    sinks = {q.sink.topic: q.sink for q in program.queries.values()}
    pinot_type = {"INTEGER": "INT", "BIGINT": "LONG", "STRING": "STRING"}
    specs = default_tables(CLICKSTREAM)
    assert sorted(specs) == [
        "click_user_sessions",
        "enriched_error_codes_count",
        "errors_per_min",
        "errors_per_min_alert",
        "events_per_min",
        "pages_per_min",
        "user_ip_activity",
    ]
    assert {spec.topic for spec in specs.values()} == {
        topic for topic, sink in sinks.items() if sink.kind == "TABLE"
    }
    for kind, spec in specs.items():
        schema, config = schema_config(spec), table_config(spec)
        sink = sinks[spec.topic]
        assert schema["schemaName"] == config["tableName"] == f"clickstream_{kind}"
        assert columns_of(schema) == {
            c.name: pinot_type[str(c.type)] for c in sink.value_columns
        }, kind
        key = schema["primaryKeyColumns"]
        if kind == "click_user_sessions":
            # Tombstones of merged-away sessions never reach Pinot: one row per user.
            assert key == ["USERNAME"]
        else:
            assert key == [
                *(c.name for c in sink.value_columns[:-1] if c.name != "EVENT_TS"),
                "EVENT_TS",
            ]
        assert spec.group_column == key[0]
        assert config["segmentsConfig"]["timeColumnName"] == "EVENT_TS"
        assert config["upsertConfig"] == {"mode": "FULL", "comparisonColumn": "EVENT_TS"}
        assert config["tableIndexConfig"]["rangeIndexColumns"] == ["EVENT_TS"]


def test_setup_picks_a_family() -> None:
    assert [s.kind for s in selected_specs(parse_args([]))] == list(EXPECTED)
    clickstream = selected_specs(parse_args(["--family", "clickstream"]))
    assert {s.family for s in clickstream} == {CLICKSTREAM} and len(clickstream) == 7
    [one] = selected_specs(
        parse_args(["--only", "events_per_min", "--topic", "events_per_min=x-EVENTS_PER_MIN"])
    )
    assert (one.table, one.topic) == ("clickstream_events_per_min", "x-EVENTS_PER_MIN")
