"""The Ray UDF class as Ray drives it, without a cluster: its calls on one event loop in a
thread of their own, and ``__del__`` from the actor's main thread at shutdown.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from aihubmix_async.sandbox import Sandbox

from ..scale_support import loop_in_thread
from ..support import decode_image
from .conftest import require

require("ray")

import pyarrow as pa  # noqa: E402

from aihubmix_async.ray import SCHEMA, ImageGenerator  # noqa: E402


@pytest.fixture
def actor_loop() -> Iterator[asyncio.AbstractEventLoop]:
    with loop_in_thread() as loop:
        yield loop


def test_one_client_per_actor_closed_at_shutdown(
    endpoint: Sandbox, actor_loop: asyncio.AbstractEventLoop
) -> None:
    """Batches share the actor's client; deleting the UDF closes it on its loop."""
    udf = ImageGenerator("gpt-image-1", concurrency=3, params={"size": "1024x1024"})
    tables = []
    for start in (0, 3):
        batch = pa.table({"id": [f"u{start + i}" for i in range(3)], "prompt": ["a", "b", "c"]})
        tables.append(asyncio.run_coroutine_threadsafe(udf(batch), actor_loop).result(30))
    client = udf._client
    assert client is not None
    assert all(table.schema == SCHEMA for table in tables)
    rows = pa.concat_tables(tables).to_pylist()
    assert [row["id"] for row in rows] == [f"u{i}" for i in range(6)]
    assert all(decode_image(row["image"])[0] == "PNG" for row in rows)
    assert endpoint.stats.max_key_in_flight <= 3
    del udf, tables  # what Ray's __ray_shutdown__ does: the last reference goes
    gc.collect()
    assert repr(client).endswith("state=closed)")


def test_a_worker_with_a_bad_endpoint_returns_error_rows(
    endpoint: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad AIHUBMIX_BASE_URL in the actor's environment: each row says so, no abort."""
    monkeypatch.setenv("AIHUBMIX_BASE_URL", "ftp://example.invalid")
    udf = ImageGenerator("gpt-image-1")
    table = asyncio.run(udf(pa.table({"prompt": ["a", "b"]})))
    assert table.column("error_type").to_pylist() == ["InvalidRequestError"] * 2
    assert "base_url" in table.column("error_message")[0].as_py()
    assert endpoint.stats.submits == 0


def test_closing_on_an_idle_loop(endpoint: Sandbox) -> None:
    """A UDF whose loop is not running any more is closed on that loop."""
    loop = asyncio.new_event_loop()
    udf = ImageGenerator("gpt-image-1")
    loop.run_until_complete(udf(pa.table({"prompt": ["a"]})))
    client = udf._client
    udf.close()
    loop.close()
    assert repr(client).endswith("state=closed)")
