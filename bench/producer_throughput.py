"""``python -m bench.producer_throughput``: events/s of ``producers.events`` into the native Kafka.

Generates and produces page views (and their sessions) in batch mode from one process into
fresh 5-partition topics, until every delivery report is in; median of ``--runs``. Printed
beside the issue's floor of 50,000 events/s as a ratio.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import uuid

from confluent_kafka.admin import AdminClient, NewTopic

from clients.settings import KafkaSettings
from contracts import topics as topic_names
from producers.events import Generator, run_batch
from producers.kafka import CheckedProducer

FLOOR = 50_000


def one_run(views: int) -> float:
    admin = AdminClient({"bootstrap.servers": KafkaSettings.from_env().bootstrap_servers})
    suffix = uuid.uuid4().hex[:8]
    pageviews, sessions = f"bench-pv-{suffix}", f"bench-sessions-{suffix}"
    for future in admin.create_topics([NewTopic(t, 5, 1) for t in (pageviews, sessions)]).values():
        future.result(30)
    topic_names.PAGEVIEWS, topic_names.USER_SESSIONS = pageviews, sessions
    try:
        gen = Generator(list(range(1, 201)), random.Random(1), 5, 0.0, 0, "string")
        kafka = CheckedProducer()
        start = time.perf_counter()
        run_batch(gen, kafka, 1_763_600_000_000, views, quiet=True)
        delivered = kafka.finish()
        elapsed = time.perf_counter() - start
    finally:
        for future in admin.delete_topics([pageviews, sessions]).values():
            future.exception(30)
    return delivered / elapsed, views / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.producer_throughput", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--views", type=int, default=500_000, help="page views per run")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results = [one_run(args.views) for _ in range(args.runs)]
    records = statistics.median(r[0] for r in results)
    views = statistics.median(r[1] for r in results)
    print(f"runs: {args.runs} x {args.views:,} page views (+ their sessions)")
    print(f"records/s (page views + sessions), median: {records:,.0f}")
    print(f"page views/s, median: {views:,.0f}  = {views / FLOOR:.2f}x the 50,000/s floor")


if __name__ == "__main__":
    main()
