"""Run one processor over the preloaded input and measure it: events/s, peak RSS, state size.

Throughput is input count over the time until the output is complete. The clock starts at
the first sign of progress (the first committed offset, or the first output record), not at
process start, so interpreter start-up, topic creation and group rebalancing (seconds, the
same whatever the input size) do not dilute the rate; wall time from spawn is kept beside it.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
from confluent_kafka import KafkaException
from tqdm import tqdm

log = logging.getLogger(__name__)

#: (events done so far, whether the output is complete)
Progress = Callable[[], tuple[int, bool]]

POLL_S = 0.25


@dataclass(frozen=True)
class Measurement:
    events: int
    #: From the first progress seen to completion: the rate's denominator.
    seconds: float
    #: From spawn to completion, start-up included.
    wall_seconds: float
    peak_rss_mb: float
    state_mb: float | None
    #: CPU time (user + system) of each process over the same period as ``seconds``.
    cpu_seconds: tuple[float, ...] = ()
    #: From the whole input counted done to completion, inside ``seconds``: what the app still
    #: re-reads from its own repartition topics, or, in two phases, its next commits (the
    #: local stage's partials are readable at its commit, the global results at the next).
    drain_seconds: float = 0.0

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("nan")

    @property
    def events_per_cpu_s(self) -> float:
        """Events per CPU-second of all processes: the work per event, whatever the cores."""
        total = sum(self.cpu_seconds)
        return self.events / total if total > 0 else float("nan")

    @property
    def busiest_share(self) -> float:
        """The busiest process's share of the CPU time: 1/N when N instances share the work."""
        total = sum(self.cpu_seconds)
        return max(self.cpu_seconds) / total if total > 0 else float("nan")


def steady_rate(first: tuple[float, int], last: tuple[float, int]) -> tuple[int, float]:
    """(events, seconds) between the first progress sample and completion.

    Events already done at the first sample were processed before the clock started, so
    they are left out of the numerator too.
    """
    (t0, done0), (t1, done1) = first, last
    return done1 - done0, t1 - t0


class PeakRss:
    """Peak resident memory of a process and its children.

    Reads the kernel's high-water mark (VmHWM) per process, which is exact however short a
    spike was, and sums it over the tree (an app with helper processes uses all of them).
    """

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.peaks: dict[int, int] = {}

    def sample(self) -> None:
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for proc in procs:
            hwm = _vm_hwm_bytes(proc.pid)
            if hwm is not None:
                self.peaks[proc.pid] = max(hwm, self.peaks.get(proc.pid, 0))

    @property
    def megabytes(self) -> float:
        return sum(self.peaks.values()) / 2**20

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process and its live children so far."""
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0.0
        total = 0.0
        for proc in procs:
            try:
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total


def _vm_hwm_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def dir_size_mb(path: Path) -> float:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                continue  # RocksDB removes files while compacting
    return total / 2**20


def stop(proc: subprocess.Popen[bytes], grace_s: float = 15) -> None:
    """SIGTERM, then SIGKILL if the process does not exit in time (a bench must never hang)."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        log.warning("pid %d ignored SIGTERM for %.0f s: killing it", proc.pid, grace_s)
        proc.kill()
        proc.wait()


def run_until_done(
    label: str,
    cmds: list[list[str]],
    env: dict[str, str],
    progress: Progress,
    total: int,
    log_dir: Path,
    timeout_s: float,
    state_dirs: list[Path] | None = None,
    on_running: Callable[[list[subprocess.Popen[bytes]]], None] | None = None,
) -> Measurement:
    """Start ``cmds`` (one process each: instances of one app), wait for completion, stop them.

    ``on_running`` is called once progress starts (the profiler attaches there).
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    logs = [open(log_dir / f"{label}-{i}.log", "wb") for i in range(len(cmds))]  # noqa: SIM115
    started = time.monotonic()
    procs = [
        subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        for cmd, out in zip(cmds, logs, strict=True)
    ]
    samplers = [PeakRss(p.pid) for p in procs]
    first: tuple[float, int] | None = None
    all_done: float | None = None
    cpu_start: list[float] = []
    cpu_end: list[float] = []
    try:
        with tqdm(total=total, desc=label, unit="ev", unit_scale=True, leave=False) as bar:
            while True:
                time.sleep(POLL_S)
                for sampler in samplers:
                    sampler.sample()
                now = time.monotonic()
                try:
                    done, complete = progress()
                except KafkaException as exc:
                    # The broker can refuse a query for a moment (a topic created a moment ago
                    # has no leader yet): ask again next poll; the timeout still bounds the wait.
                    log.warning("%s: progress not readable this time: %s", label, exc)
                    done, complete = bar.n, False
                bar.update(done - bar.n)
                if all_done is None and done >= total:
                    all_done = now
                if first is None and done > 0:
                    first = (now, done)
                    cpu_start = [sampler.cpu_seconds() for sampler in samplers]
                    if on_running is not None:
                        on_running(procs)
                if complete:
                    cpu_end = [sampler.cpu_seconds() for sampler in samplers]
                    break
                dead = [p for p in procs if p.poll() is not None]
                if dead:
                    raise RuntimeError(
                        f"{label}: pid {dead[0].pid} exited with {dead[0].returncode} before "
                        f"the output was complete (see {log_dir / label}-*.log)"
                    )
                if now - started > timeout_s:
                    raise TimeoutError(
                        f"{label}: not complete after {timeout_s:.0f} s ({done} done)"
                    )
    finally:
        for proc in procs:
            stop(proc)
        for out in logs:
            out.close()
    assert first is not None  # complete implies progress was seen
    events, seconds = steady_rate(first, (now, done))
    if events < total / 2:
        # Most of the input went before the first sample (a short run): fall back to wall time.
        events, seconds = total, now - started
        cpu_start = [0.0] * len(cpu_end)
    state = sum(dir_size_mb(d) for d in state_dirs) if state_dirs else None
    return Measurement(
        events=events,
        seconds=seconds,
        wall_seconds=now - started,
        peak_rss_mb=sum(s.megabytes for s in samplers),
        state_mb=state,
        cpu_seconds=tuple(end - start for start, end in zip(cpu_start, cpu_end, strict=True)),
        drain_seconds=now - (all_done if all_done is not None else now),
    )
