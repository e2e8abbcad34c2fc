"""``python -m producers.events``: user sessions (topic2) and their page views (topic1).

As the original generator: for each session a login on ``topic2_UserSession`` (session_id,
user_id, user_name, login_timestamp, device), then 1-``--max-views`` page views on
``topic1_PageView`` (session_id, user_id, source, event_timestamp after the login), JSON, keyed
by session_id and placed by murmur2 as Java clients place keys; the Kafka record timestamp is
the event time. user_ids are drawn from the users in MySQL.

Event time: the original kept a simulated clock in a local file. Here a run starts at
``--start``, or by default continues from the latest event time already in topic1 (so
consecutive runs continue the timeline on any machine), or now if the topic is empty; each
session advances the clock by a random step. ``--realtime`` instead stamps events with the
wall clock at ``--rate`` events/s, for a live dashboard. ``--late-share`` makes that share of
page views late by up to ``--max-lateness-ms`` to exercise grace handling. ``--seed`` makes a
batch run reproducible (the same events, in the same order, with ``--start``).
"""

from __future__ import annotations

import argparse
import logging
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
from tqdm import tqdm

from clients.kafka import last_records, tail_consumer
from clients.logs import setup_logging
from clients.settings import KafkaSettings, env
from contracts import topics as topic_names
from contracts.records import SOURCES, event_timestamp_text
from producers.kafka import CheckedProducer
from producers.mysql import DEFAULT_TABLE, connect, table_name

logger = logging.getLogger("producers.events")

DEVICES = ("Mobile", "Desktop", "Tablet")
NAMES = (
    "Anan",
    "Bao",
    "Chen",
    "Dara",
    "Emma",
    "Farid",
    "Gita",
    "Hiro",
    "Ines",
    "Joon",
    "Kai",
    "Lina",
    "Minh",
    "Nok",
    "Omar",
    "Priya",
    "Quynh",
    "Rui",
    "Sari",
    "Tuan",
)
FORMATS = ("string", "epoch-ms")


def format_timestamp(ms: int, kind: str) -> str | int:
    """The original's UTC ``yyyy-MM-dd HH:mm:ss`` (whole seconds), or epoch ms."""
    return event_timestamp_text(ms) if kind == "string" else ms


def event_time_ms(ms: int, kind: str) -> int:
    """The record timestamp matching what the value says (strings have whole seconds)."""
    return ms - ms % 1000 if kind == "string" else ms


class Generator:
    """Sessions and page views; deterministic for a seed, a start time and a user list."""

    def __init__(
        self,
        user_ids: list[int],
        rng: random.Random,
        max_views: int,
        late_share: float,
        max_lateness_ms: int,
        fmt: str,
    ) -> None:
        self.user_ids = user_ids
        self.rng = rng
        self.max_views = max_views
        self.late_share = late_share
        self.max_lateness_ms = max_lateness_ms
        self.fmt = fmt

    def session(self, login_ms: int) -> tuple[tuple, list[tuple]]:
        """One session at ``login_ms``: (key, value, ts) of the login and of each view."""
        rng, fmt = self.rng, self.fmt
        user_id = rng.choice(self.user_ids)
        session_id = f"{rng.getrandbits(64):016x}"
        login = {
            "session_id": session_id,
            "user_id": user_id,
            "user_name": f"{rng.choice(NAMES)}{user_id}",
            "login_timestamp": format_timestamp(login_ms, fmt),
            "device": rng.choice(DEVICES),
        }
        views = []
        ts = login_ms
        for _ in range(rng.randint(1, self.max_views)):
            ts += rng.randint(1_000, 60_000)
            event_ms = ts
            if self.late_share and rng.random() < self.late_share:
                event_ms = max(login_ms, ts - rng.randint(1, self.max_lateness_ms))
            view = {
                "session_id": session_id,
                "user_id": user_id,
                "source": rng.choice(SOURCES),
                "event_timestamp": format_timestamp(event_ms, fmt),
            }
            views.append((session_id, orjson.dumps(view), event_time_ms(event_ms, fmt)))
        return (session_id, orjson.dumps(login), event_time_ms(login_ms, fmt)), views


def latest_event_time(topic: str) -> int | None:
    """The latest record timestamp in ``topic``'s last records, or None if it is empty."""
    consumer = tail_consumer(KafkaSettings.from_env().bootstrap_servers, "events-clock")
    try:
        records = last_records(consumer, topic, 20)
    finally:
        consumer.close()
    return max((message.timestamp()[1] for message in records), default=None)


def user_ids(table: str) -> list[int]:
    conn = connect()
    with conn.cursor() as cur:
        cur.execute(f"SELECT user_id FROM `{table_name(table)}` ORDER BY user_id")
        ids = [row[0] for row in cur.fetchall()]
    if not ids:
        raise SystemExit(f"no users in {table}: run `python -m producers.users` first")
    return ids


def _parse_start(text: str) -> int:
    if text.isdigit():
        return int(text)
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def run_batch(
    gen: Generator, kafka: CheckedProducer, start_ms: int, views_wanted: int, quiet: bool
) -> int:
    """Sessions from ``start_ms`` on until ``views_wanted`` page views; returns views sent."""
    sent, clock = 0, start_ms
    with tqdm(total=views_wanted, unit="view", disable=quiet) as bar:
        while sent < views_wanted:
            login, views = gen.session(clock)
            kafka.produce(topic_names.USER_SESSIONS, login[0], login[1], timestamp=login[2])
            for key, value, ts in views[: views_wanted - sent]:
                kafka.produce(topic_names.PAGEVIEWS, key, value, timestamp=ts)
            n = min(len(views), views_wanted - sent)
            sent += n
            bar.update(n)
            clock += gen.rng.randint(100, 2_000)
            if sent % 1024 < n:
                kafka.poll()
    return sent


def _paced(rate: float) -> Iterator[int]:
    """Wall-clock ms at which to emit each next event, ``rate`` per second."""
    start = time.monotonic()
    n = 0
    while True:
        due = start + n / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        n += 1
        yield int(time.time() * 1000)


def run_realtime(
    gen: Generator,
    kafka: CheckedProducer,
    rate: float,
    limit: int | None,
    duration: float | None,
    quiet: bool,
) -> int:
    """Sessions stamped with the wall clock, paced at ``rate`` page views per second."""
    sent = 0
    end = None if duration is None else time.monotonic() + duration
    with tqdm(total=limit, unit="view", disable=quiet) as bar:
        for now in _paced(rate / 3):  # a session has 3 page views on average by default
            if (limit is not None and sent >= limit) or (end and time.monotonic() >= end):
                break
            login, views = gen.session(now)
            kafka.produce(topic_names.USER_SESSIONS, login[0], login[1], timestamp=login[2])
            for key, value, _ in views:
                # Real time: each view is stamped when it is sent, not in the future.
                kafka.produce(topic_names.PAGEVIEWS, key, value, timestamp=now)
            sent += len(views)
            bar.update(len(views))
            kafka.poll()
    return sent


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m producers.events",
        description="Generate user sessions (topic2_UserSession) and page views "
        "(topic1_PageView), JSON keyed by session_id, for users that exist in MySQL.",
    )
    parser.add_argument(
        "--count",
        type=int,
        default=None,
        help="page views to send (default 10000; in --realtime: no limit)",
    )
    parser.add_argument(
        "--start",
        default=None,
        help="event time of the first session: ISO date-time (UTC) or epoch "
        "ms (default: continue after the latest event in topic1, else now)",
    )
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="stamp events with the wall clock at --rate page views/s",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=float(env("EVENTS_RATE", "50")),
        help="page views per second in --realtime (env EVENTS_RATE)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds to run in --realtime (default: until --count if given, else forever)",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed")
    parser.add_argument(
        "--max-views", type=int, default=5, help="page views per session, at most (default 5)"
    )
    parser.add_argument(
        "--late-share", type=float, default=0.0, help="share of page views made late (default 0)"
    )
    parser.add_argument(
        "--max-lateness-ms",
        type=int,
        default=10 * 60_000,
        help="how late, at most (default 10 min)",
    )
    parser.add_argument(
        "--timestamp-format",
        choices=FORMATS,
        default="string",
        help="string: the original's UTC 'yyyy-MM-dd HH:mm:ss'; epoch-ms",
    )
    parser.add_argument(
        "--table", default=DEFAULT_TABLE, help="MySQL users table (env USERS_TABLE; default Users)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    setup_logging()
    if args.rate <= 0 or args.max_views < 1 or not 0 <= args.late_share <= 1:
        parser.error("--rate must be > 0, --max-views >= 1, --late-share in [0, 1]")
    gen = Generator(
        user_ids(args.table),
        random.Random(args.seed),
        args.max_views,
        args.late_share,
        args.max_lateness_ms,
        args.timestamp_format,
    )
    kafka = CheckedProducer()
    quiet = args.quiet or None  # tqdm: None disables the bar when not on a terminal
    if args.realtime:
        sent = run_realtime(gen, kafka, args.rate, args.count, args.duration, quiet)
    else:
        if args.start is not None:
            start = _parse_start(args.start)
        else:
            latest = latest_event_time(topic_names.PAGEVIEWS)
            start = int(time.time() * 1000) if latest is None else latest + 1000
        sent = run_batch(gen, kafka, start, args.count or 10_000, quiet)
    kafka.finish()
    logger.info("sent %d page views (%d records delivered in all)", sent, kafka.delivered)


if __name__ == "__main__":
    main()
