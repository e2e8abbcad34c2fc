"""ksqlDB's ``ksql-test-runner`` cases (../shared/ksql-test-runner): ``python -m streams.ksql test``
passes every ``correct/*`` case and fails every ``incorrect/*`` one with what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.ksql.__main__ import main

CASES = Path(__file__).resolve().parents[2].parent / "shared" / "ksql-test-runner"


def run(case: Path) -> int:
    files = [case / "statements.sql", case / "input.json", case / "output.json"]
    return main(["test", "-s", str(files[0]), "-i", str(files[1]), "-o", str(files[2])])


def test_the_cases_are_there() -> None:
    assert len(list(CASES.glob("correct/*"))) == 5
    assert len(list(CASES.glob("incorrect/*"))) == 4


@pytest.mark.parametrize(
    "name",
    [
        "aggregate",
        "from_docs",
        "join",
        "simple_project_filter",
        "stream_no_keys",
    ],
)
def test_a_correct_case_passes(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(CASES / "correct" / name) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.strip() == "Test passed!"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("empty_input", "input.json has no input records"),
        ("expected_mismatch", 'Test failed: S1 record 0: key "101" != expected "1001"'),
        ("incorrect_input_format", "input.json is not JSON"),
        ("missing_field_in_output", 'output.json has no "outputs" field'),
    ],
)
def test_an_incorrect_case_fails_with_what_is_wrong(
    name: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(CASES / "incorrect" / name) == 1
    assert message in capsys.readouterr().err
