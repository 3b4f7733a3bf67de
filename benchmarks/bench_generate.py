"""Client.generate fanned out with asyncio.gather vs a raw aiohttp loop, same sandbox, one run.

    python benchmarks/bench_generate.py [--n 2000] [--concurrency 64] [--repeats 3] [--b64]

Both sides POST the same payload to the same sandbox (in its own process) and decode the JSON:
by default dall-e-3's URL answers (the SDK with ``download=False``, the raw loop reading the
URLs), with ``--b64`` gpt-image-1's inline base64 image (both sides decode it into bytes a user
could save). The SDK also validates parameters, parses the response shape, checks URLs are well
formed and decoded bytes are an image, and returns an ``ImageResult``. Reported: medians of
wall time and client CPU per request, and the SDK/raw ratio.
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

from _harness import compare, median, print_table, sandbox_process, use_uvloop_if_asked

from aihubmix_async import Client, ModelName, RetryPolicy
from aihubmix_async.sandbox import DEFAULT_API_KEY


async def main(n: int, concurrency: int, repeats: int, base_url: str, *, b64: bool) -> None:
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
                body = json.loads(await r.read())
            if b64:
                return base64.b64decode(body["output"]["b64_json"][0]["bytesBase64"])
            return [item["url"] for item in body["output"]]

        async def raw() -> None:
            await asyncio.gather(*(one(i) for i in range(n)))

        sdk_runs, raw_runs = await compare(n, sdk, raw, repeats)
    s_cpu = median([m.cpu_per_request_us for m in sdk_runs])
    r_cpu = median([m.cpu_per_request_us for m in raw_runs])
    s_wall = median([m.wall for m in sdk_runs])
    r_wall = median([m.wall for m in raw_runs])
    answers = "base64 image" if b64 else "URL"
    print(f"generate x{n} ({answers} answers), concurrency {concurrency}, {repeats} runs, medians")
    print_table(
        [
            ("metric", "sdk", "raw aiohttp", "sdk/raw"),
            ("client CPU per request (us)", f"{s_cpu:.0f}", f"{r_cpu:.0f}", f"{s_cpu / r_cpu:.2f}"),
            ("wall time (s)", f"{s_wall:.2f}", f"{r_wall:.2f}", f"{s_wall / r_wall:.2f}"),
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--b64", action="store_true", help="gpt-image-1 inline base64 answers")
    args = parser.parse_args()
    loop = use_uvloop_if_asked()
    with sandbox_process() as base:
        print(f"event loop: {loop}; sandbox: {base}")
        asyncio.run(main(args.n, args.concurrency, args.repeats, base, b64=args.b64))
