"""Quix Streams' own floor: topic1 -> topic6 with no processing, on the processors' Application.

What any processor built on Quix Streams here pays before doing anything: the same Application
settings as ``streams.*`` (exactly-once, commit interval, murmur2), JSON in and out, one output
per input. ``--group-by`` adds the repartition by ``source`` that ``streams.windows`` needs
(produce to and consume from an internal topic). ``--outputs 8`` writes each record 8 times,
as ``--emit changes`` writes 8 window updates per page view, through the same emitter as the
window step: the floor of EMIT CHANGES with no window work. Quoting the processors against
these floors separates what Quix costs from what our windows and joins cost.

    python -m bench.quix_floor [--group-by] [--outputs N] --consumer-group G --state-dir DIR
"""

from __future__ import annotations

import argparse
from typing import Any

from quixstreams import Application

from contracts import topics as topic_names
from streams import quix
from streams.app import add_app_arguments, create_app, run


def build(app: Application, group_by: bool = False, outputs: int = 1) -> None:
    """topic1 -> topic6, repartitioned by source if ``group_by``, each record ``outputs``
    times."""
    sdf = app.dataframe(app.topic(topic_names.PAGEVIEWS, key_deserializer="str"))
    if group_by:
        sdf = sdf.group_by("source", key_serializer="str", key_deserializer="str")
    output = app.topic(topic_names.TUMBLING, key_serializer="str")
    if outputs == 1:
        sdf.to_topic(output)  # Quix's own output path: what the one-output floors measure
        return
    emit = quix.emitter(sdf)

    def fan_out(value: Any, key: Any, timestamp: int, _headers: Any) -> None:
        for _ in range(outputs):
            emit(output, value, key, timestamp)

    sdf.update(fan_out, metadata=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.quix_floor", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--group-by", action="store_true", help="repartition by source on the way, as windows"
    )
    parser.add_argument(
        "--outputs", type=int, default=1, metavar="N", help="records written per input record"
    )
    add_app_arguments(parser, "quix_floor")
    args = parser.parse_args(argv)
    if args.outputs < 1:
        parser.error("--outputs must be at least 1")
    app = create_app(args)
    build(app, args.group_by, args.outputs)
    run(app, args)


if __name__ == "__main__":
    main()
