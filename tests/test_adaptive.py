"""Adaptive concurrency (``batch(concurrency="auto")``) against the sandbox's per-key limit.

Everything is asserted on what the sandbox recorded: the key's requests in flight as each one
arrived (``stats.key_in_flight_seen``), its peak, and the 429s its limit answered.
"""

from __future__ import annotations

import asyncio
from typing import Final, Literal

import anyio
import pytest

from aihubmix_async import Client, InvalidRequestError, RateLimitError, RetryPolicy, set_testing
from aihubmix_async._adaptive import Gate
from aihubmix_async.sandbox import Sandbox, serve

from .support import collect, make_client, wait_until

MODEL: Final = "gpt-image-1"  # answers inline: one API request per item, no polls, no downloads
#: Patient enough that a fixed-concurrency flood still ends with every item done.
PATIENT = RetryPolicy(max_retries=200)


def _reset(sandbox: Sandbox) -> None:
    sandbox.stats.key_in_flight_seen.clear()
    sandbox.stats.max_key_in_flight = 0
    sandbox.stats.limited = 0


async def _run(client: Client, count: int, concurrency: int | Literal["auto"]) -> None:
    async with client.batch(
        [f"p{i}" for i in range(count)],
        model=MODEL,
        concurrency=concurrency,
    ) as batch:
        outcomes = await collect(batch)
    assert len(outcomes) == count
    assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok][:3]


async def test_auto_starts_low_and_grows_to_the_maximum_but_never_above() -> None:
    async with serve(latency=0.01) as sandbox:
        async with make_client(sandbox, max_concurrency=6) as client:
            await _run(client, 80, "auto")
    seen = list(sandbox.stats.key_in_flight_seen)
    assert len(seen) == 80
    # Starts low (2, growing by one per success), where a fixed 6 arrives as 1, 2, 3, 4...
    assert max(seen[:4]) <= 3, seen[:8]
    assert sandbox.stats.max_key_in_flight == 6  # grew all the way...
    assert max(seen) <= 6  # ...and never past the configured maximum
    assert sandbox.stats.limited == 0


async def test_a_fixed_concurrency_starts_at_full_width() -> None:
    """Guard for the test above: without "auto" the first requests arrive all at once."""
    async with serve(latency=0.01) as sandbox:
        async with make_client(sandbox, max_concurrency=6) as client:
            await _run(client, 12, 6)
    assert max(list(sandbox.stats.key_in_flight_seen)[:6]) == 6


async def test_auto_backs_off_on_429_far_below_a_fixed_flood() -> None:
    """Against a key limited to 3 in flight, a client allowed 12: the fixed batch keeps
    hitting the limit; the adaptive one settles under it, with a fraction of the 429s.
    """
    async with serve(latency=0.01, key_concurrency=3) as sandbox:
        async with make_client(sandbox, max_concurrency=12, retry=PATIENT) as client:
            await _run(client, 60, 12)
            fixed_429s = sandbox.stats.limited
            _reset(sandbox)
            await _run(client, 60, "auto")
            auto_429s = sandbox.stats.limited
    assert sandbox.stats.max_key_in_flight <= 3
    assert fixed_429s >= 60  # each of the 60 items was refused at least once on average
    assert auto_429s * 4 <= fixed_429s, (auto_429s, fixed_429s)


async def test_auto_recovers_once_the_limit_lifts() -> None:
    """Cut by a tight key limit, the client's figure grows back to the maximum once the
    limit is gone (in the next auto batch: the figure belongs to the client).
    """
    async with serve(latency=0.01, key_concurrency=2) as sandbox:
        async with make_client(sandbox, max_concurrency=8, retry=PATIENT) as client:
            await _run(client, 30, "auto")
            assert sandbox.stats.limited >= 1  # it did meet the limit
            sandbox.key_limit.concurrency = None
            _reset(sandbox)
            await _run(client, 120, "auto")
    assert sandbox.stats.max_key_in_flight == 8  # recovered to the maximum
    assert sandbox.stats.limited == 0


async def test_single_calls_share_the_figure_while_an_auto_batch_runs() -> None:
    """Single calls made while an auto batch runs wait under the same low starting figure:
    ten of them fired with the batch's first workers do not reach the key all at once.
    """
    async with serve(latency=0.01) as sandbox:
        async with make_client(sandbox, max_concurrency=12) as client:
            async with client.batch(
                (f"p{i}" for i in range(40)), model=MODEL, concurrency="auto"
            ) as batch:
                async with anyio.create_task_group() as group:
                    for i in range(10):
                        group.start_soon(client.generate, MODEL, f"single {i}")
                    outcomes = await collect(batch)
    assert all(o.ok for o in outcomes)
    seen = list(sandbox.stats.key_in_flight_seen)
    assert len(seen) == 50
    # Ungated, the ten single calls alone would put 10 requests in flight at the start.
    assert max(seen[:4]) <= 3, seen[:12]


async def test_leaving_an_auto_batch_early_frees_every_place() -> None:
    """Requests waiting for a place when the block is left give it back: a later batch
    still runs at full width.
    """
    async with serve(latency=0.01) as sandbox:
        async with make_client(sandbox, max_concurrency=4) as client:
            async with client.batch(
                (f"p{i}" for i in range(100)), model=MODEL, concurrency="auto"
            ) as batch:
                async for _ in batch:
                    break
            await wait_until(lambda: sandbox.stats.in_flight == 0)  # abandoned handlers end
            _reset(sandbox)
            with anyio.fail_after(30):  # a leaked place would shrink (or jam) the next batch
                await _run(client, 60, "auto")
    # At least 4: a request abandoned before the server read it may still arrive late.
    assert sandbox.stats.max_key_in_flight >= 4


@pytest.mark.parametrize("bad", ["fast", 0, -1, 2.5, True])
async def test_concurrency_must_be_a_positive_integer_or_auto(client: Client, bad: object) -> None:
    with pytest.raises(InvalidRequestError, match="concurrency"):
        client.batch(["x"], model=MODEL, concurrency=bad)  # type: ignore[call-overload]


async def test_the_sandbox_limits_requests_per_minute_per_key() -> None:
    async with serve(key_rpm=3) as sandbox:
        async with make_client(sandbox, retry=RetryPolicy(max_retries=0)) as client:
            for i in range(3):
                await client.generate(MODEL, f"ok {i}")
            with pytest.raises(RateLimitError) as caught:
                await client.generate(MODEL, "one too many")
    assert caught.value.status_code == 429
    assert caught.value.retry_after is not None
    assert 0 < caught.value.retry_after <= 60
    assert sandbox.stats.limited == 1
    assert [e.kind for e in sandbox.events].count("limited") == 1
    assert "sk-sandbox" not in repr(sandbox.stats.as_dict())


async def test_the_sandbox_limits_concurrent_requests_per_key() -> None:
    async with serve(latency=0.05, key_concurrency=2) as sandbox:
        async with make_client(sandbox, retry=RetryPolicy(max_retries=0)) as client:
            results = []

            async def one(i: int) -> None:
                try:
                    await client.generate(MODEL, f"p{i}")
                    results.append("ok")
                except RateLimitError:
                    results.append("429")

            async with anyio.create_task_group() as group:
                for i in range(6):
                    group.start_soon(one, i)
    assert sandbox.stats.max_key_in_flight == 2
    assert results.count("429") == sandbox.stats.limited >= 1
    assert results.count("ok") >= 2


async def test_under_auto_a_bare_429_cuts_the_figure_instead_of_pausing_the_client() -> None:
    """A 429 without Retry-After waits out only its own backoff (a minute here) while the
    other items go on under the cut figure; the client-wide pause would stall them all.
    """
    slow = RetryPolicy(max_retries=3, initial_backoff=60.0, max_backoff=60.0)
    with set_testing(False):
        async with serve(latency=0.05, key_concurrency=1) as sandbox:
            async with make_client(sandbox, max_concurrency=4, retry=slow) as client:
                done = 0
                # Only a stalled client reaches this bound (the items take well under a second).
                with anyio.fail_after(20):
                    async with client.batch(
                        [f"p{i}" for i in range(12)], model=MODEL, concurrency="auto"
                    ) as batch:
                        async for outcome in batch:
                            done += outcome.ok
                            if done == 3:
                                break
    assert sandbox.stats.limited >= 1  # the key did refuse one
    assert done == 3


async def test_calls_cancelled_while_waiting_for_the_client_limit_give_every_place_back() -> None:
    """The client's own limit (``max_concurrency``): calls cancelled while holding a place or
    waiting for one leave it whole; later calls run at full width and never above it.
    """
    async with serve(latency=0.2) as sandbox, make_client(sandbox, max_concurrency=3) as client:
        async with anyio.create_task_group() as group:
            for i in range(10):
                group.start_soon(client.generate, MODEL, f"abandoned {i}")
            await wait_until(lambda: sandbox.stats.in_flight == 3)  # three sent, seven waiting
            group.cancel_scope.cancel()
        await wait_until(lambda: sandbox.stats.in_flight == 0)  # abandoned handlers end
        sandbox.stats.max_in_flight = 0
        with anyio.fail_after(30):  # a leaked place would shrink (or jam) these
            async with anyio.create_task_group() as group:
                for i in range(9):
                    group.start_soon(client.generate, MODEL, f"p{i}")
    assert sandbox.stats.max_in_flight == 3


async def test_a_place_handed_to_a_waiter_cancelled_before_it_ran_passes_on() -> None:
    """The race the HTTP test cannot order: a released place goes to the longest waiter, whose
    task is cancelled before it runs; the next waiter gets the place, and none is lost.
    """
    gate = Gate(1)
    gate.free -= 1  # taken
    got: list[str] = []

    async def wait(name: str) -> None:
        await gate.wait()
        got.append(name)
        gate.release()

    first = asyncio.create_task(wait("first"))
    second = asyncio.create_task(wait("second"))
    await asyncio.sleep(0)  # one loop turn: both tasks run up to their wait
    gate.release()  # handed to "first"...
    first.cancel()  # ...which is cancelled before it runs
    await asyncio.gather(first, second, return_exceptions=True)
    assert first.cancelled()
    assert got == ["second"]
    assert gate.free == 1
