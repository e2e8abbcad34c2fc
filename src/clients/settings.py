"""Service addresses and credentials, read from environment variables.

Defaults point at the native stack (``python -m stack up``) on 127.0.0.1. docker-compose sets
the same variables to its service names, so no application code differs between the two.
Secrets are never defaulted in code: the MySQL password comes from ``MYSQL_PASSWORD`` or from
the file named by ``MYSQL_PASSWORD_FILE`` (the Docker-secrets convention), which the native
stack writes when it first starts MariaDB.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when a client is made: settings must stay cheap to import
    from confluent_kafka.schema_registry import SchemaRegistryClient

#: Where the native stack keeps downloads, data, logs and generated secrets (git-ignored).
STACK_HOME = Path(os.environ.get("STACK_HOME", Path(__file__).resolve().parents[2] / ".stack"))


def env(name: str, default: str) -> str:
    """Read ``name`` from the environment; an empty value counts as unset."""
    value = os.environ.get(name, "")
    return value if value else default


def env_int(name: str, default: int) -> int:
    raw = env(name, str(default))
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer") from None


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str

    @classmethod
    def from_env(cls) -> KafkaSettings:
        return cls(bootstrap_servers=env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))


@dataclass(frozen=True)
class SchemaRegistrySettings:
    #: Base URL of the Confluent-compatible API (what ``SchemaRegistryClient`` takes as ``url``).
    url: str
    #: Seconds per request; the client's own default is no timeout at all.
    timeout_s: float = 10.0

    @classmethod
    def from_env(cls) -> SchemaRegistrySettings:
        return cls(
            url=env("SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081/apis/ccompat/v7"),
            timeout_s=float(env("SCHEMA_REGISTRY_TIMEOUT_S", "10")),
        )

    def client(self) -> SchemaRegistryClient:
        """A registry client whose every request has the timeout (it retries on its own)."""
        from confluent_kafka.schema_registry import SchemaRegistryClient

        return SchemaRegistryClient({"url": self.url, "timeout": self.timeout_s})


@dataclass(frozen=True)
class MySQLSettings:
    host: str
    port: int
    user: str
    password: str
    database: str

    @classmethod
    def from_env(cls) -> MySQLSettings:
        return cls(
            host=env("MYSQL_HOST", "127.0.0.1"),
            port=env_int("MYSQL_PORT", 3306),
            user=env("MYSQL_USER", "demo"),
            password=_mysql_password(),
            database=env("MYSQL_DATABASE", "demo"),
        )


def _mysql_password() -> str:
    if "MYSQL_PASSWORD" in os.environ:
        return os.environ["MYSQL_PASSWORD"]
    path = Path(env("MYSQL_PASSWORD_FILE", str(STACK_HOME / "secrets" / "mysql_password")))
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise RuntimeError(
            f"no MySQL password: set MYSQL_PASSWORD, or MYSQL_PASSWORD_FILE, or start the "
            f"native stack (python -m stack up), which writes {path}"
        ) from None


@dataclass(frozen=True)
class PinotSettings:
    controller_url: str
    broker_url: str

    @classmethod
    def from_env(cls) -> PinotSettings:
        return cls(
            controller_url=env("PINOT_CONTROLLER_URL", "http://127.0.0.1:9000"),
            broker_url=env("PINOT_BROKER_URL", "http://127.0.0.1:8099"),
        )


def librdkafka_properties(name: str) -> dict[str, str | int]:
    """Extra librdkafka properties from the environment variable ``name``.

    The format is ``key=value`` pairs separated by commas, e.g.
    ``security.protocol=SASL_SSL,sasl.mechanism=PLAIN``: what a deployment needs beyond the
    bootstrap address (security, batching) without a flag per property. Whole numbers become
    ints (Quix Streams computes with some, e.g. ``max.poll.interval.ms``, and failed on the
    text); the rest stay strings, which librdkafka parses itself, so its own error names a bad
    property.
    """
    raw = env(name, "")
    properties: dict[str, str | int] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not key:
            raise ValueError(
                f"environment variable {name}: expected key=value pairs separated by commas, "
                f"got {item!r}"
            )
        properties[key] = int(value) if value.isdigit() else value
    return properties
