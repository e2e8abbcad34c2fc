"""Static checks of docker-compose.yml and the image it builds.

No Docker engine runs on our machines or in CI, so the compose file is validated by reading it:
every service's image or build, healthchecks, the start-order graph, published ports, volumes,
scalability of the processors, and that every environment variable the apps read is either set
for the app containers or deliberately left to its safe default. The variables are discovered
by scanning the project's source, so an app that starts reading a new variable fails this test
until the compose file (or the list of safe defaults below) says what it gets.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib.util
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from functools import cache
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from stack.reference import ENV_ROOTS, EnvRead, discover_env_reads, python_files

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
#: Compose interpolation needs these; the password is a test value, never a real one.
COMPOSE_ENV = {"MYSQL_PASSWORD": "test-only-password"}

#: The project's application code. src/stack is the native stack's launcher (its variables pick
#: ports and versions of processes compose does not run) and bench/ is not deployed.
APP_SOURCES = [ROOT / root for root in ENV_ROOTS]
NOT_DEPLOYED = [ROOT / "src" / "stack"]

BROKERS = ("kafka1", "kafka2", "kafka3")
PROCESSORS = ("users", "country", "windows", "hits")
ONE_SHOT = ("init-topics", "init-pinot", "init-users")

#: Variables the apps read that compose deliberately leaves to their defaults, with the reason.
#: A name here must have a default that works inside a container (not a loopback address).
SAFE_DEFAULTS = {
    "TOPIC_*": "topic names: every container uses the same default names as the native stack",
    "PINOT_TABLE_*": "table names: init-pinot and the dashboard share the same defaults",
    "PINOT_RETENTION_DAYS": "retention of the Pinot tables; 7 days as the topics keep",
    "DASHBOARD_REFRESH_SECONDS": "the dashboard's refresh period (15 s, as the original)",
    "STACK_HOME": "native-stack folder, only a fallback for the password file",
    "WINDOWS_*": "window sizes, hop, gap, grace and emit mode: the original statements' values",
    "COUNTRY_*": "country window, grace, emit mode and join type: the original statement's",
    "USERS_*": "users generator and source settings: table Users, 200 users, 1 s polls",
    "EVENTS_*": "the events generator's real-time rate (50 page views/s)",
    "CLICKSTREAM_RATE": "the clickstream generator's pace (0: as fast as possible)",
    "COLLECTOR_*": "collector settings: port 8090, buffer, delivery timeout, no trusted proxy, "
    "cookie not Secure (no HTTPS); the collector service sets COLLECTOR_HOST",
    "HITS_SOURCES_FILE": "streams.hits' source rules: the built-in ones",
    "KSQL_CATALOG_TOPIC": "streams.ksql's catalog topic: one name for every run and SHOW",
    "KSQL_HISTORY_FILE": "the interactive streams.ksql shell's history (~/.streams_ksql_history)",
    "*_CONSUMER_GROUP": "one fixed group per processor, shared by its replicas (--scale)",
    "STREAMS_*": "processor tuning (commit interval; state dir: ./state under the WORKDIR)",
    "LOG_LEVEL": "INFO",
    "EVENT_TIME_*": "sanity bounds for event timestamps",
    "MYSQL_PASSWORD_FILE": "alternative to MYSQL_PASSWORD, which compose sets",
    "SCHEMA_REGISTRY_TIMEOUT_S": "seconds per registry request (10)",
    "SCHEMA_REGISTRY_RETRY_S": "how long streams.users waits out an unreachable registry (60 s)",
    "MYSQL_*_TIMEOUT_S": "MySQL client timeouts: connect 10 s, each read or write 60 s",
}

_INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$\$")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` and ``$$`` substitution."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name", "op", "arg")
        value = env.get(name)
        missing = value is None or (value == "" and op is not None and op.startswith(":"))
        if op and op.endswith("?") and missing:
            raise ValueError(f"compose needs {name}: {arg}")
        if op and op.endswith("-") and missing:
            return arg
        return value or ""

    return _INTERPOLATION.sub(substitute, text)


def _interpolate_tree(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {key: _interpolate_tree(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [_interpolate_tree(value, env) for value in node]
    if isinstance(node, str):
        return interpolate(node, env)
    return node


@cache
def raw_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@cache
def compose() -> dict[str, Any]:
    return _interpolate_tree(raw_compose(), COMPOSE_ENV)


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def environment(service: str) -> dict[str, str]:
    env = services()[service].get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def app_services() -> list[str]:
    """Services that run the project's image (built from docker/app.Dockerfile)."""
    return [name for name, svc in services().items() if "build" in svc]


def depends_on(service: str) -> dict[str, str]:
    deps = services()[service].get("depends_on", {})
    assert isinstance(deps, dict), f"{service}: depends_on must use the long form with conditions"
    return {name: spec["condition"] for name, spec in deps.items()}


def command_argv(service: str) -> list[str]:
    command = services()[service].get("command", [])
    return command.split() if isinstance(command, str) else list(command)


# --------------------------------------------------------------------------------------------
# Discovering the environment variables the apps read (the scanner is stack.reference's,
# which also renders them into docs/reference.md)


@cache
def app_env_reads() -> dict[str, EnvRead]:
    return discover_env_reads(python_files(APP_SOURCES, NOT_DEPLOYED))


def _points_at_this_machine(default: str | None) -> bool:
    return default is not None and ("127.0.0.1" in default or "localhost" in default)


def _covered(name: str, env: dict[str, str]) -> bool:
    return name in env or any(fnmatch.fnmatchcase(name, pattern) for pattern in SAFE_DEFAULTS)


# --------------------------------------------------------------------------------------------
# The scanner itself


def test_scanner_finds_every_way_of_reading_the_environment(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text(
        "import os\n"
        "def env(name, default):\n"
        "    return os.environ.get(name, '') or default\n"
        "def env_int(name, default):\n"
        "    return int(env(name, str(default)))\n"
        "def _topic(var, default):\n"
        "    return env(var, default)\n"
        "A = env('A_URL', 'http://127.0.0.1:1')\n"
        "B = env_int('B_COUNT', 3)\n"
        "C = _topic('C_TOPIC', 'c')\n"
        "D = os.environ['D_SECRET']\n"
        "E = os.getenv('E_FLAG')\n"
        "F = 'F_SET' in os.environ\n"
        "for kind in ('x', 'y'):\n"
        "    G = env(f'G_{kind.upper()}_NAME', kind)\n"
        "def flags(parser, prefix):\n"
        "    return env(f'{prefix}_GRACE', '')\n"
        "flags(None, 'WIN')\n"
        "os.environ['H_WRITTEN'] = '1'\n",
        encoding="utf-8",
    )
    reads = discover_env_reads([source])
    assert {name: read.default for name, read in reads.items()} == {
        "A_URL": "'http://127.0.0.1:1'",
        "B_COUNT": "3",
        "C_TOPIC": "'c'",
        "D_SECRET": None,
        "E_FLAG": None,
        "F_SET": None,
        "G_*_NAME": "kind",
        "WIN_GRACE": "''",
    }


def test_scanner_finds_the_shared_settings_in_the_project() -> None:
    reads = app_env_reads()
    for name in (
        "KAFKA_BOOTSTRAP_SERVERS",
        "SCHEMA_REGISTRY_URL",
        "MYSQL_HOST",
        "MYSQL_PASSWORD",
        "PINOT_BROKER_URL",
        "TOPIC_PARTITIONS",
        "TOPIC_REPLICATION_FACTOR",
        "TOPIC_PAGEVIEWS",
    ):
        assert name in reads, f"{name} not discovered; the scanner misses a way of reading env"
    assert reads["KAFKA_BOOTSTRAP_SERVERS"].default == "'127.0.0.1:9092'"
    assert reads["MYSQL_PASSWORD"].default is None


def test_interpolation_follows_compose_rules() -> None:
    env = {"SET": "v", "EMPTY": ""}
    text = "${SET:-d} ${EMPTY:-d} ${EMPTY-d} ${UNSET-d} $${SET}"
    assert interpolate(text, env) == "v d  d ${SET}"
    with pytest.raises(ValueError, match="compose needs EMPTY: say so"):
        interpolate("${EMPTY:?say so}", env)


# --------------------------------------------------------------------------------------------
# Environment: the apps get what they read


@pytest.mark.parametrize(
    "service", ["init-topics", *PROCESSORS, "producers", "collector", "dashboard"]
)
def test_every_variable_the_apps_read_is_set_or_safely_defaulted(service: str) -> None:
    env = environment(service)
    unset = {name: read.where for name, read in app_env_reads().items() if not _covered(name, env)}
    assert not unset, (
        f"{service} does not set variables the apps read (set them in docker-compose.yml's "
        f"x-app environment, or add them to SAFE_DEFAULTS with the reason): {unset}"
    )


def test_safe_defaults_are_safe_and_still_read() -> None:
    reads = app_env_reads()
    # Set for every app (the x-app anchor) or by the one service that reads it.
    set_by_compose = set().union(*(environment(service) for service in app_services()))
    for pattern, reason in SAFE_DEFAULTS.items():
        matching = [read for name, read in reads.items() if fnmatch.fnmatchcase(name, pattern)]
        assert matching, f"{pattern} ({reason}) is no longer read by any app: remove it"
        for read in matching:
            if read.name in ("STACK_HOME", "MYSQL_PASSWORD_FILE"):
                continue  # fallbacks behind MYSQL_PASSWORD, which compose sets
            if read.name in set_by_compose:
                continue  # compose sets it (e.g. passed through from the host's .env)
            assert read.default is not None, f"{read.name} has no default: compose must set it"
            assert not _points_at_this_machine(read.default), (
                f"{read.name} defaults to {read.default}, which is wrong inside a container"
            )


def test_addresses_name_compose_services_on_the_right_ports() -> None:
    env = environment("init-topics")
    names = set(services())
    brokers = [hostport.rpartition(":") for hostport in env["KAFKA_BOOTSTRAP_SERVERS"].split(",")]
    assert sorted(host for host, _, _ in brokers) == list(BROKERS)
    assert {port for _, _, port in brokers} == {"9092"}
    assert env["PINOT_KAFKA_BROKER_LIST"] == env["KAFKA_BOOTSTRAP_SERVERS"]
    assert env["MYSQL_HOST"] in names
    assert services()[env["MYSQL_HOST"]]["image"].startswith("mariadb:")

    registry = urlparse(env["SCHEMA_REGISTRY_URL"])
    native_registry = urlparse(ast.literal_eval(app_env_reads()["SCHEMA_REGISTRY_URL"].default))
    assert registry.hostname == "schema-registry"
    assert registry.port == 8080  # Apicurio's port inside its container
    assert registry.path == native_registry.path == "/apis/ccompat/v7"

    for var, service, flag in (
        ("PINOT_CONTROLLER_URL", "pinot-controller", "-controllerPort"),
        ("PINOT_BROKER_URL", "pinot-broker", "-brokerPort"),
    ):
        url = urlparse(env[var])
        argv = command_argv(service)
        assert url.hostname == service
        assert str(url.port) == argv[argv.index(flag) + 1]


def test_all_app_containers_share_one_environment() -> None:
    """One anchor feeds every app container, so no service drifts to other addresses."""
    base = environment("init-topics")
    for service in app_services():
        env = environment(service)
        assert {key: env[key] for key in base} == base, service


def test_mysql_password_comes_from_the_environment_not_the_file() -> None:
    raw = raw_compose()["x-app"]["environment"]["MYSQL_PASSWORD"]
    assert re.fullmatch(r"\$\{MYSQL_PASSWORD:\?[^}]+\}", raw), raw
    mysql = raw_compose()["services"]["mysql"]["environment"]
    assert mysql["MARIADB_PASSWORD"] == raw
    assert environment("mysql")["MARIADB_USER"] == environment("users")["MYSQL_USER"]
    assert environment("mysql")["MARIADB_DATABASE"] == environment("users")["MYSQL_DATABASE"]
    with pytest.raises(ValueError, match="MYSQL_PASSWORD"):
        _interpolate_tree(raw_compose(), {})
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    assert re.search(r"^MYSQL_PASSWORD=$", example, re.M), "the example must not ship a password"


# --------------------------------------------------------------------------------------------
# Services: images, healthchecks, start order


def _pom_property(pom: str, prop: str) -> str:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    root = ET.parse(ROOT / "src" / "stack" / "maven" / pom / "pom.xml").getroot()
    value = root.find(f"m:properties/m:{prop}", ns)
    assert value is not None, f"{pom}/pom.xml has no {prop}"
    return value.text or ""


def test_every_service_has_a_pinned_image_or_a_build() -> None:
    for name, svc in services().items():
        assert "image" in svc or "build" in svc, name
        if "build" not in svc:
            image = svc["image"]
            assert ":" in image and not image.endswith(":latest"), f"{name}: pin {image}"


def test_images_are_in_step_with_the_native_stack() -> None:
    kafka = _pom_property("kafka", "kafka.version")
    pinot = _pom_property("pinot", "pinot.version")
    for broker in BROKERS:
        assert services()[broker]["image"] == f"apache/kafka:{kafka}"
    for service in ("pinot-controller", "pinot-broker", "pinot-server"):
        assert services()[service]["image"] == f"apachepinot/pinot:{pinot}"
    assert services()["schema-registry"]["image"].startswith("apicurio/apicurio-registry-")
    assert services()["schema-registry"]["image"].endswith(":2.6.13.Final")
    assert services()["mysql"]["image"] == "mariadb:10.11"


def test_every_long_running_service_has_a_healthcheck_and_one_shots_do_not_restart() -> None:
    for name, svc in services().items():
        if name in ONE_SHOT:
            assert svc.get("restart") == "no", name
            assert "healthcheck" not in svc, name
        else:
            assert svc.get("restart") == "unless-stopped", name
            test = svc.get("healthcheck", {}).get("test")
            assert test and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
            # CMD-SHELL runs /bin/sh (dash, busybox), which has no /dev/tcp.
            assert not (test[0] == "CMD-SHELL" and "/dev/tcp" in test[1]), name


def test_dependencies_wait_for_health_or_completion_and_have_no_cycle() -> None:
    graph = {name: set(depends_on(name)) for name in services()}
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        pytest.fail(f"depends_on has a cycle: {exc.args[1]}")
    for name in services():
        for dep, condition in depends_on(name).items():
            assert dep in services(), f"{name} depends on unknown {dep}"
            expected = "service_completed_successfully" if dep in ONE_SHOT else "service_healthy"
            assert condition == expected, f"{name} -> {dep}: {condition}"
    assert order.index("init-topics") > max(order.index(b) for b in BROKERS)


def _ancestors(service: str) -> set[str]:
    seen: set[str] = set()
    stack = [service]
    while stack:
        for dep in depends_on(stack.pop()):
            if dep not in seen:
                seen.add(dep)
                stack.append(dep)
    return seen


@pytest.mark.parametrize(
    ("service", "needs"),
    [
        ("schema-registry", {*BROKERS}),
        ("init-topics", {*BROKERS}),
        (
            "init-pinot",
            {"init-topics", "pinot-zookeeper", "pinot-controller", "pinot-broker", "pinot-server"},
        ),
        ("init-users", {"mysql"}),
        ("producers", {"init-topics", "init-users", "mysql", "schema-registry"}),
        ("users", {"init-topics", "schema-registry"}),
        ("country", {"init-topics", "schema-registry"}),
        ("windows", {"init-topics", "schema-registry"}),
        ("hits", {"init-topics"}),
        ("collector", {"init-topics"}),
        ("dashboard", {"init-pinot", "pinot-broker"}),
    ],
)
def test_start_order(service: str, needs: set[str]) -> None:
    assert needs <= _ancestors(service), needs - _ancestors(service)


def test_one_shot_services_run_the_shared_setup_commands() -> None:
    assert command_argv("init-topics") == ["python", "-m", "contracts.topics", "create"]
    assert environment("init-topics")["TOPIC_PARTITIONS"] == "5"
    assert environment("init-topics")["TOPIC_REPLICATION_FACTOR"] == "3"
    assert command_argv("init-pinot") == ["python", "-m", "pinot.setup"]


def test_python_modules_run_by_services_exist() -> None:
    script = (ROOT / "docker" / "producers.sh").read_text(encoding="utf-8")
    modules = {f"producers.sh: {m}": m for m in re.findall(r"python -m (\S+)", script)}
    for name in services():
        argv = command_argv(name)
        if argv[:2] == ["python", "-m"]:
            modules[f"{name}: {argv[2]}"] = argv[2]
    missing = [
        where for where, module in modules.items() if importlib.util.find_spec(module) is None
    ]
    assert not missing, f"no such module: {missing}"
    dashboard = command_argv("dashboard")
    assert dashboard[:2] == ["streamlit", "run"]
    assert (ROOT / dashboard[2]).is_file()


# --------------------------------------------------------------------------------------------
# Kafka cluster


def test_kafka_is_a_three_node_kraft_quorum() -> None:
    envs = {broker: environment(broker) for broker in BROKERS}
    node_ids = {broker: env["KAFKA_NODE_ID"] for broker, env in envs.items()}
    assert sorted(node_ids.values()) == ["1", "2", "3"]
    voters = {f"{node_ids[b]}@{b}:9093" for b in BROKERS}
    for broker, env in envs.items():
        assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
        assert set(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == voters
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{broker}:9092"
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        assert services()[broker]["hostname"] == broker
    assert len({env["CLUSTER_ID"] for env in envs.values()}) == 1
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", envs["kafka1"]["CLUSTER_ID"])


def test_replication_survives_one_broker_down() -> None:
    env = environment("kafka1")
    replication = int(environment("init-topics")["TOPIC_REPLICATION_FACTOR"])
    min_isr = int(env["KAFKA_MIN_INSYNC_REPLICAS"])
    assert replication == len(BROKERS)
    assert replication - 1 >= min_isr >= 2
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_DEFAULT_REPLICATION_FACTOR",
    ):
        assert int(env[key]) == replication, key
    assert int(env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"]) == min_isr


# --------------------------------------------------------------------------------------------
# Ports, volumes, scaling


def test_only_the_dashboard_collector_and_pinot_console_are_published_on_loopback() -> None:
    published = {name: svc["ports"] for name, svc in services().items() if "ports" in svc}
    assert set(published) == {"dashboard", "collector", "pinot-controller"}
    for name, ports in published.items():
        for port in ports:
            assert isinstance(port, str) and port.startswith("127.0.0.1:"), f"{name}: {port}"
    assert published["dashboard"] == ["127.0.0.1:8501:8501"]
    assert published["collector"] == ["127.0.0.1:8090:8090"]


def test_data_lives_in_named_volumes() -> None:
    declared = set(compose()["volumes"])
    used = set()
    for name, svc in services().items():
        for mount in svc.get("volumes", []):
            source = mount.split(":", 1)[0] if isinstance(mount, str) else mount["source"]
            assert source in declared, f"{name}: {source} is not a named volume"
            used.add(source)
    assert used == declared
    for service in (*BROKERS, "mysql", "pinot-zookeeper", "pinot-controller", "pinot-server"):
        assert services()[service].get("volumes"), f"{service} keeps data: give it a volume"


@pytest.mark.parametrize("service", PROCESSORS)
def test_processors_can_scale_out(service: str) -> None:
    svc = services()[service]
    for key in ("container_name", "ports", "hostname", "volumes"):
        assert key not in svc, f"{service}: {key} prevents `--scale {service}=N`"
    assert command_argv(service) == ["python", "-m", f"streams.{service}"]


def test_pinot_has_its_own_zookeeper() -> None:
    for service in ("pinot-controller", "pinot-broker", "pinot-server"):
        argv = command_argv(service)
        assert argv[argv.index("-zkAddress") + 1] == "pinot-zookeeper:2181"
    assert "pinot-zookeeper" in _ancestors("pinot-server")


# --------------------------------------------------------------------------------------------
# The image


def _dockerfile_copies(dockerfile: Path) -> list[tuple[list[str], str]]:
    copies = []
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if parts and parts[0] == "COPY":
            args = [part for part in parts[1:] if not part.startswith("--")]
            copies.append((args[:-1], args[-1]))
    return copies


def _dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_dockerfiles_copy_files_that_exist_and_are_not_ignored() -> None:
    dockerfiles = {svc["build"]["dockerfile"] for svc in services().values() if "build" in svc}
    assert dockerfiles == {"docker/app.Dockerfile"}
    for svc in services().values():
        if "build" in svc:
            assert svc["build"]["context"] == "."
    dockerfile = ROOT / "docker" / "app.Dockerfile"
    text = dockerfile.read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    ignored = _dockerignore_patterns()
    copied = []
    for sources, _ in _dockerfile_copies(dockerfile):
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file"
            assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), source
            copied.append(source)
    assert {"pyproject.toml", "src", "pinot"} <= set(copied)


def test_processor_state_dir_is_writable_in_the_image() -> None:
    """Quix keeps RocksDB state in STREAMS_STATE_DIR; the image's user must be able to write it."""
    text = (ROOT / "docker" / "app.Dockerfile").read_text(encoding="utf-8")
    workdir = Path(re.findall(r"^WORKDIR (\S+)", text, re.M)[-1])
    default = ast.literal_eval(app_env_reads()["STREAMS_STATE_DIR"].default)
    state_dir = workdir / default
    user = re.findall(r"^USER (\S+)", text, re.M)[-1]
    assert re.search(rf"mkdir -p {state_dir} && chown {user} {state_dir}", text), state_dir


def test_scripts_the_services_run_are_in_the_image() -> None:
    copied = {
        f"{dest.rstrip('/')}/{Path(source).name}"
        for sources, dest in _dockerfile_copies(ROOT / "docker" / "app.Dockerfile")
        for source in sources
        if source.startswith("docker/")
    }
    for name, svc in services().items():
        words = command_argv(name) + list(svc.get("healthcheck", {}).get("test", []))
        for word in words:
            if word.startswith("/app/docker/"):
                assert f"./docker/{Path(word).name}" in copied, f"{name}: {word} not in image"
                assert (ROOT / "docker" / Path(word).name).is_file(), word


# --------------------------------------------------------------------------------------------
# docker compose's own validation, where its CLI exists


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    cli = _compose_cli()
    if cli is None:
        message = "no docker compose CLI (apt-get install docker-compose)"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"{message}, although scripts/install installs it", pytrace=False)
        pytest.skip(f"{message}; the PyYAML checks above are the gate")
    # An empty env file, so a developer's own .env cannot supply the password.
    env_file = tmp_path / "empty.env"
    env_file.write_text("", encoding="utf-8")
    env = {**os.environ, **COMPOSE_ENV}
    result = subprocess.run(
        [*cli, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    missing = subprocess.run(
        [*cli, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True,
        text=True,
        env={k: v for k, v in env.items() if k != "MYSQL_PASSWORD"},
        cwd=ROOT,
        check=False,
    )
    assert missing.returncode != 0
    assert "set MYSQL_PASSWORD in .env" in missing.stderr
