"""``python -m streams.ksql run``: a program's persistent queries on Kafka, until stopped.

Everything is checked before anything starts: the statements compile (a statement that cannot
run is named with its file, line and reason), every source's topic exists or is created (a
source that declares ``PARTITIONS`` over a missing topic creates it, as ksqlDB does), and every
sink topic is created with the query's ``PARTITIONS`` or its source's partition count.

The sources and queries are written to the catalog topic (:mod:`streams.ksql.catalog_topic`)
for ``SHOW`` and ``DESCRIBE``. Then each pass (a query, or the windowed aggregations built in
one pass with it, see :func:`streams.ksql.plans.fusion_groups`) runs in a process of its own as
a Quix ``Application`` with a consumer group and a state directory of its own, named after the
pass: ksqlDB's consumer group per query. A query added to the file later starts from its sources'
earliest offsets, not where the others are; instances of the same ``run`` (the same group
prefix) split each query's partitions between them. Exactly-once, state on RocksDB with
changelog topics, restarts that neither reprocess nor lose anything: as the hand-written apps
(:mod:`streams.app`). The supervisor restarts a pass that fails and stops them all on SIGTERM or
Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

from clients.settings import KafkaSettings
from streams import app as streams_app
from streams.ksql import catalog_topic
from streams.ksql.compiler import Program, compile_statements
from streams.ksql.errors import KsqlError
from streams.ksql.parser import parse
from streams.ksql.plans import QueryPlan, pass_name
from streams.timestamps import MAX_FUTURE_MS

logger = logging.getLogger("streams.ksql.run")

#: Seconds a failed pass waits before it is started again, doubling up to the last.
RESTART_BACKOFF_S = (1, 2, 5, 10, 30)


def load(
    files: list[Path],
    properties: dict[str, str] | None = None,
    variables: dict[str, str] | None = None,
) -> Program:
    """The statements of ``files``, in order, compiled with the server ``properties`` (as
    ``SET`` would give them), each ``${name}`` replaced by its value in ``variables`` (as the
    ksqlDB CLI's ``--define`` does); KsqlError names the file and line."""
    statements = []
    for file in files:
        try:
            parsed = parse(substitute(file.read_text(), variables or {}))
        except KsqlError as exc:
            raise KsqlError(f"{file}: {exc.message}", exc.statement) from None
        statements.append((file, parsed))
    flat = [statement for _file, parsed in statements for statement in parsed]
    try:
        return compile_statements(flat, properties)
    except KsqlError as exc:
        where = next(
            (
                f"{file}:{s.position.line}"
                for file, parsed in statements
                for s in parsed
                if s.position is not None and s.position.text == exc.statement
            ),
            str(files[0]),
        )
        raise KsqlError(f"{where}: {exc.message}", exc.statement) from None


@dataclass(frozen=True)
class Pass:
    """Queries that run together: one process, consumer group and state directory."""

    name: str
    queries: tuple[QueryPlan, ...]


def passes(program: Program) -> list[Pass]:
    return [
        Pass(pass_name(group), tuple(group))  # type: ignore[arg-type] # aggregations
        for group in program.passes()
    ]


def ensure_topics(program: Program, admin: AdminClient) -> dict[str, int]:
    """Every topic the program reads or writes exists: missing declared sources with
    PARTITIONS and missing sinks are created (REPLICAS, and RETENTION_MS as the topic's
    ``retention.ms``, as ksqlDB does). Returns each topic's partition count."""
    existing = {
        name: len(meta.partitions) for name, meta in admin.list_topics(timeout=30).topics.items()
    }
    wanted: dict[str, NewTopic] = {}
    sinks = {query.sink.topic for query in program.queries.values()}
    for source in program.catalog.sources.values():
        if source.topic in existing or source.topic in sinks:
            continue
        if source.partitions is None:
            raise KsqlError(
                f"Kafka topic does not exist: {source.topic} (declare PARTITIONS to create it)"
            )
        wanted[source.topic] = _new_topic(source.topic, int(source.partitions), source.properties)
    counts = {**existing, **{topic: new.num_partitions for topic, new in wanted.items()}}
    for query in program.queries.values():  # in statement order: a sink may feed the next
        sink = query.sink
        if sink.topic in counts:
            continue
        declared = sink.properties.get("PARTITIONS")
        inputs = [counts[source.topic] for source in query.inputs if source.topic in counts]
        partitions = int(declared) if declared else max(inputs, default=1)
        wanted[sink.topic] = _new_topic(sink.topic, partitions, sink.properties)
        counts[sink.topic] = partitions
    if wanted:
        for topic, future in admin.create_topics(list(wanted.values())).items():
            future.result(timeout=60)
            logger.info("created topic %s (%d partitions)", topic, wanted[topic].num_partitions)
    return counts


def _new_topic(topic: str, partitions: int, properties: dict) -> NewTopic:
    """REPLICAS, else the broker's default (-1); RETENTION_MS, else the broker's."""
    config = {}
    if "RETENTION_MS" in properties:
        config["retention.ms"] = str(int(properties["RETENTION_MS"]))
    replicas = int(properties.get("REPLICAS", -1))
    return NewTopic(topic, num_partitions=partitions, replication_factor=replicas, config=config)


def run_pass(program: Program, name: str, args: argparse.Namespace) -> None:
    """One pass, in this process, until stopped."""
    chosen = [p for p in passes(program) if p.name == name]
    if not chosen:
        raise KsqlError(f"no query runs in a pass named {name}")
    pass_args = argparse.Namespace(**vars(args))
    pass_args.consumer_group = f"{args.consumer_group}-{name}"
    pass_args.state_dir = str(Path(args.state_dir) / name)
    app = streams_app.create_app(pass_args)
    # Each query reads its sources itself: a bad record is its dead letter, naming it.
    program.setup(
        app,
        [list(chosen[0].queries)],
        processor=f"streams.ksql {name}",
        max_future_ms=MAX_FUTURE_MS,
    )
    logger.info("running %s (%s)", name, ", ".join(q.id for q in chosen[0].queries))
    streams_app.run(app, pass_args)


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def substitute(text: str, variables: dict[str, str]) -> str:
    """``text`` with each ``${name}`` (anywhere, quoted or not; names are case-insensitive, as
    ksqlDB's) replaced by its value; an undefined one is an error naming it and its line."""
    defined = {name.lower(): value for name, value in variables.items()}

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.lower() not in defined:
            line = text.count("\n", 0, match.start()) + 1
            raise KsqlError(f"line {line}: variable '{name}' is not defined (--define {name}=...)")
        return defined[name.lower()]

    return _VARIABLE.sub(value, text)


def properties(pairs: list[str], option: str = "--property") -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise KsqlError(f"{option} takes NAME=VALUE, got {pair!r}")
        out[name.strip()] = value
    return out


class Supervisor:
    """A process per pass (``run --pass NAME``), each restarted with a backoff if it fails."""

    def __init__(self, argv: list[str], names: list[str]) -> None:
        self._argv = argv
        self._children: dict[str, subprocess.Popen] = {}
        self._failures = dict.fromkeys(names, 0)
        self._stopping = False

    def _start(self, name: str) -> None:
        self._children[name] = subprocess.Popen(
            [sys.executable, "-m", "streams.ksql", "run", *self._argv, "--pass", name]
        )

    def dump_stacks(self, *_signal: object) -> None:
        """SIGUSR1: each pass prints its threads' stacks (see ``streams.app.run``)."""
        for child in self._children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGUSR1)

    def stop(self, *_signal: object) -> None:
        self._stopping = True
        for child in self._children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        signal.signal(signal.SIGUSR1, self.dump_stacks)
        for name in self._failures:
            self._start(name)
        restart_at: dict[str, float] = {}
        while True:
            if self._stopping:
                for child in self._children.values():
                    try:
                        child.wait(60)
                    except subprocess.TimeoutExpired:
                        child.kill()
                return 0
            for name, child in list(self._children.items()):
                code = child.poll()
                if code is None or name in restart_at:
                    continue
                failures = self._failures[name] = self._failures[name] + 1
                delay = RESTART_BACKOFF_S[min(failures, len(RESTART_BACKOFF_S)) - 1]
                logger.error("%s exited with %s; restarting in %d s", name, code, delay)
                restart_at[name] = time.monotonic() + delay
            for name, when in list(restart_at.items()):
                if time.monotonic() >= when and not self._stopping:
                    del restart_at[name]
                    self._start(name)
            time.sleep(0.2)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, help=".sql files, run in order")
    parser.add_argument(
        "--property",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a ksqlDB property, as SET gives it (ksql.output.topic.name.prefix=dev-, say; "
        "cache.max.bytes.buffering=10000000 for ksqlDB's record cache: windowed results "
        "every commit.interval.ms, in two phases)",
    )
    parser.add_argument(
        "--define",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a variable: each ${NAME} in the files is replaced by VALUE (as the ksqlDB CLI's "
        "--define)",
    )
    parser.add_argument(
        "--pass",
        dest="run_pass",
        metavar="NAME",
        help="run only this pass (a query id, or the name `explain` gives a pass's repartition "
        "topic) in this process; without it, every pass runs in a process of its own",
    )
    streams_app.add_app_arguments(
        parser,
        "ksql",
        group_help="prefix of the consumer groups, one per query: <prefix>-<query>; "
        "instances with the same prefix split each query's partitions",
        state_help="RocksDB state, a directory per query below it",
    )


def main(args: argparse.Namespace, argv: list[str]) -> int:
    try:
        variables = properties(args.define, "--define")
        program = load(args.files, properties(args.property), variables)
        if args.run_pass is None:
            bootstrap = KafkaSettings.from_env().bootstrap_servers
            ensure_topics(program, AdminClient({"bootstrap.servers": bootstrap}))
            runs_in = {query.id: p.name for p in passes(program) for query in p.queries}
            records = catalog_topic.entries(program, args.consumer_group, runs_in)
            catalog_topic.publish(bootstrap, records, args.consumer_group)
    except KsqlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.run_pass is not None:
        run_pass(program, args.run_pass, args)
        return 0
    names = [p.name for p in passes(program)]
    if not names:
        print("error: no persistent queries to run", file=sys.stderr)
        return 1
    logger.info("running %d quer(ies) in %d process(es)", len(program.queries), len(names))
    return Supervisor(argv, names).run()
