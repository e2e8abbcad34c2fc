"""The container healthchecks in docker/healthcheck.py, run against real processes and servers."""

from __future__ import annotations

import http.server
import importlib.util
import socketserver
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docker" / "healthcheck.py"
COMPOSE_FILE = ROOT / "docker-compose.yml"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compose_healthcheck", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hc = _load()


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/ok" else 503)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass  # keep test output clean


@pytest.fixture
def http_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def http_server_process() -> Iterator[subprocess.Popen[bytes]]:
    """A real `python -m http.server` process, once /proc shows it."""
    child = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "0"])
    try:
        deadline = time.monotonic() + 10
        while hc.missing_modules(["http.server"], hc.running_modules()):
            assert child.poll() is None, "the http.server child exited"
            assert time.monotonic() < deadline, "the child never showed up in /proc"
            time.sleep(0.1)
        yield child
    finally:
        child.terminate()
        child.wait(timeout=30)


def test_http_check_passes_on_2xx_and_fails_with_the_status(http_server: str) -> None:
    assert hc.check_http(f"{http_server}/ok") == f"{http_server}/ok answered 200"
    with pytest.raises(hc.Unhealthy, match="503"):
        hc.check_http(f"{http_server}/down")


def test_http_check_fails_when_nothing_listens() -> None:
    with pytest.raises(hc.Unhealthy, match="Connection refused"):
        hc.check_http("http://127.0.0.1:9/")


def test_cli_exit_codes(http_server: str) -> None:
    def run(url: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(SCRIPT), "http", url],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    ok, down = run(f"{http_server}/ok"), run(f"{http_server}/down")
    assert (ok.returncode, ok.stdout.strip()) == (0, f"healthy: {http_server}/ok answered 200")
    assert down.returncode == 1
    assert down.stdout.startswith("unhealthy: ")


def test_member_host_matches_the_brokers_address_form() -> None:
    addresses = {"127.0.0.1", "172.18.0.7"}
    assert hc.member_host_matches("/172.18.0.7", addresses)
    assert not hc.member_host_matches("/172.18.0.70", addresses)


def _fake_proc(root: Path, commands: dict[int, list[str]]) -> Path:
    for pid, argv in commands.items():
        (root / str(pid)).mkdir()
        (root / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (root / "self").mkdir()  # not a pid: ignored
    return root


def test_running_modules_reads_argv_from_proc(tmp_path: Path) -> None:
    proc = _fake_proc(
        tmp_path,
        {
            1: ["bash", "/app/docker/producers.sh"],
            7: ["python", "-m", "producers.users_source"],
            9: ["python", "-m", "producers.events", "--rate", "5"],
        },
    )
    commands = hc.running_modules(proc)
    assert sorted(commands) == [
        ["bash", "/app/docker/producers.sh"],
        ["python", "-m", "producers.events", "--rate", "5"],
        ["python", "-m", "producers.users_source"],
    ]
    wanted = ["producers.users_source", "producers.events", "producers.users"]
    assert hc.missing_modules(wanted, commands) == ["producers.users"]


def test_running_modules_sees_a_real_process(http_server_process: subprocess.Popen[bytes]) -> None:
    assert hc.missing_modules(["http.server"], hc.running_modules()) == []
    http_server_process.terminate()
    http_server_process.wait(timeout=30)
    assert hc.missing_modules(["http.server"], hc.running_modules()) == ["http.server"]


@pytest.mark.integration
def test_kafka_member_check_finds_this_hosts_consumer(kafka: str, make_topic) -> None:
    from confluent_kafka import Consumer

    topic = make_topic("healthcheck", partitions=1)
    group = f"test-healthcheck-{uuid.uuid4().hex[:8]}"
    client_id = f"hc-{uuid.uuid4().hex[:8]}"
    consumer = Consumer({"bootstrap.servers": kafka, "group.id": group, "client.id": client_id})
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + 60
        while not consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(0.5)
        assert consumer.assignment(), "the consumer never joined its group"
        memberships = hc.group_memberships(kafka, {"127.0.0.1"})
        assert (group, client_id) in memberships
        # Another container's address is not this one's membership.
        assert (group, client_id) not in hc.group_memberships(kafka, {"192.0.2.1"})
    finally:
        consumer.close()
    assert (group, client_id) not in hc.group_memberships(kafka, {"127.0.0.1"})


def test_kafka_member_check_reports_an_unreachable_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hc, "TIMEOUT_S", 2.0)
    with pytest.raises(hc.Unhealthy, match=r"Kafka at 127\.0\.0\.1:9"):
        hc.check_kafka_member("127.0.0.1:9", {"127.0.0.1"})


def test_running_check_names_missing_modules_then_needs_kafka(
    monkeypatch: pytest.MonkeyPatch, http_server_process: subprocess.Popen[bytes]
) -> None:
    monkeypatch.setattr(hc, "TIMEOUT_S", 2.0)
    with pytest.raises(hc.Unhealthy, match=r"^not running: no\.such\.module$"):
        hc.check_running(["no.such.module"], "127.0.0.1:9")
    with pytest.raises(hc.Unhealthy, match=r"Kafka at 127\.0\.0\.1:9"):
        hc.check_running(["http.server"], "127.0.0.1:9")


def _compose_healthcheck(service: str) -> list[str]:
    compose = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return compose["services"][service]["healthcheck"]["test"]


def _run_shell_check(test: list[str], port_in_file: int, port: int) -> int:
    # Docker runs CMD-SHELL with /bin/sh, as here; CMD argv as given.
    argv = ["/bin/sh", "-c", test[1]] if test[0] == "CMD-SHELL" else test[1:]
    argv = [arg.replace(f"/{port_in_file}", f"/{port}") for arg in argv]
    return subprocess.run(argv, capture_output=True, timeout=30, check=False).returncode


def test_schema_registry_healthcheck_speaks_http() -> None:
    test = _compose_healthcheck("schema-registry")
    codes = {"/health/ready": 200}

    class Registry(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(codes.get(self.path, 404))
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        assert _run_shell_check(test, 8080, port) == 0
        codes["/health/ready"] = 503  # Apicurio not ready yet
        assert _run_shell_check(test, 8080, port) == 1
    finally:
        server.shutdown()
        server.server_close()


def test_zookeeper_healthcheck_asks_ruok() -> None:
    test = _compose_healthcheck("pinot-zookeeper")
    answers = {b"ruok": b"imok"}
    received: list[bytes] = []

    class FourLetterWords(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            word = self.request.recv(4)
            received.append(word)
            self.request.sendall(answers.get(word, b""))

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), FourLetterWords)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        assert _run_shell_check(test, 2181, port) == 0
        answers.clear()  # ruok not whitelisted: ZooKeeper closes without answering
        assert _run_shell_check(test, 2181, port) == 1
    finally:
        server.shutdown()
        server.server_close()
    assert received == [b"ruok", b"ruok"]
    # Without the whitelist the real ZooKeeper would not answer ruok at all.
    compose = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    whitelist = compose["services"]["pinot-zookeeper"]["environment"]["ZOO_4LW_COMMANDS_WHITELIST"]
    assert "ruok" in whitelist.split(",")
