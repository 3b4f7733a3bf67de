"""Every server fault reaches the caller as its typed error, with status, message, request id."""

from __future__ import annotations

from typing import Any

import pytest

import aihubmix_async as ah
from aihubmix_async import Client, PollPolicy
from aihubmix_async.sandbox import Sandbox

from .support import make_client

STATUS_CASES = [
    (401, ah.AuthenticationError),
    (402, ah.PermissionDeniedError),
    (403, ah.PermissionDeniedError),
    (404, ah.NotFoundError),
    (400, ah.BadRequestError),
    (500, ah.ServerError),
    (502, ah.ServerError),
]


@pytest.mark.parametrize(("status", "error_type"), STATUS_CASES)
async def test_status_faults_are_typed(
    client: Client, sandbox: Sandbox, status: int, error_type: type[ah.APIStatusError]
) -> None:
    """An error status becomes its subclass carrying status, server message, code, request id."""
    sandbox.fail("status", status=status, message="upstream says no", code="some_code")
    with pytest.raises(error_type) as caught:
        await client.generate("gpt-image-1", "a cat")
    error = caught.value
    assert error.status_code == status
    assert error.message == "upstream says no"
    assert error.code == "some_code"
    assert error.request_id is not None
    assert error.request_id.startswith("req_")
    assert error.model == "openai/gpt-image-1"
    assert error.request_id in str(error)
    assert f"status={status}" in str(error)


async def test_quota_403_is_permission_denied(client: Client, sandbox: Sandbox) -> None:
    """The gateway's insufficient-quota answer is a PermissionDeniedError with its code."""
    sandbox.fail("status", status=403, message="quota exhausted", code="insufficient_user_quota")
    with pytest.raises(ah.PermissionDeniedError) as caught:
        await client.generate("imagen-3.0-generate-002", "a cat")
    assert caught.value.code == "insufficient_user_quota"


async def test_429_exhausted_carries_retry_after(sandbox: Sandbox) -> None:
    """A 429 that outlasts the retry budget surfaces as RateLimitError with retry_after."""
    sandbox.fail("status", status=429, message="Too many requests", retry_after=3, times=5)
    async with make_client(sandbox, max_retries=1) as client:
        with pytest.raises(ah.RateLimitError) as caught:
            await client.generate("gpt-image-1", "a cat")
    assert caught.value.retry_after == 3
    assert caught.value.status_code == 429
    assert caught.value.request_id is not None
    assert sandbox.stats.submits == 2


async def test_503_exhausted_is_server_error(sandbox: Sandbox) -> None:
    """A 503 is retried (not processed upstream) and then reported as ServerError."""
    sandbox.fail("status", status=503, message="no available channel", times=5)
    async with make_client(sandbox, max_retries=2) as client:
        with pytest.raises(ah.ServerError) as caught:
            await client.generate("gpt-image-1", "a cat")
    assert caught.value.status_code == 503
    assert sandbox.stats.submits == 3


async def test_http_200_with_error_body_is_an_error(client: Client, sandbox: Sandbox) -> None:
    """HTTP 200 whose body is {"error": ...} raises instead of returning a result."""
    sandbox.fail("error_body", message="upstream exploded", code="upstream_error")
    with pytest.raises(ah.APIStatusError) as caught:
        await client.generate("gpt-image-1", "a cat")
    assert caught.value.status_code == 200
    assert caught.value.message == "upstream exploded"
    assert caught.value.request_id is not None


@pytest.mark.parametrize("kind", ["malformed", "truncated"])
async def test_unparseable_body_is_response_format_error(
    client: Client, sandbox: Sandbox, kind: str
) -> None:
    """A body that is not JSON, or is cut short, raises ResponseFormatError saying what was due."""
    sandbox.fail(kind)
    with pytest.raises(ah.ResponseFormatError) as caught:
        await client.generate("gpt-image-1", "a cat")
    assert caught.value.expected == "a JSON object"
    assert caught.value.request_id is not None
    assert sandbox.stats.submits == 1  # a billed answer arrived: never resent


async def test_connection_reset_mid_body_is_transport_error(
    client: Client, sandbox: Sandbox
) -> None:
    """A connection dropped mid-body is a TransportError marked as sent (maybe billed)."""
    sandbox.fail("reset")
    with pytest.raises(ah.TransportError) as caught:
        await client.generate("gpt-image-1", "a cat")
    assert caught.value.request_sent is True
    assert sandbox.stats.submits == 1


async def test_slow_response_times_out(sandbox: Sandbox) -> None:
    """A response slower than the timeout raises RequestTimeout (also a TimeoutError)."""
    sandbox.fail("delay", delay=2.0)
    async with make_client(sandbox, timeout=0.2) as client:
        with pytest.raises(TimeoutError) as caught:
            await client.generate("gpt-image-1", "a cat")
    assert isinstance(caught.value, ah.RequestTimeout)
    assert sandbox.stats.submits == 1  # a read timeout on a billed POST is not resent


async def test_moderated_prompt_is_content_policy_error(client: Client, sandbox: Sandbox) -> None:
    """A moderation refusal raises ContentPolicyError with the status and code."""
    sandbox.fail("moderated")
    with pytest.raises(ah.ContentPolicyError) as caught:
        await client.generate("gpt-image-1", "a cat")
    assert caught.value.status_code == 400
    assert caught.value.code == "moderation_blocked"


async def test_moderated_flux_task(client: Client, sandbox: Sandbox) -> None:
    """A Flux task ending "Content Moderated" raises ContentPolicyError naming the task."""
    sandbox.fail("moderated")
    with pytest.raises(ah.ContentPolicyError) as caught:
        await client.generate("flux-kontext-max", "a cat")
    assert caught.value.task_id is not None
    assert caught.value.request_id is not None


async def test_failed_flux_task(client: Client, sandbox: Sandbox) -> None:
    """A Flux task ending in Error raises GenerationFailedError (not a content error)."""
    sandbox.fail("task_failed")
    with pytest.raises(ah.GenerationFailedError) as caught:
        await client.generate("flux-2-pro", "a cat")
    assert not isinstance(caught.value, ah.ContentPolicyError)
    assert "upstream failure" in str(caught.value)


async def test_task_that_never_finishes_hits_the_poll_deadline(sandbox: Sandbox) -> None:
    """A task that stays pending ends in RequestTimeout at the poll deadline."""
    sandbox.fail("never_finish")
    poll = PollPolicy(initial_interval=0.01, max_interval=0.02, deadline=0.3)
    async with make_client(sandbox, poll=poll) as client:
        with pytest.raises(ah.RequestTimeout, match="still pending"):
            await client.generate("flux-kontext-pro", "a cat")
    assert sandbox.stats.polls >= 5


async def test_overall_deadline_covers_submit_poll_download(sandbox: Sandbox) -> None:
    """generate(deadline=...) bounds the whole call, whatever stage it is in."""
    sandbox.fail("never_finish")
    async with make_client(sandbox) as client:
        with pytest.raises(ah.RequestTimeout, match="deadline"):
            await client.generate("flux-kontext-pro", "a cat", deadline=0.2)


async def test_unknown_model_on_the_server(sandbox: Sandbox) -> None:
    """A model the gateway has no channel for gives its 503 as ServerError with the message."""
    from aihubmix_async.providers import ModelSpec
    from aihubmix_async.providers.stability import StabilityAdapter

    class Ghost(StabilityAdapter):
        models = (ModelSpec(path="ghost/model-x"),)

    async with make_client(sandbox, max_retries=0) as client:
        client.registry.register(Ghost())
        with pytest.raises(ah.ServerError, match="no available channel"):
            await client.generate(ah.ModelName("ghost/model-x"), "a cat")


@pytest.mark.parametrize(
    "make_error",
    [
        lambda: ah.RateLimitError("slow down", retry_after=1.5, request_id="r1"),
        lambda: ah.ResponseFormatError("bad", expected="x", request_id="r2"),
        lambda: ah.GenerationFailedError("nope", task_id="t1", status_code=200),
    ],
)
def test_errors_pickle(make_error: Any) -> None:
    """Errors survive pickling (multiprocessing, workers) with their fields."""
    import pickle

    error = make_error()
    clone = pickle.loads(pickle.dumps(error))  # noqa: S301  (our own bytes)
    assert type(clone) is type(error)
    assert str(clone) == str(error)
    assert clone.__dict__ == error.__dict__


async def test_wrong_key_is_authentication_error(sandbox: Sandbox) -> None:
    """A key the server does not accept gives AuthenticationError (401) with the request id."""
    async with make_client(sandbox, api_key="sk-not-the-right-one") as client:
        with pytest.raises(ah.AuthenticationError) as caught:
            await client.generate("flux-kontext-max", "a cat")
    assert caught.value.status_code == 401
    assert caught.value.request_id is not None
    assert "sk-not-the-right-one" not in str(caught.value)
    assert sandbox.stats.unauthorized == 1
