"""Values reach the dashboard's SQL only as type-checked literals or allow-listed names."""

from __future__ import annotations

import pytest

from dashboard.queries import checked_since, checked_sources
from dashboard.sql import bind, literal


def test_literals_are_rendered_by_type() -> None:
    assert literal(42) == "42"
    assert literal(1.5) == "1.5"
    assert literal("O'Brien") == "'O''Brien'"
    assert literal(("Homepage", "Inbox")) == "'Homepage', 'Inbox'"
    assert literal(False) == "false"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), None, b"x", [], [1, 2], {"a": 1}])
def test_unexpected_values_are_refused(bad: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        literal(bad)  # type: ignore[arg-type]


def test_bind_fills_identifiers_and_values() -> None:
    sql = bind(
        "SELECT a FROM {table} WHERE t >= :since AND s IN (:sources) LIMIT :limit",
        {"table": "pageview_tumbling"},
        {"since": 5, "sources": ("Inbox",), "limit": 100},
    )
    assert sql == "SELECT a FROM pageview_tumbling WHERE t >= 5 AND s IN ('Inbox') LIMIT 100"


def test_bind_refuses_unsafe_identifiers_and_missing_values() -> None:
    with pytest.raises(ValueError, match="not a valid table identifier"):
        bind("SELECT 1 FROM {table}", {"table": "t; DROP TABLE x"}, {})
    with pytest.raises(KeyError, match=":since"):
        bind("SELECT 1 FROM t WHERE a >= :since", {}, {})


def test_sources_are_allow_listed_and_ordered() -> None:
    assert checked_sources(["External", "Homepage"]) == ("Homepage", "External")
    with pytest.raises(ValueError, match="unknown source"):
        checked_sources(["Homepage", "x') OR 1=1 --"])
    with pytest.raises(ValueError, match="at least one source"):
        checked_sources([])


@pytest.mark.parametrize("bad", [-1, "100", 1.5, True, None])
def test_time_range_start_must_be_a_non_negative_int(bad: object) -> None:
    with pytest.raises(ValueError, match="non-negative integer"):
        checked_since(bad)  # type: ignore[arg-type]
    assert checked_since(0) == 0
