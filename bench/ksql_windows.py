"""The compiled seed-001 window queries against the hand-written ``streams.windows``, in one run.

Both run the same generated page views in the test driver (real Quix pipelines and RocksDB
state, no broker): (a) ``streams.windows`` (topic1 -> topic6, 7, 8), (b) the three window
statements of ``../shared/ksql-statements/seed-001-pageviews.sql`` (``pageview_tumbling_table``,
``pageview_hopping_table``, ``pageview_session_table`` over ``pageview_stream``) compiled by
``streams.ksql``. Runs are interleaved so that drift in machine load hits both alike; the
medians and the ratio are printed.

    python -m bench.ksql_windows --events 20000 --runs 3
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from quixstreams import Application

from bench.preload import PageViewPlan, page_views
from streams import windows
from streams.ksql import ast
from streams.ksql.compiler import compile_statements
from streams.ksql.parser import parse
from streams.ksql.plans import fusion_groups, pass_name
from streams.testing import TestDriver

SEED = Path(__file__).resolve().parents[1].parent / "shared" / "ksql-statements"
WINDOW_QUERIES = {"PAGEVIEW_TUMBLING_TABLE", "PAGEVIEW_HOPPING_TABLE", "PAGEVIEW_SESSION_TABLE"}
WINDOW_TOPICS = ("topic6", "topic7", "topic8")


def window_statements() -> list[ast.AnyStatement]:
    """The seed's page-view stream and its three window queries, nothing else."""
    return [
        s
        for s in parse((SEED / "seed-001-pageviews.sql").read_text())
        if (isinstance(s, ast.CreateSource) and s.name == "PAGEVIEW_STREAM")
        or (isinstance(s, ast.CreateAs) and s.name in WINDOW_QUERIES)
    ]


def compiled_setup() -> Callable[[Application], None]:
    return compile_statements(window_statements()).setup


def window_sql(topics: dict[str, str]) -> str:
    """:func:`window_statements` as a file for ``python -m streams.ksql run``, each seed topic
    (``topic1_PageView``, ``topic6``...) renamed as ``topics`` says."""
    texts = []
    for statement in window_statements():
        assert statement.position is not None
        text = statement.position.text
        for seed_name, name in topics.items():
            text = text.replace(f"'{seed_name}'", f"'{name}'")
        texts.append(text.rstrip().rstrip(";") + ";")
    return "\n\n".join(texts) + "\n"


#: ksqlDB's record cache at its server's default size, as ``run --property`` gives it.
RECORD_CACHE = {"cache.max.bytes.buffering": "10000000"}


@functools.cache
def window_pass(cached: bool = False) -> str:
    """The name of the one pass ``run`` makes of the three window queries (with
    :data:`RECORD_CACHE` if ``cached``)."""
    program = compile_statements(window_statements(), RECORD_CACHE if cached else None)
    (only,) = fusion_groups(program.queries.values())
    return pass_name(only)  # type: ignore[arg-type] # a pass of aggregations


def timed(setup: Callable[[Application], None], records: list) -> tuple[float, Counter[str]]:
    """Seconds to process ``records``, and how many records each output topic got."""
    produced: Counter[str] = Counter()
    with TestDriver(setup, partitions=1) as driver:
        started = time.perf_counter()
        for key, value, ts in records:
            driver.pipe("topic1_PageView", key, value, timestamp=ts)
            produced.update(record.topic for record in driver.read_all())
        return time.perf_counter() - started, produced


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ksql_windows", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--events", type=int, default=20_000, help="page views per run")
    parser.add_argument("--runs", type=int, default=3, help="interleaved runs of each")
    args = parser.parse_args(argv)
    records = list(page_views(PageViewPlan(args.events, 1_000, 1_700_000_100_000)))
    config = windows.WindowsConfig()
    contenders: dict[str, Callable[[Application], None]] = {
        "streams.windows": lambda app: windows.setup(app, config),
        "streams.ksql seed-001": compiled_setup(),
    }
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    outputs: dict[str, Counter[str]] = {}
    for _run in range(args.runs):
        for name, setup in contenders.items():
            elapsed, outputs[name] = timed(setup, records)
            seconds[name].append(elapsed)
    # A fast run that lost records (dead letters, say) would be no result at all.
    expected = {topic: outputs["streams.windows"][topic] for topic in WINDOW_TOPICS}
    if dict(outputs["streams.ksql seed-001"]) != expected:
        raise SystemExit(
            f"the compiled queries wrote {dict(outputs['streams.ksql seed-001'])}, "
            f"streams.windows {dict(outputs['streams.windows'])}: not the same results"
        )
    print(f"records written to topic6, topic7, topic8 by each: {list(expected.values())}")
    print(f"{'contender':24s} {'events/s':>10s} {'x streams.windows':>18s}")
    base = seconds["streams.windows"]
    for name, runs in seconds.items():
        ratio = statistics.median(b / s for b, s in zip(base, runs, strict=True))
        print(f"{name:24s} {args.events / statistics.median(runs):10,.0f} {ratio:18.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
