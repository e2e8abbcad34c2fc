"""ksqlDB's query-validation cases (../shared/ksql-qtt, 1,046 cases) through ``streams.ksql``.

Every case must end as ``ksql_expected.json`` says: a case not listed there must pass; a listed
one is failed or not applicable, with the reason. A regression fails this test, and so does an
improvement (so the file, and the table in docs/ksql.md, are updated with it):

    python tests/conformance/test_ksql_conformance.py --write
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path

from streams.ksql import conformance

EXPECTED = Path(__file__).with_name("ksql_expected.json")
TABLE = Path(__file__).resolve().parents[2] / "docs" / "ksql.md"


@cache
def results() -> list[conformance.Result]:
    return [conformance.run_case(case) for case in conformance.load_cases()]


def expected() -> dict[str, dict[str, str]]:
    return json.loads(EXPECTED.read_text())


def test_the_whole_corpus_is_run() -> None:
    assert len(results()) == 1046
    assert len({r.case.file for r in results()}) == 52


def test_every_case_ends_as_recorded() -> None:
    known = expected()
    changed = []
    for result in results():
        want = known.get(result.case.path, {"status": conformance.PASSED})["status"]
        if result.status != want:
            changed.append(f"{result.case.path}: {want} -> {result.status} ({result.detail})")
    assert not changed, (
        f"{len(changed)} case(s) changed; if intended, run "
        f"`python {Path(__file__).relative_to(Path.cwd())} --write`:\n" + "\n".join(changed[:40])
    )


def test_nothing_fails_or_is_skipped_without_a_reason() -> None:
    assert all(entry["reason"].strip() for entry in expected().values())


def test_the_documented_table_is_current() -> None:
    assert conformance.table(results()) in TABLE.read_text()


def write() -> None:
    """Record the current results (the non-passing cases with their reasons) and the table."""
    entries = {
        r.case.path: {"status": r.status, "reason": r.detail}
        for r in results()
        if r.status != conformance.PASSED
    }
    EXPECTED.write_text(json.dumps(entries, indent=1, sort_keys=True) + "\n")
    text = TABLE.read_text()
    start, end = text.index("<!-- table -->"), text.index("<!-- /table -->")
    TABLE.write_text(text[: start + 14] + "\n" + conformance.table(results()) + "\n" + text[end:])


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        raise SystemExit(f"usage: python {sys.argv[0]} --write")
    write()
