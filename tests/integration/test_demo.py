"""``scripts/demo``, the README's first command, run for real and stopped as a supervisor stops it.

The demo runs on the started native stack with every name it writes made unique (topics, Pinot
tables, the MySQL table, consumer group, transactional id, state directory, dashboard port), so
it shares the stack with the other tests; it runs once with the hand-written processors and the
clickstream tutorial (``DEMO_CLICKSTREAM``), once with the pipeline compiled from
sql/pageview-pipeline.sql (``DEMO_ENGINE=ksql``). It must produce windowed counts (and the
tutorial's, in Pinot), and SIGTERM to the script must stop every process it started: none is
left in its session afterwards.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient

from clients.settings import MySQLSettings, PinotSettings
from pinot.client import PinotBroker
from pinot.tables import CLICKSTREAM, FAMILIES, default_tables
from producers.mysql import connect
from stack.private import free_port
from tests.integration.apps import TOPIC_VARIABLES

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT.parent / "shared" / "ksql-statements" / "seed-002-clickstream.sql"
#: The tutorial's topics are named in its statements: the test removes them afterwards.
TUTORIAL_TOPICS = ("clickstream", "clickstream_codes", "clickstream_users")


def session_processes(sid: int) -> list[str]:
    """``pid command`` of every live process in session ``sid`` (zombies are gone already)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # The command name is in parentheses and may hold spaces: split after it.
            fields = stat.read_text().rsplit(")", 1)[1].split()
            state, session = fields[0], int(fields[3])
            if session == sid and state != "Z":
                cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ")
                found.append(f"{stat.parent.name} {cmdline.decode(errors='replace').strip()}")
    return found


def committed_records(bootstrap: str, topic: str) -> int:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-demo-reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        consumer.subscribe([topic])
        count, idle_until = 0, time.monotonic() + 5
        while time.monotonic() < idle_until:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                count += 1
        return count
    finally:
        consumer.close()


def keyed_record(bootstrap: str, topic: str, key: bytes, deadline: float) -> bool:
    """Whether a record with ``key`` reaches ``topic`` before ``deadline`` (the topic keeps
    filling with the generator's page views, so reading "until quiet" would never end)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-demo-reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.subscribe([topic])
        while time.monotonic() < deadline:
            if any(m.error() is None and m.key() == key for m in consumer.consume(1000, 1.0)):
                return True
        return False
    finally:
        consumer.close()


@pytest.fixture(params=["python", "ksql"])
def demo_env(
    request: pytest.FixtureRequest,
    kafka: str,
    pinot: PinotSettings,
    mysql: MySQLSettings,
    tmp_path: Path,
) -> Iterator[dict[str, str]]:
    """The demo's environment, with either engine: the hand-written processors (and the
    clickstream tutorial) or the same pipeline compiled from sql/pageview-pipeline.sql
    (``DEMO_ENGINE=ksql``)."""
    suffix = uuid.uuid4().hex[:8]
    group = f"test-demo-{suffix}"
    env = {
        **os.environ,
        **{var: f"test-demo-{var[6:].lower()}-{suffix}" for var in TOPIC_VARIABLES},
        **{f"PINOT_TABLE_{kind.upper()}": f"demo_{kind}_{suffix}" for kind in default_tables(None)},
        "USERS_TABLE": f"demo_users_{suffix}",
        "USERS_COUNT": "50",
        "USERS_SOURCE_TRANSACTIONAL_ID": f"test-demo-source-{suffix}",
        "EVENTS_RATE": "100",
        "STREAMS_CONSUMER_GROUP": group,
        "DEMO_ENGINE": request.param,
        "KSQL_CONSUMER_GROUP": f"{group}-ksql",
        "KSQL_CATALOG_TOPIC": f"test-demo-catalog-{suffix}",
        "STREAMS_STATE_DIR": str(tmp_path / "state"),
        "DASHBOARD_PORT": str(free_port()),
        "COLLECTOR_PORT": str(free_port()),
        "HITS_CONSUMER_GROUP": f"{group}-hits",
        # The demo's `python` is this interpreter, whether or not its environment is activated.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    if request.param == "python":
        env["DEMO_CLICKSTREAM"] = str(TUTORIAL)
    yield env
    for family in FAMILIES:
        drop = [sys.executable, "-m", "pinot.setup", "--drop", "--family", family]
        subprocess.run(drop, cwd=ROOT, env=env, check=False, timeout=120)
    admin = AdminClient({"bootstrap.servers": kafka})
    tutorial = {*TUTORIAL_TOPICS, *(s.topic for s in default_tables(CLICKSTREAM).values())}
    names = [
        t
        for t in admin.list_topics(timeout=15).topics
        if suffix in t or ("DEMO_CLICKSTREAM" in env and t in tutorial)
    ]
    if names:
        for future in admin.delete_topics(names).values():
            with contextlib.suppress(Exception):  # cleanup must not mask the test's result
                future.result(timeout=30)
    with contextlib.suppress(Exception), connect() as conn, conn.cursor() as cur:
        table = env["USERS_TABLE"]
        cur.execute(f"DROP TABLE IF EXISTS `{table}`, `{table}_deleted`")


def test_demo_counts_page_views_and_sigterm_stops_every_process(
    kafka: str, pinot: PinotSettings, demo_env: dict[str, str], tmp_path: Path
) -> None:
    log_path = tmp_path / "demo.log"
    with log_path.open("w") as log:
        # A session of its own: every process the demo starts is found by its session id.
        demo = subprocess.Popen(
            ["bash", "scripts/demo"],
            cwd=ROOT,
            env=demo_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{demo_env['DASHBOARD_PORT']}/_stcore/health"
        deadline = time.monotonic() + 300
        tumbling = 0
        while tumbling == 0:
            assert demo.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "no tumbling counts in 300 s\n" + (
                log_path.read_text()
            )
            with contextlib.suppress(requests.RequestException):
                if requests.get(url, timeout=2).ok:
                    tumbling = committed_records(kafka, demo_env["TOPIC_TUMBLING"])
            time.sleep(1)
        if "DEMO_CLICKSTREAM" in demo_env:
            # The tutorial's events per minute reach its Pinot table and the dashboard's page.
            table = demo_env["PINOT_TABLE_EVENTS_PER_MIN"]
            broker = PinotBroker(pinot.broker_url)
            while not broker.query(f"SELECT COUNT(*) FROM {table}").rows[0][0]:
                assert demo.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "no clickstream rows in Pinot\n" + (
                    log_path.read_text()
                )
                time.sleep(1)
            page = requests.get(
                f"http://127.0.0.1:{demo_env['DASHBOARD_PORT']}/clickstream", timeout=10
            )
            assert page.ok
        # A pixel request to the demo's collector becomes a page view on topic1.
        pixel = f"http://127.0.0.1:{demo_env['COLLECTOR_PORT']}/tracking/img.png"
        assert requests.get(pixel, params={"sid": "demo-test-pixel"}, timeout=10).ok
        assert keyed_record(kafka, demo_env["TOPIC_PAGEVIEWS"], b"demo-test-pixel", deadline), (
            "the pixel's page view never reached topic1\n" + log_path.read_text()
        )
        started = session_processes(demo.pid)
        # bash, users source, events, collector, hits, streams, streamlit
        assert len(started) >= 7, started

        demo.send_signal(signal.SIGTERM)
        assert demo.wait(timeout=60) == 128 + signal.SIGTERM, log_path.read_text()
        left = session_processes(demo.pid)
        assert left == [], f"still running after the demo stopped: {left}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(demo.pid, signal.SIGKILL)
        demo.wait(timeout=30)
