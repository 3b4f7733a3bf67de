"""The batch's hand-off queue: bounded, first come first served, nothing lost or doubled when
a waiting worker is cancelled (the batch runner's own tests drive it through HTTP; these pin
the waiting paths that a loaded server rarely takes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import pytest

from aihubmix_async import Failure, ImageRequest
from aihubmix_async._delivery import Delivery

pytestmark = pytest.mark.anyio


def outcome(index: int) -> Failure:
    return Failure(index=index, request=ImageRequest(prompt=f"p{index}"), error=RuntimeError())


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_full_queue_holds_workers_back_until_the_consumer_takes() -> None:
    delivery = Delivery(2, ordered=False, on_failure=None)
    assert delivery.offer(outcome(0)) is None
    assert delivery.offer(outcome(1)) is None
    waiting = delivery.offer(outcome(2))
    assert waiting is not None
    worker = asyncio.ensure_future(waiting)
    await settle()
    assert not worker.done()  # no room: the third outcome waits
    assert (await delivery.next()).index == 0
    await settle()
    assert worker.done()
    assert [(await delivery.next()).index for _ in range(2)] == [1, 2]


async def test_a_cancelled_waiting_worker_leaves_its_place_to_the_next() -> None:
    delivery = Delivery(1, ordered=False, on_failure=None)
    assert delivery.offer(outcome(0)) is None
    waits: list[Awaitable[None] | None] = [delivery.offer(outcome(i)) for i in (1, 2)]
    first, second = (asyncio.ensure_future(w) for w in waits if w is not None)
    await settle()
    first.cancel()  # gone before it got room: its outcome is never queued
    assert (await delivery.next()).index == 0
    await settle()
    assert second.done()
    assert (await delivery.next()).index == 2


async def test_a_worker_cancelled_after_it_was_given_room_passes_the_room_on() -> None:
    delivery = Delivery(1, ordered=False, on_failure=None)
    assert delivery.offer(outcome(0)) is None
    waits = [delivery.offer(outcome(i)) for i in (1, 2)]
    first, second = (asyncio.ensure_future(w) for w in waits if w is not None)
    await settle()
    assert (await delivery.next()).index == 0  # room: given to the first waiting worker...
    first.cancel()  # ...which is cancelled before it could use it
    await settle()
    assert second.done()
    assert (await delivery.next()).index == 2


async def test_the_consumer_waits_for_an_outcome_and_the_end_of_the_stream() -> None:
    delivery = Delivery(4, ordered=True, on_failure=None)
    assert delivery.window is not None
    consumer = asyncio.ensure_future(delivery.next())
    await settle()
    assert not consumer.done()
    assert delivery.offer(outcome(1)) is None  # ordered: index 1 waits for index 0
    await settle()
    assert not consumer.done()
    assert delivery.offer(outcome(0)) is None
    assert (await consumer).index == 0
    assert (await delivery.next()).index == 1
    await delivery.end()
    with pytest.raises(StopAsyncIteration):
        await delivery.next()
    with pytest.raises(StopAsyncIteration):
        await delivery.next()
