"""Broker-free tests of the benchmark's own logic: input generation, rates, completion."""

from __future__ import annotations

import io
import json
import math
import struct
import sys
from pathlib import Path

import fastavro
import orjson
import pytest

from bench import bytewax_peer, ksql_windows, latency, preload, profile, quix_floor, run
from bench.kafka_io import group_done
from bench.measure import Measurement, steady_rate
from contracts.users_schema import SCHEMA
from streams.testing import TestDriver


def test_page_views_follow_the_contract_and_are_deterministic() -> None:
    plan = preload.PageViewPlan(count=250, users=7, start_ms=1_700_000_000_000, step_ms=10)
    records = list(preload.page_views(plan))
    assert records == list(preload.page_views(plan))
    key, value, ts = records[0]
    row = orjson.loads(value)
    assert key.decode() == row["session_id"]
    assert set(row) == {"session_id", "user_id", "source", "event_timestamp"}
    assert row["event_timestamp"] == "2023-11-14 22:13:20"
    assert ts == 1_700_000_000_000
    # 10 ms apart, truncated to whole seconds: the 101st record is one second later.
    assert records[100][2] == 1_700_000_001_000
    assert {orjson.loads(v)["user_id"] for _k, v, _t in records} <= set(range(1, 8))


def test_users_avro_is_confluent_wire_format() -> None:
    plan = preload.UserPlan(users=5, updates=5, null_ratio=0.0)
    key, value, _ts = next(preload.users_avro(plan, schema_id=42, ts_ms=0))
    assert key == b"1"
    assert value is not None
    assert struct.unpack(">bI", value[:5]) == (0, 42)
    body = fastavro.schemaless_reader(io.BytesIO(value[5:]), json.loads(SCHEMA))
    assert body["user_id"] == 1


def test_cleaned_users_keep_latest_complete_rows_only() -> None:
    plan = preload.UserPlan(users=50, updates=400, null_ratio=0.3, delete_ratio=0.2)
    latest: dict[int, dict[str, object] | None] = {}
    for user_id, row in preload.user_rows(plan):
        latest[user_id] = row
    expected = {
        uid: row for uid, row in latest.items() if row is not None and None not in row.values()
    }
    clean = preload.cleaned_users(plan, ts_ms=0)
    assert {int(k): orjson.loads(v) for k, v, _t in clean} == expected
    assert 0 < len(expected) < 50  # the plan does exercise NULLs and deletes


def test_steady_rate_excludes_work_done_before_the_clock_started() -> None:
    assert steady_rate((10.0, 100), (20.0, 1100)) == (1000, 10.0)


def test_group_done_passes_only_markers_on_internal_topics() -> None:
    """Several instances' commit markers can trail a repartition partition's last record
    (``--scale 5`` waited for a committed offset that markers hold)."""
    internal = ("repartition__g--in--x", 0)
    ends = {("in", 0): 10, internal: 9}
    asked: list[tuple[tuple[str, int], int, int]] = []

    def markers_from(first_marker: int):
        def holds_records(tp: tuple[str, int], start: int, end: int) -> bool:
            asked.append((tp, start, end))
            return start < first_marker

        return holds_records

    assert group_done({("in", 0): 10, internal: 6}, ends, "in", markers_from(6))
    assert asked == [(internal, 6, 9)]
    assert not group_done({("in", 0): 10, internal: 5}, ends, "in", markers_from(6))
    # Input partitions must be committed to their end; nothing is asked of them.
    assert not group_done({("in", 0): 9, internal: 9}, ends, "in", markers_from(0))
    assert not group_done({("in", 0): 10}, ends, "in", markers_from(10))


def test_peer_counts_tumbling_windows_and_writes_late_views_as_late_rows() -> None:
    window, grace = bytewax_peer.WINDOW_MS, bytewax_peer.GRACE_MS
    assert grace == 24 * 3600 * 1000 - window  # ksqlDB's EMIT CHANGES default, as streams.windows
    closer = 2 * window + grace  # stream time at which windows 0 and 1 have closed
    state = None
    outputs = []
    for ts in (0, 1_000, window, 2_000, closer, 3_000):
        state, (start, row) = bytewax_peer.count_view(state, ("Inbox", ts))
        outputs.append((start, orjson.loads(row)))
    assert [(s, r.get("pageview_count"), r.get("late", False)) for s, r in outputs] == [
        (0, 1, False),
        (0, 2, False),
        (window, 1, False),
        (0, 3, False),
        (closer, 1, False),
        (0, None, True),
    ]
    assert outputs[5][1] == {
        "source": "Inbox",
        "window_start": 0,
        "event_time": 3_000,
        "late": True,
    }
    assert outputs[2][1] == {
        "source": "Inbox",
        "window_start": window,
        "window_end": 2 * window,
        "pageview_count": 1,
    }
    assert state is not None and state.late == 1
    # Event time reached the end of window 1 plus grace, so windows 0 and 1 were dropped.
    assert sorted(state.counts) == [closer]
    assert state.oldest == closer


def test_top_frames_ranks_functions_by_self_and_inclusive_share() -> None:
    collapsed = "\n".join(
        [
            'process 7:"python -m streams.windows";run (app.py:10);step (windows.py:5) 6',
            'process 7:"python -m streams.windows";run (app.py:11);poll (consumer.py:3) 3',
            'process 7:"python -m streams.windows";run (app.py:10) 1',
            "garbage line without a count",
        ]
    )
    own = profile.top_frames(collapsed, limit=2)
    assert own == [
        profile.FrameShare("windows.py:step", inclusive=0.6, own=0.6),
        profile.FrameShare("consumer.py:poll", inclusive=0.3, own=0.3),
    ]
    inclusive = profile.top_frames(collapsed, limit=1, by="inclusive")
    assert inclusive == [profile.FrameShare("app.py:run", inclusive=1.0, own=0.1)]


def test_latency_is_until_a_count_including_the_view_is_seen() -> None:
    key = ("Inbox", 0)
    produced = {key: [10.0, 10.5, 11.0], ("External", 0): [12.0]}
    # Seen out of time order, and the count of 3 arrives before any count of 2 was seen.
    seen = {key: [(14.0, 3), (12.0, 1)]}
    assert latency.latencies(produced, seen) == [2.0, 3.5, 3.0, math.inf]


def test_streams_users_is_measured_on_the_avro_user_rows() -> None:
    inputs = run.Inputs("views", "users-avro", "users-clean", events=1_000, user_updates=200)
    by_name = {c.name: c for c in run.contenders([2])}
    assert by_name["streams.users (Avro rows)"].input(inputs) == ("users-avro", 200)
    assert by_name["streams.windows cached x2 pinned"].input(inputs) == ("views", 1_000)


def test_scale_out_pins_each_instance_to_a_cpu_round_robin(monkeypatch) -> None:
    monkeypatch.setattr(run.os, "cpu_count", lambda: 2)
    inputs = run.Inputs("views", "users-avro", "users-clean", events=1_000, user_updates=200)
    by_name = {c.name: c for c in run.contenders([2, 5])}
    assert [n for n in by_name if "pinned" in n] == [
        f"streams.windows cached x{n} pinned" for n in (1, 2, 5)
    ]
    five = by_name["streams.windows cached x5 pinned"]
    cmds = five.commands(inputs, "g", [Path(str(i)) for i in range(5)], {})
    assert [cmd[:3] for cmd in cmds] == [["taskset", "-c", str(i % 2)] for i in range(5)]
    assert cmds[0][3:6] == [sys.executable, "-m", "streams.windows"]
    assert "cached" in cmds[0]
    assert (five.cpus(), by_name["streams.windows cached x1 pinned"].cpus()) == (2, 1)
    assert by_name["limit"].cpus() == 0  # not pinned: no rate per CPU


def test_ksql_windows_compares_two_runs_that_wrote_the_same_records(capsys) -> None:
    assert ksql_windows.main(["--events", "300", "--runs", "1"]) == 0
    out = capsys.readouterr().out
    # 300 views, 10 ms apart: one tumbling and 5 hopping windows each, one session per source.
    assert "records written to topic6, topic7, topic8 by each: [300, 1500," in out
    assert "streams.ksql seed-001" in out


def test_the_ksql_contenders_run_the_seed_window_queries_on_the_bench_topics(tmp_path) -> None:
    from streams.ksql.plans import pass_name
    from streams.ksql.runner import load

    names = {"topic1_PageView": "pv-1", "topic6": "t6-1", "topic7": "t7-1", "topic8": "t8-1"}
    sql = tmp_path / "windows.sql"
    sql.write_text(ksql_windows.window_sql(names))
    cached = load([sql], ksql_windows.RECORD_CACHE)
    assert {q.sink.topic for q in cached.queries.values()} == {"t6-1", "t7-1", "t8-1"}
    assert {s.topic for q in cached.queries.values() for s in q.inputs} == {"pv-1"}
    assert [q.emit for q in cached.queries.values()] == ["cached"] * 3
    assert [q.emit for q in load([sql]).queries.values()] == ["changes"] * 3
    (only,) = cached.passes()
    assert pass_name(only) == ksql_windows.window_pass(cached=True)  # type: ignore[arg-type]
    assert ksql_windows.window_pass(cached=True) != ksql_windows.window_pass()
    by_name = {c.name: c for c in run.contenders([])}
    contender = by_name["streams.ksql seed-001 windows, record cache"]
    assert contender.group_of("g") == f"g-{ksql_windows.window_pass(cached=True)}"
    inputs = run.Inputs("pv-1", "u", "c", 10, 10)
    topics = {"TOPIC_TUMBLING": "t6-1", "TOPIC_HOPPING": "t7-1", "TOPIC_SESSION": "t8-1"}
    (cmd,) = contender.commands(inputs, "g", [tmp_path / "0"], topics)
    assert cmd[-1] == "--property=cache.max.bytes.buffering=10000000"
    assert cmd[cmd.index("--pass") + 1] == ksql_windows.window_pass(cached=True)
    assert (tmp_path / "0.sql").read_text() == sql.read_text()


def test_collector_phases_report_rates_and_percentiles_in_ms() -> None:
    from bench.collector_load import summary

    row = summary("broker up", [0.001 * i for i in range(1, 101)], 2.0)
    assert (row["phase"], row["requests"], row["requests_per_s"]) == ("broker up", 100, 50.0)
    assert (round(row["p50_ms"]), round(row["p99_ms"]), round(row["max_ms"])) == (51, 99, 100)
    assert summary("broker stopped", [], 10.0)["requests"] == 0


def test_cpu_figures_are_per_cpu_second_of_all_instances_and_the_busiest_share() -> None:
    m = Measurement(400, 2.0, 3.0, 100.0, None, cpu_seconds=(3.0, 1.0))
    assert (m.events_per_s, m.events_per_cpu_s, m.busiest_share) == (200.0, 100.0, 0.75)
    rows = run.summarise({"limit": [m]}, {})
    assert (rows[0]["events_per_cpu_s"], rows[0]["busiest_share"], rows[0]["per_cpu"]) == (
        100.0,
        0.75,
        None,
    )


def test_drain_is_the_time_from_the_whole_input_done_to_completion(tmp_path, monkeypatch) -> None:
    from bench import measure

    clock = [100.0]
    monkeypatch.setattr(measure.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(measure.time, "sleep", lambda s: clock.__setitem__(0, clock[0] + s))
    # One sample with progress, one with the input all done, two waiting for the app's own
    # topics (or its next commits), then complete.
    samples = iter([(0, False), (40, False), (100, False), (100, False), (100, False), (100, True)])
    m = measure.run_until_done(
        "drain", [[sys.executable, "-c", "import time; time.sleep(30)"]], {},
        lambda: next(samples), 100, tmp_path, timeout_s=60,
    )  # fmt: skip
    assert (m.events, m.seconds, m.drain_seconds) == (60, 4 * measure.POLL_S, 3 * measure.POLL_S)
    assert m.wall_seconds == 6 * measure.POLL_S


@pytest.mark.parametrize(("group_by", "outputs"), [(False, 1), (True, 1), (True, 8)])
def test_the_quix_floor_writes_each_record_as_many_times_as_asked(
    group_by: bool, outputs: int
) -> None:
    views = [
        {"session_id": f"s{i}", "user_id": i, "source": source, "event_timestamp": 1_000 + i}
        for i, source in enumerate(["Inbox", "Tab", "Inbox"])
    ]
    with TestDriver(lambda app: quix_floor.build(app, group_by, outputs), partitions=5) as d:
        for view in views:
            d.pipe("topic1_PageView", view["session_id"], view, view["event_timestamp"])
        written = d.read("topic6")
    keys = [v["source"] if group_by else v["session_id"] for v in views]
    assert [(r.key, r.value, r.timestamp) for r in written] == [
        (key, view, view["event_timestamp"])
        for key, view in zip(keys, views, strict=True)
        for _ in range(outputs)
    ]
