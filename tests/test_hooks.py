"""Request/response hooks: awaited when async, never fatal, and linked by call id and item."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable

import anyio
import anyio.lowlevel
import pytest

from aihubmix_async import ImageRequest, RequestEvent, ResponseEvent
from aihubmix_async.sandbox import Sandbox

from .support import collect, make_client


class Recorder:
    """Collects every event, from async hooks that really suspend before recording."""

    def __init__(self) -> None:
        self.requests: list[RequestEvent] = []
        self.responses: list[ResponseEvent] = []

    async def on_request(self, event: RequestEvent) -> None:
        await anyio.lowlevel.checkpoint()
        self.requests.append(event)

    async def on_response(self, event: ResponseEvent) -> None:
        await anyio.lowlevel.checkpoint()
        self.responses.append(event)


async def test_async_hooks_are_awaited_for_every_attempt(sandbox: Sandbox) -> None:
    """Hooks written `async def` run to completion: a request and a response event an attempt."""
    seen = Recorder()
    async with make_client(
        sandbox, on_request=seen.on_request, on_response=seen.on_response
    ) as client:
        await client.generate("flux-kontext-max", "a fox")
    assert len(seen.requests) == len(seen.responses) == sandbox.stats.requests
    assert seen.requests[0].phase == "submit"
    assert seen.requests[-1].phase == "download"
    assert all(e.status == 200 for e in seen.responses)


async def test_a_sync_hook_returning_an_awaitable_is_awaited(sandbox: Sandbox) -> None:
    """A plain function handing back a coroutine (e.g. a bound async method) is awaited too."""
    seen = Recorder()

    def on_request(event: RequestEvent) -> Awaitable[None]:
        return seen.on_request(event)

    async with make_client(sandbox, on_request=on_request) as client:
        await client.generate("gpt-image-1", "a cat")
    assert [e.phase for e in seen.requests] == ["submit"]


async def test_a_raising_async_hook_is_logged_and_the_billed_result_returned(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """An async hook that raises after a billed success: the result comes back, sent once."""

    async def broken(event: object) -> None:
        await anyio.lowlevel.checkpoint()
        raise RuntimeError("tracing backend down")

    async with make_client(sandbox, on_request=broken, on_response=broken) as client:
        result = await client.generate("gpt-image-1", "a cat")
    assert result.images
    assert sandbox.stats.submits == 1
    logged = [r for r in caplog.records if r.name == "aihubmix_async" and r.exc_info]
    assert [r.getMessage().split(" hook")[0] for r in logged] == ["on_request", "on_response"]
    assert all("tracing backend down" in str(r.exc_info[1]) for r in logged)  # type: ignore[index]


async def test_one_call_id_links_a_generations_submit_polls_and_downloads(
    sandbox: Sandbox,
) -> None:
    """Two concurrent task-style generations: each one's events share a call id of their own."""
    seen = Recorder()
    async with (
        make_client(sandbox, on_request=seen.on_request, on_response=seen.on_response) as client,
        anyio.create_task_group() as tg,
    ):
        for prompt in ("a fox", "an owl"):
            tg.start_soon(client.generate, "flux-kontext-max", prompt)
    phases: dict[int, list[str]] = defaultdict(list)
    for event in seen.requests:
        phases[event.call_id].append(event.phase)
    assert len(phases) == 2
    for sequence in phases.values():
        assert sequence[0] == "submit"
        assert sequence.count("submit") == 1
        assert "poll" in sequence
        assert sequence[-1] == "download"
    # Each response event carries its request's call id and phase.
    pairs = sorted((e.call_id, e.phase, e.url) for e in seen.requests)
    assert sorted((e.call_id, e.phase, e.url) for e in seen.responses) == pairs
    assert all(e.item_index is None and e.item_id is None for e in seen.requests)


async def test_a_retried_submit_keeps_its_call_id_and_counts_attempts(sandbox: Sandbox) -> None:
    """A 503 then success: two submit attempts under one call id, the first with its error."""
    sandbox.fail("status", status=503, route="submit")
    seen = Recorder()
    async with make_client(sandbox, on_response=seen.on_response) as client:
        await client.generate("gpt-image-1", "a cat")
    submits = [e for e in seen.responses if e.phase == "submit"]
    assert [(e.attempt, e.status) for e in submits] == [(1, 503), (2, 200)]
    assert submits[0].error is not None
    assert submits[0].call_id == submits[1].call_id


async def test_batch_events_name_their_item(sandbox: Sandbox) -> None:
    """In a batch every event carries its item's index and id; one call id per item."""
    seen = Recorder()
    items = [ImageRequest(prompt=f"fox {i}", id=f"item-{i}") for i in range(4)]
    async with (
        make_client(sandbox, on_request=seen.on_request, on_response=seen.on_response) as client,
        client.batch(items, model="flux-kontext-max", concurrency=2) as batch,
    ):
        outcomes = await collect(batch)
    assert all(o.ok for o in outcomes)
    by_item: dict[tuple[int | None, str | None], set[int]] = defaultdict(set)
    events: list[RequestEvent | ResponseEvent] = [*seen.requests, *seen.responses]
    for event in events:
        by_item[event.item_index, event.item_id].add(event.call_id)
    assert sorted(by_item) == [(i, f"item-{i}") for i in range(4)]
    assert all(len(call_ids) == 1 for call_ids in by_item.values())
    assert len(set().union(*by_item.values())) == 4
