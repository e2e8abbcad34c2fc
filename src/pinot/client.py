"""Minimal REST clients for Pinot's controller (configs) and broker (SQL queries).

Errors carry Pinot's own message, because "HTTP 400" alone does not tell an operator which
field of a table config was rejected.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import requests


class PinotError(RuntimeError):
    """Pinot answered, but refused the request or reported a query error."""


class PinotUnavailable(PinotError):
    """Pinot could not be reached at all (connection refused, timeout)."""


def _pinot_message(response: requests.Response) -> str:
    """Pinot puts its reason in ``{"error": ...}`` (controller) or plain text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or response.reason
    if isinstance(body, dict):
        return str(body.get("error") or body.get("message") or body)
    return str(body)


class _Rest:
    def __init__(self, base_url: str, what: str, timeout_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self._what = what
        self._timeout_s = timeout_s
        self._session = requests.Session()

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = f"{self.base_url}{path}"
        try:
            return self._session.request(method, url, timeout=self._timeout_s, **kwargs)
        except requests.RequestException as exc:
            raise PinotUnavailable(
                f"Pinot {self._what} at {self.base_url} is unreachable: {exc}"
            ) from exc

    def checked(self, method: str, path: str, action: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        if not response.ok:
            raise PinotError(
                f"Pinot {self._what} rejected {action} (HTTP {response.status_code}): "
                f"{_pinot_message(response)}"
            )
        return response.json() if response.content else None


class PinotController(_Rest):
    """Schemas and tables through the controller's REST API."""

    def __init__(self, base_url: str, timeout_s: float = 30.0) -> None:
        super().__init__(base_url, "controller", timeout_s)

    def get_schema(self, name: str) -> dict[str, Any] | None:
        response = self.request("GET", f"/schemas/{name}")
        if response.status_code == 404:
            return None
        if not response.ok:
            raise PinotError(f"Pinot controller: reading schema {name}: {_pinot_message(response)}")
        return response.json()

    def create_schema(self, schema: dict[str, Any]) -> None:
        self.checked("POST", "/schemas", f"schema {schema['schemaName']}", json=schema)

    def update_schema(self, schema: dict[str, Any]) -> None:
        name = schema["schemaName"]
        self.checked("PUT", f"/schemas/{name}", f"schema {name}", json=schema)

    def get_realtime_table(self, name: str) -> dict[str, Any] | None:
        response = self.request("GET", f"/tables/{name}", params={"type": "realtime"})
        if response.status_code == 404:
            return None
        if not response.ok:
            raise PinotError(f"Pinot controller: reading table {name}: {_pinot_message(response)}")
        return response.json().get("REALTIME")

    def create_table(self, config: dict[str, Any]) -> None:
        self.checked("POST", "/tables", f"table {config['tableName']}", json=config)

    def update_table(self, config: dict[str, Any]) -> None:
        name = config["tableName"]
        self.checked("PUT", f"/tables/{name}", f"table {name}", json=config)

    def delete_table(self, name: str) -> None:
        """Drop a realtime table and its schema; missing ones are fine (idempotent cleanup)."""
        for path, params in ((f"/tables/{name}", {"type": "realtime"}), (f"/schemas/{name}", {})):
            response = self.request("DELETE", path, params=params)
            if not response.ok and response.status_code != 404:
                raise PinotError(f"Pinot controller: deleting {path}: {_pinot_message(response)}")


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[list[Any]]
    #: Round trip as the caller saw it; what the dashboard shows and the benchmark measures.
    latency_ms: float
    #: Pinot's own time for the query, without HTTP and JSON overhead.
    pinot_time_ms: float

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


class PinotBroker(_Rest):
    """SQL queries through the broker's ``/query/sql`` endpoint."""

    def __init__(self, base_url: str, timeout_s: float = 10.0) -> None:
        super().__init__(base_url, "broker", timeout_s)

    def query(self, sql: str) -> QueryResult:
        started = time.perf_counter()
        body = self.checked("POST", "/query/sql", "the query", json={"sql": sql})
        latency_ms = (time.perf_counter() - started) * 1000
        # A broker answers 200 with "exceptions" for missing tables, unavailable segments, etc.
        exceptions = body.get("exceptions") or []
        if exceptions:
            reasons = "; ".join(str(e.get("message", e)).splitlines()[0] for e in exceptions)
            raise PinotError(f"Pinot broker could not run the query: {reasons}")
        table = body.get("resultTable") or {}
        columns = table.get("dataSchema", {}).get("columnNames", [])
        return QueryResult(
            columns=list(columns),
            rows=table.get("rows", []),
            latency_ms=latency_ms,
            pinot_time_ms=float(body.get("timeUsedMs", 0)),
        )
