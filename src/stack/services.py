"""The native stack's services: how each is fetched, started and judged healthy.

Everything runs as plain processes on 127.0.0.1, with its data, logs and pid files under
``STACK_HOME`` (``.stack/`` in the repo, git-ignored). Java services get their classpaths from
the poms in ``src/stack/maven/`` so that versions are pinned in one reviewed place.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

from pipeline.settings import STACK_HOME, env, env_int

MAVEN_DIR = Path(__file__).resolve().parent / "maven"
HOST = "127.0.0.1"

KAFKA_PORT = env_int("STACK_KAFKA_PORT", 9092)
KAFKA_CONTROLLER_PORT = env_int("STACK_KAFKA_CONTROLLER_PORT", 9093)
SR_PORT = env_int("STACK_SCHEMA_REGISTRY_PORT", 8081)
MYSQL_PORT = env_int("STACK_MYSQL_PORT", 3306)
ZK_PORT = env_int("STACK_PINOT_ZK_PORT", 2191)
CONTROLLER_PORT = env_int("STACK_PINOT_CONTROLLER_PORT", 9000)
BROKER_PORT = env_int("STACK_PINOT_BROKER_PORT", 8099)
SERVER_PORT = env_int("STACK_PINOT_SERVER_PORT", 8098)
SERVER_ADMIN_PORT = env_int("STACK_PINOT_SERVER_ADMIN_PORT", 8097)
SERVER_GRPC_PORT = env_int("STACK_PINOT_SERVER_GRPC_PORT", 8096)
JAVA = env("STACK_JAVA", shutil.which("java") or "java")

#: Pinot 0.11 predates Java 17's strong encapsulation; without these its controller dies in
#: Jersey/JAXB at start-up.
PINOT_JAVA_FLAGS = [
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.misc=ALL-UNNAMED",
    "-Dio.netty.tryReflectionSetAccessible=true",
]


class StackError(RuntimeError):
    """A problem the user can fix; the message names the fix."""


def require_tool(name: str, fix: str) -> str:
    path = shutil.which(name)
    if not path:
        raise StackError(f"`{name}` not found on PATH: {fix}")
    return path


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((HOST, port)) == 0


def maven_classpath(module: str) -> str:
    """Resolve (once, cached under STACK_HOME) the classpath of ``maven/<module>/pom.xml``."""
    out = STACK_HOME / "classpath" / f"{module}.cp"
    pom = MAVEN_DIR / module / "pom.xml"
    if out.exists() and out.stat().st_mtime >= pom.stat().st_mtime:
        return out.read_text().strip()
    mvn = require_tool("mvn", "install Maven (apt-get install -y maven)")
    out.parent.mkdir(parents=True, exist_ok=True)
    _run_maven(
        [mvn, "-q", "-f", str(pom), "dependency:build-classpath", f"-Dmdep.outputFile={out}"]
    )
    return out.read_text().strip()


def _run_maven(cmd: list[str]) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
        raise StackError(f"Maven failed ({' '.join(cmd)}):\n{tail}")


def apicurio_home() -> Path:
    """Unpack (once) Apicurio's distribution zip, resolved by Maven, under STACK_HOME.

    Python unpacks it rather than ``dependency:unpack-dependencies``: plugin 2.8 (the one the
    mirror holds) writes its marker before unpacking and skips a fresh checkout's first unpack.
    """
    home = STACK_HOME / "apicurio"
    if not any(home.glob("*-runner.jar")):
        archive = Path(maven_classpath("apicurio"))
        staging = home.with_name("apicurio.partial")
        shutil.rmtree(staging, ignore_errors=True)
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(staging)
        shutil.rmtree(home, ignore_errors=True)
        staging.rename(home)
    return home


@dataclass
class Service:
    name: str
    port: int
    #: Returns the command to run; called only when the service is started.
    command: Callable[[], list[str]]
    healthy: Callable[[], bool]
    start_timeout: float = 180.0
    prepare: Callable[[], None] | None = None
    cwd: Callable[[], Path] | None = None

    @property
    def pid_file(self) -> Path:
        return STACK_HOME / "run" / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return STACK_HOME / "logs" / f"{self.name}.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def start(self) -> None:
        if self.prepare:
            self.prepare()
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_file.open("ab")
        # A session of its own, so `down` can stop the whole process group.
        proc = subprocess.Popen(
            self.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=self.cwd() if self.cwd else None,
        )
        self.pid_file.write_text(str(proc.pid))

    def wait_healthy(self) -> float:
        started = time.monotonic()
        deadline = started + self.start_timeout
        while time.monotonic() < deadline:
            if self.pid() is None:
                raise StackError(f"{self.name} exited during start-up; see {self.log_file}")
            if self.healthy():
                return time.monotonic() - started
            time.sleep(1)
        raise StackError(
            f"{self.name} not healthy after {self.start_timeout:.0f}s; see {self.log_file}"
        )

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, 15)
            for _ in range(60):
                if self.pid() is None:
                    break
                time.sleep(0.5)
            else:
                os.killpg(pid, 9)
        self.pid_file.unlink(missing_ok=True)


# --- Kafka -------------------------------------------------------------------------------------


def _kafka_dir() -> Path:
    return STACK_HOME / "kafka"


def _kafka_prepare() -> None:
    data = _kafka_dir() / "data"
    props = _kafka_dir() / "server.properties"
    props.parent.mkdir(parents=True, exist_ok=True)
    props.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@{HOST}:{KAFKA_CONTROLLER_PORT}",
                f"listeners=PLAINTEXT://{HOST}:{KAFKA_PORT},CONTROLLER://{HOST}:{KAFKA_CONTROLLER_PORT}",
                f"advertised.listeners=PLAINTEXT://{HOST}:{KAFKA_PORT}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                f"log.dirs={data}",
                "auto.create.topics.enable=false",
                "num.partitions=1",
                "offsets.topic.replication.factor=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                # Tests create and join many groups; waiting 3 s per first join only slows them.
                "group.initial.rebalance.delay.ms=0",
                "",
            ]
        )
    )
    if not (data / "meta.properties").exists():
        subprocess.run(
            [
                JAVA,
                "-cp",
                maven_classpath("kafka"),
                "kafka.tools.StorageTool",
                "format",
                "-t",
                # A fixed cluster id (22 base64 characters, as `kafka-storage random-uuid` makes).
                "cGFnZXZpZXctc3RyZWFtcw",
                "-c",
                str(props),
            ],
            check=False,
            capture_output=True,
            text=True,
        ).check_returncode()


def _kafka_healthy() -> bool:
    if not port_open(KAFKA_PORT):
        return False
    from confluent_kafka.admin import AdminClient

    try:
        meta = AdminClient({"bootstrap.servers": f"{HOST}:{KAFKA_PORT}"}).list_topics(timeout=3)
    except Exception:
        return False
    return bool(meta.brokers)


KAFKA = Service(
    "kafka",
    KAFKA_PORT,
    lambda: [
        JAVA,
        f"-Xmx{env('STACK_KAFKA_HEAP', '1g')}",
        f"-Dlog4j2.configurationFile={MAVEN_DIR / 'kafka' / 'log4j2.xml'}",
        "-cp",
        maven_classpath("kafka"),
        "kafka.Kafka",
        str(_kafka_dir() / "server.properties"),
    ],
    _kafka_healthy,
    prepare=_kafka_prepare,
)

# --- MariaDB -----------------------------------------------------------------------------------


def _mysql_dir() -> Path:
    return STACK_HOME / "mysql"


def _mysql_prepare() -> None:
    require_tool("mariadbd", "install MariaDB: apt-get update && apt-get install -y mariadb-server")
    data = _mysql_dir() / "data"
    if not (data / "mysql").exists():
        data.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "mariadb-install-db",
                f"--datadir={data}",
                "--user=root",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
        )
    secret = STACK_HOME / "secrets" / "mysql_password"
    if not secret.exists():
        secret.parent.mkdir(parents=True, exist_ok=True)
        secret.write_text(secrets.token_urlsafe(18))
        secret.chmod(0o600)


def _mysql_socket() -> Path:
    return _mysql_dir() / "mysqld.sock"


def _mysql_healthy() -> bool:
    if not port_open(MYSQL_PORT):
        return False
    password = (STACK_HOME / "secrets" / "mysql_password").read_text().strip()
    # Root connects over the socket (no password); the app user is created idempotently.
    sql = (
        "CREATE DATABASE IF NOT EXISTS demo;"
        f"CREATE USER IF NOT EXISTS 'demo'@'127.0.0.1' IDENTIFIED BY '{password}';"
        f"ALTER USER 'demo'@'127.0.0.1' IDENTIFIED BY '{password}';"
        "GRANT ALL PRIVILEGES ON *.* TO 'demo'@'127.0.0.1';"
    )
    result = subprocess.run(
        ["mariadb", f"--socket={_mysql_socket()}", "-uroot", "-e", sql],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


MYSQL = Service(
    "mysql",
    MYSQL_PORT,
    lambda: [
        "mariadbd",
        "--no-defaults",
        f"--datadir={_mysql_dir() / 'data'}",
        f"--socket={_mysql_socket()}",
        f"--pid-file={_mysql_dir() / 'mysqld.pid'}",
        f"--bind-address={HOST}",
        f"--port={MYSQL_PORT}",
        "--user=root",
        # Change tracking in the users source reads binlog-free; keep the server lean.
        "--innodb-buffer-pool-size=128M",
    ],
    _mysql_healthy,
    prepare=_mysql_prepare,
)

# --- Schema Registry (Apicurio) ----------------------------------------------------------------


def _sr_healthy() -> bool:
    try:
        return requests.get(f"http://{HOST}:{SR_PORT}/apis/ccompat/v7/subjects", timeout=2).ok
    except requests.RequestException:
        return False


def _sr_command() -> list[str]:
    home = apicurio_home()
    runner = next(home.glob("*-runner.jar"))
    return [
        JAVA,
        f"-Xmx{env('STACK_SCHEMA_REGISTRY_HEAP', '384m')}",
        f"-Dquarkus.http.host={HOST}",
        f"-Dquarkus.http.port={SR_PORT}",
        "-jar",
        str(runner),
    ]


SCHEMA_REGISTRY = Service("schema-registry", SR_PORT, _sr_command, _sr_healthy)

# --- Pinot -------------------------------------------------------------------------------------


def _pinot_cmd(heap: str, *args: str) -> Callable[[], list[str]]:
    def command() -> list[str]:
        return [
            JAVA,
            f"-Xmx{heap}",
            *PINOT_JAVA_FLAGS,
            "-cp",
            maven_classpath("pinot"),
            "org.apache.pinot.tools.admin.PinotAdministrator",
            *args,
        ]

    return command


def _http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return requests.get(url, timeout=2).ok
        except requests.RequestException:
            return False

    return check


def _pinot_dir() -> Path:
    path = STACK_HOME / "pinot"
    path.mkdir(parents=True, exist_ok=True)
    return path


ZK = f"{HOST}:{ZK_PORT}"
CLUSTER = "PinotCluster"

PINOT_ZOOKEEPER = Service(
    "pinot-zookeeper",
    ZK_PORT,
    _pinot_cmd(
        "256m",
        "StartZookeeper",
        "-zkPort",
        str(ZK_PORT),
        "-dataDir",
        str(STACK_HOME / "pinot" / "zkdata"),
    ),
    lambda: port_open(ZK_PORT),
    cwd=_pinot_dir,
)
PINOT_CONTROLLER = Service(
    "pinot-controller",
    CONTROLLER_PORT,
    _pinot_cmd(
        env("STACK_PINOT_CONTROLLER_HEAP", "512m"),
        "StartController",
        "-zkAddress",
        ZK,
        "-clusterName",
        CLUSTER,
        "-controllerHost",
        HOST,
        "-controllerPort",
        str(CONTROLLER_PORT),
        "-dataDir",
        str(STACK_HOME / "pinot" / "controller-data"),
    ),
    _http_ok(f"http://{HOST}:{CONTROLLER_PORT}/health"),
    cwd=_pinot_dir,
)
PINOT_BROKER = Service(
    "pinot-broker",
    BROKER_PORT,
    _pinot_cmd(
        env("STACK_PINOT_BROKER_HEAP", "384m"),
        "StartBroker",
        "-zkAddress",
        ZK,
        "-clusterName",
        CLUSTER,
        "-brokerHost",
        HOST,
        "-brokerPort",
        str(BROKER_PORT),
    ),
    _http_ok(f"http://{HOST}:{BROKER_PORT}/health"),
    cwd=_pinot_dir,
)
PINOT_SERVER = Service(
    "pinot-server",
    SERVER_PORT,
    _pinot_cmd(
        env("STACK_PINOT_SERVER_HEAP", "1200m"),
        "StartServer",
        "-zkAddress",
        ZK,
        "-clusterName",
        CLUSTER,
        "-serverHost",
        HOST,
        "-serverPort",
        str(SERVER_PORT),
        "-serverAdminPort",
        str(SERVER_ADMIN_PORT),
        "-serverGrpcPort",
        str(SERVER_GRPC_PORT),
        "-dataDir",
        str(STACK_HOME / "pinot" / "server-data"),
        "-segmentDir",
        str(STACK_HOME / "pinot" / "server-segments"),
    ),
    _http_ok(f"http://{HOST}:{SERVER_ADMIN_PORT}/health/readiness"),
    cwd=_pinot_dir,
)

#: Start order: each service's dependencies come before it.
SERVICES: list[Service] = [
    KAFKA,
    MYSQL,
    SCHEMA_REGISTRY,
    PINOT_ZOOKEEPER,
    PINOT_CONTROLLER,
    PINOT_BROKER,
    PINOT_SERVER,
]
