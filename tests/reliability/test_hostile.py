"""Hostile servers on loopback: oversized and slow-drip bodies, odd URL schemes, key leaks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import anyio
import pytest
from aiohttp import web

import aihubmix_async as ah
from aihubmix_async import Client
from aihubmix_async.sandbox import Sandbox, serve

from ..support import make_client
from .conftest import Start

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Hostile:
    def __init__(self) -> None:
        self.sent = 0  # body bytes the server managed to write


@pytest.fixture
def hostile(start: Start) -> tuple[Hostile, Start]:
    """A fresh byte counter and the loopback server starter (see conftest)."""
    return Hostile(), start


def client_for(base_url: str, **options: object) -> Client:
    settings: dict[str, object] = {"max_retries": 0}
    settings.update(options)
    return Client(api_key="sk-hostile-test", base_url=base_url, **settings)  # type: ignore[arg-type]


async def test_declared_oversize_body_is_refused_unread(
    hostile: tuple[Hostile, Callable[[Handler], Awaitable[str]]],
) -> None:
    """A Content-Length above the cap is refused from the headers alone."""
    state, start = hostile

    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = 10 * 1024**3
        await response.prepare(request)
        try:
            for _ in range(10_000):
                await response.write(b" " * 65536)
                state.sent += 65536
        except (ConnectionError, RuntimeError):
            pass
        return response

    url = await start(huge)
    async with client_for(url, max_response_bytes=1024 * 1024) as client:
        with pytest.raises(ah.ResponseFormatError, match="larger than max_response_bytes"):
            await client.generate("gpt-image-1", "a cat")
    assert state.sent < 64 * 1024 * 1024  # far from the 10 GiB announced


async def test_undeclared_oversize_body_stops_at_the_cap(
    hostile: tuple[Hostile, Callable[[Handler], Awaitable[str]]],
) -> None:
    """A chunked body that keeps coming is cut once it passes the cap."""
    state, start = hostile

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            while state.sent < 512 * 1024 * 1024:
                await response.write(b" " * 65536)
                state.sent += 65536
        except (ConnectionError, RuntimeError):
            pass
        return response

    url = await start(endless)
    async with client_for(url, max_response_bytes=2 * 1024 * 1024) as client:
        with pytest.raises(ah.ResponseFormatError):
            await client.generate("gpt-image-1", "a cat")
    await asyncio.sleep(0.05)
    assert state.sent < 64 * 1024 * 1024


async def test_slow_drip_is_cut_by_the_timeout(
    hostile: tuple[Hostile, Callable[[Handler], Awaitable[str]]],
) -> None:
    """A server dripping a byte at a time cannot hold a call past its timeout."""
    _, start = hostile

    async def drip(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = 1000
        await response.prepare(request)
        for _ in range(1000):
            await response.write(b" ")
            await asyncio.sleep(0.05)
        return response

    url = await start(drip)
    async with client_for(url, timeout=0.5) as client:
        # The drip would take 50 s; the call must end at its 0.5 s timeout, long before 30 s.
        with anyio.fail_after(30), pytest.raises(ah.RequestTimeout):
            await client.generate("gpt-image-1", "a cat")


@pytest.mark.parametrize(
    ("image_url", "problem"),
    [
        ("file:///etc/passwd", "unsupported scheme"),
        ("ftp://cdn.example/a.png", "unsupported scheme"),
        ("javascript:alert(1)", "unsupported scheme"),
        ("gopher://x", "unsupported scheme"),
        # A bad port or IPv6 literal raised a bare ValueError from deep in aiohttp.
        ("http://127.0.0.1:99999/a.png", "is malformed"),
        ("http://[::1/a.png", "is malformed"),
    ],
)
async def test_non_http_or_malformed_image_urls_are_refused(
    hostile: tuple[Hostile, Callable[[Handler], Awaitable[str]]], image_url: str, problem: str
) -> None:
    """Download URLs with schemes other than http/https, or that do not parse, are refused
    with a typed error, never fetched.
    """
    _, start = hostile

    async def answer(request: web.Request) -> web.StreamResponse:
        return web.json_response({"output": [{"url": image_url}]})

    url = await start(answer)
    async with client_for(url) as client:
        with pytest.raises(ah.ResponseFormatError, match=problem):
            await client.generate("dall-e-3", "a cat")


async def test_key_goes_only_to_the_api_host(sandbox: Sandbox) -> None:
    """The image host (a second loopback address) never receives the Authorization header."""
    async with make_client(sandbox) as client:
        await client.generate("imagen-4.0-generate-001", "a cat", numberOfImages=2)
    assert sandbox.stats.downloads == 2
    assert sandbox.stats.downloads_with_auth == 0


async def test_redirect_to_another_host_drops_the_key() -> None:
    """An image URL on the API host that redirects to the CDN arrives there without the key."""
    async with serve(redirect_downloads=True) as sandbox, make_client(sandbox) as client:
        result = await client.generate("qwen-image", "a cat", n=2)
        assert len(result.images) == 2
        assert sandbox.stats.downloads == 2
        assert sandbox.stats.downloads_with_auth == 0


async def test_api_calls_do_not_follow_redirects(
    hostile: tuple[Hostile, Callable[[Handler], Awaitable[str]]],
) -> None:
    """A redirect answered to a generation is an error, not a hop carrying the key elsewhere."""
    _, start = hostile
    seen_auth: list[str | None] = []

    async def elsewhere(request: web.Request) -> web.StreamResponse:
        seen_auth.append(request.headers.get("Authorization"))
        return web.json_response({"output": []})

    other = await start(elsewhere)

    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPTemporaryRedirect(f"{other}/steal")

    url = await start(redirect)
    async with client_for(url) as client:
        with pytest.raises(ah.APIStatusError) as caught:
            await client.generate("gpt-image-1", "a cat")
    assert caught.value.status_code == 307
    assert seen_auth == []
