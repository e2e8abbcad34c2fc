"""CPU-only throughput of the window engine (``streams.operators.window_engine``): no broker,
no RocksDB.

Runs the same generated page views through (a) JSON decode + encode only, the in-process
counterpart of the limit, and (b) decode + the engine (all three windows) + encode of every
output record, in each emission mode, the way ``streams.windows`` calls it. Isolates the
engine's own cost from Kafka I/O, so its owners can see what optimising it can win.

``--baseline REV`` also runs the engine's module as it was at git revision REV,
interleaved with the current one, so a before/after ratio comes from one run on one machine
load (absolute figures on a shared machine mean little). ``--profile`` adds each engine's
top functions by own time under EMIT CHANGES (cProfile).

    python -m bench.engine --events 100000 --runs 3 [--baseline REV] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import orjson

from bench.preload import PageViewPlan, page_views
from streams.operators import window_engine as windowing
from streams.windows import COUNT_COLUMN, ZERO, WindowsConfig

Records = list[tuple[bytes, bytes | None, int]]
#: Where the engine's module was: the first path a revision has is the one loaded.
ENGINE_PATHS = ("src/streams/operators/window_engine.py", "src/streams/windowing.py")
ROOT = Path(__file__).resolve().parent.parent


def decode_encode(records: Records) -> int:
    for _key, value, _ts in records:
        orjson.dumps(orjson.loads(value))
    return len(records)


def engine_at(revision: str) -> types.ModuleType:
    """``streams.operators.window_engine`` as of a git revision, loaded as a separate module."""
    for path in ENGINE_PATHS:
        shown = subprocess.run(
            ["git", "show", f"{revision}:{path}"], cwd=ROOT, capture_output=True, text=True
        )
        if shown.returncode == 0:
            break
    else:
        raise SystemExit(f"{revision} has none of {', '.join(ENGINE_PATHS)}")
    source = shown.stdout
    module = types.ModuleType(f"windowing_at_{revision}")
    sys.modules[module.__name__] = module  # dataclasses resolve their module by name
    exec(compile(source, f"{revision}:{path}", "exec"), module.__dict__)
    return module


def engine_run(records: Records, emit: str, module: types.ModuleType = windowing) -> int:
    """Decode, engine, encode every output record, as the app's per-record step does.

    Revisions are driven as the app drove them then: ``process`` returning records (now),
    ``records`` with the group column and zero (before), or ``process`` returning
    ``WindowResult`` objects and a copy into the output record (earliest).
    """
    config = WindowsConfig(emit=emit)
    aggregate = module.count_aggregate(COUNT_COLUMN)
    outputs = 0
    state = module.DictState()
    if not hasattr(module, "WindowResult"):
        engine = (
            config.engine()
            if module is windowing
            else module.WindowEngine(
                config.specs(),
                aggregate,
                emit,
                cache_ms=config.cache_ms,
                group_column="source",
                zero=ZERO,
            )
        )
        for _key, value, ts in records:
            row = orjson.loads(value)
            out, _late = engine.process(state, row["source"], row, ts)
            for record in out:
                orjson.dumps(record)
            outputs += len(out)
        return outputs
    engine = module.WindowEngine(config.specs(), aggregate, emit, cache_ms=config.cache_ms)
    if hasattr(engine, "records"):
        for _key, value, ts in records:
            row = orjson.loads(value)
            out, _late = engine.records(state, row["source"], row, ts, "source", ZERO)
            for record in out:
                orjson.dumps(record)
            outputs += len(out)
        return outputs
    for _key, value, ts in records:
        row = orjson.loads(value)
        results, _late = engine.process(state, row["source"], row, ts)
        for result in results:
            orjson.dumps(dict(result.record("source", ZERO)[1]))
        outputs += len(results)
    return outputs


def own_time(records: Records, module: types.ModuleType, limit: int = 8) -> list[tuple[float, str]]:
    """cProfile's own (self) time per function under EMIT CHANGES, as shares of the total.

    Deterministic profiling inflates call overhead, so the shares, not the seconds, are what
    compare between two revisions.
    """
    profiler = cProfile.Profile()
    profiler.runcall(engine_run, records, "changes", module)
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in stats.values())
    ranked = sorted(stats.items(), key=lambda item: item[1][2], reverse=True)[:limit]
    return [
        (entry[2] / total, f"{Path(file).name}:{line} {func}")
        for (file, line, func), entry in ranked
    ]


def timed(fn: Callable[..., int], *args: object) -> float:
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.engine", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--events", type=int, default=100_000, help="page views to process")
    parser.add_argument("--runs", type=int, default=3, help="runs of each (median reported)")
    parser.add_argument(
        "--baseline", metavar="REV", help="also run the engine as of this git revision"
    )
    parser.add_argument(
        "--profile", action="store_true", help="top functions by own time, emit changes"
    )
    args = parser.parse_args(argv)
    records = list(page_views(PageViewPlan(args.events, 10_000, 1_700_000_100_000)))
    engines: dict[str, types.ModuleType] = {"current": windowing}
    if args.baseline:
        engines[args.baseline] = engine_at(args.baseline)
    times: dict[str, list[float]] = {}
    for _run in range(args.runs):
        # Interleaved, so drift in machine load hits every contender alike.
        times.setdefault("decode+encode", []).append(timed(decode_encode, records))
        for emit in windowing.EMIT_MODES:
            for name, module in engines.items():
                times.setdefault(f"{name} {emit}", []).append(
                    timed(engine_run, records, emit, module)
                )
    base = times["decode+encode"]
    print(f"{'contender':24s} {'events/s':>10s} {'x decode+encode':>16s} {'x baseline':>11s}")
    for name, seconds in times.items():
        ratio = statistics.median(b / s for b, s in zip(base, seconds, strict=True))
        versus = ""
        if args.baseline and name.startswith("current "):
            before = times[f"{args.baseline} {name.removeprefix('current ')}"]
            versus = f"{statistics.median(b / s for b, s in zip(before, seconds, strict=True)):.2f}"
        rate = args.events / statistics.median(seconds)
        print(f"{name:24s} {rate:10,.0f} {ratio:16.3f} {versus:>11s}")
    if args.profile:
        for name, module in engines.items():
            print(f"\nprofile of {name} (emit changes), top functions by own time:")
            for share, where in own_time(records, module):
                print(f"  {share:6.1%}  {where}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
