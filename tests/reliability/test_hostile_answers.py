"""Issue 11, items 1-4 and 11: hostile answers from a small aiohttp.web server on loopback.

Decompression bombs, non-image bytes claiming to be images, a server echoing the key, task ids
that walk the poll URL, and signed image URLs that must be sent exactly as received.
"""

from __future__ import annotations

import base64
import functools
import logging
import resource
import zlib

import pytest
from aiohttp import web

import aihubmix_async as ah
from aihubmix_async import Client

from .conftest import Start

KEY = "sk-hostile-answers-0123456789"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
#: Without the task-id check a walking poll would wait out the poll deadline: keep it short.
QUICK_POLL = ah.PollPolicy(initial_interval=0.01, max_interval=0.01, deadline=1.0)
HTML = b"<!doctype html><html><body>Cloudflare: checking your browser</body></html>"


def client_for(base_url: str, **options: object) -> Client:
    settings: dict[str, object] = {"max_retries": 0}
    settings.update(options)
    return Client(api_key=KEY, base_url=base_url, **settings)  # type: ignore[arg-type]


@functools.cache
def gzip_bomb(prefix: bytes, inflated: int, suffix: bytes) -> bytes:
    """``prefix + b"A" * inflated + suffix``, gzipped (about 1000:1)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = bytearray(packer.compress(prefix))
    block = b"A" * (1 << 20)
    for _ in range(inflated >> 20):
        out += packer.compress(block)
    out += packer.compress(suffix) + packer.flush()
    return bytes(out)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# --- 1. decompression bombs -------------------------------------------------------------------


@pytest.mark.slow
async def test_gzip_bomb_answer_is_refused_at_the_decoded_cap(start: Start) -> None:
    """A ~400 KB gzip answer inflating to 400 MB stops at max_response_bytes (1 MB) of
    decoded bytes: a typed error, and the process never held the inflated body.
    """
    bomb = gzip_bomb(b'{"data": [{"b64_json": "', 400 << 20, b'"}]}')
    assert len(bomb) < 600_000

    async def answer(request: web.Request) -> web.StreamResponse:
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        return web.Response(body=bomb, headers=headers)

    url = await start(answer)
    before = peak_rss_mb()
    async with client_for(url, max_response_bytes=1 << 20) as client:
        with pytest.raises(ah.ResponseFormatError, match="larger than max_response_bytes"):
            await client.generate("gpt-image-1", "a cat")
    assert peak_rss_mb() - before < 150  # the inflated body alone would be 400 MB


@pytest.mark.slow
async def test_gzip_bomb_download_is_refused_at_the_decoded_cap(start: Start) -> None:
    """A 200 KB image download inflating to 210 MB passes no longer the 64 MB default."""
    bomb = gzip_bomb(PNG[:16], 210 << 20, b"")
    assert len(bomb) < 300_000

    async def answer(request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            return web.json_response({"data": [{"url": f"{request.url.origin()}/a.png"}]})
        headers = {"Content-Type": "image/png", "Content-Encoding": "gzip"}
        return web.Response(body=bomb, headers=headers)

    url = await start(answer)
    before = peak_rss_mb()
    async with client_for(url) as client:
        with pytest.raises(ah.ResponseFormatError, match="larger than max_response_bytes"):
            await client.generate("dall-e-3", "a cat")
    assert peak_rss_mb() - before < 150


@pytest.mark.parametrize("wbits", [15, -15, 31], ids=["deflate-zlib", "deflate-raw", "gzip"])
async def test_small_bomb_is_refused_in_every_encoding(start: Start, wbits: int) -> None:
    """A fast variant: 8 MB of JSON squeezed into ~8 KB, against a 1 MB cap."""
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    body = packer.compress(b'{"data": [{"b64_json": "' + b"A" * (8 << 20)) + packer.flush()
    encoding = "gzip" if wbits == 31 else "deflate"

    async def answer(request: web.Request) -> web.StreamResponse:
        headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
        return web.Response(body=body, headers=headers)

    url = await start(answer)
    async with client_for(url, max_response_bytes=1 << 20) as client:
        with pytest.raises(ah.ResponseFormatError, match="larger than max_response_bytes"):
            await client.generate("gpt-image-1", "a cat")


async def test_small_gzip_answer_is_still_read(start: Start) -> None:
    """The decoded-size count does not refuse ordinary compressed answers."""
    body = zlib.compress(b'{"data": [{"b64_json": "' + base64.b64encode(PNG) + b'"}]}', wbits=31)

    async def answer(request: web.Request) -> web.StreamResponse:
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        return web.Response(body=body, headers=headers)

    url = await start(answer)
    async with client_for(url, max_response_bytes=1024) as client:
        result = await client.generate("gpt-image-1", "a cat")
    assert result.images[0].data == PNG


# --- 2. the bytes decide what is an image ------------------------------------------------------


async def test_inline_html_claiming_png_is_not_an_image(start: Start) -> None:
    async def answer(request: web.Request) -> web.StreamResponse:
        item = {"b64_json": base64.b64encode(HTML).decode(), "mimeType": "image/png"}
        return web.json_response({"data": [item]})

    url = await start(answer)
    async with client_for(url) as client:
        with pytest.raises(ah.ResponseFormatError, match="not a PNG, JPEG, WebP or GIF"):
            await client.generate("gpt-image-1", "a cat")


async def test_downloaded_html_served_as_image_png_is_not_an_image(start: Start) -> None:
    async def answer(request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            return web.json_response({"data": [{"url": f"{request.url.origin()}/a.png"}]})
        return web.Response(body=HTML, headers={"Content-Type": "image/png"})

    url = await start(answer)
    async with client_for(url) as client:
        with pytest.raises(ah.ResponseFormatError, match=r"claimed image/png"):
            await client.generate("dall-e-3", "a cat")


# --- 3. the key never leaks -------------------------------------------------------------------


async def test_key_echoed_by_the_server_is_redacted(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    """A server quoting the Authorization header back: the key is in no text of the error,
    nor in the log lines of the retries, nor in what a hook sees.
    """
    seen: list[str] = []

    async def answer(request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        error = {"message": f"bad header {auth}", "code": auth}
        return web.json_response({"error": error}, status=503)

    url = await start(answer)
    caplog.set_level(logging.DEBUG, logger="aihubmix_async")
    async with client_for(
        url, max_retries=2, on_response=lambda event: seen.append(repr(event.error))
    ) as client:
        with pytest.raises(ah.ServerError) as caught:
            await client.generate("gpt-image-1", "a cat")
    error = caught.value
    texts = [str(error), repr(error), error.message, str(error.code), *map(str, error.args)]
    assert "bad header Bearer ***" in str(error)
    assert all(KEY not in text for text in texts + seen)
    assert KEY not in caplog.text


def _chain(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


async def test_redirect_loop_leaves_no_aiohttp_object_in_the_chain(start: Start) -> None:
    """An image URL on the API's own host (so it carries the key) that redirects forever."""

    async def answer(request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            return web.json_response({"data": [{"url": f"{request.url.origin()}/loop/0"}]})
        hop = int(request.path.rsplit("/", 1)[1])
        raise web.HTTPFound(f"/loop/{hop + 1}")

    url = await start(answer)
    async with client_for(url) as client:
        with pytest.raises(ah.TransportError) as caught:
            await client.generate("dall-e-3", "a cat")
    chain = _chain(caught.value)
    assert [type(e).__module__.split(".")[0] for e in chain] == ["aihubmix_async"]
    assert all(KEY not in repr(e) and KEY not in str(e) for e in chain)


@pytest.mark.parametrize(
    "base_url",
    [
        f"https://user:{KEY}@aihubmix.com",
        f"https://{KEY}@aihubmix.com",
        f"https://aihubmix.com/?key={KEY}",
        f"https://aihubmix.com/v1?api_key={KEY}#x",
    ],
)
def test_credentials_in_base_url_are_refused(base_url: str) -> None:
    with pytest.raises(ah.ConfigurationError, match="api_key") as caught:
        Client(base_url=base_url)
    assert KEY not in str(caught.value)
    assert KEY not in repr(caught.value)


# --- 4. task ids that walk ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "task_id",
    ["..", ".", "a/../..", "%2e%2e", "..%2F", "a\nb", "a\x00", "x" * 300, "a b", "a?b=1"],
)
async def test_unsafe_task_ids_are_refused_before_any_poll(start: Start, task_id: str) -> None:
    gets: list[str] = []

    async def answer(request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            return web.json_response({"output": [{"taskId": task_id}]})
        gets.append(request.raw_path)
        return web.json_response({"status": "Pending"})

    url = await start(answer)
    async with client_for(url, poll=QUICK_POLL) as client:
        with pytest.raises(ah.ResponseFormatError, match="not safe in a URL path"):
            await client.generate("flux-kontext-max", "a fox")
    assert gets == []


async def test_unsafe_task_id_to_resume_is_refused_unsent(start: Start) -> None:
    requests: list[str] = []

    async def answer(request: web.Request) -> web.StreamResponse:
        requests.append(request.raw_path)
        return web.json_response({"status": "Pending"})

    url = await start(answer)
    async with client_for(url, poll=QUICK_POLL) as client:
        with pytest.raises(ah.InvalidRequestError, match="not safe in a URL path"):
            await client.generate("flux-kontext-max", "a fox", task_id="..")
    assert requests == []


# --- 11. signed image URLs are sent as received -------------------------------------------------


async def test_signed_image_url_is_sent_exactly_as_received(start: Start) -> None:
    signed = (
        "/img%3Aone.png?X-Amz-Credential=AKIA%2F20260101%2Fus&X-Amz-Date=2026%3A01&sig=a%2Bb%3D"
    )
    downloads: list[str] = []

    async def answer(request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            return web.json_response({"data": [{"url": f"{request.url.origin()}{signed}"}]})
        downloads.append(request.raw_path)
        return web.Response(body=PNG, headers={"Content-Type": "image/png"})

    url = await start(answer)
    async with client_for(url) as client:
        result = await client.generate("dall-e-3", "a cat")
    assert downloads == [signed]
    assert result.images[0].data == PNG


async def test_image_url_with_spaces_and_unicode_is_still_encoded(start: Start) -> None:
    """A URL not fit for the wire as is (a CDN file name in Chinese, a space) is encoded."""
    downloads: list[str] = []

    async def answer(request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            url = f"{request.url.origin()}/图 片.png?a=1"
            return web.json_response({"data": [{"url": url}]})
        downloads.append(request.raw_path)
        return web.Response(body=PNG, headers={"Content-Type": "image/png"})

    url = await start(answer)
    async with client_for(url) as client:
        result = await client.generate("dall-e-3", "a cat")
    assert downloads == ["/%E5%9B%BE%20%E7%89%87.png?a=1"]
    assert result.images[0].data == PNG


async def test_userinfo_of_an_image_url_is_not_echoed(start: Start) -> None:
    async def answer(request: web.Request) -> web.StreamResponse:
        return web.json_response({"data": [{"url": "http://user:s3cret@127.0.0.1:1/a.png"}]})

    url = await start(answer)
    events: list[str] = []
    async with client_for(url, on_request=lambda event: events.append(event.url)) as client:
        with pytest.raises(ah.ConnectError) as caught:
            await client.generate("dall-e-3", "a cat")
    assert "s3cret" not in str(caught.value)
    assert events[-1] == "http://127.0.0.1:1/a.png"
