"""Private native-stack services: a broker, registry or MySQL of one test's or benchmark's own.

A fault test or benchmark that stops, restarts or pauses a service must not do it to the shared
stack the other tests (and developers running suites side by side) use. :class:`PrivateStack`
runs the same services as ``python -m stack`` (the same code, versions and configuration)
with a ``STACK_HOME`` and ports of its own, and hands out the environment the apps need::

    with PrivateStack(tmp_path, ["kafka"]) as stack:
        app = StreamsApp("streams.windows", stack.kafka, topics, state, env=stack.app_env())
        ...
        stack.down("kafka"); time.sleep(20); stack.up("kafka")
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from clients.settings import STACK_HOME


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateStack:
    """``services`` (names as in ``python -m stack status``) under ``home``, on free ports."""

    def __init__(self, home: Path, services: list[str]) -> None:
        self.home = home
        self.services = services
        self.ports = {
            "STACK_KAFKA_PORT": free_port(),
            "STACK_KAFKA_CONTROLLER_PORT": free_port(),
            "STACK_MYSQL_PORT": free_port(),
            "STACK_SCHEMA_REGISTRY_PORT": free_port(),
        }
        self.env = {
            **{k: v for k, v in os.environ.items() if k != "MYSQL_PASSWORD"},
            "STACK_HOME": str(home),
            **{k: str(v) for k, v in self.ports.items()},
        }
        # Resolved once for the shared stack: the same jars, without asking Maven again.
        home.mkdir(parents=True, exist_ok=True)
        if (STACK_HOME / "classpath").is_dir():
            shutil.copytree(STACK_HOME / "classpath", home / "classpath", dirs_exist_ok=True)
        if (STACK_HOME / "apicurio").is_dir() and not (home / "apicurio").exists():
            (home / "apicurio").symlink_to(STACK_HOME / "apicurio")

    def _stack(self, command: str, *names: str) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "stack", command, *(names or self.services)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"stack {command} {names}: {result.stdout}{result.stderr}")

    def up(self, *names: str) -> None:
        self._stack("up", *names)

    def down(self, *names: str) -> None:
        self._stack("down", *names)

    def pid(self, name: str) -> int:
        return int((self.home / "run" / f"{name}.pid").read_text())

    @property
    def kafka(self) -> str:
        return f"127.0.0.1:{self.ports['STACK_KAFKA_PORT']}"

    @property
    def registry_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['STACK_SCHEMA_REGISTRY_PORT']}/apis/ccompat/v7"

    def app_env(self) -> dict[str, str]:
        """What an app needs to use these services instead of the shared stack's."""
        env = {"KAFKA_BOOTSTRAP_SERVERS": self.kafka, "SCHEMA_REGISTRY_URL": self.registry_url}
        if "mysql" in self.services:
            env |= {
                "MYSQL_HOST": "127.0.0.1",
                "MYSQL_PORT": str(self.ports["STACK_MYSQL_PORT"]),
                "MYSQL_PASSWORD_FILE": str(self.home / "secrets" / "mysql_password"),
            }
        return env

    def __enter__(self) -> PrivateStack:
        self.up()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.down()
