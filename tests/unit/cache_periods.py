"""Piping records through ``--emit cached`` in the test driver, with its clock flushes landing
anywhere in the stream: what the two-phase tests of the processors and the compiler share."""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

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
