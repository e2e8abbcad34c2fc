"""One logging setup for every command, so all their logs read alike and one variable sets the
level."""

from __future__ import annotations

import logging

from clients.settings import env

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging() -> None:
    """Log to stderr at ``LOG_LEVEL`` (default INFO) in :data:`FORMAT`."""
    logging.basicConfig(level=env("LOG_LEVEL", "INFO"), format=FORMAT)
