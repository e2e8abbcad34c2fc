"""``python -m streams.ksql`` with no command: an interactive shell, as the ksqlDB CLI's.

Statements end with ``;`` and may span lines; history is kept in ``KSQL_HISTORY_FILE``
(default ``~/.streams_ksql_history``). What the shell runs:

- ``SELECT ... EMIT CHANGES [LIMIT n];``: a push query (``query``), over the sources declared
  in this session and the files of ``RUN SCRIPT``;
- ``PRINT topic [FROM BEGINNING] [LIMIT n];``, ``SHOW|LIST STREAMS|TABLES|QUERIES|TOPICS;``,
  ``DESCRIBE name;``;
- ``CREATE [OR REPLACE] [SOURCE] STREAM|TABLE name (...) WITH (...);``: a source for this
  session's queries (checked at once; nothing is written to Kafka);
- ``SET 'auto.offset.reset' = 'earliest'|'latest';`` and ``UNSET``: where queries start;
- ``RUN SCRIPT 'file.sql';``: that file's streams and tables become sources;
- ``EXIT``, ``QUIT`` or Ctrl-D. Persistent queries run with ``python -m streams.ksql run``.

Each statement runs as ``python -m streams.ksql <command>`` in a child process, so Ctrl-C stops
the statement (a query cleans up after itself) and leaves the shell.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from streams.ksql.compiler import compile_sql
from streams.ksql.errors import KsqlError

PROMPT, MORE = "ksql> ", "   > "
KINDS = ("streams", "tables", "queries", "topics")
HELP = """\
SELECT ... EMIT CHANGES [LIMIT n];        a push query over this session's sources
PRINT topic [FROM BEGINNING] [LIMIT n];   a topic's records
SHOW | LIST  STREAMS | TABLES | QUERIES | TOPICS;   what `run` runs
DESCRIBE name;                            a stream's or table's columns
CREATE [OR REPLACE] [SOURCE] STREAM | TABLE name (...) WITH (...);   a source for queries
SET 'auto.offset.reset' = 'earliest' | 'latest';  UNSET 'auto.offset.reset';
RUN SCRIPT 'file.sql';                    that file's streams and tables become sources
EXIT;  (or QUIT, Ctrl-D)     Persistent queries: python -m streams.ksql run FILE.sql"""

_WORDS = re.compile(r"\s+")
_PRINT = re.compile(
    r"PRINT\s+('(?P<quoted>[^']+)'|(?P<bare>[^\s;]+))(?P<begin>\s+FROM\s+BEGINNING)?"
    r"(\s+LIMIT\s+(?P<limit>\d+))?\s*$",
    re.IGNORECASE,
)
_SET = re.compile(r"SET\s+'auto\.offset\.reset'\s*=\s*'(?P<value>earliest|latest)'\s*$", re.I)
_UNSET = re.compile(r"UNSET\s+'auto\.offset\.reset'\s*$", re.I)
_RUN_SCRIPT = re.compile(r"RUN\s+SCRIPT\s+'(?P<path>[^']+)'\s*$", re.I)
_SOURCE = re.compile(r"CREATE\s+(OR\s+REPLACE\s+)?(SOURCE\s+)?(STREAM|TABLE)\b", re.I)


@dataclass
class Session:
    """What this shell's statements have set up so far."""

    sources: list[str] = field(default_factory=list)  #: CREATE STREAM|TABLE statements
    files: list[Path] = field(default_factory=list)  #: RUN SCRIPT files
    earliest: bool = False


def statements(lines: Iterator[str]) -> Iterator[str]:
    """Complete statements from ``lines``: text up to each ``;`` outside quotes (ksqlDB's
    strings and quoted names), without it; ``exit``/``quit`` ends a statement on its own."""
    text, quote = "", ""
    for line in lines:
        if not text.strip() and line.strip().rstrip(";").lower() in ("exit", "quit"):
            yield "EXIT"
            return
        for char in line + "\n":
            if quote:
                quote = "" if char == quote else quote
            elif char in "'`\"":
                quote = char
            elif char == ";":
                if text.strip():
                    yield text.strip()
                text = ""
                continue
            text += char
    if text.strip():
        yield text.strip()


def command(statement: str, session: Session) -> list[str] | str:
    """The ``python -m streams.ksql`` arguments that run ``statement``, or what the shell says
    instead (a session statement taken, an error, help)."""
    words = _WORDS.split(statement.strip())
    head = words[0].upper()
    files = [arg for path in session.files for arg in ("--statements", str(path))]
    if head in ("SHOW", "LIST") and len(words) == 2 and words[1].lower() in KINDS:
        return ["show", words[1].lower()]
    if head == "DESCRIBE" and len(words) == 2:
        return ["describe", words[1]]
    if head == "PRINT":
        match = _PRINT.match(statement)
        if match is None:
            return "error: PRINT topic [FROM BEGINNING] [LIMIT n]"
        argv = ["print", match["quoted"] or match["bare"], *files]
        argv += ["--from-beginning"] if match["begin"] else []
        return argv + (["--limit", match["limit"]] if match["limit"] else [])
    if head == "SELECT":
        text = "".join(f"{source};\n" for source in session.sources) + statement + ";"
        return ["query", text, *files, *(["--from-beginning"] if session.earliest else [])]
    if (match := _SET.match(statement)) is not None:
        session.earliest = match["value"].lower() == "earliest"
        return f"Successfully changed local property 'auto.offset.reset' to '{match['value']}'."
    if _UNSET.match(statement):
        session.earliest = False
        return "Successfully unset local property 'auto.offset.reset'."
    if (match := _RUN_SCRIPT.match(statement)) is not None:
        path = Path(match["path"]).expanduser()
        if not path.is_file():
            return f"error: no file {path}"
        session.files.append(path)
        return f"Its streams and tables are sources of this session's queries: {path}"
    source = _SOURCE.match(statement)
    if source and not re.search(r"\bAS\s+SELECT\b", statement, re.I):
        try:
            compile_sql("".join(f"{s};\n" for s in [*session.sources, statement]))
        except KsqlError as exc:
            return f"error: {exc}"
        session.sources.append(statement)
        return f"{source[3].title()} created."
    if head == "HELP":
        return HELP
    if head in ("CREATE", "INSERT", "TERMINATE", "DROP"):
        return (
            "error: persistent queries run with `python -m streams.ksql run FILE.sql` (the "
            "shell runs SELECT, PRINT, SHOW, DESCRIBE and declares sources)"
        )
    return f"error: not a statement this shell runs: {statement[:60]!r} (HELP lists them)"


def _lines(interactive: bool) -> Iterator[str]:
    prompt = PROMPT
    while True:
        try:
            line = input(prompt if interactive else "")
        except EOFError:
            return
        except KeyboardInterrupt:  # at the prompt: drop what was typed, as the ksqlDB CLI
            print()
            prompt = PROMPT
            continue
        yield line
        prompt = MORE if line.strip() and not line.rstrip().endswith(";") else PROMPT


def _history() -> Callable[[], None]:
    """Load the history file; returns what saves it."""
    try:
        import readline
    except ImportError:  # no GNU readline: a shell without history
        return lambda: None
    path = Path(os.environ.get("KSQL_HISTORY_FILE", "~/.streams_ksql_history")).expanduser()
    if path.exists():
        readline.read_history_file(path)
    readline.set_history_length(1000)
    return lambda: readline.write_history_file(path)


def main() -> int:
    interactive = sys.stdin.isatty()
    save = _history() if interactive else (lambda: None)
    if interactive:
        print("streams.ksql shell: statements end with ';', HELP lists them, EXIT leaves.")
    session = Session()
    try:
        for statement in statements(_lines(interactive)):
            if statement == "EXIT":
                break
            argv = command(statement, session)
            if isinstance(argv, str):
                print(argv, flush=True)
                continue
            # Ctrl-C belongs to the statement's process while it runs, not to the shell.
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                subprocess.run([sys.executable, "-m", "streams.ksql", *argv], check=False)
            finally:
                signal.signal(signal.SIGINT, previous)
    finally:
        save()
    return 0
