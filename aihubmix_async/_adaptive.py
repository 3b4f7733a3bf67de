"""Adaptive concurrency for a client's API requests: additive increase, multiplicative decrease.

The limit starts low, grows while answers succeed (by one per success until the first
throttle, then by about one per round of ``limit`` successes), is cut by ``decrease`` on a 429
or 503, and never exceeds ``maximum``. One limiter belongs to one client, so every batch and
single call shares the figure (the provider's limit is per key). Throttles from requests sent
before the last cut belong to the same congestion episode and do not cut again.

It gates only while engaged (``with limiter.engaged():``, which ``batch(concurrency="auto")``
does for its run); otherwise the exchange skips it and it costs nothing. :class:`Gate` is the
client's fixed concurrency limit, beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import Iterator
from typing import Final

from ._waiters import wait_turn, wake_first

__all__ = ["THROTTLE_STATUSES", "AdaptiveLimiter", "Gate"]

#: Answers that mean "too much at once": the limit is cut.
THROTTLE_STATUSES: Final = frozenset({429, 503})
DEFAULT_START: Final = 2
DEFAULT_DECREASE: Final = 0.5


class Gate:
    """A FIFO concurrency limit whose uncontended path is plain attribute arithmetic.

    ``if gate.free: gate.free -= 1`` else ``await gate.wait()``; then ``gate.release()``
    exactly once. asyncio's ``Semaphore`` costs three coroutines and a generator per
    acquire/release pair (measured: ~2-4 us of a ~400 us request), this none; a released place
    goes straight to the longest waiter, so ``free`` is positive only when nobody waits.
    """

    __slots__ = ("_waiters", "free")

    def __init__(self, size: int) -> None:
        self.free = size
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def wait(self) -> None:
        """Wait for a place (only when ``free`` is 0); cancelled, it holds none."""
        await wait_turn(self._waiters, self.release)

    def release(self) -> None:
        if not wake_first(self._waiters):
            self.free += 1


class AdaptiveLimiter:
    """An AIMD concurrency limit between 1 and ``maximum``, starting at ``start``."""

    def __init__(
        self, maximum: int, *, start: int = DEFAULT_START, decrease: float = DEFAULT_DECREASE
    ) -> None:
        if not isinstance(maximum, int) or maximum < 1:
            raise ValueError(f"maximum must be an integer >= 1, got {maximum!r}")
        if not 0 < decrease < 1:
            raise ValueError(f"decrease must be between 0 and 1, got {decrease!r}")
        self.maximum = maximum
        self.decrease = decrease
        self._limit = float(max(1, min(start, maximum)))
        #: Below this the limit grows by one per success (slow start); above, by 1/limit.
        self._threshold = float(maximum)
        self._epoch = 0  # bumped on every cut
        self._engaged = 0
        self.in_flight = 0
        #: Most requests in flight at once under this limiter (for tests and reports).
        self.peak = 0
        #: 429/503 answers seen, and how many of them cut the limit.
        self.throttled = 0
        self.cuts = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    def __repr__(self) -> str:
        return (
            f"AdaptiveLimiter(limit={self.limit}, maximum={self.maximum}, "
            f"in_flight={self.in_flight}, throttled={self.throttled})"
        )

    @property
    def limit(self) -> int:
        """How many requests may be in flight now."""
        return max(1, math.floor(self._limit))

    @property
    def engaged_count(self) -> int:
        return self._engaged

    @contextlib.contextmanager
    def engaged(self) -> Iterator[AdaptiveLimiter]:
        """Gate the client's API requests while the block runs (nestable, shared)."""
        self._engaged += 1
        try:
            yield self
        finally:
            self._engaged -= 1

    # --- the gate ------------------------------------------------------------------------------
    # While engaged, each API request takes a place (``epoch = await limiter.acquire()``) and
    # gives it back with its answer's status (``limiter.release(epoch, status)``; None when
    # there was no answer: no verdict). Image downloads go to a CDN, not against the key, and
    # are not gated; nothing is gated while the limiter is idle.

    async def acquire(self) -> int:
        if self.in_flight >= self.limit or self._waiters:
            await wait_turn(self._waiters, self._pass_on)  # _wake counts this request in
        else:
            self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        return self._epoch

    def _pass_on(self) -> None:
        self.in_flight -= 1
        self._wake()

    def release(self, epoch: int, status: int | None) -> None:
        self.in_flight -= 1
        if status is not None:
            if status in THROTTLE_STATUSES:
                self._throttle(epoch)
            elif 200 <= status < 300:
                self._grow()
        self._wake()

    def _wake(self) -> None:
        while self.in_flight < self.limit and wake_first(self._waiters):
            self.in_flight += 1

    def _grow(self) -> None:
        step = 1.0 if self._limit < self._threshold else 1.0 / self._limit
        self._limit = min(float(self.maximum), self._limit + step)

    def _throttle(self, epoch: int) -> None:
        self.throttled += 1
        if epoch != self._epoch:  # sent before the last cut: the same episode
            return
        self._limit = max(1.0, self._limit * self.decrease)
        self._threshold = self._limit
        self._epoch += 1
        self.cuts += 1
