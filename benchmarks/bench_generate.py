"""Client.generate fanned out with asyncio.gather vs a raw aiohttp loop, same sandbox, one run.

    python benchmarks/bench_generate.py [--n 2000] [--concurrency 64] [--rounds 15] [--b64]

What both sides do, per request: ``n`` coroutines gathered at once, at most ``concurrency`` in
flight; POST the same JSON body with the key to the same sandbox (its own process: its CPU is
in neither figure) and decode the JSON answer. By default dall-e-3's URL answers: the SDK with
``download=False`` and the raw loop each end with the image URLs. With ``--b64``
gpt-image-1's inline base64 image: both decode it into bytes a user could save. The SDK also
validates the parameters, reads the answer's shape, checks each URL is well formed (or each
decoded image is one), prices the result and returns an ``ImageResult``; the raw loop checks
the status (an error answer must not pass for images) and nothing else.

Measurement: ``--warmup`` unmeasured runs of each side, then ``--rounds`` rounds in which both
sides run back to back (alternating which goes first). Client CPU is this process's CPU time.
Reported: each side's median (quartiles) and the median (quartiles) of the per-round SDK/raw
ratios, which cancels drift in the machine's load between rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))

from _harness import (
    compare,
    cpu_rows,
    describe_setup,
    print_table,
    sandbox_process,
    use_uvloop_if_asked,
)

from aihubmix_async import Client, ModelName, RetryPolicy
from aihubmix_async.sandbox import DEFAULT_API_KEY


async def main(
    n: int, concurrency: int, rounds: int, warmup: int, base_url: str, *, b64: bool
) -> None:
    client = Client(
        api_key=DEFAULT_API_KEY,
        base_url=base_url,
        max_concurrency=concurrency,
        retry=RetryPolicy(max_retries=0),
    )
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with client, aiohttp.ClientSession(connector=connector) as session:
        model = ModelName("gpt-image-1" if b64 else "dall-e-3")

        async def sdk() -> None:
            await asyncio.gather(
                *(client.generate(model, f"p{i}", download=False) for i in range(n))
            )

        semaphore = asyncio.Semaphore(concurrency)
        url = f"{base_url}/v1/models/openai/{model}/predictions"
        headers = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}

        async def one(i: int) -> object:
            async with (
                semaphore,
                session.post(url, json={"input": {"prompt": f"p{i}"}}, headers=headers) as r,
            ):
                if r.status >= 300:
                    raise RuntimeError(f"HTTP {r.status}")
                body = json.loads(await r.read())
            if b64:
                return base64.b64decode(body["output"]["b64_json"][0]["bytesBase64"])
            return [item["url"] for item in body["output"]]

        async def raw() -> None:
            await asyncio.gather(*(one(i) for i in range(n)))

        result = await compare(n, sdk, raw, rounds, warmup)
    answers = "base64 image" if b64 else "URL"
    print(
        f"generate x{n} ({answers} answers), concurrency {concurrency}, {rounds} interleaved"
        " rounds per side: median (quartiles); sdk/raw is the median of the per-round ratios"
    )
    print_table([("metric", "sdk", "raw aiohttp", "sdk/raw"), *cpu_rows(result)])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=15, help="measured rounds per side")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured runs per side first")
    parser.add_argument("--b64", action="store_true", help="gpt-image-1 inline base64 answers")
    args = parser.parse_args()
    loop = use_uvloop_if_asked()
    with sandbox_process() as base:
        print(describe_setup(loop))
        asyncio.run(main(args.n, args.concurrency, args.rounds, args.warmup, base, b64=args.b64))
