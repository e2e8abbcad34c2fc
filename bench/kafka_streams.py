"""The Kafka Streams contender: topic6-8 of ``streams.windows`` as a Kafka Streams 4 application
(``bench/kafka_streams/``, Java), what ksqlDB itself runs on.

:func:`classpath` resolves its dependencies with Maven (as the native stack resolves its jars,
cached under ``STACK_HOME/classpath``) and compiles the one source file with ``javac`` (cached
while the source is unchanged); :func:`command` is the process ``python -m bench`` measures.
Exactly-once v2, commit interval 1 s like the Python contenders; ``cache_bytes=0`` emits every
update (EMIT CHANGES), a record cache makes it emit at commits.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from clients.settings import STACK_HOME
from stack.services import maven_classpath

PROJECT = Path(__file__).resolve().parent / "kafka_streams"
SOURCE = PROJECT / "src/main/java/pageviews/bench/WindowsApp.java"
MAIN = "pageviews.bench.WindowsApp"
#: Kafka Streams' default record cache (statestore.cache.max.bytes).
DEFAULT_CACHE_BYTES = 10 * 1024 * 1024


def classpath() -> str:
    """The compiled app and its dependencies, built if needed."""
    deps = maven_classpath("bench-kafka-streams", PROJECT / "pom.xml")
    classes = STACK_HOME / "bench-kafka-streams-classes"
    stamp = classes / ".source-mtime"
    if not stamp.exists() or stamp.read_text() != str(SOURCE.stat().st_mtime_ns):
        javac = shutil.which("javac")
        if javac is None:
            raise RuntimeError("javac not found: install a JDK 17 (apt-get install default-jdk)")
        shutil.rmtree(classes, ignore_errors=True)
        classes.mkdir(parents=True)
        done = subprocess.run(
            [javac, "-d", str(classes), "-cp", deps, str(SOURCE)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            raise RuntimeError(f"javac failed on {SOURCE}:\n{done.stderr}")
        stamp.write_text(str(SOURCE.stat().st_mtime_ns))
    return f"{classes}:{deps}"


def command(
    bootstrap: str,
    input_topic: str,
    outputs: dict[str, str],
    group: str,
    state_dir: Path,
    cache_bytes: int = 0,
) -> list[str]:
    """``outputs``: the TOPIC_TUMBLING / _HOPPING / _SESSION names."""
    java = shutil.which("java") or "java"
    return [
        java, "-Xmx512m", "-cp", classpath(), MAIN,
        "--bootstrap", bootstrap, "--input", input_topic, "--group", group,
        "--state-dir", str(state_dir), "--cache-bytes", str(cache_bytes),
        "--tumbling", outputs["TOPIC_TUMBLING"], "--hopping", outputs["TOPIC_HOPPING"],
        "--session", outputs["TOPIC_SESSION"],
    ]  # fmt: skip
