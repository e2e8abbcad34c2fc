# syntax=docker/dockerfile:1
# One image for every pageview-streams container (init jobs, producers, processors, dashboard):
# the project installed as a package, so `python -m ...` runs exactly what the native stack runs.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Sources first, then one install: the dependency pins live in pyproject.toml only, so there
# is no second list to drift. The pip cache mount keeps rebuilds after a code change fast.
# pinot/ holds the Pinot table definitions: src/pinot/configs links to them and the install
# packages them.
COPY pyproject.toml README.md ./
COPY src ./src
COPY pinot ./pinot
RUN --mount=type=cache,target=/root/.cache/pip pip install .

COPY docker/healthcheck.py docker/producers.sh ./docker/

# Quix Streams keeps RocksDB state under ./state; it lives and dies with the container because
# it is rebuilt from changelog topics, which is what makes `--scale` safe.
RUN useradd --create-home --uid 10001 app && mkdir -p /app/state && chown app /app/state
USER app
