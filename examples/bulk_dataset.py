"""Bulk generation with the batch runner: stream outcomes, save as they arrive, lose nothing.

python examples/bulk_dataset.py out/   # uses AIHUBMIX_API_KEY, or the built-in sandbox if unset

Every item has an id, so its file name is known up front and a rerun skips what is saved.
Ctrl-C stops taking new items and lets the ones in flight (already billed) finish and be saved.
For millions of prompts, crash-proof commits, changed-input detection and task resumption, use
the command line, which keeps a run journal: ``aihubmix-async batch prompts.jsonl -o out/``.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from quickstart import open_client  # type: ignore[import-not-found, unused-ignore]

from aihubmix_async import BatchProgress, ImageRequest

PROMPTS = [f"a watercolour of a lighthouse, variation {i}" for i in range(40)]


def progress(event: BatchProgress) -> None:
    if event.done % 10 == 0:
        print(f"{event.done} done, {event.failed} failed, {event.images_per_second:.1f} images/s")


def not_saved(out: Path) -> list[ImageRequest]:
    """The items whose image is not in ``out`` yet (a rerun picks up where it stopped)."""
    out.mkdir(parents=True, exist_ok=True)
    saved = {path.stem for path in out.iterdir()}
    return [
        ImageRequest(prompt=prompt, id=f"{i:04d}")
        for i, prompt in enumerate(PROMPTS)
        if f"{i:04d}" not in saved
    ]


async def main(out: Path) -> None:
    todo = not_saved(out)  # a quick directory listing before the loop has work to do
    async with open_client() as client:
        async with client.batch(
            todo, model="flux-kontext-pro", concurrency=8, on_progress=progress
        ) as outcomes:
            asyncio.get_running_loop().add_signal_handler(signal.SIGINT, outcomes.stop)
            async for outcome in outcomes:
                if outcome.result is not None:
                    image = outcome.result.image
                    await image.save(out / f"{outcome.request.id}{image.extension}")
                else:
                    print(f"item {outcome.request.id} failed: {outcome.error}")
        print(outcomes.summary)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1] if len(sys.argv) > 1 else "bulk-out")))
