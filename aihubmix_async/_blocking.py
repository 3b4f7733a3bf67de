"""A blocking facade for scripts and notebooks: the same operations, no ``await``.

It runs one event loop in a background thread through an anyio blocking portal, so it works in
plain Python and inside Jupyter (where a loop is already running in the calling thread).
"""

from __future__ import annotations

import contextlib
import functools
import weakref
from collections.abc import AsyncIterable, Generator, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any, Self

from anyio.from_thread import BlockingPortal, start_blocking_portal

from ._blocking_results import BlockingOutcome, BlockingResult, blocking, blocking_result
from ._client import Client
from ._errors import ConfigurationError
from ._models import ModelInfo
from ._pricing import PriceBook
from ._spend import Estimate
from ._typed_blocking import BlockingCalls

__all__ = ["BlockingClient"]


class BlockingClient(BlockingCalls):
    """``Client`` without ``await``: ``with BlockingClient() as client: client.generate(...)``.

    Takes the same arguments as :class:`Client`. Close it (or use ``with``) to stop its thread;
    one left open is closed when it is garbage-collected or the interpreter exits. It may be
    shared by threads. ``close()`` ends batches still being iterated, and calls still running
    in other threads raise :class:`ConfigurationError` ("closed while ... running").
    Its results save synchronously: ``client.generate(...).image.save("x.png")`` writes the
    file before it returns (so do the results of its batches).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        portal_cm: AbstractContextManager[BlockingPortal] = start_blocking_portal("asyncio")
        portal = portal_cm.__enter__()
        try:
            self._client: Client = portal.call(functools.partial(_open, *args, **kwargs))
        except BaseException:
            portal_cm.__exit__(None, None, None)
            raise
        self._portal: BlockingPortal | None = portal
        #: Batch iterators not finished yet: close() ends them before stopping the loop.
        self._batches: weakref.WeakSet[Generator[BlockingOutcome, None, None]] = weakref.WeakSet()
        # At exit (atexit) or garbage collection: without it, the portal's context manager
        # is finalised after its thread has stopped and the interpreter never exits.
        self._finalizer = weakref.finalize(self, _shut_down, portal_cm, portal, self._client)

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
        """Close the client and stop the background loop. Idempotent.

        Batch iterators still open are ended (a ``for`` over one stops after the item in
        hand, also when ``close()`` is called from its body); calls running in other threads
        are cut off and raise :class:`ConfigurationError`.
        """
        if self._portal is None:
            return
        self._portal = None
        for batch in list(self._batches):
            # One being iterated by another thread refuses (ValueError): the shutdown below
            # cuts it off instead.
            with contextlib.suppress(ValueError):
                batch.close()
        self._finalizer()

    @contextlib.contextmanager
    def _cut_off_by_close(self, what: str) -> Iterator[None]:
        """An error of a call that close() cut off becomes a ConfigurationError saying so (its
        own would blame the server or the loop); other errors pass unchanged.
        """
        try:
            yield
        except ConfigurationError:
            raise
        except Exception as exc:
            if self._portal is None:
                message = f"BlockingClient was closed while {what} was running"
                raise ConfigurationError(message) from exc
            raise

    def models(self, *, prices: bool = False) -> tuple[ModelInfo, ...]:
        """Like :meth:`Client.models` (``prices=True`` adds each price and its source)."""
        return self._client.models(prices=prices)

    def catalogue(self, *, refresh: bool = False) -> PriceBook:
        """Like :meth:`Client.catalogue`: the live catalogue's prices, read once and cached."""
        call = functools.partial(self._client.catalogue, refresh=refresh)
        with self._cut_off_by_close("catalogue()"):
            return self._running().call(call)

    def estimate(
        self, items: Iterable[Any], *, model: str | None = None, **params: Any
    ) -> Estimate:
        """Like :meth:`Client.estimate`: what a batch of ``items`` would cost, sending nothing."""
        return self._client.estimate(items, model=model, **params)

    def _generate(self, model: str, prompt: str, **kwargs: Any) -> BlockingResult:
        """Like :meth:`Client.generate`, blocking until the images are there."""
        call = functools.partial(self._client.generate, model, prompt, **kwargs)
        with self._cut_off_by_close("generate()"):
            return blocking_result(self._running().call(call))

    def _batch(
        self, items: Iterable[Any] | AsyncIterable[Any], **kwargs: Any
    ) -> Iterator[BlockingOutcome]:
        """Like :meth:`Client.batch`: yields outcomes as they finish. Stopping the iteration
        early (``break``, or closing the generator) cancels what is still running.
        """
        portal = self._running()
        iterator = self._iterate(portal, self._client.batch(items, **kwargs))
        self._batches.add(iterator)
        return iterator

    def _iterate(self, portal: BlockingPortal, runner: Any) -> Generator[BlockingOutcome]:
        with (
            self._cut_off_by_close("batch()"),
            portal.wrap_async_context_manager(runner) as outcomes,
        ):
            while True:
                try:
                    outcome = portal.call(outcomes.__anext__)
                except StopAsyncIteration:
                    return
                yield blocking(outcome)


def _shut_down(
    portal_cm: AbstractContextManager[BlockingPortal], portal: BlockingPortal, client: Client
) -> None:
    """Close ``client`` and stop its loop; what is still running there (batches iterated by
    other threads, their calls) is cancelled rather than waited for.
    """
    try:
        portal.call(client.aclose)
        portal.call(portal.stop, True)  # noqa: FBT003 - anyio's signature
    except RuntimeError:  # called from the loop's own thread, or the loop is gone already
        pass
    finally:
        portal_cm.__exit__(None, None, None)


async def _open(*args: Any, **kwargs: Any) -> Client:
    client = Client(*args, **kwargs)
    await client.__aenter__()
    return client
