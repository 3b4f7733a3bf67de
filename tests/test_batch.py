"""The batch runner: bounded, streaming, lossless, cancellable."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import anyio
import anyio.lowlevel
import pytest

import aihubmix_async as ah
from aihubmix_async import BatchProgress, Client, ImageRequest, Outcome, set_testing
from aihubmix_async.sandbox import Fault, Sandbox, serve

from .support import collect, decode_image, make_client, other_tasks, wait_until


async def test_every_prompt_ends_as_one_outcome(client: Client) -> None:
    """Plain prompts and per-item requests each yield exactly one successful outcome."""
    items: list[object] = [f"prompt {i}" for i in range(30)]
    items += [
        {"prompt": "a fox", "model": "imagen-3.0-generate-002", "numberOfImages": 2, "id": "f"}
    ]
    items += [ImageRequest(prompt="a boat", model="flux-kontext-pro", params={"seed": 3})]
    async with client.batch(items, model="gpt-image-1", concurrency=8) as batch:
        outcomes = await collect(batch)
    assert sorted(o.index for o in outcomes) == list(range(32))
    assert all(o.ok for o in outcomes)
    by_index = {o.index: o for o in outcomes}
    fox = by_index[30]
    assert fox.request.id == "f"
    assert fox.result is not None
    assert len(fox.result.images) == 2
    boat = by_index[31].result
    assert boat is not None
    assert decode_image(boat.image.data)[0] == "JPEG"
    summary = batch.summary
    assert (summary.started, summary.succeeded, summary.failed) == (32, 32, 0)
    assert summary.not_started == 0
    assert summary.cancelled == 0


async def test_no_item_lost_or_duplicated_under_mixed_faults(sandbox: Sandbox) -> None:
    """5,000 items with ~20% injected faults: each index exactly once, as result or typed error."""
    sandbox.faults.rate = 0.2
    sandbox.faults.random_kinds = (
        Fault(kind="status", status=429),
        Fault(kind="status", status=429, retry_after=0.01),
        Fault(kind="status", status=500),
        Fault(kind="status", status=502),
        Fault(kind="status", status=503),
        Fault(kind="error_body"),
        Fault(kind="malformed"),
        Fault(kind="reset"),
        Fault(kind="status", status=500, route="download"),
    )
    n = 5000
    prompts = (f"p{i}" for i in range(n))
    models = ["gpt-image-1", "dall-e-3", "qwen-image"]
    items = ({"prompt": p, "model": models[i % 3]} for i, p in enumerate(prompts))
    async with make_client(sandbox, max_retries=3) as client:
        async with client.batch(items, concurrency=32) as batch:
            outcomes = await collect(batch)
    counts = Counter(o.index for o in outcomes)
    assert len(outcomes) == n
    assert set(counts) == set(range(n))
    assert max(counts.values()) == 1
    failures = [o for o in outcomes if not o.ok]
    assert all(isinstance(o.error, ah.AIHubMixError) for o in failures)
    assert all(o.result is None for o in failures)
    assert all(o.result is not None and o.result.images for o in outcomes if o.ok)
    # Permanent faults on billed POSTs are reported, transient ones retried to success.
    kinds = Counter(type(o.error).__name__ for o in failures)
    assert set(kinds) <= {"ServerError", "APIStatusError", "ResponseFormatError", "TransportError",
                          "RateLimitError"}  # fmt: skip
    assert batch.summary.retries > 0
    assert batch.summary.succeeded + batch.summary.failed == n


async def test_concurrency_never_exceeds_the_limit() -> None:
    """At most `concurrency` requests reach the server at once, and the limit is reached."""
    async with serve(latency=0.02) as sandbox, make_client(sandbox) as client:
        async with client.batch(
            (f"p{i}" for i in range(60)), model="gpt-image-1", concurrency=6
        ) as b:
            await collect(b)
        assert sandbox.stats.max_in_flight == 6


async def test_batch_and_single_calls_share_the_client_limit() -> None:
    """A batch wider than the client's max_concurrency still never exceeds the client's limit."""
    async with serve(latency=0.02) as sandbox, make_client(sandbox, max_concurrency=4) as client:
        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(client.generate, "dall-e-3", "single")
            async with client.batch(["x"] * 40, model="dall-e-3", concurrency=16) as batch:
                await collect(batch)
        assert sandbox.stats.max_in_flight == 4


async def test_rpm_limit_is_smooth(client: Client, sandbox: Sandbox) -> None:
    """The rpm limit spaces submits evenly from the start: no burst of a minute's budget."""
    before = time.monotonic()  # the sandbox records arrivals on the same monotonic clock
    async with client.batch(["x"] * 6, model="gpt-image-1", concurrency=6, rpm=600) as batch:
        await collect(batch)
    arrivals = sorted(sandbox.stats.submit_times)
    assert len(arrivals) == 6
    # 600/min = one slot per 0.1 s from the first request: the i-th submit cannot arrive
    # before its slot (a lower bound, so a busy machine cannot break it).
    assert [t - before >= 0.1 * i - 0.001 for i, t in enumerate(arrivals)] == [True] * 6


async def test_client_and_batch_rpm_both_apply(sandbox: Sandbox) -> None:
    """A batch's rpm cannot exceed the client's: the stricter limit sets the pace."""
    before = time.monotonic()
    async with (
        make_client(sandbox, rpm=600) as client,
        client.batch(["x"] * 5, model="gpt-image-1", concurrency=5, rpm=60_000) as batch,
    ):
        await collect(batch)
    arrivals = sorted(sandbox.stats.submit_times)
    assert [t - before >= 0.1 * i - 0.001 for i, t in enumerate(arrivals)] == [True] * 5


async def test_429_pauses_the_whole_client(sandbox: Sandbox) -> None:
    """A 429 with Retry-After holds every worker of the client, then work resumes."""
    sandbox.fail("status", status=429, retry_after=0.5)
    seen_429: list[float] = []

    def on_response(event: ah.ResponseEvent) -> None:
        if event.status == 429:
            seen_429.append(time.monotonic())

    with set_testing(False):
        async with make_client(sandbox, on_response=on_response) as client:
            async with client.batch(["x"] * 12, model="gpt-image-1", concurrency=4) as batch:
                outcomes = await collect(batch)
    assert all(o.ok for o in outcomes)
    arrivals = sorted(sandbox.stats.submit_times)
    assert len(arrivals) == 13
    [paused_at] = seen_429
    # Once the 429 is seen, only requests already past the pause check (at most one per other
    # worker) may still arrive during the pause; everything else waits for its end.
    during = [t for t in arrivals if paused_at < t < paused_at + 0.5]
    assert len(during) <= 3
    assert arrivals[-1] >= paused_at + 0.5


async def test_ordered_mode_keeps_input_order(sandbox: Sandbox) -> None:
    """ordered=True yields in input order even when items finish out of order."""
    rng = random.Random(7)
    for _ in range(40):
        sandbox.fail("delay", delay=rng.choice([0.0, 0.02, 0.05]))
    async with make_client(sandbox) as client:
        async with client.batch(["x"] * 40, model="gpt-image-1", concurrency=8, ordered=True) as b:
            ordered = [o.index for o in await collect(b)]
    assert ordered == list(range(40))


async def test_unordered_mode_streams_as_completed(sandbox: Sandbox) -> None:
    """By default a slow first item does not hold back the others."""
    sandbox.fail("delay", delay=0.3)
    async with make_client(sandbox) as client:
        async with client.batch(["x"] * 10, model="gpt-image-1", concurrency=4) as b:
            indexes = [o.index for o in await collect(b)]
    assert indexes[-1] == 0
    assert sorted(indexes) == list(range(10))


async def test_one_error_never_cancels_the_batch(client: Client, sandbox: Sandbox) -> None:
    """A failing item is recorded and the rest still run."""
    sandbox.fail("status", status=400, message="bad prompt")
    async with client.batch(["x"] * 10, model="gpt-image-1", concurrency=1) as batch:
        outcomes = await collect(batch)
    assert [o.ok for o in outcomes].count(False) == 1
    bad = next(o for o in outcomes if not o.ok)
    assert isinstance(bad.error, ah.BadRequestError)
    assert bad.error.request_id is not None
    assert bad.attempts == 1


async def test_fail_fast_stops_early_and_counts_what_did_not_run(sandbox: Sandbox) -> None:
    """fail_fast ends the batch after the first error; the rest are counted as not started."""
    sandbox.fail("status", status=400)
    async with (
        make_client(sandbox) as client,
        client.batch(["x"] * 100, model="gpt-image-1", concurrency=2, fail_fast=True) as b,
    ):
        outcomes = await collect(b)
    # Results that finished before the error was seen are still delivered (they were billed).
    assert [o.ok for o in outcomes].count(False) == 1
    assert len(outcomes) <= 6
    summary = b.summary
    assert summary.not_started is not None
    assert summary.not_started > 50
    assert summary.started + summary.not_started == 100
    assert summary.succeeded + summary.failed + summary.cancelled == summary.started


async def test_early_exit_cancels_in_flight_and_leaves_nothing(sandbox: Sandbox) -> None:
    """Breaking out of the block cancels in-flight work; no tasks remain; the client still works."""
    sandbox.latency = 0.05
    baseline = other_tasks()
    async with make_client(sandbox) as client:
        async with client.batch(["x"] * 1000, model="gpt-image-1", concurrency=16) as batch:
            async for outcome in batch:
                assert outcome.ok
                break
        summary = batch.summary
        assert summary.started < 100
        assert summary.not_started == 1000 - summary.started
        assert summary.cancelled > 0
        assert other_tasks() - baseline == set()
        sandbox.latency = 0
        assert (await client.generate("gpt-image-1", "after")).images
    await wait_until(lambda: sandbox.stats.in_flight == 0)


async def test_cancelling_the_consumer_task_cleans_up(sandbox: Sandbox) -> None:
    """Cancelling the task that consumes a batch cancels its work and leaves no tasks."""
    sandbox.latency = 0.05
    seen: list[int] = []
    baseline = other_tasks()
    async with make_client(sandbox) as client:

        async def consume(scope: anyio.CancelScope) -> None:
            async with client.batch(["x"] * 500, model="gpt-image-1", concurrency=8) as batch:
                async for outcome in batch:
                    seen.append(outcome.index)
                    if len(seen) == 5:
                        scope.cancel()  # as a caller's timeout or shutdown would, mid-stream

        with anyio.CancelScope() as scope:
            await consume(scope)
        assert scope.cancelled_caught
        assert 5 <= len(seen) < 500  # buffered outcomes may still be handed over before
        assert other_tasks() - baseline == set()


async def test_slow_consumer_slows_producers() -> None:
    """Backpressure: while the consumer sleeps, only a bounded number of items get sent."""
    async with (
        serve() as sandbox,
        make_client(sandbox) as client,
        client.batch(("x" for _ in range(1000)), model="gpt-image-1", concurrency=4) as b,
    ):
        await b.__anext__()
        await anyio.sleep(0.3)
        assert sandbox.stats.submits <= 4 * 3
        async for _ in b:
            break


async def test_input_is_pulled_lazily() -> None:
    """An endless generator works: items are pulled only as workers free up."""
    pulled = 0

    def endless() -> Iterator[str]:
        nonlocal pulled
        while True:
            pulled += 1
            yield "x"

    async with serve() as sandbox, make_client(sandbox) as client:
        async with client.batch(endless(), model="gpt-image-1", concurrency=4) as batch:
            got = 0
            async for _ in batch:
                got += 1
                if got == 20:
                    break
    assert pulled < 20 + 4 * 4
    assert batch.summary.not_started is None


async def test_async_iterable_input(client: Client) -> None:
    """An async generator of prompts is accepted."""

    async def prompts() -> AsyncIterator[str]:
        for i in range(25):
            await anyio.lowlevel.checkpoint()
            yield f"p{i}"

    async with client.batch(prompts(), model="dall-e-3", concurrency=5) as batch:
        outcomes = await collect(batch)
    assert sorted(o.index for o in outcomes) == list(range(25))


async def test_bad_items_become_error_outcomes(client: Client) -> None:
    """Malformed items end as InvalidRequestError outcomes; the others still run."""
    items: list[object] = ["ok", 42, {"no_prompt": 1}, {"prompt": "x", "size": "huge"}, "ok"]
    async with client.batch(items, model="gpt-image-1") as batch:
        outcomes = {o.index: o for o in await collect(batch)}
    assert [outcomes[i].ok for i in range(5)] == [True, False, False, False, True]
    assert all(isinstance(outcomes[i].error, ah.InvalidRequestError) for i in (1, 2, 3))


async def test_bad_batch_parameters_fail_before_starting(client: Client, sandbox: Sandbox) -> None:
    """A bad batch-wide parameter or setting raises at once, before anything is sent."""
    with pytest.raises(ah.InvalidRequestError, match="quality"):
        client.batch(["x"], model="gpt-image-1", quality="ultra")  # type: ignore[call-overload]
    with pytest.raises(ah.InvalidRequestError, match="concurrency"):
        client.batch(["x"], model="gpt-image-1", concurrency=0)
    with pytest.raises(ah.InvalidRequestError, match="rpm"):
        client.batch(["x"], model="gpt-image-1", rpm=-1)
    assert sandbox.stats.requests == 0


async def test_failing_input_iterator_is_raised_after_its_items(client: Client) -> None:
    """If the caller's iterator raises, items before it finish, then the error surfaces."""

    def broken() -> Iterator[str]:
        yield "a"
        yield "b"
        raise OSError("prompt file vanished")

    got: list[Outcome] = []
    with pytest.raises(OSError, match="vanished"):
        async with client.batch(broken(), model="gpt-image-1", concurrency=1) as batch:
            async for outcome in batch:
                got.append(outcome)  # noqa: PERF401  (a comprehension would lose them at the raise)
    assert len(got) == 2


async def test_per_item_deadline(sandbox: Sandbox) -> None:
    """The deadline bounds each item's submit + polling + download."""
    sandbox.fail("never_finish")
    async with make_client(sandbox) as client:
        async with client.batch(["x", "y"], model="flux-kontext-pro", deadline=0.3) as batch:
            outcomes = sorted(await collect(batch), key=lambda o: o.index)
    errors = [o.error for o in outcomes if not o.ok]
    assert len(errors) == 1
    assert isinstance(errors[0], ah.RequestTimeout)


async def test_progress_events(client: Client, sandbox: Sandbox) -> None:
    """The progress hook sees every finished item with running counts (sync or async hook)."""
    sandbox.fail("status", status=503)  # retried once, then fine
    sandbox.fail("status", status=400)
    events: list[BatchProgress] = []

    async def hook(event: BatchProgress) -> None:
        events.append(event)

    async with client.batch(["x"] * 10, model="dall-e-3", concurrency=1, on_progress=hook) as b:
        await collect(b)
    assert [e.done for e in events] == list(range(1, 11))
    last = events[-1]
    assert (last.succeeded, last.failed, last.retried, last.images) == (9, 1, 1, 9)
    assert last.images_per_second > 0


async def test_on_task_runs_before_the_first_poll_and_is_awaited(sandbox: Sandbox) -> None:
    """on_task sees (request, task_id, request_id) after submit and before any poll; an async
    hook is awaited to completion before polling starts; outcomes carry the task id.
    """
    sandbox.pending_polls = 1
    seen: list[tuple[str | None, str, int, int]] = []

    async def journal(request: ImageRequest, task_id: str, request_id: str | None) -> None:
        await anyio.sleep(0.01)  # a slow durable write: polling must wait for it
        seen.append((request.id, task_id, sandbox.stats.submits, sandbox.stats.polls))

    items = [ImageRequest(prompt=f"p{i}", id=f"item{i}") for i in range(3)]
    async with (
        make_client(sandbox) as client,
        client.batch(items, model="flux-kontext-max", concurrency=1, on_task=journal) as b,
    ):
        outcomes = await collect(b)
    assert all(o.ok for o in outcomes)
    # concurrency=1: item i is journaled after its own submit and before its first poll.
    assert [(s[0], s[2], s[3]) for s in seen] == [("item0", 1, 0), ("item1", 2, 2), ("item2", 3, 4)]
    assert [o.task_id for o in outcomes] == [s[1] for s in seen]
    assert all(o.result is not None and o.result.task_id == o.task_id for o in outcomes)


async def test_failing_on_task_fails_the_item_and_never_polls(sandbox: Sandbox) -> None:
    """If journaling the task id fails, the item fails with that error; its task is not polled."""
    boom = OSError("disk full")

    def journal(request: ImageRequest, task_id: str, request_id: str | None) -> None:
        raise boom

    async with (
        make_client(sandbox) as client,
        client.batch(["a", "b"], model="flux-kontext-max", on_task=journal) as b,
    ):
        outcomes = await collect(b)
    assert [o.error for o in outcomes] == [boom, boom]
    assert all(o.task_id is not None for o in outcomes)
    assert sandbox.stats.polls == 0


async def test_failed_task_outcome_keeps_its_task_id(sandbox: Sandbox) -> None:
    """A task that ends in error still reports the task id on its outcome (for the journal)."""
    sandbox.fail("task_failed")
    async with (
        make_client(sandbox) as client,
        client.batch(["a"], model="flux-kontext-max") as b,
    ):
        [outcome] = await collect(b)
    assert isinstance(outcome.error, ah.GenerationFailedError)
    assert outcome.task_id is not None
    assert outcome.task_id.startswith("api.us1.")


async def test_resumed_items_cost_no_submit(sandbox: Sandbox) -> None:
    """Items with task_id are polled and downloaded, never submitted again; others submit."""
    task_ids: list[str] = []

    def journal(request: ImageRequest, task_id: str, request_id: str | None) -> None:
        task_ids.append(task_id)
        raise RuntimeError("crash after journaling")

    async with make_client(sandbox) as client:
        async with client.batch(["a", "b"], model="flux-kontext-pro", on_task=journal) as b:
            await collect(b)
        assert sandbox.stats.submits == 2
        resumed = [ImageRequest(prompt="x", task_id=t) for t in task_ids]
        resumed.append(ImageRequest(prompt="fresh"))
        resumed.append({"prompt": "mapped", "task_id": "api.us1.unknown"})  # type: ignore[arg-type]
        async with client.batch(resumed, model="flux-kontext-pro", rpm=1) as b:
            outcomes = sorted(await collect(b), key=lambda o: o.index)
    assert [o.ok for o in outcomes] == [True, True, True, False]
    assert isinstance(outcomes[3].error, ah.NotFoundError)
    assert [o.task_id for o in outcomes[:2]] == task_ids
    assert outcomes[3].task_id == "api.us1.unknown"
    assert sandbox.stats.submits == 3  # only the fresh item was submitted (and billed)


async def test_stop_finishes_running_items_and_counts_the_rest(sandbox: Sandbox) -> None:
    """stop(): nothing new is pulled, running items are delivered, the rest is not_started."""
    async with (
        make_client(sandbox) as client,
        client.batch(["x"] * 100, model="gpt-image-1", concurrency=4) as b,
    ):
        outcomes = []
        async for outcome in b:
            outcomes.append(outcome)
            b.stop()
            b.stop()  # idempotent
    summary = b.summary
    assert all(o.ok for o in outcomes)
    assert len(outcomes) == summary.started
    assert summary.started <= 1 + 4 + 4  # delivered + queued (maxsize 4) + one per worker
    assert summary.cancelled == 0
    assert summary.not_started == 100 - summary.started
    assert sandbox.stats.submits == summary.started


async def test_stop_with_an_async_input_does_not_start_a_pulled_item(sandbox: Sandbox) -> None:
    """An item an async input hands over after stop() is not started (counted by the caller)."""
    handed: list[int] = []
    gate = anyio.Event()

    async def prompts() -> AsyncIterator[str]:
        for i in range(10):
            if i == 1:
                await gate.wait()
            handed.append(i)
            yield f"p{i}"

    async with (
        make_client(sandbox) as client,
        client.batch(prompts(), model="gpt-image-1", concurrency=2) as b,
    ):
        first = await b.__anext__()
        b.stop()
        gate.set()
        rest = await collect(b)
    assert first.ok
    assert rest == []
    assert b.summary.started == 1
    assert sandbox.stats.submits == 1


async def test_progress_hook_error_is_logged_and_the_batch_goes_on(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """A raising on_progress never ends the batch or loses an item; it is logged with traceback."""

    def hook(event: BatchProgress) -> None:
        raise ValueError("progress bar broke")

    async with client.batch(["x"] * 5, model="dall-e-3", on_progress=hook) as b:
        outcomes = await collect(b)
    assert len(outcomes) == 5
    assert all(o.ok for o in outcomes)
    errors = [r for r in caplog.records if r.name == "aihubmix_async" and r.exc_info]
    assert len(errors) == 5
    assert "progress bar broke" in str(errors[0].exc_info[1])  # type: ignore[index]


def test_requests_compare_by_their_parameters() -> None:
    """Two requests differing only in params are different (and hash as such)."""
    one = ImageRequest(prompt="a", params={"n": 1})
    assert one != ImageRequest(prompt="a", params={"n": 2})
    assert one == ImageRequest(prompt="a", params={"n": 1})
    assert len({one, ImageRequest(prompt="a", params={"n": 1})}) == 1
    listed = ImageRequest(prompt="a", params={"image": ["u1", "u2"]})  # unhashable values
    assert hash(listed) == hash(ImageRequest(prompt="a", params={"image": ["u1", "u2"]}))
    assert listed != ImageRequest(prompt="a", params={"image": ["u1"]})
    assert dict(one.params) == {"n": 1}


async def test_large_outcomes_wait_for_the_consumer() -> None:
    """A worker whose outcome holds megabytes of image starts no new request until the consumer
    has taken it: at most `concurrency` items are in flight or waiting, never a queue more.
    """
    concurrency = 2
    async with (
        serve(image_bytes=400_000) as sandbox,
        make_client(sandbox) as client,
        client.batch(["x"] * 10, model="gpt-image-1", concurrency=concurrency) as batch,
    ):
        consumed = 0
        ahead = []
        async for outcome in batch:
            assert outcome.result is not None
            consumed += 1
            for _ in range(50):  # a slow consumer: workers that would run ahead do so now
                await anyio.lowlevel.checkpoint()
            ahead.append(sandbox.stats.submits - consumed)
    assert consumed == 10
    assert max(ahead) <= concurrency


async def test_a_refused_key_stops_the_batch_after_the_items_running(sandbox: Sandbox) -> None:
    """A wrong key (401) would be refused for every item: the batch starts no more items and
    ends with BatchAbortedError once the running ones are delivered, so 200 prompts do not
    make 200 requests; the items not started are counted, nothing is lost.
    """
    received: list[Outcome] = []
    async with make_client(sandbox, api_key="sk-wrong") as client:
        batch = client.batch([f"p{i}" for i in range(200)], model="gpt-image-1", concurrency=4)
        async with batch as outcomes:
            with pytest.raises(ah.BatchAbortedError, match="refused the API key") as caught:
                async for outcome in outcomes:
                    received.append(outcome)  # noqa: PERF401
    assert "sk-wrong" not in str(caught.value)
    assert received
    assert all(isinstance(o.error, ah.AuthenticationError) for o in received)
    summary = outcomes.summary
    assert summary.started == len(received) <= 4 + 1
    assert summary.not_started == 200 - summary.started
    assert sandbox.stats.requests == len(received)
