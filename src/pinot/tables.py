"""The Pinot tables, one per windowed topic, and their configs.

Two families: the page-view tables on topics 5-8 and the clickstream tutorial's on its ksqlDB
sinks. Every table is a REALTIME *upsert* table whose primary key is the window's identity (for
the page views exactly the Kafka key ``"{group}|{window_start}"`` the processors write). Pinot
0.11 keeps upsert metadata per Kafka partition, so a primary key must always arrive on one
partition; it does, because the Kafka key is partitioned by the group. Each update of a window
therefore replaces the previous row and queries see one current count per (group, window)
instead of summing running counts.

The JSON files under the repository's ``pinot/configs/`` are the reviewed source of truth; this
module only fills in what differs per table and deployment (names, topic, time column, Kafka
broker list).
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from clients.settings import KafkaSettings, env, env_int
from contracts import topics

#: Pinot's own identifier rule is looser; this one also keeps table names safe to put in SQL.
_CONFIGS = Path(__file__).resolve().parent / "configs"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def checked_identifier(name: str) -> str:
    """Return ``name`` if it is a plain SQL identifier, else raise ``ValueError``.

    Table names are the only non-literal parts of the dashboard's SQL, so they are checked
    against this allow-list pattern rather than quoted.
    """
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not a valid table identifier (letters, digits, _)")
    return name


PAGEVIEWS = "pageviews"
CLICKSTREAM = "clickstream"
FAMILIES = (PAGEVIEWS, CLICKSTREAM)


@dataclass(frozen=True)
class TableSpec:
    """One windowed table: which topic feeds it and which columns identify its rows."""

    kind: str  #: short name used on the command line: country, tumbling, events_per_min, ...
    table: str
    topic: str
    group_column: str  #: the first primary-key column ("country", "source", "USERID", ...)
    family: str = PAGEVIEWS
    time_column: str = "window_start"  #: the table's time and upsert comparison column

    @property
    def schema_file(self) -> str:
        return f"schemas/{_FILE_PREFIX[self.family]}{self.kind}.json"

    def with_names(self, table: str | None = None, topic: str | None = None) -> TableSpec:
        return replace(
            self, table=checked_identifier(table or self.table), topic=topic or self.topic
        )


_FILE_PREFIX = {PAGEVIEWS: "pageview_", CLICKSTREAM: "clickstream_"}

#: Every table: (family, kind, source topic, first key column, time column). The page-view
#: tables read topics 5-8; the clickstream ones read the sinks of Confluent's clickstream
#: tutorial as ``streams.ksql run`` names them (ksqlDB's upper-case sink names). A ksqlDB
#: windowed sink's value holds its group and window start (EVENT_TS), which form the primary
#: key, and its key is partitioned by the group alone, so a key never spans partitions.
_DESCRIPTION: tuple[tuple[str, str, str, str, str], ...] = (
    (PAGEVIEWS, "country", topics.PAGEVIEWS_BY_COUNTRY, "country", "window_start"),
    (PAGEVIEWS, "tumbling", topics.TUMBLING, "source", "window_start"),
    (PAGEVIEWS, "hopping", topics.HOPPING, "source", "window_start"),
    (PAGEVIEWS, "session", topics.SESSION, "source", "window_start"),
    (CLICKSTREAM, "events_per_min", "EVENTS_PER_MIN", "USERID", "EVENT_TS"),
    (CLICKSTREAM, "pages_per_min", "PAGES_PER_MIN", "USERID", "EVENT_TS"),
    (CLICKSTREAM, "errors_per_min_alert", "ERRORS_PER_MIN_ALERT", "STATUS", "EVENT_TS"),
    (CLICKSTREAM, "errors_per_min", "ERRORS_PER_MIN", "STATUS", "EVENT_TS"),
    (CLICKSTREAM, "enriched_error_codes_count", "ENRICHED_ERROR_CODES_COUNT", "CODE", "EVENT_TS"),
    # Keyed by user alone: ksqlDB retracts a merged-away session with a tombstone, which Pinot
    # 0.11 cannot apply, so the table keeps each user's latest session (largest WINDOWEND).
    (CLICKSTREAM, "click_user_sessions", "CLICK_USER_SESSIONS", "USERNAME", "EVENT_TS"),
    (CLICKSTREAM, "user_ip_activity", "USER_IP_ACTIVITY", "USERNAME", "EVENT_TS"),
)


def default_tables(family: str | None = PAGEVIEWS) -> dict[str, TableSpec]:
    """One family's tables (every table for ``None``), by kind; names overridable by
    ``PINOT_TABLE_<KIND>`` (e.g. PINOT_TABLE_SESSION, PINOT_TABLE_EVENTS_PER_MIN)."""
    return {
        kind: TableSpec(
            kind=kind,
            table=checked_identifier(
                env(f"PINOT_TABLE_{kind.upper()}", f"{_FILE_PREFIX[fam]}{kind}")
            ),
            topic=topic,
            group_column=group,
            family=fam,
            time_column=time_column,
        )
        for fam, kind, topic, group, time_column in _DESCRIPTION
        if family is None or fam == family
    }


@cache
def _config_json(name: str) -> dict[str, Any]:
    # ``configs`` beside this module links to pinot/configs in a checkout; an installed wheel
    # (the image's) holds copies as package data.
    return json.loads((_CONFIGS / name).read_text(encoding="utf-8"))


def kafka_broker_list() -> str:
    """Where *Pinot's servers* reach Kafka: docker-compose's address differs from ours."""
    return env("PINOT_KAFKA_BROKER_LIST", KafkaSettings.from_env().bootstrap_servers)


def schema_config(spec: TableSpec) -> dict[str, Any]:
    """The Pinot schema for ``spec``; schema and table share one name, as Pinot expects."""
    schema = copy.deepcopy(_config_json(spec.schema_file))
    schema["schemaName"] = spec.table
    return schema


def table_config(
    spec: TableSpec,
    broker_list: str | None = None,
    replicas: int | None = None,
    retention_days: int | None = None,
) -> dict[str, Any]:
    """The REALTIME upsert table config for ``spec`` (read_committed Kafka consumption)."""
    config = copy.deepcopy(_config_json("realtime_table.json"))
    config["tableName"] = spec.table
    segments = config["segmentsConfig"]
    segments["schemaName"] = spec.table
    segments["timeColumnName"] = spec.time_column
    config["tableIndexConfig"]["rangeIndexColumns"] = [spec.time_column]
    config["upsertConfig"]["comparisonColumn"] = spec.time_column
    segments["replicasPerPartition"] = str(replicas or env_int("PINOT_REPLICAS", 1))
    segments["retentionTimeValue"] = str(retention_days or env_int("PINOT_RETENTION_DAYS", 7))
    stream = config["tableIndexConfig"]["streamConfigs"]
    stream["stream.kafka.topic.name"] = spec.topic
    stream["stream.kafka.broker.list"] = broker_list or kafka_broker_list()
    return config
