"""Container healthchecks for docker-compose: exit 0 when healthy, 1 with the reason otherwise.

Docker only knows whether PID 1 is alive. These checks ask what a user means by "up":

- ``http URL``: the URL answers 2xx (the dashboard's own health endpoint).
- ``kafka-member``: this container is a member of some consumer group on the cluster, so a
  processor has joined its group and holds its share of partitions. The group is found by
  the member's host address, so the check needs no knowledge of how apps name their groups.
- ``running MODULE...``: a ``python -m MODULE`` process runs for each module and Kafka answers
  (the producers' container runs two long-lived processes).
"""

from __future__ import annotations

import argparse
import socket
import sys
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from clients.settings import KafkaSettings

if TYPE_CHECKING:  # imported lazily: the http check must not pay for librdkafka
    from confluent_kafka.admin import AdminClient

TIMEOUT_S = 10.0


class Unhealthy(Exception):
    """The reason a check failed, printed to the container's health log."""


def check_http(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            return f"{url} answered {response.status}"
    except OSError as exc:  # URLError and HTTPError are OSErrors
        raise Unhealthy(f"{url}: {exc}") from None


def own_addresses() -> set[str]:
    """This container's IP addresses, as brokers see them in a member's ``host``."""
    hostname = socket.gethostname()
    addresses = {"127.0.0.1"}
    for *_, sockaddr in socket.getaddrinfo(hostname, None):
        addresses.add(str(sockaddr[0]))
    return addresses


def member_host_matches(member_host: str, addresses: set[str]) -> bool:
    # Brokers report the client's address as "/172.18.0.7".
    return member_host.lstrip("/") in addresses


def reachable_admin(bootstrap: str) -> AdminClient:
    """An admin client whose cluster has answered a metadata request.

    Admin calls against an unreachable cluster can time out into empty results (no groups)
    instead of errors, so reachability is proven first.
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        admin.list_topics(timeout=TIMEOUT_S)
    except KafkaException as exc:
        raise Unhealthy(f"Kafka at {bootstrap}: {exc}") from None
    return admin


def group_memberships(bootstrap: str, addresses: set[str]) -> list[tuple[str, str]]:
    """(group id, client id) of every consumer-group member connected from ``addresses``."""
    from confluent_kafka import KafkaException

    admin = reachable_admin(bootstrap)
    try:
        listed = admin.list_consumer_groups(request_timeout=TIMEOUT_S).result()
        if listed.errors:
            raise Unhealthy(f"Kafka at {bootstrap}: listing groups: {listed.errors[0]}")
        group_ids = [group.group_id for group in listed.valid]
        if not group_ids:
            return []
        futures = admin.describe_consumer_groups(group_ids, request_timeout=TIMEOUT_S)
        return [
            (group_id, member.client_id)
            for group_id, future in futures.items()
            for member in future.result().members
            if member_host_matches(member.host, addresses)
        ]
    except KafkaException as exc:
        raise Unhealthy(f"Kafka at {bootstrap}: {exc}") from None


def check_kafka_member(bootstrap: str, addresses: set[str]) -> str:
    memberships = group_memberships(bootstrap, addresses)
    if not memberships:
        raise Unhealthy(f"no consumer group on {bootstrap} has a member at {sorted(addresses)}")
    return "member of " + ", ".join(f"{group} ({client})" for group, client in memberships)


def running_modules(proc: Path = Path("/proc")) -> list[list[str]]:
    """The argv of every process visible in ``proc``."""
    commands = []
    for cmdline in proc.glob("[0-9]*/cmdline"):
        try:
            raw = cmdline.read_bytes()
        except OSError:  # the process exited while we looked
            continue
        if raw:
            commands.append(raw.rstrip(b"\0").decode(errors="replace").split("\0"))
    return commands


def missing_modules(modules: Iterable[str], commands: list[list[str]]) -> list[str]:
    def runs(module: str) -> bool:
        return any(
            argv[i] == "-m" and argv[i + 1] == module
            for argv in commands
            for i in range(len(argv) - 1)
        )

    return [module for module in modules if not runs(module)]


def check_running(modules: Sequence[str], bootstrap: str) -> str:
    missing = missing_modules(modules, running_modules())
    if missing:
        raise Unhealthy(f"not running: {', '.join(missing)}")
    reachable_admin(bootstrap)
    return f"running: {', '.join(modules)}; Kafka answers"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python docker/healthcheck.py",
        description="Container healthchecks for docker-compose (exit 0 healthy, 1 unhealthy).",
    )
    checks = parser.add_subparsers(dest="check", required=True)
    http = checks.add_parser("http", help="the URL answers 2xx")
    http.add_argument("url")
    checks.add_parser(
        "kafka-member",
        help="this container is a member of a consumer group (KAFKA_BOOTSTRAP_SERVERS)",
    )
    running = checks.add_parser(
        "running", help="a `python -m MODULE` process runs for each MODULE, and Kafka answers"
    )
    running.add_argument("modules", nargs="+", metavar="MODULE")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    bootstrap = KafkaSettings.from_env().bootstrap_servers
    try:
        if args.check == "http":
            detail = check_http(args.url)
        elif args.check == "kafka-member":
            detail = check_kafka_member(bootstrap, own_addresses())
        else:
            detail = check_running(args.modules, bootstrap)
    except Unhealthy as exc:
        print(f"unhealthy: {exc}")
        return 1
    print(f"healthy: {detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
