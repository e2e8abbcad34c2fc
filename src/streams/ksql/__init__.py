"""``streams.ksql``: ksqlDB statements compiled onto Quix Streams pipelines.

Text -> :mod:`~streams.ksql.parser` (the syntax tree of :mod:`~streams.ksql.ast`) -> the
planner and compiler -> a Quix Streams topology built from :mod:`streams.operators`, the layer
the hand-written processors use. Expressions and functions are :mod:`~streams.ksql.expressions`
and :mod:`~streams.ksql.functions`; key and value formats :mod:`~streams.ksql.formats`.
"""
