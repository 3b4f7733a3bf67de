"""Shared benchmark harness: a sandbox in its own process, a raw-aiohttp baseline, ratios."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

__all__ = [
    "Comparison",
    "Measurement",
    "Spread",
    "compare",
    "cpu_rows",
    "describe_setup",
    "print_table",
    "run_rounds",
    "sandbox_process",
]


@contextlib.contextmanager
def sandbox_process(*args: str) -> Iterator[str]:
    """Start ``python -m aihubmix_async.sandbox`` on a free port; yield its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "aihubmix_async.sandbox", "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"on (http://\S+)", line)
        if not match:
            raise RuntimeError(f"sandbox did not start: {line!r}")
        yield match.group(1)
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


@attrs.frozen
class Measurement:
    wall: float
    cpu: float
    n: int

    @property
    def cpu_per_request_us(self) -> float:
        return self.cpu / self.n * 1e6


async def measure(n: int, run: Callable[[], Awaitable[Any]]) -> Measurement:
    """Wall time and this process's CPU time (every thread of it; the sandbox runs in its own
    process, so its CPU is in neither side's figure) of one run of ``n`` requests.
    """
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    await run()
    return Measurement(time.perf_counter() - wall, time.process_time() - cpu, n)


@attrs.frozen
class Spread:
    """A median with the quartiles around it (of a handful of rounds: the spread is the point)."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        if len(values) < 2:
            return cls(values[0], values[0], values[0])
        low, mid, high = statistics.quantiles(values, n=4, method="inclusive")
        return cls(mid, low, high)

    def format(self, spec: str = ".2f") -> str:
        return f"{self.median:{spec}} ({self.low:{spec}}-{self.high:{spec}})"


@attrs.frozen
class Comparison:
    """SDK and raw runs of the same work, paired round by round."""

    sdk: list[Measurement]
    raw: list[Measurement]

    def cpu(self, side: str) -> Spread:
        runs = self.sdk if side == "sdk" else self.raw
        return Spread.of([m.cpu_per_request_us for m in runs])

    def wall(self, side: str) -> Spread:
        return Spread.of([m.wall for m in (self.sdk if side == "sdk" else self.raw)])

    def cpu_ratio(self) -> Spread:
        """SDK/raw CPU per request of each round (the two ran back to back, under the same
        load), as median and quartiles: a drift in the machine's load cancels within a pair.
        """
        return Spread.of([s.cpu / r.cpu for s, r in zip(self.sdk, self.raw, strict=True)])

    def wall_ratio(self) -> Spread:
        return Spread.of([s.wall / r.wall for s, r in zip(self.sdk, self.raw, strict=True)])


async def run_rounds(
    n: int, sides: Mapping[str, Callable[[], Awaitable[Any]]], rounds: int, warmup: int = 2
) -> dict[str, list[Measurement]]:
    """Run every side ``rounds`` times, interleaved, after ``warmup`` unmeasured runs of each
    (connections open, code paths and allocator warm).

    Each round runs every side once, the order rotating from round to round: no side is
    always first (or last) to meet the heap and the machine's load.
    """
    names = list(sides)
    for _ in range(warmup):
        for name in names:
            await sides[name]()
    runs: dict[str, list[Measurement]] = {name: [] for name in names}
    for i in range(rounds):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            runs[name].append(await measure(n, sides[name]))
    return runs


async def compare(
    n: int,
    sdk: Callable[[], Awaitable[Any]],
    raw: Callable[[], Awaitable[Any]],
    rounds: int,
    warmup: int = 2,
) -> Comparison:
    """SDK and raw, interleaved round by round (see :func:`run_rounds`)."""
    runs = await run_rounds(n, {"sdk": sdk, "raw": raw}, rounds, warmup)
    return Comparison(runs["sdk"], runs["raw"])


def median(values: list[float]) -> float:
    return statistics.median(values)


def cpu_rows(result: Comparison, label: str = "client CPU per request (us)") -> list[Row]:
    """Table rows: CPU per request and wall time, each side's median (quartiles), and the
    median of the paired per-round ratios (quartiles).
    """
    return [
        (label, result.cpu("sdk").format(".0f"), result.cpu("raw").format(".0f"),
         result.cpu_ratio().format()),
        ("wall time (s)", result.wall("sdk").format(".3f"), result.wall("raw").format(".3f"),
         result.wall_ratio().format()),
    ]  # fmt: skip


def peak_rss_mb() -> float:
    """Return this process's peak resident set size so far, in MB.

    Read from /proc's VmHWM, which belongs to the address space and so starts afresh at exec;
    getrusage's ru_maxrss survives fork+exec and would report the parent's peak.
    """
    try:
        with Path("/proc/self/status").open() as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


Row = tuple[str, str, str, str]


def print_table(rows: list[Row]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)))


def describe_setup(loop: str) -> str:
    """The event loop, JSON backend and Python the figures belong to."""
    from aihubmix_async._json import BACKEND

    return f"event loop: {loop}; JSON: {BACKEND}; python {sys.version.split()[0]}"


def use_uvloop_if_asked() -> str:
    if os.environ.get("BENCH_UVLOOP") == "1":
        import uvloop  # type: ignore[import-not-found, unused-ignore]

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        return "uvloop"
    return "asyncio"
