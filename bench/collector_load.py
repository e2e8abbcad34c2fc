"""``python -m bench.collector_load``: the collector under load on loopback, with the broker up
and with the broker stopped for 10 s.

The collector (``python -m producers.collector``) publishes to a broker of the benchmark's own
(:class:`stack.private.PrivateStack`), so stopping it disturbs nothing else. A closed-loop
client (``--connections`` keep-alive HTTP/1.1 connections, each sending the next pixel request
when the last is answered) measures each request's latency. Phases: the broker up; then the
broker stopped for ``--outage`` s and started again while the load goes on. Afterwards the
collector's counters and the hits topic say what was delivered, dropped or lost. Our own work
per hit (classify, encode, queue in librdkafka) is timed in-process too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import requests
from rich.console import Console
from rich.table import Table

from bench.dashboard_queries import percentile
from bench.kafka_io import Broker, unique_name
from bench.measure import stop
from bench.run import RESULTS
from producers.hit_publisher import HitPublisher
from producers.hit_requests import PixelRequest, classify
from stack.private import PrivateStack, free_port

QUERY = b"url=http%3A%2F%2Fshop.example%2Fproducts.html&ref=https%3A%2F%2Fmail.google.com%2F"


@dataclass
class Samples:
    """(completion time, latency s) of every answered request."""

    done: list[tuple[float, float]] = field(default_factory=list)
    errors: int = 0


async def _connection(port: int, index: int, until: float, samples: Samples) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (
        f"GET /tracking/img.png?sid=bench{index}&".encode()
        + QUERY
        + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\n\r\n"
    )
    try:
        while time.monotonic() < until:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200"):
                samples.errors += 1
            samples.done.append((time.monotonic(), time.perf_counter() - started))
    finally:
        writer.close()


def load(port: int, connections: int, seconds: float) -> Samples:
    samples = Samples()

    async def run() -> None:
        until = time.monotonic() + seconds
        await asyncio.gather(*(_connection(port, i, until, samples) for i in range(connections)))

    asyncio.run(run())
    return samples


def summary(label: str, samples: list[float], seconds: float) -> dict[str, Any]:
    return {
        "phase": label,
        "requests": len(samples),
        "requests_per_s": len(samples) / seconds if seconds else 0.0,
        "p50_ms": percentile(samples, 0.50) * 1000 if samples else 0.0,
        "p99_ms": percentile(samples, 0.99) * 1000 if samples else 0.0,
        "max_ms": max(samples) * 1000 if samples else 0.0,
    }


def own_work_us(bootstrap: str, topic: str, count: int = 20_000) -> float:
    """Median µs of classify + encode + queue per hit, in this process."""
    publisher = HitPublisher({"bootstrap.servers": bootstrap}, buffer_messages=count * 2)
    request = PixelRequest(
        "GET",
        "/tracking/img.png",
        "img",
        b"sid=s1&" + QUERY,
        {"host": "127.0.0.1", "user-agent": "bench", "accept-language": "en"},
        "127.0.0.1",
        0,
        None,
    )
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(count // 5):
            now = int(time.time() * 1000)
            outcome = classify(request, "bench", now, "127.0.0.1")
            publisher.publish(topic, b"s1", orjson.dumps(outcome.value), now)
        rounds.append((time.perf_counter() - started) / (count // 5) * 1e6)
    publisher.close()
    return statistics.median(rounds)


def one_round(
    stack: PrivateStack, port: int, args: argparse.Namespace
) -> tuple[list[dict[str, Any]], int, int]:
    """Both phases once: (the phases' figures, requests answered, non-200 answers)."""
    up = load(port, args.connections, args.duration)
    rows = [summary("broker up", [s for _t, s in up.done], args.duration)]
    marks: dict[str, float] = {}

    def outage() -> None:
        time.sleep(2.0)
        stack.down("kafka")
        marks["down"] = time.monotonic()
        time.sleep(args.outage)
        marks["starting"] = time.monotonic()
        stack.up("kafka")
        marks["up"] = time.monotonic()

    controller = threading.Thread(target=outage)
    controller.start()
    during = load(port, args.connections, 2.0 + args.outage + 30.0)  # past the broker's start
    controller.join()
    stopped = [s for t, s in during.done if marks["down"] <= t < marks["starting"]]
    rows.append(summary("broker stopped", stopped, marks["starting"] - marks["down"]))
    after = [s for t, s in during.done if t >= marks["up"]]
    last = max(t for t, _ in during.done)
    rows.append(summary("broker back", after, max(1e-9, last - marks["up"])))
    return rows, len(up.done) + len(during.done), up.errors + during.errors


def health(url: str) -> dict[str, Any]:
    return requests.get(f"{url}/health", timeout=5).json()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.collector_load", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of the first phase")
    parser.add_argument("--outage", type=float, default=10.0, help="seconds the broker is down")
    parser.add_argument("--runs", type=int, default=3, help="rounds of both phases")
    args = parser.parse_args(argv)
    console = Console()
    home = Path(tempfile.mkdtemp(prefix="bench-collector-"))
    with PrivateStack(home, ["kafka"]) as stack:
        broker = Broker(stack.kafka)
        hits_topic, bad_topic = unique_name("hits"), unique_name("hits-bad")
        own_topic = unique_name("hits-in-process")
        broker.create_topics([hits_topic, bad_topic, own_topic], 5)
        port = free_port()
        log = (home / "collector.log").open("wb")
        collector = subprocess.Popen(
            [sys.executable, "-m", "producers.collector", "--port", str(port), "--no-demo-site"],
            env={
                **stack.env,
                **stack.app_env(),
                "TOPIC_HITS": hits_topic,
                "TOPIC_HITS_BAD": bad_topic,
            },
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    health(url)
                    break
                except requests.RequestException:
                    if time.monotonic() > deadline or collector.poll() is not None:
                        raise SystemExit((home / "collector.log").read_text()) from None
                    time.sleep(0.2)
            warm = load(port, args.connections, 2.0)  # warm-up: published, not timed
            rounds = [one_round(stack, port, args) for _ in range(args.runs)]
            sent = len(warm.done) + sum(answered for _rows, answered, _errors in rounds)
            deadline = time.monotonic() + 120
            while (state := health(url))["queued"] and time.monotonic() < deadline:
                time.sleep(1)
            in_topic = broker.record_count(hits_topic)
            work = own_work_us(stack.kafka, own_topic)
        finally:
            stop(collector)
            broker.delete_created()
            broker.close()
    table = Table(
        title=f"collector, {args.connections} connections, loopback: medians of {args.runs} rounds"
    )
    for column in ("phase", "requests", "req/s", "p50 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="left" if column == "phase" else "right")
    rows = [
        {
            "phase": phase["phase"],
            **{
                metric: statistics.median(r[0][i][metric] for r in rounds)
                for metric in ("requests", "requests_per_s", "p50_ms", "p99_ms", "max_ms")
            },
        }
        for i, phase in enumerate(rounds[0][0])
    ]
    for row in rows:
        table.add_row(
            row["phase"],
            f"{row['requests']:,}",
            f"{row['requests_per_s']:,.0f}",
            f"{row['p50_ms']:.2f}",
            f"{row['p99_ms']:.2f}",
            f"{row['max_ms']:.1f}",
        )
    console.print(table)
    dropped = state["dropped"]
    console.print(
        f"requests answered {sent:,}; hits published {state['published']:,}, delivered "
        f"{state['delivered']:,}, in the topic {in_topic:,}; dropped: buffer full "
        f"{dropped['buffer_full']:,}, delivery failed {dropped['delivery_failed']:,}; "
        f"non-200 answers {warm.errors + sum(errors for _r, _a, errors in rounds)}"
    )
    console.print(f"our own work per hit (classify, encode, queue): {work:.1f} µs (median)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"collector-{time.strftime('%Y%m%dT%H%M%S')}.json"
    result = {
        "phases": rows,
        "rounds": [r[0] for r in rounds],
        "health": state,
        "in_topic": in_topic,
        "own_work_us": work,
    }
    out.write_text(json.dumps({**result, "answered": sent, "args": vars(args)}, indent=2))
    console.print(f"raw results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
