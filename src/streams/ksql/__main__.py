"""``python -m streams.ksql``: ksqlDB statements on Quix Streams.

python -m streams.ksql run FILE.sql [FILE.sql ...]   # every persistent query, until stopped
python -m streams.ksql query "SELECT ... EMIT CHANGES [LIMIT n];" [--from-beginning]
                             [--statements FILE.sql]  # a push query's rows, as they come
python -m streams.ksql print TOPIC [--from-beginning] [--limit N]   # a topic's records
python -m streams.ksql show streams|tables|queries|topics    # what `run` runs (SHOW)
python -m streams.ksql describe NAME             # a stream's or table's columns (DESCRIBE)
python -m streams.ksql explain FILE.sql          # the Quix topology of each query
python -m streams.ksql test -s S.sql -i IN.json -o OUT.json   # ksql-test-runner's format
python -m streams.ksql conformance [--file NAME] [-v]         # ksqlDB's own test cases
python -m streams.ksql                           # an interactive shell (ksqlDB's CLI)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from confluent_kafka.admin import AdminClient
from tqdm import tqdm

from clients.logs import setup_logging
from clients.settings import KafkaSettings
from streams.ksql import adhoc, catalog_topic, conformance, runner, shell
from streams.ksql.compiler import compile_sql
from streams.ksql.errors import KsqlError


def explain(args: argparse.Namespace) -> int:
    try:
        program = compile_sql(Path(args.file).read_text())
    except KsqlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(program.explain() or "no persistent queries")
    return 0


def test(args: argparse.Namespace) -> int:
    """ksqlDB's ksql-test-runner: exit 0 when the outputs match, 1 with what differs."""
    try:
        case = conformance.test_runner_case(
            Path(args.statements), Path(args.input), Path(args.output)
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    result = conformance.run_case(case)
    if result.status == conformance.PASSED:
        print("Test passed!")
        return 0
    print(f"Test failed: {result.detail}", file=sys.stderr)
    return 1


def run_conformance(args: argparse.Namespace) -> int:
    cases = conformance.load_cases(Path(args.dir) if args.dir else None, args.file or None)
    results = [
        conformance.run_case(case)
        for case in tqdm(cases, desc="ksqlDB cases", unit="case", disable=args.quiet)
    ]
    print(conformance.table(results))
    if args.verbose:
        for result in results:
            if result.status != conformance.PASSED:
                print(f"{result.status}: {result.case.path}: {result.detail}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                [{"case": r.case.path, "status": r.status, "detail": r.detail} for r in results],
                indent=1,
            )
        )
    return 0


def show(args: argparse.Namespace) -> int:
    bootstrap = KafkaSettings.from_env().bootstrap_servers
    catalog = catalog_topic.read(bootstrap)
    groups = [v["group"] for k, v in catalog.items() if k.startswith("query:")]
    topics = {}
    if args.kind == "topics":
        listed = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=30).topics
        # As ksqlDB's SHOW TOPICS: internal topics (Quix's, the catalog's) left out.
        topics = {
            name: len(meta.partitions)
            for name, meta in listed.items()
            if not name.startswith(("_", "repartition__", "changelog__"))
        }
    members = catalog_topic.group_members(bootstrap, groups) if args.kind == "queries" else {}
    catalog_topic.print_table(catalog_topic.show(args.kind, catalog, members, topics))
    return 0


def describe(args: argparse.Namespace) -> int:
    table = catalog_topic.describe(
        args.name, catalog_topic.read(KafkaSettings.from_env().bootstrap_servers)
    )
    if table is None:
        print(f"error: {args.name.upper()} does not exist.", file=sys.stderr)
        return 1
    catalog_topic.print_table(table)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m streams.ksql",
        description="ksqlDB statements compiled onto Quix Streams pipelines. Without a "
        "command: an interactive shell (SELECT, PRINT, SHOW, DESCRIBE, CREATE STREAM|TABLE "
        "sources, SET, RUN SCRIPT; HELP lists them).",
    )
    commands = parser.add_subparsers(dest="command")
    p = commands.add_parser(
        "run", help="run the statements' persistent queries on Kafka until stopped"
    )
    runner.add_arguments(p)
    p.set_defaults(func=lambda args: runner.main(args, run_argv))
    p = commands.add_parser(
        "query",
        help="run a push query (SELECT ... EMIT CHANGES) and print its rows as they come, until "
        "its LIMIT or Ctrl-C; it leaves no consumer group, topic or state behind",
    )
    adhoc.add_query_arguments(p)
    p.set_defaults(func=adhoc.query_main)
    p = commands.add_parser(
        "print", help="print a topic's records (ksqlDB's PRINT) until --limit or Ctrl-C"
    )
    adhoc.add_print_arguments(p)
    p.set_defaults(func=adhoc.print_main)
    p = commands.add_parser(
        "show", help="SHOW STREAMS | TABLES | QUERIES | TOPICS, from what `run` keeps in Kafka"
    )
    p.add_argument("kind", choices=catalog_topic.KINDS, type=str.lower)
    p.set_defaults(func=show)
    p = commands.add_parser("describe", help="DESCRIBE a stream or table that `run` declared")
    p.add_argument("name")
    p.set_defaults(func=describe)
    p = commands.add_parser("explain", help="print each persistent query's Quix topology")
    p.add_argument("file", help="a .sql file of ksqlDB statements")
    p.set_defaults(func=explain)
    p = commands.add_parser(
        "test", help="run a ksql-test-runner case (statements, inputs, expected outputs)"
    )
    p.add_argument("-s", "--statements", required=True, help="the .sql file")
    p.add_argument("-i", "--input", required=True, help='input.json: {"inputs": [...]}')
    p.add_argument("-o", "--output", required=True, help='output.json: {"outputs": [...]}')
    p.set_defaults(func=test)
    p = commands.add_parser("conformance", help="run ksqlDB's query-validation cases")
    p.add_argument(
        "--dir", help="the cases' folder (default: ../shared/ksql-qtt beside the repository)"
    )
    p.add_argument("--file", action="append", help="only this case file (name without .json)")
    p.add_argument("-v", "--verbose", action="store_true", help="list every case not passed")
    p.add_argument("--json", help="also write every case's result to this file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_conformance)
    argv = sys.argv[1:] if argv is None else argv
    # What `run` was given, for the process it starts per query (each adds its --pass).
    run_argv = argv[argv.index("run") + 1 :] if "run" in argv else []
    args = parser.parse_args(argv)
    setup_logging()
    if args.command is None:
        return shell.main()
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
