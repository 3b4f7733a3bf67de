"""``python -m aihubmix_async.sandbox --port N``: serve the emulator until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from . import DEFAULT_API_KEY, serve


async def serve_forever(args: argparse.Namespace) -> None:
    options = {
        "api_key": args.api_key,
        "latency": args.latency,
        "image_bytes": args.image_bytes,
        "pending_polls": args.pending_polls,
        "key_concurrency": args.key_concurrency,
        "key_rpm": args.key_rpm,
    }
    async with serve(host=args.host, port=args.port, **options) as sandbox:
        print(f"AIHubMix sandbox on {sandbox.base_url} (images on {sandbox.cdn_url})", flush=True)  # noqa: T201
        print(f"  AIHUBMIX_BASE_URL={sandbox.base_url} AIHUBMIX_API_KEY={args.api_key}", flush=True)  # noqa: T201
        await asyncio.Event().wait()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The sandbox's options (shared with ``aihubmix-async sandbox``)."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="the Bearer key to accept")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to each submit")
    parser.add_argument("--image-bytes", type=int, default=0, help="size of generated PNGs")
    parser.add_argument("--pending-polls", type=int, default=1, help="polls before a task is done")
    parser.add_argument(
        "--key-concurrency", type=int, default=None, metavar="N",
        help="answer 429 beyond N API requests in flight per key",
    )  # fmt: skip
    parser.add_argument(
        "--key-rpm", type=int, default=None, metavar="N",
        help="answer 429 beyond N API requests per minute per key",
    )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m aihubmix_async.sandbox", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(args))


if __name__ == "__main__":
    main()
