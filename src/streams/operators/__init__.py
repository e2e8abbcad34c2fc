"""The operators the processors are built from, and the ksqlDB compiler will compile onto.

- :mod:`~streams.operators.deadletter`: validation; bad records to the dead-letter topic.
- :mod:`~streams.operators.window_engine`: windowed aggregation with ksqlDB's semantics, pure.
- :mod:`~streams.operators.local_aggregate`: two-phase aggregation's local stage, pure.
- :mod:`~streams.operators.window_aggregate`: the engine on a Quix ``StreamingDataFrame``.
- :mod:`~streams.operators.join`: joins: stream-table, stream-stream (windowed), table-table.
- :mod:`~streams.operators.table`: a filtered table (rows in, rows or tombstones out).
- :mod:`~streams.operators.repartition`: purging repartition topics once they are processed.

Everything that reaches into Quix internals is in :mod:`streams.quix`, not here.
"""
