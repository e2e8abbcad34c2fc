"""docs/reference.md is generated from the code, and says what the code does now.

The reference lists every environment variable the apps read and the ``--help`` of every
command-line tool (src/stack/reference.py). A new flag or variable fails the first test here
until the reference is regenerated, so the documentation cannot fall behind the code.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stack import reference

FIX = f"run `{reference.REGENERATE}` and commit docs/reference.md"


@pytest.fixture(scope="module")
def generated() -> str:
    # Runs every tool's --help once (a few seconds); the tests below share the text.
    return reference.render()


def _section(text: str, command: str) -> str:
    heading = f"### `{command}`\n"
    assert heading in text, f"no section for {command}"
    return text.split(heading, 1)[1].split("\n### ", 1)[0]


def test_docs_reference_is_what_the_code_generates_now(generated: str) -> None:
    diff = reference.stale_diff(reference.REFERENCE, generated)
    shown = diff if len(diff) < 6000 else diff[:6000] + "\n[... diff cut ...]"
    assert not diff, f"docs/reference.md is stale: {FIX}.\n{shown}"


def test_the_variables_the_processors_read_are_listed_with_their_defaults(
    generated: str,
) -> None:
    reads = reference.discover_env_reads(reference.app_files())
    for name in (
        "WINDOWS_GRACE_MS",
        "WINDOWS_TUMBLING_MS",  # read in a loop over a table of flags
        "WINDOWS_CACHE_MS",  # the second and third templated reads of add_emit_arguments
        "COUNTRY_EMIT",
        "KAFKA_BOOTSTRAP_SERVERS",
        "STREAMS_PURGE_INTERVAL_S",
        "TOPIC_PAGEVIEWS",
    ):
        assert name in reads, f"{name} not discovered: the scanner misses a way of reading env"
        assert f"| `{name}` |" in generated, f"{name} missing from the reference: {FIX}"
    shown = {name: reference.default_text(read) for name, read in reads.items()}
    assert shown["KAFKA_BOOTSTRAP_SERVERS"] == "`127.0.0.1:9092`"
    assert shown["WINDOWS_TUMBLING_MS"] == "`300000`"  # 5 * MINUTE_MS, imported
    assert shown["WINDOWS_HOP_MS"] == "`60000`"
    assert shown["COUNTRY_EMIT"] == "`changes`"
    assert shown["WINDOWS_GRACE_MS"] == "empty"
    assert shown["WINDOWS_CONSUMER_GROUP"] == "`pageview-streams-windows`"
    assert shown["MYSQL_PASSWORD"] == "none"


def test_the_help_of_streams_windows_shows_every_flag(generated: str) -> None:
    section = _section(generated, "python -m streams.windows")
    for flag in (
        "--tumbling-ms",
        "--grace-ms",
        "--emit",
        "--cache-ms",
        "--consumer-group",
        "--commit-interval",
        "--processing-guarantee",
        "--purge-interval",
    ):
        assert flag in section, f"streams.windows {flag} missing from the reference: {FIX}"


def test_every_command_line_tool_is_found_where_it_lives() -> None:
    clis = reference.discover_clis(reference.cli_files())
    shown = {cli.shown for cli in clis}
    expected = {
        "python -m streams",
        "python -m streams.windows",
        "python -m streams.country",
        "python -m streams.users",
        "python -m streams.peek",
        "python -m contracts.topics",
        "python -m producers.events",
        "python -m producers.users",
        "python -m producers.users_source",
        "python -m stack",
        "python -m stack.reference",
        "python -m bench",  # bench/__main__.py runs bench.run's main
    }
    assert expected <= shown, f"not found: {sorted(expected - shown)}"
    # Wherever the Pinot code lives (pinot/ or src/), its setup command is found.
    assert any("pinot" in cli.source and cli.shown.endswith("setup") for cli in clis), shown
    # A module with a main but no parser (the Streamlit page) is not a command-line tool.
    assert not any(cli.source.endswith("dashboard/app.py") for cli in clis)


def test_the_reference_is_the_same_on_any_machine(generated: str) -> None:
    assert str(reference.ROOT) not in generated
    assert str(Path.home()) not in generated
    reads = reference.discover_env_reads(reference.app_files())
    assert reference.render_env(reads) == reference.render_env(
        reference.discover_env_reads(reference.app_files())
    )
    names = [line.split("`")[1] for line in generated.splitlines() if line.startswith("| `")]
    assert names == sorted(names)


def test_scanner_finds_loop_tables_and_every_templated_read(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text(
        "import os\n"
        "MINUTE = 60_000\n"
        "class Config:\n"
        "    size_ms: int = 5 * MINUTE\n"
        "def env(name, default):\n"
        "    return os.environ.get(name, '') or default\n"
        "def flags(prefix):\n"
        "    env(f'{prefix}_EMIT', 'changes')\n"
        "    env(f'{prefix}_CACHE_MS', 2 * 1000)\n"
        "    env(f'{prefix}_GROUP', f'group-{prefix.lower()}')\n"
        "def sizes():\n"
        "    for flag, var, default in [\n"
        "        ('--size-ms', 'W_SIZE_MS', Config.size_ms),\n"
        "        ('--gap-ms', 'W_GAP_MS', MINUTE),\n"
        "    ]:\n"
        "        env(var, default)\n"
        "flags('W')\n"
        "def each(prefixes):\n"
        "    for prefix in prefixes:\n"
        "        flags(prefix)\n",
        encoding="utf-8",
    )
    reads = reference.discover_env_reads([source])
    shown = {name: reference.default_text(read) for name, read in reads.items()}
    assert shown == {
        "W_EMIT": "`changes`",
        "W_CACHE_MS": "`2000`",
        "W_GROUP": "`group-w`",  # a default built from the same parameter
        "W_SIZE_MS": "`300000`",
        "W_GAP_MS": "`60000`",
        # Called with a name not known before run time: recorded as patterns, not lost.
        "*_EMIT": "`changes`",
        "*_CACHE_MS": "`2000`",
        "*_GROUP": "computed: `f'group-{prefix.lower()}'`",
    }


def test_check_fails_with_a_diff_and_the_fix_when_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(reference, "render", lambda: "# Reference\nnew flag\n")
    target = tmp_path / "reference.md"
    target.write_text("# Reference\nold flag\n", encoding="utf-8")
    assert reference.main(["--check", "--output", str(target)]) == 1
    out = capsys.readouterr()
    assert "-old flag" in out.out and "+new flag" in out.out
    assert reference.REGENERATE in out.err
    assert reference.main(["--write", "--output", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == "# Reference\nnew flag\n"
    assert reference.main(["--check", "--output", str(target)]) == 0
