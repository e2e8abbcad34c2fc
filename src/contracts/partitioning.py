"""Kafka's default partitioner for keyed records, as Java clients compute it.

Java's producer (and so Kafka Connect, Kafka Streams, ksqlDB) sends a keyed record to
``toPositive(murmur2(key)) % partitions``. librdkafka's default (``consistent_random``, CRC32)
differs, so confluent-kafka producers here set ``partitioner=murmur2_random``, which matches
this function for every non-null key. Tests use it as the oracle of where a key must land, and
the in-memory test driver uses it to place repartitioned records on the partition, and so the
state store, production would use.
"""

from __future__ import annotations

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
#: Java's seed (0x9747b28c), as ``org.apache.kafka.common.utils.Utils.murmur2`` uses it.
_SEED = 0x9747B28C


def murmur2(data: bytes) -> int:
    """Java's ``Utils.murmur2(data)``: the 32-bit MurmurHash2 as a signed int."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    tail = length & ~3
    for i in range(0, tail, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    rest = length & 3
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(key: bytes, partitions: int) -> int:
    """The partition a Java producer (or librdkafka's ``murmur2_random``) picks for ``key``."""
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    if partitions == 1:
        return 0  # no hash needed (the test driver's usual case, per output record)
    return (murmur2(key) & 0x7FFFFFFF) % partitions
