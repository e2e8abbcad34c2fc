"""``python -m streams``: the three processors on one Application, through the driver.

A users row (Avro on topic3) flows through streams.users to topic4 and, in the same process,
into streams.country's join; the same page view also feeds streams.windows.
"""

from __future__ import annotations

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from contracts.users_schema import SCHEMA
from streams import __main__ as combined
from streams import country, users, windows
from streams.testing import TestDriver

T0 = 1_700_000_100_000


def test_a_user_row_reaches_the_country_counts_and_views_the_windows():
    registry = SchemaRegistryClient.new_client({"url": "mock://combined"})
    serialize = AvroSerializer(registry, SCHEMA)
    row = {"user_id": 4, "age": 33, "gender": "Male", "country": "Vietnam", "subscription": "Gold"}
    configs = (users.UsersConfig(registry), country.CountryConfig(), windows.WindowsConfig())
    with TestDriver(lambda app: combined.setup(app, *configs), partitions=5) as driver:
        ctx = SerializationContext("topic3_Users", MessageField.VALUE)
        driver.pipe("topic3_Users", "4", serialize(row, ctx), timestamp=T0 - 10)
        view = {"session_id": "s1", "user_id": 4, "source": "External", "event_timestamp": T0}
        driver.pipe("topic1_PageView", "s1", view, timestamp=T0)
        out = driver.read_all()
    # Order across processors is not specified; within a topic it is produce order.
    assert sorted((r.topic, str(r.key)) for r in out) == sorted(
        [
            ("topic4", "b'4'"),
            ("topic5", f"Vietnam|{T0}"),
            ("topic6", f"External|{T0}"),
            *[("topic7", f"External|{T0 - 240_000 + i * 60_000}") for i in range(5)],
            ("topic8", f"External|{T0}"),
        ]
    )
    [count] = [r for r in out if r.topic == "topic5"]
    assert count.value["average_age"] == 33.0
