"""Stream-stream and table-table joins (``streams.operators.join``) through the test driver.

Each pipeline concatenates two keyed topics into the join and produces every result with its own
key and timestamp; outputs are compared exactly, in order. Most cases are ksqlDB's own
query-validation cases (``/work/shared/ksql-qtt/joins.json``, cited by name) translated by hand:
the rows are the cases' input values, BIGINT keys are strings, and each expected output is the
pair of rows the case's projection is computed from. Where no ksqlDB case exercises a rule (the
null-padded results GRACE PERIOD holds back), Kafka Streams' own tests are translated instead.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from quixstreams import Application
from quixstreams.models.serializers import JSONSerializer
from quixstreams.models.serializers.base import SerializationContext

from streams.operators.join import (
    Joined,
    JoinedDeletion,
    stream_stream_join,
    table_table_join,
)
from streams.testing import TestDriver

LEFT, RIGHT, OUT = "left_topic", "right_topic", "output"
SECOND, MINUTE = 1000, 60_000


class JoinedSerializer(JSONSerializer):
    """A result as JSON ``{"left": row, "right": row}``; a deletion as a tombstone."""

    def __call__(self, value: Joined | JoinedDeletion, ctx: SerializationContext) -> Any:
        if isinstance(value, JoinedDeletion):
            return None
        return super().__call__({"left": value.left, "right": value.right}, ctx)


def pipeline(join: Any, seen: list | None = None, key_deserializer: str = "str", **options: Any):
    """``setup(app)``: LEFT and RIGHT joined by ``join`` into OUT, keyed by each result's key;
    ``seen`` collects the result objects themselves."""

    def setup(app: Application) -> None:
        left = app.dataframe(app.topic(LEFT, key_deserializer=key_deserializer))
        right = app.dataframe(app.topic(RIGHT, key_deserializer=key_deserializer))
        joined = join(left, right, name="j", **options)
        if seen is not None:
            joined = joined.update(seen.append)
        serializer = "bytes" if key_deserializer == "bytes" else "str"
        out = app.topic(OUT, key_serializer=serializer, value_serializer=JoinedSerializer())
        joined.to_topic(out, key=lambda result: result.key)

    return setup


def outputs(driver: TestDriver) -> list[tuple]:
    """(key, left row, right row, timestamp) per result; (key, "deleted", timestamp) per
    deletion."""
    return [
        (r.key, "deleted", r.timestamp)
        if r.value is None
        else (r.key, r.value["left"], r.value["right"], r.timestamp)
        for r in driver.read(OUT)
    ]


def feed(driver: TestDriver, records: list[tuple]) -> list[tuple]:
    """Pipe ``records`` (topic, key, value, timestamp) into ``driver``: the outputs since the
    last read."""
    for topic, key, value, ts in records:
        driver.pipe(topic, key, value, ts)
    return outputs(driver)


def run(setup: Any, records: list[tuple]) -> list[tuple]:
    """The outputs of a fresh driver of ``setup`` fed ``records``."""
    with TestDriver(setup) as driver:
        return feed(driver, records)


def row(name: str, value: int) -> dict:
    return {"NAME": name, "VALUE": value}


def f(f1: str, f2: int) -> dict:
    return {"F1": f1, "F2": f2}


# The inputs of joins.json's "stream stream left|right|inner join" cases (WITHIN 11 seconds).
BASIC = [
    (LEFT, "0", row("zero", 0), 0),
    (RIGHT, "0", f("blah", 50), 10_000),
    (LEFT, "10", row("100", 5), 11_000),
    (LEFT, "0", row("foo", 100), 13_000),
    (RIGHT, "0", f("a", 10), 15_000),
    (RIGHT, "100", f("newblah", 150), 16_000),
    (LEFT, "90", row("ninety", 90), 17_000),
    (LEFT, "0", row("bar", 99), 30_000),
]


def stream_join(kind: str, before: int, after: int, grace: int | None = None, **kw: Any):
    return pipeline(
        stream_stream_join, kind=kind, before_ms=before, after_ms=after, grace_ms=grace, **kw
    )


# --- stream-stream: ksqlDB's cases -------------------------------------------------------------


def test_left_join_without_grace_emits_unmatched_at_once_and_matches_later():
    """joins.json "stream stream left join": with no GRACE PERIOD a left record that matches
    nothing is emitted null-padded at once, and again joined when a match arrives; results are
    timestamped with the later record."""
    assert run(stream_join("left", 11 * SECOND, 11 * SECOND), BASIC) == [
        ("0", row("zero", 0), None, 0),
        ("0", row("zero", 0), f("blah", 50), 10_000),
        ("10", row("100", 5), None, 11_000),
        ("0", row("foo", 100), f("blah", 50), 13_000),
        ("0", row("foo", 100), f("a", 10), 15_000),
        ("90", row("ninety", 90), None, 17_000),
        ("0", row("bar", 99), None, 30_000),
    ]


def test_right_join_without_grace_is_the_mirror():
    """joins.json "stream stream right join": unmatched right records are emitted
    null-padded, unmatched left ones never."""
    assert run(stream_join("right", 11 * SECOND, 11 * SECOND), BASIC) == [
        ("0", row("zero", 0), f("blah", 50), 10_000),
        ("0", row("foo", 100), f("blah", 50), 13_000),
        ("0", row("foo", 100), f("a", 10), 15_000),
        ("100", None, f("newblah", 150), 16_000),
    ]


def test_outer_join_without_grace():
    """joins.json "stream stream outer join" (FULL OUTER, WITHIN 11 seconds): either side's
    unmatched record is emitted at once, whatever its timestamp."""
    records = [
        *BASIC[:5],
        (LEFT, "0", row("bar", 99), 30_000),
        (LEFT, "90", row("ninety", 90), 17_000),
        (RIGHT, "100", f("newblah", 150), 20_000),
    ]
    assert run(stream_join("outer", 11 * SECOND, 11 * SECOND), records) == [
        ("0", row("zero", 0), None, 0),
        ("0", row("zero", 0), f("blah", 50), 10_000),
        ("10", row("100", 5), None, 11_000),
        ("0", row("foo", 100), f("blah", 50), 13_000),
        ("0", row("foo", 100), f("a", 10), 15_000),
        ("0", row("bar", 99), None, 30_000),
        ("90", row("ninety", 90), None, 17_000),
        ("100", None, f("newblah", 150), 20_000),
    ]


def test_before_and_after_windows_differ():
    """joins.json "stream stream inner join with different before and after windows" (WITHIN
    (11 seconds, 10 seconds)): a left record at ts joins right records in [ts - 11 s, ts + 10 s],
    so zero@0 does not meet blah@11000 but foo@13000 meets both right records."""
    records = [
        (LEFT, "0", row("zero", 0), 0),
        (RIGHT, "0", f("blah", 50), 11_000),
        (LEFT, "10", row("100", 5), 12_000),
        *BASIC[3:],
    ]
    assert run(stream_join("inner", 11 * SECOND, 10 * SECOND), records) == [
        ("0", row("foo", 100), f("blah", 50), 13_000),
        ("0", row("foo", 100), f("a", 10), 15_000),
    ]


def test_out_of_order_record_joins_within_default_retention():
    """joins.json "stream stream inner join with out of order messages" (WITHIN 10 seconds, no
    GRACE PERIOD, so retention is about a day): a record 24 s behind stream time still joins,
    and its results come in the right records' timestamp order."""
    records = [
        (LEFT, "0", row("zero", 0), 0),
        (RIGHT, "0", f("blah", 50), 9999),
        *BASIC[2:],
        (LEFT, "0", row("late-message", 10_000), 6000),
    ]
    assert run(stream_join("inner", 10 * SECOND, 10 * SECOND), records) == [
        ("0", row("zero", 0), f("blah", 50), 9999),
        ("0", row("foo", 100), f("blah", 50), 13_000),
        ("0", row("foo", 100), f("a", 10), 15_000),
        ("0", row("late-message", 10_000), f("blah", 50), 9999),
        ("0", row("late-message", 10_000), f("a", 10), 15_000),
    ]


def grace_records(late_first: str) -> list[tuple]:
    """The inputs of the "... with out of order and custom grace period" cases: key 1 moves
    stream time to 330000, then keys 2 and 3 arrive long after their windows closed."""
    other = RIGHT if late_first == LEFT else LEFT
    value = {LEFT: lambda v: {"L1": v.upper()}, RIGHT: lambda v: {"L2": v}}
    return [
        (LEFT, "0", {"L1": "A"}, 0),
        (RIGHT, "0", {"L2": "a"}, 60_000),
        (late_first, "1", value[late_first]("b"), 330_000),
        (late_first, "2", value[late_first]("c"), 90_000),
        (other, "2", value[other]("c"), 90_000),
        (late_first, "3", value[late_first]("d"), 60_000),
        (other, "3", value[other]("d"), 60_000),
    ]


def test_left_join_with_grace_late_records():
    """joins.json "stream stream left join with out of order and custom grace period" (WITHIN 1
    minute GRACE PERIOD 1 minute): B is held (its window is open); C and D arrive with their
    windows closed, so they are emitted null-padded at once, and the right records c and d
    find nothing: the left side keeps records only 3 minutes behind its stream time."""
    assert run(stream_join("left", MINUTE, MINUTE, MINUTE), grace_records(LEFT)) == [
        ("0", {"L1": "A"}, {"L2": "a"}, 60_000),
        ("2", {"L1": "C"}, None, 90_000),
        ("3", {"L1": "D"}, None, 60_000),
    ]


def test_inner_join_with_grace_late_records():
    """joins.json "stream stream inner join with out of order and custom grace period"."""
    assert run(stream_join("inner", MINUTE, MINUTE, MINUTE), grace_records(LEFT)) == [
        ("0", {"L1": "A"}, {"L2": "a"}, 60_000)
    ]


def test_full_outer_join_with_grace_late_records():
    """joins.json "stream stream full outer join with out of order and custom grace period":
    each late record is emitted null-padded at once, in arrival order."""
    assert run(stream_join("outer", MINUTE, MINUTE, MINUTE), grace_records(RIGHT)) == [
        ("0", {"L1": "A"}, {"L2": "a"}, 60_000),
        ("2", None, {"L2": "c"}, 90_000),
        ("2", {"L1": "C"}, None, 90_000),
        ("3", None, {"L2": "d"}, 60_000),
        ("3", {"L1": "D"}, None, 60_000),
    ]


def test_right_join_with_grace_late_records():
    """joins.json "stream stream right join with out of order and custom grace period": the
    late right record d@60000 is emitted null-padded, and kept: D@90000 then joins it."""
    records = [
        *grace_records(LEFT)[:5],
        (RIGHT, "3", {"L2": "d"}, 60_000),
        (LEFT, "3", {"L1": "D"}, 90_000),
    ]
    assert run(stream_join("right", MINUTE, MINUTE, MINUTE), records) == [
        ("0", {"L1": "A"}, {"L2": "a"}, 60_000),
        ("2", None, {"L2": "c"}, 90_000),
        ("3", None, {"L2": "d"}, 60_000),
        ("3", {"L1": "D"}, {"L2": "d"}, 90_000),
    ]


# --- stream-stream: results GRACE PERIOD holds back (Kafka Streams' own tests) ------------------


def test_grace_holds_unmatched_records_until_their_window_closes():
    """Kafka Streams' KStreamKStreamOuterJoinTest.testGracePeriod (WITHIN 100 ms GRACE PERIOD
    10 ms): nothing is emitted while windows are open; a record on key 0 at 112 closes both
    held records of other keys, emitted first with their own keys and timestamps, right side
    before left at equal timestamps."""
    with TestDriver(stream_join("outer", 100, 100, 10)) as driver:
        records = [
            (LEFT, "0", {"v": "A0"}, 0),
            (RIGHT, "1", {"v": "11"}, 0),
            (LEFT, "1", {"v": "A1"}, 101),
            (RIGHT, "0", {"v": "10"}, 101),
        ]
        assert feed(driver, records) == []
        assert feed(driver, [(RIGHT, "0", {"v": "100"}, 112)]) == [
            ("1", None, {"v": "11"}, 0),
            ("0", {"v": "A0"}, None, 0),
        ]


def test_grace_closes_each_side_by_its_own_window():
    """Kafka Streams' KStreamKStreamOuterJoinTest.testEmitAllNonJoinedResultsForAsymmetricWindow
    (before 5 ms, after 20 ms, grace 0): a left record closes 20 ms after its timestamp, a right
    one 5 ms after, and closed records come out in timestamp order across sides."""
    with TestDriver(stream_join("outer", 5, 20, 0)) as driver:
        records = [
            (LEFT, "0", {"v": "A0"}, 29),
            (LEFT, "1", {"v": "A1"}, 30),
            (RIGHT, "2", {"v": "12"}, 31),
            (RIGHT, "3", {"v": "13"}, 36),
        ]
        assert feed(driver, records) == []
        assert feed(driver, [(RIGHT, "4", {"v": "14"}, 37)]) == [("2", None, {"v": "12"}, 31)]
        assert feed(driver, [(RIGHT, "5", {"v": "15"}, 50)]) == [
            ("0", {"v": "A0"}, None, 29),
            ("3", None, {"v": "13"}, 36),
            ("4", None, {"v": "14"}, 37),
        ]


def test_grace_a_match_cancels_the_held_result():
    """Kafka Streams' KStreamKStreamLeftJoinTest.testLeftJoinDuplicates: held duplicates are
    emitted once their window closes; joined ones never are."""
    with TestDriver(stream_join("left", 100, 100, 10)) as driver:
        records = [
            (LEFT, "0", {"v": "A0"}, 0),
            (LEFT, "0", {"v": "A0-0"}, 0),
            (RIGHT, "1", {"v": "a0"}, 111),
            (RIGHT, "2", {"v": "dummy"}, 500),
        ]
        assert feed(driver, records) == [
            ("0", {"v": "A0"}, None, 0),
            ("0", {"v": "A0-0"}, None, 0),
        ]
        records = [
            (LEFT, "2", {"v": "A2"}, 1000),
            (LEFT, "2", {"v": "A2-0"}, 1000),
            (RIGHT, "2", {"v": "a2"}, 1001),
        ]
        assert feed(driver, records) == [
            ("2", {"v": "A2"}, {"v": "a2"}, 1001),
            ("2", {"v": "A2-0"}, {"v": "a2"}, 1001),
        ]
        assert feed(driver, [(RIGHT, "3", {"v": "a3"}, 1315)]) == []


def test_grace_only_a_record_at_stream_time_emits_closed_records():
    """Kafka Streams emits closed records only for a record at or past stream time: an out-of-
    order record does not, the next in-order one does."""
    with TestDriver(stream_join("left", 10, 10, 0)) as driver:
        records = [(LEFT, "a", {"v": 1}, 0), (LEFT, "b", {"v": 2}, 100)]
        assert feed(driver, records) == [("a", {"v": 1}, None, 0)]
        # Its own window closed: emitted at once.
        assert feed(driver, [(LEFT, "c", {"v": 3}, 50)]) == [("c", {"v": 3}, None, 50)]
        # At stream time, nothing closed yet.
        assert feed(driver, [(RIGHT, "z", {"v": 9}, 100)]) == []
        assert feed(driver, [(RIGHT, "z", {"v": 9}, 111)]) == [("b", {"v": 2}, None, 100)]


def test_grace_closed_records_of_one_timestamp_come_in_key_byte_order():
    """Kafka Streams' outer-join store is ordered by timestamp, side, then key bytes: held
    records of one timestamp come out by key, not by arrival. Keys stay bytes end to end."""
    records = [
        (LEFT, b"\x02", {"v": "second"}, 5),
        (LEFT, b"\x01\xff", {"v": "first"}, 5),
        (LEFT, b"\x03", {"v": "late"}, 6),
        (RIGHT, b"\x09", {"v": "tick"}, 16),  # closes 5 (5 + 10 < 16), not 6
    ]
    assert run(stream_join("left", 10, 10, 0, key_deserializer="bytes"), records) == [
        (b"\x01\xff", {"v": "first"}, None, 5),
        (b"\x02", {"v": "second"}, None, 5),
    ]


def test_right_join_window_is_the_right_records():
    """ksqlDB builds RIGHT JOIN ... WITHIN (before, after) as right.leftJoin(left) over the same
    window (StreamStreamJoinBuilder): a RIGHT record at ts joins left records in
    [ts - before, ts + after], so with (0 ms, 100 ms) a right record at 100 meets a left one at
    150 but not one at 50."""
    assert run(
        stream_join("right", 0, 100),
        [
            (LEFT, "k", {"v": "early"}, 50),
            (RIGHT, "k", {"v": "r"}, 100),
            (LEFT, "k", {"v": "later"}, 150),
        ],
    ) == [
        ("k", None, {"v": "r"}, 100),
        ("k", {"v": "later"}, {"v": "r"}, 150),
    ]


def test_retention_is_per_side_stream_time():
    """Each side keeps its records ``before + after + grace`` behind its own stream time: with
    WITHIN 10 ms GRACE PERIOD 0, a right record at 100 is gone once the right side reached 200,
    so a left record at 95 no longer meets it; a left join emits it null-padded at once."""
    assert run(
        stream_join("left", 10, 10, 0),
        [
            (RIGHT, "k", {"v": "r100"}, 100),
            (RIGHT, "x", {"v": "r200"}, 200),
            (LEFT, "k", {"v": "l95"}, 95),
        ],
    ) == [("k", {"v": "l95"}, None, 95)]


def test_stream_time_and_held_records_are_per_partition():
    """Stream time is the partition's: a record far ahead on partition 0 closes nothing held
    on partition 1, where the next record does."""
    with TestDriver(stream_join("left", 10, 10, 0), partitions=2) as driver:
        driver.pipe(LEFT, "a", {"v": "p1"}, 0, partition=1)
        driver.pipe(LEFT, "b", {"v": "p0"}, 0, partition=0)
        driver.pipe(RIGHT, "c", {"v": "tick"}, 1000, partition=0)
        assert outputs(driver) == [("b", {"v": "p0"}, None, 0)]
        driver.pipe(RIGHT, "c", {"v": "tick"}, 21, partition=1)
        assert outputs(driver) == [("a", {"v": "p1"}, None, 0)]


def test_expired_state_is_deleted():
    """What expired leaves state: a record's window-store bucket once its side's stream time is
    retention past the bucket, a held record once emitted (layout: join.py's stored layout)."""
    with TestDriver(stream_join("left", 10, 10, 0)) as driver:
        driver.pipe(LEFT, "a", {"v": 1}, 0)
        driver.commit()
        state = driver.state("join|j")
        assert state.get("w0|sa|0") == [[0, {"v": 1}]]
        assert state.get("o|0|1|sa") == [{"v": 1}]
        driver.pipe(LEFT, "b", {"v": 2}, 2000)  # left stream time 2000: bucket [0, 1000) expired
        driver.commit()
        state = driver.state("join|j")
        assert state.get("w0|sa|0") is None
        assert state.get("w0#0") is None
        assert state.get("o|0|1|sa") is None
        assert state.get("o#0") is None
        assert outputs(driver) == [("a", {"v": 1}, None, 0)]


def test_records_without_key_or_value():
    """A keyless record on an outer side is emitted null-padded at once (Kafka Streams'
    KIP-962); on an inner side it is dropped, as is a record without a value."""
    assert run(
        stream_join("left", 10, 10),
        [(LEFT, None, {"v": 1}, 5), (RIGHT, None, {"v": 2}, 5), (LEFT, "k", None, 6)],
    ) == [(None, {"v": 1}, None, 5)]


def test_rows_are_kept_through_dump_and_load():
    """Rows held in state go through ``dump`` (to JSON) and come back through ``load``: a
    Decimal stays a Decimal; the arriving record's row is passed as it is."""
    seen: list = []

    def dump(value: dict) -> dict:
        return {k: {"$decimal": str(v)} if isinstance(v, Decimal) else v for k, v in value.items()}

    def load(value: dict) -> dict:
        return {k: Decimal(v["$decimal"]) if isinstance(v, dict) else v for k, v in value.items()}

    def setup(app: Application) -> None:
        left = app.dataframe(app.topic(LEFT, key_deserializer="str"))
        right = app.dataframe(app.topic(RIGHT, key_deserializer="str"))
        left = left.apply(lambda value: {**value, "amount": Decimal(value["amount"])})
        joined = stream_stream_join(
            left,
            right,
            kind="inner",
            before_ms=10,
            after_ms=10,
            grace_ms=None,
            name="j",
            dump=dump,
            load=load,
        )
        joined.update(seen.append)

    with TestDriver(setup) as driver:
        driver.pipe(LEFT, "k", {"amount": "1.10"}, 1)
        driver.pipe(RIGHT, "k", {"v": 1}, 2)
    assert seen == [Joined({"amount": Decimal("1.10")}, {"v": 1}, 2, "k")]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"kind": "full"}, "join kind must be one of"),
        ({"before_ms": -1}, "before must be >= 0 ms"),
        ({"grace_ms": -5}, "grace must be >= 0 ms"),
    ],
)
def test_bad_arguments_are_refused(options: dict, message: str):
    arguments = {"kind": "left", "before_ms": 10, "after_ms": 10, "grace_ms": None, **options}
    with (
        pytest.raises(ValueError, match=message),
        TestDriver(pipeline(stream_stream_join, **arguments)),
    ):
        pass


# --- table-table -------------------------------------------------------------------------------

# The inputs of joins.json's "table table left|right|inner|outer join" cases.
TABLES = [
    (LEFT, "0", row("zero", 0), 0),
    (RIGHT, "0", f("blah", 50), 10_000),
    (LEFT, "10", row("100", 5), 11_000),
    (LEFT, "0", row("foo", 100), 13_000),
    (RIGHT, "0", f("a", 10), 15_000),
]


def table_join(kind: str, **kw: Any):
    return pipeline(table_table_join, kind=kind, **kw)


def test_table_left_join():
    """joins.json "table table left join": every left update emits, with the right row current
    then; a right update re-emits the left row; the timestamp is the later of the two rows'."""
    records = [
        *TABLES,
        (LEFT, "0", row("bar", 99), 16_000),
        (LEFT, "90", row("ninety", 90), 17_000),
    ]
    assert run(table_join("left"), records) == [
        ("0", row("zero", 0), None, 0),
        ("0", row("zero", 0), f("blah", 50), 10_000),
        ("10", row("100", 5), None, 11_000),
        ("0", row("foo", 100), f("blah", 50), 13_000),
        ("0", row("foo", 100), f("a", 10), 15_000),
        ("0", row("bar", 99), f("a", 10), 16_000),
        ("90", row("ninety", 90), None, 17_000),
    ]


def test_table_right_join():
    """joins.json "table table right join": the mirror; a left row alone emits nothing."""
    records = [
        *TABLES,
        (LEFT, "0", row("bar", 99), 16_000),
        (LEFT, "90", row("ninety", 90), 17_000),
        (RIGHT, "7", f("b", 20), 18_000),
    ]
    assert run(table_join("right"), records) == [
        ("0", row("zero", 0), f("blah", 50), 10_000),
        ("0", row("foo", 100), f("blah", 50), 13_000),
        ("0", row("foo", 100), f("a", 10), 15_000),
        ("0", row("bar", 99), f("a", 10), 16_000),
        ("7", None, f("b", 20), 18_000),
    ]


def test_table_inner_and_outer_joins():
    """joins.json "table table inner join" and "table table outer join" (same inputs)."""
    records = [*TABLES, (RIGHT, "15", f("c", 20), 15_500), (LEFT, "0", row("bar", 99), 16_000)]
    joined = [
        ("0", row("zero", 0), f("blah", 50), 10_000),
        ("0", row("foo", 100), f("blah", 50), 13_000),
        ("0", row("foo", 100), f("a", 10), 15_000),
    ]
    assert run(table_join("inner"), records) == [*joined, ("0", row("bar", 99), f("a", 10), 16_000)]
    assert run(table_join("outer"), records) == [
        ("0", row("zero", 0), None, 0),
        joined[0],
        ("10", row("100", 5), None, 11_000),
        *joined[1:],
        ("15", None, f("c", 20), 15_500),
        ("0", row("bar", 99), f("a", 10), 16_000),
    ]


def test_table_inner_join_tombstones():
    """joins.json "table to table wrapped single field value schema on inputs" (INNER): a
    tombstone of a side whose other row exists deletes the joined row; with the other row
    gone, a tombstone emits nothing."""
    records = [
        (LEFT, "0", {"NAME": "a"}, 0),
        (RIGHT, "0", {"NAME": "b"}, 10),
        (LEFT, "0", {"NAME": None}, 20),
        (RIGHT, "0", {"NAME": None}, 30),
        (LEFT, "0", {"NAME": None}, 40),
        (LEFT, "0", None, 50),
        (RIGHT, "0", None, 60),
    ]
    assert run(table_join("inner"), records) == [
        ("0", {"NAME": "a"}, {"NAME": "b"}, 10),
        ("0", {"NAME": None}, {"NAME": "b"}, 20),
        ("0", {"NAME": None}, {"NAME": None}, 30),
        ("0", {"NAME": None}, {"NAME": None}, 40),
        ("0", "deleted", 50),
    ]


def test_table_inner_join_right_tombstone():
    """joins.json "table table join with where clause", before its WHERE: the right side's
    tombstone deletes the joined row 90."""
    records = [
        (LEFT, "90", row("ninety", 90), 17_000),
        (RIGHT, "90", f("b", 10), 18_000),
        (RIGHT, "90", None, 19_000),
    ]
    assert run(table_join("inner"), records) == [
        ("90", row("ninety", 90), f("b", 10), 18_000),
        ("90", "deleted", 19_000),
    ]


def test_table_left_join_tombstones():
    """joins.json "table-table - SR-enabled key format - with nulls" (LEFT): a right tombstone
    re-emits the left row alone; the left tombstone then deletes the row; a right row with no
    left row emits nothing."""
    records = [
        (LEFT, "0", {"NAME": "zero"}, 0),
        (RIGHT, "0", {"F1": "blah"}, 0),
        (RIGHT, "0", None, 0),
        (LEFT, "0", None, 0),
        (RIGHT, "0", {"F1": "foo"}, 0),
        (LEFT, "0", {"NAME": "goo"}, 0),
    ]
    assert run(table_join("left"), records) == [
        ("0", {"NAME": "zero"}, None, 0),
        ("0", {"NAME": "zero"}, {"F1": "blah"}, 0),
        ("0", {"NAME": "zero"}, None, 0),
        ("0", "deleted", 0),
        ("0", {"NAME": "goo"}, {"F1": "foo"}, 0),
    ]


def test_table_left_join_left_tombstone_with_right_row_deletes():
    """Kafka Streams' KTableKTableLeftJoin: a left tombstone deletes the joined row even while
    the right row exists; a tombstone of a key neither side has emits nothing."""
    records = [
        (LEFT, "0", {"NAME": "zero"}, 5),
        (RIGHT, "0", {"F1": "blah"}, 7),
        (LEFT, "0", None, 6),
        (LEFT, "1", None, 8),
    ]
    assert run(table_join("left"), records) == [
        ("0", {"NAME": "zero"}, None, 5),
        ("0", {"NAME": "zero"}, {"F1": "blah"}, 7),
        ("0", "deleted", 7),
    ]


def test_table_outer_join_deletes_when_the_last_row_goes():
    """Kafka Streams' KTableKTableOuterJoin: while one row remains a tombstone re-emits it;
    the last tombstone deletes the joined row; a tombstone of a key neither side has emits
    nothing."""
    records = [
        (LEFT, "0", {"NAME": "zero"}, 1),
        (RIGHT, "0", {"F1": "blah"}, 2),
        (LEFT, "0", None, 3),
        (RIGHT, "0", None, 4),
        (RIGHT, "0", None, 5),
    ]
    assert run(table_join("outer"), records) == [
        ("0", {"NAME": "zero"}, None, 1),
        ("0", {"NAME": "zero"}, {"F1": "blah"}, 2),
        ("0", None, {"F1": "blah"}, 3),
        ("0", "deleted", 4),
    ]
