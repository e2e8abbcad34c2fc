"""One logging setup for every command, so all their logs read alike and one variable sets the
level."""

from __future__ import annotations

import logging
from typing import Any

from clients.settings import env

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging() -> None:
    """Log to stderr at ``LOG_LEVEL`` (default INFO) in :data:`FORMAT`."""
    logging.basicConfig(level=env("LOG_LEVEL", "INFO"), format=FORMAT)


class RateLimitedLog:
    """Counts events; logs the first 10 in full, then every 1000th, with the running count."""

    def __init__(self, what: str, log: logging.Logger) -> None:
        self.what = what
        self.count = 0
        self._log = log

    def __call__(self, message: str, *args: Any) -> None:
        self.count += 1
        if self.count <= 10 or self.count % 1000 == 0:
            self._log.warning(f"{self.what} #%d: {message}", self.count, *args)
