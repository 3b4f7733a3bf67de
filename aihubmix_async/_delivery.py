"""The hand-off from a batch's workers to its consumer.

Workers :meth:`~Delivery.offer` finished outcomes; the consumer takes them in finishing order
(or, ordered, in input order through a bounded window) and every taken outcome is counted for
the batch's summary. The per-item path is plain calls: a coroutine runs only when one side
really has to wait (the queue full, the queue empty, or a large outcome not yet taken).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

from ._models import Outcome
from ._waiters import wait_turn, wake_first

__all__ = ["HANDOFF_BYTES", "Delivery"]

#: Image bytes from which a finished outcome is handed to the consumer before its worker goes
#: on (smaller ones are queued: waiting would cost each small item a loop turn).
HANDOFF_BYTES = 256 * 1024


class Delivery:
    """A bounded queue of outcomes with the accounting of what the consumer took."""

    def __init__(
        self, concurrency: int, *, ordered: bool, on_failure: Callable[[], object] | None
    ) -> None:
        # A bounded queue of its own (a deque and waiter futures) rather than an anyio memory
        # stream (which yields to the loop on every send) or an asyncio.Queue (eight Python
        # calls an item to put and take): offering and taking are plain calls unless one side
        # must wait. At most ``concurrency`` outcomes wait for the consumer; None ends it.
        self._items: deque[Outcome | None] = deque()
        self._room = concurrency
        #: The consumer, waiting for an outcome (None: not waiting).
        self._taker: asyncio.Future[None] | None = None
        #: Workers waiting for room, first come first served.
        self._putters: deque[asyncio.Future[None]] = deque()
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
        items = self._items
        if len(items) >= self._room:
            return self._put(outcome, handoff)
        items.append(outcome)  # _push, inline: this runs once per item
        taker = self._taker
        if taker is not None:
            self._taker = None
            if not taker.done():
                taker.set_result(None)
        return handoff

    async def _put(self, outcome: Outcome, handoff: Awaitable[None] | None) -> None:
        await self._wait_for_room()
        self._push(outcome)
        if handoff is not None:
            await handoff

    def _push(self, outcome: Outcome | None) -> None:
        self._items.append(outcome)
        taker = self._taker
        if taker is not None:
            self._taker = None
            if not taker.done():
                taker.set_result(None)

    async def _wait_for_room(self) -> None:
        while len(self._items) >= self._room:
            # Cancelled: it leaves the line; a place given to this worker goes to the next.
            await wait_turn(self._putters, self._make_room)

    def _make_room(self) -> None:
        """One outcome was taken: the first worker waiting for room may go on."""
        wake_first(self._putters)

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
        await self._wait_for_room()
        self._push(None)

    # --- the consumer side ----------------------------------------------------------------------

    async def next(self) -> Outcome:
        """The next outcome for the consumer (StopAsyncIteration, or :attr:`error`, at the end).
        The queue is read without a coroutine whenever it holds something.
        """
        items = self._items
        if self.window is None:  # in finishing order
            if self.closed:
                raise StopAsyncIteration
            if not items:
                await self._wait_for_outcome()
            outcome = items.popleft()
            if self._putters:
                self._make_room()
            return self._count(outcome if outcome is not None else self._take(outcome))
        pending = self._pending
        while self._next_index not in pending:
            if self.closed:
                raise StopAsyncIteration
            if not items:
                await self._wait_for_outcome()
            arrived = self._take(items.popleft())
            if self._putters:
                self._make_room()
            pending[arrived.index] = arrived
        return self._count(pending.pop(self._next_index))

    async def _wait_for_outcome(self) -> None:
        while not self._items:
            taker = self._taker = asyncio.get_running_loop().create_future()
            try:
                await taker
            finally:
                if self._taker is taker:
                    self._taker = None

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
