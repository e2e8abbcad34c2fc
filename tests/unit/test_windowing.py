"""The window engine on a dict state: exact outputs per window kind, merges, grace, emit modes."""

from __future__ import annotations

import orjson
import pytest

from streams.operators.window_engine import (
    INDEX_PAGE_CHARS,
    MAX_GROUP_CHARS,
    MAX_PENDING,
    DictState,
    WindowEngine,
    WindowRecord,
    WindowSpec,
    count_aggregate,
)

COUNT = count_aggregate("n")


def feed(engine: WindowEngine, records, state: DictState | None = None):
    """Feed (group, ts) records; return (results as tuples, [(group, ts, spec index)] late)."""
    state = DictState() if state is None else state
    outputs, lates = [], []
    for group, ts in records:
        results, late = engine.process(state, group, None, ts)
        outputs += [as_tuple(r, engine.group_column) for r in results]
        lates += [(group, ts, index) for index, _reason in late]
    return outputs, lates


def as_tuple(r: WindowRecord, group_column: str):
    count = None if r.get("deleted") else r["n"]
    return (r.route, r[group_column], r["window_start"], r["window_end"], count, r.timestamp)


def test_tumbling_counts_every_update_in_aligned_windows():
    engine = WindowEngine([WindowSpec.tumbling(10)], COUNT)
    out, late = feed(engine, [("A", 1), ("A", 5), ("B", 3), ("A", 12), ("A", 9)])
    assert out == [
        (0, "A", 0, 10, 1, 1),
        (0, "A", 0, 10, 2, 5),
        (0, "B", 0, 10, 1, 3),
        (0, "A", 10, 20, 1, 12),
        (0, "A", 0, 10, 3, 9),  # out of order, within the default grace (24 h - size)
    ]
    assert late == []


def test_hopping_assigns_every_window_containing_the_record_as_ksqldb():
    engine = WindowEngine([WindowSpec.hopping(10, 5)], COUNT)
    out, _ = feed(engine, [("A", 12), ("A", 3)])
    assert out == [
        (0, "A", 5, 15, 1, 12),
        (0, "A", 10, 20, 1, 12),
        (0, "A", 0, 10, 1, 3),  # no negative-start window: ksqlDB starts at max(0, ...)
    ]


def test_session_gap_is_inclusive_and_a_late_bridge_merges_with_retractions():
    engine = WindowEngine([WindowSpec.session(10)], COUNT)
    out, late = feed(engine, [("A", 0), ("A", 20), ("A", 10), ("A", 30)])
    assert out == [
        (0, "A", 0, 0, 1, 0),
        (0, "A", 20, 20, 1, 20),  # 20 - 0 > gap: a new session
        # 10 is exactly one gap from both (inclusive): retract both, emit the merged session
        (0, "A", 0, 0, None, 0),
        (0, "A", 20, 20, None, 20),
        (0, "A", 0, 20, 3, 20),
        # 30 extends the merged session: ksqlDB retracts it even though its start is unchanged
        (0, "A", 0, 20, None, 20),
        (0, "A", 0, 30, 4, 30),
    ]
    assert late == []


def test_session_just_beyond_the_gap_stays_separate():
    engine = WindowEngine([WindowSpec.session(10)], COUNT)
    out, _ = feed(engine, [("A", 0), ("A", 11)])
    assert out == [(0, "A", 0, 0, 1, 0), (0, "A", 11, 11, 1, 11)]


def test_time_window_late_once_end_is_at_or_before_stream_time_minus_grace():
    engine = WindowEngine([WindowSpec.tumbling(10, grace_ms=5)], COUNT)
    state = DictState()
    out, late = feed(engine, [("A", 0), ("A", 14), ("A", 9), ("A", 15), ("A", 8)], state)
    assert out == [
        (0, "A", 0, 10, 1, 0),
        (0, "A", 10, 20, 1, 14),
        (0, "A", 0, 10, 2, 9),  # stream time 14 - grace 5 = 9 < end 10: still open
        (0, "A", 10, 20, 2, 15),
    ]
    assert late == [("A", 8, 0)]  # stream time 15 - grace 5 = 10 >= end 10: closed
    assert "0|A|0" not in state  # a closed window leaves the state


def test_late_reason_names_the_window_and_the_bound():
    engine = WindowEngine([WindowSpec.tumbling(10, grace_ms=0)], COUNT)
    state = DictState()
    engine.process(state, "A", None, 30)
    results, late = engine.process(state, "A", None, 5)
    assert results == []
    assert late == [
        (
            0,
            "tumbling window(s) starting at [0] (size 10 ms) closed: "
            "window end <= stream time - grace = 30",
        )
    ]


def test_session_closes_at_end_plus_gap_plus_grace():
    engine = WindowEngine([WindowSpec.session(10, grace_ms=5)], COUNT)
    # stream time 30: close = 30 - 5 - 10 = 15; session [0,0] closed, record 14 is late,
    # record 15 opens a session (Kafka Streams drops the closed one before the merge lookup).
    out, late = feed(engine, [("A", 0), ("A", 30), ("A", 14), ("A", 15)])
    assert out == [
        (0, "A", 0, 0, 1, 0),
        (0, "A", 30, 30, 1, 30),
        (0, "A", 15, 15, 1, 15),
    ]
    assert late == [("A", 14, 0)]


def test_stream_time_is_per_partition():
    engine = WindowEngine([WindowSpec.tumbling(10, grace_ms=0)], COUNT)
    partition0, partition1 = DictState(), DictState()
    feed(engine, [("A", 100)], partition0)
    out, late = feed(engine, [("A", 5)], partition1)
    assert out == [(0, "A", 0, 10, 1, 5)] and late == []


def test_emit_final_emits_each_window_once_when_it_closes_for_every_group():
    engine = WindowEngine([WindowSpec.tumbling(10)], COUNT, emit="final")  # grace 0 by default
    state = DictState()
    out, late = feed(engine, [("A", 1), ("A", 4), ("B", 5), ("A", 9)], state)
    assert out == [] and late == []
    out, late = feed(engine, [("A", 10)], state)
    assert out == [(0, "A", 0, 10, 3, 9), (0, "B", 0, 10, 1, 5)]
    assert sorted(k for k in state if k != "meta" and "|#|" not in k) == ["0|A|10"]
    # The index names the window left, and nothing of the closed ones.
    assert sorted(k for k in state if "|#|" in k) == ["0|#|10", "0|#|10|0"]
    assert state["0|#|10|0"] == ["A"]


def test_emit_final_sessions_without_retractions():
    engine = WindowEngine([WindowSpec.session(5)], COUNT, emit="final")
    state = DictState()
    out, _ = feed(engine, [("A", 0), ("B", 2), ("A", 3)], state)
    assert out == []
    # Stream time is per partition: A's record at 8 closes B's [2,2] (8 - gap 5 > 2).
    assert feed(engine, [("A", 8)], state)[0] == [(0, "B", 2, 2, 1, 2)]
    # A's merged session [0,8] closes at 20 - 5 = 15, with no retraction of its parts.
    assert feed(engine, [("A", 20)], state)[0] == [(0, "A", 0, 8, 3, 8)]


def test_cached_emits_the_latest_result_per_window_once_per_period():
    now = [100.0]
    engine = WindowEngine(
        [WindowSpec.tumbling(10), WindowSpec.session(5)], COUNT, "cached", clock=lambda: now[0]
    )
    state = DictState()
    # The first record flushes at once (no flush yet); the next ones coalesce for 2 s.
    assert feed(engine, [("A", 1)], state)[0] == [(0, "A", 0, 10, 1, 1), (1, "A", 1, 1, 1, 1)]
    now[0] = 101.0
    assert feed(engine, [("A", 2), ("A", 3), ("B", 4)], state)[0] == []
    now[0] = 102.0  # period over: the next record flushes everything pending, latest only
    out, _ = feed(engine, [("A", 12)], state)
    assert out == [
        (1, "A", 1, 1, None, 1),  # retracts the session flushed earlier
        (0, "A", 0, 10, 3, 3),  # three updates of [0,10) coalesced into the latest
        (1, "A", 1, 2, None, 2),  # its latest is a retraction (harmless, never flushed live)
        (1, "A", 1, 3, 3, 3),
        (0, "B", 0, 10, 1, 4),
        (1, "B", 4, 4, 1, 4),
        (0, "A", 10, 20, 1, 12),
        (1, "A", 12, 12, 1, 12),
    ]
    assert engine.meta(state).pending == {}  # nothing left pending


def test_flush_due_emits_what_the_next_record_would_have_flushed():
    now = [100.0]
    engine = WindowEngine(
        [WindowSpec.tumbling(10)], COUNT, "cached", clock=lambda: now[0], group_column="source"
    )
    state = DictState()
    assert engine.flush_due(state) == []  # no state yet
    feed(engine, [("A", 1)], state)  # flushed at once
    assert engine.flush_due(state) == []  # nothing pending
    now[0] = 100.5
    feed(engine, [("A", 2), ("A", 3)], state)
    now[0] = 101.9
    assert engine.flush_due(state) == []  # period not over
    now[0] = 102.5
    records = engine.flush_due(state)
    assert records == [{"source": "A", "window_start": 0, "window_end": 10, "n": 3}]
    assert (records[0].route, records[0].key, records[0].timestamp) == (0, "A|0", 3)
    assert engine.meta(state).pending == {} and engine.meta(state).flushed_ms == 102_500
    assert engine.flush_due(state) == []


def test_at_a_commit_a_period_ending_before_the_next_one_is_flushed_into_it():
    now = [100.0]
    engine = WindowEngine(
        [WindowSpec.tumbling(10)],
        COUNT,
        "cached",
        cache_ms=1000,
        clock=lambda: now[0],
        group_column="source",
    )
    state = DictState()
    feed(engine, [("A", 1)], state)  # flushed at once: the period starts at 100 s
    feed(engine, [("A", 2)], state)
    now[0] = 100.4
    # A commit now with 1 s commits: the period ends at 101 s, before the next commit (101.4).
    assert engine.flush_due(state, ahead_ms=500) == []  # 100.9 s: it has not
    (record,) = engine.flush_due(state, ahead_ms=1000)
    assert record == {"source": "A", "window_start": 0, "window_end": 10, "n": 2}
    assert engine.meta(state).flushed_ms == 100_400  # the next period starts at this commit


def test_all_specs_in_one_call_in_spec_order():
    specs = [
        WindowSpec.tumbling(300_000),
        WindowSpec.hopping(300_000, 60_000),
        WindowSpec.session(300_000),
    ]
    engine = WindowEngine(specs, COUNT)
    results, late = engine.process(DictState(), "Inbox", None, 1_700_000_123_000)
    assert late == []
    assert [(r.route, r["window_start"], r["window_end"]) for r in results] == [
        (0, 1_700_000_100_000, 1_700_000_400_000),
        (1, 1_699_999_860_000, 1_700_000_160_000),
        (1, 1_699_999_920_000, 1_700_000_220_000),
        (1, 1_699_999_980_000, 1_700_000_280_000),
        (1, 1_700_000_040_000, 1_700_000_340_000),
        (1, 1_700_000_100_000, 1_700_000_400_000),
        (2, 1_700_000_123_000, 1_700_000_123_000),
    ]


def test_record_shapes_follow_the_output_contract():
    zero = {"pageview_count": 0}

    def engine(spec: WindowSpec) -> WindowEngine:
        return WindowEngine(
            [spec], count_aggregate("pageview_count"), group_column="source", zero=zero
        )

    def record(r: WindowRecord) -> tuple[str, dict]:
        return r.key, dict(r)

    sessions, state = engine(WindowSpec.session(10)), DictState()
    for ts in (10, 15):
        sessions.process(state, "Inbox", None, ts)
    live = sessions.process(state, "Inbox", None, 20)[0][-1]  # after retracting [10, 15]
    retracted = sessions.process(state, "Inbox", None, 25)[0][0]  # merged into [10, 25]
    (tumbling,), _late = engine(WindowSpec.tumbling(300)).process(DictState(), "Inbox", None, 5)
    bounds = {"source": "Inbox", "window_start": 10, "window_end": 20}
    assert record(live) == (
        "Inbox|10",
        {**bounds, "pageview_count": 3, "deleted": False},
    )
    assert record(retracted) == (
        "Inbox|10",
        {**bounds, "pageview_count": 0, "deleted": True},
    )
    assert record(tumbling) == (
        "Inbox|0",
        {"source": "Inbox", "window_start": 0, "window_end": 300, "pageview_count": 1},
    )


def test_default_grace_follows_ksqldb():
    assert WindowSpec.tumbling(300_000).effective_grace("changes") == 86_400_000 - 300_000
    assert WindowSpec.session(300_000).effective_grace("changes") == 86_400_000
    assert WindowSpec.tumbling(300_000).effective_grace("final") == 0
    assert WindowSpec.tumbling(300_000, grace_ms=7).effective_grace("final") == 7


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: WindowSpec.hopping(10, 20), "need 0 < advance <= size"),
        (lambda: WindowSpec.tumbling(0), "need 0 < advance <= size"),
        (lambda: WindowSpec.session(0), "session gap must be > 0"),
        (lambda: WindowSpec.tumbling(10, grace_ms=-1), "grace must be >= 0"),
        (lambda: WindowEngine([WindowSpec.tumbling(10)], COUNT, emit="eager"), "emit mode"),
        (lambda: WindowEngine([], COUNT), "at least one window spec"),
    ],
)
def test_invalid_configuration_is_rejected_with_a_reason(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_records_carry_route_key_and_timestamp():
    specs = [WindowSpec.tumbling(10), WindowSpec.hopping(10, 5), WindowSpec.session(4)]
    engine = WindowEngine(specs, COUNT, group_column="src", zero={"n": 0})
    out, late = engine.process(DictState(), "C", None, 1)
    assert late == []
    assert [(r.route, r.key, r, r.timestamp) for r in out] == [
        (0, "C|0", {"src": "C", "window_start": 0, "window_end": 10, "n": 1}, 1),
        (1, "C|0", {"src": "C", "window_start": 0, "window_end": 10, "n": 1}, 1),
        (2, "C|1", {"src": "C", "window_start": 1, "window_end": 1, "n": 1, "deleted": False}, 1),
    ]


# --- bounded state -----------------------------------------------------------------------------


def largest_value(state: DictState) -> int:
    return max(len(orjson.dumps(value)) for value in state.values())


def test_no_state_value_grows_with_the_number_of_groups():
    specs = [WindowSpec.tumbling(10), WindowSpec.hopping(10, 5), WindowSpec.session(5)]
    engine = WindowEngine(specs, COUNT)
    state = DictState()
    groups = [f"group-{i:05d}-" + "x" * 90 for i in range(5000)]  # 100 characters each
    feed(engine, [(group, 1) for group in groups], state)
    # 5000 x 100 characters in one window: paged, each page within INDEX_PAGE_CHARS.
    assert largest_value(state) < INDEX_PAGE_CHARS * 1.1
    assert len(orjson.dumps(state["meta"])) < 200
    pages = [k for k in state if k.startswith("0|#|0|")]
    assert len(pages) == 16  # 500,000 characters / 32,768 per page
    assert sum(len(state[k]) for k in pages) == 5000


def test_closed_windows_and_sessions_of_every_group_leave_state():
    specs = [WindowSpec.tumbling(10, 0), WindowSpec.session(5, 0)]
    engine = WindowEngine(specs, COUNT)
    state = DictState()
    feed(engine, [(f"g{i}", i % 8) for i in range(300)], state)
    assert len(state) > 500
    # One record far later closes everything else; only its own windows and index remain.
    feed(engine, [("last", 1000)], state)
    assert sorted(state) == [
        "0|#|1000",
        "0|#|1000|0",
        "0|last|1000",
        "1|#|200",
        "1|#|200|0",
        "1|last|s",
        "meta",
    ]


def test_emit_final_emits_the_sessions_of_groups_that_never_come_back():
    engine = WindowEngine([WindowSpec.session(5)], COUNT, emit="final")  # grace 0
    state = DictState()
    assert feed(engine, [("A", 0), ("B", 1), ("A", 3)], state)[0] == []
    # Stream time 7 closes sessions ending before 7 - 5 = 2: B's [1,1], not A's [0,3].
    assert feed(engine, [("C", 7)], state)[0] == [(0, "B", 1, 1, 1, 1)]
    assert feed(engine, [("C", 8)], state)[0] == []
    assert feed(engine, [("C", 9)], state)[0] == [(0, "A", 0, 3, 2, 3)]
    assert sorted(k for k in state if k.endswith("|s")) == ["0|C|s"]


def test_state_written_before_the_index_is_migrated_once():
    """The earlier layout: meta[1] listed every group; no index entries, session bounds unset."""
    specs = [WindowSpec.tumbling(10, 0), WindowSpec.session(5, 0)]
    state = DictState(
        {
            "meta": [9, ["A", "B"], [[0, 0], [None, None]], {}, 0],
            "0|A|0": [2, 9],
            "0|B|0": [1, 4],
            "1|A|s": [[1, 9, 2]],
            "1|B|s": [[4, 4, 1]],
        }
    )
    engine = WindowEngine(specs, COUNT, emit="final")
    out, _ = feed(engine, [("C", 20)], state)
    assert out == [
        (0, "A", 0, 10, 2, 9),
        (0, "B", 0, 10, 1, 4),
        (1, "B", 4, 4, 1, 4),
        (1, "A", 1, 9, 2, 9),
    ]
    assert engine.meta(state).legacy_groups == []
    assert not any(k.startswith(("0|A", "0|B", "1|A", "1|B")) for k in state)


def test_a_full_record_cache_is_flushed_before_its_period_ends():
    now = [100.0]
    engine = WindowEngine([WindowSpec.tumbling(10)], COUNT, "cached", clock=lambda: now[0])
    state = DictState()
    feed(engine, [("first", 1)], state)  # the first record flushes at once
    out, _ = feed(engine, [(f"g{i}", 1) for i in range(MAX_PENDING - 1)], state)
    assert out == []
    out, _ = feed(engine, [("one more", 1)], state)
    assert len(out) == MAX_PENDING
    assert engine.meta(state).pending == {}


def test_a_group_key_longer_than_the_limit_is_the_records_fault():
    engine = WindowEngine([WindowSpec.tumbling(10)], COUNT)
    with pytest.raises(ValueError, match="group key is 4097 characters long"):
        engine.process(DictState(), "x" * (MAX_GROUP_CHARS + 1), None, 1)
