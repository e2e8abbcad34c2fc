"""ksqlDB's query-validation cases, run through :mod:`streams.ksql` in the test driver.

A case (``../shared/ksql-qtt/*.json``: statements, input records, expected output records) is
compiled, its inputs piped in order into :class:`streams.testing.TestDriver` (one partition,
as ksqlDB's test runner uses), and every record the queries write is compared with the expected
ones, topic by topic, in order: key, value, and timestamp and window where the case gives them.
A case whose statements ksqlDB rejects (``expectedException``) passes when we reject them too.

Each case ends ``passed``, ``failed`` (with the first difference) or ``not applicable`` (a
feature :mod:`streams.ksql` does not run yet, named by :class:`~streams.ksql.errors.Unsupported`).

    python -m streams.ksql conformance [--dir DIR] [--file NAME] [-v]
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streams.ksql import qtt_functions  # noqa: F401 -- registers the cases' test functions
from streams.ksql.catalog import Source
from streams.ksql.compiler import Program, compile_sql
from streams.ksql.errors import KsqlError, Unsupported
from streams.ksql.formats import use_registry

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import RegisteredSchema, Schema

PASSED, FAILED, NOT_APPLICABLE = "passed", "failed", "not applicable"


def corpus_dir() -> Path:
    """``../shared/ksql-qtt`` beside the repository (a checkout's layout, and CI's)."""
    return Path(__file__).resolve().parents[3].parent / "shared" / "ksql-qtt"


@dataclass(frozen=True)
class Case:
    """One case of the corpus. A case with a ``format`` list is run once per format
    (``{FORMAT}`` in its statements replaced): ``variants`` maps each to its statements."""

    file: str
    name: str
    variants: tuple[tuple[str | None, str], ...]
    raw: dict[str, Any] = field(compare=False, repr=False)

    @property
    def path(self) -> str:
        return f"{self.file}::{self.name}"


@dataclass(frozen=True)
class Result:
    case: Case
    status: str
    detail: str = ""


def load_cases(directory: Path | None = None, files: Iterable[str] | None = None) -> list[Case]:
    """Every case of the corpus (of ``files``, names without ``.json``, if given)."""
    directory = directory or corpus_dir()
    wanted = set(files) if files else None
    cases = []
    for path in sorted(directory.glob("*.json")):
        if wanted is not None and path.stem not in wanted:
            continue
        seen: Counter[str] = Counter()
        for raw in json.loads(path.read_text())["tests"]:
            fmts = raw.get("formats") or raw.get("format") or [None]
            if isinstance(fmts, str):
                fmts = [fmts]
            text = "\n".join(raw["statements"])
            variants = tuple(
                (fmt, text if fmt is None else text.replace("{FORMAT}", fmt)) for fmt in fmts
            )
            # A few names occur twice in a file (once per group of formats): number the
            # repeats, so that every case has a path of its own.
            seen[raw["name"]] += 1
            name = raw["name"] if seen[raw["name"]] == 1 else f"{raw['name']} #{seen[raw['name']]}"
            cases.append(Case(path.stem, name, variants, raw))
    return cases


def run_case(case: Case) -> Result:
    """Every variant of ``case``: failed if one fails, else passed if one passes (the detail
    names the formats not applicable), else not applicable."""
    results = [(fmt, _run_variant(case, text)) for fmt, text in case.variants]
    if len(results) == 1:
        status, detail = results[0][1]
        return Result(case, status, detail)
    for fmt, (status, detail) in results:
        if status == FAILED:
            return Result(case, FAILED, f"{fmt}: {detail}")
    skipped = [f"{fmt}: {detail}" for fmt, (status, detail) in results if status != PASSED]
    if len(skipped) == len(results):
        return Result(case, NOT_APPLICABLE, "; ".join(skipped))
    return Result(case, PASSED, "; ".join(skipped))


def _run_variant(case: Case, statements: str) -> tuple[str, str]:
    """Compile, run and compare one variant: (status, detail), over a registry of its own
    holding the schemas the case registers (as ksqlDB's test runner gives each case), made
    if the variant uses one."""
    topics = case.raw.get("topics") or []
    previous = use_registry(lambda: _case_registry(topics))
    try:
        return _compile_and_run(case, statements)
    finally:
        use_registry(previous)


def _compile_and_run(case: Case, statements: str) -> tuple[str, str]:
    expected_error = case.raw.get("expectedException")
    try:
        program = compile_sql(statements, _properties(case.raw))
    except Unsupported as exc:
        return NOT_APPLICABLE, exc.message
    except KsqlError as exc:
        if expected_error is not None:
            return PASSED, f"rejected: {exc.message}"
        return FAILED, f"rejected: {exc.message}"
    except Exception as exc:  # a bug of ours, reported as the case's failure
        return FAILED, f"compiler error: {type(exc).__name__}: {exc}"
    try:
        actual = _run(program, case.raw.get("inputs", []))
    except Unsupported as exc:
        return NOT_APPLICABLE, exc.message
    except Exception as exc:
        if expected_error is not None:
            return PASSED, f"failed at run time: {exc}"
        return FAILED, f"run error: {type(exc).__name__}: {exc}"
    if expected_error is not None:
        return FAILED, f"expected rejection: {expected_error.get('message', '')}"
    difference = _compare(actual, _normalised(program, case.raw.get("outputs", [])))
    return (FAILED, difference) if difference else (PASSED, "")


#: The registry's name for the schema language of each format a case's topic may give (a
#: JSON topic with a schema is one of JSON_SR's: the registry's name for it, as some cases
#: write it).
_SCHEMA_TYPES = {"AVRO": "AVRO", "JSON_SR": "JSON", "JSON": "JSON", "PROTOBUF": "PROTOBUF"}


def _case_registry(topics: list[dict[str, Any]]) -> CaseRegistry:
    """A fresh registry with the schemas of the case's ``topics`` registered under
    ``<topic>-key`` / ``<topic>-value``, in order: with the id the case gives one (its
    statements may pick it by KEY_SCHEMA_ID / VALUE_SCHEMA_ID), else the next free id."""
    from confluent_kafka.schema_registry import Schema

    registry = CaseRegistry()
    for topic in topics:
        for role in ("key", "value"):
            schema = topic.get(f"{role}Schema")
            fmt = str(topic.get(f"{role}Format") or topic.get("format") or "").upper()
            if schema is not None and fmt in _SCHEMA_TYPES:
                # A Protobuf schema is its .proto text; an Avro or JSON one is a JSON value
                # (a bare string: an Avro primitive's name).
                text = schema if fmt == "PROTOBUF" else json.dumps(schema)
                registry.register(
                    f"{topic['name']}-{role}",
                    Schema(text, _SCHEMA_TYPES[fmt]),
                    topic.get(f"{role}SchemaId"),
                )
    return registry


class CaseRegistry:
    """An in-process Schema Registry, one per case: the client calls streams.ksql makes
    (``register_schema``, ``get_schema``, ``get_latest_version``) with the real registry's
    semantics -- an id is global, one per distinct schema whatever its subject, so records of
    the same key schema on two topics have the same bytes, as key joins need -- and
    registering under a given id, as ksqlDB's test runner does. (confluent-kafka's mock, the
    client ``SchemaRegistryClient.new_client({"url": "mock://..."})`` makes, numbers every
    registration anew and cannot take an id.)"""

    def __init__(self) -> None:
        self._ids: dict[tuple[str, str], int] = {}
        self._schemas: dict[int, Schema] = {}
        self._versions: dict[str, list[int]] = defaultdict(list)

    def register(self, subject: str, schema: Schema, schema_id: int | None = None) -> int:
        content = (schema.schema_type or "AVRO", schema.schema_str)
        if schema_id is None:
            schema_id = self._ids.get(content) or max(self._schemas, default=0) + 1
        self._ids.setdefault(content, schema_id)
        self._schemas[schema_id] = schema
        if schema_id not in self._versions[subject]:
            self._versions[subject].append(schema_id)
        return schema_id

    def register_schema(
        self, subject_name: str, schema: Schema, normalize_schemas: bool = False
    ) -> int:
        return self.register(subject_name, schema)

    def get_schema(
        self, schema_id: int, subject_name: str | None = None, fmt: str | None = None
    ) -> Schema:
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        if schema_id not in self._schemas:
            raise SchemaRegistryError(404, 40403, "Schema not found")
        return self._schemas[schema_id]

    def get_latest_version(self, subject_name: str, fmt: str | None = None) -> RegisteredSchema:
        from confluent_kafka.schema_registry import RegisteredSchema
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        versions = self._versions.get(subject_name)
        if not versions:
            raise SchemaRegistryError(404, 40401, f"Subject '{subject_name}' not found.")
        schema_id = versions[-1]
        return RegisteredSchema(
            subject=subject_name,
            version=len(versions),
            schema_id=schema_id,
            guid=None,
            schema=self._schemas[schema_id],
        )


def _properties(raw: dict[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in (raw.get("properties") or {}).items()}


def _normalised(program: Program, expected: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Expected records as the sink's formats would read them back (ksqlDB's comparator
    accepts a DECIMAL written as a string, a field name in another case)."""
    sinks = {plan.sink.topic: plan.sink for plan in program.queries.values()}
    out = []
    for record in expected:
        sink = sinks.get(record.get("topic", ""))
        if sink is not None:
            record = dict(record)
            record["value"] = sink.value_serde.normalize_test(record.get("value"))
            if sink.key_columns and "key" in record:
                record["key"] = sink.key_serde.normalize_test(record["key"])
        out.append(record)
    return out


def _input_source(program: Program, topic: str) -> Source | None:
    for source in program.catalog.sources.values():
        if source.topic == topic and source.query_id is None:
            return source
    for source in program.catalog.sources.values():
        if source.topic == topic:
            return source
    return None


def _run(program: Program, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from streams.testing import TestDriver

    sinks = {plan.sink.topic: plan.sink for plan in program.queries.values()}
    outputs: list[dict[str, Any]] = []
    with TestDriver(program.setup, partitions=1) as driver:
        for record in inputs:
            source = _input_source(program, record["topic"])
            if source is None:
                raise Unsupported(f"input topic {record['topic']} has no source")
            if "window" in record or source.window is not None:
                raise Unsupported("windowed input records")
            key = source.key_serde.from_test(record.get("key")) if source.key_columns else None
            value = source.value_serde.from_test(record.get("value"))
            driver.pipe(record["topic"], key, value, timestamp=record.get("timestamp", 0))
        for out in driver.read_all():
            sink = sinks.get(out.topic)
            if sink is not None:
                outputs.append(_decode(sink, out.raw_key, out.raw_value, out.timestamp))
    return outputs


def _decode(sink: Source, key: bytes | None, value: bytes | None, ts: int) -> dict[str, Any]:
    record: dict[str, Any] = {"topic": sink.topic, "timestamp": ts}
    if sink.window is not None and key is not None:
        inner, start, end = sink.windowed_key_serde.split(key)
        record["key"] = sink.key_serde.to_test(inner)
        kind = "session" if sink.window.kind == "session" else "time"
        record["window"] = {"start": start, "end": end, "type": kind}
    else:
        record["key"] = sink.key_serde.to_test(key) if sink.key_columns else None
    record["value"] = sink.value_serde.to_test(value)
    return record


def _compare(actual: list[dict[str, Any]], expected: list[dict[str, Any]]) -> str:
    """The first difference, topic by topic, or "" when they match."""
    by_topic: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in actual:
        by_topic[record["topic"]].append(record)
    wanted: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in expected:
        wanted[record["topic"]].append(record)
    for topic in sorted(set(by_topic) | set(wanted)):
        got, want = by_topic.get(topic, []), wanted.get(topic, [])
        for index, (g, w) in enumerate(zip(got, want, strict=False)):
            for part in ("key", "value", "timestamp", "window"):
                if part in ("timestamp", "window") and part not in w:
                    continue
                if not _same(g.get(part), w.get(part)):
                    return (
                        f"{topic} record {index}: {part} {_show(g.get(part))} != expected "
                        f"{_show(w.get(part))}"
                    )
        if len(got) != len(want):
            return f"{topic}: {len(got)} records, expected {len(want)}"
    return ""


def _same(got: Any, want: Any) -> bool:
    """Equal as ksqlDB's test runner compares: numbers by value (a DOUBLE to within rounding),
    but a boolean is no number."""
    if isinstance(got, bool) or isinstance(want, bool):
        return got is want
    if isinstance(got, int | float) and isinstance(want, int | float):
        if isinstance(got, float) or isinstance(want, float):
            return abs(got - want) <= 1e-9 * max(1.0, abs(want))
        return got == want
    if isinstance(want, dict) and isinstance(got, dict):
        return got.keys() == want.keys() and all(_same(got[k], want[k]) for k in want)
    if isinstance(want, list) and isinstance(got, list):
        return len(got) == len(want) and all(_same(g, w) for g, w in zip(got, want, strict=True))
    return type(got) is type(want) and got == want


def _show(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 200 else text[:200] + "..."


def test_runner_case(statements: Path, inputs: Path, outputs: Path) -> Case:
    """A case in ksqlDB's ``ksql-test-runner`` format (three files), or ValueError saying what
    is wrong with them."""
    raw: dict[str, Any] = {}
    for path, field_name in ((inputs, "inputs"), (outputs, "outputs")):
        try:
            document = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not JSON: {exc}") from exc
        if not isinstance(document, dict) or field_name not in document:
            raise ValueError(f'{path} has no "{field_name}" field')
        if not isinstance(document[field_name], list):
            raise ValueError(f'{path}: "{field_name}" must be a list of records')
        raw[field_name] = document[field_name]
    if not raw["inputs"]:
        raise ValueError(f"{inputs} has no input records")
    text = statements.read_text()
    raw["statements"] = [text]
    return Case(statements.parent.name, statements.name, ((None, text),), raw)


def table(results: list[Result]) -> str:
    """Per file: passed / failed / not applicable, and the totals (a Markdown table)."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for result in results:
        counts[result.case.file][result.status] += 1
    lines = ["| file | passed | failed | not applicable | cases |", "|---|---:|---:|---:|---:|"]
    total: Counter[str] = Counter()
    for name in sorted(counts):
        c = counts[name]
        total.update(c)
        lines.append(
            f"| {name} | {c[PASSED]} | {c[FAILED]} | {c[NOT_APPLICABLE]} | {sum(c.values())} |"
        )
    lines.append(
        f"| **all** | {total[PASSED]} | {total[FAILED]} | {total[NOT_APPLICABLE]} | "
        f"{sum(total.values())} |"
    )
    return "\n".join(lines)


__all__ = ["Case", "Result", "corpus_dir", "load_cases", "run_case", "table", "test_runner_case"]
