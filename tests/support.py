"""Helpers shared by test modules (test modules never import each other)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import anyio
from anyio.from_thread import start_blocking_portal

from aihubmix_async import Batch, Client, Outcome, PollPolicy, RetryPolicy
from aihubmix_async.sandbox import Sandbox, serve

#: Fast polling so task-style models finish in milliseconds against the sandbox.
FAST_POLL = PollPolicy(initial_interval=0.01, max_interval=0.05, deadline=5.0)


def make_client(sandbox: Sandbox, **options: object) -> Client:
    """A client for ``sandbox`` with fast polling and two retries; ``options`` override."""
    settings: dict[str, object] = {
        "api_key": sandbox.api_key,
        "base_url": sandbox.base_url,
        "poll": FAST_POLL,
        "retry": RetryPolicy(max_retries=2),
    }
    settings.update(options)
    return Client(**settings)  # type: ignore[arg-type]


def decode_image(data: bytes | None) -> tuple[str, tuple[int, int]]:
    """Decode image bytes with Pillow; returns (format, size). Fails on anything not an image."""
    from PIL import Image

    assert data is not None, "the image was not downloaded"
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return str(image.format), image.size


async def collect(batch: Batch) -> list[Outcome]:
    return [outcome async for outcome in batch]


def other_tasks() -> set[asyncio.Task[object]]:
    """Pending tasks besides this one, leaving out the in-process sandbox server's handlers."""
    current = asyncio.current_task()
    return {
        t
        for t in asyncio.all_tasks()
        if t is not current
        and not t.done()
        and not t.get_coro().__qualname__.startswith("RequestHandler.")  # type: ignore[union-attr]
    }


@contextmanager
def sandbox_in_thread(**options: object) -> Iterator[Sandbox]:
    """A sandbox on its own event loop in a background thread (for blocking callers)."""
    with (
        start_blocking_portal("asyncio") as portal,
        portal.wrap_async_context_manager(serve(**options)) as running,  # type: ignore[arg-type]
    ):
        yield running


async def wait_until(condition: Callable[[], bool]) -> None:
    """Wait for ``condition`` (e.g. the server finishing handlers a client walked away from);
    a generous bound, since only a broken condition ever reaches it.
    """
    with anyio.fail_after(10):
        while not condition():  # noqa: ASYNC110 - polling state owned by another component
            await anyio.sleep(0.01)
