"""The native stack keeps to this machine and keeps its secrets out of sight.

These tests look at the processes of the running stack (``python -m stack up``): each service
runs in a process group of its own, led by the pid in its pid file.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
import subprocess
import uuid
from pathlib import Path

import pytest

from clients.settings import STACK_HOME, MySQLSettings, PinotSettings
from producers.mysql import connect, ensure_table
from stack.services import MYSQL, SERVICES
from tests.conftest import IN_CI

pytestmark = pytest.mark.integration

SECRETS = STACK_HOME / "secrets"


def _not_native(why: str) -> None:
    message = (
        f"the services are not the native stack's ({why}); start them with `python -m stack up`"
    )
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def stack_processes(
    kafka: str, mysql: MySQLSettings, schema_registry_url: str, pinot: PinotSettings
) -> dict[int, str]:
    """Every live process of the stack, as pid -> service name."""
    leaders: dict[int, str] = {}
    for service in SERVICES:
        pid = service.pid()
        if pid is None:
            _not_native(f"{service.name} has no live process in {service.pid_file}")
        leaders[pid] = service.name
    members: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                group = os.getpgid(int(entry.name))
            except ProcessLookupError:  # ended since the listing
                continue
            if group in leaders:
                members[int(entry.name)] = leaders[group]
    return members


def _listening_sockets() -> list[tuple[int, str, str]]:
    """(pid, tcp or udp, local address) of every listening socket on this machine."""
    out = subprocess.run(
        ["ss", "-H", "-l", "-n", "-p", "-t", "-u"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    sockets = []
    for line in out.splitlines():
        netid, _state, _recv, _send, local, *_ = line.split()
        sockets += [(int(pid), netid, local) for pid in re.findall(r"pid=(\d+)", line)]
    return sockets


def _split(local: str) -> tuple[str, int]:
    host, _, port = local.rpartition(":")
    return host.strip("[]").partition("%")[0], int(port)


def _is_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # `*`: every address
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback


def test_every_socket_of_the_stack_listens_on_loopback_only(
    stack_processes: dict[int, str],
) -> None:
    sockets = [
        (stack_processes[pid], netid, local)
        for pid, netid, local in _listening_sockets()
        if pid in stack_processes
    ]
    # The sockets found are the stack's: each service's own port is among them.
    ports = {(name, _split(local)[1]) for name, _netid, local in sockets}
    for service in SERVICES:
        assert (service.name, service.port) in ports, f"{service.name} listens on no {service.port}"
    beyond = [
        f"{name}: {netid} {local}"
        for name, netid, local in sockets
        if not _is_loopback(_split(local)[0])
    ]
    assert beyond == [], "sockets reachable from other machines"


def _secrets() -> dict[str, bytes]:
    values = {path.name: path.read_bytes().strip() for path in SECRETS.iterdir()}
    assert values, f"no secrets in {SECRETS}"
    # An empty or tiny secret would make the searches below meaningless.
    assert all(len(value) >= 16 for value in values.values()), "a secret is too short"
    return values


def test_secret_files_are_readable_by_their_owner_only(stack_processes: dict[int, str]) -> None:
    assert stat.S_IMODE(SECRETS.stat().st_mode) == 0o700
    for path in SECRETS.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_no_process_of_the_stack_holds_a_secret_in_its_command_line_or_environment(
    stack_processes: dict[int, str],
) -> None:
    secrets = _secrets()
    leaks = []
    for pid, name in stack_processes.items():
        for part in ("cmdline", "environ"):
            try:
                data = Path(f"/proc/{pid}/{part}").read_bytes()
            except (FileNotFoundError, ProcessLookupError):  # ended since the listing
                continue
            leaks += [f"{name} (pid {pid}) {part}: {s}" for s, v in secrets.items() if v in data]
    assert leaks == []


def test_mysql_health_check_and_provisioning_pass_no_secret_on_a_command_line(
    stack_processes: dict[int, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The client processes they start live for milliseconds, so record their argv as started.
    started: list[list[str]] = []

    class Recorded(subprocess.Popen):
        def __init__(self, args, *rest, **options) -> None:
            started.append([str(arg) for arg in args])
            super().__init__(args, *rest, **options)

    monkeypatch.setattr(subprocess, "Popen", Recorded)
    assert MYSQL.healthy()
    assert MYSQL.provision is not None
    MYSQL.provision()
    assert len(started) >= 2, "the health check and provisioning ran no client"
    secrets = _secrets()
    leaks = [argv for argv in started for value in secrets.values() if value.decode() in str(argv)]
    assert leaks == []


#: What the users generator, the users source and the tests' clean-up run on the demo database.
DEMO_PRIVILEGES = {
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "CREATE",
    "DROP",
    "INDEX",
    "ALTER",
    "TRIGGER",
}


def test_demo_user_has_only_the_producers_privileges_and_only_on_its_database(
    stack_processes: dict[int, str], mysql: MySQLSettings
) -> None:
    conn = connect()  # the producers' own connection: their user, password and database
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW GRANTS")
            grants = [row[0] for row in cur.fetchall()]
            # The privileges are enough for the producers' table, its index and its trigger.
            table = f"probe_{uuid.uuid4().hex[:8]}"
            ensure_table(conn, table)
            cur.execute(f"DROP TABLE `{table}`, `{table}_deleted`")
    finally:
        conn.close()
    levels: dict[str, set[str]] = {}
    for grant in grants:
        privileges, _, rest = grant.removeprefix("GRANT ").partition(" ON ")
        levels[rest.partition(" TO ")[0]] = set(privileges.split(", "))
    # USAGE on *.*: may log in, and nothing more (no FILE, no SUPER, no other database).
    assert levels == {"*.*": {"USAGE"}, f"`{mysql.database}`.*": DEMO_PRIVILEGES}
    assert not any("GRANT OPTION" in grant for grant in grants)
