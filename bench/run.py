"""One command for the throughput benchmarks: ``python -m bench`` (from the repository root).

Preloads page views (and users) onto unique topics, then runs each contender ``--runs`` times
over the same input, interleaved (limit, contenders, limit, ...) so drift in machine load hits
all of them alike. Prints medians with the ratio to the limit measured in the same run, and
writes every raw run to ``bench/results/throughput-<time>.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench import kafka_streams, ksql_windows, preload, profile
from bench.kafka_io import Broker, group_done, unique_name
from bench.measure import Measurement, Progress, run_until_done
from clients.logs import setup_logging
from clients.settings import KafkaSettings, SchemaRegistrySettings

log = logging.getLogger("bench")

RESULTS = Path(__file__).resolve().parent / "results"
WINDOW_MS = 5 * 60 * 1000


@dataclass
class Inputs:
    pageviews: str
    users_avro: str
    users_clean: str
    events: int
    user_updates: int


@dataclass
class Contender:
    """One process kind to measure: how to start it and how to tell it has finished."""

    name: str
    #: (inputs, consumer group, state dir, output TOPIC_* names) -> the process's argv
    command: Callable[[Inputs, str, Path, dict[str, str]], list[str]]
    module: str | None = None
    reads_users: bool = False
    by_output: bool = False
    instances: int = 1
    #: The processor's input: the page views, or topic3's Avro user rows (streams.users).
    user_rows: bool = False
    #: Each instance pinned to one CPU (``taskset``), round robin over the machine's: the rate
    #: per CPU then shows the scale-out curve, which the scheduler would otherwise flatten.
    pinned: bool = False
    #: The consumer group its processes commit in, given the one they are started with.
    group_of: Callable[[str], str] = str

    def cpus(self) -> int:
        """The CPUs its instances may use (the rate's divisor per instance-core)."""
        return min(self.instances, os.cpu_count() or 1) if self.pinned else 0

    def commands(
        self, inputs: Inputs, group: str, states: list[Path], topics: dict[str, str]
    ) -> list[list[str]]:
        cmds = [self.command(inputs, group, state, topics) for state in states]
        if self.pinned:
            cpus = os.cpu_count() or 1
            cmds = [["taskset", "-c", str(i % cpus), *cmd] for i, cmd in enumerate(cmds)]
        return cmds

    def input(self, inputs: Inputs) -> tuple[str, int]:
        """(input topic, records in it)."""
        if self.user_rows:
            return inputs.users_avro, inputs.user_updates
        return inputs.pageviews, inputs.events


def _streams_cmd(module: str, *extra: str) -> Callable[..., list[str]]:
    def cmd(_inputs: Inputs, group: str, state: Path, _topics: dict[str, str]) -> list[str]:
        return [
            sys.executable, "-m", module, "--consumer-group", group, "--state-dir", str(state),
            "--commit-interval", "1", *extra,
        ]  # fmt: skip

    return cmd


def _limit_cmd(inputs: Inputs, group: str, _state: Path, topics: dict[str, str]) -> list[str]:
    return [
        sys.executable, "-m", "bench.limit", "--input", inputs.pageviews,
        "--output", topics["TOPIC_TUMBLING"], "--group", group,
    ]  # fmt: skip


def _bytewax_cmd(inputs: Inputs, _group: str, _state: Path, topics: dict[str, str]) -> list[str]:
    flow = (
        f"bench.bytewax_peer:build({inputs.pageviews!r}, {topics['TOPIC_TUMBLING']!r}, "
        f"{KafkaSettings.from_env().bootstrap_servers!r})"
    )
    return [sys.executable, "-m", "bytewax.run", flow, "-w", "1"]


def _kafka_streams_cmd(cache_bytes: int) -> Callable[..., list[str]]:
    def cmd(inputs: Inputs, group: str, state: Path, topics: dict[str, str]) -> list[str]:
        bootstrap = KafkaSettings.from_env().bootstrap_servers
        return kafka_streams.command(bootstrap, inputs.pageviews, topics, group, state, cache_bytes)

    return cmd


def _ksql_cmd(cached: bool) -> Callable[..., list[str]]:
    """The seed's three window queries, compiled, as ``streams.ksql run`` runs their pass
    (with ksqlDB's record cache if ``cached``)."""
    extra = [f"--property={k}={v}" for k, v in ksql_windows.RECORD_CACHE.items()] if cached else []

    def cmd(inputs: Inputs, group: str, state: Path, topics: dict[str, str]) -> list[str]:
        sql = state.with_suffix(".sql")
        sql.write_text(
            ksql_windows.window_sql(
                {
                    "topic1_PageView": inputs.pageviews,
                    "topic6": topics["TOPIC_TUMBLING"],
                    "topic7": topics["TOPIC_HOPPING"],
                    "topic8": topics["TOPIC_SESSION"],
                }
            )
        )
        return [
            sys.executable, "-m", "streams.ksql", "run", str(sql), "--pass",
            ksql_windows.window_pass(cached),
            "--consumer-group", group, "--state-dir", str(state), "--commit-interval", "1",
            *extra,
        ]  # fmt: skip

    return cmd


def _ksql_group(cached: bool) -> Callable[[str], str]:
    """The consumer group of the one pass ``streams.ksql run`` makes of the window queries,
    given the ``--consumer-group`` it is started with."""
    return lambda group: f"{group}-{ksql_windows.window_pass(cached)}"


def contenders(scale: list[int]) -> list[Contender]:
    found = [
        Contender("limit", _limit_cmd),
        Contender("bytewax peer (tumbling)", _bytewax_cmd, by_output=True),
        Contender("quix floor (pass-through)", _streams_cmd("bench.quix_floor"),
                  module="bench.quix_floor"),
        Contender("quix floor + group_by", _streams_cmd("bench.quix_floor", "--group-by"),
                  module="bench.quix_floor"),
        Contender("quix floor + group_by, 8 outputs",
                  _streams_cmd("bench.quix_floor", "--group-by", "--outputs", "8"),
                  module="bench.quix_floor"),
        Contender("kafka streams (cache off)", _kafka_streams_cmd(0)),
        Contender("kafka streams (cache on)",
                  _kafka_streams_cmd(kafka_streams.DEFAULT_CACHE_BYTES)),
        Contender("streams.windows changes", _streams_cmd("streams.windows", "--emit", "changes"),
                  module="streams.windows"),
        Contender("streams.windows cached", _streams_cmd("streams.windows", "--emit", "cached"),
                  module="streams.windows"),
        Contender("streams.ksql seed-001 windows", _ksql_cmd(cached=False),
                  module="streams.ksql", group_of=_ksql_group(cached=False)),
        Contender("streams.ksql seed-001 windows, record cache", _ksql_cmd(cached=True),
                  module="streams.ksql", group_of=_ksql_group(cached=True)),
        Contender("streams.country", _streams_cmd("streams.country"), module="streams.country",
                  reads_users=True),
        Contender("streams.users (Avro rows)", _streams_cmd("streams.users"),
                  module="streams.users", user_rows=True),
        # Scale-out of the two-phase path: its local stage runs on every input partition,
        # where one-phase --emit changes has only as many busy partitions as sources.
        *(
            Contender(f"streams.windows cached x{n} pinned",
                      _streams_cmd("streams.windows", "--emit", "cached"),
                      module="streams.windows", instances=n, pinned=True)
            for n in sorted({1, *scale}) if scale
        ),
    ]  # fmt: skip
    return [c for c in found if c.module is None or importlib.util.find_spec(c.module)]


def output_env(group: str) -> dict[str, str]:
    """Unique output topic names for one run, as the processors' TOPIC_* overrides."""
    names = (
        "TOPIC_CLEANED_USERS", "TOPIC_PAGEVIEWS_BY_COUNTRY", "TOPIC_TUMBLING", "TOPIC_HOPPING",
        "TOPIC_SESSION", "TOPIC_DEAD_LETTER", "TOPIC_LATE",
    )  # fmt: skip
    return {name: f"{group}-{name.removeprefix('TOPIC_').lower()}" for name in names}


def group_progress(broker: Broker, group: str, input_topic: str, total: int) -> Progress:
    def progress() -> tuple[int, bool]:
        # The app's repartition topics exist once it has started; it reads them back itself.
        # Quix names them repartition__<group>--..., Kafka Streams <group>-<name>-repartition.
        internal = [
            t
            for t in broker.topics_containing(group)
            if t.startswith("repartition__") or t.endswith("-repartition")
        ]
        committed = broker.group_offsets(group, [input_topic, *internal])
        done = sum(off for (topic, _p), off in committed.items() if topic == input_topic)
        if done < total:
            return done, False
        # The input is processed; what the app re-read through its own topics may not be.
        ends = {
            (t, p): off
            for t in [input_topic, *internal]
            for p, off in broker.end_offsets(t).items()
        }
        return done, group_done(committed, ends, input_topic, broker.holds_records)

    return progress


def output_progress(broker: Broker, topic: str, total: int) -> Progress:
    def progress() -> tuple[int, bool]:
        done = broker.record_count(topic)
        return done, done >= total

    return progress


def measure_once(
    broker: Broker,
    contender: Contender,
    inputs: Inputs,
    run: int,
    timeout_s: float,
    profile_s: float = 0,
) -> Measurement:
    """One run; with ``profile_s`` py-spy samples the first process for that long once it
    makes progress (see :mod:`bench.profile`)."""
    group = unique_name(contender.name.split()[0].replace(".", "-"))
    topics = output_env(group)
    broker.create_topics(topics.values(), partitions=5)
    env = {
        **os.environ,
        **topics,
        "TOPIC_PAGEVIEWS": inputs.pageviews,
        "TOPIC_USERS": inputs.users_avro,
        "LOG_LEVEL": "WARNING",
    }
    if contender.reads_users:
        env["TOPIC_CLEANED_USERS"] = inputs.users_clean
    with tempfile.TemporaryDirectory(prefix="bench-state-") as tmp:
        states = [Path(tmp) / str(i) for i in range(contender.instances)]
        cmds = contender.commands(inputs, group, states, topics)
        input_topic, total = contender.input(inputs)
        progress = (
            output_progress(broker, topics["TOPIC_TUMBLING"], total)
            if contender.by_output
            else group_progress(broker, contender.group_of(group), input_topic, total)
        )
        label = f"{contender.name.replace(' ', '_')}-run{run}"
        sampler = profile.Sampler(profile_path(contender), profile_s) if profile_s else None
        try:
            return run_until_done(
                label, cmds, env, progress, total, RESULTS / "logs", timeout_s, states,
                sampler,
            )  # fmt: skip
        finally:
            if sampler is not None:
                sampler.wait()
            broker.delete([*topics.values(), *broker.topics_containing(group)])


def profile_path(contender: Contender) -> Path:
    return RESULTS / "profiles" / f"{contender.name.replace(' ', '_')}.txt"


def print_profiles(chosen: list[Contender], console: Console, limit: int = 12) -> None:
    """Each profiled contender's top functions by self time, with their inclusive share."""
    for contender in chosen:
        path = profile_path(contender)
        if not path.exists():
            continue
        table = Table(title=f"{contender.name}: py-spy, top functions by self time ({path})")
        for col in ("function", "self", "inclusive"):
            table.add_column(col, justify="left" if col == "function" else "right")
        for share in profile.top_frames(path.read_text(), limit):
            table.add_row(share.frame, f"{share.own:.1%}", f"{share.inclusive:.1%}")
        console.print(table)


def preload_inputs(
    broker: Broker, events: int, users: int, user_updates: int, registry: str
) -> Inputs:
    inputs = Inputs(
        pageviews=unique_name("pageviews"),
        users_avro=unique_name("users"),
        users_clean=unique_name("cleaned-users"),
        events=events,
        user_updates=max(users, user_updates),
    )
    broker.create_topics([inputs.pageviews], partitions=5)
    broker.create_topics([inputs.users_avro, inputs.users_clean], 5, {"cleanup.policy": "compact"})
    # Event time starts one day ago, window-aligned, so no window is open at "now".
    now_ms = int(time.time() * 1000) - 24 * 3600 * 1000
    plan = preload.PageViewPlan(events, users, now_ms - now_ms % WINDOW_MS)
    user_plan = preload.UserPlan(users, inputs.user_updates)
    schema_id = preload.register_users_schema(registry, f"{inputs.users_avro}-value")
    preload.produce_all(
        broker.bootstrap, inputs.users_avro,
        preload.users_avro(user_plan, schema_id, plan.start_ms), inputs.user_updates,
    )  # fmt: skip
    clean = preload.cleaned_users(user_plan, plan.start_ms)
    preload.produce_all(broker.bootstrap, inputs.users_clean, clean, len(clean))
    preload.produce_all(broker.bootstrap, inputs.pageviews, preload.page_views(plan), events)
    return inputs


def summarise(runs: dict[str, list[Measurement]], cpus: dict[str, int]) -> list[dict[str, object]]:
    """Median per contender, and the median of per-run ratios to the limit of the same run;
    for pinned contenders (``cpus[name]`` > 0) the median rate per CPU as well."""
    limits = runs["limit"]
    rows = []
    for name, ms in runs.items():
        ratios = [m.events_per_s / lim.events_per_s for m, lim in zip(ms, limits, strict=False)]
        rates = [m.events_per_s for m in ms]
        rows.append(
            {
                "name": name,
                "events_per_s": statistics.median(rates),
                "spread": (max(rates) - min(rates)) / statistics.median(rates),
                "ratio_to_limit": statistics.median(ratios),
                "per_cpu": statistics.median(rates) / cpus[name] if cpus.get(name) else None,
                "events_per_cpu_s": statistics.median(m.events_per_cpu_s for m in ms),
                "busiest_share": statistics.median(m.busiest_share for m in ms),
                "drain_s": statistics.median(m.drain_seconds for m in ms),
                "peak_rss_mb": statistics.median(m.peak_rss_mb for m in ms),
                "state_mb": None
                if ms[0].state_mb is None
                else statistics.median(m.state_mb or 0.0 for m in ms),
                "runs": [asdict(m) | {"events_per_s": m.events_per_s} for m in ms],
            }
        )
    return rows


def print_table(rows: list[dict[str, object]], console: Console) -> None:
    table = Table(title="Throughput (median of runs; ratio = median of per-run ratios)")
    columns = (
        "contender", "events/s", "x limit", "per CPU", "ev/CPU-s", "busiest", "spread",
        "drain s", "peak RSS MB", "state MB",
    )  # fmt: skip
    for col in columns:
        table.add_column(col, justify="left" if col == "contender" else "right")
    for r in rows:
        state, per_cpu = r["state_mb"], r["per_cpu"]
        table.add_row(
            str(r["name"]),
            f"{r['events_per_s']:,.0f}",
            f"{r['ratio_to_limit']:.2f}",
            "-" if per_cpu is None else f"{per_cpu:,.0f}",
            f"{r['events_per_cpu_s']:,.0f}",
            f"{r['busiest_share']:.0%}",
            f"{r['spread']:.0%}",
            f"{r['drain_s']:.1f}",
            f"{r['peak_rss_mb']:.0f}",
            "-" if state is None else f"{state:.1f}",
        )
    console.print(table)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="page views to preload")
    parser.add_argument("--users", type=int, default=10_000, help="distinct users")
    parser.add_argument(
        "--user-updates",
        type=int,
        default=200_000,
        help="user rows on topic3 (inserts, then updates and deletes): streams.users' input",
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per contender (median)")
    parser.add_argument(
        "--scale",
        type=int,
        nargs="*",
        default=[2, 5],
        help="instance counts for scale-out (with 1: streams.windows --emit cached, each "
        "instance pinned to a CPU); none: no scale-out contenders",
    )
    parser.add_argument(
        "--only", nargs="*", help="measure only contenders whose name starts with one of these"
    )
    parser.add_argument("--timeout", type=float, default=900, help="seconds per run at most")
    parser.add_argument(
        "--profile",
        type=float,
        default=0,
        metavar="SECONDS",
        help="first do one extra, unmeasured run per contender with py-spy sampling it for "
        "SECONDS; collapsed stacks to bench/results/profiles/, top functions printed",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging()
    broker = Broker(KafkaSettings.from_env().bootstrap_servers)
    chosen = [c for c in contenders(args.scale) if not args.only or c.name.startswith(
        ("limit", *args.only))]  # fmt: skip
    try:
        inputs = preload_inputs(
            broker,
            args.events,
            args.users,
            args.user_updates,
            SchemaRegistrySettings.from_env().url,
        )
        if args.profile:
            for contender in chosen:
                profile_path(contender).unlink(missing_ok=True)
                measure_once(broker, contender, inputs, -1, args.timeout, args.profile)
        runs: dict[str, list[Measurement]] = {c.name: [] for c in chosen}
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / f"throughput-{time.strftime('%Y%m%dT%H%M%S')}.json"
        for run in range(args.runs):
            for contender in chosen:
                m = measure_once(broker, contender, inputs, run, args.timeout)
                log.info("%s run %d: %.0f events/s", contender.name, run, m.events_per_s)
                runs[contender.name].append(m)
            # After every round, so a run cut short (the stack stopped under it) keeps the
            # rounds it finished: each round's ratios stand on their own.
            rows = summarise(runs, {c.name: c.cpus() for c in chosen})
            out.write_text(
                json.dumps(
                    {"events": args.events, "users": args.users, "rounds": run + 1, "rows": rows},
                    indent=2,
                )
            )
    finally:
        broker.delete_created()
        broker.close()
    console = Console()
    print_profiles(chosen, console)
    print_table(rows, console)
    log.info("wrote %s", out)
    return 0
