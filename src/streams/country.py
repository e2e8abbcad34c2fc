"""``python -m streams.country``: page views by country (topic1 JOIN topic4 -> topic5).

Replaces ksqlDB's::

    CREATE STREAM PAGEVIEW_ENRICHED AS SELECT ... FROM PAGEVIEWS
      LEFT JOIN CLEANED_USERS ON PAGEVIEWS.USER_ID = CLEANED_USERS.USER_ID;
    CREATE TABLE PAGEVIEW_COUNTRY AS SELECT COUNTRY, COUNT(*) AS PAGEVIEW_COUNT,
      AVG(AGE) AS AVERAGE_AGE FROM PAGEVIEW_ENRICHED WINDOW TUMBLING (SIZE 5 MINUTES)
      GROUP BY COUNTRY;

Page views are re-keyed by user_id (a plain-string key, murmur2-partitioned as ksqlDB's
repartition topic is), so each one lands on the partition of topic4 holding its user, then
joined by :mod:`streams.operators.join` (the user's row current at the view's event time; the
users source stamps each row with its change time for this reason). A view whose user is not in
the table: LEFT join (default) counts it under country ``unknown`` with no age (AVG ignores it,
as SQL's AVG ignores NULL); INNER join leaves it out of the counts and writes it to the late
topic with the reason. The counts are :mod:`streams.operators.window_aggregate`'s.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from quixstreams import Application
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.models import Topic
from quixstreams.models.serializers import Deserializer, SerializationContext

from clients.logs import RateLimitedLog
from clients.settings import env, env_int
from contracts import topics as topic_names
from streams import quix
from streams.app import add_app_arguments, create_app, run
from streams.operators.deadletter import Rejected, dead_letter_topic, json_object, split_rejected
from streams.operators.join import JOINS, join_step, stream_table_join
from streams.operators.window_aggregate import (
    Grouping,
    add_emit_arguments,
    emit_options,
    late_log,
    to_routes,
    window_aggregate,
)
from streams.operators.window_engine import (
    DEFAULT_CACHE_MS,
    MINUTE_MS,
    Aggregate,
    WindowEngine,
    WindowSpec,
)
from streams.pageviews import MAX_TEXT_CHARS, parse_pageview

logger = logging.getLogger("streams.country")

PROCESSOR = "streams.country"
UNKNOWN_COUNTRY = "unknown"
#: A LEFT join's values for a view whose user is not in the table.
MISSING_USER: dict[str, Any] = {"country": UNKNOWN_COUNTRY, "age": None}


@dataclass(frozen=True)
class CountryConfig:
    window_ms: int = 5 * MINUTE_MS
    grace_ms: int | None = None
    emit: str = "changes"
    cache_ms: int = DEFAULT_CACHE_MS
    join: str = "left"

    def engine(self) -> WindowEngine:
        spec = WindowSpec.tumbling(self.window_ms, self.grace_ms)
        return WindowEngine(
            [spec],
            country_aggregate(),
            self.emit,
            cache_ms=self.cache_ms,
            group_column="country",
            zero=ZERO,
        )


def country_aggregate() -> Aggregate:
    """COUNT(*) and AVG(age); the accumulator is [views, sum of known ages, known ages]."""

    def add(acc: list, view: dict) -> list:
        age = view["age"]
        return [acc[0] + 1, acc[1] + (age or 0), acc[2] + (age is not None)]

    return Aggregate(
        init=lambda: [0, 0, 0],
        add=add,
        merge=lambda a, b: [a[0] + b[0], a[1] + b[1], a[2] + b[2]],
        result=lambda acc: {
            "pageview_count": acc[0],
            "average_age": acc[1] / acc[2] if acc[2] else None,
        },
        splittable=True,
    )


#: The aggregate of a retracted window (tumbling windows have none; the engine asks for it).
ZERO = {"pageview_count": 0, "average_age": None}


class TextKeyDeserializer(Deserializer):
    """UTF-8 keys that cannot fail: bytes that are not UTF-8 come through as surrogates (and
    back to the same bytes), so :func:`parse_user` rejects them as a dead letter instead of
    the consumer stopping on a deserialisation error. Text keys, as the page views' repartition
    topic has, so both sides of the join address the same state."""

    def __call__(self, value: bytes, ctx: SerializationContext) -> str:
        return value.decode("utf-8", "surrogateescape")


def parse_user(value: bytes | None, key: str | None) -> dict[str, Any] | Rejected | None:
    """A topic4 record (written by streams.users): the user's row, None for a tombstone, or
    why it is not a cleaned user."""
    if key is None:
        return Rejected("null key (expected the user_id)", "NullKey")
    try:
        key.encode()
    except UnicodeEncodeError:
        return Rejected("key is not UTF-8 text", "BadKey")
    if value is None:
        return None
    row = json_object(value)
    if isinstance(row, Rejected):
        return row
    country, age = row.get("country"), row.get("age")
    if country is not None and not isinstance(country, str):
        return Rejected(f"country must be a string or null, got {repr(country)[:100]}", "BadField")
    if country is not None and len(country) > MAX_TEXT_CHARS:
        # It becomes the join's state and the key of the country windows.
        return Rejected(
            f"country is {len(country)} characters long, more than {MAX_TEXT_CHARS}", "BadField"
        )
    if age is not None and (not isinstance(age, int | float) or isinstance(age, bool)):
        return Rejected(f"age must be a number or null, got {repr(age)[:100]}", "BadField")
    return row


def country_join(join: str) -> Callable[..., list[Any]]:
    """The join step: a view takes its user's country and age (LEFT: "unknown" and none)."""
    unknown = RateLimitedLog("page view without a cleaned user", logger)

    def on_missing(key: str, view: dict[str, Any]) -> None:
        unknown("user_id %s (session %s, %s join)", key, view.get("session_id"), join)

    return join_step(
        join,
        MISSING_USER,
        on_missing,
        stream_name="pageview",
        table_name="cleaned user",
        state_key="user",  # the entry's name since the first release: restored state keeps it
    )


@dataclass(frozen=True)
class CountryTopics:
    pageviews: Topic
    users: Topic
    counts: Topic
    late: Topic
    dead_letter: Topic


def build(
    views: StreamingDataFrame,
    users: StreamingDataFrame,
    config: CountryConfig,
    topics: CountryTopics,
) -> None:
    """Validate, join and count: ``views`` and ``users`` carry topic1's and topic4's raw bytes."""
    parsed = split_rejected(views, parse_pageview, topics.dead_letter, PROCESSOR)
    parsed = parsed.set_timestamp(lambda view, _key, _ts, _headers: view["event_timestamp"])
    by_user = quix.group_by(
        parsed,
        lambda view: str(view["user_id"]),
        name="user_id",
        key_serializer="str",
        key_deserializer="str",
    )
    table = split_rejected(users, parse_user, topics.dead_letter, PROCESSOR)
    enriched, excluded = stream_table_join(by_user, table, country_join(config.join))

    excluded = excluded.set_headers(lambda _value, _key, _ts, _headers: [])
    excluded.to_topic(topics.late, key=lambda value: value["pageview"]["session_id"])

    engine = config.engine()
    window_aggregate(
        enriched,
        engine,
        to_routes([topics.counts, topics.late]),
        Grouping.column(engine.group_column),
        late_key=lambda view: view["session_id"],
        on_late=late_log("country", logger),
    )


def declare_topics(app: Application) -> CountryTopics:
    return CountryTopics(
        pageviews=app.topic(
            topic_names.PAGEVIEWS, key_deserializer="bytes", value_deserializer="bytes"
        ),
        # Raw bytes, parsed by parse_user: a record that is not JSON becomes a dead letter
        # instead of a deserialisation error that would stop the consumer.
        users=app.topic(
            topic_names.CLEANED_USERS,
            key_deserializer=TextKeyDeserializer(),
            value_deserializer="bytes",
        ),
        counts=app.topic(
            topic_names.PAGEVIEWS_BY_COUNTRY, key_serializer="str", value_serializer="json"
        ),
        late=app.topic(topic_names.LATE, key_serializer="str", value_serializer="json"),
        dead_letter=dead_letter_topic(app, PROCESSOR),
    )


def setup(app: Application, config: CountryConfig) -> None:
    """Declare the topics on ``app`` and build the pipeline: what main() and the tests run."""
    topics = declare_topics(app)
    build(app.dataframe(topics.pageviews), app.dataframe(topics.users), config, topics)


def add_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """The country flags; ``prefix`` ("country-") keeps them apart from streams.windows'
    in ``python -m streams``."""
    dest = prefix.replace("-", "_")
    parser.add_argument(
        f"--{prefix}window-ms",
        dest=f"{dest}window_ms",
        type=int,
        default=env_int("COUNTRY_WINDOW_MS", CountryConfig.window_ms),
        help="tumbling window size, ms (env COUNTRY_WINDOW_MS; default 5 min)",
    )
    add_emit_arguments(parser, "COUNTRY", prefix)
    parser.add_argument(
        f"--{prefix}join",
        dest=f"{dest}join",
        choices=JOINS,
        default=env("COUNTRY_JOIN", "left"),
        help="left: views without a cleaned user count under country 'unknown'; inner: they "
        "are left out of the counts and written to the late topic with the reason "
        "(env COUNTRY_JOIN; default left)",
    )


def config_from_args(args: argparse.Namespace, prefix: str = "") -> CountryConfig:
    """The configuration from :func:`add_arguments`' flags, validated now, not at a record."""
    dest = prefix.replace("-", "_")
    config = CountryConfig(
        window_ms=getattr(args, f"{dest}window_ms"),
        join=getattr(args, f"{dest}join"),
        **emit_options(args, prefix),
    )
    config.engine()
    return config


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m streams.country",
        description="Join page views (topic1) with the cleaned users table (topic4) on user_id "
        "and count them per country in tumbling windows, with the average age (-> topic5). "
        "Topic names come from the TOPIC_* environment variables.",
    )
    add_arguments(parser)
    add_app_arguments(parser, "country")
    args = parser.parse_args(argv)
    config = config_from_args(args)
    app = create_app(args)
    setup(app, config)
    run(app, args)


if __name__ == "__main__":
    main()
