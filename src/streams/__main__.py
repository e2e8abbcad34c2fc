"""``python -m streams``: the three processors in one process, for the demo.

One Application (one consumer group, one state directory) runs streams.users, streams.country
and streams.windows with their default configuration from the environment. Each processor
also runs alone (``python -m streams.users`` and so on), which is how they scale out.
"""

from __future__ import annotations

import argparse

from quixstreams import Application

from streams import country, users, windows
from streams.app import add_app_arguments, create_app, run


def setup(
    app: Application,
    users_config: users.UsersConfig,
    country_config: country.CountryConfig,
    windows_config: windows.WindowsConfig,
) -> None:
    """All three pipelines on ``app``: users -> topic4, topic1 x topic4 -> topic5, 6, 7, 8.

    Quix allows one dataframe per topic, so country and windows branch from one dataframe of
    topic1 and each validates it; a bad page view fails in the first of them, which
    dead-letters it once (its ``processor`` header tells which).
    """
    users.setup(app, users_config)
    country_topics = country.declare_topics(app)
    views = app.dataframe(country_topics.pageviews)
    users_table = app.dataframe(country_topics.users)
    country.build(views, users_table, country_config, country_topics)
    _, windows_topics = windows.declare_topics(app)
    windows.build(views, windows_config, windows_topics)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m streams",
        description="Run streams.users, streams.country and streams.windows in one process "
        "(the demo). Window options of both processors are below; topic names come from "
        "the TOPIC_* environment variables.",
    )
    windows.add_arguments(parser)
    country.add_arguments(parser, prefix="country-")
    add_app_arguments(parser, "streams")
    args = parser.parse_args(argv)
    configs = (
        users.UsersConfig(),
        country.config_from_args(args, prefix="country-"),
        windows.config_from_args(args),
    )
    app = create_app(args)
    setup(app, *configs)
    run(app, args)


if __name__ == "__main__":
    main()
