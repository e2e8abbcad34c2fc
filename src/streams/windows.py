"""``python -m streams.windows``: page views counted by source in three kinds of window.

topic1 (page views) -> topic6 tumbling, topic7 hopping, topic8 session counts per ``source``,
with ksqlDB's semantics (see :mod:`streams.operators.window_engine`). Page views are validated
(bad ones go to the dead-letter topic with the reason), then grouped by source (plain-string
keys, so the repartition topic co-partitions with anything keyed by source) and aggregated in
all three window kinds at once by :func:`streams.operators.window_aggregate.window_aggregate`;
under ``--emit cached`` in two phases, so that only partial counts cross the repartition.
Records too late for a window go to the late topic with the reason; nothing is dropped silently.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass

from quixstreams import Application
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.models import Topic

from clients.settings import env_int
from contracts import topics as topic_names
from streams.app import add_app_arguments, create_app, run
from streams.operators.deadletter import dead_letter_topic, split_rejected
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
    WindowEngine,
    WindowSpec,
    count_aggregate,
)
from streams.pageviews import parse_pageview

logger = logging.getLogger("streams.windows")

PROCESSOR = "streams.windows"
COUNT_COLUMN = "pageview_count"
#: The count of a retracted (merged-away) session.
ZERO = {COUNT_COLUMN: 0}


@dataclass(frozen=True)
class WindowsConfig:
    """Window sizes in ms; ``grace_ms=None`` means ksqlDB's default (see the window engine)."""

    tumbling_ms: int = 5 * MINUTE_MS
    hopping_ms: int = 5 * MINUTE_MS
    hop_ms: int = MINUTE_MS
    session_gap_ms: int = 5 * MINUTE_MS
    grace_ms: int | None = None
    emit: str = "changes"
    cache_ms: int = DEFAULT_CACHE_MS

    def specs(self) -> list[WindowSpec]:
        """Tumbling, hopping, session: the index is the route to topic6, topic7, topic8."""
        return [
            WindowSpec.tumbling(self.tumbling_ms, self.grace_ms),
            WindowSpec.hopping(self.hopping_ms, self.hop_ms, self.grace_ms),
            WindowSpec.session(self.session_gap_ms, self.grace_ms),
        ]

    def engine(self) -> WindowEngine:
        aggregate = count_aggregate(COUNT_COLUMN)
        return WindowEngine(
            self.specs(),
            aggregate,
            self.emit,
            cache_ms=self.cache_ms,
            group_column="source",
            zero=ZERO,
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """CLI flags; each defaults to its environment variable, then to the built-in default."""
    for flag, var, default, what in [
        ("--tumbling-ms", "WINDOWS_TUMBLING_MS", WindowsConfig.tumbling_ms, "tumbling window size"),
        ("--hopping-ms", "WINDOWS_HOPPING_MS", WindowsConfig.hopping_ms, "hopping window size"),
        ("--hop-ms", "WINDOWS_HOP_MS", WindowsConfig.hop_ms, "hopping window advance"),
        ("--session-gap-ms", "WINDOWS_SESSION_GAP_MS", WindowsConfig.session_gap_ms, "session gap"),
    ]:
        parser.add_argument(
            flag,
            type=int,
            default=env_int(var, default),
            help=f"{what}, ms (env {var}; default {default // 60_000} min)",
        )
    add_emit_arguments(parser, "WINDOWS")


def config_from_args(args: argparse.Namespace) -> WindowsConfig:
    config = WindowsConfig(
        args.tumbling_ms,
        args.hopping_ms,
        args.hop_ms,
        args.session_gap_ms,
        **emit_options(args),
    )
    config.specs()  # validates sizes now, with a clear message, not at the first record
    return config


@dataclass(frozen=True)
class WindowTopics:
    """Output topics by route: specs 0..2 then late; bad input goes to ``dead_letter``."""

    tumbling: Topic
    hopping: Topic
    session: Topic
    late: Topic
    dead_letter: Topic

    def by_route(self) -> list[Topic]:
        return [self.tumbling, self.hopping, self.session, self.late]


def build(sdf: StreamingDataFrame, config: WindowsConfig, topics: WindowTopics) -> None:
    """Wire validation, repartitioning and the window step onto ``sdf`` (raw key/value bytes)."""
    views = split_rejected(sdf, parse_pageview, topics.dead_letter, PROCESSOR)
    views = views.set_timestamp(lambda view, _key, _ts, _headers: view["event_timestamp"])
    engine = config.engine()
    window_aggregate(
        views,
        engine,
        to_routes(topics.by_route()),
        Grouping.column(engine.group_column),
        late_key=lambda view: view["session_id"],
        on_late=late_log("source", logger),
    )


def declare_topics(app: Application) -> tuple[Topic, WindowTopics]:
    """The input topic (raw bytes, for dead-lettering as received) and the outputs."""

    def output(name: str) -> Topic:
        return app.topic(name, key_serializer="str", value_serializer="json")

    pageviews = app.topic(
        topic_names.PAGEVIEWS, key_deserializer="bytes", value_deserializer="bytes"
    )
    outputs = WindowTopics(
        tumbling=output(topic_names.TUMBLING),
        hopping=output(topic_names.HOPPING),
        session=output(topic_names.SESSION),
        late=output(topic_names.LATE),
        dead_letter=dead_letter_topic(app, PROCESSOR),
    )
    return pageviews, outputs


def setup(app: Application, config: WindowsConfig) -> None:
    """Declare the topics on ``app`` and build the pipeline: what main() and the tests run."""
    pageviews, outputs = declare_topics(app)
    build(app.dataframe(pageviews), config, outputs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m streams.windows",
        description="Count page views by source in tumbling, hopping and session windows "
        "(topic1 -> topic6, topic7, topic8), with ksqlDB's semantics. Topic names come from "
        "the TOPIC_* environment variables (src/contracts/topics.py).",
    )
    add_arguments(parser)
    add_app_arguments(parser, "windows")
    args = parser.parse_args(argv)
    config = config_from_args(args)
    app = create_app(args)
    setup(app, config)
    logger.info("windows: %s", config)
    run(app, args)


if __name__ == "__main__":
    main()
