"""``python -m streams.ksql run``'s checks before anything starts, and how it splits a program
into processes (the run itself is tests/integration/test_ksql_run.py, on the native stack)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from contracts import topics
from streams.ksql import runner
from streams.ksql.__main__ import main
from streams.ksql.compiler import compile_sql
from streams.ksql.errors import KsqlError
from streams.testing import TestDriver

SOURCE = """CREATE STREAM pv (source STRING, n INT)
  WITH (KAFKA_TOPIC='pv', VALUE_FORMAT='JSON', PARTITIONS=3);
"""


def test_a_statement_it_cannot_run_is_named_with_file_line_and_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing may be contacted before the statements are checked: no broker listens here.
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    first = tmp_path / "a.sql"
    first.write_text(SOURCE)
    second = tmp_path / "b.sql"
    second.write_text("\n\nCREATE TABLE t AS SELECT nope, COUNT(*) FROM pv GROUP BY nope;\n")
    assert main(["run", str(first), str(second)]) == 1
    error = capsys.readouterr().err
    assert f"{second}:3: " in error
    assert "NOPE" in error
    assert "Statement: CREATE TABLE t AS SELECT nope" in error


def test_a_syntax_error_names_its_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sql"
    bad.write_text("CREATE STREAM (;")
    with pytest.raises(KsqlError, match=rf"^{bad}: line 1:"):
        runner.load([bad])


def test_each_pass_is_a_process_of_its_own(tmp_path: Path) -> None:
    file = tmp_path / "p.sql"
    file.write_text(
        SOURCE + "CREATE TABLE a AS SELECT source, COUNT(*) AS c FROM pv "
        "WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY source;\n"
        "CREATE TABLE b AS SELECT source, SUM(n) AS s FROM pv "
        "WINDOW HOPPING (SIZE 1 MINUTE, ADVANCE BY 30 SECONDS) GROUP BY source;\n"
        "CREATE STREAM big AS SELECT * FROM pv WHERE n > 10;\n"
    )
    found = runner.passes(runner.load([file]))
    assert [[q.id for q in p.queries] for p in found] == [["CTAS_A_0", "CTAS_B_1"], ["CSAS_BIG_2"]]
    assert found[0].name.startswith("CTAS_A_0-")
    assert found[1].name == "CSAS_BIG_2"


def test_a_record_from_the_far_future_is_a_dead_letter_not_a_refused_transaction() -> None:
    """The broker refuses a record timestamped more than an hour ahead of its clock, and with
    it the whole transaction, on every restart: `run` dead-letters it instead."""
    program = compile_sql(
        "CREATE STREAM v (s VARCHAR) WITH (KAFKA_TOPIC='v', VALUE_FORMAT='JSON');"
        "CREATE STREAM w AS SELECT * FROM v;"
    )
    now = int(time.time() * 1000)
    with TestDriver(lambda app: program.setup(app, max_future_ms=60_000)) as driver:
        driver.pipe("v", None, b'{"S": "now"}', timestamp=now)
        driver.pipe("v", b"k", b'{"S": "later"}', timestamp=now + 120_000)
        assert [r.raw_value for r in driver.read("W")] == [b'{"S":"now"}']
        [dead] = driver.read(topics.DEAD_LETTER)
    assert dead.raw_key == b"k"
    headers = dict(dead.headers)
    assert headers["error.type"] == b"FutureTimestamp"
    assert b"ahead of the wall clock" in headers["error"]
