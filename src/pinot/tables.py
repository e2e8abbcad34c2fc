"""The four Pinot tables, one per windowed topic, and their configs.

Every table is a REALTIME *upsert* table whose primary key is the window's identity, exactly the
Kafka key ``"{group}|{window_start}"`` the processors write. Pinot 0.11 keeps upsert metadata per
Kafka partition, so a primary key must always arrive on one partition; it does, because the key
*is* the primary key. Each update of a window therefore replaces the previous row and queries see
one current count per (group, window) instead of summing running counts.

The JSON files under the repository's ``pinot/configs/`` are the reviewed source of truth; this
module only fills in the names and addresses that differ per deployment (table, topic, Kafka
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


@dataclass(frozen=True)
class TableSpec:
    """One windowed table: which topic feeds it and which column groups its windows."""

    kind: str  #: short name used on the command line: country, tumbling, hopping, session
    table: str
    topic: str
    group_column: str  #: "country" or "source": with window_start, the primary key

    def with_names(self, table: str | None = None, topic: str | None = None) -> TableSpec:
        return replace(
            self, table=checked_identifier(table or self.table), topic=topic or self.topic
        )


def default_tables() -> dict[str, TableSpec]:
    """The four tables, names overridable by ``PINOT_TABLE_<KIND>`` (e.g. PINOT_TABLE_SESSION)."""
    base = {
        "country": ("pageview_country", topics.PAGEVIEWS_BY_COUNTRY, "country"),
        "tumbling": ("pageview_tumbling", topics.TUMBLING, "source"),
        "hopping": ("pageview_hopping", topics.HOPPING, "source"),
        "session": ("pageview_session", topics.SESSION, "source"),
    }
    return {
        kind: TableSpec(
            kind=kind,
            table=checked_identifier(env(f"PINOT_TABLE_{kind.upper()}", table)),
            topic=topic,
            group_column=group,
        )
        for kind, (table, topic, group) in base.items()
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
    schema = copy.deepcopy(_config_json(f"schemas/pageview_{spec.kind}.json"))
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
    segments["replicasPerPartition"] = str(replicas or env_int("PINOT_REPLICAS", 1))
    segments["retentionTimeValue"] = str(retention_days or env_int("PINOT_RETENTION_DAYS", 7))
    stream = config["tableIndexConfig"]["streamConfigs"]
    stream["stream.kafka.topic.name"] = spec.topic
    stream["stream.kafka.broker.list"] = broker_list or kafka_broker_list()
    return config
