"""Ray Data (2 actors x 16 in flight) against the batch runner in one process (32 in flight).

python benchmarks/bench_scale.py [--prompts 2000] [--latency 0.25] [--failures 20]

One sandbox in its own process answers every submit after ``--latency`` seconds. Throughput is
read from the sandbox's own submit times (first to last submit), so Ray's engine start (ray.init,
actor start-up) is left out and both sides are timed by the same clock. The Ray run covers all
but the last 5 % of the prompts with ``--failures`` scripted refusals; the rerun over every
prompt with ``skip_done`` must submit exactly the missing and failed ids. Also printed: the
peak RSS of each actor process (VmHWM) and of the single process. The ideal at 32 in flight is
32 / latency generations per second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Self

from _harness import peak_rss_mb, print_table, sandbox_process

from aihubmix_async import Client

KEY = "sk-sandbox"


def stats(base_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base_url}/_sandbox/stats", timeout=30) as answer:  # noqa: S310
        data: dict[str, Any] = json.load(answer)
        return data


def script(base_url: str, fault: dict[str, Any]) -> None:
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{base_url}/_sandbox/faults", data=json.dumps(fault).encode(), method="POST"
    )
    urllib.request.urlopen(request, timeout=30).close()  # noqa: S310


def submit_rate(base_url: str, n: int) -> float:
    """Submits per second over the last ``n`` submits, by the sandbox's clock."""
    times: list[float] = sorted(stats(base_url)["submit_times"])[-n:]
    return (len(times) - 1) / (times[-1] - times[0])


def prompts(n: int) -> list[dict[str, str]]:
    return [{"id": f"{i:05d}", "prompt": f"a lighthouse, study {i}"} for i in range(n)]


async def single_process(base_url: str, n: int) -> tuple[int, int]:
    ok = failed = 0
    async with (
        Client(api_key=KEY, base_url=base_url, max_concurrency=32) as client,
        client.batch(prompts(n), model="gpt-image-1", concurrency=32) as outcomes,
    ):
        async for outcome in outcomes:
            ok, failed = ok + outcome.ok, failed + (not outcome.ok)
    return ok, failed


class ActorMemory:
    """Samples the peak RSS (VmHWM) of every Ray map actor process while a run goes on."""

    def __init__(self) -> None:
        self.peaks: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            for proc in Path("/proc").glob("[0-9]*"):
                try:
                    if b"MapWorker" not in (proc / "cmdline").read_bytes():
                        continue
                    for line in (proc / "status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            peak = int(line.split()[1]) / 1024
                            pid = int(proc.name)
                            self.peaks[pid] = max(self.peaks.get(pid, 0.0), peak)
                except OSError:
                    continue


def ray_runs(base_url: str, n: int, failures: int) -> dict[str, Any]:
    import ray
    import ray.data

    from aihubmix_async.ray import generate_images

    os.environ["AIHUBMIX_API_KEY"], os.environ["AIHUBMIX_BASE_URL"] = KEY, base_url
    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    ray.data.DataContext.get_current().enable_progress_bars = False
    engine = time.perf_counter() - started
    first = n - n // 20
    out = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        script(base_url, {"kind": "status", "status": 400, "times": failures})
        before = stats(base_url)["submits"]
        began = time.perf_counter()
        with ActorMemory() as memory:
            generate_images(
                ray.data.from_items(prompts(first)), model="gpt-image-1", actors=2,
                concurrency_per_actor=16,
            ).write_parquet(str(out / "run-1"))  # fmt: skip
        wall = time.perf_counter() - began
        submits = stats(base_url)["submits"] - before
        rate = submit_rate(base_url, submits)
        written = ray.data.read_parquet(str(out / "run-1")).select_columns(["error_type"])
        error_rows = sum(row["error_type"] is not None for row in written.take_all())
        before = stats(base_url)["submits"]
        generate_images(
            ray.data.from_items(prompts(n)), model="gpt-image-1", actors=2,
            concurrency_per_actor=16, skip_done=out,
        ).write_parquet(str(out / "run-2"))  # fmt: skip
        resubmits = stats(base_url)["submits"] - before
    finally:
        ray.shutdown()
    return {
        "engine": engine, "wall": wall, "submits": submits, "rate": rate,
        "error_rows": error_rows, "expected_rerun": n - first + error_rows, "resubmits": resubmits,
        "actor_rss": sorted(memory.peaks.values()),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompts", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.25)
    parser.add_argument("--failures", type=int, default=20)
    args = parser.parse_args()
    n = args.prompts
    with sandbox_process("--latency", str(args.latency), "--api-key", KEY) as base_url:
        began = time.perf_counter()
        ok, failed = asyncio.run(single_process(base_url, n))
        single_wall = time.perf_counter() - began
        single_rate = submit_rate(base_url, n)
        single_rss = peak_rss_mb()
        ray_figures = ray_runs(base_url, n, args.failures)
    ideal = 32 / args.latency
    r = ray_figures
    print(f"{n} prompts, {args.latency * 1000:.0f} ms latency; ideal {ideal:.0f}/s at 32 in flight")
    print_table([
        ("run", "generations/s", "wall s", "notes"),
        ("batch runner, 1 process x 32", f"{single_rate:.1f}", f"{single_wall:.1f}",
         f"{ok} ok, {failed} failed, peak RSS {single_rss:.0f} MB"),
        ("Ray Data, 2 actors x 16", f"{r['rate']:.1f}", f"{r['wall']:.1f}",
         f"engine start {r['engine']:.1f} s (excluded); {r['submits']} submits,"
         f" {r['error_rows']} error rows; actor peak RSS "
         + ", ".join(f"{mb:.0f} MB" for mb in r["actor_rss"])),
    ])  # fmt: skip
    print(f"Ray / single process throughput: {r['rate'] / single_rate:.2f}x (target >= 0.90x)")
    print(
        f"rerun with skip_done: {r['resubmits']} submits for {r['expected_rerun']} missing or"
        f" failed ids ({'exact' if r['resubmits'] == r['expected_rerun'] else 'MISMATCH'})"
    )


if __name__ == "__main__":
    main()
