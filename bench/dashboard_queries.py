"""Benchmark: each dashboard chart's query on Pinot tables of 1 million rows.

Loads ``--rows`` distinct windows per table through Kafka (transactionally, like the processors)
into temporary upsert tables, waits until Pinot has ingested them all, then times the exact
queries the dashboard runs (``dashboard.queries``), for the default "Last hour" range and for
"All". Each run issues ``--queries`` of every query; a run's p50/p95 are computed and the
medians over ``--runs`` runs are reported, printed and written as JSON.

    python bench/dashboard_queries.py --rows 1000000 --runs 5 --queries 20
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from clients.logs import setup_logging
from clients.settings import KafkaSettings, PinotSettings
from contracts import topics
from contracts.records import SOURCES
from dashboard.queries import ChartData, DashboardQueries
from pinot.client import PinotBroker, PinotController
from pinot.kafka_load import TransactionalWriter
from pinot.provision import temporary_tables, unique_specs
from pinot.tables import TableSpec

log = logging.getLogger("bench.dashboard_queries")

KINDS = ("country", "tumbling", "hopping", "session")
COUNTRIES = (
    "France",
    "Germany",
    "Spain",
    "Italy",
    "Japan",
    "Brazil",
    "India",
    "Canada",
    "Kenya",
    "unknown",
)
MIN = 60_000
TXN_ROWS = 100_000  # rows per Kafka transaction: well inside the transaction timeout


def generate(kind: str, rows: int, newest: int) -> Iterator[dict[str, Any]]:
    """``rows`` distinct (group, window) rows, one-minute windows ending at ``newest``."""
    groups = COUNTRIES if kind == "country" else SOURCES
    for i in range(rows):
        group = groups[i % len(groups)]
        start = newest - (i // len(groups)) * MIN
        row: dict[str, Any] = {
            "window_start": start,
            "window_end": start + 5 * MIN,
            "pageview_count": 1 + i % 97,
        }
        if kind == "country":
            row["country"] = group
            row["average_age"] = None if group == "unknown" else 18.0 + i % 50
        else:
            row["source"] = group
            if kind == "session":
                row["deleted"] = i % 20 == 0  # some retracted sessions for the filter to skip
        yield row


def load(bootstrap: str, spec: TableSpec, rows: int, newest: int) -> None:
    with (
        TransactionalWriter(bootstrap, spec) as writer,
        tqdm(total=rows, desc=f"produce {spec.kind}", unit="row") as bar,
    ):
        batch: list[dict[str, Any]] = []
        for row in generate(spec.kind, rows, newest):
            batch.append(row)
            if len(batch) == TXN_ROWS:
                bar.update(writer.write(batch))
                batch = []
        if batch:
            bar.update(writer.write(batch))


def wait_ingested(broker: PinotBroker, spec: TableSpec, rows: int, timeout_s: float) -> float:
    """Poll COUNT(*) (upserted: one row per key) until every row is queryable; return seconds."""
    started = time.monotonic()
    with tqdm(total=rows, desc=f"ingest {spec.kind}", unit="row") as bar:
        while True:
            count = int(broker.query(f"SELECT COUNT(*) FROM {spec.table}").rows[0][0])
            bar.update(count - bar.n)
            if count >= rows:
                return time.monotonic() - started
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(f"{spec.table}: {count}/{rows} rows after {timeout_s:.0f}s")
            time.sleep(2)


def chart_queries(
    queries: DashboardQueries, kinds: list[str], last_hour_since: int
) -> dict[str, Callable[[], ChartData]]:
    named: dict[str, Callable[[], ChartData]] = {}
    for kind in kinds:
        fetch = getattr(queries, kind)
        for label, since in (("last hour", last_hour_since), ("all", 0)):
            if kind == "country":
                named[f"{kind} ({label})"] = lambda f=fetch, s=since: f(s)
            else:
                named[f"{kind} ({label})"] = lambda f=fetch, s=since: f(s, SOURCES)
    return named


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(fetch: Callable[[], ChartData], runs: int, per_run: int) -> dict[str, Any]:
    for _ in range(3):  # warm-up: first queries pay for class loading and page faults
        fetch()
    p50s, p95s, pinot_p50s, points = [], [], [], 0
    for _ in range(runs):
        results = [fetch() for _ in range(per_run)]
        latencies = [r.latency_ms for r in results]
        p50s.append(percentile(latencies, 0.50))
        p95s.append(percentile(latencies, 0.95))
        pinot_p50s.append(percentile([r.pinot_time_ms for r in results], 0.50))
        points = len(results[-1].frame)
    return {
        "p50_ms": round(statistics.median(p50s), 2),
        "p95_ms": round(statistics.median(p95s), 2),
        "pinot_p50_ms": round(statistics.median(pinot_p50s), 2),
        "runs_p50_ms": [round(v, 2) for v in p50s],
        "runs_p95_ms": [round(v, 2) for v in p95s],
        "points": points,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per table")
    parser.add_argument("--runs", type=int, default=5, help="runs; medians over runs reported")
    parser.add_argument("--queries", type=int, default=20, help="queries of each chart per run")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--ingest-timeout", type=float, default=1800, help="seconds per table")
    parser.add_argument("--output", type=Path, default=Path("bench/results/dashboard_queries.json"))
    return parser.parse_args()


def main() -> None:
    setup_logging()
    # The dashboard logs every query; thousands of timed queries would drown the report.
    logging.getLogger("dashboard.queries").setLevel(logging.WARNING)
    args = parse_args()
    bootstrap = KafkaSettings.from_env().bootstrap_servers
    pinot = PinotSettings.from_env()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    suffix = uuid.uuid4().hex[:8]
    topic_names = {kind: f"bench-dashboard-{kind}-{suffix}" for kind in args.kinds}
    futures = admin.create_topics(
        [
            NewTopic(t, num_partitions=topics.PARTITIONS, replication_factor=1)
            for t in topic_names.values()
        ]
    )
    for future in futures.values():
        future.result(timeout=30)
    specs = unique_specs("bench", topic_names)
    broker = PinotBroker(pinot.broker_url, timeout_s=60)
    controller = PinotController(pinot.controller_url)
    newest = (int(time.time() * 1000) // MIN) * MIN
    ingest_s: dict[str, float] = {}
    results: dict[str, dict[str, Any]] = {}
    try:
        # One table at a time: four million upserted keys at once would only measure memory
        # pressure on a small machine. Data spans months: a long retention keeps Pinot from
        # purging it mid-benchmark.
        for kind, spec in specs.items():
            with temporary_tables(controller, broker, [spec], retention_days=3650):
                load(bootstrap, spec, args.rows, newest)
                ingest_s[kind] = round(
                    wait_ingested(broker, spec, args.rows, args.ingest_timeout), 1
                )
                queries = DashboardQueries(broker, {kind: spec})
                for name, fetch in chart_queries(queries, [kind], newest - 60 * MIN).items():
                    results[name] = measure(fetch, args.runs, args.queries)
                    log.info("%s: %s", name, results[name])
    finally:
        for future in admin.delete_topics(list(topic_names.values())).values():
            try:
                future.result(timeout=30)
            except Exception as exc:  # cleanup must not hide the benchmark's own error
                log.warning("could not delete topic: %s", exc)

    report = {
        "rows_per_table": args.rows,
        "runs": args.runs,
        "queries_per_run": args.queries,
        "ingest_seconds_after_produce": ingest_s,
        "queries": results,
    }
    table = Table(
        title=f"Dashboard queries on {args.rows:,} rows per table (medians of {args.runs} runs)"
    )
    for column in ("query", "points", "p50 ms", "p95 ms", "Pinot p50 ms"):
        table.add_column(column, justify="left" if column == "query" else "right")
    for name, r in results.items():
        table.add_row(
            name,
            str(r["points"]),
            f"{r['p50_ms']:.1f}",
            f"{r['p95_ms']:.1f}",
            f"{r['pinot_p50_ms']:.1f}",
        )
    Console().print(table)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
