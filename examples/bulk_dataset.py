"""Bulk generation with the batch runner: stream outcomes, save as they arrive, lose nothing.

python examples/bulk_dataset.py out/   # uses AIHUBMIX_API_KEY, or the built-in sandbox if unset
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from quickstart import open_client  # type: ignore[import-not-found, unused-ignore]

from aihubmix_async import BatchProgress

PROMPTS = [f"a watercolour of a lighthouse, variation {i}" for i in range(40)]


def progress(event: BatchProgress) -> None:
    if event.done % 10 == 0:
        print(f"{event.done} done, {event.failed} failed, {event.images_per_second:.1f} images/s")


async def main(out: Path) -> None:
    async with open_client() as client:
        async with client.batch(
            PROMPTS, model="flux-kontext-pro", concurrency=8, on_progress=progress
        ) as outcomes:
            async for outcome in outcomes:
                if outcome.result is not None:
                    await outcome.result.image.save(
                        out / f"{outcome.index:04d}{outcome.result.image.extension}"
                    )
                else:
                    print(f"item {outcome.index} failed: {outcome.error}")
        print(outcomes.summary)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1] if len(sys.argv) > 1 else "bulk-out")))
