"""Hostile input rows and a refused key against the shared row builder (Ray and ``datasets``
both run it), on the in-process sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import math
from typing import Any

import pytest
from aiohttp import web

from aihubmix_async import Client, InvalidRequestError
from aihubmix_async._rows import Gate, generate_columns, item_id, requests_from_columns
from aihubmix_async.sandbox import Sandbox

from ..support import make_client


def rows_of(columns: dict[str, list[Any]]) -> list[dict[str, Any]]:
    names = list(columns)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]


async def test_a_prompt_that_is_not_text_is_a_row_saying_what_it_got(sandbox: Sandbox) -> None:
    """None, a number and bytes in the prompt column: rows naming the value, never sent."""
    batch: dict[str, list[Any]] = {"id": ["a", "b", "c", "d"], "prompt": [None, 7, b"x", "ok"]}
    async with make_client(sandbox) as client:
        rows = rows_of(
            await generate_columns(client, batch, model="gpt-image-1", params={}, concurrency=2)
        )
    messages = {row["id"]: row["error_message"] for row in rows}
    assert messages["a"] == "the 'prompt' column must hold text, got NoneType None"
    assert messages["b"] == "the 'prompt' column must hold text, got int 7"
    assert messages["c"] == "the 'prompt' column must hold text, got bytes b'x'"
    assert messages["d"] is None
    assert sandbox.stats.submits == 1


def test_nan_and_none_ids_are_missing_ids() -> None:
    """A missing id in pandas is NaN: such rows get the stable derived id, not "nan" each."""
    batch = {"id": [math.nan, None, ""], "prompt": ["one", "two", "three"]}
    ids = [request.id for request, _ in requests_from_columns(batch, "gpt-image-1", {})]
    assert ids == [item_id("gpt-image-1", p, {}) for p in ("one", "two", "three")]


def test_a_model_that_is_not_text_is_a_row_error_and_nan_means_the_default() -> None:
    """A number in the model column is that row's error (text in the model column, so Arrow
    can hold the row); NaN, like None, means the default model.
    """
    batch = {"model": [3, math.nan], "prompt": ["one", "two"]}
    (bad, bad_error), (good, good_error) = requests_from_columns(batch, "gpt-image-1", {})
    assert bad.model == "3"
    assert bad_error is not None
    assert str(bad_error) == "the 'model' column must hold text, got int 3"
    assert good.model == "gpt-image-1"
    assert good_error is None


def test_one_row_instead_of_a_batch_is_refused() -> None:
    """A map without batched=True hands over one row: its prompt must not become one request
    per letter (each one billed).
    """
    with pytest.raises(InvalidRequestError, match="batched=True"):
        requests_from_columns({"prompt": "a red fox"}, "gpt-image-1", {})
    with pytest.raises(InvalidRequestError, match="batched=True"):
        requests_from_columns({"prompt": ["a red fox"], "id": "fox"}, "gpt-image-1", {})


async def test_a_refused_key_stops_every_batch_sharing_the_gate(sandbox: Sandbox) -> None:
    """A wrong key: the batches running at once on one worker (a Ray actor's calls, a
    ``datasets`` map's batches) and every later one send nothing more once the first 401 is
    back; every row still comes back, saying why.
    """
    gate = Gate(2)
    async with make_client(sandbox, api_key="sk-wrong-key", max_retries=0) as client:

        async def one(start: int) -> list[dict[str, Any]]:
            batch = {"id": [f"r{start + i}" for i in range(4)], "prompt": ["a fox"] * 4}
            columns = await generate_columns(
                client, batch, model="gpt-image-1", params={}, concurrency=2, gate=gate
            )
            return rows_of(columns)

        at_once = await asyncio.gather(*(one(start) for start in range(0, 20, 4)))
        later = await one(20)
    rows = [row for rows in at_once for row in rows] + later
    assert sorted(row["id"] for row in rows) == sorted(f"r{i}" for i in range(24))
    assert sandbox.stats.submits <= 2  # the two in flight when the first 401 came back
    assert {row["error_type"] for row in rows} <= {"AuthenticationError", "BatchAbortedError"}
    assert all("refused the API key" in row["error_message"] for row in later)
    assert all(row["image"] is None for row in rows)


BOMB = web.AppKey("bomb", bytes)


async def hostile(request: web.Request) -> web.StreamResponse:
    """A server that answers a submit badly, as the prompt asks."""
    prompt = (await request.json())["input"]["prompt"]
    if prompt == "html":
        return web.Response(text="<html>502 Bad Gateway</html>", content_type="text/html")
    if prompt == "bomb":  # 65 MiB of zeros in 64 KiB of gzip (made before the server starts)
        return web.Response(body=request.app[BOMB], headers={"Content-Encoding": "gzip"})
    if prompt == "nan":
        return web.Response(text='{"output": NaN, "usage": {"total_tokens": -1e999}}')
    response = web.StreamResponse()  # "drip": a byte now and then, never the end
    await response.prepare(request)
    with contextlib.suppress(ConnectionError):  # the client gives up first
        for _ in range(400):
            await response.write(b" ")
            await asyncio.sleep(0.05)
    return response


async def test_hostile_answers_are_error_rows() -> None:
    """HTML with a 200, a gzip bomb, NaN in JSON, a slow drip: each is its row's error, and
    the batch (a Ray job, a map) goes on.
    """
    app = web.Application()
    app[BOMB] = gzip.compress(b"0" * (65 * 1024 * 1024))
    app.router.add_post("/v1/models/{model:.+}/predictions", hostile)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    batch = {"id": ["html", "bomb", "nan", "drip"], "prompt": ["html", "bomb", "nan", "drip"]}
    try:
        async with Client(
            api_key="sk-hostile", base_url=f"http://127.0.0.1:{port}", timeout=3.0, max_retries=0
        ) as client:
            columns = await generate_columns(
                client, batch, model="gpt-image-1", params={}, concurrency=4
            )
    finally:
        await runner.cleanup()
    rows = {row["id"]: row for row in rows_of(columns)}
    assert {name: rows[name]["error_type"] for name in rows} == {
        "html": "ResponseFormatError",
        "bomb": "ResponseFormatError",
        "nan": "ResponseFormatError",
        "drip": "RequestTimeout",
    }
    assert all(row["image"] is None for row in rows.values())
