"""The whole ``streams.windows`` topology through the in-memory test driver (``streams.testing``).

Records go through the same ``setup()`` the app runs, with real RocksDB state, the repartition
by source fed back on the partition Java's partitioner picks, and outputs read back per topic.
"""

from __future__ import annotations

import json

import pytest

from contracts.partitioning import partition_for
from streams.testing import TestDriver
from streams.windows import WindowsConfig, setup

T0 = 1_700_000_100_000  # a multiple of 5 minutes
PAGEVIEWS = "topic1_PageView"


def view(session: str, source: str, ts) -> tuple[bytes, bytes]:
    body = {"session_id": session, "user_id": 1, "source": source, "event_timestamp": ts}
    return session.encode(), json.dumps(body).encode()


@pytest.fixture
def harness():
    with TestDriver(lambda app: setup(app, WindowsConfig(grace_ms=60_000)), partitions=5) as d:
        yield Pipe(d)


class Pipe:
    """One page view in; every record the app produced, in produce order, out."""

    def __init__(self, driver: TestDriver) -> None:
        self.driver = driver

    def pipe(self, key, value, headers=None):
        self.driver.pipe(PAGEVIEWS, key, value, headers=headers)
        return self.driver.read_all()

    def commit(self) -> None:
        self.driver.commit()


def decoded(records):
    return [(r.topic, r.key, r.value, r.timestamp) for r in records]


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
    assert [(r.topic, r.key) for r in out] == [("pageview_streams_late", "s2")] * 3
    values = [r.value for r in out]
    assert [v["window"] for v in values] == ["tumbling", "hopping", "session"]
    assert all(v["pageview"]["event_timestamp"] == T0 for v in values)
    assert "window end <= stream time - grace" in values[0]["reason"]


def test_bad_input_goes_to_the_dead_letter_topic_with_original_bytes(harness):
    out = harness.pipe(b"s9", b"{bad", headers=[("origin", b"x")])
    assert len(out) == 1
    topic, key, value, headers = out[0].topic, out[0].key, out[0].value, out[0].headers
    assert (topic, key, value) == ("pageview_streams_dead_letter", b"s9", b"{bad")
    assert headers[0] == ("origin", b"x")
    assert dict(headers[1:]) == {
        "error": dict(headers)["error"],
        "error.type": b"MalformedJson",
        "source.topic": b"topic1_PageView",
        "source.partition": str(partition_for(b"s9", 5)).encode(),
        "source.offset": b"0",  # the first record of its partition
        "processor": b"streams.windows",
        "stage": b"validate",
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


@pytest.mark.parametrize(
    ("partitions", "late", "tumbling"),
    [(5, [], ["Homepage", "Inbox"]), (1, ["s2"] * 3, ["Homepage"])],
)
def test_stream_time_is_per_repartition_partition(partitions, late, tumbling):
    """Homepage and Inbox hash to different partitions of five (3 and 1): Inbox's views are not
    late because of Homepage's later ones; on one partition they share a stream time."""
    assert (partition_for(b"Homepage", 5), partition_for(b"Inbox", 5)) == (3, 1)
    config = WindowsConfig(grace_ms=60_000)
    with TestDriver(lambda app: setup(app, config), partitions=partitions) as driver:
        driver.pipe(PAGEVIEWS, *view("s1", "Homepage", T0 + 900_000))
        driver.pipe(PAGEVIEWS, *view("s2", "Inbox", T0))
        assert [r.key for r in driver.read("pageview_streams_late")] == late
        assert [r.value["source"] for r in driver.read("topic6")] == tumbling


def test_the_state_shows_each_partitions_stream_time():
    """State inspection: the window operator's bookkeeping per repartition partition."""
    config = WindowsConfig(grace_ms=60_000)
    with TestDriver(lambda app: setup(app, config), partitions=5) as driver:
        driver.pipe(PAGEVIEWS, *view("s1", "Homepage", T0 + 900_000))
        driver.pipe(PAGEVIEWS, *view("s2", "Inbox", T0))
        driver.commit()  # the operator writes its cached state at commits
        engine = config.engine()
        times = {p: engine.meta(driver.state("windows", partition=p)) for p in range(5)}
        assert {p: m.stream_time for p, m in times.items() if m} == {3: T0 + 900_000, 1: T0}
        inbox = driver.state("windows", partition=1)
        assert inbox.get(f"0|Inbox|{T0}") == [1, T0]  # tumbling [aggregate, max event time]


def test_emit_cached_flushes_a_quiet_partition_on_the_clock():
    """ksqlDB's record cache flushes at commits, input or not: the last updates of a burst
    must not wait in state for the partition's next page view."""
    config = WindowsConfig(grace_ms=60_000, emit="cached", cache_ms=300)
    with TestDriver(lambda app: setup(app, config)) as driver:
        for i in range(3):
            driver.pipe(PAGEVIEWS, *view(f"s{i}", "Inbox", T0 + i))
        # The first view flushes at once (no period has run yet); the next two are pending.
        assert [r.value["pageview_count"] for r in driver.read("topic6")] == [1]
        driver.read_all()
        driver.advance_wall_clock(299)
        assert driver.read_all() == []  # the period has not ended: nothing is due
        driver.advance_wall_clock(101)  # the flusher looks every 100 ms
        out = decoded(driver.read_all())
        # What a fourth view would have flushed: the latest result per window, in the order
        # of their last update, including the retractions of the sessions merged away.
        window = {"source": "Inbox", "window_start": T0, "window_end": T0 + 300_000}
        session = {"source": "Inbox", "window_start": T0}
        retracted = {"pageview_count": 0, "deleted": True}
        assert out == [
            ("topic8", f"Inbox|{T0}", {**session, "window_end": T0, **retracted}, T0),
            ("topic6", f"Inbox|{T0}", {**window, "pageview_count": 3}, T0 + 2),
            *[
                (
                    "topic7",
                    f"Inbox|{start}",
                    {
                        **window,
                        "window_start": start,
                        "window_end": start + 300_000,
                        "pageview_count": 3,
                    },
                    T0 + 2,
                )
                for start in range(T0 - 240_000, T0 + 1, 60_000)
            ],
            ("topic8", f"Inbox|{T0}", {**session, "window_end": T0 + 1, **retracted}, T0 + 1),
            (
                "topic8",
                f"Inbox|{T0}",
                {**session, "window_end": T0 + 2, "pageview_count": 3, "deleted": False},
                T0 + 2,
            ),
        ]
        driver.advance_wall_clock(300)
        assert driver.read_all() == []  # flushed once: nothing pending any more


def test_emit_changes_registers_no_clock_flush():
    with TestDriver(lambda app: setup(app, WindowsConfig(grace_ms=60_000))) as driver:
        driver.pipe(PAGEVIEWS, *view("s1", "Inbox", T0))
        assert len(driver.read_all()) == 7
        driver.tick()
        assert driver.read_all() == []
