"""Hostile hooks: an observer that cancels itself or never returns must not cost an item."""

from __future__ import annotations

import asyncio

import anyio
import anyio.lowlevel
import pytest

from aihubmix_async import Client, ImageRequest, InvalidRequestError, RequestEvent, ResponseEvent
from aihubmix_async.sandbox import Sandbox

from ..support import collect, make_client

#: Only a broken fix ever reaches it: turns a hang into a failure.
HANG_GUARD = 30


def hook_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "aihubmix_async"]


async def test_a_hook_raising_cancelled_error_does_not_drop_batch_items(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """A hook whose own await was cancelled (CancelledError, nobody cancelled the batch) is
    a hook error: every item still comes out, each billed once.
    """

    async def cancelled_inside(event: ResponseEvent) -> None:
        raise asyncio.CancelledError  # e.g. awaiting a future its backend cancelled

    items = [ImageRequest(prompt=f"fox {i}", id=f"item-{i}") for i in range(4)]
    with anyio.fail_after(HANG_GUARD):
        async with (
            make_client(sandbox, on_response=cancelled_inside) as client,
            client.batch(items, model="gpt-image-1", concurrency=2) as batch,
        ):
            outcomes = await collect(batch)
    assert sorted(o.index for o in outcomes) == [0, 1, 2, 3]
    assert all(o.ok for o in outcomes)
    assert sandbox.stats.submits == 4
    assert sum("on_response hook raised" in m for m in hook_records(caplog)) == 4


async def test_a_sync_hook_raising_cancelled_error_does_not_fail_generate(
    sandbox: Sandbox,
) -> None:
    """The same from a plain function: generate() returns the billed result."""

    def cancelled(event: RequestEvent) -> None:
        raise asyncio.CancelledError

    with anyio.fail_after(HANG_GUARD):
        async with make_client(sandbox, on_request=cancelled) as client:
            result = await client.generate("gpt-image-1", "a cat")
    assert result.images
    assert sandbox.stats.submits == 1


async def test_a_hook_that_never_returns_is_given_up_after_hook_timeout(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """An async hook stuck forever: after ``hook_timeout`` it is cancelled and logged, and
    the generation goes on (submit, polls and download all happen).
    """
    stuck: list[str] = []

    async def never_returns(event: RequestEvent) -> None:
        stuck.append(event.phase)
        await asyncio.Event().wait()

    with anyio.fail_after(HANG_GUARD):
        async with make_client(sandbox, on_request=never_returns, hook_timeout=0.05) as client:
            result = await client.generate("flux-kontext-max", "a fox")
    assert result.image.data
    assert stuck[0] == "submit"
    assert stuck[-1] == "download"
    given_up = [m for m in hook_records(caplog) if "did not return within 0.05s" in m]
    assert len(given_up) == len(stuck) == sandbox.stats.requests


async def test_a_real_cancellation_during_a_hook_still_cancels(sandbox: Sandbox) -> None:
    """Cancelling the caller while its hook runs cancels the call (it is not a hook error)."""
    entered = anyio.Event()

    async def slow(event: RequestEvent) -> None:
        entered.set()
        await asyncio.Event().wait()

    async with make_client(sandbox, on_request=slow) as client:
        with anyio.move_on_after(HANG_GUARD) as outer:
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.generate, "gpt-image-1", "a cat")
                await entered.wait()
                tg.cancel_scope.cancel()
        assert not outer.cancelled_caught
    assert sandbox.stats.submits == 0


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "10"])
def test_hook_timeout_must_be_a_positive_number(bad: object) -> None:
    """A bound that is no bound (or not a number) is refused when the client is made."""
    with pytest.raises(InvalidRequestError, match="hook_timeout"):
        Client(api_key="sk-test", hook_timeout=bad)  # type: ignore[arg-type]


async def test_a_progress_hook_raising_cancelled_error_loses_no_item(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """``on_progress`` is a hook too: its own CancelledError is logged, every item comes out."""

    async def cancelled_inside(progress: object) -> None:
        raise asyncio.CancelledError

    items = [ImageRequest(prompt=f"fox {i}", id=f"item-{i}") for i in range(3)]
    with anyio.fail_after(HANG_GUARD):
        async with (
            make_client(sandbox) as client,
            client.batch(items, model="gpt-image-1", on_progress=cancelled_inside) as batch,
        ):
            outcomes = await collect(batch)
    assert sorted(o.index for o in outcomes) == [0, 1, 2]
    assert sum("on_progress hook raised" in m for m in hook_records(caplog)) == 3


async def test_a_progress_hook_that_never_returns_is_given_up(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """A stuck ``on_progress`` is cut off after the client's ``hook_timeout`` like the others."""

    async def never_returns(progress: object) -> None:
        await asyncio.Event().wait()

    items = [ImageRequest(prompt=f"fox {i}", id=f"item-{i}") for i in range(2)]
    with anyio.fail_after(HANG_GUARD):
        async with (
            make_client(sandbox, hook_timeout=0.05) as client,
            client.batch(items, model="gpt-image-1", on_progress=never_returns) as batch,
        ):
            outcomes = await collect(batch)
    assert sorted(o.index for o in outcomes) == [0, 1]
    assert sum("on_progress hook did not return" in m for m in hook_records(caplog)) == 2


async def test_hook_timeout_none_leaves_hooks_unbounded(sandbox: Sandbox) -> None:
    """``hook_timeout=None``: no bound; a slow-but-finite hook runs to its end."""
    finished: list[str] = []

    async def slow(event: RequestEvent) -> None:
        for _ in range(3):
            await anyio.lowlevel.checkpoint()
        finished.append(event.phase)

    async with make_client(sandbox, on_request=slow, hook_timeout=None) as client:
        await client.generate("gpt-image-1", "a cat")
    assert finished == ["submit"]
