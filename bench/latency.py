"""End-to-end latency of ``streams.windows`` at a steady input rate: page view -> topic6 -> Pinot.

    python -m bench.latency --rates 2000 20000 --duration 20 --runs 3

Each run starts a fresh ``streams.windows`` on unique topics (and, with ``--pinot``, a
temporary upsert table on its topic6), warms it up, then produces page views at a steady rate
with event time = wall-clock time. A page view's latency is from its produce call to the moment
its effect is visible: a ``read_committed`` consumer of topic6 receives a count for its
(source, window) that includes it, or the dashboard's tumbling query returns such a count.

Counts cannot name the views they include, so "includes the n-th view of a (source, window)"
means the count has reached n: the n-th view's latency is until every view of its window up to
it is counted, the usual definition for an aggregate. Pinot is polled every ``--pinot-poll-ms``,
so its figures carry up to that much extra. A view whose effect is not visible within
``--drain`` seconds after producing stopped counts as infinitely late (shown as ">"): above
the processor's capacity a backlog grows and latency is unbounded, which the table shows
rather than hides. Percentiles are medians over runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from bench.dashboard_queries import percentile
from bench.kafka_io import Broker, unique_name
from bench.measure import stop
from bench.run import RESULTS, output_env
from clients.logs import setup_logging
from clients.settings import KafkaSettings, PinotSettings
from contracts.records import SOURCES
from dashboard.queries import DashboardQueries
from pinot.client import PinotBroker, PinotController
from pinot.provision import temporary_tables, unique_specs

log = logging.getLogger("bench.latency")

WINDOW_MS = 5 * 60 * 1000
PERCENTILES = (0.50, 0.95, 0.99)
#: (source, window_start)
WindowKey = tuple[str, int]


@dataclass
class Observed:
    """Produce times per window, and the counts each observer saw with when it saw them."""

    produced: dict[WindowKey, list[float]] = field(default_factory=lambda: defaultdict(list))
    seen: dict[str, dict[WindowKey, list[tuple[float, int]]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    lock: threading.Lock = field(default_factory=threading.Lock)

    def see(self, observer: str, at: float, rows: list[tuple[str, int, int]]) -> None:
        with self.lock:
            by_key = self.seen[observer]
            for source, window_start, count in rows:
                by_key[(source, window_start)].append((at, count))

    def missing(self, observer: str) -> dict[WindowKey, tuple[int, int]]:
        """(produced, highest count seen) of each window the observer has not seen complete."""
        with self.lock:
            seen = self.seen[observer]
            highest = {
                key: max((c for _t, c in seen.get(key, [])), default=0) for key in self.produced
            }
            return {
                key: (len(times), highest[key])
                for key, times in self.produced.items()
                if highest[key] < len(times)
            }

    def complete(self, observer: str) -> bool:
        """Whether the observer has seen every produced view counted."""
        with self.lock:
            seen = self.seen[observer]
            return all(
                seen.get(key) and max(c for _t, c in seen[key]) >= len(times)
                for key, times in self.produced.items()
            )


def latencies(
    produced: dict[WindowKey, list[float]], seen: dict[WindowKey, list[tuple[float, int]]]
) -> list[float]:
    """Seconds from each view's produce time until a count including it was seen; ``inf`` for
    views never seen counted. ``produced[k]``: produce times in order; ``seen[k]``: (time seen,
    count), any order (counts of a window only grow, but observers may see them late)."""
    out: list[float] = []
    for key, times in produced.items():
        observations = sorted(seen.get(key, []))
        i, best, visible_at = 0, 0, math.inf
        for n, produced_at in enumerate(times, start=1):
            # Walk the observations only until one shows a count of n: its time is when the
            # n-th view became visible (and the next views' search resumes from there).
            while best < n and i < len(observations):
                visible_at, count = observations[i]
                best = max(best, count)
                i += 1
            out.append(visible_at - produced_at if best >= n else math.inf)
    return out


def page_view(rng: random.Random, now_ms: int) -> tuple[bytes, bytes, str]:
    """(key, value, source) of one page view with event time ``now_ms``, epoch ms."""
    session_id = f"s{rng.randrange(100_000):06d}"
    source = rng.choice(SOURCES)
    value = {
        "session_id": session_id,
        "user_id": rng.randrange(1, 10_001),
        "source": source,
        "event_timestamp": now_ms,
    }
    return session_id.encode(), orjson.dumps(value), source


class SteadyProducer:
    """Page views at a fixed rate, each produce time recorded against its (source, window)."""

    def __init__(self, bootstrap: str, topic: str, seed: int) -> None:
        self.topic = topic
        self.rng = random.Random(seed)
        self.failed: list[str] = []
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "linger.ms": 5,
                "enable.idempotence": True,
                "partitioner": "murmur2_random",  # Java's: as the generators write topic1
            }
        )

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self.failed.append(str(err))

    def produce(self, now: float, into: dict[WindowKey, list[float]] | None) -> None:
        now_ms = int(now * 1000)
        key, value, source = page_view(self.rng, now_ms)
        self.producer.produce(
            self.topic, value, key, timestamp=now_ms, on_delivery=self._on_delivery
        )
        if into is not None:
            into[(source, now_ms - now_ms % WINDOW_MS)].append(now)

    def run(self, rate: float, seconds: float, into: dict[WindowKey, list[float]]) -> int:
        """Produce at ``rate`` per second for ``seconds``; returns the count produced."""
        total = int(rate * seconds)
        started = time.monotonic()
        sent = 0
        with tqdm(total=total, desc=f"produce at {rate:,.0f}/s", unit="ev", leave=False) as bar:
            while sent < total:
                due = min(total, int((time.monotonic() - started) * rate))
                for _ in range(due - sent):
                    self.produce(time.time(), into)
                bar.update(due - sent)
                sent = due
                self.producer.poll(0)
                time.sleep(0.0005)
        self.flush()
        return sent

    def flush(self) -> None:
        if self.producer.flush(30) or self.failed:
            raise RuntimeError(f"page views not delivered: {self.failed[:3]}")


def read_topic(bootstrap: str, topic: str, observed: Observed, done: threading.Event) -> None:
    """Every committed count on ``topic`` (topic6), stamped with the time it was received."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_name("latency-reader"),
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    try:
        while not done.is_set():
            msgs = consumer.consume(1000, 0.05)
            at = time.time()
            rows = []
            for msg in msgs:
                if msg.error() is None and msg.value() is not None:
                    row = orjson.loads(msg.value())
                    rows.append((row["source"], row["window_start"], row["pageview_count"]))
            if rows:
                observed.see("topic6", at, rows)
    finally:
        consumer.close()


def poll_pinot(
    queries: DashboardQueries,
    since_ms: int,
    period_s: float,
    observed: Observed,
    done: threading.Event,
) -> None:
    """The dashboard's tumbling query every ``period_s``; a row counts as seen on its answer."""
    while not done.is_set():
        frame = queries.tumbling(since_ms, SOURCES).frame
        at = time.time()
        observed.see(
            "pinot",
            at,
            [(str(s), int(w), int(c)) for w, s, c in frame.itertuples(index=False, name=None)],
        )
        done.wait(period_s)


@contextmanager
def background(target: Callable[..., None], *args: Any) -> Iterator[threading.Event]:
    done = threading.Event()
    thread = threading.Thread(target=target, args=(*args, done), daemon=True)
    thread.start()
    try:
        yield done
    finally:
        done.set()
        thread.join(30)


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    log.warning("%s: not within %.0f s", what, timeout_s)
    return False


def group_lag(broker: Broker, group: str, input_topic: str) -> dict[str, int]:
    """Records not yet committed by the processor's group, per topic it reads (input and
    repartition; transaction markers count as one each)."""
    topics = [input_topic, *(t for t in broker.topics_containing(group) if "repartition" in t)]
    committed = broker.group_offsets(group, topics)
    return {
        topic: sum(
            end - committed.get((topic, p), 0) for p, end in broker.end_offsets(topic).items()
        )
        for topic in topics
    }


@dataclass(frozen=True)
class RunConfig:
    rate: float
    seconds: float
    commit_interval: float
    emit: str
    drain_s: float
    pinot: bool
    pinot_poll_s: float


def measure_once(broker: Broker, cfg: RunConfig, run: int) -> dict[str, Any]:
    """One run on fresh topics: warm up, produce steadily, drain, and compute latencies."""
    group = unique_name("latency")
    topics = output_env(group)
    pageviews = f"{group}-pageviews"
    broker.create_topics([pageviews, *topics.values()], partitions=5)
    env = {**os.environ, **topics, "TOPIC_PAGEVIEWS": pageviews, "LOG_LEVEL": "WARNING"}
    observed = Observed()
    observers = ["topic6", *(["pinot"] if cfg.pinot else [])]
    label = f"latency-{cfg.rate:.0f}-c{cfg.commit_interval:g}-run{run}"
    (RESULTS / "logs").mkdir(parents=True, exist_ok=True)
    producer = SteadyProducer(broker.bootstrap, pageviews, seed=run)
    with ExitStack() as stack:
        # Unwound last-in first-out: the processor stops before its topics go.
        stack.callback(lambda: broker.delete(broker.topics_containing(group)))
        stack.callback(broker.delete, [pageviews, *topics.values()])
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-latency-"))
        log_file = stack.enter_context(open(RESULTS / "logs" / f"{label}.log", "wb"))
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streams.windows",
                "--consumer-group",
                group,
                "--state-dir",
                tmp,
                "--commit-interval",
                str(cfg.commit_interval),
                "--emit",
                cfg.emit,
            ],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        stack.callback(stop, proc)
        stack.enter_context(
            background(read_topic, broker.bootstrap, topics["TOPIC_TUMBLING"], observed)
        )
        now_ms = int(time.time() * 1000)
        measured_since = now_ms - now_ms % WINDOW_MS
        if cfg.pinot:
            settings = PinotSettings.from_env()
            pinot_broker = PinotBroker(settings.broker_url)
            spec = unique_specs("bench_latency", {"tumbling": topics["TOPIC_TUMBLING"]})
            stack.enter_context(
                temporary_tables(
                    PinotController(settings.controller_url), pinot_broker, spec.values()
                )
            )
            queries = DashboardQueries(pinot_broker, spec)
            # Warm-up windows (an hour back) are queried too, so readiness shows in Pinot.
            stack.enter_context(
                background(
                    poll_pinot, queries, measured_since - 3_600_000, cfg.pinot_poll_s, observed
                )
            )
        # Warm-up: a few views an hour back in event time, until every observer counts them.
        warm: dict[WindowKey, list[float]] = defaultdict(list)
        for _ in range(30):
            producer.produce(time.time() - 3600, warm)
        producer.flush()
        observed.produced = warm
        for observer in observers:
            if not wait_until(lambda o=observer: observed.complete(o), 120, f"{label} warm-up"):
                raise RuntimeError(f"{label}: {observer} never showed the warm-up views")
            if proc.poll() is not None:
                raise RuntimeError(f"{label}: streams.windows exited (see {log_file.name})")
        observed.produced = defaultdict(list)
        started = time.monotonic()
        sent = producer.run(cfg.rate, cfg.seconds, observed.produced)
        achieved = sent / (time.monotonic() - started)
        drained_by = time.monotonic() + cfg.drain_s  # one deadline for every observer
        for observer in observers:
            left = max(0.0, drained_by - time.monotonic())
            if not wait_until(lambda o=observer: observed.complete(o), left, f"{label} {observer}"):
                log.warning(
                    "%s %s: (produced, counted) of incomplete windows: %s; group lag: %s",
                    label,
                    observer,
                    observed.missing(observer),
                    group_lag(broker, group, pageviews),
                )
    result: dict[str, Any] = {"rate": cfg.rate, "achieved_rate": round(achieved), "views": sent}
    for observer in observers:
        lat = latencies(observed.produced, observed.seen[observer])
        visible = [v for v in lat if v != math.inf]
        result[observer] = {
            **{f"p{round(q * 100)}_s": percentile(lat, q) for q in PERCENTILES},
            "visible_share": len(visible) / len(lat),
        }
    log.info("%s: %s", label, result)
    return result


def summarise(runs: list[dict[str, Any]], observers: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "rate": runs[0]["rate"],
        "achieved_rate": statistics.median(r["achieved_rate"] for r in runs),
    }
    for observer in observers:
        row[observer] = {
            name: statistics.median(r[observer][name] for r in runs) for name in runs[0][observer]
        }
    row["runs"] = runs
    return row


def seconds(value: float, drain_s: float) -> str:
    return f"> {drain_s:.0f} s" if value == math.inf else f"{value:.2f} s"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.latency", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--rates",
        type=float,
        nargs="+",
        default=[2000, 20000],
        help="input rates, page views/s (default 2000 20000)",
    )
    parser.add_argument("--duration", type=float, default=20, help="seconds of input per run")
    parser.add_argument("--runs", type=int, default=3, help="runs per rate (median)")
    parser.add_argument(
        "--commit-intervals",
        type=float,
        nargs="+",
        default=[5.0, 1.0, 0.2],
        help="streams.windows --commit-interval values to measure "
        "(default 5, 1 (the processors' default) and 0.2)",
    )
    parser.add_argument(
        "--emit",
        default="changes",
        choices=("changes", "cached"),
        help="streams.windows --emit mode (default changes)",
    )
    parser.add_argument(
        "--drain",
        type=float,
        default=60,
        help="seconds to wait for the last effects after input stops",
    )
    parser.add_argument(
        "--no-pinot",
        dest="pinot",
        action="store_false",
        help="measure topic6 only, not Pinot through the dashboard's query",
    )
    parser.add_argument(
        "--pinot-poll-ms",
        type=float,
        default=200,
        help="period of the dashboard query (the Pinot figures' resolution)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging()
    logging.getLogger("dashboard.queries").setLevel(logging.WARNING)
    broker = Broker(KafkaSettings.from_env().bootstrap_servers)
    observers = ["topic6", *(["pinot"] if args.pinot else [])]
    rows = []
    out = RESULTS / f"latency-{time.strftime('%Y%m%dT%H%M%S')}.json"
    try:
        for interval in args.commit_intervals:
            for rate in args.rates:
                cfg = RunConfig(
                    rate,
                    args.duration,
                    interval,
                    args.emit,
                    args.drain,
                    args.pinot,
                    args.pinot_poll_ms / 1000,
                )
                runs = [measure_once(broker, cfg, run) for run in range(args.runs)]
                rows.append({"commit_interval_s": interval, **summarise(runs, observers)})
                out.write_text(
                    json.dumps(
                        {"emit": args.emit, "duration_s": args.duration, "rows": rows},
                        indent=2,
                        default=str,
                    )
                )
    finally:
        broker.close()
    table = Table(
        title=f"streams.windows end-to-end latency, --emit {args.emit} "
        f"(median of {args.runs} runs of {args.duration:g} s)"
    )
    for col in (
        "commit s",
        "rate/s",
        "achieved/s",
        *(f"{o} {p}" for o in observers for p in ("p50", "p95", "p99", "seen")),
    ):
        table.add_column(col, justify="right")
    for row in rows:
        cells = [
            f"{row['commit_interval_s']:g}",
            f"{row['rate']:,.0f}",
            f"{row['achieved_rate']:,.0f}",
        ]
        for o in observers:
            figures = row[o]
            cells += [seconds(figures[f"p{p}_s"], args.drain) for p in (50, 95, 99)]
            cells.append(f"{figures['visible_share']:.0%}")
        table.add_row(*cells)
    console = Console()
    if not console.is_terminal:
        console.width = 160  # a log file has room for every column
    console.print(table)
    log.info("wrote %s", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
