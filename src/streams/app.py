"""The Quix ``Application`` every processor runs on, configured once.

Shared so that the three processors, ``python -m streams`` and the benchmarks agree on what
matters for correctness: exactly-once by default (the broker supports transactions), reading
from the earliest offset (a new consumer group must not skip the table topic's history), and
Java's murmur2 partitioner for keyed output, so that topics written here co-partition with
topics written by Java clients (Kafka Connect, ksqlDB) and with each other.
"""

from __future__ import annotations

import argparse
import faulthandler
import signal

from quixstreams import Application

from clients.logs import setup_logging
from clients.settings import KafkaSettings, env, librdkafka_properties
from streams import instance, quix
from streams.operators.repartition import RepartitionPurger

GUARANTEES = ("exactly-once", "at-least-once")


def add_app_arguments(
    parser: argparse.ArgumentParser,
    processor: str,
    group_help: str = "Kafka consumer group; instances sharing it split the partitions",
    state_help: str = "RocksDB state directory",
) -> None:
    """``--consumer-group``, ``--state-dir``, ``--commit-interval``, ``--processing-guarantee``.

    ``processor`` names the consumer group's environment variable and default:
    ``windows`` -> ``WINDOWS_CONSUMER_GROUP``, ``pageview-streams-windows``; ``group_help`` and
    ``state_help`` say what the two are to a processor that runs several apps.
    """
    parser.add_argument(
        "--consumer-group",
        default=env(f"{processor.upper()}_CONSUMER_GROUP", f"pageview-streams-{processor}"),
        help=f"{group_help} (env {processor.upper()}_CONSUMER_GROUP)",
    )
    parser.add_argument(
        "--state-dir",
        default=env("STREAMS_STATE_DIR", "state"),
        help=f"{state_help}; rebuilt from changelog topics if lost "
        "(env STREAMS_STATE_DIR; default ./state)",
    )
    parser.add_argument(
        "--commit-interval",
        type=float,
        default=float(env("STREAMS_COMMIT_INTERVAL_S", "1")),
        help="seconds between commits (transactions under exactly-once); results become "
        "visible at commits, and twice over behind a repartition: about 1.5x this is the "
        "median latency (env STREAMS_COMMIT_INTERVAL_S; default 1)",
    )
    parser.add_argument(
        "--processing-guarantee",
        choices=GUARANTEES,
        default=env("STREAMS_PROCESSING_GUARANTEE", "exactly-once"),
        help="exactly-once: Kafka transactions, consumers of the outputs read_committed; "
        "at-least-once: faster, may repeat output after a crash "
        "(env STREAMS_PROCESSING_GUARANTEE; default exactly-once)",
    )
    parser.add_argument(
        "--purge-interval",
        type=float,
        default=float(env("STREAMS_PURGE_INTERVAL_S", "30")),
        help="seconds between deletions of repartition records the group has committed "
        "(env STREAMS_PURGE_INTERVAL_S; default 30)",
    )


def create_app(args: argparse.Namespace) -> Application:
    """An Application on the configured broker, from the arguments of :func:`add_app_arguments`.

    ``STREAMS_PRODUCER_CONFIG`` / ``STREAMS_CONSUMER_CONFIG`` add librdkafka properties
    (``key=value,...``: security, batching); the partitioner can be overridden there too.
    From here on, SIGUSR1 prints every thread's stack to stderr: what a process that makes no
    progress is waiting for. Under exactly-once the state directory is this process's (see
    :mod:`streams.instance`). An instance the group has dropped (paused past its session)
    commits nothing it did before (see
    :func:`streams.quix.drop_checkpoint_when_partitions_are_lost`).
    """
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    setup_logging()
    quix.check_version()
    transactions: dict[str, str] = {}
    if args.processing_guarantee == "exactly-once":
        try:
            transactions["transactional.id"] = instance.claim(args.state_dir, args.consumer_group)
        except instance.StateDirInUse as exc:
            raise SystemExit(f"error: {exc}") from None
    app = Application(
        broker_address=KafkaSettings.from_env().bootstrap_servers,
        consumer_group=args.consumer_group,
        auto_offset_reset="earliest",
        processing_guarantee=args.processing_guarantee,
        commit_interval=args.commit_interval,
        state_dir=args.state_dir,
        producer_extra_config={
            "partitioner": "murmur2_random",
            **librdkafka_properties("STREAMS_PRODUCER_CONFIG"),
            **transactions,
        },
        consumer_extra_config=librdkafka_properties("STREAMS_CONSUMER_CONFIG"),
    )
    quix.drop_checkpoint_when_partitions_are_lost(app)
    return app


def run(app: Application, args: argparse.Namespace) -> None:
    """``app.run()`` with the group's repartition topics kept until processed (see
    :mod:`streams.operators.repartition`); call it once the pipeline, which creates them, is
    built."""
    purger = RepartitionPurger(
        KafkaSettings.from_env().bootstrap_servers, args.consumer_group, args.purge_interval
    )
    purger.start()
    try:
        app.run()
    finally:
        purger.stop()
