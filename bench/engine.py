"""CPU-only throughput of the windows engine (``streams.windowing``), no broker, no RocksDB.

Runs the same generated page views through (a) JSON decode + encode only, the in-process
counterpart of the limit, and (b) decode + ``WindowEngine.process`` (all three windows) +
encode of every result, in each emission mode. Isolates the engine's own cost from Kafka I/O,
so its owners can see what optimising it can win; ``--profile`` adds a pyinstrument report.

    python -m bench.engine --events 100000 [--profile]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import orjson

from bench.preload import PageViewPlan, page_views
from streams.windowing import DictState
from streams.windows import WindowsConfig


def decode_encode(records: list[tuple[bytes, bytes | None, int]]) -> None:
    for _key, value, _ts in records:
        orjson.dumps(orjson.loads(value))


def engine_run(records: list[tuple[bytes, bytes | None, int]], emit: str) -> int:
    engine = WindowsConfig(emit=emit).engine()
    state = DictState()
    outputs = 0
    for _key, value, ts in records:
        row = orjson.loads(value)
        results, _late = engine.process(state, row["source"], row, ts)
        for result in results:
            orjson.dumps(result.record("source")[1])
        outputs += len(results)
    return outputs


def timed(fn: Callable[..., object], *args: object) -> float:
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.engine", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--events", type=int, default=100_000, help="page views to process")
    parser.add_argument("--profile", action="store_true", help="pyinstrument the changes mode")
    args = parser.parse_args(argv)
    records = list(page_views(PageViewPlan(args.events, 10_000, 1_700_000_100_000)))
    base = timed(decode_encode, records)
    print(f"decode+encode only: {args.events / base:,.0f} ev/s")
    for emit in ("changes", "cached", "final"):
        seconds = timed(engine_run, records, emit)
        print(
            f"engine {emit:8s}: {args.events / seconds:,.0f} ev/s "
            f"= {base / seconds:.2f}x decode+encode"
        )
    if args.profile:
        from pyinstrument import Profiler

        with Profiler() as profiler:
            engine_run(records, "changes")
        print(profiler.output_text(show_all=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
