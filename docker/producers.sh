#!/usr/bin/env bash
# The producers container: MySQL -> topic3_Users (users_source, polling) and the page-view and
# session events (events, real time) side by side. When either exits, the other is stopped and
# the container exits with the first one's status, so Docker's restart policy restarts both
# rather than leaving half the inputs running. Bash is PID 1 here, so it forwards SIGTERM itself.
set -uo pipefail

# Word splitting of the *_ARGS variables is intended: they hold command-line flags.
# shellcheck disable=SC2086
python -m producers.users_source ${USERS_SOURCE_ARGS:-} &
pids=($!)
# shellcheck disable=SC2086
python -m producers.events ${EVENTS_ARGS:-} &
pids+=($!)

stop() { kill -TERM "${pids[@]}" 2>/dev/null || true; }
trap stop TERM INT

status=0
wait -n || status=$?
echo "producers.sh: a producer exited with status $status; stopping the other" >&2
stop
wait
exit "$status"
