"""ksqlDB's windowed query-validation cases, run record by record through the streams.windows
pipeline in the test driver where the statement maps onto it, else through its window engine.

Every applicable case is a test: it passes, or it is a strict xfail whose reason is one of the
deliberate differences tabled in tests/conformance/README.md (and a second test proves that the
difference is exactly the one explained). Cases the processors cannot express are counted in
``test_case_census`` so the totals stay visible, with the path each case took.
"""

from __future__ import annotations

import pytest
from qtt import (
    NotApplicable,
    classify,
    compare,
    driver_blocker,
    load_cases,
    parse,
    run_driver,
    run_engine,
)

STRICT_RETENTION = (
    "ksqlDB >= 0.29 strict retention: under EMIT FINAL a window older than stream time - "
    "(size + grace) is purged before it is emitted and never output; we emit every window "
    "that closes (nothing lost)"
)

#: Deliberate differences: case id -> reason. Keep in step with README.md's table.
EXPLAINED = {
    f"suppress::{name}": STRICT_RETENTION
    for name in (
        "should include out of order events before window end plus grace period passes",
        "should drop out of order event after window end plus grace period passes",
        "should handle null values",
        "should drop events with no key",
        "should support final results for tumbling windows",
        "should support final results for tumbling windows with large jump",
        "should support final results for hopping windows",
        "should suppress multiple keys",
        "should suppress after a filter WHERE clause",
    )
}


def _applicable():
    params = []
    for case in filter(_applies, load_cases()):
        marks = []
        if case.id in EXPLAINED:
            marks.append(pytest.mark.xfail(reason=EXPLAINED[case.id], strict=True))
        params.append(pytest.param(case, id=case.id, marks=marks))
    return params


def _on_driver_path():
    return [c for c in load_cases() if _applies(c) and driver_blocker(c) is None]


def _applies(case) -> bool:
    try:
        parse(case)
    except NotApplicable:
        return False
    return True


@pytest.mark.parametrize("case", _applicable())
def test_case_matches_ksqldb(case):
    assert compare(case) == []


@pytest.mark.parametrize("case", [c for c in load_cases() if c.id in EXPLAINED], ids=lambda c: c.id)
def test_explained_difference_is_only_strict_retention(case):
    """With ksqlDB's purge imitated, the case passes: the explanation is the whole difference.

    Purging is an engine option the app does not offer, so this runs on the engine; the next
    test shows the pipeline's output is the engine's, so the explanation covers both paths.
    """
    assert compare(case, strict_retention=True) == []


@pytest.mark.parametrize("case", _on_driver_path(), ids=lambda c: c.id)
def test_pipeline_outputs_are_the_engines(case):
    """Through the whole windows app (validation, repartition, state, topics) a case gives
    exactly what the engine alone gives: nothing lost or altered on the way."""
    assert run_driver(case) == run_engine(case)


def test_case_census():
    """The totals reported in README.md; a new or changed case file shows up here."""
    outcome = classify(load_cases())
    failed = {case.id for case, _path, _detail in outcome["failed"]}
    assert failed == set(EXPLAINED)
    assert (len(outcome["passed"]), len(outcome["failed"]), len(outcome["n/a"])) == (21, 9, 209)
    by_path = {
        status: sum(path == "driver" for _case, path, _detail in rows)
        for status, rows in outcome.items()
    }
    # Passed and failed through the driver; the rest of those ran on the engine.
    assert (by_path["passed"], by_path["failed"]) == (11, 6)
