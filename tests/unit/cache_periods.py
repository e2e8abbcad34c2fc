"""Piping records through ``--emit cached`` in the test driver, with its clock flushes landing
anywhere in the stream, and seeing whether a local stage ran: what the two-phase tests of the
processors and the compiler share."""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from quixstreams.state.exceptions import StoreNotRegisteredError

from streams.operators.window_aggregate import Grouping
from streams.testing import TestDriver


def pipe_with_clock(
    driver: TestDriver,
    records: Iterable[tuple[str, Any, Any, int]],
    cache_ms: int,
    seed: int,
) -> None:
    """Pipe each ``(topic, key, value, timestamp)``. The wall clock moves on between records
    now and then, sometimes past a cache period, and checkpoints commit now and then; at the
    end the last periods flush (the local stage's, then the global one's)."""
    rng = random.Random(seed)
    for topic, key, value, timestamp in records:
        driver.pipe(topic, key, value, timestamp=timestamp)
        if rng.random() < 0.05:
            driver.advance_wall_clock(rng.choice([150, 400, cache_ms + 100]))
        if rng.random() < 0.02:
            driver.commit()
    for _ in range(3):
        driver.advance_wall_clock(cache_ms + 100)


def local_stages(driver: TestDriver, stream: str, grouping: Grouping, partitions: int = 5) -> int:
    """How many of ``stream``'s input partitions ran a two-phase local stage for
    ``grouping`` (after :meth:`TestDriver.commit`: the stage writes its state at commits)."""
    try:
        states = [driver.state(grouping.local_prefix, partition=p, stream=stream) for p in
                  range(partitions)]  # fmt: skip
    except StoreNotRegisteredError:  # no stateful step on the input: one phase
        return 0
    return sum(state.get("slices") is not None for state in states)
