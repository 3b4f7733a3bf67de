"""CPU per item: the ``batch`` command (journal, durable commits) vs the batch runner alone.

    python benchmarks/bench_cli.py                       # 20,000 items, 3 rounds (minutes)
    python benchmarks/bench_cli.py --n 2000 --repeats 1  # a smoke run

Both sides run against one sandbox in its own process, with small inline images (gpt-image-1
answers base64 PNGs) at concurrency 64, as child processes measured the same way: user+system
CPU from ``getrusage(RUSAGE_CHILDREN)`` (interpreter start-up included on both sides).

* runner: ``client.batch`` over the prompts, each image decoded, nothing written;
* CLI: ``aihubmix-async batch prompts.txt -m gpt-image-1 -o DIR --concurrency 64``: every item
  is read from the prompts file, staged in the journal, generated, its image written and fsynced,
  its row committed, and only then counted done; ``metadata.jsonl`` is exported at the end.

Rounds alternate the two sides; medians and the CLI/runner ratio are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Final

sys.path.insert(0, str(Path(__file__).parent))

from _harness import median, print_table, sandbox_process

from aihubmix_async import Client, RetryPolicy
from aihubmix_async.sandbox import DEFAULT_API_KEY

MODEL: Final = "gpt-image-1"
CONCURRENCY = 64


async def runner_only(n: int, base_url: str) -> None:
    """The baseline, run in a child process: the batch runner alone, nothing written."""
    client = Client(api_key=DEFAULT_API_KEY, base_url=base_url, max_concurrency=CONCURRENCY,
                    retry=RetryPolicy(max_retries=0))  # fmt: skip
    images = 0
    async with (
        client,
        client.batch(
            (f"prompt {i}" for i in range(n)), model=MODEL, concurrency=CONCURRENCY
        ) as outcomes,
    ):
        async for outcome in outcomes:
            if outcome.result is None:
                raise RuntimeError(f"item failed: {outcome.error}")
            images += bool(outcome.result.images[0].data)
    assert images == n


def child(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run a child process; its (CPU seconds, wall seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runner", nargs=2, metavar=("N", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.runner:
        asyncio.run(runner_only(int(args.runner[0]), args.runner[1]))
        return
    n = args.n
    work = Path(tempfile.mkdtemp(prefix="bench-cli-"))
    prompts = work / "prompts.txt"
    prompts.write_text("".join(f"prompt {i}\n" for i in range(n)))
    cpu: dict[str, list[float]] = {"runner": [], "cli": []}
    wall: dict[str, list[float]] = {"runner": [], "cli": []}
    try:
        with sandbox_process() as base_url:
            env = {**os.environ, "AIHUBMIX_API_KEY": DEFAULT_API_KEY,
                   "AIHUBMIX_BASE_URL": base_url}  # fmt: skip
            runner = [sys.executable, __file__, "--runner", str(n), base_url]
            for round_ in range(args.repeats):
                out = work / f"out-{round_}"
                cli = [sys.executable, "-m", "aihubmix_async", "batch", str(prompts), "-m", MODEL,
                       "-o", str(out), "--concurrency", str(CONCURRENCY)]  # fmt: skip
                for side, command in (("runner", runner), ("cli", cli)):
                    c, w = child(command, env)
                    cpu[side].append(c)
                    wall[side].append(w)
                    print(f"round {round_ + 1} {side}: CPU {c:.2f}s, wall {w:.2f}s", flush=True)
                done = sum(1 for _ in (out / "train" / "metadata.jsonl").open())
                assert done == n, f"the CLI saved {done} of {n}"
                # Rounds' folders are deleted at the end, not here: on an ext4 without a
                # journal, creating files right after deleting thousands walks the recently
                # deleted inodes on every create (kernel time billed to the next round's CLI).
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{n} items, {MODEL} (inline PNG), concurrency {CONCURRENCY}, {args.repeats} rounds")
    rows = [("side", "CPU s (median)", "CPU us/item", "wall s (median)")]
    for side in ("runner", "cli"):
        c, w = median(cpu[side]), median(wall[side])
        rows.append((side, f"{c:.2f}", f"{c / n * 1e6:.0f}", f"{w:.2f}"))
    print_table(rows)
    print(f"CPU ratio cli/runner: {median(cpu['cli']) / median(cpu['runner']):.2f}x"
          f"  (rounds: cli {[round(x, 2) for x in cpu['cli']]},"
          f" runner {[round(x, 2) for x in cpu['runner']]})")  # fmt: skip


if __name__ == "__main__":
    main()
