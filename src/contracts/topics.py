"""The pipeline's Kafka topics: names, partitions and configs, in one place.

Names default to the original ksqlDB deployment's and can be overridden by environment
variables. The native stack and docker-compose's init service both create topics from
:func:`all_topics` (``python -m contracts.topics create``), so partition counts and cleanup
policies are never copied between them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from clients.settings import env, env_int


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication: int
    config: dict[str, str] = field(default_factory=dict)


#: Each topic's name by the environment variable that sets it; statements files name topics
#: by the same variables (``${TOPIC_TUMBLING}``, ``python -m contracts.topics defines``).
NAMES: dict[str, str] = {}


def _name(var: str, default: str) -> str:
    NAMES[var] = env(var, default)
    return NAMES[var]


PAGEVIEWS = _name("TOPIC_PAGEVIEWS", "topic1_PageView")
USER_SESSIONS = _name("TOPIC_USER_SESSIONS", "topic2_UserSession")
USERS = _name("TOPIC_USERS", "topic3_Users")
CLEANED_USERS = _name("TOPIC_CLEANED_USERS", "topic4")
PAGEVIEWS_BY_COUNTRY = _name("TOPIC_PAGEVIEWS_BY_COUNTRY", "topic5")
TUMBLING = _name("TOPIC_TUMBLING", "topic6")
HOPPING = _name("TOPIC_HOPPING", "topic7")
SESSION = _name("TOPIC_SESSION", "topic8")
DEAD_LETTER = _name("TOPIC_DEAD_LETTER", "pageview_streams_dead_letter")
#: What the tracking-pixel collector publishes: hits keyed by session, and bad rows.
HITS = _name("TOPIC_HITS", "hits")
HITS_BAD = _name("TOPIC_HITS_BAD", "hits_bad")
LATE = _name("TOPIC_LATE", "pageview_streams_late")

#: The original deployment used 5 partitions everywhere; inputs and the table topic must have the
#: same count so that a join's two sides co-partition.
PARTITIONS = env_int("TOPIC_PARTITIONS", 5)
#: 1 on the single-broker native stack, 3 on docker-compose's three brokers.
REPLICATION = env_int("TOPIC_REPLICATION_FACTOR", 1)

_COMPACT = {"cleanup.policy": "compact"}
_WEEK_MS = str(7 * 24 * 3600 * 1000)


def all_topics() -> list[TopicSpec]:
    """Every topic the pipeline reads or writes, with its partitions and configs."""

    def spec(name: str, **config: str) -> TopicSpec:
        return TopicSpec(name, PARTITIONS, REPLICATION, dict(config))

    return [
        spec(PAGEVIEWS, **{"retention.ms": _WEEK_MS}),
        spec(USER_SESSIONS, **{"retention.ms": _WEEK_MS}),
        # Users topics are tables: compaction keeps the latest row per user_id forever.
        spec(USERS, **_COMPACT),
        spec(CLEANED_USERS, **_COMPACT),
        # Windowed outputs are keyed by window identity; compaction keeps each window's latest.
        *(
            spec(name, **{"cleanup.policy": "compact,delete", "retention.ms": _WEEK_MS})
            for name in (PAGEVIEWS_BY_COUNTRY, TUMBLING, HOPPING, SESSION)
        ),
        spec(DEAD_LETTER, **{"retention.ms": _WEEK_MS}),
        spec(HITS, **{"retention.ms": _WEEK_MS}),
        spec(HITS_BAD, **{"retention.ms": _WEEK_MS}),
        spec(LATE, **{"retention.ms": _WEEK_MS}),
    ]


def create_all(bootstrap_servers: str, topics: list[TopicSpec] | None = None) -> list[str]:
    """Create the missing topics of ``topics`` (default: all); return the names created.

    Idempotent: an existing topic is left as it is (its partition count is reported if it
    differs, since a join's co-partitioning depends on it).
    """
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    existing = admin.list_topics(timeout=15).topics
    wanted = topics if topics is not None else all_topics()
    for spec in wanted:
        have = existing.get(spec.name)
        if have is not None and len(have.partitions) != spec.partitions:
            raise RuntimeError(
                f"topic {spec.name} has {len(have.partitions)} partitions, expected "
                f"{spec.partitions}: joins need co-partitioned inputs; recreate it"
            )
    missing = [s for s in wanted if s.name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [NewTopic(s.name, s.partitions, s.replication, config=s.config) for s in missing]
    )
    for future in futures.values():
        future.result(timeout=30)
    return [s.name for s in missing]


def main(argv: list[str] | None = None) -> None:
    import argparse

    from clients.settings import KafkaSettings

    parser = argparse.ArgumentParser(
        prog="python -m contracts.topics",
        description="Create the pipeline's topics (names, partitions and configs from env).",
    )
    parser.add_argument(
        "command",
        choices=["create", "list", "defines"],
        help="create the missing topics; list them; or print --define=VARIABLE=NAME per topic, "
        "the arguments of `python -m streams.ksql run` for sql/pageview-pipeline.sql",
    )
    parser.add_argument("--bootstrap-servers", default=KafkaSettings.from_env().bootstrap_servers)
    args = parser.parse_args(argv)
    if args.command == "defines":
        for var, name in NAMES.items():
            print(f"--define={var}={name}")
        return
    if args.command == "list":
        for spec in all_topics():
            print(
                f"{spec.name:32} partitions={spec.partitions} rf={spec.replication} {spec.config}"
            )
        return
    created = create_all(args.bootstrap_servers)
    print(f"created {len(created)} topic(s): {', '.join(created) or '-'}")


if __name__ == "__main__":
    main()
