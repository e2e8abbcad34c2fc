"""``python -m producers.clickstream``: the input of Confluent's clickstream tutorial.

Written from the tutorial's datagen definitions (``../shared/ksql-statements/datagen-*.avro``),
as kafka-connect-datagen writes them:

- ``clickstream_codes``: the six HTTP codes and their definitions, keyed by the code;
- ``clickstream_users``: users 1..``--users`` (username, names, city, level, registered_at
  drawn from the definition's value sets), keyed by the user id;
- ``clickstream``: clicks with no key: an ``ip`` per session (datagen's ``session`` field) and
  the ``userid`` tied to it (``session-sibling-int-hash``, -1..40: ids without a user exist),
  ``request``, ``agent``, and ``status`` and ``bytes`` as JSON strings, as datagen writes them
  (ksqlDB reads them into its INT and BIGINT columns). ``_time`` and ``time`` are the event time,
  which is also the record timestamp (the tutorial's statements take event time from it).

Table keys are 4-byte big-endian integers (Kafka's IntegerSerializer), values JSON. Tables are
written first, so a click meets its user and code. ``--pause-every N --pause-s S`` leaves S
seconds of silence after every N clicks, as the tutorial's script pauses datagen to make user
sessions end. Event time starts at ``--start`` (epoch ms), else now, and advances
``--step-ms`` per click; with ``--rate`` each click is sent when its event time comes on the
wall clock (a live dashboard), else as fast as possible.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import random
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from tqdm import tqdm

from clients.logs import setup_logging
from clients.settings import KafkaSettings, env
from contracts import topics
from producers.kafka import CheckedProducer

logger = logging.getLogger("producers.clickstream")

Record = tuple[bytes | None, bytes, int]  # key, value, timestamp (ms)

CODES = {
    200: "Successful",
    302: "Redirect",
    404: "Page not found",
    405: "Method not allowed",
    406: "Not acceptable",
    407: "Proxy authentication required",
}
# The definition's options, duplicates included: they weigh the draw as datagen's do.
IPS = tuple(
    f"{prefix}.{suffix}"
    for prefix in ("111", "222", "122", "233")
    for suffix in (
        "152.45.45",
        "203.236.146",
        "168.57.122",
        "249.79.93",
        "168.57.122",
        "90.225.227",
        "173.165.103",
        "145.8.144",
        "245.174.248",
        "245.174.111",
    )
)
REQUESTS = (
    "GET /index.html HTTP/1.1",
    "GET /site/user_status.html HTTP/1.1",
    "GET /site/login.html HTTP/1.1",
    "GET /site/user_status.html HTTP/1.1",
    "GET /images/track.png HTTP/1.1",
    "GET /images/logo-small.png HTTP/1.1",
)
STATUSES = ("200", "302", "404", "405", "406", "407")
BYTES = ("278", "1289", "2048", "4096", "4006", "4196", "14096")
AGENTS = (
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/59.0.3071.115 Safari/537.36",
)
USERNAMES = (
    "akatz1022",
    "bobk_43",
    "alison_99",
    "k_robertz_88",
    "Ferd88",
    "Reeva43",
    "Antonio_0966",
    "ArlyneW8ter",
    "DimitriSchenz88",
    "Oriana_70",
    "AbdelKable_86",
    "Roberto_123",
    "AlanGreta_GG66",
    "Nathan_126",
    "AndySims_345324",
    "GlenAlan_23344",
    "LukeWaters_23",
    "BenSteins_235",
)
FIRST_NAMES = (
    "Elwyn",
    "Curran",
    "Hanson",
    "Woodrow",
    "Ferd",
    "Reeva",
    "Antonio",
    "Arlyne",
    "Dimitri",
    "Oriana",
    "Abdel",
    "Greta",
)
LAST_NAMES = (
    "Vanyard",
    "Vears",
    "Garrity",
    "Trice",
    "Tomini",
    "Jushcke",
    "De Banke",
    "Pask",
    "Rockhill",
    "Romagosa",
    "Adicot",
    "Lalonde",
)
CITIES = ("Palo Alto", "San Francisco", "Raleigh", "London", "Frankfurt", "New York")
LEVELS = ("Gold", "Silver", "Platinum")
USERID_MIN, USERID_MAX = -1, 40
REGISTERED_MIN, REGISTERED_MAX = 1_407_645_330_000, 1_502_339_792_000


def int_key(value: int) -> bytes:
    """Kafka's IntegerSerializer: 4 bytes, big-endian (ksqlDB's KAFKA INT key)."""
    return struct.pack(">i", value)


def userid_of(ip: str) -> int:
    """datagen's ``session-sibling-int-hash``: the user id a session's ip stands for, in range
    (a stable hash, so every run and machine agree)."""
    digest = int.from_bytes(hashlib.sha256(ip.encode()).digest()[:4], "big")
    return USERID_MIN + digest % (USERID_MAX - USERID_MIN + 1)


def codes() -> list[Record]:
    return [
        (int_key(code), orjson.dumps({"code": code, "definition": text}), 0)
        for code, text in CODES.items()
    ]


def users(count: int, seed: int) -> list[Record]:
    rng = random.Random(seed)
    out = []
    for user_id in range(1, count + 1):
        row = {
            "user_id": user_id,
            "username": rng.choice(USERNAMES),
            "registered_at": rng.randint(REGISTERED_MIN, REGISTERED_MAX),
            "first_name": rng.choice(FIRST_NAMES),
            "last_name": rng.choice(LAST_NAMES),
            "city": rng.choice(CITIES),
            "level": rng.choice(LEVELS),
        }
        out.append((int_key(user_id), orjson.dumps(row), 0))
    return out


@dataclass(frozen=True)
class ClickPlan:
    """``count`` clicks from ``start_ms``, ``step_ms`` apart in event time; a session (ip)
    lasts ``session_clicks`` clicks on average; ``pause_ms`` of silence after every
    ``pause_every`` clicks (0: none)."""

    count: int
    start_ms: int
    step_ms: int = 100
    seed: int = 1
    session_clicks: int = 20
    pause_every: int = 0
    pause_ms: int = 0


def format_time(ms: int) -> str:
    """datagen's ``format_as_time`` of ``dd/MMM/yyyy:HH:mm:ss Z`` (UTC)."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")


def clicks(plan: ClickPlan) -> Iterator[Record]:
    rng = random.Random(plan.seed)
    ts = plan.start_ms
    ip = rng.choice(IPS)
    for i in range(plan.count):
        if i and plan.pause_every and i % plan.pause_every == 0:
            ts += plan.pause_ms
        if rng.random() < 1 / plan.session_clicks:
            ip = rng.choice(IPS)
        click = {
            "ip": ip,
            "userid": userid_of(ip),
            "remote_user": "-",
            "time": format_time(ts),
            "_time": ts,
            "request": rng.choice(REQUESTS),
            "status": rng.choice(STATUSES),
            "bytes": rng.choice(BYTES),
            "referrer": "-",
            "agent": rng.choice(AGENTS),
        }
        yield None, orjson.dumps(click), ts
        ts += plan.step_ms


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m producers.clickstream",
        description="Generate the clickstream tutorial's input: clickstream_codes and "
        "clickstream_users (tables keyed by 4-byte integers), then clicks on clickstream.",
    )
    parser.add_argument(
        "--count", type=int, default=10_000, help="clicks to send; 0: until stopped"
    )
    parser.add_argument("--users", type=int, default=40, help="users 1..N (default 40)")
    parser.add_argument(
        "--start",
        type=int,
        default=None,
        help="event time of the first click, epoch ms (default: now)",
    )
    parser.add_argument(
        "--step-ms",
        type=int,
        default=None,
        help="event time between clicks, ms (default 100, or 1000 / --rate)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=float(env("CLICKSTREAM_RATE", "0")),
        help="clicks per second, sent as their event time comes on the wall clock (pauses "
        "included); 0: as fast as possible (env CLICKSTREAM_RATE; default 0)",
    )
    parser.add_argument(
        "--pause-every", type=int, default=0, help="a pause after every N clicks (default: none)"
    )
    parser.add_argument(
        "--pause-s", type=float, default=60.0, help="length of a pause, s (default 60)"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument(
        "--topic", default=env("TOPIC_CLICKSTREAM", "clickstream"), help="env TOPIC_CLICKSTREAM"
    )
    parser.add_argument(
        "--users-topic",
        default=env("TOPIC_CLICKSTREAM_USERS", "clickstream_users"),
        help="env TOPIC_CLICKSTREAM_USERS",
    )
    parser.add_argument(
        "--codes-topic",
        default=env("TOPIC_CLICKSTREAM_CODES", "clickstream_codes"),
        help="env TOPIC_CLICKSTREAM_CODES",
    )
    parser.add_argument(
        "--partitions",
        type=int,
        default=topics.PARTITIONS,
        help="partitions of the three topics if they are missing (env TOPIC_PARTITIONS; "
        "default 5; the joins need the clicks and the users co-partitioned)",
    )
    parser.add_argument(
        "--tables-only",
        action="store_true",
        help="create the topics and write the two tables, then exit (no clicks)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    setup_logging()
    compact = {"cleanup.policy": "compact"}  # tables: the latest row per key
    created = topics.create_all(
        KafkaSettings.from_env().bootstrap_servers,
        [
            topics.TopicSpec(args.topic, args.partitions, topics.REPLICATION),
            topics.TopicSpec(args.users_topic, args.partitions, topics.REPLICATION, compact),
            topics.TopicSpec(args.codes_topic, args.partitions, topics.REPLICATION, compact),
        ],
    )
    for name in created:
        logger.info("created topic %s (%d partitions)", name, args.partitions)
    kafka = CheckedProducer()
    now = int(time.time() * 1000)
    tables = ((args.codes_topic, codes()), (args.users_topic, users(args.users, args.seed)))
    for topic, records in tables:
        for key, value, _ts in records:
            kafka.produce(topic, key, value, timestamp=now)
    table_rows = kafka.finish()  # a running total of what was delivered
    if args.tables_only:
        logger.info("%d table rows sent to %s and %s", table_rows, *(t for t, _ in tables))
        return
    step = args.step_ms or (round(1000 / args.rate) if args.rate else 100)
    plan = ClickPlan(
        count=args.count or 2**62,
        start_ms=now if args.start is None else args.start,
        step_ms=step,
        seed=args.seed,
        pause_every=args.pause_every,
        pause_ms=int(args.pause_s * 1000),
    )
    started = time.monotonic()
    with tqdm(total=args.count or None, unit="click", disable=args.quiet) as bar:
        for sent, (key, value, ts) in enumerate(clicks(plan), start=1):
            if args.rate:
                delay = started + (ts - plan.start_ms) / 1000 - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            kafka.produce(args.topic, key, value, timestamp=ts)
            bar.update(1)
            if sent % 1024 == 0:
                kafka.poll()
    logger.info("%d clicks sent to %s", kafka.finish() - table_rows, args.topic)


if __name__ == "__main__":
    main()
