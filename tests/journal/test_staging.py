"""Staging keeps narrow rows (a derived id, the run's default model and parameters are left
out of a row and spelled out where it becomes an item): every shape of line must still become
the item it says, resume as done, and show a change of what it asks.
"""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import pytest

from aihubmix_async import Client, InvalidRequestError
from aihubmix_async._journal import Journal
from aihubmix_async._prompts import BadLine, PromptLine, PromptReader
from aihubmix_async._registry import Registry
from aihubmix_async.sandbox import Sandbox

from .conftest import Line, assert_consistent, items, run, stage

SHAPES: list[Line] = [
    "a fox",  # a bare prompt: derived id, the run's model and parameters
    {"id": "named", "prompt": "a cat"},  # an id on a bare prompt
    {"prompt": "a dog", "params": {"quality": "low"}},  # own parameters, derived id
    {"id": "both", "prompt": "an owl", "model": "dall-e-3"},  # own model and an id
    "a fox",  # a repeated line: numbered
]


async def test_every_shape_of_line_becomes_its_item_and_resumes(
    tmp_path: Path, sandbox: Sandbox, client: Client
) -> None:
    out = tmp_path / "out"
    with Journal.open(out) as journal:
        plan, committed = await run(journal, client, stage(journal, items(SHAPES)))
    assert (plan.new, len(committed)) == (5, 5)
    rows = {r["line"]: r for r in assert_consistent(out)}
    assert [(rows[n]["prompt"], rows[n]["model"], rows[n]["params"]) for n in range(1, 6)] == [
        ("a fox", "openai/gpt-image-1", "{}"),
        ("a cat", "openai/gpt-image-1", "{}"),
        ("a dog", "openai/gpt-image-1", '{"quality":"low"}'),
        ("an owl", "openai/dall-e-3", "{}"),
        ("a fox", "openai/gpt-image-1", "{}"),
    ]
    assert (rows[2]["id"], rows[4]["id"]) == ("named", "both")
    assert rows[5]["id"] == rows[1]["id"] + "-2"
    with Journal.open(out) as journal:  # the same input: nothing to do
        report = stage(journal, items(SHAPES))
        assert (report.done, report.new, report.changed, report.absent) == (5, 0, 0, 0)

    # Another --param: every line keeps its id and is changed; regenerated, each row shows
    # its own model and the merged parameters.
    size = {"size": "1024x1024"}
    with Journal.open(out) as journal:
        report = stage(journal, items(SHAPES, params=size))
        assert (report.changed, report.done, report.new) == (5, 0, 0)
        plan, committed = await run(journal, client, report, on_change="regenerate")
    assert plan.regenerated == len(committed) == 5
    rows = {r["line"]: r for r in assert_consistent(out)}
    assert [(rows[n]["model"], rows[n]["params"]) for n in range(1, 6)] == [
        ("openai/gpt-image-1", '{"size":"1024x1024"}'),
        ("openai/gpt-image-1", '{"size":"1024x1024"}'),
        ("openai/gpt-image-1", '{"quality":"low","size":"1024x1024"}'),
        ("openai/dall-e-3", '{"size":"1024x1024"}'),
        ("openai/gpt-image-1", '{"size":"1024x1024"}'),
    ]
    assert sandbox.stats.submits == 10


def test_shards_split_every_shape_of_line_between_them(tmp_path: Path) -> None:
    """Each line is in exactly one shard, by its id (explicit or derived)."""
    lines = [*SHAPES, *(f"prompt {k}" for k in range(40)), *({"id": f"i{k}", "prompt": "p"}
                                                              for k in range(40))]  # fmt: skip
    mine = []
    for index in range(2):
        with Journal.open(tmp_path / "dry", shard=(index, 2), read_only=True) as journal:
            report = stage(journal, items(lines))
            assert (report.items, report.absent) == (len(lines), None)
            mine.append(report.new)
    assert sum(mine) == len(lines)
    assert min(mine) > 10


def test_staging_leaves_nothing_behind_once_the_run_is_planned(tmp_path: Path) -> None:
    """The staging tables go with their schema, before the first request (their memory and
    their file are the run's no longer); a second staging on one journal starts afresh.
    """
    with Journal.open(tmp_path / "out") as journal:
        assert stage(journal, items(["a", "b"])).new == 2
        assert stage(journal, items(["a"])).new == 1
        journal.start_run(stage(journal, items(["c"])))
        schemas = [name for (name,) in journal.db.execute("SELECT name FROM pragma_database_list")]
        assert "stage" not in schemas
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            journal.db.execute("SELECT count(*) FROM staged")
        (count,) = journal.db.execute("SELECT count(*) FROM items").fetchone()
    assert count == 1


@pytest.mark.parametrize(
    "line",
    [
        pytest.param({"prompt": "bad \ud800"}, id="bare prompt"),
        pytest.param({"id": "x\ud800", "prompt": "a"}, id="id on a bare prompt"),
        pytest.param({"id": "x\ud800", "prompt": "a", "params": {"n": 2}}, id="id, own params"),
        pytest.param({"prompt": "b \ud800", "params": {"n": 2}}, id="own params"),
    ],
)
def test_a_line_that_cannot_be_stored_is_refused_and_not_staged(tmp_path: Path, line: Line) -> None:
    with Journal.open(tmp_path, read_only=True) as journal:
        stager = journal.stager(model="gpt-image-1")
        request = items([line]).lines[0][1]
        with pytest.raises(InvalidRequestError, match="lone surrogate"):
            stager.add(1, request)
        stager.add(2, items(["fine"]).lines[0][1])
        report = stager.finish()
    assert (report.items, report.new) == (1, 1)


def test_lines_without_a_model_are_refused_when_the_run_has_none(tmp_path: Path) -> None:
    with Journal.open(tmp_path, read_only=True) as journal:
        stager = journal.stager()
        lines: list[Line] = ["a fox", {"id": "x", "prompt": "a cat"}]
        for line in lines:
            with pytest.raises(InvalidRequestError, match="no model"):
                stager.add(1, items([line]).lines[0][1])
        stager.add(2, items([{"id": "y", "prompt": "an owl", "model": "dall-e-3"}]).lines[0][1])
        assert stager.finish().new == 1


def test_thousands_of_lines_with_ids_are_staged_in_chunks(tmp_path: Path) -> None:
    lines: list[Line] = [{"id": f"item {k}", "prompt": f"p {k}"} for k in range(5000)]
    with Journal.open(tmp_path, read_only=True) as journal:
        report = stage(journal, items(lines))
    assert (report.items, report.new, report.conflict_count) == (5000, 5000, 0)


def test_text_lines_become_prompts_and_bad_lines_by_number() -> None:
    """The reader's text loop: a byte-order mark, blank lines and Unicode spaces, bad bytes."""
    text = b"\xef\xbb\xbfa fox\n\n  \n" + "\u3000\u00a0\n".encode() + b"b\xffd\n a cat \n"
    reader = PromptReader(Registry.default(), model="gpt-image-1")
    found = [(e.line, e.prompt) if isinstance(e, PromptLine) else (e.line, e.message)
             for e in reader.read(io.BytesIO(text))]  # fmt: skip
    assert found == [
        (1, "a fox"),
        (4, "empty prompt"),
        (5, "not UTF-8: byte 0xff at column 2"),
        (6, "a cat"),
    ]
    refused = PromptReader(Registry.default(), model="gpt-image-1", params={"quality": "best"})
    assert [e.line for e in refused.read(io.BytesIO(text)) if isinstance(e, BadLine)] == [
        1, 4, 5, 6]  # fmt: skip
