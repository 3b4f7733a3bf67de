"""Attacks on the Ray Data helper that need no cluster: the UDF class on an event loop of its
own (as an actor runs it) against the sandbox, and ``skip_done`` reading earlier output.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aihubmix_async import InvalidRequestError
from aihubmix_async.sandbox import Sandbox

from ..scale_support import endpoint_in_env, loop_in_thread

pytest.importorskip("ray")

import pyarrow as pa
import pyarrow.parquet as pq

from aihubmix_async.ray import SCHEMA, ImageGenerator, done_ids


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    with endpoint_in_env(monkeypatch, "sk-hostile-ray") as sandbox:
        yield sandbox


@pytest.fixture
def actor_loop() -> Iterator[asyncio.AbstractEventLoop]:
    with loop_in_thread() as loop:
        yield loop


def test_a_number_in_the_model_column_is_an_error_row(
    endpoint: Sandbox, actor_loop: asyncio.AbstractEventLoop
) -> None:
    """It used to end the actor's call in an Arrow error, which aborts the whole Ray job."""
    udf = ImageGenerator("gpt-image-1", concurrency=2)
    batch = pa.table({"id": ["x", "y"], "model": pa.array([3, None]), "prompt": ["a", "b"]})
    table = asyncio.run_coroutine_threadsafe(udf(batch), actor_loop).result(60)
    rows = {row["id"]: row for row in table.to_pylist()}
    assert rows["x"]["error_type"] == "InvalidRequestError"
    assert rows["x"]["model"] == "3"
    assert rows["y"]["error_type"] is None
    assert endpoint.stats.submits == 1
    udf.close()


def test_a_refused_key_stops_the_calls_an_actor_runs_at_once(
    endpoint: Sandbox, actor_loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray runs four calls per actor at once: after the first 401 none of them takes another
    row (each had its first rows started), and no later call sends anything.
    """
    monkeypatch.setenv("AIHUBMIX_API_KEY", "sk-revoked")
    udf = ImageGenerator("gpt-image-1", concurrency=2, client_options={"max_retries": 0})

    def call(start: int) -> Any:
        batch = pa.table({"id": [f"k{start + i}" for i in range(4)], "prompt": ["a fox"] * 4})
        return asyncio.run_coroutine_threadsafe(udf(batch), actor_loop)

    tables = [future.result(60) for future in [call(start) for start in range(0, 16, 4)]]
    tables.append(call(16).result(60))
    rows = pa.concat_tables(tables).to_pylist()
    assert len(rows) == 20
    assert endpoint.stats.submits <= 4 * 2  # four calls, two started in each
    assert all(row["error_type"] in {"AuthenticationError", "BatchAbortedError"} for row in rows)
    udf.close()


def write_rows(path: Path, rows: list[tuple[str, str | None]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns: dict[str, list[Any]] = {name: [None] * len(rows) for name in SCHEMA.names}
    columns["id"] = [row_id for row_id, _ in rows]
    columns["error_type"] = [error for _, error in rows]
    pq.write_table(pa.Table.from_pydict(columns, schema=SCHEMA), path)


def test_skip_done_reads_a_uri(tmp_path: Path) -> None:
    """``file://`` (like ``s3://``) found nothing before: everything was generated again."""
    write_rows(tmp_path / "out" / "run-1" / "a.parquet", [("a", None), ("b", "ServerError")])
    write_rows(tmp_path / "out" / "run-2" / "b.parquet", [("b", None)])
    assert done_ids(f"file://{tmp_path / 'out'}").to_pylist() == ["a", "b"]
    assert done_ids(tmp_path / "out" / "run-1").to_pylist() == ["a"]
    assert done_ids(tmp_path / "nothing-yet").to_pylist() == []


def test_a_parquet_file_cut_short_is_named(tmp_path: Path) -> None:
    """A crash mid-write leaves a truncated file: the error names it (and nothing is sent)."""
    write_rows(tmp_path / "out" / "good.parquet", [("a", None)])
    cut = tmp_path / "out" / "cut.parquet"
    write_rows(cut, [("b", None)])
    cut.write_bytes(cut.read_bytes()[:100])
    with pytest.raises(InvalidRequestError, match=r"cut\.parquet"):
        done_ids(tmp_path / "out")
