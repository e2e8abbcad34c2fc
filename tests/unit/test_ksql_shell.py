"""The interactive shell's reading of statements and what it runs for each."""

from __future__ import annotations

from pathlib import Path

from streams.ksql.shell import Session, command, statements

SOURCE = (
    "CREATE STREAM pv (session_id VARCHAR KEY, source VARCHAR) "
    "WITH (kafka_topic='topic1', value_format='json')"
)


def test_statements_end_at_semicolons_outside_quotes_and_span_lines() -> None:
    lines = ["SHOW TOPICS; describe pv;", "SELECT 'a;b' AS x", "  FROM pv EMIT CHANGES;", "quit"]
    assert list(statements(iter(lines))) == [
        "SHOW TOPICS",
        "describe pv",
        "SELECT 'a;b' AS x\n  FROM pv EMIT CHANGES",
        "EXIT",
    ]
    assert list(statements(iter(["PRINT t", "LIMIT 1"]))) == ["PRINT t\nLIMIT 1"]  # Ctrl-D


def test_catalog_and_print_statements_become_commands() -> None:
    session = Session()
    assert command("SHOW STREAMS", session) == ["show", "streams"]
    assert command("list topics", session) == ["show", "topics"]
    assert command("DESCRIBE pv", session) == ["describe", "pv"]
    assert command("PRINT 'topic1' FROM BEGINNING LIMIT 3", session) == [
        "print", "topic1", "--from-beginning", "--limit", "3",
    ]  # fmt: skip
    assert command("print topic1", session) == ["print", "topic1"]
    assert command("PRINT", session).startswith("error: PRINT topic")


def test_queries_read_the_sessions_sources_scripts_and_offset_setting(tmp_path: Path) -> None:
    session = Session()
    assert command(SOURCE, session) == "Stream created."
    script = tmp_path / "more.sql"
    script.write_text(SOURCE.replace("pv", "other") + ";")
    assert command(f"RUN SCRIPT '{script}'", session).endswith(str(script))
    assert command("SET 'auto.offset.reset' = 'earliest'", session).startswith("Successfully")
    argv = command("SELECT source FROM pv EMIT CHANGES LIMIT 2", session)
    assert argv == [
        "query",
        f"{SOURCE};\nSELECT source FROM pv EMIT CHANGES LIMIT 2;",
        "--statements",
        str(script),
        "--from-beginning",
    ]
    command("UNSET 'auto.offset.reset'", session)
    assert "--from-beginning" not in command("SELECT * FROM pv EMIT CHANGES", session)


def test_what_the_shell_cannot_run_is_said_not_attempted() -> None:
    session = Session()
    assert command("CREATE STREAM broken (", session).startswith("error: line 1")
    assert session.sources == []
    assert "python -m streams.ksql run" in command("CREATE TABLE t AS SELECT * FROM pv", session)
    assert command("RUN SCRIPT '/no/such.sql'", session) == "error: no file /no/such.sql"
    assert command("FROB", session).startswith("error: not a statement")
    assert "PRINT topic" in command("HELP", session)
