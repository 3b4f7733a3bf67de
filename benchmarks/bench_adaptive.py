"""concurrency="auto" vs a fixed concurrency at the same maximum, against a key-limited sandbox.

    python benchmarks/bench_adaptive.py            # 150 requests, key limit 8, maximum 32
    python benchmarks/bench_adaptive.py --quick    # smaller, for a smoke run
    python benchmarks/bench_adaptive.py --limit 4 --maximum 64 --n 300

The sandbox runs in its own process with ``--key-concurrency LIMIT`` (an immediate 429 beyond
LIMIT requests in flight for the key) and ``--latency`` per submit. Side by side in one run,
alternating: the SDK's batch at ``concurrency=MAXIMUM`` and at ``concurrency="auto"`` (the
same client ``max_concurrency=MAXIMUM``), a raw aiohttp loop at MAXIMUM that retries 429s with
exponential backoff (what a hand-written client does), and a raw loop at exactly LIMIT (an
oracle that knows the key's limit: the floor for the total time). Reported: medians of total
time and of 429s answered (the sandbox's own count).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import random
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final, Literal

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))

from _harness import measure, median, print_table, sandbox_process, use_uvloop_if_asked

from aihubmix_async import Client, RetryPolicy
from aihubmix_async.sandbox import DEFAULT_API_KEY

HEADERS = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}
MODEL: Final = "gpt-image-1"
PATH = "openai/gpt-image-1"
#: Patient enough that every item of the fixed run ends done; the default backoff shape.
RETRY = RetryPolicy(max_retries=50)


async def sdk_run(client: Client, n: int, concurrency: int | Literal["auto"]) -> None:
    prompts = (f"prompt {i}" for i in range(n))
    async with client.batch(prompts, model=MODEL, concurrency=concurrency) as batch:
        async for outcome in batch:
            if outcome.result is None:
                raise RuntimeError(f"item failed: {outcome.error}")


def raw_runner(
    session: aiohttp.ClientSession, base_url: str, concurrency: int
) -> Callable[[int], Awaitable[None]]:
    url = f"{base_url}/v1/models/{PATH}/predictions"

    async def one(semaphore: asyncio.Semaphore, i: int) -> None:
        for attempt in range(RETRY.max_retries + 1):
            async with semaphore:
                payload = {"input": {"prompt": f"prompt {i}"}}
                async with session.post(url, json=payload, headers=HEADERS) as response:
                    body = await response.read()
                    status = response.status
            if status != 429:
                if status != 200:
                    raise RuntimeError(f"raw request failed: {status} {body[:200]!r}")
                json.loads(body)
                return
            delay = min(RETRY.max_backoff, RETRY.initial_backoff * 2**attempt)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
        raise RuntimeError("raw request: out of retries")

    async def run(n: int) -> None:
        semaphore = asyncio.Semaphore(concurrency)
        await asyncio.gather(*(one(semaphore, i) for i in range(n)))

    return run


async def limited_count(session: aiohttp.ClientSession, base_url: str) -> int:
    async with session.get(f"{base_url}/_sandbox/stats") as response:
        return int((await response.json())["limited"])


async def run(args: argparse.Namespace) -> None:
    n, limit, maximum = args.n, args.limit, args.maximum
    print(
        f"{n} requests, sandbox key limit {limit} in flight, latency {args.latency}s per submit,"
        f" client maximum {maximum}, {args.repeats} repeats, loop {use_uvloop_if_asked()}"
    )
    with sandbox_process(
        "--key-concurrency", str(limit), "--latency", str(args.latency)
    ) as base_url:
        connector = aiohttp.TCPConnector(limit=maximum)
        async with aiohttp.ClientSession(connector=connector) as session:
            runners: dict[str, Callable[[], Awaitable[None]]] = {}
            clients = []
            limits: list[tuple[str, int | Literal["auto"]]] = [
                (f"SDK fixed {maximum}", maximum),
                ("SDK auto", "auto"),
            ]
            for name, concurrency in limits:
                # One client per row, kept across repeats: "auto" learns, as in a long job.
                client = Client(
                    api_key=DEFAULT_API_KEY, base_url=base_url, max_concurrency=maximum, retry=RETRY
                )
                clients.append(client)
                runners[name] = functools.partial(sdk_run, client, n, concurrency)
            raw_max, raw_limit = (
                raw_runner(session, base_url, maximum),
                raw_runner(session, base_url, limit),
            )
            runners[f"raw aiohttp {maximum} + backoff"] = lambda: raw_max(n)
            runners[f"raw aiohttp {limit} (knows the limit)"] = lambda: raw_limit(n)
            walls: dict[str, list[float]] = {name: [] for name in runners}
            refusals: dict[str, list[int]] = {name: [] for name in runners}
            # No warm-up round: "auto" starts cold in the first repeat, as a fresh client would.
            for _ in range(args.repeats):
                for name, runner in runners.items():
                    before = await limited_count(session, base_url)
                    measured = await measure(n, runner)
                    walls[name].append(measured.wall)
                    refusals[name].append(await limited_count(session, base_url) - before)
            for client in clients:
                await client.aclose()
    fixed = median(walls[f"SDK fixed {maximum}"])
    rows = [("run", "total s (median)", "429s (median)", "time vs SDK fixed")]
    for name in runners:
        wall = median(walls[name])
        rows.append(
            (name, f"{wall:.2f}", f"{median([float(r) for r in refusals[name]]):.0f}",
             f"{wall / fixed:.2f}")
        )  # fmt: skip
    print_table(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=150)
    parser.add_argument("--limit", type=int, default=8, help="the sandbox's per-key limit")
    parser.add_argument("--maximum", type=int, default=32, help="the client's max_concurrency")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.n, args.repeats = 60, 1
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
