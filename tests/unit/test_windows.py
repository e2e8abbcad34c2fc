"""streams.windows without a broker: validation, configuration and the stateful window step."""

from __future__ import annotations

import argparse
import json

import pytest

from streams.operators.window_aggregate import cached_state, window_step
from streams.operators.window_engine import DictState
from streams.timestamps import InvalidTimestamp, parse_event_timestamp
from streams.windows import WindowsConfig, add_arguments, config_from_args

VIEW = {"session_id": "s1", "user_id": 7, "source": "Inbox", "event_timestamp": 1_700_000_000_000}


def encode(value) -> bytes:
    return json.dumps(value).encode()


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("1970-01-01 00:00:00", None),
        ("2000-01-01 00:00:00", 946_684_800_000),
        ("2024-02-29 23:59:59", 1_709_251_199_000),
        (1_709_251_199_123, 1_709_251_199_123),
    ],
)
def test_event_timestamp_bounds_and_formats(raw, expected):
    if expected is None:
        with pytest.raises(InvalidTimestamp, match="outside the plausible range"):
            parse_event_timestamp(raw)
    else:
        assert parse_event_timestamp(raw) == expected


@pytest.mark.parametrize(
    "raw", ["2024-02-30 00:00:00", "2024-02-01T00:00:00", "2024-02-01", 1.7e12, True, [1]]
)
def test_malformed_event_timestamps_are_rejected(raw):
    with pytest.raises(InvalidTimestamp):
        parse_event_timestamp(raw)


def parse_args(argv, monkeypatch, env=None):
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return config_from_args(parser.parse_args(argv))


def test_defaults_are_the_original_deployments_windows(monkeypatch):
    assert parse_args([], monkeypatch) == WindowsConfig(
        300_000, 300_000, 60_000, 300_000, None, "changes", 2000
    )


def test_environment_then_flags_configure_the_windows(monkeypatch):
    env = {"WINDOWS_TUMBLING_MS": "1000", "WINDOWS_GRACE_MS": "50", "WINDOWS_EMIT": "final"}
    config = parse_args(["--hop-ms", "500", "--emit", "cached"], monkeypatch, env)
    assert config == WindowsConfig(1000, 300_000, 500, 300_000, 50, "cached", 2000)
    env["WINDOWS_CACHE_MS"] = "750"
    config = parse_args(["--emit", "cached"], monkeypatch, env)
    assert config.cache_ms == 750


def test_invalid_window_sizes_fail_at_startup(monkeypatch):
    with pytest.raises(ValueError, match="need 0 < advance <= size"):
        parse_args(["--hop-ms", "400000"], monkeypatch)


def late_key(view: dict) -> str:
    return view["session_id"]


class FakeTransaction:
    """What ``cached_state`` needs from Quix's transaction: prefixed states and prepare."""

    def __init__(self) -> None:
        self.states: dict[str, DictState] = {}
        self.prepared = 0

    def as_state(self, prefix):
        return self.states.setdefault(prefix, DictState())

    def prepare(self, processed_offsets=None):
        self.prepared += 1


def test_window_step_routes_each_window_kind_and_late_records():
    late_calls = []
    config = WindowsConfig(grace_ms=0)
    step = window_step(config.engine(), lambda *args: late_calls.append(args), late_key)
    transaction = FakeTransaction()
    state = cached_state(transaction)
    t0 = 1_700_000_100_000  # a multiple of 5 min
    out = step({**VIEW, "event_timestamp": t0}, "Inbox", t0, state)
    assert [o.route for o in out] == [0, 1, 1, 1, 1, 1, 2]
    assert (out[0].key, out[0].timestamp) == (f"Inbox|{t0}", t0)
    assert out[0] == {
        "source": "Inbox",
        "window_start": t0,
        "window_end": t0 + 300_000,
        "pageview_count": 1,
    }
    assert (out[-1].key, out[-1].timestamp) == (f"Inbox|{t0}", t0)
    assert out[-1] == {
        "source": "Inbox",
        "window_start": t0,
        "window_end": t0,
        "pageview_count": 1,
        "deleted": False,
    }
    # Six minutes later, a view from before t0 is late for every window kind (grace 0).
    step({**VIEW, "event_timestamp": t0 + 360_000}, "Inbox", t0 + 360_000, state)
    late_view = {**VIEW, "event_timestamp": t0 - 1}
    out = step(late_view, "Inbox", t0 - 1, state)
    assert [(o.route, o.key, o["window"]) for o in out] == [
        (3, "s1", "tumbling"),
        (3, "s1", "hopping"),
        (3, "s1", "session"),
    ]
    assert all(o["pageview"] == late_view for o in out)
    assert [call[:2] for call in late_calls] == [("Inbox", t0 - 1)] * 3
    # State is written to the transaction only when Quix prepares it for commit, under one
    # partition-wide prefix (stream time is per partition), not under the message key.
    assert transaction.states == {"windows": DictState()}
    transaction.prepare()
    assert transaction.prepared == 1
    assert list(transaction.states) == ["windows"]
    assert config.engine().meta(transaction.states["windows"]).stream_time == t0 + 360_000
    written = transaction.states["windows"]
    assert written[f"0|Inbox|{t0 + 300_000}"] == [1, t0 + 360_000]  # [count, max event time]
    assert f"0|Inbox|{t0}" not in written  # closed (grace 0), so deleted


def test_many_live_transactions_keep_every_cached_update():
    """Each partition's transaction keeps its own cache until it commits, however many are
    live: a bounded cache once dropped a live transaction's entries after 64 transactions, and
    its next record read stale state (one commit interval of counts lost, seen in topic6)."""
    step = window_step(WindowsConfig().engine(), lambda *args: None, late_key)
    transactions = [FakeTransaction() for _ in range(70)]
    t0 = 1_700_000_100_000
    for view_number in (1, 2):
        for transaction in transactions:
            out = step({**VIEW, "event_timestamp": t0}, "Inbox", t0, cached_state(transaction))
            assert out[0]["pageview_count"] == view_number
    for transaction in transactions:
        transaction.prepare()
        assert transaction.prepared == 1
        assert transaction.states["windows"][f"0|Inbox|{t0}"][0] == 2
