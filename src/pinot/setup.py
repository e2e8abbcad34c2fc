"""Create or update Pinot schemas and tables: ``python -m pinot.setup [--family clickstream]``.

The page-view family (topics 5-8) by default; ``--family clickstream`` sets up the tables on the
clickstream tutorial's ksqlDB sinks, which ``streams.ksql run`` must have created first.

Idempotent: an existing schema or table is updated in place, a missing one is created, so the
command is safe to run on every deploy. It then waits until each table answers a query, which
is what the dashboard needs, rather than just until the controller accepted the config.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Iterable, Sequence

from clients.logs import setup_logging
from clients.settings import PinotSettings
from pinot.client import PinotBroker, PinotController, PinotError
from pinot.tables import (
    FAMILIES,
    PAGEVIEWS,
    TableSpec,
    default_tables,
    kafka_broker_list,
    schema_config,
    table_config,
)

log = logging.getLogger("pinot.setup")

TOPIC_WAIT_S = 15.0


def apply_table(
    controller: PinotController,
    spec: TableSpec,
    broker_list: str | None = None,
    retention_days: int | None = None,
    topic_wait_s: float = TOPIC_WAIT_S,
) -> str:
    """Create or update ``spec``'s schema, then its table; return what was done. A missing
    topic is waited for up to ``topic_wait_s``."""
    schema = schema_config(spec)
    existing_schema = controller.get_schema(spec.table)
    if existing_schema is None:
        controller.create_schema(schema)
    elif existing_schema != schema:
        controller.update_schema(schema)
    config = table_config(spec, broker_list=broker_list, retention_days=retention_days)
    deadline = time.monotonic() + topic_wait_s
    while True:
        try:
            if controller.get_realtime_table(spec.table) is None:
                controller.create_table(config)
                return "created"
            controller.update_table(config)
            return "updated"
        except PinotError as exc:
            # Pinot 0.11 reports a missing topic as a bare NullPointerException from
            # partitionsFor; a topic created a moment ago can be missing from its metadata
            # too (seen in CI), so that case is retried briefly before it is reported.
            if "partitionsFor" not in str(exc):
                raise
            if time.monotonic() >= deadline:
                kafka = config["tableIndexConfig"]["streamConfigs"]["stream.kafka.broker.list"]
                raise PinotError(
                    f"{exc} (hint: does topic {spec.topic!r} exist on {kafka}? "
                    "create the pipeline's topics first)"
                ) from exc
            time.sleep(1.0)


def wait_until_queryable(broker: PinotBroker, tables: Iterable[str], timeout_s: float) -> None:
    """Poll ``SELECT COUNT(*)`` until every table answers without error.

    Right after creation the broker has no routing for a table yet and answers with an error;
    that is expected, so errors are retried until ``timeout_s`` and only the last one is raised.
    """
    deadline = time.monotonic() + timeout_s
    for table in tables:
        while True:
            try:
                # Until its consuming segments are online the broker answers without error
                # but with no result row, even for COUNT(*).
                if broker.query(f"SELECT COUNT(*) FROM {table}").rows:
                    log.info("table %s is queryable", table)
                    break
                raise PinotError(f"table {table} has no online segments yet")
            except PinotError as exc:
                if time.monotonic() >= deadline:
                    raise PinotError(
                        f"table {table} not queryable after {timeout_s:.0f}s: {exc}"
                    ) from exc
                time.sleep(1.0)


def setup_tables(
    controller: PinotController,
    broker: PinotBroker,
    specs: Sequence[TableSpec],
    broker_list: str | None = None,
    retention_days: int | None = None,
    timeout_s: float = 120.0,
    topic_wait_s: float = TOPIC_WAIT_S,
) -> None:
    for spec in specs:
        action = apply_table(controller, spec, broker_list, retention_days, topic_wait_s)
        log.info("%s table %s (topic %s)", action, spec.table, spec.topic)
    wait_until_queryable(broker, [spec.table for spec in specs], timeout_s)


def _assignments(values: list[str], flag: str, kinds: Iterable[str]) -> dict[str, str]:
    result: dict[str, str] = {}
    for value in values:
        kind, sep, name = value.partition("=")
        if not sep or kind not in kinds or not name:
            raise SystemExit(
                f"{flag} takes KIND=NAME with KIND one of {', '.join(kinds)}: {value!r}"
            )
        result[kind] = name
    return result


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    tables = default_tables(None)
    settings = PinotSettings.from_env()
    parser = argparse.ArgumentParser(
        prog="python -m pinot.setup",
        description="Create or update Pinot upsert tables (idempotent), then wait until they "
        "answer queries: by default the four on topics 5-8.",
    )
    parser.add_argument(
        "--family",
        choices=FAMILIES,
        default=PAGEVIEWS,
        help="which tables: pageviews (topics 5-8, the default) or clickstream (the sinks of "
        "the clickstream tutorial's statements)",
    )
    parser.add_argument(
        "--controller",
        default=settings.controller_url,
        help="controller URL (PINOT_CONTROLLER_URL)",
    )
    parser.add_argument(
        "--broker", default=settings.broker_url, help="broker URL (PINOT_BROKER_URL)"
    )
    parser.add_argument(
        "--kafka-broker-list",
        default=kafka_broker_list(),
        help="Kafka address as Pinot's servers see it "
        "(PINOT_KAFKA_BROKER_LIST, default KAFKA_BOOTSTRAP_SERVERS)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(tables),
        help="set up only this table kind (repeatable); default: all of --family",
    )
    parser.add_argument(
        "--table",
        action="append",
        default=[],
        metavar="KIND=NAME",
        help="override a table name, e.g. session=my_sessions (or PINOT_TABLE_SESSION)",
    )
    parser.add_argument(
        "--topic",
        action="append",
        default=[],
        metavar="KIND=TOPIC",
        help="override a source topic, e.g. session=my_topic8 (default from TOPIC_* variables; "
        "the ksqlDB sink names for the clickstream family)",
    )
    parser.add_argument(
        "--retention-days", type=int, default=None, help="time retention (PINOT_RETENTION_DAYS, 7)"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for queries")
    parser.add_argument(
        "--topic-timeout",
        type=float,
        default=TOPIC_WAIT_S,
        help=f"seconds to wait for a missing source topic (default {TOPIC_WAIT_S:.0f}), e.g. "
        "for the sinks a starting `streams.ksql run` creates",
    )
    parser.add_argument("--drop", action="store_true", help="delete the tables and schemas instead")
    return parser.parse_args(argv)


def selected_specs(args: argparse.Namespace) -> list[TableSpec]:
    tables = default_tables(None)
    names = _assignments(args.table, "--table", tables)
    topics = _assignments(args.topic, "--topic", tables)
    kinds = args.only or [k for k, spec in tables.items() if spec.family == args.family]
    return [tables[k].with_names(table=names.get(k), topic=topics.get(k)) for k in kinds]


def main(argv: Sequence[str] | None = None) -> int:
    setup_logging()
    args = parse_args(argv)
    try:
        specs = selected_specs(args)
        controller = PinotController(args.controller)
        if args.drop:
            for spec in specs:
                controller.delete_table(spec.table)
                log.info("dropped table and schema %s", spec.table)
            return 0
        setup_tables(
            controller,
            PinotBroker(args.broker),
            specs,
            broker_list=args.kafka_broker_list,
            retention_days=args.retention_days,
            timeout_s=args.timeout,
            topic_wait_s=args.topic_timeout,
        )
    except (PinotError, ValueError) as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
