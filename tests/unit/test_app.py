"""streams.app: the shared flags (flag > env > default) and the Application they configure."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from clients.settings import librdkafka_properties
from streams.app import add_app_arguments, create_app

ENV = (
    "USERS_CONSUMER_GROUP",
    "COUNTRY_CONSUMER_GROUP",
    "WINDOWS_CONSUMER_GROUP",
    "STREAMS_STATE_DIR",
    "STREAMS_COMMIT_INTERVAL_S",
    "STREAMS_PROCESSING_GUARANTEE",
    "KAFKA_BOOTSTRAP_SERVERS",
    "STREAMS_PRODUCER_CONFIG",
    "STREAMS_CONSUMER_CONFIG",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def parse(*argv: str, processor: str = "users") -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_app_arguments(parser, processor)
    return parser.parse_args(list(argv))


def test_defaults_work_on_the_native_stack():
    args = parse()
    assert vars(args) == {
        "consumer_group": "pageview-streams-users",
        "state_dir": "state",
        "commit_interval": 1.0,
        "processing_guarantee": "exactly-once",
        "purge_interval": 30.0,
    }


def test_environment_overrides_defaults_and_flags_override_environment(monkeypatch):
    monkeypatch.setenv("USERS_CONSUMER_GROUP", "g-env")
    monkeypatch.setenv("STREAMS_STATE_DIR", "/tmp/s-env")
    monkeypatch.setenv("STREAMS_COMMIT_INTERVAL_S", "0.5")
    monkeypatch.setenv("STREAMS_PROCESSING_GUARANTEE", "at-least-once")
    monkeypatch.setenv("STREAMS_PURGE_INTERVAL_S", "2")
    assert vars(parse()) == {
        "consumer_group": "g-env",
        "state_dir": "/tmp/s-env",
        "commit_interval": 0.5,
        "processing_guarantee": "at-least-once",
        "purge_interval": 2.0,
    }
    args = parse("--consumer-group", "g-flag", "--processing-guarantee", "exactly-once")
    assert (args.consumer_group, args.processing_guarantee) == ("g-flag", "exactly-once")


def test_consumer_group_variable_is_per_processor(monkeypatch):
    monkeypatch.setenv("COUNTRY_CONSUMER_GROUP", "c-env")
    assert parse(processor="country").consumer_group == "c-env"
    assert parse(processor="windows").consumer_group == "pageview-streams-windows"


def test_unknown_guarantee_is_refused(capsys):
    with pytest.raises(SystemExit):
        parse("--processing-guarantee", "maybe-once")
    assert "invalid choice: 'maybe-once'" in capsys.readouterr().err


def test_create_app_applies_every_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker.example:9093")
    args = parse(
        "--consumer-group",
        "g1",
        "--state-dir",
        str(tmp_path),
        "--commit-interval",
        "2.5",
        "--processing-guarantee",
        "at-least-once",
    )
    config = create_app(args).config
    assert config.broker_address.bootstrap_servers == "broker.example:9093"
    assert config.consumer_group == "g1"
    assert config.auto_offset_reset == "earliest"
    assert config.processing_guarantee == "at-least-once"
    assert config.commit_interval == 2.5
    assert str(config.state_dir).startswith(str(tmp_path))
    # Java's partitioner for keyed output: co-partitioned with Java-written topics.
    assert config.producer_extra_config["partitioner"] == "murmur2_random"


def test_create_app_defaults_to_exactly_once_on_the_local_broker(tmp_path):
    config = create_app(parse("--state-dir", str(tmp_path))).config
    assert config.broker_address.bootstrap_servers == "127.0.0.1:9092"
    assert config.processing_guarantee == "exactly-once"
    assert config.exactly_once is True


def test_librdkafka_properties_reach_the_producer_and_consumer(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMS_PRODUCER_CONFIG", "linger.ms=50, security.protocol=SASL_SSL")
    monkeypatch.setenv("STREAMS_CONSUMER_CONFIG", "fetch.min.bytes=262144")
    config = create_app(parse("--state-dir", str(tmp_path))).config
    producer, consumer = config.producer_extra_config, config.consumer_extra_config
    assert (producer["partitioner"], producer["linger.ms"]) == ("murmur2_random", 50)
    assert producer["security.protocol"] == "SASL_SSL"
    assert consumer["fetch.min.bytes"] == 262144


def test_max_poll_interval_can_be_lowered(tmp_path, monkeypatch):
    """Quix computes its flush timeout from it: as text it failed at start-up."""
    monkeypatch.setenv("STREAMS_CONSUMER_CONFIG", "max.poll.interval.ms=10000")
    assert create_app(parse("--state-dir", str(tmp_path))).config.flush_timeout == 10.0


@pytest.mark.parametrize("raw", ["linger.ms", "=5", "linger.ms=5,,oops"])
def test_librdkafka_properties_reject_what_is_not_key_value(monkeypatch, raw):
    monkeypatch.setenv("STREAMS_PRODUCER_CONFIG", raw)
    with pytest.raises(ValueError, match="STREAMS_PRODUCER_CONFIG: expected key=value"):
        librdkafka_properties("STREAMS_PRODUCER_CONFIG")


def test_librdkafka_properties_unset_is_empty():
    assert librdkafka_properties("STREAMS_PRODUCER_CONFIG") == {}


def test_sigusr1_prints_every_thread_s_stack_once_an_app_exists(tmp_path):
    script = (
        "import os, signal, sys, time\n"
        "from tests.unit.test_app import parse\n"
        "from streams.app import create_app\n"
        f"create_app(parse('--state-dir', {str(tmp_path)!r}))\n"
        "os.kill(os.getpid(), signal.SIGUSR1)\n"
        "time.sleep(0.5)\n"
        "print('still running')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "still running" in done.stdout
    assert 'File "<string>", line 5 in <module>' in done.stderr


def test_exactly_once_id_is_kept_in_the_state_dir_across_restarts(tmp_path):
    """The same state directory gives the same transactional.id in the next process (so a
    restart fences what a killed one left open); another directory, another id."""
    script = (
        "import sys\n"
        "from tests.unit.test_app import parse\n"
        "from streams.app import create_app\n"
        "args = parse('--consumer-group', 'g', '--state-dir', sys.argv[1])\n"
        "print(create_app(args).config.producer_extra_config['transactional.id'])\n"
    )

    def transactional_id(state: Path) -> str:
        done = subprocess.run(
            [sys.executable, "-c", script, str(state)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout.strip()

    first = transactional_id(tmp_path / "a")
    assert first.startswith("g-") and len(first) == len("g-") + 32
    assert transactional_id(tmp_path / "a") == first
    assert transactional_id(tmp_path / "b") not in (first, "")


def test_a_second_live_instance_on_one_state_dir_is_refused(tmp_path):
    args = parse("--consumer-group", "g", "--state-dir", str(tmp_path))
    create_app(args)
    with pytest.raises(SystemExit, match=r"in use by another instance of consumer group 'g'"):
        create_app(args)
    # Another group's app may share the directory (Quix keeps each group's state apart).
    create_app(parse("--consumer-group", "h", "--state-dir", str(tmp_path)))


def test_at_least_once_takes_no_transactional_id_or_lock(tmp_path):
    args = parse("--state-dir", str(tmp_path), "--processing-guarantee", "at-least-once")
    assert "transactional.id" not in create_app(args).config.producer_extra_config
    assert "transactional.id" not in create_app(args).config.producer_extra_config
