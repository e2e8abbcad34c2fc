"""Quix Streams' own floor: topic1 -> topic6 with no processing, on the processors' Application.

What any processor built on Quix Streams here pays before doing anything: the same Application
settings as ``streams.*`` (exactly-once, commit interval, murmur2), JSON in and out, one output
per input. ``--group-by`` adds the repartition by ``source`` that ``streams.windows`` needs
(produce to and consume from an internal topic). Quoting the processors against these floors
separates what Quix costs from what our windows and joins cost.

    python -m bench.quix_floor [--group-by] --consumer-group G --state-dir DIR
"""

from __future__ import annotations

import argparse

from contracts import topics as topic_names
from streams.app import add_app_arguments, create_app, run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.quix_floor", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--group-by", action="store_true", help="repartition by source on the way, as windows"
    )
    add_app_arguments(parser, "quix_floor")
    args = parser.parse_args(argv)
    app = create_app(args)
    sdf = app.dataframe(app.topic(topic_names.PAGEVIEWS, key_deserializer="str"))
    if args.group_by:
        sdf = sdf.group_by("source", key_serializer="str", key_deserializer="str")
    sdf.to_topic(app.topic(topic_names.TUMBLING, key_serializer="str"))
    run(app, args)


if __name__ == "__main__":
    main()
