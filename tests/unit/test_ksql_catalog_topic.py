"""What ``run`` writes to its catalog topic, and how SHOW and DESCRIBE lay it out (reading and
writing the topic itself: tests/integration/test_ksql_run.py)."""

from __future__ import annotations

from rich.console import Console

from streams.ksql import catalog_topic
from streams.ksql.compiler import compile_sql

SQL = """CREATE STREAM pv (id STRING KEY, source STRING)
  WITH (KAFKA_TOPIC='pv', VALUE_FORMAT='JSON', PARTITIONS=3);
CREATE TABLE per_source AS SELECT source, COUNT(*) AS n FROM pv
  WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY source;
"""


def text(table) -> str:
    console = Console(width=200, record=True)
    console.print(table)
    return console.export_text()


def test_sources_and_queries_with_their_statement_and_consumer_group() -> None:
    program = compile_sql(SQL)
    records = catalog_topic.entries(program, "prod", {"CTAS_PER_SOURCE_0": "CTAS_PER_SOURCE_0"})
    assert sorted(records) == ["query:CTAS_PER_SOURCE_0", "source:PER_SOURCE", "source:PV"]
    query = records["query:CTAS_PER_SOURCE_0"]
    assert query["group"] == "prod-CTAS_PER_SOURCE_0"
    assert query["statement"].startswith("CREATE TABLE per_source AS SELECT")
    assert (query["sink"], query["sink_topic"], query["sources"]) == (
        "PER_SOURCE",
        "PER_SOURCE",
        ["PV"],
    )
    pv = records["source:PV"]
    assert pv["columns"] == [
        {"name": "ID", "type": "STRING", "key": True},
        {"name": "SOURCE", "type": "STRING", "key": False},
    ]
    assert records["source:PER_SOURCE"]["window"] == "time"


def test_show_and_describe() -> None:
    records = catalog_topic.entries(
        compile_sql(SQL), "prod", {"CTAS_PER_SOURCE_0": "CTAS_PER_SOURCE_0"}
    )
    streams = text(catalog_topic.show("streams", records, {}, {}))
    assert "PV" in streams and "PER_SOURCE" not in streams
    tables = text(catalog_topic.show("tables", records, {}, {}))
    assert "PER_SOURCE" in tables and "true" in tables
    running = text(catalog_topic.show("queries", records, {"prod-CTAS_PER_SOURCE_0": 2}, {}))
    assert "CTAS_PER_SOURCE_0" in running and "RUNNING:2" in running
    stopped = text(catalog_topic.show("queries", records, {}, {}))
    assert "NOT RUNNING" in stopped
    topics = text(catalog_topic.show("topics", records, {}, {"pv": 3}))
    assert "pv" in topics and "3" in topics
    described = text(catalog_topic.describe("per_source", records))
    assert "SOURCE" in described and "STRING PRIMARY KEY" in described and "BIGINT" in described
    assert catalog_topic.describe("nope", records) is None
