"""The shared row builder, on the in-process sandbox: every input row ends as rows."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aihubmix_async import InvalidRequestError
from aihubmix_async._rows import COLUMNS, generate_columns, item_id, requests_from_columns
from aihubmix_async.sandbox import Sandbox

from ..support import make_client


async def test_rows_never_lose_an_input_row(sandbox: Sandbox) -> None:
    """Bad rows and refused rows are error rows in input order; good rows carry their image."""
    sandbox.fail("status", status=400, message="scripted refusal")
    batch: dict[str, list[Any]] = {
        "prompt": ["one", "two", "", "four"],
        "id": ["a", None, "c", "d"],
        "params": ['{"size": "1024x1024"}', None, None, "not json"],
    }
    async with make_client(sandbox) as client:
        columns = await generate_columns(
            client, batch, model="gpt-image-1", params={"quality": "low"}, concurrency=2
        )
    assert tuple(columns) == COLUMNS
    rows = [
        dict(zip(COLUMNS, values, strict=True)) for values in zip(*columns.values(), strict=True)
    ]
    assert len(rows) == 4
    by_id = {row["id"]: row for row in rows}
    unnamed = item_id("gpt-image-1", "two", {"quality": "low"})
    assert set(by_id) == {"a", unnamed, "c", "d"}
    assert by_id["d"]["error_type"] == "InvalidRequestError"  # params not JSON: never sent
    assert by_id["c"]["error_type"] == "InvalidRequestError"  # empty prompt
    assert json.loads(by_id["a"]["params"]) == {"quality": "low", "size": "1024x1024"}
    refused = [row for row in rows if row["error_type"] == "BadRequestError"]
    assert len(refused) == 1
    assert refused[0]["request_id"]
    assert sandbox.stats.submits == 2  # "a" and the unnamed row; the bad rows never left


async def test_a_stopped_batch_turns_unrun_items_into_error_rows(sandbox: Sandbox) -> None:
    """The 429 breaker ends the batch early: the items it never ran are rows, not lost."""
    sandbox.fail("status", status=429, retry_after=0, times=1000)
    batch = {"prompt": [f"p{i}" for i in range(6)]}
    async with make_client(sandbox, max_retries=0) as client:
        columns = await generate_columns(
            client, batch, model="gpt-image-1", params={}, concurrency=1, give_up_after=1e-9
        )
    assert len(columns["id"]) == 6
    assert set(columns["error_type"]) <= {"RateLimitError", "BatchAbortedError"}
    assert "BatchAbortedError" in columns["error_type"]


def test_a_missing_prompt_column_is_a_typed_error() -> None:
    with pytest.raises(InvalidRequestError, match="prompt"):
        requests_from_columns({"text": ["x"]}, "gpt-image-1", {})


def test_ids_are_stable_and_distinguish_requests() -> None:
    assert item_id("m", "p", {"a": 1, "b": 2}) == item_id("m", "p", {"b": 2, "a": 1})
    assert item_id("m", "p", {}) != item_id("m", "p", {"a": 1})
    assert item_id("m", "p", {}) != item_id("n", "p", {})
