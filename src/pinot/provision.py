"""Short-lived tables on their own topics, for the integration tests and the benchmark.

They must never touch the real tables: each gets a unique name, and it is dropped (table and
schema) on exit even when the caller failed.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterable, Iterator

from pinot.client import PinotBroker, PinotController, PinotError
from pinot.setup import setup_tables
from pinot.tables import TableSpec, default_tables

log = logging.getLogger("pinot.provision")


def unique_specs(prefix: str, topics_by_kind: dict[str, str]) -> dict[str, TableSpec]:
    """Specs for ``topics_by_kind``'s kinds, renamed ``{prefix}_{kind}_{random}``."""
    suffix = uuid.uuid4().hex[:8]
    tables = default_tables(None)
    return {
        kind: tables[kind].with_names(table=f"{prefix}_{kind}_{suffix}", topic=topic)
        for kind, topic in topics_by_kind.items()
    }


@contextlib.contextmanager
def temporary_tables(
    controller: PinotController,
    broker: PinotBroker,
    specs: Iterable[TableSpec],
    retention_days: int | None = None,
    timeout_s: float = 180.0,
) -> Iterator[None]:
    specs = list(specs)
    try:
        setup_tables(controller, broker, specs, retention_days=retention_days, timeout_s=timeout_s)
        yield
    finally:
        for spec in specs:
            try:
                controller.delete_table(spec.table)
            except PinotError as exc:  # cleanup must not hide the caller's own error
                log.warning("could not drop %s: %s", spec.table, exc)
