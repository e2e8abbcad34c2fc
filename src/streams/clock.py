"""The wall clock the processors read: when the record cache's period ends, when to check it.

Event time comes from the records; this is the other time, which tests must control rather
than wait for. :class:`streams.testing.TestDriver` replaces it with a manual clock for as long
as it is open (``advance_wall_clock``), as Kafka Streams' TopologyTestDriver mocks wall-clock
time for punctuations.
"""

from __future__ import annotations

import time
from collections.abc import Callable

_source: Callable[[], float] = time.time


def now() -> float:
    """Seconds since the epoch, from the current source (the system clock by default)."""
    return _source()


def use(source: Callable[[], float]) -> Callable[[], float]:
    """Make ``source`` the clock; return the one it replaces (to put back afterwards)."""
    global _source
    previous, _source = _source, source
    return previous
