"""Run ksqlDB's windowed query-validation cases (../shared/ksql-qtt) through our processors.

Each case's statements are parsed into a window configuration (kind, size, advance, gap, grace,
EMIT mode, grouping column, aggregates); inputs are fed in the given order and every output
record is compared with the expected one: key, window bounds, value (null = tombstone, which
our session retraction maps to) and timestamp.

Two paths, the first whenever the statement maps onto it:

- ``driver``: the real ``streams.windows`` pipeline (``setup()``: validation, dead letters,
  repartition by source, the stateful window step, output topics) in ``streams.testing``'s
  TestDriver, configured to the case's window and EMIT mode. It counts page views per
  ``source``, so the case must be COUNT(*) (plus WINDOWSTART/WINDOWEND) over string groups
  without WHERE; each input row becomes a page view whose ``source`` is the GROUP BY value.
- ``engine``: other aggregates, WHERE, non-string groups, and the strict-retention re-runs go
  straight to ``streams.operators.window_engine.WindowEngine``, the engine behind that
  pipeline, with the case's own aggregates.

A case neither can express (joins, expressions, UDAFs other than COUNT/SUM/AVG/MIN/MAX,
non-windowed tables, statements ksqlDB rejects) is "not applicable" with the reason.

``python tests/conformance/qtt.py`` prints the table of results with the path of each case.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts import topics as topic_names
from streams import windows
from streams.operators.window_engine import Aggregate, DictState, WindowEngine, WindowSpec
from streams.testing import TestDriver

#: The windowed case files of the brief; the join and filter files are not run here.
WINDOWED_FILES = (
    "tumbling-windows",
    "hopping-windows",
    "session-windows",
    "suppress",
    "window-bounds",
    "count",
    "sum",
    "average-udaf",
    "group-by",
)


def qtt_dir() -> Path:
    """``../shared/ksql-qtt`` beside the repository, or ``KSQL_QTT_DIR``."""
    if os.environ.get("KSQL_QTT_DIR"):
        return Path(os.environ["KSQL_QTT_DIR"])
    repo = Path(__file__).resolve().parents[2]
    return (repo.parent / "shared" / "ksql-qtt").resolve()


@dataclass
class Case:
    file: str
    name: str
    raw: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.file}::{self.name}"


def load_cases(files: tuple[str, ...] = WINDOWED_FILES) -> list[Case]:
    """Every case of ``files``; a case with ``formats`` is expanded once per format."""
    cases: list[Case] = []
    for file in files:
        for raw in json.loads((qtt_dir() / f"{file}.json").read_text())["tests"]:
            # "format" is a list in these files, like "formats"; either expands the case.
            formats = raw.get("formats") or raw.get("format") or [None]
            for fmt in formats:
                case = dict(raw)
                if fmt is not None:
                    case["statements"] = [s.replace("{FORMAT}", fmt) for s in raw["statements"]]
                name = raw["name"] if fmt is None else f"{raw['name']} - {fmt}"
                cases.append(Case(file, name, case))
    return cases


class NotApplicable(Exception):
    """The case uses something the windows processors do not offer."""


_UNITS_MS = {
    "MILLISECOND": 1,
    "SECOND": 1000,
    "MINUTE": 60_000,
    "HOUR": 3_600_000,
    "DAY": 86_400_000,
}
_DURATION = re.compile(r"(\d+)\s*(MILLISECOND|SECOND|MINUTE|HOUR|DAY)S?", re.I)
_QUERY = re.compile(
    r"CREATE\s+TABLE\s+(?P<out>\w+)\s+(?:WITH\s*\([^)]*\)\s*)?AS\s+SELECT\s+(?P<select>.+?)\s+"
    r"FROM\s+(?P<src>\w+)\s+WINDOW\s+(?P<kind>TUMBLING|HOPPING|SESSION)\s*\((?P<args>[^)]*)\)\s*"
    r"(?:WHERE\s+(?P<where>.+?)\s+)?GROUP\s+BY\s+(?P<group>.+?)"
    r"(?:\s+HAVING\s+(?P<having>.+?))?(?:\s+EMIT\s+(?P<emit>CHANGES|FINAL))?\s*;?\s*$",
    re.I | re.S,
)
_STREAM = re.compile(
    r"CREATE\s+STREAM\s+(?P<name>\w+)\s*\((?P<cols>.*)\)\s*WITH\s*\((?P<with>.*)\)\s*;?\s*$",
    re.I | re.S,
)
_AGG = re.compile(r"^(COUNT|SUM|AVG|MIN|MAX)\s*\(\s*(\*|1|\w*)\s*\)$", re.I)
_ALIAS = re.compile(r"^(?P<expr>.+?)\s+AS\s+(?P<alias>\w+)$", re.I | re.S)
_WHERE = re.compile(r"^(\w+)\s*=\s*('?)([^']*)\2$")


def _duration(text: str) -> int:
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise NotApplicable(f"unparsed duration {text!r}")
    return int(match.group(1)) * _UNITS_MS[match.group(2).upper()]


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return parts


@dataclass
class Column:
    """One value column of the output: an aggregate or a window bound."""

    name: str
    func: str  # COUNT, SUM, AVG, MIN, MAX, WINDOWSTART, WINDOWEND
    arg: str | None  # input column, None for COUNT(*)


@dataclass
class Query:
    output: str
    spec: WindowSpec
    emit: str
    group: str
    group_is_key: bool
    columns: list[Column]
    value_columns: list[str]  # input value columns in order (DELIMITED)
    delimited: bool
    where: tuple[str, str] | None


def parse(case: Case) -> Query:
    raw = case.raw
    if raw.get("expectedException"):
        raise NotApplicable("ksqlDB rejects the statement (expectedException)")
    statements = raw["statements"]
    if len(statements) != 2:
        raise NotApplicable("more than one source or query (joins, chained queries)")
    stream = _STREAM.match(statements[0].strip())
    if not stream:
        raise NotApplicable("input is not a plain CREATE STREAM")
    query = _QUERY.match(statements[1].strip())
    if not query:
        raise NotApplicable("not a windowed GROUP BY aggregation")
    if query["having"]:
        raise NotApplicable("HAVING clause")
    fmt = re.search(r"\b(?:value_)?format\s*=\s*'(\w+)'", stream["with"], re.I)
    if fmt is None or fmt.group(1).upper() == "KAFKA":
        raise NotApplicable("value format not JSON-like or DELIMITED")
    key_cols, value_cols = [], []
    for col in _split_top_level(stream["cols"]):
        words = col.split()
        if len(words) < 2 or "<" in col or "STRUCT" in col.upper():
            raise NotApplicable(f"column type not supported here: {col!r}")
        (key_cols if words[-1].upper() in {"KEY", "PRIMARY"} else value_cols).append(
            words[0].upper()
        )
    group = query["group"].strip().upper()
    if not re.fullmatch(r"\w+", group) or group.isdigit():
        raise NotApplicable(f"GROUP BY {query['group']!r} is not a single column")
    if group not in key_cols + value_cols:
        raise NotApplicable(f"GROUP BY column {group} not in the source")
    args = _split_top_level(query["args"])
    kind = query["kind"].upper()
    grace = None
    rest = []
    for arg in args:
        if arg.upper().startswith("GRACE PERIOD"):
            grace = _duration(arg[len("GRACE PERIOD") :])
        elif arg.upper().startswith("RETENTION"):
            raise NotApplicable("RETENTION clause")
        else:
            rest.append(arg)
    if kind == "SESSION":
        spec = WindowSpec.session(_duration(rest[0]), grace)
    else:
        sizes = {a.split()[0].upper(): a for a in rest}
        size = _duration(re.sub(r"^SIZE\s+", "", sizes["SIZE"], flags=re.I))
        if kind == "TUMBLING":
            spec = WindowSpec.tumbling(size, grace)
        else:
            advance = _duration(re.sub(r"^ADVANCE\s+BY\s+", "", sizes["ADVANCE"], flags=re.I))
            spec = WindowSpec.hopping(size, advance, grace)
    columns: list[Column] = []
    generated = 0
    for item in _split_top_level(query["select"]):
        alias_match = _ALIAS.match(item)
        expr, alias = (
            (alias_match["expr"].strip(), alias_match["alias"].upper())
            if alias_match
            else (item, None)
        )
        upper = expr.upper()
        if upper == group:
            continue  # the grouping column is the key, as in ksqlDB
        if upper in {"WINDOWSTART", "WINDOWEND"}:
            func, arg = upper, None
        elif agg := _AGG.match(expr):
            func, arg = agg.group(1).upper(), agg.group(2).upper()
            if arg in {"*", "1", ""}:
                if func != "COUNT":
                    raise NotApplicable(f"{expr}: only COUNT takes * or a literal")
                arg = None
        else:
            raise NotApplicable(f"select expression {expr!r} is not a supported aggregate")
        if alias is None:
            if func.startswith("WINDOW"):
                raise NotApplicable("unaliased window bound")
            alias = f"KSQL_COL_{generated}"
            generated += 1
        columns.append(Column(alias, func, arg))
    where = None
    if query["where"]:
        match = _WHERE.match(query["where"].strip())
        if not match:
            raise NotApplicable(f"WHERE {query['where']!r} is not column = literal")
        where = (match.group(1).upper(), match.group(3))
    return Query(
        output=query["out"].upper(),
        spec=spec,
        emit=(query["emit"] or "CHANGES").lower(),
        group=group,
        group_is_key=group in key_cols,
        columns=columns,
        value_columns=value_cols,
        delimited=fmt.group(1).upper() == "DELIMITED",
        where=where,
    )


def _aggregate(columns: list[Column]) -> Aggregate:
    """One accumulator per column; ``value`` is the input row (upper-case column names)."""

    def add_one(col: Column, acc: Any, row: dict[str, Any]) -> Any:
        if col.func.startswith("WINDOW"):
            return None
        if col.arg is None:
            return acc + 1
        item = row.get(col.arg)
        if item is None:
            return acc
        if col.func == "COUNT":
            return acc + 1
        if col.func == "SUM":
            return acc + item
        if col.func == "AVG":
            return [acc[0] + item, acc[1] + 1]
        if acc is None:
            return item
        return max(acc, item) if col.func == "MAX" else min(acc, item)

    def merge_one(col: Column, a: Any, b: Any) -> Any:
        if col.func in {"COUNT", "SUM"}:
            return a + b
        if col.func == "AVG":
            return [a[0] + b[0], a[1] + b[1]]
        if col.func in {"MIN", "MAX"}:
            present = [x for x in (a, b) if x is not None]
            pick = max if col.func == "MAX" else min
            return pick(present) if present else None
        return None

    def init_one(col: Column) -> Any:
        return {"COUNT": 0, "SUM": 0, "AVG": [0, 0]}.get(col.func)

    def result(acc: list) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for col, value in zip(columns, acc, strict=True):
            if col.func == "AVG":
                value = value[0] / value[1] if value[1] else None
            out[col.name] = value
        return out

    return Aggregate(
        init=lambda: [init_one(c) for c in columns],
        add=lambda acc, row: [add_one(c, a, row) for c, a in zip(columns, acc, strict=True)],
        merge=lambda a, b: [merge_one(c, x, y) for c, x, y in zip(columns, a, b, strict=True)],
        result=result,
    )


def _row(query: Query, value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if query.delimited:
        fields = [_number(f) for f in str(value).split(",")]
        return dict(zip(query.value_columns, fields, strict=False))
    return {k.upper(): v for k, v in value.items()}


def _number(text: str) -> Any:
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text or None


def _render(query: Query, value: dict[str, Any] | None, start: int, end: int) -> Any:
    if value is None:
        return None
    row = {}
    for col in query.columns:
        bound = {"WINDOWSTART": start, "WINDOWEND": end}.get(col.func)
        row[col.name] = bound if bound is not None else value[col.name]
    if query.delimited:
        return ",".join("" if v is None else str(v) for v in row.values())
    return row


def _output(query: Query, key: Any, value: Any, timestamp: int, start: int, end: int, kind: str):
    return {
        "topic": query.output,
        "key": key,
        "value": _render(query, value, start, end),
        "timestamp": timestamp,
        "window": {"start": start, "end": end, "type": "session" if kind == "session" else "time"},
    }


#: The engine's own fields in a window record (the query's columns are upper-case).
_BOUNDS = frozenset({"group", "window_start", "window_end", "deleted"})


def run_engine(case: Case, strict_retention: bool = False) -> list[dict[str, Any]]:
    """The case's inputs through the window engine alone, with the case's own aggregates."""
    query = parse(case)
    engine = WindowEngine(
        [query.spec], _aggregate(query.columns), query.emit, strict_retention=strict_retention
    )
    state = DictState()  # QTT inputs are one partition: one stream time
    outputs: list[dict[str, Any]] = []
    for record in case.raw["inputs"]:
        row = _row(query, record.get("value"))
        if row is None:
            continue  # a stream's null value is not a row
        group = _group(query, record, row)
        if group is None:
            continue  # ksqlDB drops rows with a NULL grouping key (processing log)
        if query.where and str(row.get(query.where[0])) != query.where[1]:
            continue
        results, _late = engine.process(state, group, row, record.get("timestamp", 0))
        for r in results:
            value = None if r.get("deleted") else {k: v for k, v in r.items() if k not in _BOUNDS}
            start, end, kind = r["window_start"], r["window_end"], engine.specs[r.route].kind
            outputs.append(_output(query, r["group"], value, r.timestamp, start, end, kind))
    return outputs


def _group(query: Query, record: dict[str, Any], row: dict[str, Any]) -> Any:
    return record.get("key") if query.group_is_key else row.get(query.group)


#: Added to every QTT event time on the driver path: page-view validation rejects times before
#: 2000 as absurd (seconds-for-ms bugs), and QTT's start at 0. 2024-01-01T00:00Z is a whole
#: number of days, so a window whose size and advance divide it keeps its alignment
#: (checked per case); outputs are shifted back before comparing.
EPOCH_SHIFT_MS = 1_704_067_200_000


def driver_blocker(case: Case) -> str | None:
    """Why the case cannot run through the streams.windows pipeline (None: it can)."""
    query = parse(case)
    for col in query.columns:
        if col.func not in {"COUNT", "WINDOWSTART", "WINDOWEND"} or (
            col.func == "COUNT" and col.arg is not None
        ):
            return f"{col.func}({col.arg or ''}): the windows app counts rows (COUNT(*)) only"
    if query.where:
        return "WHERE: the windows app has no filter"
    spec = query.spec
    if any(EPOCH_SHIFT_MS % ms for ms in (spec.size_ms, spec.advance_ms) if ms):
        return "window size or advance does not divide the event-time shift"
    if spec.kind == "hopping" and any(
        r.get("timestamp", 0) < spec.size_ms - spec.advance_ms for r in case.raw["inputs"]
    ):
        # Kafka Streams creates no window starting before epoch 0; after the shift they exist.
        return "hopping windows before epoch 0 (the event-time shift would create them)"
    for record in case.raw["inputs"]:
        row = _row(query, record.get("value"))
        group = None if row is None else _group(query, record, row)
        if group is not None and not _source(group):
            return f"GROUP BY value {group!r} has no text form for the app's source"
    return None


def _source(group: Any) -> str:
    """The page view's ``source`` for a GROUP BY value: strings as they are, numbers as text
    (the app's source is a string; outputs map the text back to the case's value)."""
    if isinstance(group, str):
        return group
    if isinstance(group, int | float) and not isinstance(group, bool):
        return str(group)
    return ""


def _windows_config(query: Query) -> windows.WindowsConfig:
    """The windows app configured to the case's window; the other two kinds keep defaults."""
    spec, sizes = query.spec, {}
    if spec.kind == "session":
        sizes = {"session_gap_ms": spec.gap_ms}
    elif spec.kind == "tumbling":
        sizes = {"tumbling_ms": spec.size_ms}
    else:
        sizes = {"hopping_ms": spec.size_ms, "hop_ms": spec.advance_ms}
    return windows.WindowsConfig(**sizes, grace_ms=spec.grace_ms, emit=query.emit)


def run_driver(case: Case) -> list[dict[str, Any]]:
    """The case's inputs as page views through the streams.windows pipeline in the driver."""
    query = parse(case)
    config = _windows_config(query)
    topic = {
        "tumbling": topic_names.TUMBLING,
        "hopping": topic_names.HOPPING,
        "session": topic_names.SESSION,
    }[query.spec.kind]
    outputs: list[dict[str, Any]] = []
    groups: dict[str, Any] = {}  # source -> the case's GROUP BY value
    with TestDriver(lambda app: windows.setup(app, config)) as driver:
        for i, record in enumerate(case.raw["inputs"]):
            row = _row(query, record.get("value"))
            event_ms = EPOCH_SHIFT_MS + record.get("timestamp", 0)
            view = None
            if row is not None:
                group = _group(query, record, row)
                # A NULL group becomes a page view without source: dead-lettered, where ksqlDB
                # drops it to its processing log.
                source = None if group is None else _source(group)
                groups[source] = group
                view = {
                    "session_id": f"qtt-{i}",
                    "user_id": 0,
                    "source": source,
                    "event_timestamp": event_ms,
                }
            driver.pipe(topic_names.PAGEVIEWS, f"qtt-{i}", view, timestamp=event_ms)
            for out in driver.read(topic):
                value = out.value
                start = value["window_start"] - EPOCH_SHIFT_MS
                end = value["window_end"] - EPOCH_SHIFT_MS
                counts = {
                    col.name: value[windows.COUNT_COLUMN]
                    for col in query.columns
                    if col.func == "COUNT"
                }
                outputs.append(
                    _output(
                        query,
                        groups[value["source"]],
                        None if value.get("deleted") else counts,
                        out.timestamp - EPOCH_SHIFT_MS,
                        start,
                        end,
                        query.spec.kind,
                    )
                )
            driver.read_all()  # the other window kinds, late and dead letters: not compared
    return outputs


def path(case: Case, strict_retention: bool = False) -> str:
    """``driver`` or ``engine (why not the driver)``; raises NotApplicable."""
    if strict_retention:
        return "engine (strict retention is an engine option, not the app's)"
    blocker = driver_blocker(case)
    return "driver" if blocker is None else f"engine ({blocker})"


def run(case: Case, strict_retention: bool = False) -> list[dict[str, Any]]:
    """Our output records for the case, in the QTT output shape, by the case's path."""
    if path(case, strict_retention) == "driver":
        return run_driver(case)
    return run_engine(case, strict_retention)


def expected(case: Case) -> list[dict[str, Any]]:
    """The expected outputs in the same shape (default timestamp 0, upper-case JSON fields)."""
    out = []
    for record in case.raw["outputs"]:
        value = record.get("value")
        if isinstance(value, dict):
            value = {k.upper(): v for k, v in value.items()}
        out.append(
            {
                "topic": record["topic"].upper(),
                "key": record.get("key"),
                "value": value,
                "timestamp": record.get("timestamp", 0),
                "window": record.get("window"),
            }
        )
    return out


def compare(case: Case, strict_retention: bool = False) -> list[str]:
    """Differences between our outputs and ksqlDB's, record by record (empty = pass)."""
    ours, theirs = run(case, strict_retention), expected(case)
    diffs = [
        f"record {i}: expected {t}, got {o}"
        for i, (o, t) in enumerate(zip(ours, theirs, strict=False))
        if o != t
    ]
    if len(ours) != len(theirs):
        diffs.append(f"expected {len(theirs)} records, got {len(ours)}")
    return diffs


def classify(cases: list[Case]) -> dict[str, list[tuple[Case, str, str]]]:
    """Cases by outcome, each with its path (blank for n/a) and the detail or reason."""
    outcome: dict[str, list[tuple[Case, str, str]]] = {"passed": [], "failed": [], "n/a": []}
    for case in cases:
        try:
            route = path(case)
            diffs = compare(case)
        except NotApplicable as exc:
            outcome["n/a"].append((case, "", str(exc)))
            continue
        outcome["failed" if diffs else "passed"].append((case, route, "; ".join(diffs[:3])))
    return outcome


def main(report: Callable[[str], Any] = print) -> int:
    outcome = classify(load_cases())
    for status, rows in outcome.items():
        for case, route, detail in rows:
            line = f"{status:7} {route.split(' ')[0]:6} {case.id}"
            reason = route.partition(" ")[2] or ""
            report(line + "".join(f"  -- {x}" for x in (reason, detail) if x))
    report(" / ".join(f"{len(rows)} {status}" for status, rows in outcome.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
