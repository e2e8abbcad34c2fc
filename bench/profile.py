"""Where a processor spends its time during a benchmark run: py-spy on the live process.

``python -m bench --profile 20`` attaches py-spy to the first process of each contender's
first run once it is making progress (start-up excluded), samples it for that many seconds,
and writes the collapsed stacks to ``bench/results/profiles/<label>.txt`` (load them in
speedscope or any flame-graph tool). :func:`top_frames` ranks functions by the share of samples
they are on the stack (inclusive) and at the top of it (self), which is what the README's
"profile top entries" come from. Sampling is out of process (``--nonblocking``), so it costs the
processor little, but a profiled run's rate is still not quoted as a result.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

#: py-spy's raw frame: ``function (path/to/file.py:line)``; the line is dropped when ranking.
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]+)(?::\d+)?\)$")


@dataclass(frozen=True)
class FrameShare:
    frame: str
    inclusive: float
    own: float


class Sampler:
    """An ``on_running`` hook for :func:`bench.measure.run_until_done` starting py-spy."""

    def __init__(self, out: Path, seconds: float, rate_hz: int = 200) -> None:
        self.out, self.seconds, self.rate_hz = out, seconds, rate_hz
        self.proc: subprocess.Popen[bytes] | None = None

    def __call__(self, procs: list[subprocess.Popen[bytes]]) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                "py-spy", "record", "--pid", str(procs[0].pid), "--rate", str(self.rate_hz),
                "--duration", str(int(self.seconds)), "--format", "raw", "--nonblocking",
                "--output", str(self.out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def wait(self) -> None:
        """Until py-spy has written its output (it stops when its target exits)."""
        if self.proc is not None:
            self.proc.wait(self.seconds + 30)


def frame_name(frame: str) -> str | None:
    """``func (file.py:12)`` -> ``file.py:func``: one entry per function, whatever the line;
    None for py-spy's process and thread pseudo-frames."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return None
    return f"{Path(match['file']).name}:{match['func']}"


def top_frames(collapsed: str, limit: int = 15, by: str = "own") -> list[FrameShare]:
    """Functions by share of samples (``stack;stack;leaf count`` lines), ``by`` "own" (where
    the samples land, whatever called them) or "inclusive" (on the stack at all)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [name for f in stack.split(";") if (name := frame_name(f)) is not None]
        if not frames:
            continue
        total += count
        for name in dict.fromkeys(frames):  # a recursive function counts once per sample
            inclusive[name] += count
        own[frames[-1]] += count
    ranked = (own if by == "own" else inclusive).most_common(limit)
    return [FrameShare(name, inclusive[name] / total, own[name] / total) for name, _n in ranked]
