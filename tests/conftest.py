"""Fixtures that connect integration tests to the native stack (``python -m stack up``).

A service that is not reachable skips the test with the reason on a developer's laptop, and
fails it when ``CI=true``: in CI a missing service is a broken build, never a quiet skip.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator
from urllib.parse import urlparse

import pytest

from clients.settings import KafkaSettings, MySQLSettings, PinotSettings, SchemaRegistrySettings

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
    from confluent_kafka.admin import AdminClient

    from tests.integration.apps import create_topic

    created: list[str] = []

    def create(prefix: str, partitions: int = 5, config: dict[str, str] | None = None) -> str:
        name = create_topic(kafka, prefix, partitions, config)
        created.append(name)
        return name

    yield create
    if created:
        admin = AdminClient({"bootstrap.servers": kafka})
        for future in admin.delete_topics(created).values():
            # Cleanup must not mask the test's own result.
            with contextlib.suppress(Exception):
                future.result(timeout=30)
