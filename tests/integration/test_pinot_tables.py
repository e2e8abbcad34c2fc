"""Known rows through Kafka into real Pinot tables, read back with the dashboard's queries.

Each test writes committed transactions, one aborted transaction that must never show
(Pinot consumes read_committed), and a later committed update: a window whose count changes
(upsert) and, for sessions, a session merged away (retracted with deleted=true).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from clients.settings import PinotSettings
from contracts.records import SOURCES
from dashboard.queries import ChartData, DashboardQueries
from pinot.client import PinotBroker, PinotController
from pinot.kafka_load import TransactionalWriter
from pinot.provision import temporary_tables, unique_specs
from pinot.tables import TableSpec

pytestmark = pytest.mark.integration

MIN = 60_000
#: Recent windows so that the dashboard's default "Last hour" and Pinot's retention keep them.
T = (int(time.time() * 1000) // (5 * MIN) - 2) * 5 * MIN


@dataclass
class Table:
    spec: TableSpec
    writer: TransactionalWriter
    queries: DashboardQueries


@pytest.fixture
def table(
    kafka: str, pinot: PinotSettings, make_topic: Callable[..., str], request: pytest.FixtureRequest
) -> Iterator[Table]:
    kind = request.param
    # One partition orders the aborted transaction before the next commit, so once that commit
    # is visible Pinot has provably consumed past the aborted records.
    specs = unique_specs("it", {kind: make_topic(f"pinot-{kind}", partitions=1)})
    broker = PinotBroker(pinot.broker_url)
    with (
        temporary_tables(PinotController(pinot.controller_url), broker, specs.values()),
        TransactionalWriter(kafka, specs[kind]) as writer,
    ):
        yield Table(specs[kind], writer, DashboardQueries(broker, specs))


def records(data: ChartData) -> list[dict[str, Any]]:
    rows = data.frame.to_dict("records")
    return [
        {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()}
        for r in rows
    ]


def eventually(fetch: Callable[[], ChartData], expected: list[dict[str, Any]]) -> None:
    """Pinot ingests asynchronously: poll until the query returns exactly ``expected``."""
    deadline = time.monotonic() + 90
    while True:
        got = records(fetch())
        if got == expected or time.monotonic() > deadline:
            assert got == expected
            return
        time.sleep(0.5)


def source_row(source: str, start: int, count: int, length: int = 5 * MIN) -> dict[str, Any]:
    return {
        "source": source,
        "window_start": start,
        "window_end": start + length,
        "pageview_count": count,
    }


def shown(source: str, start: int, count: int) -> dict[str, Any]:
    return {"window_start": start, "source": source, "pageview_count": count}


@pytest.mark.parametrize("table", ["tumbling", "hopping"], indirect=True)
def test_window_counts_upsert_and_aborted_writes_never_show(table: Table) -> None:
    fetch = getattr(table.queries, table.spec.kind)
    table.writer.write(
        [
            source_row("Homepage", T, 1),
            source_row("Homepage", T, 2),  # the same window updated in one transaction
            source_row("Inbox", T, 4),
            source_row("Homepage", T + 5 * MIN, 1),
        ]
    )
    eventually(
        lambda: fetch(0, SOURCES),
        [shown("Homepage", T, 2), shown("Inbox", T, 4), shown("Homepage", T + 5 * MIN, 1)],
    )

    # Aborted: an update of an existing window and a window that must never appear.
    table.writer.write([source_row("Homepage", T, 99), source_row("External", T, 50)], commit=False)
    table.writer.write([source_row("Homepage", T, 3), source_row("External", T + 5 * MIN, 6)])
    final = [
        shown("Homepage", T, 3),  # upserted: 2 -> 3, never the aborted 99, never 2 + 3
        shown("Inbox", T, 4),
        shown("External", T + 5 * MIN, 6),
        shown("Homepage", T + 5 * MIN, 1),
    ]
    eventually(lambda: fetch(0, SOURCES), final)
    # Filters as the dashboard passes them: a source subset and a time range start.
    assert records(fetch(0, ["Inbox", "External"])) == [final[1], final[2]]
    assert records(fetch(T + 1, SOURCES)) == final[2:]


def session_row(
    source: str, start: int, end: int, count: int, deleted: bool = False
) -> dict[str, Any]:
    return {
        "source": source,
        "window_start": start,
        "window_end": end,
        "pageview_count": count,
        "deleted": deleted,
    }


@pytest.mark.parametrize("table", ["session"], indirect=True)
def test_merged_session_disappears(table: Table) -> None:
    fetch = table.queries.session
    table.writer.write(
        [
            session_row("Homepage", T, T + 2 * MIN, 2),
            session_row("Homepage", T + 8 * MIN, T + 8 * MIN, 1),
            session_row("Inbox", T, T + MIN, 1),
        ]
    )
    eventually(
        lambda: fetch(0, SOURCES),
        [shown("Homepage", T, 2), shown("Inbox", T, 1), shown("Homepage", T + 8 * MIN, 1)],
    )

    # Aborted: the Inbox session growing to 7 (the commit below grows it to 2) and a session
    # that must never appear.
    table.writer.write(
        [session_row("Inbox", T, T + 3 * MIN, 7), session_row("External", T, T, 9)], commit=False
    )
    # A page view at T+5min bridges the two Homepage sessions: the later one is retracted
    # under its old key and the earlier one grows to cover both.
    table.writer.write(
        [
            session_row("Homepage", T + 8 * MIN, T + 8 * MIN, 0, deleted=True),
            session_row("Homepage", T, T + 8 * MIN, 4),
            session_row("Inbox", T, T + 3 * MIN, 2),
        ]
    )
    eventually(lambda: fetch(0, SOURCES), [shown("Homepage", T, 4), shown("Inbox", T, 2)])


def country_row(country: str, start: int, count: int, age: float | None) -> dict[str, Any]:
    return {
        "country": country,
        "window_start": start,
        "window_end": start + 5 * MIN,
        "pageview_count": count,
        "average_age": age,
    }


def country_shown(country: str, start: int, count: int, age: float | None) -> dict[str, Any]:
    return {"window_start": start, "country": country, "pageview_count": count, "average_age": age}


@pytest.mark.parametrize("table", ["country"], indirect=True)
def test_country_counts_and_average_age(table: Table) -> None:
    fetch = table.queries.country
    table.writer.write(
        [
            country_row("France", T, 3, 30.0),
            country_row("unknown", T, 2, None),  # users not in the table: no age
            country_row("Germany", T, 1, 40.0),
        ]
    )
    eventually(
        lambda: fetch(0),
        [
            country_shown("France", T, 3, 30.0),
            country_shown("Germany", T, 1, 40.0),
            country_shown("unknown", T, 2, None),
        ],
    )
    table.writer.write(
        [country_row("France", T, 100, 99.0), country_row("Atlantis", T, 7, 70.0)], commit=False
    )
    table.writer.write(
        [country_row("France", T, 5, 32.5), country_row("Spain", T + 5 * MIN, 1, 20.0)]
    )
    final = [
        country_shown("France", T, 5, 32.5),
        country_shown("Germany", T, 1, 40.0),
        country_shown("unknown", T, 2, None),
        country_shown("Spain", T + 5 * MIN, 1, 20.0),
    ]
    eventually(lambda: fetch(0), final)
    assert records(fetch(T + 1)) == final[3:]
