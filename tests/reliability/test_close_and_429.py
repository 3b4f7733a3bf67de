"""Issue 11, items 5 and 6: closing the client under a batch, and servers that answer 429."""

from __future__ import annotations

import base64
import itertools
import logging
from collections.abc import Iterator

import anyio
import pytest
from aiohttp import web

import aihubmix_async as ah
from aihubmix_async import Client, Outcome, RetryPolicy, set_testing
from aihubmix_async.sandbox import Sandbox

from ..support import make_client
from .conftest import Start

PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAE"
    "hQGAhKmMIQAAAABJRU5ErkJggg=="
)
REFUSED = {"error": {"message": "rate limited", "type": "rate_limit"}}


def client_for(base_url: str, **options: object) -> Client:
    settings: dict[str, object] = {} if "retry" in options else {"max_retries": 0}
    settings.update(options)
    return Client(api_key="sk-test-429", base_url=base_url, **settings)  # type: ignore[arg-type]


class Counting:
    """An endless prompt source that counts what was pulled from it."""

    def __init__(self, limit: int | None = None) -> None:
        self.pulled = 0
        self._limit = limit

    def __iter__(self) -> Iterator[str]:
        for i in itertools.count() if self._limit is None else range(self._limit):
            self.pulled += 1
            yield f"a cat #{i}"


# --- 5. closing the client under a running batch ------------------------------------------------


async def test_aclose_under_a_running_batch_stops_pulling(sandbox: Sandbox) -> None:
    """The batch ends promptly; the 20,000-item input is not drained into error outcomes."""
    prompts = Counting(20_000)
    received: list[Outcome] = []
    client = make_client(sandbox)
    async with client:
        with anyio.fail_after(60):
            async with client.batch(prompts, model="gpt-image-1", concurrency=4) as outcomes:
                async for outcome in outcomes:
                    received.append(outcome)
                    if len(received) == 5:
                        await client.aclose()
    summary = outcomes.summary
    assert prompts.pulled < 50
    assert summary.started == prompts.pulled
    assert summary.started == len(received) + summary.cancelled  # nothing lost
    closed = [o for o in received if isinstance(o.error, ah.ConfigurationError)]
    assert len(closed) <= 4  # at most the items already pulled by the four workers


# --- 6. 429s ----------------------------------------------------------------------------------


class _Retrying(logging.Handler):
    """Sets an event when the SDK logs that it is about to wait before a retry."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.event = anyio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("retrying"):
            self.event.set()


async def test_bare_429_backs_off_only_its_own_request(start: Start) -> None:
    """A 429 without Retry-After does not pause the whole client (only Retry-After does)."""
    answered: list[str] = []

    async def answer(request: web.Request) -> web.StreamResponse:
        prompt = "first" if "first" in await request.text() else "second"
        answered.append(prompt)
        if prompt == "first":
            return web.json_response(REFUSED, status=429)
        return web.json_response({"data": [{"b64_json": PNG_B64}]})

    url = await start(answer)
    retrying = _Retrying()
    logger = logging.getLogger("aihubmix_async")
    logger.addHandler(retrying)
    previous = logger.level
    logger.setLevel(logging.INFO)
    policy = RetryPolicy(max_retries=1, initial_backoff=120.0, max_backoff=120.0)
    try:
        with set_testing(False):
            async with client_for(url, retry=policy) as client, anyio.create_task_group() as tg:
                tg.start_soon(client.generate, "gpt-image-1", "first")
                await retrying.event.wait()  # "first" got its 429 and waits 60-120 s
                with anyio.fail_after(30):  # a client-wide pause would hold this 60 s or more
                    result = await client.generate("gpt-image-1", "second")
                tg.cancel_scope.cancel()
    finally:
        logger.removeHandler(retrying)
        logger.setLevel(previous)
    assert answered == ["first", "second"]
    assert len(result.images) == 1


async def test_each_call_has_a_bounded_retry_wait_budget(start: Start) -> None:
    """Retry-After 0.5 s forever, max_retry_wait 2 s: four retries (2 s of waits), then the
    RateLimitError, however many retries max_retries would allow.
    """
    requests = 0

    async def answer(request: web.Request) -> web.StreamResponse:
        nonlocal requests
        requests += 1
        return web.json_response(REFUSED, status=429, headers={"Retry-After": "0.5"})

    url = await start(answer)
    policy = RetryPolicy(max_retries=1000, max_retry_wait=2.0)
    async with client_for(url, retry=policy) as client:
        with pytest.raises(ah.RateLimitError):
            await client.generate("gpt-image-1", "a cat")
    assert requests == 5


async def test_batch_breaker_ends_a_batch_the_server_refuses(start: Start) -> None:
    """A server answering 429 to everything: the batch ends with BatchAbortedError after
    give_up_after, every started item delivered as its RateLimitError, the rest not pulled.
    """

    async def answer(request: web.Request) -> web.StreamResponse:
        return web.json_response(REFUSED, status=429)

    url = await start(answer)
    prompts = Counting()  # endless: without the breaker this batch never ends
    received: list[Outcome] = []
    async with client_for(url) as client:
        with anyio.fail_after(60):
            batch = client.batch(prompts, model="gpt-image-1", concurrency=4, give_up_after=0.3)
            async with batch as outcomes:
                with pytest.raises(ah.BatchAbortedError, match=r"give_up_after=0\.3s") as caught:
                    # A loop, not a comprehension: the items before the raise must be kept.
                    async for outcome in outcomes:
                        received.append(outcome)  # noqa: PERF401
    assert caught.value.refusing_for >= 0.3
    assert received
    assert all(isinstance(o.error, ah.RateLimitError) for o in received)
    assert outcomes.summary.started == len(received) == prompts.pulled  # nothing lost


async def test_breaker_is_reset_by_any_other_answer(start: Start) -> None:
    """Interleaved successes keep the batch going: only an unbroken run of 429s trips it."""
    count = 0

    async def answer(request: web.Request) -> web.StreamResponse:
        nonlocal count
        count += 1
        if count % 2:
            return web.json_response(REFUSED, status=429)
        await anyio.sleep(0.1)  # 20 of these: 2 s of run, twice give_up_after
        return web.json_response({"data": [{"b64_json": PNG_B64}]})

    url = await start(answer)
    async with client_for(url) as client:
        # A breaker that did not reset would trip halfway; one that does sees each 429 alone,
        # for as long as the loop takes to note it (well under a second even on a busy machine).
        batch = client.batch(Counting(40), model="gpt-image-1", concurrency=1, give_up_after=1.0)
        async with batch as outcomes:
            received = [outcome async for outcome in outcomes]
    assert len(received) == 40
    assert sum(o.error is None for o in received) == 20


@pytest.mark.parametrize("value", [0, -1, float("inf"), "10"])
def test_give_up_after_is_checked(value: object) -> None:
    client = Client(api_key="sk-x")
    with pytest.raises(ah.InvalidRequestError, match="give_up_after"):
        client.batch(["a"], model="gpt-image-1", give_up_after=value)  # type: ignore[call-overload]


async def test_base64_fixture_is_a_png() -> None:
    assert base64.b64decode(PNG_B64).startswith(b"\x89PNG")
