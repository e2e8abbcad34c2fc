"""murmur2 partitioning against figures printed by Kafka's own Java ``Utils.murmur2``.

The expected values were computed by running ``Utils.murmur2`` and ``Utils.toPositive(..) % 5``
from kafka-clients 4.1.1 (the broker's own jar, on the native stack's classpath); the
integration test of the producers checks the live producer against the same rule.
"""

from __future__ import annotations

import pytest

from contracts.partitioning import murmur2, partition_for

JAVA = [
    ("", 275646681, 1),
    ("a", -1563381124, 4),
    ("ab", 316155434, 4),
    ("abc", 479470107, 2),
    ("Inbox", -675932522, 1),
    ("Homepage", -1795234365, 3),
    ("External", 476777471, 1),
    ("1", -1993445489, 4),
    ("42", 417700972, 2),
    ("200", 49382470, 0),
    ("user-123", -1468255980, 3),
    ("s-0001", 144167613, 3),
    ("ünïcödé", 201421315, 0),
    ("a-much-longer-key-to-cover-the-tail-bytes-of-murmur2!", -1266159354, 4),
]


@pytest.mark.parametrize(("key", "hash_", "partition"), JAVA)
def test_matches_javas_murmur2_and_partition(key: str, hash_: int, partition: int) -> None:
    assert murmur2(key.encode()) == hash_
    assert partition_for(key.encode(), 5) == partition


def test_rejects_a_partition_count_below_one() -> None:
    with pytest.raises(ValueError, match="partitions must be >= 1"):
        partition_for(b"a", 0)
