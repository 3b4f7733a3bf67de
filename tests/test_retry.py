"""Retries: backoff honours Retry-After, billed POSTs are resent only when surely unprocessed."""

from __future__ import annotations

import socket
import time

import anyio
import pytest

import aihubmix_async as ah
from aihubmix_async import Client, RetryPolicy, set_testing
from aihubmix_async.sandbox import Sandbox

from .support import make_client


async def test_429_honours_retry_after_then_succeeds(sandbox: Sandbox) -> None:
    """After a 429 with Retry-After the call waits that long, retries and succeeds."""
    sandbox.fail("status", status=429, retry_after=0.4)
    with set_testing(False):
        async with make_client(sandbox) as client:
            started = time.monotonic()
            result = await client.generate("gpt-image-1", "a cat")
            waited = time.monotonic() - started
    assert result.images
    assert waited >= 0.4
    assert sandbox.stats.submits == 2


async def test_retry_after_longer_than_allowed_is_not_waited_for(sandbox: Sandbox) -> None:
    """A Retry-After beyond max_retry_after raises at once instead of sleeping."""
    sandbox.fail("status", status=429, retry_after=3600)
    policy = RetryPolicy(max_retries=3, max_retry_after=10)
    with set_testing(False):
        async with make_client(sandbox, retry=policy) as client:
            with anyio.fail_after(60), pytest.raises(ah.RateLimitError):  # not the hour asked
                await client.generate("gpt-image-1", "a cat")
    assert sandbox.stats.submits == 1


async def test_503_is_retried_to_success(client: Client, sandbox: Sandbox) -> None:
    """503 (no channel / upstream busy) means unprocessed: retried to success."""
    sandbox.fail("status", status=503, times=2)
    assert (await client.generate("gpt-image-1", "a cat")).images
    assert sandbox.stats.submits == 3


async def test_500_on_billed_post_is_not_resent(client: Client, sandbox: Sandbox) -> None:
    """A 500 may come after the image was made and billed: the POST is not resent."""
    sandbox.fail("status", status=500)
    with pytest.raises(ah.ServerError):
        await client.generate("gpt-image-1", "a cat")
    assert sandbox.stats.submits == 1


async def test_opt_in_resends_unsafe_posts(sandbox: Sandbox) -> None:
    """retry_unsafe_posts=True resends a POST after a 500 or a read timeout."""
    sandbox.fail("status", status=500)
    sandbox.fail("delay", delay=1.0)
    policy = RetryPolicy(max_retries=3, retry_unsafe_posts=True)
    async with make_client(sandbox, retry=policy, timeout=0.3) as client:
        assert (await client.generate("gpt-image-1", "a cat")).images
    assert sandbox.stats.submits == 3


async def test_polls_and_downloads_retry_freely(client: Client, sandbox: Sandbox) -> None:
    """GETs are safe to repeat: a 500 on a poll and a reset on a download are retried."""
    sandbox.fail("status", status=500, route="poll")
    sandbox.fail("reset", route="download")
    result = await client.generate("flux-kontext-max", "a cat")
    assert result.images
    assert sandbox.stats.submits == 1
    assert sandbox.stats.downloads == 2


async def test_connect_failure_is_retried_then_connect_error() -> None:
    """Nothing listening: each attempt is a ConnectError (safe to retry); the last one raises."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = Client(api_key="sk-test", base_url=f"http://127.0.0.1:{port}", max_retries=2)
    async with client:
        with pytest.raises(ah.ConnectError) as caught:
            await client.generate("gpt-image-1", "a cat")
    assert caught.value.request_sent is False


async def test_testing_mode_removes_waits(sandbox: Sandbox) -> None:
    """In testing mode a backoff of seconds is skipped, so retries are instant."""
    sandbox.fail("status", status=503, times=2)
    policy = RetryPolicy(max_retries=2, initial_backoff=5, max_backoff=5)
    async with make_client(sandbox, retry=policy) as client:
        before = anyio.current_time()
        await client.generate("gpt-image-1", "a cat")
        assert anyio.current_time() - before < 5  # two backoffs would have slept 5 s or more
