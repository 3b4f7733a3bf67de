"""The hand-off from a batch's workers to its consumer.

Workers :meth:`~Delivery.offer` finished outcomes; the consumer takes them in finishing order
(or, ordered, in input order through a bounded window) and every taken outcome is counted for
the batch's summary. The per-item path is plain calls: a coroutine runs only when one side
really has to wait (the queue full, the queue empty, or a large outcome not yet taken).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ._models import Outcome

__all__ = ["HANDOFF_BYTES", "Delivery"]

#: Image bytes from which a finished outcome is handed to the consumer before its worker goes
#: on (smaller ones are queued: waiting would cost each small item a loop turn).
HANDOFF_BYTES = 256 * 1024


class Delivery:
    """A bounded queue of outcomes with the accounting of what the consumer took."""

    def __init__(
        self, concurrency: int, *, ordered: bool, on_failure: Callable[[], object] | None
    ) -> None:
        # A bounded asyncio queue rather than an anyio memory stream: put/get do not yield to
        # the loop when they need not wait, which keeps the per-item cost near raw aiohttp.
        self._queue: asyncio.Queue[Outcome | None] = asyncio.Queue(concurrency)
        #: Ordered mode: at most this many items started but not yet taken by the consumer.
        self.window = asyncio.Semaphore(2 * concurrency) if ordered else None
        self._pending: dict[int, Outcome] = {}
        #: Workers waiting for the consumer to take their large outcome.
        self._handoffs: dict[int, asyncio.Future[None]] = {}
        self._next_index = 0
        #: Set once the end of the stream was taken (or the consumer left).
        self.closed = False
        #: Raised to the consumer at the end of the stream (the input failed, or a stop rule).
        self.error: BaseException | None = None
        #: Called as the consumer takes a failure (``fail_fast``: stop the workers).
        self._on_failure = on_failure
        self.ok = self.failed = self.images = self.priced = 0
        self.cost = 0.0

    # --- the worker side ------------------------------------------------------------------------

    def offer(self, outcome: Outcome) -> Awaitable[None] | None:
        """Queue ``outcome``; returns what the worker must await before its next item (the
        queue has no room, or the outcome holds megabytes of image), or None.
        """
        handoff = self._handoff(outcome)  # before the put: the consumer may take it at once
        queue = self._queue
        if queue.full():
            return self._put(outcome, handoff)
        queue.put_nowait(outcome)
        return handoff

    async def _put(self, outcome: Outcome, handoff: Awaitable[None] | None) -> None:
        await self._queue.put(outcome)
        if handoff is not None:
            await handoff

    def _handoff(self, outcome: Outcome) -> asyncio.Future[None] | None:
        """For an outcome holding megabytes of image, a future the consumer resolves as it
        takes it: the worker waits for it before its next request (no pile-up of large
        outcomes, whose memory is the batch's peak).
        """
        result = outcome.result
        if result is None:
            return None
        size = 0
        for image in result.images:  # no generator: runs per item
            size += 0 if image.data is None else len(image.data)
        if size < HANDOFF_BYTES:
            return None
        self._handoffs[outcome.index] = future = asyncio.get_running_loop().create_future()
        return future

    async def end(self) -> None:
        """Mark the end of the stream (after every worker has finished)."""
        await self._queue.put(None)

    # --- the consumer side ----------------------------------------------------------------------

    async def next(self) -> Outcome:
        """The next outcome for the consumer (StopAsyncIteration, or :attr:`error`, at the end).
        The queue is read without a coroutine whenever it holds something.
        """
        queue = self._queue
        if self.window is None:  # in finishing order
            if self.closed:
                raise StopAsyncIteration
            outcome = queue.get_nowait() if queue.qsize() else await queue.get()
            return self._count(self._take(outcome))
        pending = self._pending
        while self._next_index not in pending:
            if self.closed:
                raise StopAsyncIteration
            arrived = self._take(queue.get_nowait() if queue.qsize() else await queue.get())
            pending[arrived.index] = arrived
        return self._count(pending.pop(self._next_index))

    def _take(self, outcome: Outcome | None) -> Outcome:
        if outcome is None:  # end of stream
            self.closed = True
            if self.error is not None:
                raise self.error
            raise StopAsyncIteration
        return outcome

    def _count(self, outcome: Outcome) -> Outcome:
        self._next_index = outcome.index + 1
        result = outcome.result
        if result is not None:
            self.ok += 1
            self.images += len(result.images)
            if result.cost is not None:
                self.priced += 1
                self.cost += result.cost.amount
        else:
            self.failed += 1
        if self.window is not None:
            self.window.release()
        if self._handoffs:
            handoff = self._handoffs.pop(outcome.index, None)
            if handoff is not None and not handoff.done():
                handoff.set_result(None)
        if result is None and self._on_failure is not None:
            self._on_failure()
        return outcome
