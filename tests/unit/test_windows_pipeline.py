"""The whole ``streams.windows`` topology on Quix with real RocksDB state, without a broker.

Stopgap until streams-core's driver (``streams.testing``) exists: the Quix internals this needs
(topic lookup, producer, state assignment, composed topology; quixstreams pinned to 3.28.1) are
confined to ``QuixHarness``. Records go through the same ``build()`` the app runs; what the app
would produce is captured serialised, and the repartition topic is fed back in produce order.
"""

from __future__ import annotations

import contextvars
import json

import pytest
from quixstreams import Application
from quixstreams.context import set_message_context
from quixstreams.models import MessageContext, TopicConfig
from quixstreams.models.topics.manager import TopicManager

from streams.windows import WindowsConfig, build, declare_topics

T0 = 1_700_000_100_000  # a multiple of 5 minutes


class QuixHarness:
    def __init__(self, monkeypatch, tmp_path, config: WindowsConfig) -> None:
        def fetch(_manager, topic):
            topic.broker_config = TopicConfig(
                num_partitions=5, replication_factor=1, extra_config={"retention.ms": "-1"}
            )
            return topic

        monkeypatch.setattr(TopicManager, "_fetch_topic", fetch)
        self.app = Application(
            broker_address="127.0.0.1:1",
            consumer_group="harness",
            state_dir=str(tmp_path),
            use_changelog_topics=False,
        )
        pageviews, outputs = declare_topics(self.app)
        build(self.app.dataframe(pageviews), config, outputs)
        registry = self.app._dataframe_registry
        self.composed = registry.compose_all()
        self.input = pageviews.name
        self.repartition = next(t.name for t in registry.consumer_topics if t.name != self.input)
        self.produced: list[tuple] = []
        context = self.app._processing_context
        context.producer.produce_row = self._capture
        self.app._state_manager.on_partition_assign(
            stream_id=self.repartition, partition=0, committed_offsets={}
        )
        context.init_checkpoint()
        self.offset = 0

    def _capture(self, row, topic, key=None, timestamp=None, **_):
        message = topic.row_serialize(row=row, key=key)
        self.produced.append((topic.name, message.key, message.value, message.headers, timestamp))

    def _run(self, topic: str, key, value, timestamp: int, headers) -> None:
        self.offset += 1
        context = contextvars.copy_context()
        ctx = MessageContext(topic=topic, partition=0, offset=self.offset, size=0)
        context.run(set_message_context, ctx)
        context.run(self.composed[topic], value, key, timestamp, headers)

    def commit(self) -> None:
        """What a checkpoint commit does to the state: prepare, then write to RocksDB."""
        context = self.app._processing_context
        for transaction in context.checkpoint._store_transactions.values():
            transaction.prepare(processed_offsets={})
            transaction.flush()
        context.init_checkpoint()

    def pipe(self, key: bytes | None, value: bytes | None, headers=None) -> list[tuple]:
        """One page view in; every record produced to a non-internal topic out, in order."""
        self.produced.clear()
        self._run(self.input, key, value, 0, headers)
        first, self.produced = self.produced, []
        out = []
        for topic, rkey, rvalue, rheaders, ts in first:
            if topic == self.repartition:
                self._run(topic, rkey.decode(), json.loads(rvalue), ts, rheaders)
                out += self.produced
                self.produced = []
            else:
                out.append((topic, rkey, rvalue, rheaders, ts))
        return out


def view(session: str, source: str, ts) -> tuple[bytes, bytes]:
    body = {"session_id": session, "user_id": 1, "source": source, "event_timestamp": ts}
    return session.encode(), json.dumps(body).encode()


@pytest.fixture
def harness(monkeypatch, tmp_path):
    return QuixHarness(monkeypatch, tmp_path, WindowsConfig(grace_ms=60_000))


def decoded(records):
    return [(t, k.decode(), json.loads(v), ts) for t, k, v, _h, ts in records]


def test_each_view_updates_all_three_windows_with_plain_string_keys(harness):
    out = decoded(harness.pipe(*view("s1", "Inbox", "2023-11-14 22:15:00")))
    window = {"source": "Inbox", "window_start": T0, "window_end": T0 + 300_000}
    assert out[0] == ("topic6", f"Inbox|{T0}", {**window, "pageview_count": 1}, T0)
    assert [(t, k) for t, k, _v, _ts in out[1:6]] == [
        ("topic7", f"Inbox|{T0 - 240_000 + i * 60_000}") for i in range(5)
    ]
    assert out[6] == (
        "topic8",
        f"Inbox|{T0}",
        {
            "source": "Inbox",
            "window_start": T0,
            "window_end": T0,
            "pageview_count": 1,
            "deleted": False,
        },
        T0,
    )
    assert len(out) == 7


def test_session_merge_retracts_the_old_session_in_pinot_form(harness):
    harness.pipe(*view("s1", "Inbox", T0))
    out = decoded(harness.pipe(*view("s2", "Inbox", T0 + 30_000)))
    sessions = [(k, v, ts) for t, k, v, ts in out if t == "topic8"]
    assert sessions == [
        (
            f"Inbox|{T0}",
            {
                "source": "Inbox",
                "window_start": T0,
                "window_end": T0,
                "pageview_count": 0,
                "deleted": True,
            },
            T0,
        ),
        (
            f"Inbox|{T0}",
            {
                "source": "Inbox",
                "window_start": T0,
                "window_end": T0 + 30_000,
                "pageview_count": 2,
                "deleted": False,
            },
            T0 + 30_000,
        ),
    ]


def test_late_view_goes_to_the_late_topic_with_reasons(harness):
    harness.pipe(*view("s1", "Homepage", T0 + 900_000))
    out = harness.pipe(*view("s2", "Homepage", T0))  # 15 min earlier, grace 1 min
    assert [(t, k) for t, k, *_ in out] == [("pageview_streams_late", b"s2")] * 3
    values = [json.loads(v) for _t, _k, v, _h, _ts in out]
    assert [v["window"] for v in values] == ["tumbling", "hopping", "session"]
    assert all(v["pageview"]["event_timestamp"] == T0 for v in values)
    assert "window end <= stream time - grace" in values[0]["reason"]


def test_bad_input_goes_to_the_dead_letter_topic_with_original_bytes(harness):
    out = harness.pipe(b"s9", b"{bad", headers=[("origin", b"x")])
    assert len(out) == 1
    topic, key, value, headers, _ts = out[0]
    assert (topic, key, value) == ("pageview_streams_dead_letter", b"s9", b"{bad")
    assert headers[0] == ("origin", b"x")
    assert dict(headers[1:]) == {
        "error": dict(headers)["error"],
        "error.type": b"MalformedJson",
        "source.topic": b"topic1_PageView",
        "source.partition": b"0",
        "source.offset": b"1",
        "processor": b"streams.windows",
    }
    assert dict(headers)["error"].startswith(b"value is not JSON")
    # Processing goes on after a bad record.
    assert len(harness.pipe(*view("s1", "Inbox", T0))) == 7


def test_state_survives_commits_and_fresh_transactions(harness):
    """Window state is cached per transaction and written at prepare: a commit persists it."""
    harness.pipe(*view("s1", "Inbox", T0))
    harness.pipe(*view("s2", "Inbox", T0 + 1000))
    harness.commit()  # a new transaction: the next reads come from RocksDB
    out = decoded(harness.pipe(*view("s3", "Inbox", T0 + 2000)))
    assert out[0][2]["pageview_count"] == 3
    harness.commit()
    out = decoded(harness.pipe(*view("s4", "Inbox", T0 + 3000)))
    assert [v["pageview_count"] for t, _k, v, _ts in out if t != "topic8"] == [4] * 6
    assert out[-1][2] == {
        "source": "Inbox",
        "window_start": T0,
        "window_end": T0 + 3000,
        "pageview_count": 4,
        "deleted": False,
    }
