"""The command line's client: the real API, or an in-process sandbox with ``--sandbox``."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from ._client import Client
from ._config import PollPolicy

__all__ = ["open_client"]

_FAST_POLL = PollPolicy(initial_interval=0.05, max_interval=0.5)


@contextlib.asynccontextmanager
async def open_client(
    args: argparse.Namespace, concurrency: int | None = None
) -> AsyncIterator[Client]:
    """A client for the real API, or for an in-process sandbox with ``--sandbox`` (imported
    only then: it loads ``aiohttp.web``).
    """
    options: dict[str, Any] = {"max_concurrency": max(concurrency or 16, 1)}
    if getattr(args, "rpm", None):
        options["rpm"] = args.rpm
    if getattr(args, "prices", None):
        options["prices"] = args.prices
    if args.sandbox:
        from .sandbox import DEFAULT_API_KEY, serve  # noqa: PLC0415  (only now: aiohttp.web)

        async with serve() as sandbox:
            client = Client(api_key=DEFAULT_API_KEY, base_url=sandbox.base_url,
                            poll=_FAST_POLL, **options)  # fmt: skip
            async with client:
                yield client
        return
    async with Client(base_url=args.base_url, **options) as client:
        yield client
