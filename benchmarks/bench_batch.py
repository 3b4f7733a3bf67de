"""client.batch vs raw aiohttp loops, against the same sandbox (its own process), one run.

    python benchmarks/bench_batch.py            # all four scenarios (a few minutes)
    python benchmarks/bench_batch.py --quick    # smaller counts, for a smoke run
    python benchmarks/bench_batch.py --only 1 --n 10000   # CPU per request at 64 and 256

What every side does per item: POST the same JSON body with the key to the same endpoint over
one ClientSession (at most ``concurrency`` in flight), check the status and decode the JSON
answer. With URL answers each side ends with the image URLs; with inline images each decodes
the base64 into bytes that could be saved. The SDK batch also validates parameters, checks each
URL is well formed (or the bytes are an image), prices the result, and hands every outcome
through the batch's stream to the consumer, which counts its images; a raw loop counts them in
the task that made them (where a hand-written client would use them).

Two raw loops, as people write them: "gather" (one task per item, gathered, a semaphore bounding
them: the common recipe) and "pool" (``concurrency`` worker tasks pulling from one iterator:
what the batch runner itself is, and cheaper at scale). Scenario 1 reports the SDK against both.

Measurement: ``--warmup`` unmeasured runs of every side, then ``--rounds`` rounds in which
every side runs once, in rotating order. Client CPU is this process's CPU time (the sandbox's
is in its own process). Reported: each side's median (quartiles) and the median (quartiles)
of the per-round ratios, which cancels drift in the machine's load between rounds. Peak RSS
is per process, so each memory figure comes from a fresh child process.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))

from _harness import (
    Comparison,
    Spread,
    cpu_rows,
    describe_setup,
    peak_rss_mb,
    print_table,
    run_rounds,
    sandbox_process,
    use_uvloop_if_asked,
)

from aihubmix_async import Client, ModelName, RetryPolicy
from aihubmix_async.sandbox import DEFAULT_API_KEY

HEADERS = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}


def make_client(base_url: str, concurrency: int) -> Client:
    return Client(
        api_key=DEFAULT_API_KEY,
        base_url=base_url,
        max_concurrency=concurrency,
        retry=RetryPolicy(max_retries=0),
    )


async def sdk_batch(client: Client, n: int, concurrency: int, model: str, *, download: bool) -> int:
    images = 0
    prompts = (f"prompt {i}" for i in range(n))
    async with client.batch(
        prompts, model=ModelName(model), concurrency=concurrency, download=download
    ) as batch:
        async for outcome in batch:
            if outcome.result is None:
                raise RuntimeError(f"item failed: {outcome.error}")
            images += len(outcome.result.images)
    return images


def count_images(body: Any, *, inline: bool) -> int:
    """What a hand-written client does with an answer: the image URLs, or the decoded bytes."""
    if inline:
        return sum(
            len(base64.b64decode(item["bytesBase64"])) > 0 for item in body["output"]["b64_json"]
        )
    return sum(1 for item in body["output"] if item["url"])  # fmt: skip


def raw_gather(
    session: aiohttp.ClientSession, base_url: str, path: str, concurrency: int, *, inline: bool
) -> Callable[[int], Awaitable[int]]:
    """One task per item, gathered, a semaphore bounding how many run."""
    url = f"{base_url}/v1/models/{path}/predictions"

    async def run(n: int) -> int:
        semaphore = asyncio.Semaphore(concurrency)
        images = 0

        async def one(i: int) -> None:
            nonlocal images
            async with (  # the request inline, as written by hand: no helper coroutine
                semaphore,
                session.post(url, json={"input": {"prompt": f"prompt {i}"}}, headers=HEADERS) as r,
            ):
                if r.status >= 300:
                    raise RuntimeError(f"HTTP {r.status}")
                body = json.loads(await r.read())
            images += count_images(body, inline=inline)

        await asyncio.gather(*(one(i) for i in range(n)))
        return images

    return run


def raw_pool(
    session: aiohttp.ClientSession, base_url: str, path: str, concurrency: int, *, inline: bool
) -> Callable[[int], Awaitable[int]]:
    """``concurrency`` workers pulling items from one iterator."""
    url = f"{base_url}/v1/models/{path}/predictions"

    async def run(n: int) -> int:
        items = iter(range(n))
        images = 0

        async def worker() -> None:
            nonlocal images
            for i in items:
                payload = {"input": {"prompt": f"prompt {i}"}}
                async with session.post(url, json=payload, headers=HEADERS) as r:
                    if r.status >= 300:
                        raise RuntimeError(f"HTTP {r.status}")
                    body = json.loads(await r.read())
                images += count_images(body, inline=inline)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return images

    return run


async def scenario(
    base_url: str,
    n: int,
    concurrency: int,
    rounds: int,
    warmup: int,
    model: str,
    *,
    inline: bool,
    pool: bool = False,
) -> dict[str, Comparison]:
    """The SDK against the gather loop (and the pool loop with ``pool``), interleaved."""
    path = f"openai/{model}"
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with (
        make_client(base_url, concurrency) as client,
        aiohttp.ClientSession(connector=connector) as session,
    ):
        sides: dict[str, Callable[[], Awaitable[Any]]] = {
            "sdk": lambda: sdk_batch(client, n, concurrency, model, download=inline),
            "gather": lambda: raw_gather(session, base_url, path, concurrency, inline=inline)(n),
        }
        if pool:
            sides["pool"] = lambda: raw_pool(session, base_url, path, concurrency, inline=inline)(n)
        runs = await run_rounds(n, sides, rounds, warmup)
    return {name: Comparison(runs["sdk"], runs[name]) for name in runs if name != "sdk"}


async def run_scenarios(args: argparse.Namespace) -> None:
    quick = args.quick
    n_small = 500 if quick else args.n
    rounds = 3 if quick else args.rounds
    warmup = 1 if quick else args.warmup
    only = args.only
    if only in (None, 1):
        await scenario_small(n_small, rounds, warmup, 64)
        await scenario_small(n_small, rounds, warmup, 256)
    if only in (None, 2):
        await scenario_latency(n_small, rounds, warmup)
    if only in (None, 3):
        await scenario_large(rounds, warmup, quick=quick)
    if only in (None, 4):
        scenario_memory(n_small, quick=quick)


def print_rounds_note(rounds: int) -> None:
    print(
        f"    {rounds} interleaved rounds per side: median (quartiles); sdk/raw is the median"
        " (quartiles) of the per-round ratios"
    )


async def scenario_small(n_small: int, rounds: int, warmup: int, concurrency: int) -> None:
    print(
        f"\n[1] URL-only responses, no server latency, {n_small} requests,"
        f" concurrency {concurrency}"
    )
    print_rounds_note(rounds)
    with sandbox_process() as base:
        result = await scenario(
            base, n_small, concurrency, rounds, warmup, "dall-e-3", inline=False, pool=True
        )
    for name, label in (("gather", "raw aiohttp, gather"), ("pool", "raw aiohttp, pool")):
        print_table([("metric", "sdk batch", label, "sdk/raw"), *cpu_rows(result[name])])


async def scenario_latency(n_small: int, rounds: int, warmup: int) -> None:
    latency = 0.05
    print(f"\n[2] 50 ms server latency, {n_small} requests, concurrency 256")
    print_rounds_note(rounds)
    with sandbox_process("--latency", str(latency)) as base:
        result = (await scenario(base, n_small, 256, rounds, warmup, "dall-e-3", inline=False))[
            "gather"
        ]
    ideal = n_small * latency / 256
    print_table(
        [
            ("metric", "sdk batch", "raw aiohttp, gather", "sdk/raw"),
            cpu_rows(result)[1],
            (
                "wall / ideal n*latency/concurrency",
                f"{result.wall('sdk').median / ideal:.2f}",
                f"{result.wall('raw').median / ideal:.2f}",
                "",
            ),
        ]
    )
    print(f"    ideal = {ideal:.3f} s")


async def scenario_large(rounds: int, warmup: int, *, quick: bool) -> None:
    n_big = 100 if quick else 300
    image_bytes = 1_500_000  # ~2 MB once base64-encoded in the JSON body
    print(f"\n[3] ~2 MB base64 image per response, {n_big} requests, concurrency 16")
    print_rounds_note(rounds)
    with sandbox_process("--image-bytes", str(image_bytes)) as base:
        result = (await scenario(base, n_big, 16, rounds, warmup, "gpt-image-1", inline=True))[
            "gather"
        ]
    body_mb = image_bytes * 4 / 3 / 1e6
    s_mbps = Spread.of([n_big * body_mb / m.wall for m in result.sdk])
    r_mbps = Spread.of([n_big * body_mb / m.wall for m in result.raw])
    ratio = Spread.of([r.wall / s.wall for s, r in zip(result.sdk, result.raw, strict=True)])
    print_table(
        [
            ("metric", "sdk batch", "raw aiohttp, gather", "sdk/raw"),
            ("throughput (MB/s of JSON)", s_mbps.format(".0f"), r_mbps.format(".0f"),
             ratio.format()),
            *cpu_rows(result, "client CPU per request (us)")[:1],
        ]
    )  # fmt: skip
    rss = [child_rss(mode, n_big, 16, image_bytes) for mode in ("sdk", "raw")]
    print(f"    peak RSS, fresh process each: sdk {rss[0]:.0f} MB, raw {rss[1]:.0f} MB "
          f"(ratio {rss[0] / rss[1]:.2f})")  # fmt: skip


def scenario_memory(n_small: int, *, quick: bool) -> None:
    n_huge = 20_000 if quick else 100_000
    print(f"\n[4] batch runner peak RSS: {n_huge} vs {n_small} small requests, concurrency 256")
    small = child_rss("sdk", n_small, 256, 0)
    huge = child_rss("sdk", n_huge, 256, 0)
    print_table(
        [
            ("requests", "peak RSS (MB)", "", "ratio to small"),
            (str(n_small), f"{small:.1f}", "", "1.00"),
            (str(n_huge), f"{huge:.1f}", "", f"{huge / small:.2f}"),
        ]
    )


def child_rss(mode: str, n: int, concurrency: int, image_bytes: int) -> float:
    """Peak RSS (MB) of a fresh process running one batch of ``n``."""
    command = [sys.executable, __file__, "--child", mode, "--n", str(n),
               "--concurrency", str(concurrency), "--image-bytes", str(image_bytes)]  # fmt: skip
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


async def child(mode: str, n: int, concurrency: int, base_url: str, *, inline: bool) -> None:
    model = "gpt-image-1" if inline else "dall-e-3"
    path = f"openai/{model}"
    if mode == "sdk":
        async with make_client(base_url, concurrency) as client:
            await sdk_batch(client, n, concurrency, model, download=inline)
    else:
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            await raw_gather(session, base_url, path, concurrency, inline=inline)(n)
    print(f"{peak_rss_mb():.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=11, help="measured rounds per side")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured runs per side first")
    parser.add_argument("--only", type=int, choices=[1, 2, 3, 4], help="run one scenario")
    parser.add_argument("--child", choices=["sdk", "raw"])
    parser.add_argument("--n", type=int, default=2000, help="items (children; scenario 1-2 size)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--image-bytes", type=int, default=0)
    args = parser.parse_args()
    loop = use_uvloop_if_asked()
    if args.child:
        extra = ("--image-bytes", str(args.image_bytes)) if args.image_bytes else ()
        with sandbox_process(*extra) as base:
            inline = bool(args.image_bytes)
            asyncio.run(child(args.child, args.n, args.concurrency, base, inline=inline))
    else:
        print(describe_setup(loop))
        asyncio.run(run_scenarios(args))
