"""streams.country through the in-memory driver: ksqlDB's stream-table join (the user's
current row when the view is processed), per-country tumbling counts and average age."""

from __future__ import annotations

import pytest

from streams.country import CountryConfig, setup
from streams.testing import TestDriver

T0 = 1_700_000_100_000  # a multiple of 5 minutes
VIEWS, USERS, COUNTS, LATE = "topic1_PageView", "topic4", "topic5", "pageview_streams_late"
DLQ = "pageview_streams_dead_letter"


class Country:
    def __init__(self, driver: TestDriver) -> None:
        self.driver = driver
        self.sessions = 0

    def user(self, user_id: int, country: str, age: int, ts: int = T0 - 1) -> None:
        row = {
            "user_id": user_id,
            "age": age,
            "gender": "Male",
            "country": country,
            "subscription": "Gold",
        }
        self.driver.pipe(USERS, str(user_id), row, timestamp=ts)

    def delete(self, user_id: int, ts: int = T0) -> None:
        self.driver.pipe(USERS, str(user_id), None, timestamp=ts)

    def view(self, user_id: int, ts: int) -> None:
        self.sessions += 1
        session = f"s{self.sessions}"
        body = {"session_id": session, "user_id": user_id, "source": "Inbox", "event_timestamp": ts}
        self.driver.pipe(VIEWS, session, body, timestamp=ts)

    def counts(self) -> list[tuple]:
        return [
            (r.key, r.value["pageview_count"], r.value["average_age"], r.value["window_end"])
            for r in self.driver.read(COUNTS)
        ]


def make(config: CountryConfig):
    with TestDriver(lambda app: setup(app, config), partitions=5) as driver:
        yield Country(driver)


@pytest.fixture
def left():
    yield from make(CountryConfig())


@pytest.fixture
def inner():
    yield from make(CountryConfig(join="inner"))


END = T0 + 300_000


def test_views_are_counted_per_country_with_the_average_age(left):
    left.user(1, "Thailand", 30)
    left.user(2, "Thailand", 41)
    left.user(3, "Vietnam", 25)
    left.view(1, T0)
    left.view(2, T0 + 10)
    left.view(3, T0 + 20)
    left.view(2, T0 + 299_999)  # last ms of the window
    left.view(1, T0 + 300_000)  # first ms of the next
    assert left.counts() == [
        (f"Thailand|{T0}", 1, 30.0, END),
        (f"Thailand|{T0}", 2, 35.5, END),
        (f"Vietnam|{T0}", 1, 25.0, END),
        (f"Thailand|{T0}", 3, (30 + 41 + 41) / 3, END),
        (f"Thailand|{END}", 1, 30.0, END + 300_000),
    ]


def test_output_rows_carry_the_country_and_window_bounds(left):
    left.user(1, "Singapore", 50)
    left.view(1, T0 + 5)
    [record] = left.driver.read(COUNTS)
    assert record.value == {
        "country": "Singapore",
        "window_start": T0,
        "window_end": END,
        "pageview_count": 1,
        "average_age": 50.0,
    }
    assert record.timestamp == T0 + 5


def test_left_join_counts_a_view_without_a_user_as_unknown(left):
    left.view(9, T0)
    left.user(1, "Thailand", 30)
    left.view(1, T0 + 1)
    assert left.counts() == [
        (f"unknown|{T0}", 1, None, END),
        (f"Thailand|{T0}", 1, 30.0, END),
    ]


def test_inner_join_writes_a_view_without_a_user_to_the_late_topic(inner):
    inner.view(9, T0)
    inner.user(1, "Thailand", 30)
    inner.view(1, T0 + 1)
    assert inner.counts() == [(f"Thailand|{T0}", 1, 30.0, END)]
    [excluded] = inner.driver.read(LATE)
    assert excluded.key == "s1"
    assert excluded.value["pageview"]["user_id"] == 9
    assert excluded.value["reason"] == "no cleaned user 9 (INNER join)"


def test_a_later_user_update_does_not_rewrite_earlier_results(left):
    left.user(1, "Thailand", 30)
    left.view(1, T0)
    left.user(1, "Vietnam", 31, ts=T0 + 1)
    left.view(1, T0 + 2)
    assert left.counts() == [(f"Thailand|{T0}", 1, 30.0, END), (f"Vietnam|{T0}", 1, 31.0, END)]


def test_a_deleted_user_is_unknown_afterwards(left):
    left.user(1, "Thailand", 30)
    left.view(1, T0)
    left.delete(1, ts=T0 + 1)
    left.view(1, T0 + 2)
    assert left.counts() == [(f"Thailand|{T0}", 1, 30.0, END), (f"unknown|{T0}", 1, None, END)]


def test_the_join_state_survives_a_commit(left):
    left.user(1, "Thailand", 30)
    left.driver.commit()
    left.view(1, T0)
    left.driver.commit()
    left.view(1, T0 + 1)
    assert [c[1] for c in left.counts()] == [1, 2]


def test_views_are_repartitioned_by_user_id_like_the_table(left):
    """The table row and the view meet on the partition murmur2 gives the user_id."""
    for user_id in range(1, 21):
        left.user(user_id, "Thailand", 20 + user_id)
    for user_id in range(1, 21):
        left.view(user_id, T0 + user_id)
    assert [c[1] for c in left.counts()] == list(range(1, 21))


def test_a_view_too_late_for_its_window_goes_to_the_late_topic():
    for country in make(CountryConfig(grace_ms=60_000)):
        country.user(1, "Thailand", 30)
        country.view(1, T0 + 900_000)
        country.view(1, T0)  # its window closed 9 minutes ago, grace 1 minute
        assert [c[1] for c in country.counts()] == [1]
        [late] = country.driver.read(LATE)
        assert late.value["window"] == "tumbling"
        assert "window end <= stream time - grace" in late.value["reason"]


def test_bad_page_views_go_to_the_dead_letter_topic(left):
    left.driver.pipe(VIEWS, "s1", b"{oops")
    left.user(1, "Thailand", 30)
    left.view(1, T0)
    [dead] = left.driver.read(DLQ)
    assert dict(dead.headers)["error.type"] == b"MalformedJson"
    assert dict(dead.headers)["processor"] == b"streams.country"
    assert [c[1] for c in left.counts()] == [1]
