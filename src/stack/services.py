"""The native stack's services: how each is fetched, started, judged healthy and provisioned.

Everything runs as plain processes listening on 127.0.0.1 only, with its data, logs and pid files
under ``STACK_HOME`` (``.stack/`` in the repo, git-ignored). Java services get their classpaths
from the poms in ``src/stack/maven/`` so that versions are pinned in one reviewed place. Secrets
stay in ``STACK_HOME/secrets`` (0700, files 0600): never on a command line, which every local
user can read in ``ps``, nor in a service's environment.
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import requests

from clients.settings import STACK_HOME, env, env_int

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

#: Variables of the applications that hold secrets: a service started from a shell that set
#: them for the apps must not carry them in its environment.
SECRET_VARIABLES = ("MYSQL_PASSWORD",)

#: Generous bounds for tools that do a lot of work (Maven may download the whole mirror set of
#: Pinot's jars on a fresh machine); a hung tool still ends in an error that names it.
MAVEN_TIMEOUT = 1800.0
TOOL_TIMEOUT = 300.0
#: A health check or client call that takes longer than this counts as a failed check.
CHECK_TIMEOUT = 10.0


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


def run_tool(cmd: list[str], timeout: float = TOOL_TIMEOUT, stdin: str | None = None) -> None:
    """Run a set-up command; on failure raise a StackError with the end of its output.

    SQL and other input that may carry a secret goes on ``stdin``, never in ``cmd``.
    """
    try:
        result = subprocess.run(
            cmd, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise StackError(f"{cmd[0]} did not finish in {timeout:.0f}s ({' '.join(cmd)})") from exc
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
        raise StackError(f"{cmd[0]} failed ({' '.join(cmd)}):\n{tail}")


def maven_classpath(module: str, pom: Path | None = None) -> str:
    """Resolve (once, cached under STACK_HOME) the classpath of ``maven/<module>/pom.xml``, or
    of ``pom`` (a benchmark's) named ``module``."""
    out = STACK_HOME / "classpath" / f"{module}.cp"
    pom = pom or MAVEN_DIR / module / "pom.xml"
    if out.exists() and out.stat().st_mtime >= pom.stat().st_mtime:
        return out.read_text().strip()
    mvn = require_tool("mvn", "install Maven (apt-get install -y maven)")
    out.parent.mkdir(parents=True, exist_ok=True)
    run_tool(
        [mvn, "-q", "-f", str(pom), "dependency:build-classpath", f"-Dmdep.outputFile={out}"],
        timeout=MAVEN_TIMEOUT,
    )
    return out.read_text().strip()


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


def secret_file(name: str) -> Path:
    """``STACK_HOME/secrets/<name>``, generated on first use.

    The file is created 0600 by ``open`` itself, so it is never readable by others, not even
    between its creation and a chmod; the folder is 0700 so its names do not show either.
    """
    folder = STACK_HOME / "secrets"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    # mkdir leaves an existing folder's mode alone; stacks made before this one have it 0755.
    folder.chmod(0o700)
    path = folder / name
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(18))
    return path


def write_properties(path: Path, values: Mapping[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))


@dataclass
class Service:
    name: str
    port: int
    #: Returns the command to run; called only when the service is started.
    command: Callable[[], list[str]]
    #: Looks only: it may run often (``up``, ``status``) and must change nothing.
    healthy: Callable[[], bool]
    start_timeout: float = 180.0
    prepare: Callable[[], None] | None = None
    cwd: Callable[[], Path] | None = None
    #: Variables added to the service's environment (never secrets; see SECRET_VARIABLES).
    extra_env: Callable[[], dict[str, str]] | None = None
    #: Run by ``up`` once the service is healthy: creates what clients need, idempotently.
    provision: Callable[[], None] | None = None

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
        environment = {k: v for k, v in os.environ.items() if k not in SECRET_VARIABLES}
        if self.extra_env:
            environment.update(self.extra_env())
        log = self.log_file.open("ab")
        # A session of its own, so `down` can stop the whole process group.
        proc = subprocess.Popen(
            self.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=self.cwd() if self.cwd else None,
            env=environment,
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
        run_tool(
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
            ]
        )


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

MYSQL_DATABASE = "demo"
MYSQL_DEMO_USER = "'demo'@'127.0.0.1'"
#: What the users generator and the users source run on the demo database (tables with an
#: index, the deletion trigger and its log table, reads and changes), and what tests run to clean
#: up (DROP). Nothing on *.*: no FILE, no SUPER, no other database.
MYSQL_DEMO_PRIVILEGES = (
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "CREATE",
    "DROP",
    "INDEX",
    "ALTER",
    "TRIGGER",
)


def _mysql_dir() -> Path:
    return STACK_HOME / "mysql"


def _mysql_socket() -> Path:
    return _mysql_dir() / "mysqld.sock"


def _mysql_password_file() -> Path:
    return secret_file("mysql_password")


def _mysql_prepare() -> None:
    require_tool("mariadbd", "install MariaDB: apt-get update && apt-get install -y mariadb-server")
    data = _mysql_dir() / "data"
    if not (data / "mysql").exists():
        data.mkdir(parents=True, exist_ok=True)
        run_tool(
            [
                "mariadb-install-db",
                f"--datadir={data}",
                "--user=root",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ]
        )
    _mysql_password_file()


def _root_client() -> list[str]:
    """The mariadb client as root over the socket (socket authentication: no password)."""
    return ["mariadb", "--no-defaults", f"--socket={_mysql_socket()}", "-uroot", "--batch"]


def _mysql_healthy() -> bool:
    if not port_open(MYSQL_PORT):
        return False
    try:
        result = subprocess.run(
            _root_client(),
            input=b"SELECT 1",
            capture_output=True,
            timeout=CHECK_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0


def _sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _mysql_provision() -> None:
    password = _sql_string(_mysql_password_file().read_text().strip())
    privileges = ", ".join(MYSQL_DEMO_PRIVILEGES)
    sql = f"""
        CREATE DATABASE IF NOT EXISTS {MYSQL_DATABASE};
        CREATE USER IF NOT EXISTS {MYSQL_DEMO_USER} IDENTIFIED BY {password};
        ALTER USER {MYSQL_DEMO_USER} IDENTIFIED BY {password};
        GRANT {privileges} ON {MYSQL_DATABASE}.* TO {MYSQL_DEMO_USER};
        -- Stacks made before had ALL on *.*. Revoking only after the grant above never leaves a
        -- connected producer without its privileges on the demo database.
        REVOKE ALL PRIVILEGES ON *.* FROM {MYSQL_DEMO_USER};
    """
    # On stdin: a password in `-e SQL` would be on the client's command line.
    run_tool(_root_client(), timeout=CHECK_TIMEOUT, stdin=sql)


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
    provision=_mysql_provision,
)

# --- Schema Registry (Apicurio) ----------------------------------------------------------------


def _sr_data() -> Path:
    """The registry's H2 database folder: not under STACK_HOME/apicurio, which ``apicurio_home``
    deletes and unpacks anew."""
    return (STACK_HOME / "schema-registry").resolve()


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


def _sr_env() -> dict[str, str]:
    # The "in-memory" distribution is Apicurio's SQL storage on H2; on a file instead of
    # jdbc:h2:mem its schemas and id sequences survive a restart, so schema ids already written
    # into topics keep resolving. H2 is embedded: the file opens no port.
    return {"REGISTRY_DATASOURCE_URL": f"jdbc:h2:file:{_sr_data() / 'registry'};WRITE_DELAY=0"}


SCHEMA_REGISTRY = Service(
    "schema-registry",
    SR_PORT,
    _sr_command,
    _sr_healthy,
    prepare=lambda: _sr_data().mkdir(mode=0o700, parents=True, exist_ok=True),
    extra_env=_sr_env,
)

# --- Pinot -------------------------------------------------------------------------------------
#
# Pinot 0.11's start commands bind every listener to 0.0.0.0 when given ports as flags (their
# -*Host flags only set the names advertised in ZooKeeper), so each role gets a config file
# instead, with listeners declared under `*.access.protocols.http` whose `host` sets the bind
# address. ZooKeeper runs from ZooKeeper's own main and zoo.cfg, which has `clientPortAddress`.


def _pinot_dir() -> Path:
    path = STACK_HOME / "pinot"
    path.mkdir(parents=True, exist_ok=True)
    return path


ZK = f"{HOST}:{ZK_PORT}"
CLUSTER = "PinotCluster"

#: Preloaded into Pinot's server, whose query port has no bind-address setting (see the file).
LOOPBACK_BIND_SOURCE = Path(__file__).with_name("loopback_bind.c")


def loopback_bind_library() -> Path:
    """Build (once per source change) the preload library of LOOPBACK_BIND_SOURCE."""
    lib = STACK_HOME / "lib" / "loopback_bind.so"
    source = lib.with_suffix(".c")
    code = LOOPBACK_BIND_SOURCE.read_text()
    if lib.exists() and source.exists() and source.read_text() == code:
        return lib
    gcc = require_tool("gcc", "install a C compiler (apt-get install -y gcc)")
    lib.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(code)
    run_tool([gcc, "-shared", "-fPIC", "-O2", "-Wall", "-o", str(lib), str(source), "-ldl"])
    return lib


def _pinot_conf(role: str) -> Path:
    return STACK_HOME / "pinot" / f"{role}.conf"


def _pinot_cmd(heap: str, *args: str) -> Callable[[], list[str]]:
    def command() -> list[str]:
        return [
            JAVA,
            f"-Xmx{heap}",
            *PINOT_JAVA_FLAGS,
            "-cp",
            maven_classpath("pinot"),
            *args,
        ]

    return command


def _pinot_role(heap: str, command: str, role: str) -> Callable[[], list[str]]:
    return _pinot_cmd(
        heap,
        "org.apache.pinot.tools.admin.PinotAdministrator",
        command,
        "-configFileName",
        str(_pinot_conf(role)),
    )


def _http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return requests.get(url, timeout=2).ok
        except requests.RequestException:
            return False

    return check


def _zk_prepare() -> None:
    write_properties(
        _pinot_conf("zookeeper"),
        {
            # The same layout Pinot's StartZookeeper used, so existing stacks keep their cluster.
            "dataDir": STACK_HOME / "pinot" / "zkdata",
            "clientPort": ZK_PORT,
            "clientPortAddress": HOST,
        },
    )


def _controller_prepare() -> None:
    data = STACK_HOME / "pinot" / "controller-data"
    write_properties(
        _pinot_conf("controller"),
        {
            "controller.zk.str": ZK,
            "controller.helix.cluster.name": CLUSTER,
            "controller.host": HOST,
            # No `controller.port`: it would add a second listener on 0.0.0.0.
            "controller.access.protocols": "http",
            "controller.access.protocols.http.host": HOST,
            "controller.access.protocols.http.port": CONTROLLER_PORT,
            # Where servers upload completed segments; it defaults to `controller.port`.
            "controller.vip.host": HOST,
            "controller.vip.port": CONTROLLER_PORT,
            "controller.data.dir": data,
            # Named after host and `controller.port` by default; the same folder as before.
            "controller.local.temp.dir": data / f"{HOST}_{CONTROLLER_PORT}",
        },
    )


def _broker_prepare() -> None:
    write_properties(
        _pinot_conf("broker"),
        {
            "pinot.zk.server": ZK,
            "pinot.cluster.name": CLUSTER,
            "pinot.broker.hostname": HOST,
            # No `pinot.broker.client.queryPort`: it listens on 0.0.0.0.
            "pinot.broker.client.access.protocols": "http",
            "pinot.broker.client.access.protocols.http.host": HOST,
            "pinot.broker.client.access.protocols.http.port": BROKER_PORT,
        },
    )


def _server_prepare() -> None:
    loopback_bind_library()
    write_properties(
        _pinot_conf("server"),
        {
            "pinot.zk.server": ZK,
            "pinot.cluster.name": CLUSTER,
            "pinot.server.netty.host": HOST,
            "pinot.server.netty.port": SERVER_PORT,
            # No `pinot.server.adminapi.port`: it listens on 0.0.0.0.
            "pinot.server.adminapi.access.protocols": "http",
            "pinot.server.adminapi.access.protocols.http.host": HOST,
            "pinot.server.adminapi.access.protocols.http.port": SERVER_ADMIN_PORT,
            # The gRPC query server (streaming queries; on by default) is unused here, and its
            # port could only be bound to the wildcard address.
            "pinot.server.grpc.enable": "false",
            "pinot.server.instance.dataDir": STACK_HOME / "pinot" / "server-data",
            "pinot.server.instance.segmentTarDir": STACK_HOME / "pinot" / "server-segments",
        },
    )


PINOT_ZOOKEEPER = Service(
    "pinot-zookeeper",
    ZK_PORT,
    _pinot_cmd(
        "256m",
        # ZooKeeper 3.5's admin server (HTTP on 8080 by default) is not needed.
        "-Dzookeeper.admin.enableServer=false",
        # Its log4j 1.2 JMX beans fail on Java 17 (a stack trace at every start) and are unused.
        "-Dzookeeper.jmx.log4j.disable=true",
        "org.apache.zookeeper.server.ZooKeeperServerMain",
        str(_pinot_conf("zookeeper")),
    ),
    lambda: port_open(ZK_PORT),
    prepare=_zk_prepare,
    cwd=_pinot_dir,
)
PINOT_CONTROLLER = Service(
    "pinot-controller",
    CONTROLLER_PORT,
    _pinot_role(env("STACK_PINOT_CONTROLLER_HEAP", "512m"), "StartController", "controller"),
    _http_ok(f"http://{HOST}:{CONTROLLER_PORT}/health"),
    prepare=_controller_prepare,
    cwd=_pinot_dir,
)
PINOT_BROKER = Service(
    "pinot-broker",
    BROKER_PORT,
    _pinot_role(env("STACK_PINOT_BROKER_HEAP", "384m"), "StartBroker", "broker"),
    _http_ok(f"http://{HOST}:{BROKER_PORT}/health"),
    prepare=_broker_prepare,
    cwd=_pinot_dir,
)
PINOT_SERVER = Service(
    "pinot-server",
    SERVER_PORT,
    _pinot_role(env("STACK_PINOT_SERVER_HEAP", "1200m"), "StartServer", "server"),
    _http_ok(f"http://{HOST}:{SERVER_ADMIN_PORT}/health/readiness"),
    prepare=_server_prepare,
    cwd=_pinot_dir,
    extra_env=lambda: {"LD_PRELOAD": str(loopback_bind_library())},
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
