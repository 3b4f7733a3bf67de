"""Core fixes after the hostile pass: an echoed key in the request id, lone surrogates, a bad
port in the base URL, and a flood of an error message.

Each server is a small aiohttp.web app on 127.0.0.1; the client under test is the real one.
"""

from __future__ import annotations

import base64
import logging
from typing import Final

import pytest
from aiohttp import web

from aihubmix_async import (
    Client,
    InvalidRequestError,
    ResponseEvent,
    RetryPolicy,
    ServerError,
)
from aihubmix_async.sandbox._images import png

from ..reliability import conftest as reliability
from ..reliability.conftest import Start

#: The reliability suite's fixture: one-route aiohttp.web servers on 127.0.0.1 (their URL).
start = reliability.start

KEY: Final = "sk-hostile-secret-0123456789"
PNG_B64: Final = base64.b64encode(png(8, 8)).decode()
ANSWER: Final = ('{"output":[{"b64_json":"%s"}]}' % PNG_B64).encode()  # noqa: UP031


async def _echoing(request: web.Request) -> web.Response:
    """A gpt-image endpoint that echoes the Authorization header as its request id."""
    echoed = request.headers.get("Authorization", "")
    return web.Response(
        body=ANSWER, content_type="application/json", headers={"x-request-id": echoed}
    )


async def test_an_echoed_key_never_reaches_the_request_id(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[ResponseEvent] = []
    caplog.set_level(logging.DEBUG, logger="aihubmix_async")
    async with Client(api_key=KEY, base_url=await start(_echoing), on_response=events.append) as c:
        result = await c.generate("gpt-image-1", "a cat")
    assert result.request_id == "Bearer ***"  # the header arrived, the key did not
    assert KEY not in repr(result)
    assert [e.request_id for e in events] == ["Bearer ***"]
    assert "request_id=Bearer ***" in caplog.text  # the debug line was written, redacted
    assert KEY not in caplog.text


@pytest.mark.parametrize(
    ("model", "prompt", "params", "field"),
    [
        ("gpt-image-1", "caf\udcff", {}, "prompt"),  # a JSON body (orjson: TypeError)
        ("ideogram-v3", "un café", {"negative_prompt": "caf\udcff"}, "negative_prompt"),  # form
    ],
)
async def test_a_lone_surrogate_is_refused_before_sending(
    start: Start, model: str, prompt: str, params: dict[str, object], field: str
) -> None:
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.Response(body=ANSWER, content_type="application/json")

    async with Client(api_key=KEY, base_url=await start(handler)) as client:
        with pytest.raises(InvalidRequestError) as caught:
            await client.generate(model, prompt, **params)  # type: ignore[call-overload]
    assert caught.value.field == field
    assert "surrogate" in str(caught.value)
    assert seen == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999", "http://127.0.0.1:99999/v1"])
def test_a_port_out_of_range_is_a_typed_error(url: str) -> None:
    with pytest.raises(InvalidRequestError, match=r"base_url is not a valid URL .*port") as caught:
        Client(api_key=KEY, base_url=url)
    assert caught.value.field == "base_url"


async def test_a_flood_of_an_error_message_is_capped(start: Start) -> None:
    flood = "x" * 2_000_000

    async def handler(request: web.Request) -> web.Response:
        body = '{"error":{"message":"%s","code":"boom"}}' % flood  # noqa: UP031
        return web.Response(status=500, body=body.encode(), content_type="application/json")

    policy = RetryPolicy(max_retries=0)
    async with Client(api_key=KEY, base_url=await start(handler), retry=policy) as client:
        with pytest.raises(ServerError) as caught:
            await client.generate("gpt-image-1", "a cat")
    text = str(caught.value)
    assert len(text) < 2_200
    assert text.startswith("x" * 2000 + "… (1998000 more characters)")
    assert "status=500" in text
    assert "code=boom" in text
