"""Two-phase (local-global) aggregation under ``--emit cached``: the same final windows as
one record at a time, with only partial aggregates crossing the repartition.

The processors run through the in-memory driver (real RocksDB state, the repartition topics fed
back on Java's partitioner): one-phase ``--emit changes`` against two-phase ``--emit cached``
on the same random page views: out of order, on five input partitions, with sessions whose
records arrive on different partitions and merge only in the global step.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from streams import country, windows
from streams.operators.local_aggregate import MAX_GROUP_CHARS_PENDING, LocalAggregator
from streams.operators.window_aggregate import Grouping
from streams.operators.window_engine import (
    MAX_GROUP_CHARS,
    MAX_PENDING,
    Aggregate,
    DictState,
    WindowEngine,
    WindowSpec,
    count_aggregate,
)
from streams.testing import Record, TestDriver
from tests.unit.cache_periods import local_stages, pipe_with_clock

T0 = 1_700_000_100_000  # a multiple of 5 minutes
MINUTE = 60_000
VIEWS, USERS, LATE = "topic1_PageView", "topic4", "pageview_streams_late"
SOURCES = ("Homepage", "Inbox", "External", "Search")
CACHE_MS = 1000


def random_views(seed: int, count: int = 800) -> list[dict[str, Any]]:
    """Views over 70 minutes with bursts and lulls (sessions of 5 min gap open and close),
    shuffled within 3 minutes (out of order), keyed by 40 session ids over 5 partitions."""
    rng = random.Random(seed)
    times = []
    t = T0
    for _ in range(count):
        t += rng.choice([1_000, 5_000, 20_000, 20_000, 7 * MINUTE]) if rng.random() < 0.3 else 0
        times.append(t + rng.randrange(3 * MINUTE))
    return [
        {
            "session_id": f"s{rng.randrange(40)}",
            "user_id": rng.randrange(1, 7),
            "source": rng.choice(SOURCES),
            "event_timestamp": ts,
        }
        for ts in times
    ]


def latest(records: list[Record]) -> dict[str, dict[str, Any]]:
    """A table of the records: the latest value per key, retracted sessions dropped."""
    table: dict[str, dict[str, Any]] = {}
    for record in records:
        table[record.key] = record.value
    return {key: value for key, value in table.items() if not value.get("deleted")}


def run_windows(
    views: list[dict[str, Any]], emit: str, seed: int, grace_ms: int | None = None
) -> dict[str, Any]:
    """The records streams.windows writes to topic6-8 and the late topic, run with ``emit``,
    and how many input partitions ran a local stage (under "local stages")."""
    config = windows.WindowsConfig(grace_ms=grace_ms, emit=emit, cache_ms=CACHE_MS)
    with TestDriver(lambda app: windows.setup(app, config), partitions=5) as driver:
        records = [(VIEWS, view["session_id"], view, 0) for view in views]
        pipe_with_clock(driver, records, CACHE_MS, seed)
        out = {topic: driver.read(topic) for topic in ("topic6", "topic7", "topic8", LATE)}
        driver.commit()
        out["local stages"] = local_stages(driver, VIEWS, Grouping.column("source"))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_windows_two_phase_gives_the_final_rows_of_one_record_at_a_time(seed: int) -> None:
    views = random_views(seed)
    one = run_windows(views, "changes", seed)
    two = run_windows(views, "cached", seed)
    for topic in ("topic6", "topic7", "topic8"):
        assert latest(two[topic]) == latest(one[topic]), topic
    assert one[LATE] == two[LATE] == []
    assert (one["local stages"], two["local stages"]) == (0, 5)
    # The input really was out of order and sessions did merge across input partitions.
    assert any(v["deleted"] for v in (r.value for r in one["topic8"]))
    sessions = latest(one["topic8"])
    assert len(latest(one["topic6"])) > 4 * len(SOURCES) and len(sessions) > len(SOURCES)
    # Coalesced: each window's updates are a few per period, not one per view.
    assert len(two["topic6"]) < len(one["topic6"]) / 2


def test_a_count_never_goes_back_under_two_phase() -> None:
    """Partials only add: each window's committed counts rise, so none is counted twice."""
    two = run_windows(random_views(4), "cached", 4)
    for topic in ("topic6", "topic7"):
        by_key: dict[str, list[int]] = {}
        for record in two[topic]:
            by_key.setdefault(record.key, []).append(record.value["pageview_count"])
        assert all(counts == sorted(set(counts)) for counts in by_key.values()), topic


def run_country(views: list[dict[str, Any]], emit: str) -> list[Record]:
    config = country.CountryConfig(emit=emit, cache_ms=CACHE_MS)
    with TestDriver(lambda app: country.setup(app, config), partitions=5) as driver:
        for user, (nation, age) in enumerate(
            [("Thailand", 30), ("Vietnam", 41), ("Thailand", 25), ("Singapore", None)], 1
        ):
            row = {"user_id": user, "age": age, "gender": "Male", "country": nation}
            driver.pipe(USERS, str(user), {**row, "subscription": "Gold"}, timestamp=T0 - 1)
        for i, view in enumerate(views):
            driver.pipe(VIEWS, view["session_id"], view, timestamp=view["event_timestamp"])
            if i % 97 == 0:
                driver.advance_wall_clock(CACHE_MS + 100)
        for _ in range(3):
            driver.advance_wall_clock(CACHE_MS + 100)
        return driver.read("topic5")


def test_country_two_phase_gives_the_counts_and_average_ages_of_one_phase() -> None:
    """AVG in two phases: the partials carry the sum and count of ages, not an average."""
    views = random_views(5, count=400)  # users 1-6: 5 and 6 are unknown, so "unknown"
    one, two = latest(run_country(views, "changes")), latest(run_country(views, "cached"))
    assert two == one
    assert {key.split("|")[0] for key in one} == {"Thailand", "Vietnam", "Singapore", "unknown"}
    assert {v["average_age"] for k, v in one.items() if k.startswith("Singapore")} == {None}


def test_a_partial_too_late_for_its_window_goes_to_the_late_topic_as_what_it_held() -> None:
    """Under the default grace (24 h - size), a view a day and more behind stream time."""
    config = windows.WindowsConfig(emit="cached", cache_ms=CACHE_MS)
    with TestDriver(lambda app: windows.setup(app, config), partitions=5) as driver:
        late = {"session_id": "s1", "user_id": 1, "source": "Inbox", "event_timestamp": T0}
        later = T0 + 25 * 60 * MINUTE
        driver.pipe(VIEWS, "s2", {**late, "session_id": "s2", "event_timestamp": later})
        driver.advance_wall_clock(CACHE_MS + 100)  # the later view's partials arrive first
        driver.pipe(VIEWS, "s1", late)
        driver.advance_wall_clock(CACHE_MS + 100)
        records = driver.read(LATE)
    assert [(r.key, r.value["window"]) for r in records] == [
        ("Inbox", "tumbling"),
        *[("Inbox", "hopping")] * 5,
        ("Inbox", "session"),
    ]
    assert records[0].value["partial"] == {
        "source": "Inbox",
        "window_start": T0,
        "window_end": T0 + 300_000,
        "pageview_count": 1,
    }
    assert "closed" in records[0].value["reason"]


def test_an_explicit_grace_keeps_cached_in_one_phase_and_its_late_records() -> None:
    """Grace 0 on out-of-order views: many are late. Partials would be judged whole, at their
    latest event time, so an explicit grace runs cached one record at a time: the same late
    records and final rows as every update, and no local stage."""
    views = random_views(6, count=400)
    one, two = run_windows(views, "changes", 6, grace_ms=0), run_windows(views, "cached", 6, 0)
    for topic in ("topic6", "topic7", "topic8"):
        assert latest(two[topic]) == latest(one[topic]), topic
    assert len(one[LATE]) > 20
    assert [(r.key, r.value) for r in two[LATE]] == [(r.key, r.value) for r in one[LATE]]
    assert two["local stages"] == 0


def engine(cache_ms: int) -> tuple[WindowEngine, list[float]]:
    """A tumbling and a session window counting, on a wall clock the test moves (seconds)."""
    specs = [WindowSpec.tumbling(5 * MINUTE), WindowSpec.session(5 * MINUTE)]
    now = [0.0]
    counting = WindowEngine(
        specs, count_aggregate("n"), "cached", cache_ms=cache_ms, clock=lambda: now[0]
    )
    return counting, now


def test_the_local_stage_merges_sessions_by_the_gap_and_sends_once_per_period() -> None:
    windows_engine, now = engine(cache_ms=1000)
    local, state = LocalAggregator(windows_engine), DictState()
    assert local.add(state, "a", {}, T0) == []
    assert local.add(state, "a", {}, T0 + 10 * MINUTE) == []  # a second session
    assert local.add(state, "a", {}, T0 + 5 * MINUTE) == []  # bridges the two
    assert local.flush_due(state) == []  # the period has not ended
    now[0] = 1.0
    (batch,) = local.flush_due(state)
    assert (batch.group, batch.timestamp) == ("a", T0 + 10 * MINUTE)
    assert batch == {
        "group": "a",
        "partials": [  # [spec, start, end, count, max event time], in event time
            [0, T0, T0 + 5 * MINUTE, 1, T0],
            [0, T0 + 5 * MINUTE, T0 + 10 * MINUTE, 1, T0 + 5 * MINUTE],
            [0, T0 + 10 * MINUTE, T0 + 15 * MINUTE, 1, T0 + 10 * MINUTE],
            [1, T0, T0 + 10 * MINUTE, 3, T0 + 10 * MINUTE],  # one session of three
        ],
    }
    assert local.flush_due(state) == []  # sent once


def test_at_a_commit_the_local_stage_sends_a_period_that_ends_before_the_next_one() -> None:
    windows_engine, now = engine(cache_ms=1000)
    local, state = LocalAggregator(windows_engine), DictState()
    assert local.add(state, "a", {}, T0) == []
    now[0] = 0.3
    assert local.flush_due(state, ahead_ms=600) == []  # ends after the next commit
    (batch,) = local.flush_due(state, ahead_ms=700)
    assert batch.group == "a" and [p[3] for p in batch["partials"]] == [1, 1]


def test_the_local_stage_sends_early_when_its_windows_fill_the_cache() -> None:
    windows_engine, _now = engine(cache_ms=60_000)
    local, state = LocalAggregator(windows_engine), DictState()
    sent = []
    for i in range(MAX_PENDING // 2):  # a group per record, two windows each
        assert sent == []
        sent = local.add(state, f"g{i}", {}, T0)
    assert len(sent) == MAX_PENDING // 2  # sent by the record that filled it
    assert state.get("slices")[1] == 0  # nothing pending any more


def test_the_local_stage_sends_early_before_long_group_keys_outgrow_a_record() -> None:
    """Its state is one value, one changelog record: long keys must not push it toward
    Kafka's message limit, whatever the window count."""
    windows_engine, _now = engine(cache_ms=60_000)
    local, state = LocalAggregator(windows_engine), DictState()
    long_keys = [f"{i:04d}" + "x" * (MAX_GROUP_CHARS - 4) for i in range(70)]
    sent = [len(local.add(state, key, {}, T0)) for key in long_keys]
    first = MAX_GROUP_CHARS_PENDING // MAX_GROUP_CHARS  # keys that fill the bound
    assert sent[first - 1] == first and sum(sent) == first  # once, when it filled
    assert len(json.dumps(state.get("slices"))) < 1_000_000 / 3


def in_place_sum() -> Aggregate:
    """A sum whose ``add`` and ``merge`` change the accumulator they are given (a list), as
    the compiler's aggregates may: a slice's accumulator must not be shared by its windows."""

    def add(acc: list[int], value: dict[str, int]) -> list[int]:
        acc[0] += value["x"]
        return acc

    def merge(a: list[int], b: list[int]) -> list[int]:
        a[0] += b[0]
        return a

    return Aggregate(lambda: [0], add, merge, lambda acc: {"sum": acc[0]}, splittable=True)


def per_record_partials(specs: list[WindowSpec], records: list[tuple[int, int]]) -> list[list[Any]]:
    """The partials of ``records`` (timestamp, x) worked out one record and window at a time:
    [spec, start, end, sum, max event time], sorted."""
    out = []
    for index, spec in enumerate(specs):
        if spec.gap_ms:
            for ts, x in sorted(records):
                if out and out[-1][0] == index and ts - out[-1][2] <= spec.gap_ms:
                    out[-1][2] = out[-1][4] = ts
                    out[-1][3][0] += x
                else:
                    out.append([index, ts, ts, [x], ts])
            continue
        windows: dict[int, list[Any]] = {}
        for ts, x in records:
            start = 0
            while start <= ts:
                if ts < start + spec.size_ms:
                    window = windows.setdefault(
                        start, [index, start, start + spec.size_ms, [0], ts]
                    )
                    window[3][0] += x
                    window[4] = max(window[4], ts)
                start += spec.advance_ms
        out.extend(windows.values())
    return sorted(out)


@pytest.mark.parametrize("seed", range(5))
def test_slices_give_the_partials_of_each_record_in_each_window(seed: int) -> None:
    """Sizes, advances and gaps that do not divide each other (slices of 1 s) and an advance
    that does not divide its size; on a 500 ms grid, so records a gap apart (which merge)
    and records at a slice's edges come up."""
    rng = random.Random(seed)
    specs = [
        WindowSpec.tumbling(7_000),
        WindowSpec.hopping(10_000, 4_000),
        WindowSpec.session(3_000),
    ]
    now = [0.0]
    engine = WindowEngine(specs, in_place_sum(), "cached", cache_ms=1000, clock=lambda: now[0])
    local, state = LocalAggregator(engine), DictState()
    records = [
        (rng.randrange(120) * 500, rng.randrange(1, 100)) for _ in range(rng.randrange(1, 60))
    ]
    for ts, x in records:
        assert local.add(state, "g", {"x": x}, ts) == []
    now[0] = 1.0
    (batch,) = local.flush_due(state)
    assert sorted(batch["partials"]) == per_record_partials(specs, records)
    assert batch["partials"] == sorted(batch["partials"], key=lambda p: p[4])  # event time
    assert batch.timestamp == max(ts for ts, _x in records)


def test_what_a_partition_held_before_slices_is_sent_as_it_was() -> None:
    """State written by the layout before slices (the partials themselves, under "local"):
    an upgrade sends them at the partition's first record, or its first flush."""
    windows_engine, now = engine(cache_ms=1000)
    held = {"a": {"0|5": [0, 5, 300_005, 2, 9], "1|s": [[1, 5, 9, 2, 9]]}}
    for first in ("record", "flush"):
        local, state = LocalAggregator(windows_engine), DictState()
        state.set("local", [0, 2, held, 1])
        now[0] = 0.0
        sent = local.add(state, "b", {}, T0) if first == "record" else local.flush_due(state)
        assert sent == [{"group": "a", "partials": [[0, 5, 300_005, 2, 9], [1, 5, 9, 2, 9]]}]
        assert sent[0].timestamp == 9 and state.get("local") is None
        assert local.flush_due(state) == []  # once


def test_a_record_the_aggregate_refuses_leaves_the_local_stage_as_it_was() -> None:
    """It is dead-lettered and its transaction commits: the state it leaves must still send
    what the partition held (legacy state too), with no empty group for a flush to trip on."""
    now = [0.0]
    specs = [WindowSpec.tumbling(5 * MINUTE), WindowSpec.session(5 * MINUTE)]
    summing = WindowEngine(specs, in_place_sum(), "cached", cache_ms=1000, clock=lambda: now[0])
    local, state = LocalAggregator(summing), DictState()
    state.set("local", [0, 1, {"a": {"0|0": [0, 0, 300_000, [4], 9]}}, 1])
    refused = {"x": None}
    with pytest.raises(TypeError):
        local.add(state, "b", refused, T0)  # the partition's first record
    assert state.get("local") is not None and state.get("slices") is None
    (legacy,) = local.add(state, "b", {"x": 2}, T0)
    assert legacy == {"group": "a", "partials": [[0, 0, 300_000, [4], 9]]}
    with pytest.raises(TypeError):
        local.add(state, "c", refused, T0)  # a new group
    with pytest.raises(TypeError):
        local.add(state, "b", refused, T0 + MINUTE)  # a new slice of a group
    now[0] = 1.0
    (batch,) = local.flush_due(state)
    assert batch == {
        "group": "b",
        "partials": [[0, T0, T0 + 5 * MINUTE, [2], T0], [1, T0, T0, [2], T0]],
    }


def test_a_group_in_no_window_sends_nothing() -> None:
    """Records before the epoch are in no time window (one phase drops them too)."""
    now = [0.0]
    tumbling = WindowEngine(
        [WindowSpec.tumbling(MINUTE)], count_aggregate("n"), "cached", clock=lambda: now[0]
    )
    local, state = LocalAggregator(tumbling), DictState()
    assert local.add(state, "a", {}, -5) == []
    assert local.add(state, "b", {}, T0) == []
    now[0] = 60.0
    (batch,) = local.flush_due(state)
    assert batch == {"group": "b", "partials": [[0, T0, T0 + MINUTE, 1, T0]]}
    assert state.get("slices")[2] == {}
