"""The ``aihubmix-async`` command (also ``python -m aihubmix_async``)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._client import Client
from ._config import PollPolicy
from ._errors import AIHubMixError
from .sandbox import serve

__all__ = ["main"]

DEMO_JOBS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("gpt-image-1", "a lighthouse on a cliff at dawn, watercolour", {"quality": "low"}),
    ("imagen-4.0-fast-generate-001", "a red fox in fresh snow", {"numberOfImages": 2}),
    ("flux-kontext-max", "a paper boat on a rainy street", {"aspect_ratio": "16:9"}),
    ("ideogram/V3", "a poster that says HELLO", {"rendering_speed": "TURBO"}),
    ("doubao-seedream-4-0", "a bowl of ramen, studio light", {"size": "2K"}),
    ("FLUX-1.1-pro", "a brutalist library at night", {}),
)


async def _demo(out: Path) -> int:
    """Generate a few images across families through an in-process sandbox."""
    fast_poll = PollPolicy(initial_interval=0.05, max_interval=0.2)
    async with serve() as sandbox:
        client = Client(api_key=sandbox.api_key, base_url=sandbox.base_url, poll=fast_poll)
        async with client:
            started = time.perf_counter()
            results = await asyncio.gather(
                *(client.generate(model, prompt, **params) for model, prompt, params in DEMO_JOBS),
                return_exceptions=True,
            )
            failed = 0
            for (model, _, _), result in zip(DEMO_JOBS, results, strict=True):
                if isinstance(result, BaseException):
                    failed += 1
                    print(f"FAILED {model}: {result}", file=sys.stderr)
                    continue
                stem = model.replace("/", "_")
                for i, image in enumerate(result.images):
                    path = await image.save(out / f"{stem}-{i}{image.extension}")
                    print(f"{model:32} -> {path} ({len(image.data)} bytes, {image.mime_type})")
    elapsed = time.perf_counter() - started
    print(f"{len(DEMO_JOBS) - failed}/{len(DEMO_JOBS)} generations in {elapsed:.2f}s into {out}/")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="aihubmix-async", description="AIHubMix image generation from the command line."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="generate sample images through the built-in sandbox (no key, no network)"
    )
    demo.add_argument("-o", "--out", type=Path, default=Path("demo-images"))
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            return asyncio.run(_demo(args.out))
    except AIHubMixError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
