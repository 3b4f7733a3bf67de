"""The FastAPI example under a real uvicorn server, the sandbox as upstream, real HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from aihubmix_async.sandbox import Sandbox, serve

from .support import decode_image

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")


@pytest.fixture
async def upstream(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Sandbox]:
    async with serve() as sandbox:
        monkeypatch.setenv("AIHUBMIX_BASE_URL", sandbox.base_url)
        monkeypatch.setenv("AIHUBMIX_API_KEY", sandbox.api_key or "")
        yield sandbox


@pytest.fixture
async def app_url(upstream: Sandbox) -> AsyncIterator[str]:
    """examples/fastapi_app.py served by uvicorn on 127.0.0.1 (lifespan opens the Client)."""
    from examples.fastapi_app import app

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_single_image_handler_returns_the_image(app_url: str) -> None:
    """POST /generate answers with the image bytes and its content type, or JSON with base64."""
    async with aiohttp.ClientSession() as http:
        body = {"model": "gpt-image-1", "prompt": "a cat", "params": {"quality": "low"}}
        async with http.post(f"{app_url}/generate", json=body) as response:
            assert response.status == 200
            assert response.content_type == "image/png"
            assert decode_image(await response.read())[0] == "PNG"
        async with http.post(f"{app_url}/generate?format=json", json=body) as response:
            payload = await response.json()
        assert payload["request_id"]
        assert decode_image(base64.b64decode(payload["images"][0]["b64"]))[0] == "PNG"


async def test_200_concurrent_requests_share_one_client(app_url: str, upstream: Sandbox) -> None:
    """200 concurrent requests all succeed over the one shared Client, within its limit."""
    upstream.latency = 0.02
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one(i: int) -> int:
            body = {"model": "dall-e-3", "prompt": f"cat {i}"}
            async with http.post(f"{app_url}/generate", json=body) as response:
                await response.read()
                return response.status

        statuses = await asyncio.gather(*(one(i) for i in range(200)))
    assert statuses == [200] * 200
    assert upstream.stats.submits == 200
    assert upstream.stats.max_in_flight <= 64  # the Client's default max_concurrency


async def test_errors_map_to_http_answers(app_url: str, upstream: Sandbox) -> None:
    """Bad parameters -> 422 naming the field; upstream 429 -> 429 with Retry-After."""
    async with aiohttp.ClientSession() as http:
        bad = {"model": "gpt-image-1", "prompt": "a cat", "params": {"size": "9x9"}}
        async with http.post(f"{app_url}/generate", json=bad) as response:
            assert response.status == 422
            assert (await response.json())["error"]["field"] == "size"
        upstream.fail("status", status=429, retry_after=7, times=10)
        ok = {"model": "gpt-image-1", "prompt": "a cat"}
        async with http.post(f"{app_url}/generate", json=ok) as response:
            assert response.status == 429
            assert response.headers["Retry-After"] == "7"
            assert "sk-" not in await response.text()
        async with http.post(f"{app_url}/batch", json={**bad, "prompts": ["x"]}) as response:
            assert response.status == 422


async def test_a_model_typo_answers_422_without_naming_python_calls(app_url: str) -> None:
    """An unknown model: 422 with the near names, and no Client.models() in a web answer."""
    async with aiohttp.ClientSession() as http:
        body = {"model": "gpt-imag-1", "prompt": "a cat"}
        async with http.post(f"{app_url}/generate", json=body) as response:
            assert response.status == 422
            error = (await response.json())["error"]
    assert error["field"] == "model"
    assert "did you mean 'gpt-image-1'" in error["message"]
    assert "Client" not in error["message"]
    assert "()" not in error["message"]


async def test_batch_streams_results_incrementally(app_url: str, upstream: Sandbox) -> None:
    """POST /batch delivers NDJSON lines as results finish, not all at the end."""
    upstream.latency = 0.05
    body = {"model": "dall-e-3", "prompts": [f"p{i}" for i in range(16)], "concurrency": 2}
    submitted_at_line: list[int] = []  # upstream submits seen when each line arrived
    records = []
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{app_url}/batch", json=body) as response,
    ):
        assert response.content_type == "application/x-ndjson"
        async for line in response.content:
            submitted_at_line.append(upstream.stats.submits)
            records.append(json.loads(line))
    assert sorted(r["index"] for r in records) == list(range(16))
    assert all(r["ok"] for r in records)
    # Streamed: the first line was here while most prompts had not even been submitted (two
    # at a time), not after the whole batch had run.
    assert submitted_at_line[0] < 16


async def test_disconnect_stops_upstream_calls(app_url: str, upstream: Sandbox) -> None:
    """A client gone mid-stream cancels the outstanding work: the sandbox sees calls stop."""
    upstream.latency = 0.05
    body = {"model": "dall-e-3", "prompts": [f"p{i}" for i in range(400)], "concurrency": 4}
    async with aiohttp.ClientSession() as http:
        response = await http.post(f"{app_url}/batch", json=body)
        await response.content.readline()
        await response.content.readline()
        response.close()  # drop the connection mid-stream
    await asyncio.sleep(0.5)
    settled = upstream.stats.submits
    await asyncio.sleep(0.5)
    assert upstream.stats.submits == settled
    assert settled < 100
