"""The limit: consume -> JSON decode -> JSON encode -> produce, with no processing at all.

What any Python processor on this broker could at best reach, so every processor's figure is
quoted as a ratio to it. It uses the same client (confluent-kafka) and JSON library (orjson)
as Quix Streams, batched consumption, and commits offsets (auto-commit, 1 s) so the runner
measures it by consumer-group lag exactly as it measures the processors.

    python -m bench.limit --input TOPIC --output TOPIC --group GROUP
"""

from __future__ import annotations

import argparse
import logging
import signal

import orjson
from confluent_kafka import Consumer, Producer

from clients.kafka import produce
from clients.logs import setup_logging
from clients.settings import KafkaSettings

log = logging.getLogger("bench.limit")


def run(bootstrap: str, input_topic: str, output_topic: str, group: str, batch: int) -> int:
    """Copy records until SIGTERM/SIGINT; returns how many were copied."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "auto.commit.interval.ms": 1000,
        }
    )
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    consumer.subscribe([input_topic])
    copied = 0
    try:
        while not stopping:
            for msg in consumer.consume(batch, 0.5):
                if msg.error() is not None:
                    log.warning("consume error: %s", msg.error())
                    continue
                value = orjson.dumps(orjson.loads(msg.value()))
                produce(producer, output_topic, msg.key(), value, msg.timestamp()[1])
                copied += 1
            producer.poll(0)
    finally:
        producer.flush(30)
        consumer.close()
    return copied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.limit", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--input", required=True, help="topic to read")
    parser.add_argument("--output", required=True, help="topic to write")
    parser.add_argument("--group", required=True, help="consumer group id")
    parser.add_argument("--batch", type=int, default=1000, help="records per consume() call")
    parser.add_argument(
        "--bootstrap",
        default=KafkaSettings.from_env().bootstrap_servers,
        help="Kafka bootstrap servers (env KAFKA_BOOTSTRAP_SERVERS)",
    )
    args = parser.parse_args(argv)
    setup_logging()
    copied = run(args.bootstrap, args.input, args.output, args.group, args.batch)
    log.info("copied %d records", copied)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
