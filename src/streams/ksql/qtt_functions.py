"""The test-only functions ksqlDB's query-validation cases call, as ksqlDB's test suite
defines them; registered by the conformance runner (importing this module), never by the apps.
They are also an example of :func:`streams.ksql.functions.udf`: one line of Python each."""

from __future__ import annotations

from typing import Any

from streams.ksql.functions import Int, udf


@udf("BAD_UDF")
def bad_udf(value: Any) -> Int:
    """Always fails: a processing error, so its expression is NULL."""
    raise RuntimeError(f"BAD_UDF({value}) fails, as ksqlDB's test function does")


@udf("WHENCONDITION")
def when_condition(value: bool, should_be_evaluated: bool) -> bool:
    """``value``; fails if CASE evaluates it when it should not (CASE must be lazy)."""
    if not should_be_evaluated:
        raise RuntimeError("WHENCONDITION evaluated although it should not be")
    return value


@udf("WHENRESULT")
def when_result(value: Int, should_be_evaluated: bool) -> Int:
    """``value``; fails if CASE evaluates it when it should not."""
    if not should_be_evaluated:
        raise RuntimeError("WHENRESULT evaluated although it should not be")
    return value
