"""Client lifecycle, configuration and secrecy, as a user of the SDK sees them."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest

import aihubmix_async as ah
from aihubmix_async import Client
from aihubmix_async.sandbox import Sandbox, serve

from .support import make_client

SECRET = "sk-sandbox"  # noqa: S105  the sandbox's key: must never show up in text the SDK produces


async def test_missing_key_fails_at_first_call_not_construction(sandbox: Sandbox) -> None:
    """No key anywhere: constructing works; the first call raises ConfigurationError."""
    client = Client(base_url=sandbox.base_url)
    async with client:
        with pytest.raises(ah.ConfigurationError, match="AIHUBMIX_API_KEY"):
            await client.generate("gpt-image-1", "a cat")
    assert sandbox.stats.requests == 0


async def test_environment_supplies_key_and_base_url(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AIHUBMIX_API_KEY and AIHUBMIX_BASE_URL are used when no argument is given."""
    monkeypatch.setenv("AIHUBMIX_API_KEY", sandbox.api_key or "")
    monkeypatch.setenv("AIHUBMIX_BASE_URL", sandbox.base_url)
    async with Client() as client:
        assert (await client.generate("dall-e-3", "a cat")).images


def test_default_base_url_and_tasks_host() -> None:
    """Defaults follow the docs: aihubmix.com for calls, api.aihubmix.com for tasks."""
    config = Client(api_key="k").config
    assert config.base_url == "https://aihubmix.com"
    assert config.tasks_url == "https://api.aihubmix.com"
    overridden = Client(api_key="k", base_url="http://127.0.0.1:9/").config
    assert overridden.tasks_url == "http://127.0.0.1:9"


@pytest.mark.parametrize(
    "options",
    [
        {"base_url": "ftp://example.test"},
        {"timeout": 0},
        {"timeout": float("nan")},
        {"max_concurrency": 0},
        {"max_retries": -1},
    ],
)
def test_bad_client_settings_are_refused(options: dict[str, object]) -> None:
    """Nonsense settings raise InvalidRequestError at construction, naming the setting."""
    with pytest.raises(ah.InvalidRequestError):
        Client(api_key="k", **options)  # type: ignore[arg-type]


async def test_use_after_close_is_a_clear_error(sandbox: Sandbox) -> None:
    """A closed client refuses work with ConfigurationError, and cannot be re-entered."""
    client = make_client(sandbox)
    async with client:
        pass
    with pytest.raises(ah.ConfigurationError, match="closed"):
        await client.generate("gpt-image-1", "a cat")
    with pytest.raises(ah.ConfigurationError):
        await client.__aenter__()


async def test_lazy_open_without_context_manager(sandbox: Sandbox) -> None:
    """Awaiting generate on an unopened client opens it; aclose() then closes it."""
    client = make_client(sandbox)
    assert (await client.generate("gpt-image-1", "a cat")).images
    await client.aclose()
    await client.aclose()  # idempotent


async def test_borrowed_session_is_not_closed(sandbox: Sandbox) -> None:
    """An app-owned aiohttp session is used and left open on exit."""
    async with aiohttp.ClientSession() as session:
        async with make_client(sandbox, session=session) as client:
            assert (await client.generate("imagen-3.0-generate-002", "a cat")).images
        assert not session.closed


async def test_borrowed_session_must_be_aiohttp(sandbox: Sandbox) -> None:
    """A session of the wrong type is refused with a clear error."""
    client = make_client(sandbox, session=object())
    with pytest.raises(ah.InvalidRequestError, match=r"aiohttp\.ClientSession"):
        await client.__aenter__()


def test_client_reused_across_event_loops_fails_clearly() -> None:
    """A Client opened in one asyncio.run and used in another says so (no "loop is closed")."""
    holder: list[Client] = []

    async def open_in_first_loop() -> None:
        client = Client(api_key="sk-x", base_url="http://127.0.0.1:9")
        await client.__aenter__()
        holder.append(client)

    async def use_in_second_loop() -> None:
        client = holder[0]
        with pytest.raises(ah.ConfigurationError, match="another event loop"):
            await client.generate("gpt-image-1", "a cat")
        await client.aclose()  # closing from the new loop still works

    asyncio.run(open_in_first_loop())
    asyncio.run(use_in_second_loop())


def test_closed_client_in_a_new_loop_says_closed() -> None:
    """A client closed in one loop reports "closed" (not a loop error) in the next."""
    holder: list[Client] = []

    async def first() -> None:
        async with serve() as sandbox, make_client(sandbox) as client:
            await client.generate("gpt-image-1", "a cat")
            holder.append(client)

    async def second() -> None:
        with pytest.raises(ah.ConfigurationError, match="closed"):
            await holder[0].generate("gpt-image-1", "a cat")

    asyncio.run(first())
    asyncio.run(second())


async def test_invalid_parameters_send_nothing(client: Client, sandbox: Sandbox) -> None:
    """A bad value or unknown parameter raises InvalidRequestError before any request."""
    with pytest.raises(ah.InvalidRequestError) as caught:
        await client.generate("gpt-image-1", "a cat", size="999x999")  # type: ignore[call-overload]
    assert caught.value.field == "size"
    assert "'1024x1024'" in str(caught.value)
    with pytest.raises(ah.InvalidRequestError, match=r"unknown parameter 'sise'.*'size'"):
        await client.generate("gpt-image-1", "a cat", sise="1024x1024")  # type: ignore[call-overload]
    with pytest.raises(ah.InvalidRequestError, match="prompt"):
        await client.generate("gpt-image-1", "   ")
    assert sandbox.stats.requests == 0


async def test_unknown_model_names_nearest(client: Client, sandbox: Sandbox) -> None:
    """An unknown model raises InvalidRequestError suggesting the nearest known names."""
    with pytest.raises(ah.InvalidRequestError, match="did you mean 'flux-kontext-max'"):
        await client.generate("flux-kontex-max", "a cat")  # type: ignore[call-overload]
    assert sandbox.stats.requests == 0


async def test_models_lists_every_model_with_params(client: Client) -> None:
    """models() lists each served path once, with aliases and typed parameters."""
    models = {m.path: m for m in client.models()}
    assert "opanai/gpt-image-1" in models
    assert "openai/gpt-image-1" in models
    assert models["openai/gpt-image-1"].aliases == ("gpt-image-1",)
    imagen = {p.name: p for p in models["google/imagen-4.0-generate-001"].params}
    assert imagen["numberOfImages"].minimum == 1
    assert imagen["numberOfImages"].maximum == 4
    assert models["bfl/flux-kontext-max"].asynchronous


async def test_secret_never_in_reprs_errors_or_logs(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """The API key is absent from reprs, exception text and every log record."""
    caplog.set_level(logging.DEBUG)
    sandbox.fail("status", status=401, message="Invalid token")
    sandbox.fail("status", status=503, times=1)
    async with make_client(sandbox, max_retries=1) as client:
        texts = [repr(client), repr(client.config), str(client.config)]
        with pytest.raises(ah.AuthenticationError) as caught:
            await client.generate("gpt-image-1", "a cat")
        texts += [str(caught.value), repr(caught.value)]
        await client.generate("gpt-image-1", "a cat")
    assert caplog.records, "debug/info logging is expected to have said something"
    texts += [record.getMessage() for record in caplog.records]
    assert all(SECRET not in text for text in texts)


async def test_raising_response_hooks_never_break_a_billed_success(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """on_request/on_response errors are logged (with traceback) and swallowed: the result that
    was paid for is returned, and the request is not sent again.
    """

    def broken(event: object) -> None:
        raise RuntimeError("metrics backend down")

    async with make_client(sandbox, on_request=broken, on_response=broken) as client:
        result = await client.generate("gpt-image-1", "a cat")
    assert result.images
    assert sandbox.stats.submits == 1
    hooked = [r for r in caplog.records if r.name == "aihubmix_async" and r.exc_info]
    assert len(hooked) == 2
    assert {type(r.exc_info[1]) for r in hooked} == {RuntimeError}  # type: ignore[index]
