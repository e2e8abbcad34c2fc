"""Fixtures that connect integration tests to the native stack (``python -m stack up``).

A service that is not reachable skips the test with the reason on a developer's laptop, and
fails it when ``CI=true``: in CI a missing service is a broken build, never a quiet skip.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlparse

import pytest

from pipeline.settings import KafkaSettings, MySQLSettings, PinotSettings, SchemaRegistrySettings

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _unavailable(what: str, why: str) -> None:
    message = f"{what} is not reachable ({why}); start it with `python -m stack up`"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _check_tcp(what: str, host: str, port: int) -> None:
    try:
        with socket.create_connection((host, port), timeout=3):
            return
    except OSError as exc:
        _unavailable(what, f"{host}:{port}: {exc}")


def _host_port(url_or_hostport: str, default_port: int) -> tuple[str, int]:
    if "://" in url_or_hostport:
        parsed = urlparse(url_or_hostport)
        return parsed.hostname or "127.0.0.1", parsed.port or default_port
    host, _, port = url_or_hostport.split(",")[0].rpartition(":")
    return host or "127.0.0.1", int(port or default_port)


@pytest.fixture(scope="session")
def kafka() -> str:
    """Bootstrap servers of the running Kafka broker."""
    bootstrap = KafkaSettings.from_env().bootstrap_servers
    _check_tcp("Kafka", *_host_port(bootstrap, 9092))
    return bootstrap


@pytest.fixture(scope="session")
def schema_registry_url() -> str:
    """Base URL of the Confluent-compatible Schema Registry API."""
    url = SchemaRegistrySettings.from_env().url
    _check_tcp("Schema Registry", *_host_port(url, 8081))
    return url


@pytest.fixture(scope="session")
def mysql() -> MySQLSettings:
    try:
        settings = MySQLSettings.from_env()
    except RuntimeError as exc:
        _unavailable("MySQL", str(exc))
    _check_tcp("MySQL", settings.host, settings.port)
    return settings


@pytest.fixture(scope="session")
def pinot() -> PinotSettings:
    settings = PinotSettings.from_env()
    _check_tcp("Pinot controller", *_host_port(settings.controller_url, 9000))
    _check_tcp("Pinot broker", *_host_port(settings.broker_url, 8099))
    return settings


@pytest.fixture
def make_topic(kafka: str) -> Iterator[Callable[..., str]]:
    """Create uniquely named topics for one test and delete them afterwards.

    Tests share one broker (and developers run suites in parallel), so no test writes to a
    fixed topic name: ``make_topic("pageviews", partitions=5)`` returns e.g.
    ``test-pageviews-3f2a9c1d``.
    """
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": kafka})
    created: list[str] = []

    def create(prefix: str, partitions: int = 5, config: dict[str, str] | None = None) -> str:
        name = f"test-{prefix}-{uuid.uuid4().hex[:8]}"
        # Tests replay fixed event times from 2023; the broker's time retention (7 days) would
        # delete such records mid-test, whenever its periodic retention check happens to run.
        config = {"retention.ms": "-1", **(config or {})}
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config)]
        )
        futures[name].result(timeout=30)
        created.append(name)
        # Creation returns before every partition has a leader in the metadata; clients that
        # look the topic up at once (Pinot's table creation) could still find it missing.
        deadline = time.monotonic() + 30
        while True:
            topic = admin.list_topics(name, timeout=10).topics[name]
            leaders = [p.leader for p in topic.partitions.values()]
            if topic.error is None and len(leaders) == partitions and min(leaders) >= 0:
                return name
            assert time.monotonic() < deadline, f"topic {name} has no leaders after 30 s"
            time.sleep(0.1)

    yield create
    if created:
        for future in admin.delete_topics(created).values():
            # Cleanup must not mask the test's own result.
            with contextlib.suppress(Exception):
                future.result(timeout=30)
