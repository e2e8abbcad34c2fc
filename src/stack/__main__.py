"""``python -m stack up | down | restart | status | logs NAME``: the native stack on 127.0.0.1.

Starts real Kafka (KRaft), MariaDB, Apicurio Registry and Apache Pinot as plain processes, with
data and logs under ``.stack/``. ``up`` is idempotent: a healthy service is left running, and
provisioned (the MySQL database and user) again, which changes nothing that is already right.
"""

from __future__ import annotations

import argparse
import sys
import time

from stack.services import HOST, SERVICES, Service, StackError, port_open, require_tool


def up(names: list[str]) -> None:
    require_tool("java", "install a JDK 17 (apt-get install -y openjdk-17-jre-headless)")
    for service in _select(names):
        if service.pid() is not None and service.healthy():
            print(f"{service.name:18} already up   {HOST}:{service.port}")
        else:
            took = _start(service)
            print(f"{service.name:18} up in {took:5.1f}s  {HOST}:{service.port}")
        if service.provision:
            service.provision()


def _start(service: Service) -> float:
    if service.pid() is None and port_open(service.port):
        raise StackError(
            f"port {service.port} for {service.name} is taken by another process: stop it, "
            f"or choose another port with the STACK_* environment variables (see README)"
        )
    started = time.monotonic()
    if service.pid() is None:
        service.start()
    service.wait_healthy()
    return time.monotonic() - started


def down(names: list[str]) -> None:
    for service in reversed(_select(names)):
        service.stop()
        print(f"{service.name:18} stopped")


def restart(names: list[str]) -> None:
    down(names)
    up(names)


def status(names: list[str]) -> int:
    bad = 0
    for service in _select(names):
        pid = service.pid()
        state = "down" if pid is None else ("up" if service.healthy() else "unhealthy")
        bad += state != "up"
        print(f"{service.name:18} {state:10} {HOST}:{service.port}  pid={pid or '-'}")
    return 1 if bad else 0


def _select(names: list[str]) -> list[Service]:
    if not names:
        return SERVICES
    known = {s.name: s for s in SERVICES}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise StackError(f"unknown service(s) {unknown}; known: {sorted(known)}")
    return [s for s in SERVICES if s.name in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    for cmd, help_ in [
        ("up", "start services (all by default) and wait until healthy"),
        ("down", "stop services, leaving no process behind"),
        ("restart", "stop services, then start them as up does (their data is kept)"),
        ("status", "show each service's state; exit 1 unless all are up"),
    ]:
        sub.add_parser(cmd, help=help_).add_argument("services", nargs="*")
    logs = sub.add_parser("logs", help="print a service's log file")
    logs.add_argument("service")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "up":
            up(args.services)
        elif args.cmd == "down":
            down(args.services)
        elif args.cmd == "restart":
            restart(args.services)
        elif args.cmd == "status":
            return status(args.services)
        else:
            print(_select([args.service])[0].log_file.read_text(errors="replace"), end="")
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
