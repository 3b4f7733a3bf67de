"""Await a generation in an async app.

python examples/quickstart.py          # uses AIHUBMIX_API_KEY, or the built-in sandbox if unset
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

from aihubmix_async import Client, ContentPolicyError, RateLimitError
from aihubmix_async.sandbox import serve


@contextlib.asynccontextmanager
async def open_client() -> AsyncIterator[Client]:
    if os.environ.get("AIHUBMIX_API_KEY"):
        async with Client() as client:
            yield client
        return
    async with (
        serve() as sandbox,
        Client(api_key=sandbox.api_key, base_url=sandbox.base_url) as client,
    ):
        yield client


async def main() -> None:
    async with open_client() as client:
        result = await client.generate("gpt-image-1", "a lighthouse at dawn", size="1024x1024")
        path = await result.image.save("lighthouse.png")
        print(f"saved {path} ({result.image.mime_type}, request {result.request_id})")
        # Several at once: the client's own limit bounds the requests in flight.
        try:
            jobs = [f"a fox, take {i}" for i in range(4)]
            results = await asyncio.gather(
                *(
                    client.generate("imagen-4.0-fast-generate-001", p, numberOfImages=1)
                    for p in jobs
                )
            )
        except (RateLimitError, ContentPolicyError) as error:
            print(f"could not generate: {error}")
        else:
            print(f"{sum(len(r.images) for r in results)} more images")


if __name__ == "__main__":
    asyncio.run(main())
