"""Hostile answers and hooks against the decode path and the batch: a huge integer in
``usage``, a body nested 100k deep, an ``on_task`` hook raising its own ``CancelledError``,
and the command line with both standard streams closed.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
from aiohttp import web

import aihubmix_async._json as json_backend
from aihubmix_async import AIHubMixError, Client, ImageRequest, ResponseFormatError, RetryPolicy
from aihubmix_async.sandbox import Sandbox
from aihubmix_async.sandbox._images import png

from ..reliability import conftest as reliability
from ..reliability.conftest import Handler, Start
from ..support import collect, make_client
from .test_observe_cli import shell

#: The reliability suite's fixture: one-route aiohttp.web servers on 127.0.0.1 (their URL).
start = reliability.start

GPT: Final = "gpt-image-1"
PNG_B64: Final = base64.b64encode(png(8, 8)).decode()


def _client(base_url: str) -> Client:
    return Client(api_key="sk-test-hostile", base_url=base_url, retry=RetryPolicy(max_retries=0))


def _answering(body: bytes) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            body=body, content_type="application/json", headers={"x-request-id": "req-hostile"}
        )

    return handler


@pytest.fixture
def stdlib_json(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The package as installed without orjson (the stdlib backend), restored afterwards."""
    monkeypatch.setitem(sys.modules, "orjson", None)  # import now fails
    try:
        assert importlib.reload(json_backend).BACKEND == "json"
        yield
    finally:
        monkeypatch.undo()
        importlib.reload(json_backend)


async def test_a_huge_integer_in_usage_does_not_lose_the_paid_image(start: Start) -> None:
    """A 400-digit integer is past orjson's 64 bits, yet valid JSON. The image is still returned."""
    huge = "9" * 400
    body = '{"output":[{"b64_json":"%s"}],"usage":{"total_tokens":%s}}' % (PNG_B64, huge)  # noqa: UP031
    async with _client(await start(_answering(body.encode()))) as client:
        result = await client.generate(GPT, "a fox")
    assert len(result.images) == 1
    assert result.images[0].data == png(8, 8)


async def test_a_body_nested_too_deep_for_stdlib_json_is_a_format_error(
    start: Start,
    stdlib_json: None,
) -> None:
    """Without orjson a 100k-deep body overflows the stdlib decoder's recursion: that must be
    the typed format error carrying the request id, not a ``RecursionError``.
    """
    depth = 100_000
    body = b'{"output":' + b"[" * depth + b"]" * depth + b"}"
    async with _client(await start(_answering(body))) as client:
        with pytest.raises(ResponseFormatError) as caught:
            await client.generate(GPT, "a fox")
    assert caught.value.request_id == "req-hostile"
    assert caught.value.model is not None
    assert caught.value.model.endswith(GPT)


async def test_an_on_task_hook_raising_its_own_cancellation_fails_only_its_item(
    sandbox: Sandbox,
) -> None:
    """A ``CancelledError`` the hook raises itself is not the batch being cancelled: every
    item (billed: its task was submitted) still comes out, as a typed failure.
    """

    def journal(request: ImageRequest, task_id: str, request_id: str | None) -> None:
        raise asyncio.CancelledError

    async with (
        make_client(sandbox) as client,
        client.batch(
            [f"p{i}" for i in range(4)], model="flux-kontext-max", concurrency=4, on_task=journal
        ) as batch,
    ):
        outcomes = await collect(batch)
    assert sorted(o.index for o in outcomes) == [0, 1, 2, 3]
    errors = [o.error for o in outcomes]
    assert all(isinstance(e, AIHubMixError) for e in errors)
    assert all(isinstance(getattr(e, "__cause__", None), asyncio.CancelledError) for e in errors)
    assert all(o.task_id is not None for o in outcomes)
    assert sandbox.stats.submits == 4
    assert batch.summary.failed == 4
    assert batch.summary.cancelled == 0


@pytest.mark.slow
@pytest.mark.parametrize("closed", [">&- 2>&-", "<&- >&- 2>&-"])
def test_a_batch_with_both_standard_streams_closed_still_saves_everything(
    tmp_path: Path, closed: str
) -> None:
    """``>&- 2>&-`` (a daemon's or a cron job's standard input may be closed as well): nothing
    can be shown anywhere, but every item is generated and saved.
    """
    (tmp_path / "p.txt").write_text("a fox\nan owl\na cat\n")
    ran = shell(f"$CLI batch p.txt -m gpt-image-1 -o out --sandbox -v {closed}", tmp_path)
    assert ran.returncode == 0
    rows = (tmp_path / "out" / "train" / "metadata.jsonl").read_text().splitlines()
    assert sorted(json.loads(r)["prompt"] for r in rows) == ["a cat", "a fox", "an owl"]
