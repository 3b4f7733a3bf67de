"""A line of futures waiting for a place: the wait, and handing a place to the first in line.

Shared by the adaptive limiter's gate and the batch's outcome hand-off, which wait the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable

__all__ = ["wait_turn", "wake_first"]


async def wait_turn(waiters: deque[asyncio.Future[None]], pass_on: Callable[[], None]) -> None:
    """Wait in line until a place is handed over (``set_result``); cancelled, leave the line,
    or, when the place had already been handed over, ``pass_on()`` gives it to the next.
    """
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    waiters.append(future)
    try:
        await future
    except BaseException:
        if future.done() and not future.cancelled():
            pass_on()
        else:
            with contextlib.suppress(ValueError):
                waiters.remove(future)
        raise


def wake_first(waiters: deque[asyncio.Future[None]]) -> bool:
    """Hand a place to the first waiter still waiting; False when none is."""
    while waiters:
        future = waiters.popleft()
        if not future.done():
            future.set_result(None)
            return True
    return False
