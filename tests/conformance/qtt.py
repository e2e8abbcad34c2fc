"""Run ksqlDB's windowed query-validation cases (../shared/ksql-qtt) through our window engine.

Each case's statements are parsed into an engine configuration (window kind, size, advance, gap,
grace, EMIT mode, grouping column, aggregates); inputs are fed in the given order and every
output record is compared with the expected one: key, window bounds, value (null = tombstone,
which our session retraction maps to) and timestamp. A case the engine cannot express (joins,
expressions, UDAFs other than COUNT/SUM/AVG/MIN/MAX, non-windowed tables, statements ksqlDB
rejects) is "not applicable" with the reason.

``python tests/conformance/qtt.py`` prints the table of results.
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

from streams.windowing import Aggregate, DictState, WindowEngine, WindowSpec

#: The windowed case files of the brief; others (joins, filters) belong to streams-core's harness.
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


def run(case: Case, strict_retention: bool = False) -> list[dict[str, Any]]:
    """Feed the case's inputs in order; return our output records in the QTT output shape."""
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
        group = record.get("key") if query.group_is_key else row.get(query.group)
        if group is None:
            continue  # ksqlDB drops rows with a NULL grouping key (processing log)
        if query.where and str(row.get(query.where[0])) != query.where[1]:
            continue
        results, _late = engine.process(state, group, row, record.get("timestamp", 0))
        for r in results:
            outputs.append(
                {
                    "topic": query.output,
                    "key": r.group,
                    "value": _render(query, r.value, r.start, r.end),
                    "timestamp": r.timestamp,
                    "window": {
                        "start": r.start,
                        "end": r.end,
                        "type": "session" if r.kind == "session" else "time",
                    },
                }
            )
    return outputs


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


def classify(cases: list[Case]) -> dict[str, list[tuple[Case, str]]]:
    outcome: dict[str, list[tuple[Case, str]]] = {"passed": [], "failed": [], "n/a": []}
    for case in cases:
        try:
            diffs = compare(case)
        except NotApplicable as exc:
            outcome["n/a"].append((case, str(exc)))
            continue
        outcome["failed" if diffs else "passed"].append((case, "; ".join(diffs[:3])))
    return outcome


def main(report: Callable[[str], Any] = print) -> int:
    outcome = classify(load_cases())
    for status, rows in outcome.items():
        for case, detail in rows:
            report(f"{status:7} {case.id}" + (f"  -- {detail}" if detail else ""))
    report(" / ".join(f"{len(rows)} {status}" for status, rows in outcome.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
