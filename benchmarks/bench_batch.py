"""client.batch vs a raw aiohttp loop, against the same sandbox (its own process), one run.

    python benchmarks/bench_batch.py            # all four scenarios (about two minutes)
    python benchmarks/bench_batch.py --quick    # smaller counts, for a smoke run
    python benchmarks/bench_batch.py --only 1 --n 10000   # CPU per request at 64 and 256

Raw baseline: one ClientSession, a semaphore, the same endpoint and payload, decoding the JSON
(and the base64 image where there is one) exactly as a hand-written client would. Both sides do
the work a user needs: with URL answers each has the image URLs; with inline images each decodes
the base64 into bytes that could be saved (the raw loop counts and drops them in its task; the
SDK also validates parameters, checks the bytes are an image and hands every outcome through
the batch's stream to the consumer, which counts it). SDK and raw runs alternate; medians are
reported with the SDK/raw ratio. Peak RSS is per process, so each memory figure comes from a
fresh child process.
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

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))

from _harness import (
    compare,
    median,
    peak_rss_mb,
    print_table,
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


def raw_runner(
    session: aiohttp.ClientSession, base_url: str, path: str, concurrency: int, *, inline: bool
) -> Callable[[int], Awaitable[int]]:
    url = f"{base_url}/v1/models/{path}/predictions"

    async def run(n: int) -> int:
        semaphore = asyncio.Semaphore(concurrency)
        images = 0

        async def one(i: int) -> None:
            nonlocal images
            async with semaphore:
                payload = {"input": {"prompt": f"prompt {i}"}}
                async with session.post(url, json=payload, headers=HEADERS) as response:
                    body = json.loads(await response.read())
            if inline:
                for item in body["output"]["b64_json"]:
                    images += len(base64.b64decode(item["bytesBase64"])) > 0
            else:
                images += sum(1 for item in body["output"] if item["url"])

        # The raw loop is written the common way: one task per request, gathered.
        await asyncio.gather(*(one(i) for i in range(n)))
        return images

    return run


async def scenario(
    base_url: str, n: int, concurrency: int, repeats: int, model: str, path: str, *, inline: bool
) -> tuple[list[float], list[float], list[float], list[float]]:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with (
        make_client(base_url, concurrency) as client,
        aiohttp.ClientSession(connector=connector) as session,
    ):
        raw = raw_runner(session, base_url, path, concurrency, inline=inline)
        sdk_runs, raw_runs = await compare(
            n,
            lambda: sdk_batch(client, n, concurrency, model, download=inline),
            lambda: raw(n),
            repeats,
        )
    return (
        [m.cpu_per_request_us for m in sdk_runs],
        [m.cpu_per_request_us for m in raw_runs],
        [m.wall for m in sdk_runs],
        [m.wall for m in raw_runs],
    )


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "n/a"


async def run_scenarios(args: argparse.Namespace) -> None:
    quick = args.quick
    n_small = 500 if quick else args.n
    repeats = 3 if quick else args.repeats

    only = args.only
    if only in (None, 1):
        await scenario_small(n_small, repeats, 64)
        await scenario_small(n_small, repeats, 256)
    if only in (None, 2):
        await scenario_latency(n_small, repeats)
    if only in (None, 3):
        await scenario_large(repeats, quick=quick)
    if only in (None, 4):
        scenario_memory(n_small, quick=quick)


async def scenario_small(n_small: int, repeats: int, concurrency: int) -> None:
    print(
        f"\n[1] URL-only responses, no server latency, {n_small} requests,"
        f" concurrency {concurrency}"
    )
    with sandbox_process() as base:
        s_cpu, r_cpu, s_wall, r_wall = await scenario(
            base, n_small, concurrency, repeats, "dall-e-3", "openai/dall-e-3", inline=False
        )
    print_table(
        [
            ("metric (median)", "sdk batch", "raw aiohttp", "sdk/raw"),
            (
                "client CPU per request (us)",
                f"{median(s_cpu):.0f}",
                f"{median(r_cpu):.0f}",
                ratio(median(s_cpu), median(r_cpu)),
            ),
            (
                "wall time (s)",
                f"{median(s_wall):.3f}",
                f"{median(r_wall):.3f}",
                ratio(median(s_wall), median(r_wall)),
            ),
        ]
    )


async def scenario_latency(n_small: int, repeats: int) -> None:
    latency = 0.05
    print(f"\n[2] 50 ms server latency, {n_small} requests, concurrency 256")
    with sandbox_process("--latency", str(latency)) as base:
        _, _, s_wall, r_wall = await scenario(
            base, n_small, 256, repeats, "dall-e-3", "openai/dall-e-3", inline=False
        )
    ideal = n_small * latency / 256
    print_table(
        [
            ("metric (median)", "sdk batch", "raw aiohttp", "sdk/raw"),
            (
                "wall time (s)",
                f"{median(s_wall):.3f}",
                f"{median(r_wall):.3f}",
                ratio(median(s_wall), median(r_wall)),
            ),
            (
                "wall / ideal n*latency/concurrency",
                f"{median(s_wall) / ideal:.2f}",
                f"{median(r_wall) / ideal:.2f}",
                "",
            ),
        ]
    )
    print(f"    ideal = {ideal:.3f} s")


async def scenario_large(repeats: int, *, quick: bool) -> None:
    n_big = 100 if quick else 300
    image_bytes = 1_500_000  # ~2 MB once base64-encoded in the JSON body
    print(f"\n[3] ~2 MB base64 image per response, {n_big} requests, concurrency 16")
    with sandbox_process("--image-bytes", str(image_bytes)) as base:
        s_cpu, r_cpu, s_wall, r_wall = await scenario(
            base, n_big, 16, repeats, "gpt-image-1", "openai/gpt-image-1", inline=True
        )
    body_mb = image_bytes * 4 / 3 / 1e6
    s_mbps = n_big * body_mb / median(s_wall)
    r_mbps = n_big * body_mb / median(r_wall)
    print_table(
        [
            ("metric (median)", "sdk batch", "raw aiohttp", "sdk/raw"),
            ("throughput (MB/s of JSON)", f"{s_mbps:.0f}", f"{r_mbps:.0f}", ratio(s_mbps, r_mbps)),
            (
                "client CPU per request (ms)",
                f"{median(s_cpu) / 1000:.2f}",
                f"{median(r_cpu) / 1000:.2f}",
                ratio(median(s_cpu), median(r_cpu)),
            ),
        ]
    )
    rss = [child_rss(mode, n_big, 16, image_bytes) for mode in ("sdk", "raw")]
    print(f"    peak RSS, fresh process each: sdk {rss[0]:.0f} MB, raw {rss[1]:.0f} MB "
          f"(ratio {ratio(rss[0], rss[1])})")  # fmt: skip


def scenario_memory(n_small: int, *, quick: bool) -> None:
    n_huge = 20_000 if quick else 100_000
    print(f"\n[4] batch runner peak RSS: {n_huge} vs {n_small} small requests, concurrency 256")
    small = child_rss("sdk", n_small, 256, 0)
    huge = child_rss("sdk", n_huge, 256, 0)
    print_table(
        [
            ("requests", "peak RSS (MB)", "", "ratio to small"),
            (str(n_small), f"{small:.1f}", "", "1.00"),
            (str(n_huge), f"{huge:.1f}", "", ratio(huge, small)),
        ]
    )


def child_rss(mode: str, n: int, concurrency: int, image_bytes: int) -> float:
    """Peak RSS (MB) of a fresh process running one batch of ``n``."""
    command = [sys.executable, __file__, "--child", mode, "--n", str(n),
               "--concurrency", str(concurrency), "--image-bytes", str(image_bytes)]  # fmt: skip
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


async def child(mode: str, n: int, concurrency: int, base_url: str, *, inline: bool) -> None:
    model, path = (
        ("gpt-image-1", "openai/gpt-image-1") if inline else ("dall-e-3", "openai/dall-e-3")
    )
    if mode == "sdk":
        async with make_client(base_url, concurrency) as client:
            await sdk_batch(client, n, concurrency, model, download=inline)
    else:
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            await raw_runner(session, base_url, path, concurrency, inline=inline)(n)
    print(f"{peak_rss_mb():.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
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
        print(f"event loop: {loop}; python {sys.version.split()[0]}")
        asyncio.run(run_scenarios(args))
