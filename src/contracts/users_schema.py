"""topic3's value schema: a row of MySQL's users table as Confluent Avro.

The users source registers it and writes with it; the benchmark's users input is written with
it too, so the processors read the same record type (``pageview_streams.Users``) from both.
Every column but the key is nullable, as in MySQL.
"""

from __future__ import annotations

import json

#: The schema as JSON text, the form the Schema Registry and ``AvroSerializer`` take.
SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Users",
        "namespace": "pageview_streams",
        "fields": [
            {"name": "user_id", "type": "long"},
            {"name": "age", "type": ["null", "int"], "default": None},
            {"name": "gender", "type": ["null", "string"], "default": None},
            {"name": "country", "type": ["null", "string"], "default": None},
            {"name": "subscription", "type": ["null", "string"], "default": None},
        ],
    }
)
