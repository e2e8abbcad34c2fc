"""``pinot.setup`` against the real controller: idempotent, and Pinot's own rejection text."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable

import pytest
from confluent_kafka.admin import AdminClient

from clients.settings import PinotSettings
from pinot.client import PinotBroker, PinotController, PinotError
from pinot.provision import unique_specs
from pinot.setup import apply_table, main
from pinot.tables import table_config

pytestmark = pytest.mark.integration


def test_setup_creates_then_updates_and_tables_answer(
    pinot: PinotSettings, make_topic: Callable[..., str]
) -> None:
    controller = PinotController(pinot.controller_url)
    spec = unique_specs("it_setup", {"tumbling": make_topic("pinot-setup", partitions=1)})[
        "tumbling"
    ]
    args = [
        "--only",
        "tumbling",
        "--table",
        f"tumbling={spec.table}",
        "--topic",
        f"tumbling={spec.topic}",
    ]
    try:
        assert main([*args, "--timeout", "120"]) == 0
        assert main([*args, "--timeout", "120"]) == 0  # second run: updated in place, no error
        assert apply_table(controller, spec) == "updated"
        stored = controller.get_realtime_table(spec.table)
        assert stored is not None
        stream = stored["tableIndexConfig"]["streamConfigs"]
        assert stream["stream.kafka.isolation.level"] == "read_committed"
        assert stream["stream.kafka.topic.name"] == spec.topic
        assert stored["upsertConfig"]["mode"] == "FULL"
        assert controller.get_schema(spec.table)["primaryKeyColumns"] == ["source", "window_start"]
        result = PinotBroker(pinot.broker_url).query(f"SELECT COUNT(*) FROM {spec.table}")
        assert result.rows == [[0]]
    finally:
        assert main([*args, "--drop"]) == 0
    assert controller.get_realtime_table(spec.table) is None
    assert controller.get_schema(spec.table) is None


def test_rejected_config_reports_pinots_message(
    pinot: PinotSettings, make_topic: Callable[..., str]
) -> None:
    controller = PinotController(pinot.controller_url)
    spec = unique_specs("it_reject", {"hopping": make_topic("pinot-reject", partitions=1)})[
        "hopping"
    ]
    try:
        apply_table(controller, spec)  # schema + valid table first
        broken = table_config(spec)
        del broken["routing"]  # upsert needs strictReplicaGroup routing: Pinot refuses
        with pytest.raises(PinotError) as excinfo:
            controller.update_table(broken)
        message = str(excinfo.value)
        assert message.startswith(f"Pinot controller rejected table {spec.table} (HTTP 400): ")
        assert "strictReplicaGroup" in message
    finally:
        controller.delete_table(spec.table)


def test_missing_topic_is_explained(kafka: str, pinot: PinotSettings) -> None:
    controller = PinotController(pinot.controller_url)
    topic = f"test-missing-{uuid.uuid4().hex[:8]}"
    spec = unique_specs("it_notopic", {"country": topic})["country"]
    try:
        with pytest.raises(PinotError, match=rf"hint: does topic '{topic}' exist on "):
            apply_table(controller, spec)
    finally:
        controller.delete_table(spec.table)
        # Pinot's metadata request auto-creates the topic on a permissive broker, a moment
        # later: wait briefly for it so that it can be deleted.
        admin = AdminClient({"bootstrap.servers": kafka})
        deadline = time.monotonic() + 10
        while topic not in admin.list_topics(timeout=10).topics and time.monotonic() < deadline:
            time.sleep(0.5)
        for future in admin.delete_topics([topic]).values():
            with contextlib.suppress(Exception):
                future.result(timeout=30)
