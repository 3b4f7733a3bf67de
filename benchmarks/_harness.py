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
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import attrs

__all__ = ["Measurement", "compare", "print_table", "sandbox_process"]


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
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    await run()
    return Measurement(time.perf_counter() - wall, time.process_time() - cpu, n)


async def compare(
    n: int,
    sdk: Callable[[], Awaitable[Any]],
    raw: Callable[[], Awaitable[Any]],
    repeats: int,
) -> tuple[list[Measurement], list[Measurement]]:
    """Run SDK and raw alternately ``repeats`` times (after one warm-up each)."""
    await sdk()
    await raw()
    sdk_runs, raw_runs = [], []
    for _ in range(repeats):
        sdk_runs.append(await measure(n, sdk))
        raw_runs.append(await measure(n, raw))
    return sdk_runs, raw_runs


def median(values: list[float]) -> float:
    return statistics.median(values)


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


def print_table(rows: list[tuple[str, str, str, str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)))


def use_uvloop_if_asked() -> str:
    if os.environ.get("BENCH_UVLOOP") == "1":
        import uvloop  # type: ignore[import-not-found, unused-ignore]

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        return "uvloop"
    return "asyncio"
