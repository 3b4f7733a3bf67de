"""A blocking facade for scripts and notebooks: the same operations, no ``await``.

It runs one event loop in a background thread through an anyio blocking portal, so it works in
plain Python and inside Jupyter (where a loop is already running in the calling thread).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any, Self

from anyio.from_thread import BlockingPortal, start_blocking_portal

from ._blocking_results import BlockingOutcome, BlockingResult, blocking, blocking_result
from ._client import Client
from ._errors import ConfigurationError
from ._models import ModelInfo
from ._typed_blocking import BlockingCalls

__all__ = ["BlockingClient"]


class BlockingClient(BlockingCalls):
    """``Client`` without ``await``: ``with BlockingClient() as client: client.generate(...)``.

    Takes the same arguments as :class:`Client`. Close it (or use ``with``) to stop its thread.
    Its results save synchronously: ``client.generate(...).image.save("x.png")`` writes the
    file before it returns (so do the results of its batches).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._portal_cm: AbstractContextManager[BlockingPortal] = start_blocking_portal("asyncio")
        self._portal: BlockingPortal | None = self._portal_cm.__enter__()
        try:
            self._client: Client = self._portal.call(functools.partial(_open, *args, **kwargs))
        except BaseException:
            self._portal_cm.__exit__(None, None, None)
            raise

    def __repr__(self) -> str:
        return f"Blocking{self._client!r}"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _running(self) -> BlockingPortal:
        if self._portal is None:
            raise ConfigurationError("BlockingClient is closed; create a new one")
        return self._portal

    def close(self) -> None:
        """Close the client and stop the background loop. Idempotent."""
        portal, self._portal = self._portal, None
        if portal is not None:
            try:
                portal.call(self._client.aclose)
            finally:
                self._portal_cm.__exit__(None, None, None)

    def models(self) -> tuple[ModelInfo, ...]:
        return self._client.models()

    def _generate(self, model: str, prompt: str, **kwargs: Any) -> BlockingResult:
        """Like :meth:`Client.generate`, blocking until the images are there."""
        call = functools.partial(self._client.generate, model, prompt, **kwargs)
        return blocking_result(self._running().call(call))

    def _batch(
        self, items: Iterable[Any] | AsyncIterable[Any], **kwargs: Any
    ) -> Iterator[BlockingOutcome]:
        """Like :meth:`Client.batch`: yields outcomes as they finish. Stopping the iteration
        early (``break``, or closing the generator) cancels what is still running.
        """
        portal = self._running()
        runner = self._client.batch(items, **kwargs)
        with portal.wrap_async_context_manager(runner) as outcomes:
            while True:
                try:
                    yield blocking(portal.call(outcomes.__anext__))
                except StopAsyncIteration:
                    return


async def _open(*args: Any, **kwargs: Any) -> Client:
    client = Client(*args, **kwargs)
    await client.__aenter__()
    return client
